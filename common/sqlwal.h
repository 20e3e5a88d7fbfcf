/* sqlwal.h - an SQLite VFS that writes each commit's WAL frames with one
 * system call instead of two per page.
 *
 * SQLite appends a commit to the write-ahead log as frames, each written
 * with two pwrite(2)s (its 24-byte header, then the page): a commit of 15
 * pages costs 30 calls, and for the backend's group commits those calls
 * were a fifth of the writer thread's time. This VFS sits on the default
 * one (unix) and, for WAL files only, gathers writes that continue each
 * other in a buffer of at most SQLWAL_BUFFER bytes. The buffer goes to the
 * file:
 *   - right after the page of a commit frame (a frame header whose "database
 *     size" word is non-zero; sqlite.org/fileformat2.html#walformat), inside
 *     that write, so a failure (a full disk) is that write's error and
 *     SQLite rolls the commit back; and the frames are in the file before
 *     SQLite publishes the commit to other connections in the WAL index;
 *   - before a write that does not continue it, or would overflow it;
 *   - before any other call on the file (read, size, sync, truncate, file
 *     control, close...), so nothing ever sees the file without its writes;
 *     a failure there is reported as SQLITE_IOERR_WRITE (see sqlwal.c).
 * A commit frame's header written alone at the start of the buffer (SQLite
 * rewriting the checksums of frames it overwrote in place) goes out at
 * once. Once SQLite asks a WAL its sector size (to pad commits, with
 * synchronous=FULL), that file is written through. Frames a transaction
 * spilled and then rolled back are dropped when its connection releases
 * the WAL write lock (each WAL is tied to its database file through
 * sqlite3_database_file_object()), before another connection can write at
 * their offsets. Not for locking_mode=EXCLUSIVE (no shared-memory locks).
 *
 * Connections must each be used by one thread at a time (as SQLite requires
 * of a connection opened with SQLITE_OPEN_NOMUTEX). */
#ifndef VAPORA_SQLWAL_H
#define VAPORA_SQLWAL_H

#include <sqlite3.h>

/* The most bytes gathered before a write; the unix VFS writes at most
 * 128 KiB - 1 bytes per call. */
#define SQLWAL_BUFFER (64 * 1024)

/* The VFS's name for sqlite3_open_v2, registered (not as the default) on
 * first use; NULL (SQLite's default VFS) if that failed. Thread-safe. */
const char *sqlwal_vfs(void);

#endif
