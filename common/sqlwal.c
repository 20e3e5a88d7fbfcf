/* sqlwal.c - the VFS that gathers a commit's WAL writes; see sqlwal.h. */
#define _GNU_SOURCE
#include "sqlwal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SQLWAL_NAME "vapora-sqlwal"
#define FRAME_HEADER 24 /* bytes before each page in a WAL frame */

/* Our file: the underlying file's object follows it in the same block. */
typedef struct wfile {
    sqlite3_file base;  /* pMethods = &s_io */
    sqlite3_file *real; /* the underlying VFS's file, right after this */
    struct wfile *peer; /* a WAL's database file and back, when both are ours */
    bool wal;           /* a write-ahead log: its writes are gathered */
    bool commit_next;   /* the last write was a commit frame's header alone */
    unsigned char *buf; /* SQLWAL_BUFFER bytes, allocated at the first write */
    size_t len;         /* bytes in buf */
    sqlite3_int64 off;  /* the file offset of buf[0] */
} wfile_t;

static sqlite3_vfs s_vfs;
static sqlite3_vfs *s_base;
static bool s_ready;

static inline sqlite3_file *s_real(sqlite3_file *p)
{
    return ((wfile_t *)p)->real;
}

/* Writes what is gathered; the buffer is empty afterwards, written or not
 * (a failed write fails its commit, which SQLite then writes again). */
static int s_flush(wfile_t *f)
{
    if (f->len == 0)
        return SQLITE_OK;
    size_t n = f->len;
    f->len = 0;
    return f->real->pMethods->xWrite(f->real, f->buf, (int)n, f->off);
}

/* Before any call but a write: what is gathered goes out first. Its failure
 * is reported as an I/O error even when the disk is full: SQLITE_FULL from a
 * read makes SQLite roll back only the statement (which may not be the one
 * whose pages were lost) and commit the rest over frames never written;
 * an I/O error rolls the whole transaction back. SQLite's system errno (the
 * write's ENOSPC) still says why. */
#define FLUSH_FIRST(p)                                                                 \
    do {                                                                               \
        int rc_ = s_flush((wfile_t *)(p));                                             \
        if (rc_ != SQLITE_OK)                                                          \
            return (rc_ & 0xff) == SQLITE_FULL ? SQLITE_IOERR_WRITE : rc_;             \
    } while (0)

static uint32_t s_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 0: b is not a frame header; 1: a frame header (alone, or with its page)
 * of a frame that does not end a commit; 2: one that ends a commit. */
static int s_frame_kind(const unsigned char *b, int n)
{
    int page = n - FRAME_HEADER;
    bool header =
        n == FRAME_HEADER || (page >= 512 && page <= 65536 && (page & (page - 1)) == 0);
    if (!header)
        return 0;
    return s_be32(b + 4) != 0 ? 2 : 1; /* bytes 4-7: the size after a commit */
}

/* Adds b to the buffer (which it continues and fits in). */
static int s_gather(wfile_t *f, const void *b, int n, sqlite3_int64 off)
{
    if (!f->buf && !(f->buf = malloc(SQLWAL_BUFFER)))
        return f->real->pMethods->xWrite(f->real, b, n, off);
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, b, (size_t)n);
    f->len += (size_t)n;
    return SQLITE_OK;
}

/* A write error here fails the write that SQLite made (the spill or commit
 * it belongs to), which puts its pager in the error state: SQLITE_FULL is
 * kept, for the caller to say the disk is full. */
static int s_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 off)
{
    wfile_t *f = (wfile_t *)p;
    int rc = SQLITE_OK;
    if (f->len &&
        (!f->wal || off != f->off + (sqlite3_int64)f->len ||
         f->len + (size_t)n > SQLWAL_BUFFER) &&
        (rc = s_flush(f)) != SQLITE_OK)
        return rc;
    if (!f->wal)
        return f->real->pMethods->xWrite(f->real, b, n, off);
    bool ends = f->commit_next; /* this is the page of a commit frame */
    int kind = s_frame_kind(b, n);
    f->commit_next = kind == 2 && n == FRAME_HEADER;
    ends = ends || (kind == 2 && n > FRAME_HEADER);
    /* A commit frame's header that starts the buffer goes out at once: it
     * may have no page behind it (walRewriteChecksums rewrites headers
     * alone, the commit's last, once the frames are written). */
    bool through = (size_t)n > SQLWAL_BUFFER || (f->commit_next && f->len == 0);
    rc = through ? f->real->pMethods->xWrite(f->real, b, n, off)
                 : s_gather(f, b, n, off);
    if (rc == SQLITE_OK && ends)
        rc = s_flush(f);
    return rc;
}

static int s_close(sqlite3_file *p)
{
    wfile_t *f = (wfile_t *)p;
    if (f->peer) { /* a WAL left without its database file gathers no more */
        f->peer->peer = NULL;
        f->peer->wal = false;
    }
    int rc = s_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int s_read(sqlite3_file *p, void *b, int n, sqlite3_int64 off)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xRead(s_real(p), b, n, off);
}

static int s_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xTruncate(s_real(p), size);
}

static int s_sync(sqlite3_file *p, int flags)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xSync(s_real(p), flags);
}

static int s_size(sqlite3_file *p, sqlite3_int64 *size)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xFileSize(s_real(p), size);
}

static int s_lock(sqlite3_file *p, int level)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xLock(s_real(p), level);
}

static int s_unlock(sqlite3_file *p, int level)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xUnlock(s_real(p), level);
}

static int s_reserved(sqlite3_file *p, int *out)
{
    return s_real(p)->pMethods->xCheckReservedLock(s_real(p), out);
}

static int s_control(sqlite3_file *p, int op, void *arg)
{
    FLUSH_FIRST(p);
    return s_real(p)->pMethods->xFileControl(s_real(p), op, arg);
}

/* SQLite asks a WAL its sector size only to pad a commit to a sector
 * (synchronous=FULL without powersafe overwrite), splitting a frame
 * around a sync: gathering then could hold back the end of the commit, so
 * this file writes through from now on. */
static int s_sector(sqlite3_file *p)
{
    wfile_t *f = (wfile_t *)p;
    f->wal = false; /* anything gathered goes before the next write (s_write) */
    return f->real->pMethods->xSectorSize(f->real);
}

static int s_caps(sqlite3_file *p)
{
    return s_real(p)->pMethods->xDeviceCharacteristics(s_real(p));
}

/* The shared-memory calls concern the database file, never a WAL; an
 * underlying file of an older method version has none (nor xFetch). */
static int s_shm_map(sqlite3_file *p, int pg, int size, int extend, void volatile **out)
{
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    return m->iVersion >= 2 && m->xShmMap ? m->xShmMap(s_real(p), pg, size, extend, out)
                                          : SQLITE_IOERR_SHMMAP;
}

/* Offset 0 is SQLite's WAL write lock: its release ends a write
 * transaction. A commit leaves nothing gathered, so what is left belongs
 * to one rolled back (frames it spilled): dropped, never to be written
 * later over frames another connection commits at those offsets. */
static int s_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    wfile_t *f = (wfile_t *)p;
    if (offset == 0 && flags == (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE) && f->peer) {
        f->peer->len = 0;
        f->peer->commit_next = false;
    }
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    return m->iVersion >= 2 && m->xShmLock ? m->xShmLock(s_real(p), offset, n, flags)
                                           : SQLITE_IOERR_SHMLOCK;
}

static void s_shm_barrier(sqlite3_file *p)
{
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    if (m->iVersion >= 2 && m->xShmBarrier) /* else s_shm_map mapped nothing */
        m->xShmBarrier(s_real(p));
}

static int s_shm_unmap(sqlite3_file *p, int del)
{
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    return m->iVersion >= 2 && m->xShmUnmap ? m->xShmUnmap(s_real(p), del) : SQLITE_OK;
}

static int s_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
    FLUSH_FIRST(p);
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    *out = NULL; /* no mapping: SQLite reads the page instead */
    return m->iVersion >= 3 && m->xFetch ? m->xFetch(s_real(p), off, n, out)
                                         : SQLITE_OK;
}

static int s_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page)
{
    const sqlite3_io_methods *m = s_real(p)->pMethods;
    return m->iVersion >= 3 && m->xUnfetch ? m->xUnfetch(s_real(p), off, page)
                                           : SQLITE_OK;
}

/* Every call on our files, each passing on to the underlying file. */
static const sqlite3_io_methods s_io = {.iVersion = 3,
                                        .xClose = s_close,
                                        .xRead = s_read,
                                        .xWrite = s_write,
                                        .xTruncate = s_truncate,
                                        .xSync = s_sync,
                                        .xFileSize = s_size,
                                        .xLock = s_lock,
                                        .xUnlock = s_unlock,
                                        .xCheckReservedLock = s_reserved,
                                        .xFileControl = s_control,
                                        .xSectorSize = s_sector,
                                        .xDeviceCharacteristics = s_caps,
                                        .xShmMap = s_shm_map,
                                        .xShmLock = s_shm_lock,
                                        .xShmBarrier = s_shm_barrier,
                                        .xShmUnmap = s_shm_unmap,
                                        .xFetch = s_fetch,
                                        .xUnfetch = s_unfetch};

static int s_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags,
                  int *out)
{
    (void)vfs;
    wfile_t *f = (wfile_t *)p;
    *f = (wfile_t){.real = (sqlite3_file *)(f + 1)};
    int rc = s_base->xOpen(s_base, name, f->real, flags, out);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        if (f->real->pMethods) /* SQLite closes no file that failed to open */
            f->real->pMethods->xClose(f->real);
        p->pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    p->pMethods = &s_io;
    if (f->wal) { /* tie it to its database file, whose locks end transactions */
        wfile_t *db = (wfile_t *)sqlite3_database_file_object(name);
        if (db && db->base.pMethods == &s_io) {
            db->peer = f;
            f->peer = db;
        } else {
            f->wal = false; /* never gathered without that tie */
        }
    }
    return SQLITE_OK;
}

static void s_init(void)
{
    s_base = sqlite3_vfs_find(NULL);
    if (!s_base || s_base->iVersion < 1)
        return;
    s_vfs = *s_base; /* every call but xOpen goes to the default VFS as is */
    s_vfs.zName = SQLWAL_NAME;
    s_vfs.szOsFile = (int)sizeof(wfile_t) + s_base->szOsFile;
    s_vfs.xOpen = s_open;
    s_vfs.pNext = NULL;
    s_ready = sqlite3_vfs_register(&s_vfs, 0) == SQLITE_OK;
}

const char *sqlwal_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_init);
    return s_ready ? SQLWAL_NAME : NULL;
}
