/* Unit test of the C response parser (src/twload/engine/core/http1_parse.c).
 *
 * Every case is fed whole, byte by byte, split at every offset, and (when short)
 * split at every pair of offsets: the outcome must not depend on how the network
 * cut the bytes. Built and run by tests/unit/engine/core/test_http1_parse_c.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1_parse.h"

#define KIB64 65536u

typedef struct tcase {
    const char *name;
    const char *data;
    size_t len;
    int head_request;
    uint32_t max_head;  /* 0: 64 KiB */
    int rc;             /* T1_DONE, T1_MORE (then `eof` is what t1_eof says) or an error */
    long used;          /* T1_DONE: bytes of the response; -1: all of data */
    int status;         /* T1_DONE, or T1_MORE with eof T1_DONE */
    int keep_alive;
    int eof;
} tcase;

typedef struct outcome {
    int rc;
    size_t used;
    int status;
    int keep_alive;
    int eof;
} outcome;

static int failures;
static long runs;

/* Feed `c` in pieces ending at cuts[0..ncuts) (sorted) and then at its end. */
static outcome run(const tcase *c, const size_t *cuts, int ncuts)
{
    t1_parser p;
    outcome o = {T1_MORE, 0, 0, 0, 0};
    size_t at = 0;
    t1_init(&p, c->head_request, c->max_head ? c->max_head : KIB64);
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : c->len;
        size_t used = 0;
        /* a copy of exactly this piece: ASan then catches any read beyond it */
        char *piece = malloc(to - at ? to - at : 1);
        if (!piece)
            abort();
        memcpy(piece, c->data + at, to - at);
        o.rc = t1_feed(&p, piece, to - at, &used);
        free(piece);
        runs++;
        if (used > to - at) {
            printf("FAIL %s: used %zu > len %zu\n", c->name, used, to - at);
            failures++;
        }
        if (o.rc == T1_DONE) {
            o.used = at + used;
            break;
        }
        if (o.rc < 0)
            break;
        if (used != to - at) {
            printf("FAIL %s: T1_MORE but used %zu of %zu\n", c->name, used, to - at);
            failures++;
        }
        at = to;
    }
    o.eof = t1_eof(&p);
    o.status = p.status;
    o.keep_alive = p.keep_alive;
    return o;
}

static void check(const tcase *c, outcome o, const char *how)
{
    size_t want_used = c->used < 0 ? c->len : (size_t)c->used;
    int bad = o.rc != c->rc;
    if (!bad && c->rc == T1_DONE)
        bad = o.used != want_used || o.status != c->status || o.keep_alive != c->keep_alive;
    if (!bad && c->rc == T1_MORE) {
        bad = o.eof != c->eof;
        if (!bad && c->eof == T1_DONE)
            bad = o.status != c->status || o.keep_alive != c->keep_alive;
    }
    if (bad) {
        printf("FAIL %s (%s): rc %d used %zu status %d keep_alive %d eof %d; "
               "want rc %d used %zu status %d keep_alive %d eof %d\n",
               c->name, how, o.rc, o.used, o.status, o.keep_alive, o.eof,
               c->rc, want_used, c->status, c->keep_alive, c->eof);
        failures++;
    }
}

static void check_all_splits(const tcase *c)
{
    size_t cuts[2];
    char how[64];
    check(c, run(c, NULL, 0), "whole");
    for (size_t i = 0; i <= c->len; i++) {
        cuts[0] = i;
        snprintf(how, sizeof how, "split at %zu", i);
        check(c, run(c, cuts, 1), how);
    }
    if (c->len <= 400) {
        for (size_t i = 0; i <= c->len; i++)
            for (size_t j = i; j <= c->len; j++) {
                cuts[0] = i;
                cuts[1] = j;
                snprintf(how, sizeof how, "split at %zu and %zu", i, j);
                check(c, run(c, cuts, 2), how);
            }
    }
    /* byte by byte */
    {
        t1_parser p;
        outcome o = {T1_MORE, 0, 0, 0, 0};
        t1_init(&p, c->head_request, c->max_head ? c->max_head : KIB64);
        for (size_t i = 0; i < c->len; i++) {
            size_t used = 0;
            char byte = c->data[i];
            o.rc = t1_feed(&p, &byte, 1, &used);
            runs++;
            if (o.rc == T1_DONE)
                o.used = i + used;
            if (o.rc != T1_MORE)
                break;
        }
        o.eof = t1_eof(&p);
        o.status = p.status;
        o.keep_alive = p.keep_alive;
        check(c, o, "byte by byte");
    }
}

#define CASE(name, data, ...) {name, data, sizeof(data) - 1, __VA_ARGS__}
/* head_request, max_head, rc, used, status, keep_alive, eof */
#define DONE_(used, status, ka) T1_DONE, used, status, ka, T1_DONE
#define MORE_(eof, status, ka) T1_MORE, -1, status, ka, eof
#define ERR_(rc) rc, -1, 0, 0, rc

#define CL "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"
#define CHUNKED "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
#define NEXT "HTTP/1.1 200 OK\r\n" /* bytes of the next response, which must not be consumed */

static const tcase CASES[] = {
    /* Content-Length */
    CASE("content-length", CL, 0, 0, DONE_(-1, 200, 1)),
    CASE("content-length, surplus is the next response's", CL NEXT, 0, 0, DONE_(sizeof(CL) - 1, 200, 1)),
    CASE("content-length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" NEXT, 0, 0,
         DONE_(sizeof("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") - 1, 200, 1)),
    CASE("header names are case-insensitive", "HTTP/1.1 200 OK\r\ncONTENT-lENGTH: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 1)),
    CASE("content-length OWS", "HTTP/1.1 200 OK\r\nContent-Length: \t 2 \t\r\n\r\nok", 0, 0, DONE_(-1, 200, 1)),
    CASE("content-length leading zeros", "HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok", 0, 0, DONE_(-1, 200, 1)),
    /* repeated, even identical: refused, as llhttp and nginx do (RFC 9110 section 8.6 allows it) */
    CASE("content-length identical duplicates", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length identical list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2,2\r\n\r\nok", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length identical list of two", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", 0, 0,
         ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length identical duplicates on HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
         1, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length with a trailing comma", "HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok", 0, 0,
         ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length after a 1xx's is the first", "HTTP/1.1 103 Early Hints\r\nContent-Length: 2\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 1)),
    CASE("content-length conflicting", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length conflicting list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length not a number", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length plus sign", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length two numbers", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nx", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length only commas", "HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length 2^62 is accepted", "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\nabc",
         0, 0, MORE_(T1_ERR_EOF, 0, 0)),
    CASE("content-length over 2^62", "HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387905\r\n\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length over 2^64", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("content-length truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", 0, 0,
         MORE_(T1_ERR_EOF, 0, 0)),
    CASE("a Content-Length in the body is body", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nContent-Length: 5\r\n",
         0, 0, MORE_(T1_DONE, 200, 0)),
    /* chunked */
    CASE("chunked", CHUNKED, 0, 0, DONE_(-1, 201, 1)),
    CASE("chunked, surplus", CHUNKED NEXT, 0, 0, DONE_(sizeof(CHUNKED) - 1, 201, 1)),
    CASE("chunked, case-insensitive", "HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n",
         0, 0, DONE_(-1, 200, 1)),
    CASE("chunked, hex sizes", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "A\r\n0123456789\r\n0b\r\n0123456789a\r\n000\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("chunked, extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3;name=value;q=\"a;b\\\"c\"\r\nabc\r\n2 ; x\r\nde\r\n0;last\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("chunked, trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nContent-Length: 99\r\n\r\n" NEXT, 0, 0,
         DONE_(sizeof("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nContent-Length: 99\r\n\r\n") - 1, 200, 1)),
    CASE("chunked, bad trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Bad\r\n\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("chunked, gzip then chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
         0, 0, DONE_(-1, 200, 1)),
    CASE("chunked, coding list over two fields", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
         "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("chunked not last: close-delimited", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
         0, 0, MORE_(T1_DONE, 200, 0)),
    CASE("unknown coding only: close-delimited", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", 0, 0,
         MORE_(T1_DONE, 200, 0)),
    CASE("not quite chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked/1\r\n\r\n0\r\n\r\n", 0, 0,
         MORE_(T1_DONE, 200, 0)),
    CASE("chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("transfer-encoding and content-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n0\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("empty chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("negative chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("chunk size 2^62", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000000000000000\r\nabc",
         0, 0, MORE_(T1_ERR_EOF, 0, 0)),
    CASE("chunk size over 2^62", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000000000000001\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("chunk size over 2^64", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffffff\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("chunk data without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
         0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("chunked cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 0, 0,
         MORE_(T1_ERR_EOF, 0, 0)),
    CASE("chunked without the final CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", 0, 0,
         MORE_(T1_ERR_EOF, 0, 0)),
    CASE("overlong chunk-size line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 0, 64,
         ERR_(T1_ERR_PROTOCOL)),
    /* the cap counts each chunk-size line alone (CRLF included), not the CRLF after its chunk's data */
    CASE("chunk-size line of 63 bytes, cap 64", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" "a\r\n0\r\n\r\n", 0, 64, DONE_(-1, 200, 1)),
    CASE("chunk-size line of 64 bytes, cap 64", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" "a\r\n0\r\n\r\n", 0, 64, DONE_(-1, 200, 1)),
    CASE("chunk-size lines of 64 bytes one after another, cap 64", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" "a\r\n" "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" "b\r\n0\r\n\r\n", 0, 64, DONE_(-1, 200, 1)),
    CASE("chunk-size line of 65 bytes, cap 64", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n" "a\r\n0\r\n\r\n", 0, 64, ERR_(T1_ERR_PROTOCOL)),
    CASE("overlong trailer section", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\nX-T: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n", 0, 64,
         ERR_(T1_ERR_HEAD_TOO_LARGE)),
    /* close-delimited */
    CASE("close-delimited", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until EOF", 0, 0, MORE_(T1_DONE, 200, 0)),
    CASE("close-delimited without Connection: close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody", 0, 0,
         MORE_(T1_DONE, 200, 0)),
    CASE("close-delimited, empty body", "HTTP/1.1 200 OK\r\n\r\n", 0, 0, MORE_(T1_DONE, 200, 0)),
    CASE("HTTP/1.0 close-delimited", "HTTP/1.0 200 OK\r\n\r\nbody", 0, 0, MORE_(T1_DONE, 200, 0)),
    CASE("EOF inside the head", "HTTP/1.1 200 OK\r\nContent-Len", 0, 0, MORE_(T1_ERR_EOF, 0, 0)),
    CASE("EOF before anything", "", 0, 0, MORE_(T1_ERR_EOF, 0, 0)),
    /* no body */
    CASE("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" NEXT, 1, 0,
         DONE_(sizeof("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n") - 1, 200, 1)),
    CASE("HEAD, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, DONE_(-1, 200, 1)),
    CASE("HEAD, no length", "HTTP/1.1 200 OK\r\n\r\n", 1, 0, DONE_(-1, 200, 1)),
    CASE("204", "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n" NEXT, 0, 0,
         DONE_(sizeof("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n") - 1, 204, 1)),
    CASE("304", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, DONE_(-1, 304, 1)),
    /* no body comes before the framing fields are read (RFC 9112 section 6.3 rule 1, then rule 3) */
    CASE("HEAD with Transfer-Encoding and Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n" NEXT, 1, 0,
         DONE_(sizeof("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") - 1, 200, 1)),
    CASE("204 with Transfer-Encoding and Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 0, 0, DONE_(-1, 204, 1)),
    CASE("304 with Transfer-Encoding and Content-Length", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n" NEXT, 0, 0,
         DONE_(sizeof("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") - 1,
               304, 1)),
    CASE("304 with chunked twice", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0, 0,
         DONE_(-1, 304, 1)),
    CASE("200 with Transfer-Encoding and Content-Length is still refused", "HTTP/1.1 200 OK\r\n"
         "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    /* 1xx */
    CASE("100 Continue skipped", "HTTP/1.1 100 Continue\r\n\r\n" CL, 0, 0, DONE_(-1, 200, 1)),
    CASE("103 Early Hints skipped", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\n" CHUNKED, 0, 0, DONE_(-1, 201, 1)),
    CASE("1xx then HEAD", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 1, 0,
         DONE_(-1, 200, 1)),
    CASE("1xx framing headers are not the final response's",
         "HTTP/1.1 103 Early Hints\r\nConnection: close\r\nContent-Length: 3\r\n\r\n" CL, 0, 0, DONE_(-1, 200, 1)),
    CASE("EOF after a 1xx", "HTTP/1.1 100 Continue\r\n\r\n", 0, 0, MORE_(T1_ERR_EOF, 0, 0)),
    CASE("101 is final", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
         0, 0, DONE_(sizeof("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") - 1,
                     101, 0)),
    /* keep-alive */
    CASE("HTTP/1.1 Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 0)),
    CASE("Connection token list", "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 0)),
    CASE("Connection over two fields", "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nconnection: close \r\n"
         "Content-Length: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 0)),
    CASE("Connection: closed is not close", "HTTP/1.1 200 OK\r\nConnection: closed, xclose\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 1)),
    CASE("X-Connection is not Connection", "HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 1)),
    CASE("HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 0)),
    CASE("HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 1)),
    /* HTTP/1.0 with Transfer-Encoding: framed by it, then closed (RFC 9112 section 6.1) */
    CASE("HTTP/1.0 keep-alive, chunked", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" NEXT, 0, 0,
         DONE_(sizeof("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") - 1,
               200, 0)),
    CASE("HTTP/1.0 chunked", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 0, 0,
         DONE_(-1, 200, 0)),
    CASE("HTTP/1.0 keep-alive, HEAD with Transfer-Encoding", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 1, 0, DONE_(-1, 200, 0)),
    CASE("HTTP/1.1 keep-alive, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 0,
         DONE_(-1, 200, 1)),
    /* status line */
    CASE("status line without reason", "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 503, 1)),
    CASE("status line with empty reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 404, 1)),
    CASE("reason with obs-text", "HTTP/1.1 200 \xc3\x9c\tok\r\nContent-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("empty lines before the status line", "\r\n\r\n" CL, 0, 0, DONE_(-1, 200, 1)),
    CASE("SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("lower-case http", "http/1.1 200 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("HTTP/1", "HTTP/1 200 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("two-digit status", "HTTP/1.1 99 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("status below 100", "HTTP/1.1 099 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("two spaces before the status", "HTTP/1.1  200 OK\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("NUL in the reason", "HTTP/1.1 200 O\0K\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("bare LF ends no line", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("bare CR", "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("an HTTP request is not a response", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    /* header syntax */
    CASE("space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("obs-fold on the first header", "HTTP/1.1 200 OK\r\n X: a\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("header without a colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("empty header name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("NUL in a value", "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("bare CR in a value", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("bare LF in a value", "HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("empty value and odd tokens", "HTTP/1.1 200 OK\r\nX-Empty:\r\n!#$%&'*+-.^_`|~: \x80\xff\r\n"
         "Content-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    /* the whole-line fast paths scan values eight bytes a word: a byte of each kind past the first word */
    CASE("HTAB inside later words of a value", "HTTP/1.1 200 OK\r\nX-Long: abcdefgh\tijklmnopqrs\tt\t\r\n"
         "Content-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("obs-text across words", "HTTP/1.1 200 OK\r\nX: \x80\x81\x82\x83\x84\x85\x86\x87\x88\xfe\xff\r\n"
         "Content-Length: 0\r\n\r\n", 0, 0, DONE_(-1, 200, 1)),
    CASE("DEL in a later word of a value", "HTTP/1.1 200 OK\r\nX: abcdefghijk\x7fl\r\n\r\n", 0, 0,
         ERR_(T1_ERR_PROTOCOL)),
    CASE("control byte in a later word of a value", "HTTP/1.1 200 OK\r\nX: abcdefghijklmn\x1fo\r\n\r\n", 0, 0,
         ERR_(T1_ERR_PROTOCOL)),
    CASE("DEL in a long reason", "HTTP/1.1 200 A reason of some length\x7f\r\n\r\n", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    CASE("Connection: one token in capitals with OWS", "HTTP/1.1 200 OK\r\nConnection: \tCLOSE\t\r\n"
         "Content-Length: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 0)),
    CASE("Connection: Keep-Alive on HTTP/1.0", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
         0, 0, DONE_(-1, 200, 1)),
    CASE("Connection: keep-alive-ish is no token of ours", "HTTP/1.0 200 OK\r\nConnection: keep-alivex\r\n"
         "Content-Length: 2\r\n\r\nok", 0, 0, DONE_(-1, 200, 0)),
    CASE("Transfer-Encoding: a token not chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunkex\r\n\r\nxyz", 0, 0,
         MORE_(T1_DONE, 200, 0)),
    CASE("content-length of 19 digits", "HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000002\r\n\r\nok", 0, 0,
         DONE_(-1, 200, 1)),
    CASE("content-length of 18 digits, then a different one", "HTTP/1.1 200 OK\r\nContent-Length: 000000000000000002\r\n"
         "Content-Length: 3\r\n\r\nok", 0, 0, ERR_(T1_ERR_PROTOCOL)),
    /* head size: max_head_bytes counts the head through its final CRLF */
    CASE("head of exactly max_head_bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: 12345\r\n\r\nok", 0, 48,
         DONE_(-1, 200, 1)),
    CASE("head one byte over max_head_bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: 123456\r\n\r\nok", 0, 48,
         ERR_(T1_ERR_HEAD_TOO_LARGE)),
    CASE("each 1xx head has its own cap", "HTTP/1.1 100 Continue\r\nX: 123456789012345\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: 12345\r\n\r\nok", 0, 48, DONE_(-1, 200, 1)),
    CASE("the cap counts empty lines before the status line", "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: 12345\r\n\r\nok",
         0, 48, ERR_(T1_ERR_HEAD_TOO_LARGE)),
    CASE("body bytes do not count against the cap", "HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n"
         "01234567890123456789012345678901234567890123456789012345678901234567890123456789", 0, 48, DONE_(-1, 200, 1)),
};

/* Several responses on one kept-alive connection, re-initialised after each. */
static void check_pipeline(void)
{
    static const char data[] = CL CHUNKED "HTTP/1.1 100 Continue\r\n\r\n" CL;
    const size_t len = sizeof(data) - 1;
    for (size_t piece = 1; piece <= len; piece++) {
        t1_parser p;
        int statuses[4] = {0};
        int n = 0;
        size_t at = 0;
        t1_init(&p, 0, KIB64);
        while (at < len && n < 4) {
            size_t take = len - at < piece ? len - at : piece;
            size_t used = 0;
            int rc = t1_feed(&p, data + at, take, &used);
            runs++;
            at += used;
            if (rc == T1_DONE) {
                statuses[n++] = p.status;
                if (!p.keep_alive)
                    break;
                t1_init(&p, 0, KIB64);
            } else if (rc != T1_MORE) {
                break;
            }
        }
        if (n != 3 || at != len || statuses[0] != 200 || statuses[1] != 201 || statuses[2] != 200) {
            printf("FAIL pipeline in pieces of %zu: %d responses, at %zu of %zu\n", piece, n, at, len);
            failures++;
        }
    }
}

/* An empty read changes nothing; errors and completion are sticky until t1_init. */
static void check_sticky(void)
{
    t1_parser p;
    size_t used = 99;
    t1_init(&p, 0, KIB64);
    if (t1_feed(&p, NULL, 0, &used) != T1_MORE || used != 0 || t1_eof(&p) != T1_ERR_EOF) {
        printf("FAIL an empty read\n");
        failures++;
    }
    if (t1_feed(&p, "X", 1, &used) != T1_ERR_PROTOCOL || used != 1
        || t1_feed(&p, CL, sizeof(CL) - 1, &used) != T1_ERR_PROTOCOL || used != 0
        || t1_eof(&p) != T1_ERR_PROTOCOL) {
        printf("FAIL errors are not sticky\n");
        failures++;
    }
    t1_init(&p, 0, KIB64);
    if (t1_feed(&p, CL, sizeof(CL) - 1, &used) != T1_DONE || t1_feed(&p, CL, sizeof(CL) - 1, &used) != T1_DONE
        || used != 0 || t1_eof(&p) != T1_DONE) {
        printf("FAIL completion is not sticky\n");
        failures++;
    }
}

/* Oversized heads, at twload's real 64 KiB cap (once the asyncio engine's unit tests' bad peers). */
static void check_large_heads(void)
{
    static char big[200000];
    size_t n = 0;
    tcase c = {"X-Big header of 100,000 bytes", big, 0, 0, 0, ERR_(T1_ERR_HEAD_TOO_LARGE)};
    n += (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + n, 'a', 100000);
    n += 100000;
    memcpy(big + n, "\r\n\r\n", 4);
    c.len = n + 4;
    check(&c, run(&c, NULL, 0), "whole");
    for (size_t cut = 0; cut <= c.len; cut += 997) {
        size_t cuts[1] = {cut};
        check(&c, run(&c, cuts, 1), "split");
    }

    /* filler lines that never end the head */
    n = (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\n");
    for (unsigned i = 0; i < KIB64 / 1000 + 1; i++) {
        n += (size_t)snprintf(big + n, sizeof big - n, "X-Filler: ");
        memset(big + n, 'a', 988);
        n += 988;
        memcpy(big + n, "\r\n", 2);
        n += 2;
    }
    c.name = "filler lines past 64 KiB";
    c.len = n;
    check(&c, run(&c, NULL, 0), "whole");

    /* a head just under the cap, completed in a later read, is fine; just over is not */
    for (int over = 0; over <= 1; over++) {
        const char *tail = "\r\nContent-Length: 0\r\n\r\n";
        size_t head = (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Filler: ");
        size_t fill = KIB64 - head - strlen(tail) + (size_t)over;
        memset(big + head, 'a', fill);
        memcpy(big + head + fill, tail, strlen(tail));
        c.name = over ? "head of 64 KiB + 1" : "head of exactly 64 KiB";
        c.len = head + fill + strlen(tail);
        c.rc = over ? T1_ERR_HEAD_TOO_LARGE : T1_DONE;
        c.used = -1;
        c.status = 200;
        c.keep_alive = 1;
        check(&c, run(&c, NULL, 0), "whole");
        size_t cuts[1] = {head + fill - 10};
        check(&c, run(&c, cuts, 1), "split");
    }
}

int main(void)
{
    size_t ncases = sizeof CASES / sizeof CASES[0];
    for (size_t i = 0; i < ncases; i++)
        check_all_splits(&CASES[i]);
    check_pipeline();
    check_sticky();
    check_large_heads();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("all %zu cases passed (%ld feeds)\n", ncases + 6, runs);
    return 0;
}
