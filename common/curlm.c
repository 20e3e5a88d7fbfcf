/* curlm.c - libcurl's multi-socket API driven by the worker's loop.
 * See curlm.h for the design. */
#include "curlm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "list.h"
#include "log.h"

typedef struct xfer {
    CURL *easy;
    curlm_done_fn done;
    void *ud;
    bool aborted;
    bool removed;   /* out of the multi handle already */
    list_t pending; /* curlm.pending once aborted */
} xfer_t;

struct curlm {
    loop_t *loop;
    CURLM *multi;
    loop_timer_t *timer;
    list_t pending; /* aborted xfer_t, for the top of the loop */
    struct {
        unsigned char state;
        bool owned; /* opened by s_open_cb, closed by s_close_cb */
        unsigned ev;
    } *fds;
    size_t nfds;
    CURL *spare[CURLM_SPARE_EASY]; /* easy handles given back, for reuse */
    size_t nspare;
};

static void s_check_done(curlm_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(m->multi, easy);
        x->removed = true;
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL); /* x is freed below */
        if (x->aborted)
            continue; /* freed by s_flush_pending */
        curlm_done_fn done = x->done;
        void *ud = x->ud;
        free(x);
        done(easy, rc, ud);
    }
}

static void s_action(curlm_t *m, curl_socket_t fd, int flags)
{
    int running;
    CURLMcode rc = curl_multi_socket_action(m->multi, fd, flags, &running);
    if (rc != CURLM_OK)
        log_warn("curl_multi_socket_action: %s", curl_multi_strerror(rc));
    s_check_done(m);
}

/* Our registration of each socket curl uses, by fd. A connection socket
 * curl stops watching between transfers (back in the cache) stays
 * registered, "parked", so that the next transfer on it costs no
 * epoll_ctl. Only sockets curl opened through s_open_cb (marked `owned`)
 * are parked: those it closes through s_close_cb, which drops them; its
 * other sockets (the threaded resolver's socketpair) are closed behind our
 * back, so they are unregistered at REMOVE as usual. */
enum { FD_NONE = 0, FD_ACTIVE = 1, FD_PARKED = 2 };

static void s_fd_grow(curlm_t *m, int fd)
{
    if ((size_t)fd >= m->nfds) {
        size_t n = m->nfds ? m->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        m->fds = xrealloc(m->fds, n * sizeof *m->fds);
        memset(m->fds + m->nfds, 0, (n - m->nfds) * sizeof *m->fds);
        m->nfds = n;
    }
}

static void s_fd_set(curlm_t *m, int fd, unsigned char state, unsigned ev)
{
    s_fd_grow(m, fd);
    m->fds[fd].state = state;
    m->fds[fd].ev = ev;
}

static unsigned char s_fd_state(const curlm_t *m, int fd)
{
    return (size_t)fd < m->nfds ? m->fds[fd].state : FD_NONE;
}

static void s_flush_pending(curlm_t *m);

static void s_on_fd(loop_t *loop, int fd, unsigned ev, void *ud)
{
    curlm_t *m = ud;
    s_flush_pending(m);
    if (s_fd_state(m, fd) == FD_PARKED) {
        /* An idle cached connection stirred (the server closed it): stop
         * watching; curl finds it dead when it next looks. */
        loop_del_fd(loop, fd);
        s_fd_set(m, fd, FD_NONE, 0);
        return;
    }
    int flags = 0;
    if (ev & LOOP_READ)
        flags |= CURL_CSELECT_IN;
    if (ev & LOOP_WRITE)
        flags |= CURL_CSELECT_OUT;
    if (ev & LOOP_ERROR)
        flags |= CURL_CSELECT_ERR;
    s_action(m, fd, flags);
}

static int s_socket_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
    UNUSED(easy);
    UNUSED(sockp);
    curlm_t *m = ud;
    unsigned char state = s_fd_state(m, fd);
    if (what == CURL_POLL_REMOVE) {
        if (state != FD_ACTIVE)
            return 0;
        if (!m->fds[fd].owned || (m->fds[fd].ev & LOOP_WRITE)) {
            loop_del_fd(m->loop, fd); /* not ours to park, or would fire at once */
            s_fd_set(m, fd, FD_NONE, 0);
        } else {
            m->fds[fd].state = FD_PARKED;
        }
        return 0;
    }
    unsigned ev = 0;
    if (what & CURL_POLL_IN)
        ev |= LOOP_READ;
    if (what & CURL_POLL_OUT)
        ev |= LOOP_WRITE;
    int rc = 0;
    if (state == FD_NONE)
        rc = loop_add_fd(m->loop, fd, ev, s_on_fd, m);
    else if (m->fds[fd].ev != ev)
        rc = loop_mod_fd(m->loop, fd, ev);
    if (rc == -ENOENT || rc == -EEXIST) {
        /* Our record and the kernel's disagree (a socket closed behind our
         * back and its number reused): start afresh. */
        loop_del_fd(m->loop, fd);
        rc = loop_add_fd(m->loop, fd, ev, s_on_fd, m);
    }
    if (rc < 0) {
        log_err(-rc, "curlm: watching socket %d", fd);
        return -1;
    }
    s_fd_set(m, fd, FD_ACTIVE, ev);
    return 0;
}

static curl_socket_t s_open_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    curlm_t *m = ud;
    UNUSED(purpose);
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    s_fd_grow(m, fd);
    m->fds[fd].owned = true;
    return fd;
}

static int s_close_cb(void *ud, curl_socket_t fd)
{
    curlm_t *m = ud;
    if (s_fd_state(m, fd) != FD_NONE)
        loop_del_fd(m->loop, fd);
    if ((size_t)fd < m->nfds) {
        m->fds[fd].state = FD_NONE;
        m->fds[fd].owned = false;
    }
    return close(fd);
}

static void s_on_timer(loop_t *loop, loop_timer_t *t, void *ud)
{
    UNUSED(loop);
    UNUSED(t);
    curlm_t *m = ud;
    m->timer = NULL; /* one-shot: the loop frees it after this callback */
    s_flush_pending(m);
    s_action(m, CURL_SOCKET_TIMEOUT, 0);
}

/* Must not call libcurl: only (re)arms our timer. */
static int s_timer_cb(CURLM *multi, long timeout_ms, void *ud)
{
    UNUSED(multi);
    curlm_t *m = ud;
    loop_cancel_timer(m->loop, &m->timer);
    if (timeout_ms >= 0)
        m->timer = loop_add_timer(m->loop, (uint64_t)timeout_ms, 0, s_on_timer, m);
    return 0;
}

static size_t s_sink(char *p, size_t size, size_t n, void *ud)
{
    UNUSED(p);
    UNUSED(size);
    UNUSED(n);
    UNUSED(ud);
    return 0; /* any byte after an abort fails the transfer */
}

/* Carries out the aborts recorded from other libraries' callbacks. Runs
 * before anything lets curl run a transfer (our fd and timer callbacks)
 * and before the loop sleeps: an aborted transfer must never run again,
 * since what it reads (its request body) may be gone. */
static void s_flush_pending(curlm_t *m)
{
    list_t *it;
    while ((it = list_pop_front(&m->pending))) {
        xfer_t *x = list_item(it, xfer_t, pending);
        if (x->easy && !x->removed)
            curl_multi_remove_handle(m->multi, x->easy);
        if (x->easy)
            curl_easy_cleanup(x->easy);
        free(x);
    }
}

static int64_t s_before_sleep(loop_t *loop, void *ud)
{
    UNUSED(loop);
    s_flush_pending(ud);
    return -1;
}

curlm_t *curlm_new(loop_t *loop, long max_total, long max_cached)
{
    curlm_t *m = xcalloc(1, sizeof *m);
    m->loop = loop;
    list_init(&m->pending);
    m->multi = curl_multi_init();
    if (!m->multi || loop_add_before_sleep(loop, s_before_sleep, m) < 0) {
        if (m->multi)
            curl_multi_cleanup(m->multi);
        free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total);
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, max_cached);
    return m;
}

int curlm_add(curlm_t *m, CURL *easy, curlm_done_fn done, void *ud)
{
    xfer_t *x = xcalloc(1, sizeof *x);
    x->easy = easy;
    x->done = done;
    x->ud = ud;
    char *was = NULL; /* a transfer's own, when the handle is added twice */
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &was);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, s_open_cb);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, m);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, s_close_cb);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, m);
    CURLMcode rc = curl_multi_add_handle(m->multi, easy);
    if (rc != CURLM_OK) {
        log_warn("curl_multi_add_handle: %s", curl_multi_strerror(rc));
        curl_easy_setopt(easy, CURLOPT_PRIVATE, was);
        free(x);
        return -EINVAL;
    }
    return 0;
}

void curlm_abort(curlm_t *m, CURL *easy)
{
    xfer_t *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    VP_ASSERT(x != NULL && !x->aborted);
    x->aborted = true;
    list_push_back(&m->pending, &x->pending); /* once: aborted only once */
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_sink);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s_sink);
}

CURL *curlm_easy(curlm_t *m)
{
    return m->nspare ? m->spare[--m->nspare] : curl_easy_init();
}

void curlm_easy_release(curlm_t *m, CURL *easy)
{
    if (!easy)
        return;
    if (m->nspare == CURLM_SPARE_EASY) {
        curl_easy_cleanup(easy);
        return;
    }
    curl_easy_reset(easy);
    m->spare[m->nspare++] = easy;
}

void curlm_destroy(curlm_t **mp)
{
    curlm_t *m = mp ? *mp : NULL;
    if (!m)
        return;
    s_flush_pending(m); /* finish queued aborts */
    loop_cancel_timer(m->loop, &m->timer);
    while (m->nspare)
        curl_easy_cleanup(m->spare[--m->nspare]);
    curl_multi_cleanup(m->multi); /* closes cached connections: s_close_cb */
    for (size_t fd = 0; fd < m->nfds; fd++)
        if (m->fds[fd].state != FD_NONE)
            loop_del_fd(m->loop, (int)fd);
    free(m->fds);
    free(m);
    *mp = NULL;
}
