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
 */
#include <stdint.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static trace whole, split, bytes;
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
    return 0;
}
