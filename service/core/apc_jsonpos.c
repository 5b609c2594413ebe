/*
 * apc_jsonpos.c - positions of cJSON values in their source text (see
 * apc_jsonpos.h).
 *
 * The scanner below must agree with cJSON 1.7 on how far each value reaches:
 * whitespace is every byte <= 32 (cJSON's rule, wider than RFC 8259), a
 * string ends at the first '"' not preceded by an escaping backslash, and a
 * number or literal is a run of [0-9A-Za-z+-.]. Because the text was already
 * accepted by cJSON, these simple rules are enough; any disagreement between
 * text and tree makes the walk stop, leaving the remaining requests
 * unresolved rather than guessing.
 *
 * Thread safety: no state; any thread.
 */
#include "apc_jsonpos.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"

/* cJSON refuses deeper nesting, so a deeper walk means text and tree disagree. */
#define MAX_DEPTH (CJSON_NESTING_LIMIT + 2)

typedef struct scan {
    const unsigned char *text;
    const unsigned char *p;
    const unsigned char *end;
    apc_jsonpos_req_t *reqs;
    const size_t *by_node; /* request indices sorted by node address */
    size_t nreqs;
    size_t pending; /* requests not resolved yet; the walk stops at 0 */
} scan_t;

/* Walk results: keep going, everything found, or text and tree disagree. */
enum { WALK_OK = 0, WALK_DONE = 1, WALK_MISMATCH = -1 };

static int cmp_node(const void *a, const void *b, const apc_jsonpos_req_t *reqs)
{
    uintptr_t x = (uintptr_t)reqs[*(const size_t *)a].node;
    uintptr_t y = (uintptr_t)reqs[*(const size_t *)b].node;
    return x < y ? -1 : x > y;
}

static int cmp_offset(const void *a, const void *b, const apc_jsonpos_req_t *reqs)
{
    size_t x = reqs[*(const size_t *)a].offset;
    size_t y = reqs[*(const size_t *)b].offset;
    return x < y ? -1 : x > y;
}

/*
 * qsort has no context argument in C11, and qsort_r/qsort_s disagree across
 * platforms, so the index arrays are sorted with a merge sort
 * of our own. Request counts are usually small (one per error), but a config
 * with thousands of errors must not go quadratic, hence a top-down
 * merge sort with a scratch array rather than insertion sort.
 */
static void sort_idx(size_t *idx, size_t *tmp, size_t n, const apc_jsonpos_req_t *reqs,
                     int (*cmp)(const void *, const void *, const apc_jsonpos_req_t *))
{
    size_t mid, i, j, k;

    if (n < 2)
        return;
    mid = n / 2;
    sort_idx(idx, tmp, mid, reqs, cmp);
    sort_idx(idx + mid, tmp, n - mid, reqs, cmp);
    i = 0;
    j = mid;
    k = 0;
    while (i < mid && j < n)
        tmp[k++] = cmp(&idx[j], &idx[i], reqs) < 0 ? idx[j++] : idx[i++];
    while (i < mid)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    for (k = 0; k < n; k++)
        idx[k] = tmp[k];
}

/* Records the current position for every request about (node, want_key). */
static void mark(scan_t *s, const cJSON *node, int want_key)
{
    size_t lo = 0, hi = s->nreqs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)s->reqs[s->by_node[mid]].node < (uintptr_t)node)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < s->nreqs && s->reqs[s->by_node[lo]].node == node; lo++) {
        apc_jsonpos_req_t *r = &s->reqs[s->by_node[lo]];
        if ((r->want_key != 0) == (want_key != 0) && r->offset == APC_JSONPOS_NONE) {
            r->offset = (size_t)(s->p - s->text);
            s->pending--;
        }
    }
}

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && *s->p <= 32)
        s->p++;
}

/* Skips a string starting at its opening quote; WALK_MISMATCH if unterminated. */
static int skip_string(scan_t *s)
{
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\')
            s->p++;
        s->p++;
    }
    if (s->p >= s->end)
        return WALK_MISMATCH;
    s->p++;
    return WALK_OK;
}

static int is_scalar_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
           c == '-' || c == '.';
}

static int walk(scan_t *s, const cJSON *node, int depth);

/* Walks the members (keys and values) of an object; s->p is just past '{'. */
static int walk_object(scan_t *s, const cJSON *node, int depth)
{
    const cJSON *c = node->child;

    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return c == NULL ? WALK_OK : WALK_MISMATCH;
    }
    for (;;) {
        if (c == NULL)
            return WALK_MISMATCH;
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return WALK_MISMATCH;
        mark(s, c, 1);
        if (skip_string(s) != WALK_OK)
            return WALK_MISMATCH;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return WALK_MISMATCH;
        s->p++;
        int rc = walk(s, c, depth + 1);
        if (rc != WALK_OK)
            return rc;
        skip_ws(s);
        if (s->p >= s->end)
            return WALK_MISMATCH;
        c = c->next;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != '}')
            return WALK_MISMATCH;
        s->p++;
        return c == NULL ? WALK_OK : WALK_MISMATCH;
    }
}

/* Walks the elements of an array; s->p is just past '['. */
static int walk_array(scan_t *s, const cJSON *node, int depth)
{
    const cJSON *c = node->child;

    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return c == NULL ? WALK_OK : WALK_MISMATCH;
    }
    for (;;) {
        if (c == NULL)
            return WALK_MISMATCH;
        int rc = walk(s, c, depth + 1);
        if (rc != WALK_OK)
            return rc;
        skip_ws(s);
        if (s->p >= s->end)
            return WALK_MISMATCH;
        c = c->next;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != ']')
            return WALK_MISMATCH;
        s->p++;
        return c == NULL ? WALK_OK : WALK_MISMATCH;
    }
}

/* Walks one value and everything inside it, marking requested positions. */
static int walk(scan_t *s, const cJSON *node, int depth)
{
    const unsigned char *start;

    skip_ws(s);
    if (s->p >= s->end || node == NULL || depth > MAX_DEPTH)
        return WALK_MISMATCH;
    mark(s, node, 0);
    if (s->pending == 0)
        return WALK_DONE;
    switch (*s->p) {
    case '{':
        if (!cJSON_IsObject(node))
            return WALK_MISMATCH;
        s->p++;
        return walk_object(s, node, depth);
    case '[':
        if (!cJSON_IsArray(node))
            return WALK_MISMATCH;
        s->p++;
        return walk_array(s, node, depth);
    case '"':
        return cJSON_IsString(node) ? skip_string(s) : WALK_MISMATCH;
    default:
        start = s->p;
        while (s->p < s->end && is_scalar_char(*s->p))
            s->p++;
        return s->p > start ? WALK_OK : WALK_MISMATCH;
    }
}

typedef struct lc {
    size_t off;
    unsigned line;
    unsigned col;
} lc_t;

static void lc_start(const unsigned char *t, size_t len, lc_t *st)
{
    st->off = 0;
    st->line = 1;
    st->col = 1;
    if (len >= 3 && t[0] == 0xEF && t[1] == 0xBB && t[2] == 0xBF)
        st->off = 3;
}

/* Moves st forward to target (clamped to len), counting lines and characters. */
static void lc_advance(const unsigned char *t, size_t len, lc_t *st, size_t target)
{
    if (target > len)
        target = len;
    while (st->off < target) {
        unsigned char c = t[st->off++];
        if (c == '\n') {
            st->line++;
            st->col = 1;
        } else if ((c & 0xC0) != 0x80) {
            st->col++;
        }
    }
}

void apc_jsonpos_linecol(const char *text, size_t len, size_t offset, unsigned *line, unsigned *col)
{
    lc_t st;

    if (text == NULL)
        len = 0;
    lc_start((const unsigned char *)text, len, &st);
    lc_advance((const unsigned char *)text, len, &st, offset);
    if (line != NULL)
        *line = st.line;
    if (col != NULL)
        *col = st.col;
}

int apc_jsonpos_resolve(const char *text, size_t len, const cJSON *root, apc_jsonpos_req_t *reqs,
                        size_t nreqs)
{
    size_t *idx = NULL, *tmp = NULL;
    scan_t s;
    lc_t st;
    size_t i;
    int rc = 0;

    if (reqs == NULL && nreqs > 0)
        return APC_EINVAL;
    for (i = 0; i < nreqs; i++) {
        reqs[i].offset = APC_JSONPOS_NONE;
        reqs[i].line = reqs[i].col = 0;
    }
    if (nreqs == 0)
        return 0;
    if (text == NULL || root == NULL)
        return APC_EINVAL;
    if (nreqs > (size_t)-1 / sizeof(size_t))
        return APC_ENOMEM;
    idx = malloc(nreqs * sizeof(size_t));
    tmp = malloc(nreqs * sizeof(size_t));
    if (idx == NULL || tmp == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    for (i = 0; i < nreqs; i++)
        idx[i] = i;
    sort_idx(idx, tmp, nreqs, reqs, cmp_node);

    s.text = (const unsigned char *)text;
    s.end = s.text + len;
    s.p = s.text;
    lc_start(s.text, len, &st);
    s.p += st.off; /* cJSON skips a leading byte order mark too */
    s.reqs = reqs;
    s.by_node = idx;
    s.nreqs = nreqs;
    s.pending = nreqs;
    (void)walk(&s, root, 0);

    /* One forward sweep turns the offsets, in increasing order, into line:col. */
    for (i = 0; i < nreqs; i++)
        idx[i] = i;
    sort_idx(idx, tmp, nreqs, reqs, cmp_offset);
    for (i = 0; i < nreqs; i++) {
        apc_jsonpos_req_t *r = &reqs[idx[i]];
        if (r->offset == APC_JSONPOS_NONE)
            break; /* unresolved requests sort last */
        lc_advance(s.text, len, &st, r->offset);
        r->line = st.line;
        r->col = st.col;
    }

cleanup:
    free(tmp);
    free(idx);
    return rc;
}

/* ---- Syntax errors ----------------------------------------------------------------------- */

static int is_structural(unsigned char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':' || c == '"';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        unsigned char c = p[k];
        v <<= 4;
        if (is_digit(c))
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*
 * How many bytes of p[0..avail) cJSON takes as a number: it copies the run
 * of [0-9+-eE.] (the whole run: Debian's cJSON 1.7.15 sizes its buffer to
 * the run) and keeps what strtod() consumes, which on that alphabet is sign,
 * digits with one optional '.', and an exponent only if it has digits. Done
 * by hand so that the locale's decimal point does not matter.
 */
static size_t number_len(const unsigned char *p, size_t avail)
{
    size_t lim = avail, i = 0, digits = 0;

    if (i < lim && (p[i] == '+' || p[i] == '-'))
        i++;
    while (i < lim && is_digit(p[i])) {
        i++;
        digits++;
    }
    if (i < lim && p[i] == '.') {
        i++;
        while (i < lim && is_digit(p[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return 0;
    if (i < lim && (p[i] == 'e' || p[i] == 'E')) {
        size_t j = i + 1;
        if (j < lim && (p[j] == '+' || p[j] == '-'))
            j++;
        if (j < lim && is_digit(p[j])) {
            while (j < lim && is_digit(p[j]))
                j++;
            i = j;
        }
    }
    return i;
}

typedef struct syn {
    const unsigned char *t;
    size_t len;
    size_t off; /* where the error is */
    char *msg;
    size_t msgsz;
} syn_t;

/* Describes the token at off: "near \"}\"" plus a hint for common slips; returns 1. */
static int near(syn_t *y, size_t off, const char *hint)
{
    char tok[64];
    size_t n = 1, k = 0, i;

    y->off = off;
    if (off >= y->len)
        return apc_seterr(y->msg, y->msgsz, 1, "syntax error: unexpected end of file");
    if (!is_structural(y->t[off]))
        while (off + n < y->len && n < 16 && y->t[off + n] > 32 && !is_structural(y->t[off + n]))
            n++;
    while (off + n < y->len && (y->t[off + n] & 0xC0) == 0x80)
        n++; /* never cut a character in half */
    for (i = 0; i < n && k + 7 < sizeof(tok); i++) {
        unsigned char c = y->t[off + i];
        if (c == '"' || c == '\\') {
            tok[k++] = '\\';
            tok[k++] = (char)c;
        } else if (c < 32 || c == 127) {
            (void)apc_seterr(tok + k, sizeof(tok) - k, 0, "\\u%04x", (unsigned)c);
            k += 6;
        } else {
            tok[k++] = (char)c;
        }
    }
    tok[k] = '\0';
    return apc_seterr(y->msg, y->msgsz, 1, "syntax error near \"%s\"%s", tok, hint);
}

/* The last non-whitespace byte before off, or 0. */
static unsigned char prev_byte(const syn_t *y, size_t off)
{
    while (off > 0 && y->t[off - 1] <= 32)
        off--;
    return off > 0 ? y->t[off - 1] : 0;
}

/* A hint for the usual slips at an unexpected byte: comments, quotes, trailing commas. */
static const char *hint(const syn_t *y, size_t p)
{
    if (y->t[p] == '/' || y->t[p] == '#')
        return " (JSON has no comments; use a \"$comment\" key)";
    if (y->t[p] == '\'')
        return " (JSON strings use double quotes)";
    if ((y->t[p] == ']' || y->t[p] == '}') && prev_byte(y, p) == ',')
        return " (a comma before a closing bracket is not allowed in JSON)";
    return "";
}

/* After a value, one of these means a comma was probably forgotten. */
static int starts_value(unsigned char c)
{
    return c == '"' || c == '{' || c == '[' || c == '-' || is_digit(c) || c == 't' || c == 'f' ||
           c == 'n';
}

/* Checks the string whose opening quote is at *pos; on success *pos is past its end. */
static int syn_string(syn_t *y, size_t *pos)
{
    size_t start = *pos, i = start + 1;
    unsigned u, lo;

    while (i < y->len && y->t[i] != '"') {
        if (y->t[i] != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= y->len) {
            i = y->len; /* a backslash as the last byte: the string never ends */
            break;
        }
        switch (y->t[i + 1]) {
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
        case '"':
        case '\\':
        case '/':
            i += 2;
            continue;
        case 'u':
            if (i + 6 > y->len || hex4(y->t + i + 2, &u) != 0 || (u >= 0xDC00 && u <= 0xDFFF))
                goto bad_u;
            if (u == 0) {
                y->off = i;
                return apc_seterr(y->msg, y->msgsz, 1,
                                  "syntax error: \\u0000 (NUL) is not allowed in a string");
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (i + 12 > y->len || y->t[i + 6] != '\\' || y->t[i + 7] != 'u' ||
                    hex4(y->t + i + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad_u;
                i += 12;
            } else {
                i += 6;
            }
            continue;
        default:
            y->off = i;
            return apc_seterr(y->msg, y->msgsz, 1,
                              "syntax error: invalid escape \"\\%c\" in a string (use \\\" \\\\ "
                              "\\/ \\b \\f \\n \\r \\t or \\uXXXX)",
                              y->t[i + 1] >= 32 && y->t[i + 1] < 127 ? (char)y->t[i + 1] : '?');
        }
    bad_u:
        y->off = i;
        return apc_seterr(y->msg, y->msgsz, 1,
                          "syntax error: invalid \\u escape in a string (4 hex digits; a "
                          "surrogate pair for characters above U+FFFF)");
    }
    if (i >= y->len) {
        y->off = start;
        return apc_seterr(y->msg, y->msgsz, 1, "syntax error: this string is never closed");
    }
    *pos = i + 1;
    return 0;
}

int apc_jsonpos_syntax_error(const char *text, size_t len, size_t *offset, char *msg, size_t msgsz)
{
    enum { VALUE, KEY, AFTER } state = VALUE;
    char stack[CJSON_NESTING_LIMIT];
    size_t depth = 0, p = 0, n;
    syn_t y;
    lc_t st;
    int rc = 0;

    y.t = (const unsigned char *)(text != NULL ? text : "");
    y.len = text != NULL ? len : 0;
    y.off = 0;
    y.msg = msg;
    y.msgsz = msgsz;
    if (msg != NULL && msgsz > 0)
        msg[0] = '\0';
    lc_start(y.t, y.len, &st);
    p = st.off;
    for (;;) {
        while (p < y.len && y.t[p] <= 32)
            p++;
        if (state == AFTER && depth == 0) {
            if (p < y.len)
                rc = near(&y, p, "");
            break;
        }
        if (p >= y.len) {
            rc = near(&y, p, "");
            break;
        }
        if (state == KEY) {
            if (y.t[p] != '"') {
                rc = near(&y, p, *hint(&y, p) != '\0' ? hint(&y, p) : " (expected a \"key\")");
                break;
            }
            if ((rc = syn_string(&y, &p)) != 0)
                break;
            while (p < y.len && y.t[p] <= 32)
                p++;
            if (p >= y.len || y.t[p] != ':') {
                rc = near(&y, p, p < y.len ? " (expected \":\" after the key)" : "");
                break;
            }
            p++;
            state = VALUE;
            continue;
        }
        if (state == AFTER) {
            char top = stack[depth - 1];
            if (y.t[p] == ',') {
                p++;
                state = top == '{' ? KEY : VALUE;
            } else if (y.t[p] == (top == '{' ? '}' : ']')) {
                p++;
                depth--;
            } else {
                rc = near(&y, p, starts_value(y.t[p]) ? " (missing comma?)" : "");
                break;
            }
            continue;
        }
        /* state == VALUE */
        switch (y.t[p]) {
        case '{':
        case '[':
            if (depth >= CJSON_NESTING_LIMIT) {
                y.off = p;
                rc = apc_seterr(msg, msgsz, 1, "syntax error: nested deeper than %d levels",
                                CJSON_NESTING_LIMIT);
                goto done;
            }
            stack[depth++] = (char)y.t[p];
            p++;
            while (p < y.len && y.t[p] <= 32)
                p++;
            if (p < y.len && y.t[p] == (stack[depth - 1] == '{' ? '}' : ']')) {
                p++;
                depth--;
                state = AFTER;
            } else {
                state = stack[depth - 1] == '{' ? KEY : VALUE;
            }
            continue;
        case '"':
            if ((rc = syn_string(&y, &p)) != 0)
                goto done;
            state = AFTER;
            continue;
        case 't':
        case 'f':
        case 'n': {
            const char *lit = y.t[p] == 't' ? "true" : y.t[p] == 'f' ? "false" : "null";
            n = strlen(lit);
            if (y.len - p < n || memcmp(y.t + p, lit, n) != 0) {
                rc = near(&y, p, "");
                goto done;
            }
            p += n;
            state = AFTER;
            continue;
        }
        default:
            if (y.t[p] == '-' || is_digit(y.t[p])) {
                n = number_len(y.t + p, y.len - p);
                if (n == 0) {
                    rc = near(&y, p, "");
                    goto done;
                }
                p += n;
                state = AFTER;
                continue;
            }
            rc = near(&y, p, hint(&y, p));
            goto done;
        }
    }
done:
    if (offset != NULL)
        *offset = rc ? y.off : APC_JSONPOS_NONE;
    return rc;
}
