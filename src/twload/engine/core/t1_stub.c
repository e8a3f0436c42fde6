/* Stand-in HTTP/1.1 response framing (see t1_stub.h): byte at a time, lines cut to 96 bytes. */
#define _GNU_SOURCE
#include "t1_stub.h"

#include <string.h>
#include <strings.h>

enum { ST_STATUS, ST_HEADER, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_END, ST_TRAILER, ST_TO_EOF, ST_DONE };

void t1_init(t1_parser *p, int head_request, uint32_t max_head_bytes) {
    memset(p, 0, sizeof *p);
    p->head_request = (uint8_t)(head_request != 0);
    p->max_head = max_head_bytes;
}

static int header_line(t1_parser *p) {
    char *l = p->line;
    size_t n = p->line_len;
    if (p->state == ST_STATUS) {
        if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[8] != ' ') return T1_ERR_PROTOCOL;
        if (l[9] < '0' || l[9] > '9' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9') return T1_ERR_PROTOCOL;
        p->http10 = l[7] == '0';
        p->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
        p->state = ST_HEADER;
        return T1_MORE;
    }
    char *colon = memchr(l, ':', n);
    if (!colon) return T1_ERR_PROTOCOL;
    size_t name = (size_t)(colon - l);
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (name == 14 && strncasecmp(l, "content-length", 14) == 0) {
        p->has_length = 1;
        p->remaining = 0;
        for (; *v >= '0' && *v <= '9'; v++) p->remaining = p->remaining * 10 + (uint64_t)(*v - '0');
    } else if (name == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
        p->chunked = strcasestr(v, "chunked") != NULL;
    } else if (name == 10 && strncasecmp(l, "connection", 10) == 0) {
        if (strcasestr(v, "close")) p->conn_close = 1;
        if (strcasestr(v, "keep-alive")) p->conn_keep = 1;
    }
    return T1_MORE;
}

static int head_done(t1_parser *p) {
    if (p->status >= 100 && p->status < 200 && p->status != 101) {  /* interim: the next head follows */
        uint32_t max = p->max_head, used = p->head_bytes;
        int head = p->head_request;
        t1_init(p, head, max);
        p->head_bytes = used;
        return T1_MORE;
    }
    p->keep_alive = !p->conn_close && (!p->http10 || p->conn_keep);
    if (p->head_request || p->status == 204 || p->status == 304) {
        p->state = ST_DONE;
        return T1_DONE;
    }
    if (p->chunked) p->state = ST_CHUNK_SIZE;
    else if (p->has_length) p->state = p->remaining ? ST_BODY : ST_DONE;
    else {
        p->state = ST_TO_EOF;
        p->keep_alive = 0;
    }
    return p->state == ST_DONE ? T1_DONE : T1_MORE;
}

int t1_feed(t1_parser *p, const char *buf, size_t len, size_t *used) {
    size_t i = 0;
    while (i < len) {
        if (p->state == ST_BODY || p->state == ST_CHUNK_DATA) {
            size_t take = len - i < p->remaining ? len - i : (size_t)p->remaining;
            p->remaining -= take;
            i += take;
            if (p->remaining == 0) {
                if (p->state == ST_BODY) {
                    p->state = ST_DONE;
                    *used = i;
                    return T1_DONE;
                }
                p->state = ST_CHUNK_END;
            }
            continue;
        }
        if (p->state == ST_TO_EOF) {
            i = len;
            break;
        }
        char ch = buf[i++];
        if (p->state == ST_STATUS || p->state == ST_HEADER) {
            if (++p->head_bytes > p->max_head) return T1_ERR_HEAD_TOO_LARGE;
        }
        if (ch != '\n') {
            if (ch != '\r' && p->line_len < sizeof p->line - 1) p->line[p->line_len++] = ch;
            continue;
        }
        p->line[p->line_len] = 0;
        int r = T1_MORE;
        switch (p->state) {
        case ST_STATUS:
            r = header_line(p);
            break;
        case ST_HEADER:
            r = p->line_len == 0 ? head_done(p) : header_line(p);
            break;
        case ST_CHUNK_SIZE: {
            uint64_t size = 0;
            int digits = 0;
            for (const char *c = p->line; *c; c++, digits++) {
                int d = *c >= '0' && *c <= '9' ? *c - '0' : (*c | 32) >= 'a' && (*c | 32) <= 'f' ? (*c | 32) - 'a' + 10 : -1;
                if (d < 0) break;
                if (size >> 59) return T1_ERR_PROTOCOL;
                size = size * 16 + (uint64_t)d;
            }
            if (!digits) return T1_ERR_PROTOCOL;
            p->remaining = size;
            p->state = size ? ST_CHUNK_DATA : ST_TRAILER;
            break;
        }
        case ST_CHUNK_END:
            if (p->line_len) return T1_ERR_PROTOCOL;
            p->state = ST_CHUNK_SIZE;
            break;
        case ST_TRAILER:
            if (p->line_len == 0) {
                p->state = ST_DONE;
                r = T1_DONE;
            }
            break;
        default:
            return T1_ERR_PROTOCOL;
        }
        p->line_len = 0;
        if (r != T1_MORE) {
            *used = i;
            return r;
        }
    }
    *used = i;
    return T1_MORE;
}

int t1_eof(const t1_parser *p) { return p->state == ST_TO_EOF ? T1_DONE : T1_ERR_EOF; }
