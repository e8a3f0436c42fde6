/* HTTP/2 for the core's connections: libnghttp2's client session, driven with bytes only.
 *
 * A connection carries up to `limit` streams at once: --streams, capped by the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS. Closed loop per stream: a stream's result takes the next request
 * (core_take) and submits it on the same connection, as h2load's client does (h2load_http2_session.cc:
 * on_stream_close_callback -> client->process_request). The connection's first stream is the request
 * the slot took before it connected (F_HAS_REQUEST); the others wait for the server's SETTINGS, so
 * that no stream goes beyond a limit the server has said (RFC 9113 section 6.5.2: the initial value
 * is unlimited until then, and a server may refuse the excess).
 *
 * The ledger (docs/ARCHITECTURE.md "Every request one result"): every stream submitted is a
 * request taken, and gets exactly one of: a response (core_response), an error by name
 * (core_count_error: h2_rst_stream_<code>, timeout, the connection's end), a retry (refused by a
 * GOAWAY beyond its last-stream-id, RFC 9113 section 6.8: not processed, so it goes on the next
 * connection; counted h2_retried_after_goaway outside the ledger), or, never written, the slot's
 * next connection (as core_close_unsent) or withdrawal at the stop.
 *
 * Each stream is an entry of its connection's table (H2_MAX_STREAMS bound, `limit` entries used), found
 * by its stream user data; nghttp2's callbacks only record, and nothing closes a connection while
 * nghttp2 is inside mem_recv or mem_send.
 *
 * A request set (--targets, k->n_targets > 0): each stream takes the next target of the order
 * (core_choose), the slot's first one the target chosen for it before the connect. A target's ops
 * (engine/request_set.py compile_target_h2) render its header block as name\0value\0 pairs and its
 * body: a target without templated values once, at the start (its pairs point into that rendering,
 * as the one request's do); a templated one per stream, its pairs copied by nghttp2 at submission
 * and its body kept in the stream's entry of `bodies` until nghttp2 has read it all. A stream's
 * result counts in its target's per-target row. A request given back (never written, or refused by
 * a GOAWAY) goes on with its own target, so the file's mix holds whatever the server refuses.
 */
#define _GNU_SOURCE
#include "h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH (64 * 1024)  /* frames gathered for one write */
#define WINDOW ((1 << 30) - 1) /* flow-control window for each stream and the connection (create) */

typedef struct h2_stream {
    int32_t id;         /* 0: the entry is free */
    int16_t status;     /* :status, 0 before it */
    uint8_t sent;       /* its HEADERS went out */
    uint8_t settled;    /* its result is counted already (timeout): its close only frees it */
    uint32_t rst;       /* RST_STREAM code received + 1 (0: none) */
    uint32_t body_off;  /* bytes of the request's body handed to nghttp2 */
    int32_t target;     /* a request set: its request's target (-1: the one request) */
    int64_t t_sent;     /* submitted, then when its HEADERS went out: the latency's start */
    int64_t intended;   /* open loop: when it was due (0: closed loop) */
} h2_stream;

typedef struct h2_conn {
    nghttp2_session *session;
    core *k;
    conn *c;
    h2_stream *streams;  /* this slot's `limit_max` entries */
    int n_active;        /* entries in use */
    int limit;           /* streams at once: --streams, or fewer if the server said so */
    int32_t goaway_last; /* the last-stream-id of a GOAWAY received; -1: none */
    uint32_t submitted;  /* streams submitted on this connection (--requests-per-connection) */
    uint8_t settings;    /* the server's SETTINGS came */
    uint8_t broken;      /* nghttp2 found a connection error and sent its GOAWAY: the connection ends */
    uint8_t *pending;    /* bytes handed to the backend and not all written (copied from the scratch) */
    size_t pending_len, pending_off, pending_cap;
    size_t out_len;      /* what h2_output handed over last (from pending, or the scratch) */
    uint8_t out_scratch;
    int live_at;         /* its index in h2_state.live */
    uint32_t closed;     /* streams closed so far (pump: did a write close some?) */
    uint8_t awaiting;    /* done, and the server closes first: reading to its EOF (awaits_server) */
    int64_t t_done;      /* when it began awaiting: the wait has --timeout (no_server_close) */
} h2_conn;

/* a request set's target (core.h req_target) as HTTP/2 sends it */
typedef struct h2_target {
    nghttp2_nv *nv;       /* not templated: its header block's pairs, pointing into mem */
    size_t n_nv;          /* its pairs (templated: in each rendering) */
    char *mem;            /* not templated: its header block, then its body, rendered once */
    const char *body;     /* a body without templated values: its bytes (in mem) */
    uint32_t body_len;
    uint8_t head_tpl, body_tpl; /* the header block / the body has templated values */
} h2_target;

/* a request given back (give_back), for a next stream */
typedef struct given {
    int64_t intended;  /* open loop: when it was due (0: closed loop) */
    int32_t target;    /* a request set: its target (-1: the one request) */
} given;

typedef struct h2_state {
    int streams;          /* --streams */
    nghttp2_nv *nv;
    size_t n_nv;
    char *nv_mem;
    char *body;
    size_t body_len;
    h2_conn *conns;       /* k->capacity entries, by slot */
    h2_stream *stream_mem; /* capacity * streams entries */
    uint8_t *scratch;
    given *back;          /* requests taken and not processed (refused by a GOAWAY, or never written):
                             the next streams', taken before new ones (cap_back) */
    int n_back, cap_back;
    int peer_max;         /* the smallest SETTINGS_MAX_CONCURRENT_STREAMS below --streams (0: none) */
    int *live;            /* the slots whose connection has a session (open loop: dispatch walks these) */
    int n_live;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    /* a request set (h2_targets_init): each target's form, where a templated header block is rendered
       (head_cap bytes) and its pairs found (nv_cap), and each stream entry's templated body (at
       body_stride bytes an entry of stream_mem: its length, then its bytes) */
    h2_target *targets;
    int n_targets;
    char *head_buf;
    nghttp2_nv *nv_buf;
    size_t nv_cap;
    char *bodies;
    size_t body_stride;
} h2_state;

static h2_conn *of(core *k, const conn *c) { return &k->h2_state->conns[c - k->conns]; }

int h2_peer_max_streams(const core *k) { return k->h2_state ? k->h2_state->peer_max : 0; }

int h2_sessions(const core *k) { return k->h2_state ? k->h2_state->n_live : 0; }

int64_t h2_owed(const core *k) { return k->h2_state ? k->h2_state->n_back : 0; }

/* A request taken and not processed (never written, or refused by a GOAWAY) goes on a next stream
   with its target (a request set's) and, in the open loop, its intended send time, so its latency
   still counts from then; at the stop, or with no room to keep it (cannot be: at most every stream
   and every slot's request is out at once, h2_init), it leaves (withdrawn, or not_sent in the open
   loop). */
static void give_back(core *k, const conn *c, int64_t intended, int32_t target) {
    h2_state *st = k->h2_state;
    if (k->stopping || st->n_back >= st->cap_back) core_withdraw(k, c);
    else st->back[st->n_back++] = (given){.intended = k->open_loop ? intended : 0, .target = target};
}

/* the error slot of an RFC 9113 error code (section 7), by RST_STREAM or GOAWAY */
static int code_slot(int base, uint32_t code) { return base + (code <= NGHTTP2_HTTP_1_1_REQUIRED ? (int)code : 14); }

/* ---- a stream's end ---- */

static void release(h2_conn *h, h2_stream *s) {
    if (s->id && h->session) nghttp2_session_set_stream_user_data(h->session, s->id, NULL);
    memset(s, 0, sizeof *s);
    h->n_active--;
}

/* s's result is counted (or it is retried): no longer in flight */
static void settle(h2_conn *h, h2_stream *s) {
    s->settled = 1;
    h->k->in_flight--;
}

/* a stream never written: nothing of it went out, so the connection owes it no answer */
static void unsent(core *k, h2_conn *h, h2_stream *s) {
    settle(h, s);
    give_back(k, h->c, s->intended, s->target);
}

/* ---- nghttp2's callbacks (user_data: the h2_conn) ---- */

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0) return 0;
    h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s || valuelen != 3) return 0;  /* nghttp2 has checked it is 3 digits (nghttp2_http.c) */
    int status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    if (status >= 200 || !s->status) s->status = (int16_t)status;  /* a final status wins over a 1xx */
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        /* nghttp2_session_mem_recv returns an error only when it cannot go on at all (no memory, a
           callback failed); a peer that breaks the protocol gets nghttp2's GOAWAY instead
           (nghttp2_session.c: session_handle_invalid_connection -> nghttp2_session_terminate_session),
           sent through mem_send, after which the session reads no more (nghttp2_session_want_read) */
        ((h2_conn *)user_data)->broken = 1;
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s && !s->sent) {
        s->sent = 1;
        s->t_sent = now_ns();  /* the clock starts as the request goes out, as HTTP/1.1's first byte */
    }
    return 0;
}

static h2_stream *find(h2_conn *h, int32_t id) {
    for (int i = 0; i < h->k->h2_state->streams; i++)
        if (h->streams[i].id == id) return &h->streams[i];
    return NULL;
}

/* a HEADERS that could not go out (e.g. after a GOAWAY): its request was not written */
static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int error, void *user_data) {
    (void)session;
    (void)error;
    h2_conn *h = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    h2_stream *s = find(h, frame->hd.stream_id);
    if (!s || s->settled) return 0;
    unsent(h->k, h, s);
    release(h, s);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    h2_conn *h = user_data;
    core *k = h->k;
    switch (frame->hd.type) {
    case NGHTTP2_RST_STREAM: {
        h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s) s->rst = frame->rst_stream.error_code + 1;
        break;
    }
    case NGHTTP2_GOAWAY:
        h->goaway_last = frame->goaway.last_stream_id;
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
            core_count_close_error(k, h->c, code_slot(E_H2_GOAWAY, frame->goaway.error_code));
        break;
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) break;
        h->settings = 1;
        uint32_t max = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        int limit = k->h2_state->streams;
        if (max < (uint32_t)limit) {
            limit = (int)max;
            if (!k->h2_state->peer_max || (int)max < k->h2_state->peer_max) k->h2_state->peer_max = (int)max;
        }
        /* fewer than in flight already: those finish, and no more start until below it */
        h->limit = limit;
        break;
    default:
        break;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user_data) {
    h2_conn *h = user_data;
    core *k = h->k;
    h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s) s = find(h, id);
    if (!s) return 0;
    if (s->settled) {
        /* counted already (a timeout) */
    } else if (!s->sent) {
        unsent(k, h, s);
    } else if (h->goaway_last >= 0 && id > h->goaway_last && !s->status) {
        /* refused by the GOAWAY: not processed (RFC 9113 section 6.8), so the next connection's */
        settle(h, s);
        core_count_close_error(k, h->c, E_H2_RETRIED);
        give_back(k, h->c, s->intended, s->target);
    } else {
        settle(h, s);
        if (s->rst) {
            core_count_stream_error(k, h->c, s->target, code_slot(E_H2_RST, s->rst - 1));
        } else if (error_code != NGHTTP2_NO_ERROR || !s->status) {
            /* nghttp2 reset it: the response broke the protocol */
            core_count_stream_error(k, h->c, s->target, E_H2_PROTOCOL);
        } else {
            core_response(k, s->target, s->status, s->intended, s->t_sent, now_ns());
        }
    }
    release(h, s);
    h->closed++;
    return 0;
}

/* the body of s's request: the one request's, its target's, or its own rendering (templated) */
static void stream_body(const h2_state *st, const h2_stream *s, const char **body, size_t *len) {
    if (s->target < 0) {
        *body = st->body;
        *len = st->body_len;
        return;
    }
    const h2_target *t = &st->targets[s->target];
    if (!t->body_tpl) {
        *body = t->body;
        *len = t->body_len;
        return;
    }
    const char *at = st->bodies + (size_t)(s - st->stream_mem) * st->body_stride;
    uint32_t n;
    memcpy(&n, at, sizeof n);
    *body = at + sizeof n;
    *len = n;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *data_flags,
                         nghttp2_data_source *source, void *user_data) {
    (void)session;
    (void)id;
    h2_state *st = ((h2_conn *)user_data)->k->h2_state;
    h2_stream *s = source->ptr;  /* the stream's entry: where its body has got to */
    const char *body;
    size_t body_len;
    stream_body(st, s, &body, &body_len);
    size_t done = s->body_off;
    size_t n = body_len - done < length ? body_len - done : length;
    memcpy(buf, body + done, n);
    s->body_off = (uint32_t)(done + n);
    if (done + n == body_len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* ---- the worker's state ---- */

int h2_init(core *k, int streams, const char *nv, size_t nv_len, const char *body, size_t body_len) {
    if (streams < 1 || streams > H2_MAX_STREAMS || body_len > INT32_MAX) return -EINVAL;
    h2_state *st = calloc(1, sizeof *st);
    if (!st) return -ENOMEM;
    k->h2_state = st;
    k->h2 = &h2_core_hooks;
    st->streams = streams;
    /* the header block: name\0value\0 pairs */
    size_t pairs = 0, zeros = 0;
    for (size_t i = 0; i < nv_len; i++) zeros += nv[i] == 0;
    if (zeros % 2 || !zeros || (nv_len && nv[nv_len - 1] != 0)) return -EINVAL;
    pairs = zeros / 2;
    st->nv_mem = malloc(nv_len);
    st->nv = calloc(pairs, sizeof *st->nv);
    st->body = malloc(body_len ? body_len : 1);
    st->conns = calloc((size_t)k->capacity, sizeof *st->conns);
    st->stream_mem = calloc((size_t)k->capacity * (size_t)streams, sizeof *st->stream_mem);
    st->scratch = malloc(SCRATCH);
    st->cap_back = k->capacity * (streams + 1);  /* every stream, and each slot's request before its connect */
    st->back = malloc((size_t)st->cap_back * sizeof *st->back);
    st->live = malloc((size_t)k->capacity * sizeof *st->live);
    if (!st->nv_mem || !st->nv || !st->body || !st->conns || !st->stream_mem || !st->scratch || !st->back ||
        !st->live)
        return -ENOMEM;
    memcpy(st->nv_mem, nv, nv_len);
    memcpy(st->body, body, body_len);
    st->body_len = body_len;
    char *p = st->nv_mem;
    for (size_t i = 0; i < pairs; i++) {
        size_t nl = strlen(p);
        char *v = p + nl + 1;
        size_t vl = strlen(v);
        st->nv[i] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
        p = v + vl + 1;
    }
    st->n_nv = pairs;
    for (int i = 0; i < k->capacity; i++) {
        st->conns[i].streams = &st->stream_mem[(size_t)i * (size_t)streams];
        st->conns[i].goaway_last = -1;
    }
    if (nghttp2_session_callbacks_new(&st->cbs) != 0 || nghttp2_option_new(&st->opt) != 0) return -ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(st->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_send_callback(st->cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(st->cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(st->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(st->cbs, on_stream_close);
    return 0;
}

/* name\0value\0 pairs of len bytes at p as nghttp2_nv (at most cap of them, with flags); how many */
static size_t pairs_of(const char *p, size_t len, nghttp2_nv *nv, size_t cap, uint8_t flags) {
    const char *end = p + len;
    size_t n = 0;
    while (n < cap && p < end) {
        const char *name_end = memchr(p, 0, (size_t)(end - p));
        if (!name_end) break;
        const char *value = name_end + 1;
        const char *value_end = memchr(value, 0, (size_t)(end - value));
        if (!value_end) break;
        nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)value, (size_t)(name_end - p), (size_t)(value_end - value),
                               flags};
        p = value_end + 1;
    }
    return n;
}

/* the literal ops [from, to) of t into out (their bytes; templated ones are left out) */
static size_t literals(const req_target *t, uint32_t from, uint32_t to, char *out) {
    size_t n = 0;
    for (uint32_t j = from; j < to; j++)
        if (t->ops[j].kind == TPL_LIT) {
            if (out) memcpy(out + n, t->ops[j].data, t->ops[j].len);
            n += t->ops[j].len;
        }
    return n;
}

int h2_targets_init(core *k) {
    h2_state *st = k->h2_state;
    if (!st || k->n_targets < 1 || k->n_dests > 1) return -EINVAL;
    st->targets = calloc((size_t)k->n_targets, sizeof *st->targets);
    if (!st->targets) return -ENOMEM;
    st->n_targets = k->n_targets;
    uint32_t head_cap = 0;
    size_t stride = 0;
    for (int i = 0; i < k->n_targets; i++) {
        const req_target *t = &k->targets[i];
        h2_target *ht = &st->targets[i];
        size_t zeros = 0;
        for (uint32_t j = 0; j < t->n_ops; j++) {
            const tpl_op *op = &t->ops[j];
            if (op->kind == TPL_LAST_LIT) return -EINVAL;  /* no Connection: close in HTTP/2 */
            if (op->kind != TPL_LIT) *(j < t->body_start ? &ht->head_tpl : &ht->body_tpl) = 1;
            else if (j < t->body_start)
                for (uint32_t b = 0; b < op->len; b++) zeros += op->data[b] == 0;
        }
        /* the header block: pairs, each ending in a NUL (a templated value renders none), the last
           op a literal that ends the last value */
        const tpl_op *last = t->body_start ? &t->ops[t->body_start - 1] : NULL;
        if (!last || last->kind != TPL_LIT || !last->len || last->data[last->len - 1] != 0 || !zeros || zeros % 2)
            return -EINVAL;
        ht->n_nv = zeros / 2;
        if (ht->body_tpl) ht->head_tpl = 1;  /* its Content-Length is the rendered body's */
        size_t head = literals(t, 0, t->body_start, NULL), body = literals(t, t->body_start, t->n_ops, NULL);
        ht->mem = malloc(head + body + 1);
        if (!ht->mem) return -ENOMEM;
        literals(t, t->body_start, t->n_ops, ht->mem + head);
        ht->body = ht->mem + head;
        ht->body_len = (uint32_t)body;  /* t->body_max bounds it: at most MAX_RENDER */
        if (ht->head_tpl) {
            if (t->head_max > head_cap) head_cap = t->head_max;
            if (ht->n_nv > st->nv_cap) st->nv_cap = ht->n_nv;
            if (ht->body_tpl && sizeof(uint32_t) + t->body_max > stride) stride = sizeof(uint32_t) + t->body_max;
            continue;
        }
        literals(t, 0, t->body_start, ht->mem);
        ht->nv = calloc(ht->n_nv, sizeof *ht->nv);
        if (!ht->nv) return -ENOMEM;
        if (pairs_of(ht->mem, head, ht->nv, ht->n_nv, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE) !=
            ht->n_nv)
            return -EINVAL;
    }
    if (head_cap) {
        st->head_buf = malloc(head_cap);
        st->nv_buf = calloc(st->nv_cap, sizeof *st->nv_buf);
        if (!st->head_buf || !st->nv_buf) return -ENOMEM;
    }
    if (stride) {  /* a templated body for each stream entry, bounded as HTTP/1.1's render buffers */
        stride = (stride + 7) & ~(size_t)7;
        size_t entries = (size_t)k->capacity * (size_t)st->streams;
        if (entries > MAX_RENDER_TOTAL / stride) return -ENOBUFS;
        st->bodies = malloc(entries * stride);
        if (!st->bodies) return -ENOMEM;
        st->body_stride = stride;
    }
    return 0;
}

void h2_fini(core *k) {
    h2_state *st = k->h2_state;
    if (!st) return;
    if (st->conns)
        for (int i = 0; i < k->capacity; i++) {
            nghttp2_session_del(st->conns[i].session);  /* none left normally: core_fini closed them */
            free(st->conns[i].pending);
        }
    if (st->cbs) nghttp2_session_callbacks_del(st->cbs);
    if (st->opt) nghttp2_option_del(st->opt);
    if (st->targets)
        for (int i = 0; i < st->n_targets; i++) {
            free(st->targets[i].nv);
            free(st->targets[i].mem);
        }
    free(st->targets);
    free(st->head_buf);
    free(st->nv_buf);
    free(st->bodies);
    free(st->nv_mem);
    free(st->nv);
    free(st->body);
    free(st->conns);
    free(st->stream_mem);
    free(st->scratch);
    free(st->back);
    free(st->live);
    free(st);
    k->h2_state = NULL;
    k->h2 = NULL;
}

/* ---- streams ---- */

/* a request set: the target of the next stream on c, and nobody's on c from now on (what c counts
   later, outside a stream, goes to the totals alone); the slot's first stream takes the target chosen
   for its request before the connect (core_connect_failed counted that request's errors there) */
static int32_t next_target(core *k, conn *c) {
    if (!k->n_targets) return -1;
    if (!c->chosen) core_choose(k, c);
    int32_t target = c->target;
    c->chosen = 0;
    c->target = -1;
    return target;
}

/* a request set: `target` is the one of c's request not yet begun, as core_choose leaves it (-1: the one
   request, nothing chosen) */
static void keep_target(conn *c, int32_t target) {
    c->target = target;
    c->chosen = target >= 0;
    c->rendered = 0;
}

/* s's request of `target`: its header block's pairs (*nv, *n_nv) and its body's length; a templated
   target rendered now (the pairs in head_buf, for nghttp2 to copy; the body in s's entry of bodies).
   -1 when the rendering is not the pairs h2_targets_init counted (cannot be: the core renders no NUL) */
static int stream_request(core *k, h2_state *st, h2_stream *s, int32_t target, const nghttp2_nv **nv, size_t *n_nv,
                          size_t *body_len) {
    const h2_target *t = &st->targets[target];
    if (!t->head_tpl) {
        *nv = t->nv;
        *n_nv = t->n_nv;
        *body_len = t->body_len;
        return 0;
    }
    uint32_t head_len, len = t->body_len;
    char *body = NULL;
    if (t->body_tpl) body = st->bodies + (size_t)(s - st->stream_mem) * st->body_stride + sizeof len;
    core_render_parts(k, &k->targets[target], st->head_buf, &head_len, body, &len);
    if (body) memcpy(body - sizeof len, &len, sizeof len);
    if (pairs_of(st->head_buf, head_len, st->nv_buf, st->nv_cap, NGHTTP2_NV_FLAG_NONE) != t->n_nv) return -1;
    *nv = st->nv_buf;
    *n_nv = t->n_nv;
    *body_len = len;
    return 0;
}

/* one more stream on c for a request already taken (of `target`, -1: the one request); 0, or -1 when
   nghttp2 refused it */
static int submit(core *k, h2_conn *h, int64_t intended, int32_t target) {
    h2_state *st = k->h2_state;
    h2_stream *s = NULL;
    for (int i = 0; i < st->streams; i++)
        if (!h->streams[i].id) {
            s = &h->streams[i];
            break;
        }
    if (!s) return -1;  /* cannot be: n_active < limit <= streams */
    const nghttp2_nv *nv = st->nv;
    size_t n_nv = st->n_nv, body_len = st->body_len;
    if (target >= 0 && stream_request(k, st, s, target, &nv, &n_nv, &body_len) < 0) return -1;
    s->target = target;
    nghttp2_data_provider body = {.source.ptr = s, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(h->session, NULL, nv, n_nv, body_len ? &body : NULL, s);
    if (id < 0) return -1;
    s->id = id;
    s->t_sent = now_ns();
    s->intended = intended;
    h->n_active++;
    h->submitted++;
    k->in_flight++;
    return 0;
}

/* the connection may start another stream */
static int room(core *k, const h2_conn *h) {
    if (h->goaway_last >= 0 || k->stopping) return 0;
    if (k->per_connection && h->submitted >= k->per_connection) return 0;
    int limit = h->settings ? h->limit : 1;  /* before the server's SETTINGS: the slot's request alone */
    return h->n_active < limit;
}

/* new streams up to the limit, refused requests first: closed loop, each takes the next request from
   the budget; open loop, the oldest due one, while any is due. 1: it stopped because no request was
   left to take (none due, the budget spent, the stop) */
static int refill(core *k, conn *c, h2_conn *h) {
    h2_state *st = k->h2_state;
    if (c->flags & F_HAS_REQUEST) {  /* the slot's request, taken before the connect */
        int32_t target = next_target(k, c);
        if (submit(k, h, c->intended, target) < 0) {
            keep_target(c, target);  /* still the slot's request */
            return 0;
        }
        c->flags &= (uint16_t)~F_HAS_REQUEST;
        c->intended = 0;
    }
    while (room(k, h)) {
        int64_t intended = 0;
        int32_t target;
        if (st->n_back > 0) {
            given g = st->back[--st->n_back];
            intended = g.intended;
            target = g.target;
        } else {
            if (k->open_loop) {
                if (!(intended = core_next_due(k))) return 1;
            } else if (!core_take(k)) {
                return 1;
            }
            target = next_target(k, c);
        }
        if (submit(k, h, intended, target) < 0) {
            give_back(k, c, intended, target);  /* taken: the next stream's */
            return 0;
        }
    }
    return 0;
}

static int create(core *k, conn *c, h2_conn *h) {
    h2_state *st = k->h2_state;
    memset(h, 0, sizeof *h);
    h->streams = &st->stream_mem[(size_t)(c - k->conns) * (size_t)st->streams];
    h->k = k;
    h->c = c;
    h->goaway_last = -1;
    h->limit = st->streams;
    if (nghttp2_session_client_new2(&h->session, st->cbs, h, st->opt) != 0) return -1;
    h->live_at = st->n_live;  /* at most one entry per slot: a slot has one session at a time */
    st->live[st->n_live++] = (int)(c - k->conns);
    /* our SETTINGS: no server push (RFC 9113 section 8.4), and flow-control windows of 2^30 - 1 for
       each stream and the connection, as h2load's defaults (-w 30, -W 30): the client reads all it
       gets, so the 64 KiB default windows would only hold large responses back by round trips */
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW}};
    if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, settings, 2) != 0) return -1;
    if (nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, WINDOW) != 0) return -1;
    return 0;
}

/* ---- the connection's end ---- */

/* every stream still open gets the connection's end as its result (written), or goes on (not
   written); a stream past a GOAWAY's last-stream-id is retried */
static void settle_all(core *k, h2_conn *h, int error) {
    for (int i = 0; i < k->h2_state->streams; i++) {
        h2_stream *s = &h->streams[i];
        if (!s->id) continue;
        if (!s->settled) {
            if (!s->sent) {
                unsent(k, h, s);
            } else if (h->goaway_last >= 0 && s->id > h->goaway_last && !s->status) {
                settle(h, s);
                core_count_close_error(k, h->c, E_H2_RETRIED);
                give_back(k, h->c, s->intended, s->target);
            } else {
                settle(h, s);
                core_count_stream_error(k, h->c, s->target, error);
            }
        }
        memset(s, 0, sizeof *s);
    }
    h->n_active = 0;
}

static void hook_drop(core *k, conn *c) {
    h2_conn *h = of(k, c);
    if (!h->session) return;
    /* whatever closes c without saying why first (the drain bound, a failed write): abandoned */
    settle_all(k, h, k->abandoning ? E_ABANDONED : E_EOF_BEFORE_RESPONSE);
    nghttp2_session_del(h->session);
    h->session = NULL;
    h->awaiting = 0;
    h2_state *st = k->h2_state;
    int last = st->live[--st->n_live];  /* out of the live list: the last entry takes its place */
    st->live[h->live_at] = last;
    st->conns[last].live_at = h->live_at;
    free(h->pending);
    h->pending = NULL;
    h->pending_len = h->pending_off = h->pending_cap = 0;
}

static void end_with(core *k, conn *c, int error) {
    settle_all(k, of(k, c), error);
    if (c->flags & F_HAS_REQUEST) core_close_unsent(k, c);  /* the slot's request was never submitted */
    else core_close(k, c);
}

static void hook_ended(core *k, conn *c, int error) {
    /* awaiting the server's close: its EOF is what was awaited. A reset instead: after its GOAWAY, the
       close it announced (a server that closes with frames of ours unread, those the client sent before
       the GOAWAY came, resets: net/ipv4/tcp.c, __tcp_close, data_was_unread), nothing counted, as tls.c
       takes a reset after close_notify; with no GOAWAY (--close server, the streams spent) the close
       gone wrong, counted outside the ledger as core_read_failed does for HTTP/1.1's C_AWAIT_EOF */
    h2_conn *h = of(k, c);
    if (h->awaiting && error && h->goaway_last < 0) core_count_close_error(k, c, error);
    end_with(k, c, error ? error : E_EOF_BEFORE_RESPONSE);
}

/* A connection done with its streams that the server closes, not the client: as HTTP/1.1 reads to
   the FIN after the server said it closes (core.c: end), so the server, the active closer, keeps the
   TIME_WAIT (net/ipv4/tcp_input.c: tcp_fin; net/ipv4/tcp_minisocks.c: tcp_time_wait). HTTP/2 has no
   Connection: close to ask with, so the server's own word is its GOAWAY (keepalive and server), or,
   under --close server, the connection's --requests-per-connection streams are done and the server is
   expected to end it (nginx: keepalive_requests; twload serve --http2 --close-after). fin and rst end
   the connection themselves, and so does every strategy at the run's stop for a connection the server
   has said nothing to. */
static int awaits_server(const core *k, const h2_conn *h, int spent) {
    if (k->close_mode == CLOSE_SERVER) return spent || h->goaway_last >= 0;
    return k->close_mode == CLOSE_KEEPALIVE && h->goaway_last >= 0;
}

/* no stream left and none to start: the connection is done. The server closes it (awaits_server: it
   reads on to EOF, within --timeout), or the client does: our GOAWAY first unless the server sent one,
   then the close (FIN; under --close rst, SO_LINGER {1,0} makes it a RST and no GOAWAY goes first).
   Returns 1 when c was closed. */
static int maybe_done(core *k, conn *c, h2_conn *h) {
    if (h->n_active > 0 || (c->flags & F_HAS_REQUEST) || h->awaiting) return 0;
    int spent = k->per_connection && h->submitted >= k->per_connection;
    if (h->goaway_last < 0 && !k->stopping && !spent && (k->open_loop || k->h2_state->n_back > 0 || k->budget != 0))
        return 0;
    if (awaits_server(k, h, spent)) {
        h->awaiting = 1;
        h->t_done = now_ns();
        return 0;
    }
    if (k->close_mode != CLOSE_RST && h->goaway_last < 0 && h->session) {
        /* our GOAWAY first, written with what is queued (best effort: the close follows) */
        uint32_t gen = c->gen;
        nghttp2_session_terminate_session(h->session, NGHTTP2_NO_ERROR);
        k->io->send(k, c);
        if (c->gen != gen) return 1;
    }
    core_close(k, c);
    return 1;
}

/* ---- the hooks ---- */

/* what the peer speaks instead of HTTP/2 (an HTTP/1.1 400, say): the first bytes it sent, said once */
static void keep_peer_bytes(core *k, const char *data, size_t len) {
    k->peer_len = len < sizeof k->peer_bytes ? (int)len : (int)sizeof k->peer_bytes;
    memcpy(k->peer_bytes, data, (size_t)k->peer_len);
}

/* After the session has moved: new streams for the free places, the connection closed if it is done,
   what the session has to say written. Again when that write closed streams: nghttp2 closes a stream
   it resets (a malformed response; a timeout's CANCEL) as the RST_STREAM goes out, which frees its
   place only then (bounded: the next read or sweep pumps again). 1 when c was closed. */
static int pump(core *k, conn *c, h2_conn *h) {
    uint32_t gen = c->gen;
    for (int round = 0; round < 4; round++) {
        refill(k, c, h);
        if (!h->broken && maybe_done(k, c, h)) return 1;
        uint32_t closed = h->closed;
        k->io->send(k, c);
        if (c->gen != gen) return 1;
        if (h->broken || h->closed == closed) return 0;
    }
    return 0;
}

static int hook_received(core *k, conn *c, const char *data, size_t len) {
    h2_conn *h = of(k, c);
    k->stats[S_BYTES_IN] += (int64_t)len;
    if (!h->session) {  /* bytes before anything was written */
        core_count_close_error(k, c, E_UNSOLICITED);
        if (c->flags & F_HAS_REQUEST) core_close_unsent(k, c);
        else core_close(k, c);
        return 1;
    }
    ssize_t r = nghttp2_session_mem_recv(h->session, (const uint8_t *)data, len);
    if (r < 0) {
        if (k->peer_len == 0 && !(c->flags & F_READ_ANY)) keep_peer_bytes(k, data, len);
        end_with(k, c, E_H2_PROTOCOL);
        return 1;
    }
    if (pump(k, c, h)) return 1;  /* nghttp2's GOAWAY, if it found the peer broken, goes out with it */
    if (h->broken) {
        if (k->peer_len == 0 && !(c->flags & F_READ_ANY)) keep_peer_bytes(k, data, len);
        end_with(k, c, E_H2_PROTOCOL);
        return 1;
    }
    c->flags |= F_READ_ANY;
    return 0;
}

static void hook_sweep(core *k, conn *c, int64_t now) {
    h2_conn *h = of(k, c);
    if (!h->session) return;
    if (h->awaiting) {  /* no stream left: only the server's close is awaited, for --timeout */
        if (now - h->t_done > k->timeout_ns) core_close_error(k, c, E_NO_SERVER_CLOSE);
        return;
    }
    int cancelled = 0;
    for (int i = 0; i < k->h2_state->streams; i++) {
        h2_stream *s = &h->streams[i];
        if (!s->id || s->settled || now - s->t_sent <= k->timeout_ns) continue;
        settle(h, s);
        core_count_stream_error(k, c, s->target, E_TIMEOUT);
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        cancelled = 1;
    }
    if (cancelled) pump(k, c, h);  /* the RST_STREAMs out, then the slot's next requests on this connection */
}

static void hook_stop(core *k) {
    h2_state *st = k->h2_state;
    for (; st->n_back > 0; st->n_back--) core_withdraw(k, NULL);  /* taken, never written: withdrawn (open loop: not_sent) */
    for (int i = 0; i < k->capacity; i++) {
        conn *c = &k->conns[i];
        h2_conn *h = &st->conns[i];
        /* idle connections close; one awaiting the server's close waits on for it (core_done: n_fd) */
        if (h->session && h->n_active == 0 && !h->awaiting && c->state != C_FREE && !(c->flags & F_HAS_REQUEST))
            core_close(k, c);
    }
}

/* open loop: due requests go to connections with a stream free (the pool grows only past them) */
static void hook_dispatch(core *k) {
    h2_state *st = k->h2_state;
    for (int i = 0; i < st->n_live; i++) {  /* the connections with a session, not every slot */
        conn *c = &k->conns[st->live[i]];
        h2_conn *h = &st->conns[st->live[i]];
        if (c->fd < 0 || !room(k, h)) continue;
        uint32_t gen = c->gen;
        int drained = refill(k, c, h);
        k->io->send(k, c);  /* may close c: its entry in live moves, and one entry is visited again or not at all */
        if (drained) break;  /* nothing more is due */
        if (c->gen != gen) i--;
    }
}

/* closed loop: a request given back is c's, the request its connect carries, with its target */
static int hook_take_owed(core *k, conn *c) {
    h2_state *st = k->h2_state;
    if (k->open_loop || st->n_back <= 0 || k->stopping) return 0;
    keep_target(c, st->back[--st->n_back].target);
    return 1;
}

const h2_hooks h2_core_hooks = {
    .received = hook_received, .ended = hook_ended, .sweep = hook_sweep, .drop = hook_drop,
    .stop = hook_stop, .take_owed = hook_take_owed, .dispatch = hook_dispatch,
};

/* ---- the backend's side ---- */

const uint8_t *h2_output(core *k, conn *c, size_t *len) {
    h2_conn *h = of(k, c);
    h2_state *st = k->h2_state;
    *len = 0;
    if (!h->session) {  /* just connected: the session starts with the slot's request */
        if (create(k, c, h) < 0) {
            end_with(k, c, E_H2_PROTOCOL);  /* hook_drop deletes what create made */
            return NULL;
        }
        refill(k, c, h);
    }
    if (h->pending_off < h->pending_len) {
        h->out_scratch = 0;
        h->out_len = h->pending_len - h->pending_off;
        *len = h->out_len;
        return h->pending + h->pending_off;
    }
    size_t n = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t got = nghttp2_session_mem_send(h->session, &p);
        if (got < 0) {
            end_with(k, c, E_H2_PROTOCOL);
            return NULL;
        }
        if (got == 0) break;
        if (n + (size_t)got > SCRATCH) {
            /* a frame that does not fit behind the others: it waits, copied, as pending */
            if (h->pending_cap < (size_t)got) {
                uint8_t *grown = realloc(h->pending, (size_t)got);
                if (!grown) {
                    end_with(k, c, ENOMEM);
                    return NULL;
                }
                h->pending = grown;
                h->pending_cap = (size_t)got;
            }
            memcpy(h->pending, p, (size_t)got);
            h->pending_len = (size_t)got;
            h->pending_off = 0;
            if (n == 0) {  /* nothing gathered before it: it goes now */
                h->out_scratch = 0;
                h->out_len = *len = (size_t)got;
                return h->pending;
            }
            break;
        }
        memcpy(st->scratch + n, p, (size_t)got);
        n += (size_t)got;
    }
    h->out_scratch = 1;
    h->out_len = *len = n;
    return st->scratch;
}

void h2_wrote(core *k, conn *c, size_t n) {
    h2_conn *h = of(k, c);
    k->stats[S_BYTES_OUT] += (int64_t)n;
    if (!h->out_scratch) {
        h->pending_off += n;
        if (h->pending_off >= h->pending_len) h->pending_off = h->pending_len = 0;
        return;
    }
    if (n >= h->out_len) return;
    /* the rest of the scratch waits, copied, in front of anything kept already */
    size_t rest = h->out_len - n, kept = h->pending_len - h->pending_off;
    if (h->pending_cap < rest + kept) {
        uint8_t *grown = malloc(rest + kept);
        if (!grown) {
            end_with(k, c, ENOMEM);
            return;
        }
        if (kept) memcpy(grown + rest, h->pending + h->pending_off, kept);
        free(h->pending);
        h->pending = grown;
        h->pending_cap = rest + kept;
    } else if (kept) {
        memmove(h->pending + rest, h->pending + h->pending_off, kept);
    }
    memcpy(h->pending, k->h2_state->scratch + n, rest);
    h->pending_len = rest + kept;
    h->pending_off = 0;
}
