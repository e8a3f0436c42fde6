/* The io_uring backend (liburing): the same connection logic as epoll, with the I/O submitted
 * in batches, so a whole short connection costs a share of one io_uring_enter (plus a plain
 * setsockopt for --close rst before Linux 6.7, socket() where the ring cannot make sockets, and
 * the bind() of --source).
 *
 * A socket is made through the ring (IORING_OP_SOCKET); its completion gives the fd, and the
 * connection is then a connect, and a send linked to a recv. The send is not linked to the
 * connect: the entries of a submit are issued in order, so it runs right after its connect,
 * which over loopback has done the whole handshake by then (a write to a socket still in
 * SYN_SENT just waits for POLLOUT: net/core/stream.c sk_stream_wait_connect). Linked, it ran in
 * task work after all of the submit's connects, each connect woke a server that had gone back to
 * sleep (the wake-up of nginx's listener in our connect, net/ipv4/tcp_minisocks.c
 * tcp_child_process -> sk_data_ready, 6.4 us a connection; 1.9 us now), and a short request cost
 * ~7 us more (perf, CPU 0, issue #13's protocol). So the connect's completion can come after the
 * recv's, or after a failed send's: whichever comes first says how the connect went
 * (completed). The send's success completion is suppressed (IOSQE_CQE_SKIP_SUCCESS, Linux
 * 5.17), so the ring posts the connect (for the connect time), the recv, and failures only; a
 * kept-alive connection's recv is multishot (queue_recv), armed once for all its responses.
 * Reads take a buffer from one ring of provided buffers shared by the worker
 * (io_uring_register_buf_ring, Linux 5.19), not one per connection; a recv that finds them all
 * taken waits for one (starve / feed_starved). A close is an ASYNC_CANCEL of whatever is pending
 * on the socket, hard linked to the CLOSE: a plain link would be cut when the cancel finds
 * nothing (-ENOENT), and a pending recv holds a reference to the file, so the socket would not
 * close (io_uring/cancel.c, io_uring/openclose.c). The latency clock of a request starts when it
 * is submitted to the kernel, not when it is queued here (on_connected: or when its handshake is
 * done, if that came later).
 */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define QUEUE_DEPTH 4096
#define BUF_GROUP 1
#define BUF_COUNT 64          /* power of two */
#define BUF_SIZE (16 * 1024)  /* 1 MiB of read buffers per worker */

/* OP_RSEND: a send from a slot's render buffer (a templated request, rewritten per request): unlike
   OP_SEND it posts its success too, for the kernel reads the buffer until it completes (see
   queue_request) */
enum { OP_CONNECT = 1, OP_SEND, OP_RECV, OP_CANCEL, OP_CLOSE, OP_SOCKET, OP_LINGER, OP_PROBE, OP_RSEND };

typedef struct {
    int slot;
    uint32_t gen;
} pending_begin;

typedef struct {
    int slot;
    uint32_t gen;
    struct io_uring_sqe *sqe;  /* its send entry, still ours until the submit */
} queued_request;

typedef struct {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_size;
    char *bufs;
    queued_request *begins; /* requests queued since the last submit: their clocks start at submit */
    int n_begins, cap_begins;
    int connect_sends;      /* requests queued beside their connects since the last submit */
    int64_t inline_submit;  /* the time of this turn's submit, if its connects were done by its end */
    int ring_sockets;       /* IORING_OP_SOCKET works here (Linux 5.19): sockets are made through the ring */
    int ring_linger;        /* --close rst: SO_LINGER is set through the ring (Linux 6.7; see prep_linger) */
    int multishot;          /* reused connections keep one recv armed (see queue_recv; Linux 6.0) */
    struct linger linger;   /* {1, 0}, read by the kernel when a linger entry runs */
    int free_bufs;          /* read buffers in the ring, not taken by a completion being handled */
    pending_begin *starved; /* connections whose recv found no buffer (-ENOBUFS), oldest first (FIFO) */
    int starved_head, n_starved, starved_cap;
} uring_state;

static uint64_t tag(const core *k, const conn *c, int op) {
    return (uint64_t)(c - k->conns) | ((uint64_t)(c->gen & 0xffffff) << 32) | ((uint64_t)op << 56);
}

/* the requests queued since the last submit start their clocks now, at their submit */
static int64_t start_clocks(core *k) {
    uring_state *s = k->io_state;
    int64_t now = now_ns();
    for (int i = 0; i < s->n_begins; i++) {
        conn *c = &k->conns[s->begins[i].slot];
        if (c->gen != s->begins[i].gen) continue;
        c->flags &= (uint16_t)~F_UNSUBMITTED;
        if (c->flags & F_IN_FLIGHT) c->t_start = now;
    }
    s->n_begins = 0;
    s->connect_sends = 0;
    return now;
}

static int submit(core *k) {
    uring_state *s = k->io_state;
    start_clocks(k);
    return io_uring_submit(&s->ring);
}

static struct io_uring_sqe *get_sqe(core *k) {
    uring_state *s = k->io_state;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {  /* the submission queue is full: hand it over and take a fresh entry */
        submit(k);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* three entries at once, so a link is never split by a submit in its middle */
static int reserve(core *k, unsigned n) {
    uring_state *s = k->io_state;
    if (io_uring_sq_space_left(&s->ring) < n) submit(k);
    return io_uring_sq_space_left(&s->ring) >= n ? 0 : -EBUSY;
}

/* The recv linked behind a request (`after_send`) waits for an answer that cannot be there yet:
   it goes straight to polling (IORING_RECVSEND_POLL_FIRST, Linux 5.19), without the attempt
   that would only say EAGAIN (io_uring/net.c io_recv).
   A connection that is reused (keep-alive) gets a multishot recv (IORING_RECV_MULTISHOT, Linux
   6.0): it stays armed and posts a completion for each arrival, flagged IORING_CQE_F_MORE while it
   stays (io_uring/net.c io_recv_finish), so a request costs its send alone, not also a recv entry
   and the poll it arms and tears down (io_uring/poll.c __io_arm_poll_handler). Measured (issue
   #13's protocol, keep-alive, 6 alternated rounds of 5 s, 2026-12-02): 0.87x -> 0.83x wrk's CPU
   per request. A short connection keeps the single-shot recv: a multishot one would still be
   armed at the close, which would then need an ASYNC_CANCEL (ur_close). */
static int queue_recv(core *k, conn *c, int after_send) {
    uring_state *s = k->io_state;
    struct io_uring_sqe *sqe = get_sqe(k);
    if (!sqe) return -EBUSY;  /* the ring took no entries even after a submit */
    if (s->multishot) io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);  /* len 0: the buffer's size */
    else io_uring_prep_recv(sqe, c->fd, NULL, BUF_SIZE, 0);
    if (after_send) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag(k, c, OP_RECV));
    c->flags |= F_RECV_PENDING;
    return 0;
}

/* c's next recv, on a connection that goes on reading; without one it could only wait for its
   timeout, so it ends now (a request in flight counts the error) */
static void rearm(core *k, conn *c) {
    if (queue_recv(k, c, 0) == 0) return;
    if (c->flags & F_IN_FLIGHT) core_fail(k, c, EBUSY);
    else core_close(k, c);
}

/* the request, linked to the recv of its response when `link` (the recv must be queued next);
   the clock starts at submit */
static void queue_request(core *k, conn *c, int link) {
    uring_state *s = k->io_state;
    uint32_t len;
    const char *req = core_request(k, c, &len);
    /* One entry per request queued since the last submit, and nothing else bounds how many those
       are (a connection closed before its submit leaves its entry behind, and its slot's next
       connection adds another): a full list is handed over first. That undoes no caller's
       reserve(), and what was queued before this entry is not linked to it. */
    if (s->n_begins == s->cap_begins) submit(k);
    struct io_uring_sqe *sqe = get_sqe(k);  /* reserved by the caller */
    /* MSG_WAITALL: a short send is retried in the kernel, not reported as done (Linux 5.18) */
    io_uring_prep_send(sqe, c->fd, req, len, MSG_NOSIGNAL | MSG_WAITALL);
    /* A send that does not fit the socket's buffer waits in the kernel for room and then reads the
       rest from `req` (io_uring/net.c io_send: -EAGAIN, then a poll, then the send again from
       sr->buf + done_io; Linux 6.x), however its connection ended meanwhile: an ASYNC_CANCEL at the
       close does not say when it is over (a send run by io-wq is only signalled:
       io_uring/io-wq.c io_wq_worker_cancel). A slot's render buffer is rewritten for its next
       request, so a send from it posts its completion, whatever it was, and until then the slot
       renders nothing (c->render_sends, core_open, response_done). The fixed requests do not change
       while the worker runs: their success needs no completion. */
    int rendered = core_rendered(k, req);
    sqe->flags |= (rendered ? 0 : IOSQE_CQE_SKIP_SUCCESS) | (link ? IOSQE_IO_LINK : 0);
    io_uring_sqe_set_data64(sqe, tag(k, c, rendered ? OP_RSEND : OP_SEND));
    if (rendered) c->render_sends++;
    core_begin(k, c, now_ns());
    c->flags |= F_UNSUBMITTED;
    s->begins[s->n_begins].slot = (int)(c - k->conns);
    s->begins[s->n_begins].gen = c->gen;
    s->begins[s->n_begins].sqe = sqe;
    s->n_begins++;
}

/* A send from c's render buffer is over (its completion came, or it was taken back): the buffer is the
   slot's again once none is left */
static void render_send_done(core *k, conn *c) {
    if (c->render_sends) c->render_sends--;
    if (!c->render_sends && c->render_wait) core_render_free(k, c);
}

/* c's request is still queued here (F_UNSUBMITTED): its send entry becomes a no-op, posting nothing
   and keeping its place in any link, so nothing of the request is written. */
static void take_back(core *k, conn *c) {
    uring_state *s = k->io_state;
    int slot = (int)(c - k->conns);
    for (int i = 0; i < s->n_begins; i++) {
        if (s->begins[i].slot != slot || s->begins[i].gen != c->gen) continue;
        struct io_uring_sqe *sqe = s->begins[i].sqe;
        uint8_t link = sqe->flags & IOSQE_IO_LINK;
        if ((int)(sqe->user_data >> 56) == OP_RSEND) render_send_done(k, c);
        io_uring_prep_nop(sqe);
        sqe->flags = link | IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(k, c, OP_SEND));
        s->begins[i] = s->begins[--s->n_begins];
        break;
    }
    c->flags &= (uint16_t)~F_UNSUBMITTED;
}

/* The ring retries a short send in the kernel (MSG_WAITALL), so no short write is seen here to
   set TCP_NODELAY at (core_nodelay): a request that might not go out in one write gets it from the
   start (a plain setsockopt; liburing 2.3 cannot set options through the ring). A small one is
   copied whole by one sendmsg: tcp_sendmsg_locked keeps taking data while sk_wmem_queued <
   sk_sndbuf (net/ipv4/tcp.c, Linux 6.x: sk_stream_memory_free), sk_sndbuf starts at tcp_wmem[1]
   (16 KiB by default), and a connection whose previous request was answered has nothing queued.
   4 KiB leaves room for skb overhead and a send buffer shrunk under memory pressure. */
#define NAGLE_SAFE_REQUEST 4096

/* setsockopt(fd, SOL_SOCKET, SO_LINGER, {1, 0}) as a ring entry: IORING_OP_URING_CMD with
   SOCKET_URING_OP_SETSOCKOPT (Linux 6.7: io_uring/uring_cmd.c io_uring_cmd_sock ->
   io_uring_cmd_setsockopt reads level, optname, optlen, optval from the entry). liburing 2.3 and
   Linux 6.1's headers predate it, so the entry is filled by hand with 6.7's layout
   (include/uapi/linux/io_uring.h): level and optname share `addr`, optlen shares `file_index`,
   optval shares `addr3`, cmd_op shares `off`. */
#define TWL_SOCKET_URING_OP_SETSOCKOPT 3
static void prep_linger(struct io_uring_sqe *sqe, int fd, struct linger *lg) {
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = TWL_SOCKET_URING_OP_SETSOCKOPT;
    struct {
        uint32_t level, optname;
    } opt = {SOL_SOCKET, SO_LINGER};
    memcpy(&sqe->addr, &opt, sizeof opt);
    sqe->file_index = sizeof *lg;
    sqe->addr3 = (uint64_t)(uintptr_t)lg;
}

static int ur_sets_linger(core *k) {
    uring_state *s = k->io_state;
    return s->ring_linger;
}

static int ur_open(core *k, conn *c) {
    uring_state *s = k->io_state;
    int linger = k->close_mode == CLOSE_RST && s->ring_linger;
    int request = (c->flags & F_HAS_REQUEST) != 0;
    if (reserve(k, 3 + (unsigned)linger) < 0) return -EBUSY;
    if (k->max_request_len > NAGLE_SAFE_REQUEST) core_nodelay(c);
    struct io_uring_sqe *sqe;
    if (linger) {  /* the entries of a submit are issued in order: set before the connect */
        sqe = get_sqe(k);
        prep_linger(sqe, c->fd, &s->linger);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(k, c, OP_LINGER));
    }
    sqe = get_sqe(k);
    socklen_t len;
    const struct sockaddr *to = core_address(k, c, &len);
    io_uring_prep_connect(sqe, c->fd, to, len);
    if (!request) sqe->flags |= IOSQE_IO_LINK;  /* an idle connection's recv waits for it */
    io_uring_sqe_set_data64(sqe, tag(k, c, OP_CONNECT));
    if (request) {  /* not linked to the connect: see the top of this file */
        queue_request(k, c, 1);
        s->connect_sends++;
        c->state = C_CONNECTING;  /* in flight from submit, but connecting until the connect completes */
    }
    return queue_recv(k, c, request);  /* its entry is reserved above: cannot fail */
}

/* c's socket through the ring: regular fds, not fixed files, so the connect, send, recv and close
   that follow are the same as for a socket() made one. The completion gives the fd; the connect
   chain is queued then (a link cannot carry the fd from one entry to the next). */
static int ur_socket(core *k, conn *c) {
    uring_state *s = k->io_state;
    if (!s->ring_sockets) return -ENOTSUP;
    struct io_uring_sqe *sqe = get_sqe(k);
    if (!sqe) return -EBUSY;
    socklen_t len;
    io_uring_prep_socket(sqe, core_address(k, c, &len)->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP, 0);
    io_uring_sqe_set_data64(sqe, tag(k, c, OP_SOCKET));
    return 0;
}

static void ur_send(core *k, conn *c) {
    uint32_t len;
    if (reserve(k, 2) < 0) {
        core_fail(k, c, EBUSY);
        return;
    }
    core_request(k, c, &len);
    int link = !(c->flags & F_RECV_PENDING);  /* an idle connection may have its recv out already */
    queue_request(k, c, link);
    core_sent(k, c, len);
    if (!link) c->flags |= F_SEND_ALONE;
    else if (queue_recv(k, c, 1) < 0) core_fail(k, c, EBUSY);  /* reserved above: cannot happen */
}

static void ur_close(core *k, conn *c) {
    /* A request queued for c and not yet submitted must not go out on a connection already done
       (nor, after a plain close(), on whatever socket takes its fd number before the submit). */
    if (c->flags & F_UNSUBMITTED) take_back(k, c);
    /* At the end of the run, a plain close(): each ASYNC_CANCEL by fd walks every request pending in
       the ring (io_uring/cancel.c: io_async_cancel_one over the cancel tables), so cancelling tens of
       thousands of connections one by one is quadratic (measured: 40,000 connections over 3
       workers, the run ended ~1.9 s after duration + drain). The recvs still pending keep their
       sockets open until the ring is torn down (core_fini: io_uring_queue_exit cancels them all). */
    if (k->abandoning || reserve(k, 2) < 0) {
        close(c->fd);
        return;
    }
    struct io_uring_sqe *sqe;
    /* Nothing on this socket can be pending when no recv is out and each send had a recv linked
       behind it, which ran only once the send was done: then no cancel, whose search of the ring's
       pending requests cost ~0.4 us a short connection (io_uring/cancel.c). A connect whose
       completion has not come yet (a recv came first) is done, but for posting. */
    if ((c->flags & (F_RECV_PENDING | F_SEND_ALONE)) || c->state == C_CONNECTING) {
        sqe = get_sqe(k);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        sqe->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, tag(k, c, OP_CANCEL));
    }
    sqe = get_sqe(k);
    io_uring_prep_close(sqe, c->fd);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, tag(k, c, OP_CLOSE));
}

static void ur_flush(core *k) { submit(k); }

static void give_back(uring_state *s, int bid) {
    s->free_bufs++;
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(s->br, 1);
}

/* Many connections' responses arrive at once (tens of thousands of connections, one shared set of
   read buffers): the recvs past the last free buffer end with -ENOBUFS (io_uring/kbuf.c:
   io_buffer_select finds the ring empty; the data stays in the socket). Re-queueing each at once
   cost a submission and, as a rule, another -ENOBUFS, for every starved connection on every turn
   of the loop, while only BUF_COUNT responses were read per turn: with 15,000 connections io_uring
   served a quarter of epoll's requests. So a starved connection waits here, in order, and gets
   its recv back when a buffer is free (feed_starved, after each batch of completions). */
static void starve(uring_state *s, core *k, conn *c) {
    if (s->n_starved >= s->starved_cap) {  /* full of entries gone stale (closed, not yet skipped): */
        rearm(k, c);                       /* read again at once, as before the queue existed */
        return;
    }
    int i = (s->starved_head + s->n_starved) % s->starved_cap;
    s->starved[i].slot = (int)(c - k->conns);
    s->starved[i].gen = c->gen;
    s->n_starved++;  /* at most once per connection: F_RECV_PENDING stays set while it waits */
    c->flags |= F_RECV_PENDING;
}

static void feed_starved(core *k) {
    uring_state *s = k->io_state;
    for (int budget = s->free_bufs; budget > 0 && s->n_starved > 0;) {
        pending_begin w = s->starved[s->starved_head];
        s->starved_head = (s->starved_head + 1) % s->starved_cap;
        s->n_starved--;
        conn *c = &k->conns[w.slot];
        if (c->gen != w.gen || c->fd < 0 || !(c->flags & F_RECV_PENDING)) continue;  /* closed meanwhile */
        rearm(k, c);
        budget--;
    }
}

/* The connect succeeded (its completion, or a recv's that came first), and the request queued
   beside it went out with it: when the handshake was done within the submit that carried both
   (over loopback connect() runs the whole handshake), at that submit, so its clock stands. Else
   the send waited for the handshake (net/core/stream.c sk_stream_wait_connect: EAGAIN, then the
   ring polls for POLLOUT) and went when it was done, which is now: latency and --timeout do not
   include the handshake, as on epoll and asyncio (the connect time has its own histogram,
   counted from the submit). */
static void on_connected(core *k, conn *c) {
    uring_state *s = k->io_state;
    int64_t now = now_ns();
    int64_t submitted = c->t_start;
    uint32_t gen = c->gen;
    if (core_connected(k, c, now) && c->gen == gen && (c->flags & F_IN_FLIGHT)) {
        uint32_t len;
        core_request(k, c, &len);
        core_sent(k, c, len);
        if (submitted != s->inline_submit) c->t_start = now;
    }
}

/* `more`: a multishot recv posted this and stays armed */
static void on_recv(core *k, conn *c, int res, int bid, int more) {
    uring_state *s = k->io_state;
    uint32_t gen = c->gen;
    if (!more) c->flags &= (uint16_t)~F_RECV_PENDING;
    if (res > 0) {
        int closed = 1;
        if (c->flags & F_UNSUBMITTED) {
            /* A multishot recv read this before the request queued for c was submitted (the
               completion that ended its last response came in the same batch): it cannot be the
               answer to a request the server has not been sent. */
            take_back(k, c);
            core_received_unsent(k, c, (size_t)res);
        } else {
            closed = core_received(k, c, s->bufs + (size_t)bid * BUF_SIZE, (size_t)res);
        }
        give_back(s, bid);
        if (!closed && c->gen == gen && !(c->flags & F_RECV_PENDING) && c->state != C_CONNECTING)
            rearm(k, c);
    } else if (res == 0) {
        if (bid >= 0) give_back(s, bid);
        core_peer_closed(k, c);
    } else if (res == -ENOBUFS) {
        starve(s, k, c);
    } else if (res == -ECANCELED) {
        if (c->state != C_CONNECTING) rearm(k, c);
    } else {
        core_read_failed(k, c, -res);  /* e.g. ECONNRESET */
    }
}

/* The provided buffer a completion took from the ring (counted out of free_bufs), or -1. */
static int taken_buffer(uring_state *s, const struct io_uring_cqe *cqe) {
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) return -1;
    s->free_bufs--;
    return (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
}

static void completed(core *k, struct io_uring_cqe *cqe) {
    uring_state *s = k->io_state;
    uint64_t data = cqe->user_data;
    int op = (int)(data >> 56);
    conn *c = &k->conns[(uint32_t)data];
    int bid = taken_buffer(s, cqe);
    int res = cqe->res;
    if (op == OP_PROBE) {
        if (bid >= 0) give_back(s, bid);
        return;
    }
    int gen_ok = (c->gen & 0xffffff) == ((data >> 32) & 0xffffff);
    if (op == OP_RSEND) {
        /* over, whatever the connection did meanwhile: the slot's render buffer is free */
        render_send_done(k, c);
        if (res >= 0 && gen_ok && c->fd >= 0 && (c->flags & F_IN_FLIGHT)) {
            uint32_t len;
            core_request(k, c, &len);
            if ((uint32_t)res >= len) return;  /* all of it went out: what the skipped success says */
        } else if (res >= 0) {
            return;
        }
        op = OP_SEND;  /* a failure (or a send cut short), as OP_SEND posts it */
    }
    if (op == OP_SOCKET) {
        if (gen_ok && (c->flags & F_SOCKET_PENDING)) core_socket_made(k, c, res);
        else if (res >= 0) close(res);  /* its connection ended (stop, timeout) before the socket came */
        return;
    }
    int stale = !gen_ok || c->fd < 0;
    if (stale || op == OP_CANCEL || op == OP_CLOSE) {
        if (bid >= 0) give_back(s, bid);
        return;
    }
    int connecting = c->state == C_CONNECTING;
    if (op == OP_LINGER) {  /* only failures are posted */
        if (connecting) core_connect_failed(k, c, -res);
        else core_fail(k, c, -res);
        return;
    }
    switch (op) {
    case OP_CONNECT:
        if (!connecting) break;  /* a recv said so first */
        if (res < 0) core_connect_failed(k, c, -res);
        else on_connected(k, c);
        break;
    case OP_SEND:  /* only failures are posted */
        if (res == -ECANCELED) break;  /* its chain was cut before it */
        if (connecting) core_connect_failed(k, c, -res);
        else if (c->flags & F_IN_FLIGHT) core_fail(k, c, -res);
        else core_close(k, c);
        break;
    case OP_RECV:
        if (connecting && res != -ECANCELED && res != -ENOBUFS) {
            /* the connect's completion is still to come: the recv's says how it went */
            if (res < 0) {
                c->flags &= (uint16_t)~F_RECV_PENDING;
                core_connect_failed(k, c, -res);
                break;
            }
            uint32_t gen = c->gen;
            on_connected(k, c);
            if (c->gen != gen) {
                if (bid >= 0) give_back(s, bid);
                break;
            }
        }
        on_recv(k, c, res, bid, (cqe->flags & IORING_CQE_F_MORE) != 0);
        break;
    default:
        break;
    }
}

static int ur_poll(core *k, int64_t until) {
    uring_state *s = k->io_state;
    int64_t now = now_ns();
    int64_t wake = core_next_timer(k, now, until);
    struct __kernel_timespec ts = {(wake - now) / 1000000000LL, (wake - now) % 1000000000LL};
    struct io_uring_cqe *cqe;
    int connect_sends = s->connect_sends;
    int64_t started = start_clocks(k);
    int r;
    s->inline_submit = -1;
    if (connect_sends) {
        /* Submit without waiting first: the completions there by its end are of work done within
           it, and a connect among them had its handshake, and its request, within this submit
           (on_connected). The ring's task work runs before the syscall returns: with
           COOP_TASKRUN it is queued TWA_SIGNAL_NO_IPI (io_uring/io_uring.c io_uring_create),
           which is run on the way back to user space (kernel/entry/common.c
           exit_to_user_mode_loop). Only when nothing is there yet does a second call wait. */
        r = io_uring_submit(&s->ring);
        if (r >= 0 && io_uring_cq_ready(&s->ring)) s->inline_submit = started;
        else r = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
    } else {
        r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) return r;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        completed(k, cqe);
        n++;
        if (n >= 4 * QUEUE_DEPTH) break;
    }
    io_uring_cq_advance(&s->ring, n);
    feed_starved(k);
    return 0;
}

static int ring_init(struct io_uring *ring, unsigned entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    int r = io_uring_queue_init_params(entries, ring, &p);
    if (r == -EINVAL) {  /* an older kernel without these flags */
        memset(&p, 0, sizeof p);
        r = io_uring_queue_init_params(entries, ring, &p);
    }
    if (r == 0 && !(p.features & IORING_FEAT_CQE_SKIP)) {
        io_uring_queue_exit(ring);
        r = -ENOTSUP;
    }
    return r;
}

/* the kernel knows this opcode (io_uring_register IORING_REGISTER_PROBE, Linux 5.6) */
static int supports(struct io_uring *ring, int op) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    int ok = probe && io_uring_opcode_supported(probe, op);
    if (probe) io_uring_free_probe(probe);
    return ok;
}

/* The kernel sets socket options through the ring (Linux 6.7+; the opcode alone, 5.19, does not
   say so): try it once on a socket of our own. */
static int linger_works(struct io_uring *ring, struct linger *lg) {
    if (!supports(ring, IORING_OP_URING_CMD)) return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) return 0;
    int ok = 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct io_uring_cqe *cqe;
    if (sqe) {
        prep_linger(sqe, fd, lg);
        io_uring_sqe_set_data64(sqe, 0);
        if (io_uring_submit_and_wait(ring, 1) == 1 && io_uring_peek_cqe(ring, &cqe) == 0) {
            struct linger got = {0, 1};
            socklen_t len = sizeof got;
            ok = cqe->res == 0 && getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &len) == 0 && got.l_onoff == 1 &&
                 got.l_linger == 0;
            io_uring_cqe_seen(ring, cqe);
        }
    }
    close(fd);
    return ok;
}

/* The probe's next completion, its buffer given back at once; 0 if none came within a second. */
static int probe_completion(uring_state *s, int *res, int *more) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec second = {1, 0};
    if (io_uring_wait_cqe_timeout(&s->ring, &cqe, &second) < 0) return 0;
    int bid = taken_buffer(s, cqe);
    if (bid >= 0) give_back(s, bid);
    *res = cqe->res;
    *more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    io_uring_cqe_seen(&s->ring, cqe);
    return 1;
}

/* A multishot recv works here (Linux 6.0; the opcode probe does not say so): armed on one end of
   a socket pair, it reads what the other end writes and says it stays armed (IORING_CQE_F_MORE);
   the other end's close ends it (a read of 0 posts without F_MORE), so nothing is left pending. */
static int multishot_works(uring_state *s) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return 0;
    int ok = 0, ended = 0, res, more;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe) {
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
        io_uring_sqe_set_data64(sqe, (uint64_t)OP_PROBE << 56);
        if (io_uring_submit(&s->ring) == 1 && write(sv[1], "x", 1) == 1 && probe_completion(s, &res, &more)) {
            ok = res == 1 && more;
            ended = !more;
            if (more) {  /* the writer's close must end it */
                close(sv[1]);
                sv[1] = -1;
                ended = probe_completion(s, &res, &more) && !more;
            }
        }
    }
    /* not ended (a wait timed out): whatever it posts later is OP_PROBE's, which completed() drops */
    if (!ended) ok = 0;
    close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    return ok;
}

static int ur_init(core *k) {
    uring_state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->cap_begins = k->capacity + 1;
    s->begins = calloc((size_t)s->cap_begins, sizeof *s->begins);
    s->starved_cap = k->capacity + 1;
    s->starved = calloc((size_t)s->starved_cap, sizeof *s->starved);
    int r = s->begins && s->starved ? ring_init(&s->ring, QUEUE_DEPTH) : -ENOMEM;
    if (r < 0) {
        free(s->starved);
        free(s->begins);
        free(s);
        return r;
    }
    s->ring_sockets = supports(&s->ring, IORING_OP_SOCKET);
    s->linger.l_onoff = 1;
    s->linger.l_linger = 0;
    s->ring_linger = k->close_mode == CLOSE_RST && linger_works(&s->ring, &s->linger);
    s->br_size = BUF_COUNT * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, s->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    s->bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
    if (mem == MAP_FAILED || !s->bufs) {
        r = -ENOMEM;
        goto fail;
    }
    s->br = mem;
    io_uring_buf_ring_init(s->br);
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)s->br, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    r = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (r < 0) goto fail;
    for (int i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BUF_COUNT), i);
    io_uring_buf_ring_advance(s->br, BUF_COUNT);
    s->free_bufs = BUF_COUNT;
    s->multishot = k->close_mode == CLOSE_KEEPALIVE && k->per_connection != 1 && multishot_works(s);
    k->io_state = s;
    return 0;
fail:
    if (mem != MAP_FAILED) munmap(mem, s->br_size);
    free(s->bufs);
    io_uring_queue_exit(&s->ring);
    free(s->starved);
    free(s->begins);
    free(s);
    return r;
}

/* Sends from render buffers still in the kernel (connections closed by a plain close(), at the end of
   the run or with the ring full) may read those buffers, which core_fini frees next: everything
   pending is cancelled, and their completions are awaited (a second at most; a cancelled send
   posts -ECANCELED). Only the counts are kept: the connections are all gone. */
static void settle_render_sends(core *k) {
    uring_state *s = k->io_state;
    int pending = 0;
    for (int i = 0; i < k->capacity; i++) pending += k->conns[i].render_sends;
    if (!pending) return;
    struct io_uring_sqe *sqe = get_sqe(k);
    if (!sqe) return;
    io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_CANCEL << 56);
    submit(k);
    int64_t deadline = now_ns() + 1000000000LL;
    while (pending > 0) {
        int64_t left = deadline - now_ns();
        if (left <= 0) break;
        struct __kernel_timespec ts = {left / 1000000000LL, left % 1000000000LL};
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts) < 0) break;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            int op = (int)(cqe->user_data >> 56);
            int bid = taken_buffer(s, cqe);
            if (bid >= 0) give_back(s, bid);
            conn *c = &k->conns[(uint32_t)cqe->user_data];
            if (op == OP_RSEND && c->render_sends) {
                c->render_sends--;
                pending--;
            } else if (op == OP_SOCKET && cqe->res >= 0) {
                close(cqe->res);
            }
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
    }
}

static void ur_fini(core *k) {
    uring_state *s = k->io_state;
    submit(k);  /* the queued closes */
    settle_render_sends(k);
    /* Sockets made through the ring whose completions nobody reaped: every connection is gone by
       now, so their fds belong to no one (IORING_OP_SOCKET runs at submit: it is not left pending). */
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        if ((int)(cqe->user_data >> 56) == OP_SOCKET && cqe->res >= 0) close(cqe->res);
        n++;
    }
    io_uring_cq_advance(&s->ring, n);
    io_uring_queue_exit(&s->ring);
    munmap(s->br, s->br_size);
    free(s->bufs);
    free(s->starved);
    free(s->begins);
    free(s);
    k->io_state = NULL;
}

/* io_uring can be missing (kernel), disabled (sysctl kernel.io_uring_disabled) or filtered
   (seccomp, e.g. in containers): try what this backend needs, in this process. */
int uring_usable(void) {
    struct io_uring ring;
    if (ring_init(&ring, 4) < 0) return 0;
    int ok = 1;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    int ops[] = {IORING_OP_CONNECT, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_ASYNC_CANCEL, IORING_OP_CLOSE};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!probe || !io_uring_opcode_supported(probe, ops[i])) ok = 0;
    if (probe) io_uring_free_probe(probe);
    if (ok) {  /* provided buffer rings: Linux 5.19 */
        size_t size = 4 * sizeof(struct io_uring_buf);
        void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem == MAP_FAILED) {
            ok = 0;
        } else {
            struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)mem, .ring_entries = 4, .bgid = BUF_GROUP};
            ok = io_uring_register_buf_ring(&ring, &reg, 0) == 0;
            munmap(mem, size);
        }
    }
    io_uring_queue_exit(&ring);
    return ok;
}

/* Sockets are made through the ring (IORING_OP_SOCKET, Linux 5.19); else by socket(). */
int uring_sockets_usable(void) {
    struct io_uring ring;
    if (ring_init(&ring, 4) < 0) return 0;
    int ok = supports(&ring, IORING_OP_SOCKET);
    io_uring_queue_exit(&ring);
    return ok;
}

const backend uring_backend = {
    .name = "uring", .init = ur_init, .fini = ur_fini, .open = ur_open, .socket = ur_socket, .sets_linger = ur_sets_linger,
    .send = ur_send, .close = ur_close, .flush = ur_flush, .poll = ur_poll,
};
