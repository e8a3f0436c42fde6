/* libFuzzer harness for the HTTP/1.1 response parser (src/twload/engine/core/http1_parse.c).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see `make fuzz`). The input is a raw
 * byte stream from a peer, as in fuzz/corpus/; a hash of it picks the HEAD flag, the head
 * cap and the split points, so the seeds stay plain HTTP and mutations explore all three.
 *
 * Each input is parsed as a kept-alive connection would be (t1_init again after every
 * T1_DONE, the surplus fed to the next response) three ways: whole, in pieces cut at
 * data-derived points, and byte by byte. Checked: `used` <= the piece's length, and all
 * of it on T1_MORE; statuses and keep_alive in range; the three ways give identical
 * results. Each piece is copied into a buffer of exactly its size, so ASan flags any
 * read beyond it.
 *
 * A reference decoder (ref_* below) gives its own verdict on the same stream: where each
 * response ends, its status and keep_alive, and the error class. It is written plainly (one
 * whole buffer, line by line, no fast paths, no code shared with the parser) from RFC 9112
 * section 6.3 and the decisions in docs/ARCHITECTURE.md "Server surprises": a second
 * Content-Length (or a list) is a protocol error, HTTP/1.0 with Transfer-Encoding closes after
 * the message (RFC 9112 section 6.1), HEAD/204/304 (and 101: rule 1 names every 1xx) end at the
 * blank line before any Transfer-Encoding check, 1xx interim heads are skipped, 101 is final,
 * and the cap on a chunk-size line counts that line only. Its grammar is the parser's
 * documented one (http1_parse.h): CRLF only, empty lines before a status line, no obs-fold,
 * each head and trailer section capped at max_head_bytes (over it: T1_ERR_HEAD_TOO_LARGE; a
 * chunk-size line over it: T1_ERR_PROTOCOL). Where the parser finds a wrong Content-Length is
 * left to it (see R_MORE_OR_ERR).
 *
 * Any disagreement between the parser and the reference aborts, so libFuzzer saves the input
 * as a crash; the input (escaped) and both verdicts are printed to stderr first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1_parse.h"

#define MAX_EVENTS 64

typedef struct event {
    int rc;
    int status;
    int keep_alive;
    size_t end; /* offset in the stream where a response ended (T1_DONE) */
} event;

typedef struct trace {
    event ev[MAX_EVENTS];
    int n;
    int eof;
} trace;

static void require(int ok)
{
    if (!ok)
        abort();
}

static uint64_t fnv1a(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ull;
    return h;
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Parse `d` as responses on one connection, fed in pieces: mode 0 whole, 1 random sizes
 * of 1-64 bytes drawn from `seed`, 2 byte by byte. */
static void parse(const uint8_t *d, size_t n, int head, uint32_t cap, uint64_t seed, int mode, trace *t)
{
    t1_parser p;
    size_t at = 0;
    uint64_t rnd = seed | 1;
    t->n = 0;
    t1_init(&p, head, cap);
    while (at < n) {
        size_t left = n - at;
        size_t len = left;
        if (mode == 1)
            len = 1 + (size_t)(next_random(&rnd) % (left < 64 ? left : 64));
        else if (mode == 2)
            len = 1;
        if (len > left)
            len = left;
        uint8_t *piece = malloc(len);
        require(piece != NULL);
        memcpy(piece, d + at, len);
        size_t off = 0;
        int rc = T1_MORE;
        while (off < len) {
            size_t used = 12345;
            rc = t1_feed(&p, (const char *)piece + off, len - off, &used);
            require(used <= len - off);
            if (rc == T1_MORE) {
                require(used == len - off);
                off = len;
                break;
            }
            if (rc < 0) {
                require(rc == T1_ERR_PROTOCOL || rc == T1_ERR_HEAD_TOO_LARGE);
                break;
            }
            require(rc == T1_DONE);
            require(used > 0); /* a response has at least a head */
            require(p.status >= 100 && p.status <= 999 && p.keep_alive <= 1);
            off += used;
            require(t->n < MAX_EVENTS);
            t->ev[t->n++] = (event){T1_DONE, p.status, p.keep_alive, at + off};
            if (t->n == MAX_EVENTS) {
                rc = T1_DONE;
                break;
            }
            /* after T1_DONE the parser stays done until t1_init */
            size_t again = 1;
            require(t1_feed(&p, (const char *)piece + off, len - off, &again) == T1_DONE && again == 0);
            t1_init(&p, head, cap);
        }
        free(piece);
        if (rc < 0) {
            size_t zero = 1;
            require(t1_feed(&p, "x", 1, &zero) == rc && zero == 0); /* errors are sticky */
            t->ev[t->n++] = (event){rc, 0, 0, 0};
            t->eof = t1_eof(&p);
            require(t->eof == rc);
            return;
        }
        if (t->n == MAX_EVENTS)
            break;
        at += len;
    }
    t->eof = t1_eof(&p);
    require(t->eof == T1_DONE || t->eof == T1_ERR_EOF);
    if (t->eof == T1_DONE && t->n < MAX_EVENTS && at == n)
        require(p.keep_alive == 0); /* only a close-delimited body ends at EOF */
}

static void same(const trace *a, const trace *b)
{
    require(a->n == b->n && a->eof == b->eof);
    for (int i = 0; i < a->n; i++)
        require(a->ev[i].rc == b->ev[i].rc && a->ev[i].status == b->ev[i].status
                && a->ev[i].keep_alive == b->ev[i].keep_alive && a->ev[i].end == b->ev[i].end);
}

/* ---- the reference decoder -------------------------------------------------------- */

#define R_ERR_ANY (-9) /* either error class: see R_MORE_OR_ERR */
#define R_LIMIT ((uint64_t)1 << 62) /* larger lengths and chunk sizes are refused (http1_parse.c) */

enum { R_END = -1, R_OVER = -2 }; /* ref_next(): the stream ended; the byte is over the cap */

/* Reads bytes of one head, trailer section or chunk-size line, counting them against a cap. */
typedef struct ref_reader {
    const uint8_t *d;
    size_t n, i;
    uint64_t count, cap;
} ref_reader;

static int ref_next(ref_reader *r)
{
    if (r->i >= r->n)
        return R_END;
    if (r->count >= r->cap)
        return R_OVER;
    r->count++;
    return r->d[r->i++];
}

static int ref_tchar(int c)
{
    return c >= 0 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c && strchr("!#$%&'*+-.^_`|~", c)));
}

static int ref_text(int c) /* what a field value, reason phrase or chunk extension may hold */
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int ref_ows(int c)
{
    return c == ' ' || c == '\t';
}

static int ref_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int ref_name_is(const uint8_t *s, size_t len, const char *name)
{
    if (len != strlen(name))
        return 0;
    for (size_t k = 0; k < len; k++) {
        int c = s[k];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != name[k])
            return 0;
    }
    return 1;
}

/* What a head says about framing. */
typedef struct ref_head {
    int status, minor;
    int cl_fields;       /* Content-Length fields seen */
    uint64_t length;
    int te;              /* a Transfer-Encoding field was seen */
    int chunked_count;   /* "chunked" codings */
    int chunked_last;    /* the last coding is chunked */
    int close, keepalive; /* Connection tokens */
} ref_head;

/* One Content-Length element [a, b) without its OWS: 1*DIGIT, at most R_LIMIT (0 and *x), else -1. */
static int ref_number(const uint8_t *a, const uint8_t *b, uint64_t *x)
{
    *x = 0;
    if (a == b)
        return -1;
    for (; a < b; a++) {
        if (*a < '0' || *a > '9' || *x > (R_LIMIT - (uint64_t)(*a - '0')) / 10)
            return -1;
        *x = *x * 10 + (uint64_t)(*a - '0');
    }
    return 0;
}

/* A Content-Length value [v, e), `have` a Content-Length field earlier in this head: 0 with
 * *length, or -1. Right is OWS 1*DIGIT OWS and no earlier field: a second field or a list,
 * even of equal values ("5, 5"), is refused (docs/ARCHITECTURE.md "Server surprises"). With
 * `partial` the value is cut short (by the cap or the stream's end): -1 only if no byte that
 * could follow makes it right. */
static int ref_content_length(const uint8_t *v, const uint8_t *e, int have, int partial, uint64_t *length)
{
    const uint8_t *a = v, *b = e;
    uint64_t x;
    if (have)
        return -1;
    while (a < b && ref_ows(*a))
        a++;
    while (b > a && ref_ows(b[-1]))
        b--;
    if (partial) { /* digits so far, OWS after them */
        const uint8_t *digits = a;
        while (digits < b && *digits >= '0' && *digits <= '9')
            digits++;
        return digits == b && (a == b || ref_number(a, b, &x) == 0) ? 0 : -1;
    }
    if (ref_number(a, b, &x) < 0) /* also a list: a comma is no digit */
        return -1;
    *length = x;
    return 0;
}

/* Transfer-Encoding (te) or Connection [v, e): RFC 9110 section 5.6.1 lists of
 * token [OWS ";" parameters], commas inside quoted strings not splitting, empty elements
 * ignored. An element counts as its token only if nothing but OWS or ";..." follows it. */
static void ref_list(const uint8_t *v, const uint8_t *e, ref_head *h, int te)
{
    while (v < e) {
        const uint8_t *end = v;
        int quote = 0;
        for (; end < e; end++) { /* this element's end: a comma outside quotes */
            if (quote) {
                if (*end == '\\' && end + 1 < e)
                    end++;
                else if (*end == '"')
                    quote = 0;
            } else if (*end == '"') {
                quote = 1;
            } else if (*end == ',') {
                break;
            }
        }
        const uint8_t *a = v;
        while (a < end && ref_ows(*a))
            a++;
        if (a < end) { /* not an empty element */
            const uint8_t *t = a;
            while (t < end && ref_tchar(*t))
                t++;
            const uint8_t *rest = t;
            while (rest < end && ref_ows(*rest))
                rest++;
            int bare = t > a && (rest == end || *rest == ';');
            size_t len = bare ? (size_t)(t - a) : 0;
            if (te) {
                int chunked = ref_name_is(a, len, "chunked");
                h->chunked_count += chunked;
                h->chunked_last = chunked;
            } else if (ref_name_is(a, len, "close")) {
                h->close = 1;
            } else if (ref_name_is(a, len, "keep-alive")) {
                h->keepalive = 1;
            }
        }
        v = end + 1;
    }
}

/* R_ERR_ANY: a wrong Content-Length and the cap; R_MORE_OR_ERR: a wrong Content-Length and the
 * stream's end. When the parser finds a wrong Content-Length, at its first wrong byte, at the end
 * of its line or of the head, is its choice: the verdict is an error (T1_ERR_PROTOCOL) once the
 * head is whole; before, an error or (with the stream cut) no verdict yet, or (over the cap) either
 * error class. */
#define R_MORE_OR_ERR (-10)

/* One head (status line, fields, blank line) from d[*at], or with `trailer` a trailer section
 * (fields, blank line). T1_DONE with *at after it, T1_MORE (the stream ended), or an error. */
static int ref_read_head(const uint8_t *d, size_t n, size_t *at, uint32_t cap, int trailer, ref_head *h)
{
    ref_reader r = {d, n, *at, 0, cap};
    int c, bad_cl = 0;
    const uint8_t *cl_value = NULL, *cl_end = NULL; /* the Content-Length value being read, its CR */
    uint64_t partial_length;
#define NEXT()                                                                                    \
    do {                                                                                          \
        c = ref_next(&r);                                                                         \
        if (c < 0) {                                                                              \
            partial_length = h->length;                                                           \
            if (cl_value                                                                          \
                && ref_content_length(cl_value, cl_end ? cl_end : d + r.i, h->cl_fields > 0,      \
                                      !cl_end, &partial_length) < 0)                              \
                bad_cl = 1;                                                                       \
            if (c == R_END)                                                                       \
                return bad_cl ? R_MORE_OR_ERR : T1_MORE;                                          \
            return bad_cl ? R_ERR_ANY : T1_ERR_HEAD_TOO_LARGE;                                    \
        }                                                                                         \
    } while (0)
#define EXPECT(ok)                                                                                \
    do {                                                                                          \
        if (!(ok))                                                                                \
            return T1_ERR_PROTOCOL;                                                               \
    } while (0)

    memset(h, 0, sizeof *h);
    if (!trailer) {
        NEXT();
        while (c == '\r') { /* empty lines before the status line */
            NEXT();
            EXPECT(c == '\n');
            NEXT();
        }
        for (const char *s = "HTTP/1."; *s; s++) {
            if (*s != 'H')
                NEXT();
            EXPECT(c == *s);
        }
        NEXT();
        EXPECT(c >= '0' && c <= '9');
        h->minor = c - '0';
        NEXT();
        EXPECT(c == ' ');
        for (int k = 0; k < 3; k++) {
            NEXT();
            EXPECT(c >= '0' && c <= '9');
            h->status = h->status * 10 + (c - '0');
        }
        EXPECT(h->status >= 100);
        NEXT();
        if (c == ' ') { /* a reason phrase (the SP before an empty one may be missing) */
            do
                NEXT();
            while (ref_text(c));
        }
        EXPECT(c == '\r');
        NEXT();
        EXPECT(c == '\n');
    }
    for (;;) {
        NEXT();
        if (c == '\r') {
            NEXT();
            EXPECT(c == '\n');
            *at = r.i;
            return bad_cl ? T1_ERR_PROTOCOL : T1_DONE;
        }
        EXPECT(ref_tchar(c));
        const uint8_t *name = d + r.i - 1;
        do
            NEXT();
        while (ref_tchar(c));
        EXPECT(c == ':');
        size_t name_len = (size_t)(d + r.i - 1 - name);
        const uint8_t *value = d + r.i;
        if (!trailer && ref_name_is(name, name_len, "content-length"))
            cl_value = value;
        do
            NEXT();
        while (ref_text(c));
        EXPECT(c == '\r');
        const uint8_t *value_end = d + r.i - 1;
        cl_end = value_end;
        NEXT();
        EXPECT(c == '\n');
        cl_end = NULL;
        if (trailer)
            continue; /* a trailer decides no framing */
        if (cl_value) {
            if (ref_content_length(value, value_end, h->cl_fields > 0, 0, &h->length) < 0)
                bad_cl = 1;
            h->cl_fields++;
            cl_value = NULL;
        } else if (ref_name_is(name, name_len, "transfer-encoding")) {
            h->te = 1;
            ref_list(value, value_end, h, 1);
        } else if (ref_name_is(name, name_len, "connection")) {
            ref_list(value, value_end, h, 0);
        }
    }
#undef NEXT
#undef EXPECT
}

/* A chunked body from d[*at]: T1_DONE with *at after its trailer section, T1_MORE, or an error. */
static int ref_chunked(const uint8_t *d, size_t n, size_t *at, uint32_t cap)
{
    for (;;) {
        /* chunk-size line: 1*HEXDIG [ BWS ";" extensions ] CRLF, at most cap bytes */
        ref_reader r = {d, n, *at, 0, cap};
        uint64_t size = 0;
        int c = ref_next(&r), v;
#define CHUNK_NEXT()                                                     \
    do {                                                                 \
        c = ref_next(&r);                                                \
        if (c == R_END)                                                  \
            return T1_MORE;                                              \
        if (c == R_OVER)                                                 \
            return T1_ERR_PROTOCOL;                                      \
    } while (0)
        if (c == R_END)
            return T1_MORE;
        if (c == R_OVER || ref_hex(c) < 0)
            return T1_ERR_PROTOCOL;
        while ((v = ref_hex(c)) >= 0) {
            if (size > (R_LIMIT - (uint64_t)v) / 16)
                return T1_ERR_PROTOCOL;
            size = size * 16 + (uint64_t)v;
            CHUNK_NEXT();
        }
        while (ref_ows(c))
            CHUNK_NEXT();
        if (c == ';') {
            do
                CHUNK_NEXT();
            while (ref_text(c));
        }
        if (c != '\r')
            return T1_ERR_PROTOCOL;
        CHUNK_NEXT();
        if (c != '\n')
            return T1_ERR_PROTOCOL;
        if (size == 0) { /* the last chunk: a trailer section, capped like a head */
            ref_head ignored;
            *at = r.i;
            return ref_read_head(d, n, at, cap, 1, &ignored);
        }
        if (n - r.i < size)
            return T1_MORE;
        r.i += (size_t)size;
        r.count = 0, r.cap = 2; /* the CRLF after the data, on its own: no size line's cap */
        CHUNK_NEXT();
        if (c != '\r')
            return T1_ERR_PROTOCOL;
        CHUNK_NEXT();
        if (c != '\n')
            return T1_ERR_PROTOCOL;
        *at = r.i;
#undef CHUNK_NEXT
    }
}

typedef struct ref_result {
    int rc;              /* T1_DONE, T1_MORE (the stream ended first) or an error (R_ERR_ANY too) */
    int status, keep_alive;
    size_t end;          /* T1_DONE: where the response ends */
    int close_delimited; /* T1_MORE: in a body that the server's close ends */
} ref_result;

/* The response that starts at d[at] (RFC 9112 section 6.3). */
static ref_result ref_response(const uint8_t *d, size_t n, size_t at, int head_request, uint32_t cap)
{
    ref_result res = {T1_MORE, 0, 0, 0, 0};
    ref_head h;
    for (;;) {
        res.rc = ref_read_head(d, n, &at, cap, 0, &h);
        if (res.rc != T1_DONE)
            return res;
        if (h.status >= 200 || h.status == 101)
            break;
        /* 1xx interim (100, 103...): skipped, the final response follows with a head of its own */
    }
    int no_body = head_request || h.status == 204 || h.status == 304 || h.status == 101; /* rule 1 */
    if (!no_body && ((h.te && h.cl_fields) || h.chunked_count > 1)) { /* rule 3; chunked twice */
        res.rc = T1_ERR_PROTOCOL;
        return res;
    }
    res.status = h.status;
    res.keep_alive = !h.close && (h.minor >= 1 || h.keepalive);
    if (h.minor == 0 && h.te) /* RFC 9112 section 6.1 */
        res.keep_alive = 0;
    if (h.status == 101)
        res.keep_alive = 0; /* the connection speaks another protocol now */
    res.rc = T1_DONE;
    res.end = at;
    if (no_body)
        return res;
    if (h.te && h.chunked_last) { /* rule 4 */
        res.rc = ref_chunked(d, n, &at, cap);
        res.end = at;
        return res;
    }
    if (!h.te && h.cl_fields) { /* rule 6 */
        if (n - at < h.length) {
            res.rc = T1_MORE;
            return res;
        }
        res.end = at + (size_t)h.length;
        return res;
    }
    /* TE without chunked last, or no framing: the body runs to the server's close (rule 4, 8) */
    res.rc = T1_MORE;
    res.keep_alive = 0;
    res.close_delimited = 1;
    return res;
}

/* The whole stream as parse() reads it, in the same trace form. */
static void reference(const uint8_t *d, size_t n, int head, uint32_t cap, trace *t)
{
    size_t at = 0;
    t->n = 0;
    while (at < n) {
        ref_result r = ref_response(d, n, at, head, cap);
        if (r.rc == T1_MORE) {
            t->eof = r.close_delimited ? T1_DONE : T1_ERR_EOF;
            return;
        }
        /* R_MORE_OR_ERR: as an error event, which agrees() also matches with no event and EOF */
        if (r.rc != T1_DONE) {
            t->ev[t->n++] = (event){r.rc, 0, 0, 0};
            t->eof = r.rc;
            return;
        }
        t->ev[t->n++] = (event){T1_DONE, r.status, r.keep_alive, r.end};
        at = r.end;
        if (t->n == MAX_EVENTS) {
            t->eof = T1_DONE;
            return;
        }
    }
    t->eof = T1_ERR_EOF;
}

static int same_rc(int ref, int got)
{
    return ref == got || ((ref == R_ERR_ANY || ref == R_MORE_OR_ERR) && got < 0 && got != T1_ERR_EOF);
}

static int agrees(const trace *ref, const trace *got)
{
    int n = ref->n;
    if (n && ref->ev[n - 1].rc == R_MORE_OR_ERR && got->n == n - 1 && got->eof == T1_ERR_EOF)
        n--; /* the parser has no verdict yet on the last response: it needs more of its head */
    else if (got->n != n || !same_rc(ref->eof, got->eof))
        return 0;
    for (int i = 0; i < n; i++)
        if (!same_rc(ref->ev[i].rc, got->ev[i].rc) || ref->ev[i].status != got->ev[i].status
            || ref->ev[i].keep_alive != got->ev[i].keep_alive || ref->ev[i].end != got->ev[i].end)
            return 0;
    return 1;
}

static void print_escaped(FILE *f, const uint8_t *d, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        if (c == '\r')
            fputs("\\r", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_trace(FILE *f, const char *who, const trace *t)
{
    fprintf(f, "  %-7s", who);
    for (int i = 0; i < t->n; i++) {
        if (t->ev[i].rc == T1_DONE)
            fprintf(f, " [%d ka=%d end=%zu]", t->ev[i].status, t->ev[i].keep_alive, t->ev[i].end);
        else
            fprintf(f, " [error %d]", t->ev[i].rc);
    }
    fprintf(f, " eof=%d\n", t->eof);
}

/* The parser's trace `got` differs from the reference's: abort, libFuzzer saves the input. */
static void disagreement(const uint8_t *d, size_t n, int head, uint32_t cap, const trace *ref, const trace *got)
{
    fprintf(stderr, "oracle: disagreement (head=%d cap=%u): ", head, cap);
    print_escaped(stderr, d, n);
    fputc('\n', stderr);
    print_trace(stderr, "parser", got);
    print_trace(stderr, "oracle", ref);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static trace whole, split, bytes, ref;
    uint64_t h = fnv1a(data, size);
    int head = (h & 7) == 0;  /* one input in eight as the answer to HEAD */
    uint32_t cap = (h >> 3) & 3 ? 65536u : (uint32_t)(16 + ((h >> 5) & 255)); /* a small cap in four */

    parse(data, size, head, cap, 0, 0, &whole);
    parse(data, size, head, cap, h >> 13, 1, &split);
    same(&whole, &split);
    if (size <= 4096) {
        parse(data, size, head, cap, 0, 2, &bytes);
        same(&whole, &bytes);
    }
    reference(data, size, head, cap, &ref);
    if (!agrees(&ref, &whole))
        disagreement(data, size, head, cap, &ref, &whole);
    return 0;
}
