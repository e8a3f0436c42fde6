/* Incremental HTTP/1.1 response parser: see http1_parse.h for the contract.
 *
 * One byte-at-a-time state machine for the head, chunk-size lines and trailers, with
 * fast paths beside it: a status line or header line wholly in the buffer is read in one
 * go (values scanned eight bytes a word, the usual Content-Length, Connection and
 * Transfer-Encoding values taken whole), as is the blank line after them; runs of bytes
 * that need no decision are skipped likewise; bodies and chunk data are skipped in bulk.
 * Any line a fast path does not take is left, untouched, to the state machine. Nothing
 * is stored but a few flags and counters: header names are matched against the three
 * that decide framing (Content-Length, Transfer-Encoding, Connection) while they stream
 * past, and list values are tokenised the same way. The fuzzer (fuzz/) checks that the
 * fast paths and the byte-at-a-time path agree on every input.
 */
#include "http1_parse.h"

#include <string.h>

enum {
    /* counted states: their bytes count against max_head_bytes */
    S_START, S_START_LF, S_VER, S_MAJOR, S_DOT, S_MINOR, S_SP1, S_CODE, S_AFTER_CODE,
    S_REASON, S_STATUS_LF, S_HDR_START, S_HNAME, S_HVAL, S_HVAL_LF, S_HEAD_END_LF,
    /* chunk-size lines: counted too, but an overlong one is a protocol error */
    S_CHUNK_SIZE0, S_CHUNK_SIZE, S_CHUNK_BWS, S_CHUNK_EXT, S_CHUNK_SIZE_LF,
    S_CHUNK_DATA_CR, S_CHUNK_DATA_LF,
    /* bulk states */
    S_BODY_LEN, S_CHUNK_DATA, S_BODY_CLOSE,
    S_DONE, S_ERR_PROTOCOL, S_ERR_TOO_LARGE,
};

enum { /* p->flags */
    F_CLOSE = 1, F_KEEPALIVE = 2, F_TE = 4, F_TE_CHUNKED_LAST = 8, F_CL = 16, F_TRAILER = 32,
};

enum { /* p->field: the header whose value is being read */
    FIELD_OTHER = 0, FIELD_CONTENT_LENGTH = 1, FIELD_TRANSFER_ENCODING = 2, FIELD_CONNECTION = 4,
};

enum { /* p->elem: where in a list element (RFC 9110 section 5.6.1) the value is */
    E_START, E_TOKEN, E_AFTER, E_PARAMS, E_QUOTE, E_QUOTE_ESC,
    E_DIRTY = 0x80, /* the element is not a bare token: it matches nothing */
};

enum { TOKEN_CLOSE = 1, TOKEN_KEEPALIVE = 2, TOKEN_CHUNKED = 4 };

#define NUMBER_LIMIT ((uint64_t)1 << 62) /* larger lengths and chunk sizes are refused */

static const char *const FIELD_NAMES[3] = {"content-length", "transfer-encoding", "connection"};
static const uint8_t FIELD_LENGTHS[3] = {14, 17, 10};
static const char *const TOKENS[3] = {"close", "keep-alive", "chunked"};
static const uint8_t TOKEN_LENGTHS[3] = {5, 10, 7};

/* Byte classes. C_TCHAR: a token character (RFC 9110 section 5.6.2). C_TEXT: field-vchar,
 * SP, HTAB or obs-text, what a header value, reason phrase or chunk extension may hold
 * (not CR, LF, NUL or the other controls). */
enum { C_TCHAR = 1, C_TEXT = 2 };
static const uint8_t CLASS[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static int is_tchar(unsigned c)
{
    return CLASS[c & 0xff] & C_TCHAR;
}

static int is_text(unsigned c)
{
    return CLASS[c & 0xff] & C_TEXT;
}

static int is_ows(unsigned c)
{
    return c == ' ' || c == '\t';
}

/* The first byte in [q, end) that is not C_TEXT. Eight bytes at a time while none of them
 * is below 0x20 or 0x7f (the word tests hasless and haszero of "Bit Twiddling Hacks"); in a
 * word with one, the lowest flagged byte is a true one (borrows only run upwards), so the scan
 * goes straight to it, and on past it when it is HTAB. */
static const unsigned char *skip_text(const unsigned char *q, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - q >= 8) {
        uint64_t x, del;
        memcpy(&x, q, 8);
        del = x ^ (ones * 0x7f);
        uint64_t flagged = ((x - ones * 0x20) & ~x & highs) | ((del - ones) & ~del & highs);
        if (!flagged) {
            q += 8;
            continue;
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        q += __builtin_ctzll(flagged) / 8;
#else
        int i = 0;
        while (i < 8 && (CLASS[q[i]] & C_TEXT))
            i++;
        q += i;
        if (i == 8)
            continue;
#endif
        if (*q != '\t')
            return q;
        q++;
    }
    while (q < end && (CLASS[*q] & C_TEXT))
        q++;
    return q;
}

/* The first byte in [q, end) that is not a tchar: header names are short, four bytes a test. */
static const unsigned char *skip_tchar(const unsigned char *q, const unsigned char *end)
{
    while (end - q >= 4 && (CLASS[q[0]] & CLASS[q[1]] & CLASS[q[2]] & CLASS[q[3]] & C_TCHAR))
        q += 4;
    while (q < end && (CLASS[*q] & C_TCHAR))
        q++;
    return q;
}

static int hex_value(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    return -1;
}

/* Narrow `mask` (bits over `names`) to the names whose byte at p->pos is c. */
static inline uint8_t match_byte(uint8_t mask, const char *const *names, const uint8_t *lengths,
                          uint8_t pos, unsigned c)
{
    unsigned lower = (c >= 'A' && c <= 'Z') ? (c | 0x20) : c;
    for (unsigned i = 0; i < 3; i++) {
        uint8_t bit = (uint8_t)(1u << i);
        if ((mask & bit) && (pos >= lengths[i] || (unsigned char)names[i][pos] != lower))
            mask = (uint8_t)(mask & ~bit);
    }
    return mask;
}

/* The one name (or token) in `mask` whose whole length was matched, else 0. */
static uint8_t match_whole(uint8_t mask, const uint8_t *lengths, uint8_t pos)
{
    for (unsigned i = 0; i < 3; i++)
        if ((mask & (1u << i)) && lengths[i] == pos)
            return (uint8_t)(1u << i);
    return 0;
}

static void reset_head(t1_parser *p)
{
    p->flags = 0;
    p->chunked_count = 0;
    p->length = 0;
    p->head_bytes = 0;
    p->state = S_START;
}

void t1_init(t1_parser *p, int head_request, uint32_t max_head_bytes)
{
    p->status = 0;
    p->keep_alive = 0;
    p->client_closes = 0;
    p->head_request = head_request ? 1 : 0;
    p->max_head_bytes = max_head_bytes;
    p->minor = 0;
    p->field = FIELD_OTHER;
    p->match = 0;
    p->pos = 0;
    p->elem = E_START;
    p->number = 0;
    p->remaining = 0;
    reset_head(p);
}

/* ---- header values ------------------------------------------------------------ */

/* Content-Length: 1*DIGIT, once. RFC 9110 section 8.6 lets a recipient take repeated identical
 * values (two fields, or a list "5, 5") as one, or reject them as unrecoverable; they are refused,
 * as llhttp and nginx do (docs/ARCHITECTURE.md "Server surprises": protocol_error). */
static int cl_element_end(t1_parser *p)
{
    if (p->flags & F_CL)
        return -1;
    p->length = p->number;
    p->flags |= F_CL;
    p->elem = E_START;
    return 0;
}

static int cl_byte(t1_parser *p, unsigned c)
{
    if (c >= '0' && c <= '9') {
        uint64_t d = c - '0';
        if (p->elem == E_START) {
            p->number = d;
            p->elem = E_TOKEN;
            return 0;
        }
        if (p->elem != E_TOKEN || p->number > (NUMBER_LIMIT - d) / 10)
            return -1;
        p->number = p->number * 10 + d;
        return 0;
    }
    if (is_ows(c)) {
        if (p->elem == E_TOKEN)
            p->elem = E_AFTER;
        return 0;
    }
    return -1; /* a comma too: a list is no length */
}

/* One element of a token list (Connection, Transfer-Encoding) has ended. */
static void token_element_end(t1_parser *p)
{
    uint8_t token = (p->elem & E_DIRTY) ? 0 : match_whole(p->match, TOKEN_LENGTHS, p->pos);
    if (p->field == FIELD_CONNECTION) {
        if (token == TOKEN_CLOSE)
            p->flags |= F_CLOSE;
        else if (token == TOKEN_KEEPALIVE)
            p->flags |= F_KEEPALIVE;
    } else { /* Transfer-Encoding: each element is a coding; chunked must be the last */
        if (token == TOKEN_CHUNKED) {
            p->flags |= F_TE_CHUNKED_LAST;
            if (p->chunked_count < 255)
                p->chunked_count++;
        } else {
            p->flags &= (uint8_t)~F_TE_CHUNKED_LAST;
        }
    }
    p->elem = E_START;
}

static void token_byte(t1_parser *p, unsigned c)
{
    uint8_t dirty = p->elem & E_DIRTY;
    switch (p->elem & (uint8_t)~E_DIRTY) {
    case E_START:
        if (is_tchar(c)) {
            p->match = p->field == FIELD_CONNECTION ? (TOKEN_CLOSE | TOKEN_KEEPALIVE) : TOKEN_CHUNKED;
            p->pos = 0;
            p->elem = E_TOKEN;
            token_byte(p, c);
        } else if (!is_ows(c) && c != ',') {
            p->elem = E_PARAMS | E_DIRTY;
            token_byte(p, c);
        }
        return;
    case E_TOKEN:
        if (is_tchar(c)) {
            p->match = match_byte(p->match, TOKENS, TOKEN_LENGTHS, p->pos, c);
            if (p->pos < 255)
                p->pos++;
            return;
        }
        if (is_ows(c)) {
            p->elem = E_AFTER;
            return;
        }
        /* fall through */
    case E_AFTER:
        if (is_ows(c))
            return;
        if (c != ',' && c != ';')
            dirty = E_DIRTY; /* more after the token: "chun ked", "chunked/1" */
        break;
    case E_QUOTE:
        if (c == '\\')
            p->elem = E_QUOTE_ESC | dirty;
        else if (c == '"')
            p->elem = E_PARAMS | dirty;
        return;
    case E_QUOTE_ESC:
        p->elem = E_QUOTE | dirty;
        return;
    default: /* E_PARAMS */
        break;
    }
    /* E_TOKEN, E_AFTER or E_PARAMS with a byte that ends the token */
    if (c == ',')
        token_element_end(p);
    else if (c == '"')
        p->elem = E_QUOTE | dirty;
    else
        p->elem = E_PARAMS | dirty;
}

static int field_byte(t1_parser *p, unsigned c)
{
    if (p->field == FIELD_CONTENT_LENGTH)
        return cl_byte(p, c);
    token_byte(p, c);
    return 0;
}

static int field_end(t1_parser *p)
{
    switch (p->field) {
    case FIELD_CONTENT_LENGTH:
        if (p->elem == E_TOKEN || p->elem == E_AFTER)
            return cl_element_end(p);
        return -1; /* an empty Content-Length is no length */
    case FIELD_TRANSFER_ENCODING:
        p->flags |= F_TE;
        /* fall through */
    case FIELD_CONNECTION:
        if (p->elem != E_START)
            token_element_end(p);
        return 0;
    default:
        return 0;
    }
}

/* ---- end of a head: framing (RFC 9112 section 6.3) -------------------------------- */

static int done(t1_parser *p)
{
    p->state = S_DONE;
    return 0;
}

static int head_end(t1_parser *p)
{
    if (p->flags & F_TRAILER)
        return done(p);
    if (p->status < 200 && p->status != 101) { /* interim (100, 103...): the final one follows */
        reset_head(p);
        return 0;
    }
    if (p->flags & F_CLOSE)
        p->keep_alive = 0;
    else
        p->keep_alive = (p->minor >= 1 || (p->flags & F_KEEPALIVE)) ? 1 : 0;
    /* Transfer-Encoding came with HTTP/1.1: an HTTP/1.0 message carrying it may have been forwarded
     * without its coding handled, so its framing is suspect and the connection closes after the
     * message, whatever Connection says (RFC 9112 section 6.1). */
    if ((p->flags & F_TE) && p->minor == 0 && p->keep_alive) {
        p->keep_alive = 0;
        p->client_closes = 1;
    }
    if (p->status == 101) { /* the connection now speaks another protocol */
        p->keep_alive = 0;
        return done(p);
    }
    /* No body, whatever the framing fields say (RFC 9112 section 6.3 rule 1, which comes before
     * the rules that read them): they describe the body a GET would have had. */
    if (p->head_request || p->status == 204 || p->status == 304)
        return done(p);
    /* Both framings: a smuggling attempt (RFC 9112 section 6.3 rule 3); llhttp refuses it too. */
    if ((p->flags & F_TE) && (p->flags & F_CL))
        return -1;
    if (p->chunked_count > 1) /* chunked applied twice (RFC 9112 section 7) */
        return -1;
    if (p->flags & F_TE) {
        if (p->flags & F_TE_CHUNKED_LAST) {
            p->head_bytes = 0;
            p->state = S_CHUNK_SIZE0;
            return 0;
        }
        /* another coding last: the body runs to the server's close (rule 4) */
    } else if (p->flags & F_CL) {
        if (p->length == 0)
            return done(p);
        p->remaining = p->length;
        p->state = S_BODY_LEN;
        return 0;
    }
    p->keep_alive = 0;
    p->state = S_BODY_CLOSE;
    return 0;
}

/* ---- one byte of a head, chunk-size line or trailer ------------------------------- */

static int step(t1_parser *p, unsigned c)
{
    switch (p->state) {
    case S_START:
        if (c == 'H') {
            p->pos = 1;
            p->state = S_VER;
            return 0;
        }
        if (c == '\r') { /* an empty line before the status line is ignored */
            p->state = S_START_LF;
            return 0;
        }
        return -1;
    case S_START_LF:
        if (c != '\n')
            return -1;
        p->state = S_START;
        return 0;
    case S_VER:
        if ((unsigned char)"HTTP/"[p->pos] != c)
            return -1;
        if (++p->pos == 5)
            p->state = S_MAJOR;
        return 0;
    case S_MAJOR:
        if (c != '1')
            return -1;
        p->state = S_DOT;
        return 0;
    case S_DOT:
        if (c != '.')
            return -1;
        p->state = S_MINOR;
        return 0;
    case S_MINOR:
        if (c < '0' || c > '9')
            return -1;
        p->minor = (uint8_t)(c - '0');
        p->state = S_SP1;
        return 0;
    case S_SP1:
        if (c != ' ')
            return -1;
        p->status = 0;
        p->pos = 0;
        p->state = S_CODE;
        return 0;
    case S_CODE:
        if (c < '0' || c > '9')
            return -1;
        p->status = p->status * 10 + (int)(c - '0');
        if (++p->pos == 3) {
            if (p->status < 100)
                return -1;
            p->state = S_AFTER_CODE;
        }
        return 0;
    case S_AFTER_CODE: /* the SP before an empty reason phrase is often left out */
        if (c == ' ')
            p->state = S_REASON;
        else if (c == '\r')
            p->state = S_STATUS_LF;
        else
            return -1;
        return 0;
    case S_REASON:
        if (c == '\r')
            p->state = S_STATUS_LF;
        else if (!is_text(c))
            return -1;
        return 0;
    case S_STATUS_LF:
    case S_HVAL_LF:
        if (c != '\n')
            return -1;
        p->state = S_HDR_START;
        return 0;
    case S_HDR_START:
        if (c == '\r') {
            p->state = S_HEAD_END_LF;
            return 0;
        }
        if (!is_tchar(c)) /* also obs-fold (SP/HTAB): refused, RFC 9112 section 5.2 */
            return -1;
        /* Only names starting c or t can be one of the three: the others are skipped fast. */
        p->match = 0;
        if (!(p->flags & F_TRAILER) && ((c | 0x20) == 'c' || (c | 0x20) == 't'))
            p->match = FIELD_CONTENT_LENGTH | FIELD_TRANSFER_ENCODING | FIELD_CONNECTION;
        p->pos = 0;
        p->state = S_HNAME;
        /* fall through */
    case S_HNAME:
        if (c == ':') {
            p->field = match_whole(p->match, FIELD_LENGTHS, p->pos);
            p->pos = 0;
            p->elem = E_START;
            p->state = S_HVAL;
            return 0;
        }
        if (!is_tchar(c)) /* whitespace before the colon too: RFC 9112 section 5.1 */
            return -1;
        if (p->match) {
            p->match = match_byte(p->match, FIELD_NAMES, FIELD_LENGTHS, p->pos, c);
            if (p->pos < 255)
                p->pos++;
        }
        return 0;
    case S_HVAL:
        if (c == '\r') {
            p->state = S_HVAL_LF;
            return field_end(p);
        }
        if (!is_text(c))
            return -1;
        return p->field ? field_byte(p, c) : 0;
    case S_HEAD_END_LF:
        if (c != '\n')
            return -1;
        return head_end(p);
    case S_CHUNK_SIZE0:
        if (hex_value(c) < 0)
            return -1;
        p->number = (uint64_t)hex_value(c);
        p->state = S_CHUNK_SIZE;
        return 0;
    case S_CHUNK_SIZE: {
        int v = hex_value(c);
        if (v >= 0) {
            if (p->number > (NUMBER_LIMIT - (uint64_t)v) / 16)
                return -1;
            p->number = p->number * 16 + (uint64_t)v;
            return 0;
        }
    }
        /* fall through */
    case S_CHUNK_BWS:
        if (is_ows(c))
            p->state = S_CHUNK_BWS;
        else if (c == ';')
            p->state = S_CHUNK_EXT;
        else if (c == '\r')
            p->state = S_CHUNK_SIZE_LF;
        else
            return -1;
        return 0;
    case S_CHUNK_EXT: /* chunk extensions are read past, not interpreted */
        if (c == '\r')
            p->state = S_CHUNK_SIZE_LF;
        else if (!is_text(c))
            return -1;
        return 0;
    case S_CHUNK_SIZE_LF:
        if (c != '\n')
            return -1;
        if (p->number == 0) { /* last chunk: the trailer section, read like a head */
            p->flags |= F_TRAILER;
            p->head_bytes = 0;
            p->state = S_HDR_START;
        } else {
            p->remaining = p->number;
            p->head_bytes = 0; /* the CRLF after the data is no size line's (S_CHUNK_DATA_LF resets too) */
            p->state = S_CHUNK_DATA;
        }
        return 0;
    case S_CHUNK_DATA_CR:
        if (c != '\r')
            return -1;
        p->state = S_CHUNK_DATA_LF;
        return 0;
    case S_CHUNK_DATA_LF:
        if (c != '\n')
            return -1;
        p->head_bytes = 0;
        p->state = S_CHUNK_SIZE0;
        return 0;
    default:
        return -1;
    }
}

/* Which of `names` (bits of `mask`) the tchars [s, s + len) spell, compared without case;
 * 0 if none. | 0x20 maps only '-' (0x2d) onto itself among the tchars that can differ. */
static uint8_t name_among(const char *const *names, const uint8_t *lengths, uint8_t mask,
                          const unsigned char *s, size_t len)
{
    for (unsigned i = 0; i < 3; i++) {
        if (!(mask & (1u << i)) || len != lengths[i])
            continue;
        size_t k = 0;
        while (k < len && (s[k] | 0x20) == (unsigned char)names[i][k])
            k++;
        if (k == len)
            return (uint8_t)(1u << i);
    }
    return 0;
}

/* The usual value of a field that decides framing, [v, e) between the colon and the CR, read
 * at once: Content-Length as one run of digits, Connection or Transfer-Encoding as one token,
 * each with optional whitespace around it. Returns 1 when done (the same flags and length the
 * byte-at-a-time path would leave), -1 for a Content-Length after an earlier one, 0
 * for any other value (a list, parameters, a long number...), which is then read byte by byte
 * with nothing changed here. */
static int simple_value(t1_parser *p, const unsigned char *v, const unsigned char *e)
{
    while (v < e && is_ows(*v))
        v++;
    while (e > v && is_ows(e[-1]))
        e--;
    size_t n = (size_t)(e - v);
    if (n == 0)
        return 0;
    if (p->field == FIELD_CONTENT_LENGTH) {
        uint64_t number = 0;
        if (n > 18) /* below NUMBER_LIMIT for sure; longer ones take the checked path */
            return 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 0;
            number = number * 10 + (uint64_t)(v[i] - '0');
        }
        p->number = number;
        p->elem = E_TOKEN;
        return cl_element_end(p) < 0 ? -1 : 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(v[i]))
            return 0;
    uint8_t wanted = p->field == FIELD_CONNECTION ? (TOKEN_CLOSE | TOKEN_KEEPALIVE) : TOKEN_CHUNKED;
    p->match = name_among(TOKENS, TOKEN_LENGTHS, wanted, v, n);
    /* one element, the token in p->match or none: field_end -> token_element_end takes it */
    p->pos = n < 255 ? (uint8_t)n : 255;
    p->elem = E_TOKEN;
    return field_end(p) < 0 ? -1 : 1;
}

/* The common case, a whole header line in the buffer, read in one go. Returns 1 with
 * *next after its CRLF; -1 if its value is wrong (Content-Length); 0 to leave the line
 * to step(): cut off, over the cap, or not well-formed, where step() then finds the same
 * end or the same error byte by byte. */
static int header_line(t1_parser *p, const unsigned char *q, const unsigned char *end,
                       const unsigned char **next)
{
    const unsigned char *colon = skip_tchar(q, end);
    if (colon == q || colon == end || *colon != ':')
        return 0;
    const unsigned char *cr = skip_text(colon + 1, end);
    if (end - cr < 2 || cr[0] != '\r' || cr[1] != '\n')
        return 0;
    size_t line = (size_t)(cr + 2 - q);
    if (line > p->max_head_bytes - p->head_bytes)
        return 0;
    p->field = FIELD_OTHER; /* a trailer decides no framing */
    if (!(p->flags & F_TRAILER))
        p->field = name_among(FIELD_NAMES, FIELD_LENGTHS,
                              FIELD_CONTENT_LENGTH | FIELD_TRANSFER_ENCODING | FIELD_CONNECTION,
                              q, (size_t)(colon - q));
    int fast = p->field ? simple_value(p, colon + 1, cr) : 1;
    if (fast < 0)
        return -1;
    if (!fast) {
        p->pos = 0;
        p->elem = E_START;
        for (const unsigned char *v = colon + 1; v < cr; v++)
            if (field_byte(p, *v) < 0)
                return -1;
        if (field_end(p) < 0)
            return -1;
    }
    p->head_bytes += (uint32_t)line;
    *next = cr + 2;
    return 1;
}

/* The status line wholly in the buffer, read in one go: "HTTP/1.x NNN reason\r\n" (the SP
 * before an empty reason may be missing). Returns 1 with *next after its CRLF; 0 to leave it
 * to step(), byte by byte, which then finds the same line or the same error. */
static int status_line(t1_parser *p, const unsigned char *q, const unsigned char *end,
                       const unsigned char **next)
{
    if (end - q < 14 || memcmp(q, "HTTP/1.", 7) != 0 || q[8] != ' ')
        return 0;
    unsigned minor = (unsigned)q[7] - '0';
    unsigned d0 = (unsigned)q[9] - '0', d1 = (unsigned)q[10] - '0', d2 = (unsigned)q[11] - '0';
    if (minor > 9 || d0 - 1 > 8 || d1 > 9 || d2 > 9) /* d0 - 1 > 8: a code below 100 too */
        return 0;
    const unsigned char *cr = q + 12;
    if (*cr == ' ')
        cr = skip_text(cr + 1, end);
    if (end - cr < 2 || cr[0] != '\r' || cr[1] != '\n')
        return 0;
    size_t line = (size_t)(cr + 2 - q);
    if (line > p->max_head_bytes - p->head_bytes)
        return 0;
    p->minor = (uint8_t)minor;
    p->status = (int)(d0 * 100 + d1 * 10 + d2);
    p->head_bytes += (uint32_t)line;
    p->state = S_HDR_START;
    *next = cr + 2;
    return 1;
}

static int fail(t1_parser *p, int err)
{
    p->state = err == T1_ERR_HEAD_TOO_LARGE ? S_ERR_TOO_LARGE : S_ERR_PROTOCOL;
    return err;
}

/* Bytes over the cap on a head or trailer section, or a chunk-size line. */
static int too_large(t1_parser *p)
{
    return fail(p, p->state >= S_CHUNK_SIZE0 ? T1_ERR_PROTOCOL : T1_ERR_HEAD_TOO_LARGE);
}

int t1_feed(t1_parser *p, const char *buf, size_t len, size_t *used)
{
    const unsigned char *start = (const unsigned char *)buf;
    const unsigned char *q = start;
    const unsigned char *end = start + len;

    *used = 0;
    if (p->state == S_DONE)
        return T1_DONE;
    if (p->state == S_ERR_PROTOCOL)
        return T1_ERR_PROTOCOL;
    if (p->state == S_ERR_TOO_LARGE)
        return T1_ERR_HEAD_TOO_LARGE;
    if (len == 0) /* buf may then be NULL, where even NULL + 0 is undefined */
        return T1_MORE;

    while (q < end) {
        size_t avail = (size_t)(end - q);
        switch (p->state) {
        case S_BODY_CLOSE:
            q = end;
            continue;
        case S_BODY_LEN:
        case S_CHUNK_DATA: {
            size_t n = p->remaining < avail ? (size_t)p->remaining : avail;
            q += n;
            p->remaining -= n;
            if (p->remaining)
                continue;
            if (p->state == S_CHUNK_DATA) {
                p->state = S_CHUNK_DATA_CR;
                continue;
            }
            p->state = S_DONE;
            *used = (size_t)(q - start);
            return T1_DONE;
        }
        case S_START:
            if (status_line(p, q, end, &q))
                continue;
            break;
        case S_HDR_START: {
            int rc = 1;
            while (q < end && *q != '\r' && (rc = header_line(p, q, end, &q)) > 0)
                ;
            if (rc < 0) {
                *used = (size_t)(end - start);
                return fail(p, T1_ERR_PROTOCOL);
            }
            if (end - q >= 2 && q[0] == '\r' && q[1] == '\n' && p->max_head_bytes - p->head_bytes >= 2) {
                /* the blank line that ends the head, as step() would take it */
                p->head_bytes += 2;
                q += 2;
                if (head_end(p) < 0) {
                    *used = (size_t)(q - start);
                    return fail(p, T1_ERR_PROTOCOL);
                }
                if (p->state == S_DONE) {
                    *used = (size_t)(q - start);
                    return T1_DONE;
                }
                continue;
            }
            if (q == end)
                continue;
            break;
        }
        case S_REASON:
        case S_HVAL:
        case S_HNAME:
            /* Runs that need no decision (a reason phrase, a name that matches none of the
             * three, a value nobody needs) are skipped fast, up to the head cap. */
            if (p->state == S_HVAL ? p->field == FIELD_OTHER : p->state == S_REASON || !p->match) {
                uint32_t room = p->max_head_bytes - p->head_bytes;
                const unsigned char *stop = avail < room ? end : q + room;
                const unsigned char *v = p->state == S_HNAME ? skip_tchar(q, stop) : skip_text(q, stop);
                p->head_bytes += (uint32_t)(v - q);
                q = v;
                if (q == end)
                    continue;
            }
            break;
        default:
            break;
        }
        /* one byte of a head, a chunk-size line or a trailer */
        if (p->head_bytes >= p->max_head_bytes) {
            *used = (size_t)(q - start) + 1;
            return too_large(p);
        }
        p->head_bytes++;
        if (step(p, *q++) < 0) {
            *used = (size_t)(q - start);
            return fail(p, T1_ERR_PROTOCOL);
        }
        if (p->state == S_DONE) {
            *used = (size_t)(q - start);
            return T1_DONE;
        }
    }
    *used = len;
    return T1_MORE;
}

int t1_eof(const t1_parser *p)
{
    switch (p->state) {
    case S_BODY_CLOSE:
    case S_DONE:
        return T1_DONE;
    case S_ERR_PROTOCOL:
        return T1_ERR_PROTOCOL;
    case S_ERR_TOO_LARGE:
        return T1_ERR_HEAD_TOO_LARGE;
    default:
        return T1_ERR_EOF;
    }
}
