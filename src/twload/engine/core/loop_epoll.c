/* The epoll backend: edge-triggered, one epoll_ctl per connection.
 *
 * A connection is registered once, after connect() and the first write: EPOLLIN | EPOLLRDHUP
 * (plus EPOLLOUT while a connect or a write waits). Edge-triggered, so a read that returns
 * less than the buffer means the receive queue is empty (net/ipv4/tcp.c: tcp_recvmsg_locked
 * copies until the queue runs dry) and no EAGAIN read is needed; EPOLLRDHUP says the FIN has
 * arrived (net/ipv4/tcp.c: tcp_poll sets EPOLLRDHUP on RCV_SHUTDOWN), which spares the read
 * that would return 0.
 *
 * The work that ends and begins short connections waits for the end of each turn of the loop
 * (run_pending, after every event of the turn is handled) and is then done in three runs: every
 * close, then every socket(), then each connect with its first write and its epoll_ctl. Over
 * loopback the client's connect() runs the whole handshake, and the ACK that completes it wakes
 * the server's listener in our context (net/ipv4/tcp_minisocks.c, Linux 6.x: tcp_child_process ->
 * parent->sk_data_ready, i.e. sock_def_readable); connects one after another find the server still
 * awake from the first, where connects spread between closes and reads each woke a sleeping server
 * (waking a task on an idle CPU costs an inter-processor interrupt, dear in a VM). Measured (issue
 * #13's protocol: pinned, 50 short connections against nginx, alternated runs of 5 s, 2026-12-01):
 * 1.06x -> 1.28-1.42x wrk's req/s, 0.93x -> 0.71-0.80x its CPU per request; perf: 64 -> 44 µs per
 * request, the wake-up inside connect() 8.0 -> 1.6 µs. A connect keeps its first write beside it:
 * all connects, then all writes, measured 1.10x, since the server then woke again for each request.
 */
#define _GNU_SOURCE
#include "core.h"
#include "h2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 512
/* Reads of one connection per turn of the loop (of the core's 64 KiB buffer: 512 KiB). A body
   streamed faster than it is read would otherwise keep every recv full, and the loop never got
   back to its timers (--timeout, the run's end) or to its other connections. */
#define READS_PER_TURN 8

typedef struct {
    int32_t slot;
    uint32_t gen;  /* the connection it was queued for: a slot closed and opened again is another */
} queued;

typedef struct {
    int epfd;
    int pwait2;  /* epoll_pwait2 works here */
    /* the turn's deferred work (run_pending); a full list falls back to doing it at once */
    int *closing;        /* fds to close */
    int n_closing, cap_closing;
    queued *sockets;     /* connections waiting for their socket() */
    queued *connects;    /* connections waiting for their connect() */
    int n_sockets, n_connects, cap_queued;
    /* connections whose reads stopped at READS_PER_TURN with more waiting: edge-triggered epoll
       reports them again only when more arrives, which a sender held back by the window never
       does, so they read on at the end of the turn (read_on), and the loop does not wait in
       epoll while any are left. Each is on one list at most (F_UNREAD): the one filling, or the
       one being read on. */
    queued *unread, *unread_now;
    int n_unread, n_unread_now, cap_unread;
    /* https: connections whose peer sent close_notify without its FIN, in the order they did (so in the
       order of `answer_at`); one entry per connection at most (tls_conn.notified), cap_unread entries */
    queued *answer;
    int64_t *answer_at;
    int n_answer;
    struct epoll_event events[EVENTS];
} epoll_state;

static uint64_t tag(const core *k, const conn *c) { return (uint64_t)(c - k->conns) | ((uint64_t)c->gen << 32); }

static int ep_init(core *k) {
    epoll_state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = errno;
        free(s);
        return -err;
    }
    s->pwait2 = 1;
    s->cap_closing = 2 * k->capacity + EVENTS;
    s->cap_queued = k->capacity;
    s->cap_unread = 2 * k->capacity;
    s->closing = malloc((size_t)s->cap_closing * sizeof *s->closing);
    s->sockets = malloc((size_t)s->cap_queued * sizeof *s->sockets);
    s->connects = malloc((size_t)s->cap_queued * sizeof *s->connects);
    s->unread = malloc((size_t)s->cap_unread * sizeof *s->unread);
    s->unread_now = malloc((size_t)s->cap_unread * sizeof *s->unread_now);
    s->answer = malloc((size_t)s->cap_unread * sizeof *s->answer);
    s->answer_at = malloc((size_t)s->cap_unread * sizeof *s->answer_at);
    if (!s->closing || !s->sockets || !s->connects || !s->unread || !s->unread_now || !s->answer || !s->answer_at) {
        free(s->answer);
        free(s->answer_at);
        free(s->closing);
        free(s->sockets);
        free(s->connects);
        free(s->unread);
        free(s->unread_now);
        close(s->epfd);
        free(s);
        return -ENOMEM;
    }
    k->io_state = s;
    return 0;
}

static void close_queued(epoll_state *s) {
    for (int i = 0; i < s->n_closing; i++) close(s->closing[i]);  /* also leaves the epoll set: not shared */
    s->n_closing = 0;
}

static void ep_fini(core *k) {
    epoll_state *s = k->io_state;
    close_queued(s);  /* core_fini closed every connection: queued here */
    close(s->epfd);
    free(s->closing);
    free(s->sockets);
    free(s->connects);
    free(s->unread);
    free(s->unread_now);
    free(s->answer);
    free(s->answer_at);
    free(s);
    k->io_state = NULL;
}

/* Write what is left of c's request. 0: all out or waiting for EPOLLOUT; -errno: failed. */
static int write_request(core *k, conn *c) {
    uint32_t len;
    const char *req = core_request(k, c, &len);
    while (c->woff < len || !(c->flags & F_IN_FLIGHT)) {
        int64_t t = now_ns();
        ssize_t n;
        if (k->tls) {
            size_t done = 0;
            int error = 0;
            int r = tls_write(k, c, req + c->woff, len - c->woff, &done, &error);
            if (r == TLS_FAILED) return -error;
            if (r != TLS_DATA) return 1;  /* WANT_WRITE (or WANT_READ: the session's own traffic first) */
            n = (ssize_t)done;
        } else {
            n = send(c->fd, req + c->woff, len - c->woff, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 1;
            return -errno;
        }
        if (!(c->flags & F_IN_FLIGHT)) core_begin(k, c, t);  /* the clock starts with the first byte out */
        core_sent(k, c, (size_t)n);
        if (c->woff < len) core_nodelay(c);  /* a short write: the remainder must not wait for an ACK */
    }
    return 0;
}

static void watch_out(core *k, conn *c) {
    if (c->flags & F_WATCH_OUT) return;
    epoll_state *s = k->io_state;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT | EPOLLET, .data.u64 = tag(k, c)};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->flags |= F_WATCH_OUT;
}

static queued queue_entry(const core *k, const conn *c) { return (queued){(int32_t)(c - k->conns), c->gen}; }

/* c is still the connection the entry was queued for */
static int current(const core *k, queued q) { return k->conns[q.slot].gen == q.gen; }

/* https: the answer queue without the entries of connections that have closed since (their FIN came
   first), in its order; entries wait out their time otherwise, and a full queue answers at once */
static void drop_closed_answers(core *k) {
    epoll_state *s = k->io_state;
    int kept = 0;
    for (int i = 0; i < s->n_answer; i++) {
        if (!current(k, s->answer[i]) || k->conns[s->answer[i].slot].fd < 0) continue;
        s->answer[kept] = s->answer[i];
        s->answer_at[kept++] = s->answer_at[i];
    }
    s->n_answer = kept;
}

/* c's connect, its first write and its registration */
static int connect_now(core *k, conn *c) {
    epoll_state *s = k->io_state;
    c->t_start = now_ns();  /* the connect time is the connect's own, not its wait in the queue */
    socklen_t len;
    const struct sockaddr *to = core_address(k, c, &len);
    if (connect(c->fd, to, len) < 0 && errno != EINPROGRESS) return -errno;
    if (k->tls) {
        /* https: the request waits for the handshake, which the connection's first EPOLLOUT starts
           (handshake) */
        int r = tls_begin(k, c);
        if (r < 0) return r;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT | EPOLLET, .data.u64 = tag(k, c)};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) return -errno;
        c->flags |= F_WATCH_OUT;
        return 0;
    }
    /* Write at once: over loopback the handshake is done by the time connect() returns, and a
       write to a socket still in SYN_SENT just says EAGAIN (net/core/stream.c:
       sk_stream_wait_connect with a zero timeout). */
    if ((c->flags & F_HAS_REQUEST) && !k->h2) {  /* HTTP/2: the session starts at the connect's EPOLLOUT */
        uint32_t len;
        const char *req = core_request(k, c, &len);
        int64_t t = now_ns();
        ssize_t n = send(c->fd, req, len, MSG_NOSIGNAL);
        if (n >= 0) {
            core_connected(k, c, now_ns());
            core_begin(k, c, t);
            core_sent(k, c, (size_t)n);
            if ((uint32_t)n < len) core_nodelay(c);  /* a short write: the remainder must not wait for an ACK */
        } else if (errno != EAGAIN) {
            return -errno;  /* e.g. ECONNREFUSED: the RST came back within connect() */
        }
    }
    int waiting = c->state == C_CONNECTING || c->state == C_SENDING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (waiting ? EPOLLOUT : 0),
                             .data.u64 = tag(k, c)};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) return -errno;
    if (waiting) c->flags |= F_WATCH_OUT;
    return 0;
}

/* the slot's connect waits for the end of the turn */
static int ep_open(core *k, conn *c) {
    epoll_state *s = k->io_state;
    if (s->n_connects == s->cap_queued) return connect_now(k, c);
    s->connects[s->n_connects++] = queue_entry(k, c);
    return 0;
}

/* so does its socket (core_open: 0 queued, core_socket_made follows; else socket() at once) */
static int ep_socket(core *k, conn *c) {
    epoll_state *s = k->io_state;
    if (s->n_sockets == s->cap_queued) return -ENOBUFS;
    s->sockets[s->n_sockets++] = queue_entry(k, c);
    return 0;
}

/* The turn's closes, then its sockets, then its connects (see the top of this file). Each may
   queue more of the others (a failed connect frees its slot, a socket made queues its connect),
   so it goes round until all three lists are empty. */
static void run_pending(core *k) {
    epoll_state *s = k->io_state;
    while (s->n_closing || s->n_sockets || s->n_connects) {
        close_queued(s);
        for (int i = 0; i < s->n_sockets; i++) {
            conn *c = &k->conns[s->sockets[i].slot];
            if (!current(k, s->sockets[i]) || !(c->flags & F_SOCKET_PENDING)) continue;
            core_socket_made(k, c, core_socket(k, c));
        }
        s->n_sockets = 0;
        for (int i = 0; i < s->n_connects; i++) {  /* a failure may queue more: n_connects grows */
            conn *c = &k->conns[s->connects[i].slot];
            if (!current(k, s->connects[i]) || c->fd < 0 || c->state != C_CONNECTING) continue;
            int r = connect_now(k, c);
            if (r < 0) core_connect_failed(k, c, -r);
        }
        s->n_connects = 0;
    }
}

/* ---- HTTP/2 (h2.c): the session's bytes, written as the request's are. C_SENDING while some wait
   for EPOLLOUT, else C_READING. ---- */
static void h2_write(core *k, conn *c) {
    uint32_t gen = c->gen;
    for (;;) {
        size_t len = 0;
        const uint8_t *out = h2_output(k, c, &len);
        if (c->gen != gen) return;  /* the session failed: c is closed */
        if (!out || len == 0) {
            c->state = C_READING;
            return;
        }
        ssize_t n;
        int err = 0;
        if (k->tls) {
            size_t done = 0;
            int r = tls_write(k, c, (const char *)out, len, &done, &err);
            n = r == TLS_DATA ? (ssize_t)done : -1;
            if (r == TLS_WAIT_READ || r == TLS_WAIT_WRITE) err = EAGAIN;
        } else {
            n = send(c->fd, out, len, MSG_NOSIGNAL);
            if (n < 0) err = errno;
        }
        h2_wrote(k, c, n > 0 ? (size_t)n : 0);  /* what did not go out waits in the session's pending */
        if (c->gen != gen) return;
        if (n < 0 && err == EINTR) continue;
        if (n < 0 && err != EAGAIN) {
            k->h2->ended(k, c, err);
            return;
        }
        if (n < 0 || (size_t)n < len) {
            c->state = C_SENDING;
            watch_out(k, c);
            return;
        }
    }
}

static void ep_send(core *k, conn *c) {
    if (k->h2) {  /* HTTP/2 */
        h2_write(k, c);
        return;
    }
    uint32_t gen = c->gen;
    int r = write_request(k, c);
    if (r < 0) core_fail(k, c, -r);
    else if (r > 0 && c->gen == gen) watch_out(k, c);
}

/* at the end of the turn: the fd stays in the epoll set until then, and its events are stale (gen) */
static void ep_close(core *k, conn *c) {
    epoll_state *s = k->io_state;
    if (k->tls) tls_end(k, c);  /* its close_notify (or not: see tls_end), then the SSL goes */
    if (s->n_closing == s->cap_closing) close_queued(s);
    s->closing[s->n_closing++] = c->fd;
}

/* c's reads stop for this turn: 1 if the next turn reads on (c is, or now is, on a list); 0 if it
   must read on now (the list is full: it holds two entries per connection, for a slot whose last
   connection's entry is still on it; were it ever full, reads go on unbounded, as before the bound) */
static int read_later(core *k, conn *c) {
    epoll_state *s = k->io_state;
    if (c->flags & F_UNREAD) return 1;
    if (s->n_unread == s->cap_unread) return 0;
    s->unread[s->n_unread++] = queue_entry(k, c);
    c->flags |= F_UNREAD;
    return 1;
}

static void readable(core *k, conn *c, uint32_t events) {
    /* The peer's FIN came with these bytes: a response complete in them must not reuse the
       connection (response_done looks at F_PEER_CLOSED), or the next request would go out on a
       closed connection and count an error the server never caused. */
    if (events & (EPOLLRDHUP | EPOLLHUP)) c->flags |= F_PEER_CLOSED;
    for (int reads = 0;; reads++) {
        if (reads == READS_PER_TURN && read_later(k, c)) return;
        ssize_t n = recv(c->fd, k->rbuf, k->rbuf_len, 0);
        if (n > 0) {
            if (core_received(k, c, k->rbuf, (size_t)n)) return;  /* closed (and maybe reused) */
            if ((size_t)n < k->rbuf_len) {
                if (events & (EPOLLRDHUP | EPOLLHUP)) core_peer_closed(k, c);
                return;
            }
            continue;
        }
        if (n == 0) {
            core_peer_closed(k, c);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        core_read_failed(k, c, errno);  /* e.g. ECONNRESET */
        return;
    }
}

/* https: readable() with SSL_read, which hands over at most one record (16 KiB) a call, so its size
   says nothing about the queue: it reads on until OpenSSL wants more from the socket, or until
   OpenSSL's own last read of the socket came back short with nothing left over (tls_drained), as
   readable() stops at a short recv. That spares the read() that only says EAGAIN, one per response on
   keep-alive. Not when the event brought the FIN: its EOF (without close_notify) is only learnt by
   reading it, and no edge follows it. */
static void tls_readable(core *k, conn *c, uint32_t events) {
    int fin = (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
    if (fin) c->flags |= F_PEER_CLOSED;
    for (int reads = 0;; reads++) {
        if (reads == READS_PER_TURN && read_later(k, c)) return;
        size_t n = 0;
        int error = 0;
        switch (tls_read(k, c, k->rbuf, k->rbuf_len, &n, &error)) {
        case TLS_DATA:
            if (core_received(k, c, k->rbuf, n)) return;  /* closed (and maybe reused) */
            if (!fin && tls_drained(k, c)) return;
            continue;
        case TLS_CLOSED:  /* the peer's close_notify, or its EOF without one */
            core_peer_closed(k, c);
            return;
        case TLS_WAIT_WRITE:
            watch_out(k, c);
            return;
        case TLS_NOTIFIED: {  /* answered after tls_answer_delay unless its FIN comes first */
            epoll_state *s = k->io_state;
            if (s->n_answer == s->cap_unread) drop_closed_answers(k);
            if (s->n_answer < s->cap_unread) {
                /* due no earlier than the entry before it (answer_due reads the queue in order): a
                   delay that shrank (tls_answer_delay) waits behind the longer one queued before it */
                int64_t at = now_ns() + tls_answer_delay(k);
                if (s->n_answer && at < s->answer_at[s->n_answer - 1]) at = s->answer_at[s->n_answer - 1];
                s->answer[s->n_answer] = queue_entry(k, c);
                s->answer_at[s->n_answer++] = at;
            } else {
                tls_answer_close(k, c);  /* the bound only: one entry per open connection at most, cap_unread twice the slots */
            }
            return;
        }
        case TLS_FAILED:
            core_read_failed(k, c, error);  /* e.g. ECONNRESET, or tls_error */
            return;
        default:  /* TLS_WAIT_READ: the socket is drained */
            return;
        }
    }
}

/* https: the handshake goes on; once done, the connection is connected (its TCP connect and its
   handshake timed apart) and its request goes out. */
static void handshake(core *k, conn *c, uint32_t events) {
    uint32_t gen = c->gen;
    if (events & EPOLLERR) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            core_connect_failed(k, c, err);
            return;
        }
    }
    int r = tls_handshake(k, c, now_ns());
    if (r < 0) {
        core_connect_failed(k, c, -r);
        return;
    }
    if (r == 0) return;
    int64_t tcp = tls_tcp_done(k, c);
    core_record_tls(k, now_ns() - tcp);
    if (k->h2 && !tls_alpn_h2(k, c)) {  /* --http2: the server did not pick h2 */
        core_connect_failed(k, c, E_H2_NOT_NEGOTIATED);
        return;
    }
    if (!core_connected(k, c, tcp) || c->gen != gen) return;  /* closed, or idle (open loop) */
    ep_send(k, c);
    if (c->gen != gen) return;
    /* the handshake's last read took what the socket held: what follows (the response, a ticket) is
       an edge of its own (tls_readable) */
    int fin = (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
    if (fin || ((events & EPOLLIN) && !tls_drained(k, c))) tls_readable(k, c, events);
}

static void handle(core *k, conn *c, uint32_t events) {
    uint32_t gen = c->gen;
    if (k->tls) {
        if (c->state == C_CONNECTING) {
            handshake(k, c, events);
            return;
        }
        if (c->state == C_SENDING && (events & EPOLLOUT)) {
            ep_send(k, c);
            if (c->gen != gen) return;
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) tls_readable(k, c, events);
        return;
    }
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            core_connect_failed(k, c, err ? err : ECONNREFUSED);
            return;
        }
        if (!(events & EPOLLOUT)) return;
        if (!core_connected(k, c, now_ns()) || c->gen != gen) return;  /* closed, or idle (open loop) */
        ep_send(k, c);
        if (c->gen != gen) return;
    } else if (c->state == C_SENDING && (events & EPOLLOUT)) {
        ep_send(k, c);
        if (c->gen != gen) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable(k, c, events);
}

/* After the turn's events, the connections whose reads stopped at the bound read on, each once more
   at most (one with an event this turn has read twice then); those stopped again wait for the end
   of the next turn, so the timers run in between. */
static void read_on(core *k) {
    epoll_state *s = k->io_state;
    queued *now = s->unread;
    s->unread = s->unread_now;  /* this turn's stops go on the other list */
    s->unread_now = now;
    s->n_unread_now = s->n_unread;
    s->n_unread = 0;
    for (int i = 0; i < s->n_unread_now; i++) {
        conn *c = &k->conns[now[i].slot];
        if (!current(k, now[i]) || c->fd < 0 || !(c->flags & F_UNREAD)) continue;
        c->flags &= (uint16_t)~F_UNREAD;
        uint32_t events = EPOLLIN | ((c->flags & F_PEER_CLOSED) ? EPOLLRDHUP : 0);
        if (k->tls) tls_readable(k, c, events);
        else readable(k, c, events);
    }
    s->n_unread_now = 0;
}

/* https: the close_notify answers that are due (tls_answer_close) */
static void answer_due(core *k, int64_t now) {
    epoll_state *s = k->io_state;
    int i = 0;
    for (; i < s->n_answer && s->answer_at[i] <= now; i++) {
        conn *c = &k->conns[s->answer[i].slot];
        if (current(k, s->answer[i]) && c->fd >= 0) tls_answer_close(k, c);
    }
    if (i == 0) return;
    s->n_answer -= i;
    memmove(s->answer, s->answer + i, (size_t)s->n_answer * sizeof *s->answer);
    memmove(s->answer_at, s->answer_at + i, (size_t)s->n_answer * sizeof *s->answer_at);
}

static int ep_poll(core *k, int64_t until) {
    epoll_state *s = k->io_state;
    run_pending(k);  /* what the timers queued (core_tick: backoff, open-loop connects, the start) */
    int64_t now = now_ns();
    answer_due(k, now);
    int64_t wake = s->n_unread ? now : core_next_timer(k, now, until);  /* reads left over: no wait */
    if (s->n_answer && s->answer_at[0] < wake) wake = s->answer_at[0] > now ? s->answer_at[0] : now;
    int n = -1;
    if (s->pwait2) {
        /* ns timeouts (Linux 5.11+): open-loop send times are not rounded up to a millisecond */
        struct timespec ts = {(wake - now) / 1000000000LL, (wake - now) % 1000000000LL};
        n = epoll_pwait2(s->epfd, s->events, EVENTS, &ts, NULL);
        if (n < 0 && errno == ENOSYS) s->pwait2 = 0;
    }
    if (!s->pwait2) n = epoll_wait(s->epfd, s->events, EVENTS, (int)((wake - now + 999999) / 1000000));
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t data = s->events[i].data.u64;
        conn *c = &k->conns[(uint32_t)data];
        if (c->gen != (uint32_t)(data >> 32) || c->fd < 0) continue;  /* closed earlier in this batch */
        handle(k, c, s->events[i].events);
    }
    read_on(k);
    run_pending(k);
    return 0;
}

static void ep_flush(core *k) { run_pending(k); }

const backend epoll_backend = {
    .name = "epoll", .init = ep_init, .fini = ep_fini, .open = ep_open, .socket = ep_socket, .sets_linger = NULL,
    .send = ep_send, .close = ep_close, .flush = ep_flush, .poll = ep_poll,
};
