/*
 * apc_protocol.c - JSON codec for the control protocol (see apc_protocol.h).
 *
 * Why this way: cJSON does the syntax, this file does everything the peer
 * could get wrong on purpose. Before parsing, the size is capped and raw
 * NUL bytes and \u0000 escapes are refused (cJSON would silently cut a
 * string there, so "job\u0000; x" would reach us as "job"). After parsing,
 * each object is walked once: every key must be known and appear once,
 * and every value is type-, range- and UTF-8-checked. Integers are written
 * with our own "%" PRId64 text (cJSON would print 1e+15 for some) and read
 * back only when exact. The value rules live in one checker per struct,
 * used by the encoder and the decoder alike, so apcctl refuses exactly what
 * the service would refuse, with the same message.
 *
 * cJSON's parser records its last error position in a global; we never
 * read it, but two threads parsing at once would still race on that write.
 * The service parses on the pipe thread only, apcctl on its main thread.
 *
 * Thread safety: no state of our own; see above for cJSON.
 */
#include "apc_protocol.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "apc_error.h"

#define MAX_EXACT 9007199254740992.0 /* 2^53: the first double that may be a rounded value */

/* What a decoded struct owns: the JSON tree its strings point into, and its arrays. */
typedef struct owner {
    cJSON *root;
    const char **args;
    apc_proto_job_info_t *jobs;
    apc_proto_run_t *runs;
} owner_t;

static const char *const op_names[APC_OP_COUNT_] = {"status", "list", "submit", "cancel", "history",
                                                    "show",   "logs", "reload", "pause",  "resume"};

static const char *const run_statuses[] = {"queued",      "running",   "succeeded",
                                           "failed",      "timed_out", "cancelled",
                                           "interrupted", "skipped",   NULL};
static const char *const run_triggers[] = {"schedule", "manual",  "retry",
                                           "startup",  "catchup", NULL};
static const char *const run_events[] = {"queued", "started", "finished", NULL};

const char *apc_proto_op_name(apc_proto_op_t op)
{
    if ((int)op < 0 || op >= APC_OP_COUNT_)
        return NULL;
    return op_names[op];
}

int apc_proto_op_parse(const char *name, apc_proto_op_t *out)
{
    int i;

    if (name == NULL)
        return APC_ENOTFOUND;
    for (i = 0; i < (int)APC_OP_COUNT_; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            *out = (apc_proto_op_t)i;
            return 0;
        }
    }
    return APC_ENOTFOUND;
}

static int in_list(const char *s, const char *const *list)
{
    if (s == NULL)
        return 0;
    for (; *list != NULL; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

int apc_proto_job_name_check(const char *name, char *err, size_t errsz)
{
    size_t n = 0;
    const char *p;

    if (name == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "job name is missing");
    for (p = name; *p != '\0'; p++, n++) {
        char c = *p;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || n >= APC_PROTO_JOB_NAME_MAX)
            break;
    }
    if (*p != '\0' || n == 0)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "job name \"%.80s\" must be 1-64 characters of A-Z a-z 0-9 . _ -", name);
    return 0;
}

int apc_proto_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned char c = *p;
        size_t need;
        uint32_t cp, min;

        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1Fu, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0Fu, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= need)
            return 0;
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xC0u) != 0x80u)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += need + 1;
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    size_t n = *p < 0x80 ? 1 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;

    if (n > avail)
        return 0;
    return apc_proto_utf8_valid((const char *)p, n) ? n : 0;
}

/* Returns a malloc'd copy of s with every byte that is not part of valid UTF-8 replaced by
   U+FFFD, or NULL on OOM. */
static char *utf8_sanitize(const char *s)
{
    apc_buf_t b = {0};
    const unsigned char *p = (const unsigned char *)s;
    size_t avail = strlen(s);

    while (avail > 0) {
        size_t n = utf8_seq_len(p, avail);
        if (n == 0) {
            apc_buf_append(&b, "\xEF\xBF\xBD", 3);
            n = 1;
        } else {
            apc_buf_append(&b, (const char *)p, n);
        }
        p += n;
        avail -= n;
    }
    return apc_buf_take(&b);
}

/* ---- Checks shared by encoders and decoders ------------------------------ */

static int check_range(const char *scope, const char *key, int64_t v, int64_t lo, int64_t hi,
                       char *err, size_t errsz)
{
    if (v < lo || v > hi)
        return apc_seterr(err, errsz, APC_EINVAL, "%s.%s: must be between %" PRId64 " and %" PRId64,
                          scope, key, lo, hi);
    return 0;
}

/* Range check for a field that may also be APC_PROTO_NONE. */
static int check_opt(const char *scope, const char *key, int64_t v, int64_t lo, int64_t hi,
                     char *err, size_t errsz)
{
    return v == APC_PROTO_NONE ? 0 : check_range(scope, key, v, lo, hi, err, errsz);
}

static int check_job(const char *scope, const char *key, const char *job, char *err, size_t errsz)
{
    char why[160];

    if (apc_proto_job_name_check(job, why, sizeof why) != 0)
        return apc_seterr(err, errsz, APC_EINVAL, "%s.%s: %s", scope, key, why);
    return 0;
}

/* Which optional request fields each op takes. */
enum {
    F_JOB = 1 << 0,
    F_ARGS = 1 << 1,
    F_AT = 1 << 2,
    F_IN = 1 << 3,
    F_WAIT = 1 << 4,
    F_ID = 1 << 5,
    F_SINCE = 1 << 6,
    F_STATUS = 1 << 7,
    F_LIMIT = 1 << 8,
    F_BEFORE = 1 << 9,
    F_TAIL = 1 << 10,
    F_FOR = 1 << 11
};

static const unsigned op_fields[APC_OP_COUNT_] = {
    0,                                               /* status */
    0,                                               /* list */
    F_JOB | F_ARGS | F_AT | F_IN | F_WAIT,           /* submit */
    F_ID,                                            /* cancel */
    F_JOB | F_SINCE | F_STATUS | F_LIMIT | F_BEFORE, /* history */
    F_ID,                                            /* show */
    F_ID | F_TAIL,                                   /* logs */
    0,                                               /* reload */
    F_JOB | F_FOR,                                   /* pause */
    F_JOB,                                           /* resume */
};

/* Wire names, in the order of the F_ bits. */
static const char *const field_names[] = {"job",   "args",      "at_ms",      "in_ms",
                                          "wait",  "id",        "since_ms",   "status",
                                          "limit", "before_id", "tail_bytes", "for_ms"};
#define NFIELDS (sizeof field_names / sizeof field_names[0])

/* Returns the F_ bits of the fields that hold something other than their unused value. */
static unsigned fields_set(const apc_proto_request_t *r)
{
    unsigned f = 0;

    f |= r->job != NULL ? (unsigned)F_JOB : 0u;
    f |= (r->nargs != 0 || r->args != NULL) ? (unsigned)F_ARGS : 0u;
    f |= r->at_ms != APC_PROTO_NONE ? (unsigned)F_AT : 0u;
    f |= r->in_ms != APC_PROTO_NONE ? (unsigned)F_IN : 0u;
    f |= r->wait != 0 ? (unsigned)F_WAIT : 0u;
    f |= r->id != 0 ? (unsigned)F_ID : 0u;
    f |= r->since_ms != APC_PROTO_NONE ? (unsigned)F_SINCE : 0u;
    f |= r->status != NULL ? (unsigned)F_STATUS : 0u;
    f |= r->limit != 0 ? (unsigned)F_LIMIT : 0u;
    f |= r->before_id != APC_PROTO_NONE ? (unsigned)F_BEFORE : 0u;
    f |= r->tail_bytes != APC_PROTO_NONE ? (unsigned)F_TAIL : 0u;
    f |= r->for_ms != APC_PROTO_NONE ? (unsigned)F_FOR : 0u;
    return f;
}

/* The value rules of every request, shared by encoder and decoder. */
static int check_request(const apc_proto_request_t *r, char *err, size_t errsz)
{
    const char *op = apc_proto_op_name(r->op);
    unsigned extra;
    size_t i;
    int rc = 0;

    if (op == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "op: unknown operation %d", (int)r->op);
    extra = fields_set(r) & ~op_fields[r->op];
    for (i = 0; i < NFIELDS; i++)
        if (extra & (1u << i))
            return apc_seterr(err, errsz, APC_EINVAL, "%s.%s: not a field of this operation", op,
                              field_names[i]);

    switch (r->op) {
    case APC_OP_SUBMIT:
        rc = check_job(op, "job", r->job, err, errsz);
        if (rc == 0 && r->nargs > APC_PROTO_MAX_ARGS)
            rc = apc_seterr(err, errsz, APC_EINVAL, "submit.args: at most %d arguments",
                            APC_PROTO_MAX_ARGS);
        if (rc == 0 && r->nargs > 0 && r->args == NULL)
            rc = apc_seterr(err, errsz, APC_EINVAL, "submit.args: missing");
        for (i = 0; rc == 0 && i < r->nargs; i++) {
            size_t n = r->args[i] ? strlen(r->args[i]) : 0;
            if (r->args[i] == NULL)
                rc = apc_seterr(err, errsz, APC_EINVAL, "submit.args[%lu]: missing",
                                (unsigned long)i);
            else if (n > APC_PROTO_MAX_ARG_BYTES)
                rc = apc_seterr(err, errsz, APC_EINVAL, "submit.args[%lu]: longer than %d bytes",
                                (unsigned long)i, APC_PROTO_MAX_ARG_BYTES);
            else if (!apc_proto_utf8_valid(r->args[i], n))
                rc = apc_seterr(err, errsz, APC_EINVAL, "submit.args[%lu]: not valid UTF-8",
                                (unsigned long)i);
        }
        if (rc == 0 && r->at_ms != APC_PROTO_NONE && r->in_ms != APC_PROTO_NONE)
            rc = apc_seterr(err, errsz, APC_EINVAL, "submit: at_ms and in_ms are exclusive");
        if (rc == 0)
            rc = check_opt(op, "at_ms", r->at_ms, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
        if (rc == 0)
            rc = check_opt(op, "in_ms", r->in_ms, 0, APC_PROTO_MAX_DELAY_MS, err, errsz);
        if (rc == 0 && r->wait != 0 && r->wait != 1)
            rc = apc_seterr(err, errsz, APC_EINVAL, "submit.wait: must be 0 or 1");
        return rc;
    case APC_OP_CANCEL:
    case APC_OP_SHOW:
    case APC_OP_LOGS:
        rc = check_range(op, "id", r->id, 1, APC_PROTO_MAX_ID, err, errsz);
        if (rc == 0 && r->op == APC_OP_LOGS)
            rc = check_range(op, "tail_bytes", r->tail_bytes, 1, APC_PROTO_LOGS_MAX_TAIL, err,
                             errsz);
        return rc;
    case APC_OP_HISTORY:
        if (r->job != NULL)
            rc = check_job(op, "job", r->job, err, errsz);
        if (rc == 0)
            rc = check_opt(op, "since_ms", r->since_ms, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
        if (rc == 0 && r->status != NULL && !in_list(r->status, run_statuses))
            rc = apc_seterr(err, errsz, APC_EINVAL,
                            "history.status: \"%.40s\" is not a run status (queued, running, "
                            "succeeded, failed, timed_out, cancelled, interrupted, skipped)",
                            r->status);
        if (rc == 0)
            rc = check_range(op, "limit", r->limit, 1, APC_PROTO_HISTORY_MAX_LIMIT, err, errsz);
        if (rc == 0)
            rc = check_opt(op, "before_id", r->before_id, 1, APC_PROTO_MAX_ID, err, errsz);
        return rc;
    case APC_OP_PAUSE:
        rc = check_job(op, "job", r->job, err, errsz);
        if (rc == 0)
            rc = check_opt(op, "for_ms", r->for_ms, 1, APC_PROTO_MAX_DELAY_MS, err, errsz);
        return rc;
    case APC_OP_RESUME:
        return check_job(op, "job", r->job, err, errsz);
    default:
        return 0;
    }
}

/* ---- JSON building --------------------------------------------------------- */

/* Adds an exact integer (or null for APC_PROTO_NONE); returns 0 or -1 on OOM. */
static int add_int(cJSON *obj, const char *key, int64_t v)
{
    char num[32];

    if (v == APC_PROTO_NONE)
        return cJSON_AddNullToObject(obj, key) ? 0 : -1;
    (void)snprintf(num, sizeof num, "%" PRId64, v);
    return cJSON_AddRawToObject(obj, key, num) ? 0 : -1;
}

/* Adds a string (null for NULL), replacing invalid UTF-8; returns 0 or -1 on OOM. */
static int add_text(cJSON *obj, const char *key, const char *s)
{
    char *clean;
    cJSON *item;

    if (s == NULL)
        return cJSON_AddNullToObject(obj, key) ? 0 : -1;
    if (apc_proto_utf8_valid(s, strlen(s)))
        return cJSON_AddStringToObject(obj, key, s) ? 0 : -1;
    clean = utf8_sanitize(s);
    if (clean == NULL)
        return -1;
    item = cJSON_AddStringToObject(obj, key, clean);
    free(clean);
    return item ? 0 : -1;
}

static int add_bool(cJSON *obj, const char *key, int v)
{
    return cJSON_AddBoolToObject(obj, key, v ? 1 : 0) ? 0 : -1;
}

/* Starts a message object with "v" (and "ok" for responses, when ok >= 0). */
static cJSON *new_message(int ok)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    if (add_int(o, "v", APC_PROTO_VERSION) != 0 || (ok >= 0 && add_bool(o, "ok", ok) != 0)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Prints o into out; returns 0, APC_ENOMEM or APC_ETOOBIG. */
static int print_to(const cJSON *o, apc_buf_t *out, char *err, size_t errsz)
{
    char *s = cJSON_PrintUnformatted(o);
    size_t n;

    if (s == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory encoding a message");
    n = strlen(s);
    if (n > APC_PROTO_MAX_MESSAGE) {
        cJSON_free(s);
        return apc_seterr(err, errsz, APC_ETOOBIG, "message: %lu bytes exceeds the %d-byte limit",
                          (unsigned long)n, APC_PROTO_MAX_MESSAGE);
    }
    apc_buf_append(out, s, n);
    cJSON_free(s);
    if (apc_buf_failed(out))
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory encoding a message");
    return 0;
}

void apc_proto_request_init(apc_proto_request_t *req, apc_proto_op_t op)
{
    memset(req, 0, sizeof *req);
    req->op = op;
    req->at_ms = req->in_ms = req->since_ms = APC_PROTO_NONE;
    req->before_id = req->tail_bytes = req->for_ms = APC_PROTO_NONE;
    if (op == APC_OP_HISTORY)
        req->limit = APC_PROTO_HISTORY_DEFAULT_LIMIT;
    if (op == APC_OP_LOGS)
        req->tail_bytes = APC_PROTO_LOGS_DEFAULT_TAIL;
}

int apc_proto_request_encode(const apc_proto_request_t *req, apc_buf_t *out, char *err,
                             size_t errsz)
{
    cJSON *o = NULL, *arr;
    unsigned f;
    size_t i;
    int rc, bad = 0;

    rc = check_request(req, err, errsz);
    if (rc != 0)
        return rc;
    o = new_message(-1);
    if (o == NULL)
        goto oom;
    if (!cJSON_AddStringToObject(o, "op", apc_proto_op_name(req->op)))
        goto oom;
    f = op_fields[req->op];
    if ((f & F_JOB) && req->job != NULL)
        bad |= add_text(o, "job", req->job);
    if ((f & F_ARGS) && req->nargs > 0) {
        arr = cJSON_AddArrayToObject(o, "args");
        bad |= arr == NULL;
        for (i = 0; arr != NULL && i < req->nargs; i++) {
            cJSON *s = cJSON_CreateString(req->args[i]);
            bad |= s == NULL || !cJSON_AddItemToArray(arr, s);
        }
    }
    if ((f & F_AT) && req->at_ms != APC_PROTO_NONE)
        bad |= add_int(o, "at_ms", req->at_ms);
    if ((f & F_IN) && req->in_ms != APC_PROTO_NONE)
        bad |= add_int(o, "in_ms", req->in_ms);
    if (f & F_WAIT)
        bad |= add_bool(o, "wait", req->wait);
    if (f & F_ID)
        bad |= add_int(o, "id", req->id);
    if ((f & F_SINCE) && req->since_ms != APC_PROTO_NONE)
        bad |= add_int(o, "since_ms", req->since_ms);
    if ((f & F_STATUS) && req->status != NULL)
        bad |= add_text(o, "status", req->status);
    if (f & F_LIMIT)
        bad |= add_int(o, "limit", req->limit);
    if ((f & F_BEFORE) && req->before_id != APC_PROTO_NONE)
        bad |= add_int(o, "before_id", req->before_id);
    if (f & F_TAIL)
        bad |= add_int(o, "tail_bytes", req->tail_bytes);
    if ((f & F_FOR) && req->for_ms != APC_PROTO_NONE)
        bad |= add_int(o, "for_ms", req->for_ms);
    if (bad)
        goto oom;
    rc = print_to(o, out, err, errsz);
    cJSON_Delete(o);
    return rc;
oom:
    cJSON_Delete(o);
    return apc_seterr(err, errsz, APC_ENOMEM, "out of memory encoding a request");
}

/* ---- JSON reading ------------------------------------------------------------ */

/* Where a decoder is, for messages like "history.limit: ..." or "runs[3].status: ...". */
typedef struct dctx {
    char *err;
    size_t errsz;
    char scope[48];
} dctx_t;

static int d_type(dctx_t *d, const char *key, const char *what)
{
    return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: expected %s", d->scope, key, what);
}

/*
 * Checks the keys of obj: with strict, every key must be in `known`; in any case none of the
 * known keys may appear twice. Returns 0 or APC_EPROTO.
 */
static int d_keys(dctx_t *d, const cJSON *obj, const char *const *known, int strict)
{
    const cJSON *c;
    uint32_t seen = 0;

    for (c = obj->child; c != NULL; c = c->next) {
        int i;
        for (i = 0; known[i] != NULL; i++)
            if (strcmp(c->string, known[i]) == 0)
                break;
        if (known[i] == NULL) {
            if (strict)
                return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%.40s: unknown key", d->scope,
                                  c->string);
            continue;
        }
        if (seen & (UINT32_C(1) << i))
            return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: duplicate key", d->scope,
                              known[i]);
        seen |= UINT32_C(1) << i;
    }
    return 0;
}

enum { OPT = 0, REQ = 1, NUL_OK = 2 };

/* Reads a string member. Absent (or null with NUL_OK) gives NULL unless REQ. */
static int d_str(dctx_t *d, const cJSON *obj, const char *key, int flags, const char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = NULL;
    if (it == NULL || ((flags & NUL_OK) && cJSON_IsNull(it))) {
        if ((flags & REQ) && it == NULL)
            return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: required", d->scope, key);
        return 0;
    }
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return d_type(d, key, (flags & NUL_OK) ? "a string or null" : "a string");
    if (!apc_proto_utf8_valid(it->valuestring, strlen(it->valuestring)))
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: not valid UTF-8", d->scope, key);
    *out = it->valuestring;
    return 0;
}

/* Converts a JSON number to an exact int64; returns 0 or -1 if it is not an integer. */
static int exact_int(const cJSON *it, int64_t *out)
{
    double v = it->valuedouble;

    /* NaN fails v == floor(v) and infinities fail the range test, so no isfinite() is needed
       (mingw's isfinite macro trips -Wfloat-conversion). */
    if (!cJSON_IsNumber(it) || v != floor(v) || v >= MAX_EXACT || v <= -MAX_EXACT)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Reads an integer member into *out (unchanged when absent, NONE for null with NUL_OK). */
static int d_int(dctx_t *d, const cJSON *obj, const char *key, int flags, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (it == NULL) {
        if (flags & REQ)
            return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: required", d->scope, key);
        return 0;
    }
    if ((flags & NUL_OK) && cJSON_IsNull(it)) {
        *out = APC_PROTO_NONE;
        return 0;
    }
    if (exact_int(it, out) != 0)
        return d_type(d, key, (flags & NUL_OK) ? "an integer or null" : "an integer");
    return 0;
}

static int d_bool(dctx_t *d, const cJSON *obj, const char *key, int flags, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (it == NULL) {
        if (flags & REQ)
            return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s.%s: required", d->scope, key);
        return 0;
    }
    if (!cJSON_IsBool(it))
        return d_type(d, key, "a boolean");
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

/*
 * Size cap, byte checks and parse. On success *root is an object whose "v" is 1.
 * Returns 0, APC_ETOOBIG, APC_EPROTO or APC_EINVAL.
 */
static int parse_message(const char *msg, size_t len, cJSON **root, char *err, size_t errsz)
{
    const char *end = NULL;
    const cJSON *v;
    int64_t ver;
    size_t i;

    *root = NULL;
    if (msg == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "message: NULL");
    if (len > APC_PROTO_MAX_MESSAGE)
        return apc_seterr(err, errsz, APC_ETOOBIG, "message: %lu bytes exceeds the %d-byte limit",
                          (unsigned long)len, APC_PROTO_MAX_MESSAGE);
    for (i = 0; i < len; i++) {
        if (msg[i] == '\0')
            return apc_seterr(err, errsz, APC_EPROTO, "message: NUL byte at offset %lu",
                              (unsigned long)i);
        /* Outside strings a backslash is a syntax error anyway, so every backslash here
           starts a two-character escape inside a string. */
        if (msg[i] == '\\' && i + 1 < len) {
            if (msg[i + 1] == 'u' && i + 5 < len && memcmp(msg + i + 2, "0000", 4) == 0)
                return apc_seterr(err, errsz, APC_EPROTO,
                                  "message: \\u0000 at offset %lu is not allowed in a string",
                                  (unsigned long)i);
            i++;
        }
    }
    *root = cJSON_ParseWithLengthOpts(msg, len, &end, 0);
    if (*root == NULL) {
        size_t at = (end != NULL && end >= msg && end <= msg + len) ? (size_t)(end - msg) : 0;
        return apc_seterr(err, errsz, APC_EPROTO, "message: not valid JSON (near offset %lu)",
                          (unsigned long)at);
    }
    for (; end < msg + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(*root);
            *root = NULL;
            return apc_seterr(err, errsz, APC_EPROTO,
                              "message: unexpected data after the JSON value at offset %lu",
                              (unsigned long)(end - msg));
        }
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return apc_seterr(err, errsz, APC_EPROTO, "message: expected a JSON object");
    }
    v = cJSON_GetObjectItemCaseSensitive(*root, "v");
    if (v == NULL || exact_int(v, &ver) != 0 || ver != APC_PROTO_VERSION) {
        cJSON_Delete(*root);
        *root = NULL;
        return apc_seterr(err, errsz, APC_EPROTO, "unsupported protocol version");
    }
    return 0;
}

static void dctx_init(dctx_t *d, char *err, size_t errsz, const char *scope)
{
    d->err = err;
    d->errsz = errsz;
    (void)snprintf(d->scope, sizeof d->scope, "%s", scope);
}

static owner_t *owner_new(cJSON *root)
{
    owner_t *o = calloc(1, sizeof *o);

    if (o != NULL)
        o->root = root;
    return o;
}

static void owner_free(void *p)
{
    owner_t *o = p;

    if (o == NULL)
        return;
    cJSON_Delete(o->root);
    free((void *)o->args);
    free(o->jobs);
    free(o->runs);
    free(o);
}

static const char *const req_keys[APC_OP_COUNT_][9] = {
    {"v", "op", NULL},
    {"v", "op", NULL},
    {"v", "op", "job", "args", "at_ms", "in_ms", "wait", NULL},
    {"v", "op", "id", NULL},
    {"v", "op", "job", "since_ms", "status", "limit", "before_id", NULL},
    {"v", "op", "id", NULL},
    {"v", "op", "id", "tail_bytes", NULL},
    {"v", "op", NULL},
    {"v", "op", "job", "for_ms", NULL},
    {"v", "op", "job", NULL},
};

/* Reads the fields of a request whose op and keys are already checked. */
static int read_request(dctx_t *d, const cJSON *root, owner_t *own, apc_proto_request_t *r)
{
    unsigned f = op_fields[r->op];
    int rc = 0;

    if (f & F_JOB)
        rc = d_str(d, root, "job", (r->op == APC_OP_HISTORY) ? OPT : REQ, &r->job);
    if (rc == 0 && (f & F_ARGS)) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "args"), *c;
        size_t n = 0;
        if (a != NULL && !cJSON_IsArray(a))
            return d_type(d, "args", "an array of strings");
        for (c = a ? a->child : NULL; c != NULL; c = c->next)
            if (++n > APC_PROTO_MAX_ARGS)
                return apc_seterr(d->err, d->errsz, APC_EINVAL, "submit.args: at most %d arguments",
                                  APC_PROTO_MAX_ARGS);
        if (n > 0) {
            own->args = calloc(n, sizeof *own->args);
            if (own->args == NULL)
                return apc_seterr(d->err, d->errsz, APC_ENOMEM, "out of memory");
            r->args = own->args;
            for (c = a->child; c != NULL; c = c->next, r->nargs++) {
                if (!cJSON_IsString(c) || c->valuestring == NULL)
                    return apc_seterr(d->err, d->errsz, APC_EPROTO,
                                      "submit.args[%lu]: expected a string",
                                      (unsigned long)r->nargs);
                r->args[r->nargs] = c->valuestring;
            }
        }
    }
    if (rc == 0 && (f & F_AT))
        rc = d_int(d, root, "at_ms", OPT, &r->at_ms);
    if (rc == 0 && (f & F_IN))
        rc = d_int(d, root, "in_ms", OPT, &r->in_ms);
    if (rc == 0 && (f & F_WAIT))
        rc = d_bool(d, root, "wait", OPT, &r->wait);
    if (rc == 0 && (f & F_ID))
        rc = d_int(d, root, "id", REQ, &r->id);
    if (rc == 0 && (f & F_SINCE))
        rc = d_int(d, root, "since_ms", OPT, &r->since_ms);
    if (rc == 0 && (f & F_STATUS))
        rc = d_str(d, root, "status", OPT, &r->status);
    if (rc == 0 && (f & F_LIMIT)) {
        int64_t lim = r->limit;
        rc = d_int(d, root, "limit", OPT, &lim);
        if (rc == 0)
            rc = check_range("history", "limit", lim, 1, APC_PROTO_HISTORY_MAX_LIMIT, d->err,
                             d->errsz);
        if (rc == 0)
            r->limit = (int)lim;
    }
    if (rc == 0 && (f & F_BEFORE))
        rc = d_int(d, root, "before_id", OPT, &r->before_id);
    if (rc == 0 && (f & F_TAIL))
        rc = d_int(d, root, "tail_bytes", OPT, &r->tail_bytes);
    if (rc == 0 && (f & F_FOR))
        rc = d_int(d, root, "for_ms", OPT, &r->for_ms);
    return rc;
}

int apc_proto_request_decode(const char *msg, size_t len, apc_proto_request_t *out, char *err,
                             size_t errsz)
{
    cJSON *root = NULL;
    owner_t *own = NULL;
    const cJSON *op;
    apc_proto_op_t code;
    dctx_t d;
    int rc;

    apc_proto_request_init(out, APC_OP_STATUS);
    rc = parse_message(msg, len, &root, err, errsz);
    if (rc != 0)
        return rc;
    op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (op == NULL) {
        rc = apc_seterr(err, errsz, APC_EPROTO, "op: required");
        goto cleanup;
    }
    if (!cJSON_IsString(op) || op->valuestring == NULL) {
        rc = apc_seterr(err, errsz, APC_EPROTO, "op: expected a string");
        goto cleanup;
    }
    if (apc_proto_op_parse(op->valuestring, &code) != 0) {
        rc = apc_seterr(err, errsz, APC_EPROTO, "op: unknown operation \"%.40s\"", op->valuestring);
        goto cleanup;
    }
    apc_proto_request_init(out, code);
    dctx_init(&d, err, errsz, op_names[code]);
    rc = d_keys(&d, root, req_keys[code], 1);
    if (rc != 0)
        goto cleanup;
    own = owner_new(root);
    if (own == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    root = NULL;
    rc = read_request(&d, own->root, own, out);
    if (rc == 0)
        rc = check_request(out, err, errsz);
    if (rc == 0) {
        out->owner_ = own;
        return 0;
    }
cleanup:
    owner_free(own);
    cJSON_Delete(root);
    apc_proto_request_init(out, APC_OP_STATUS);
    return rc;
}

void apc_proto_request_free(apc_proto_request_t *req)
{
    if (req == NULL)
        return;
    owner_free(req->owner_);
    apc_proto_request_init(req, req->op);
}

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int apc_proto_request_equal(const apc_proto_request_t *a, const apc_proto_request_t *b)
{
    size_t i;

    if (a->op != b->op || !str_eq(a->job, b->job) || a->nargs != b->nargs || a->at_ms != b->at_ms ||
        a->in_ms != b->in_ms || a->wait != b->wait || a->id != b->id ||
        a->since_ms != b->since_ms || !str_eq(a->status, b->status) || a->limit != b->limit ||
        a->before_id != b->before_id || a->tail_bytes != b->tail_bytes || a->for_ms != b->for_ms)
        return 0;
    for (i = 0; i < a->nargs; i++)
        if (!str_eq(a->args[i], b->args[i]))
            return 0;
    return 1;
}

/* ---- Responses --------------------------------------------------------------- */

void apc_proto_response_init(apc_proto_response_t *resp, apc_proto_resp_kind_t kind)
{
    memset(resp, 0, sizeof *resp);
    resp->kind = kind;
    resp->id = resp->due_at = APC_PROTO_NONE;
    resp->status.pid = resp->status.started_at = resp->status.now = APC_PROTO_NONE;
}

/* The value rules of a run record. */
static int check_run(const char *scope, const apc_proto_run_t *r, char *err, size_t errsz)
{
    int rc;

    rc = check_range(scope, "id", r->id, 1, APC_PROTO_MAX_ID, err, errsz);
    if (rc == 0)
        rc = check_job(scope, "job", r->job, err, errsz);
    if (rc == 0 && !in_list(r->trigger, run_triggers))
        rc = apc_seterr(err, errsz, APC_EINVAL,
                        "%s.trigger: must be schedule, manual, retry, startup or catchup", scope);
    if (rc == 0 && !in_list(r->status, run_statuses))
        rc = apc_seterr(err, errsz, APC_EINVAL,
                        "%s.status: must be queued, running, succeeded, failed, timed_out, "
                        "cancelled, interrupted or skipped",
                        scope);
    if (rc == 0)
        rc = check_range(scope, "attempt", r->attempt, 1, INT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_opt(scope, "queued_at", r->queued_at, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
    if (rc == 0)
        rc = check_opt(scope, "started_at", r->started_at, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
    if (rc == 0)
        rc = check_opt(scope, "finished_at", r->finished_at, 0, APC_PROTO_MAX_INSTANT_MS, err,
                       errsz);
    if (rc == 0 && r->has_exit_code)
        rc = check_range(scope, "exit_code", r->exit_code, INT32_MIN, UINT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_opt(scope, "worker", r->worker, 0, INT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_opt(scope, "pid", r->pid, 0, UINT32_MAX, err, errsz);
    return rc;
}

static int check_job_info(const char *scope, const apc_proto_job_info_t *j, char *err, size_t errsz)
{
    /* schedule may be NULL: a manual-only job has none (sent as null). */
    int rc = check_job(scope, "name", j->name, err, errsz);

    if (rc == 0)
        rc = check_opt(scope, "paused_until", j->paused_until, 0, APC_PROTO_MAX_INSTANT_MS, err,
                       errsz);
    if (rc == 0)
        rc = check_opt(scope, "next_run", j->next_run, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
    if (rc == 0)
        rc = check_range(scope, "running", j->running, 0, INT32_MAX, err, errsz);
    if (rc == 0 && j->last_status != NULL && !in_list(j->last_status, run_statuses))
        rc = apc_seterr(err, errsz, APC_EINVAL, "%s.last_status: not a run status", scope);
    if (rc == 0)
        rc = check_opt(scope, "last_finished_at", j->last_finished_at, 0, APC_PROTO_MAX_INSTANT_MS,
                       err, errsz);
    return rc;
}

static int check_status(const apc_proto_status_t *s, char *err, size_t errsz)
{
    int rc = s->version == NULL ? apc_seterr(err, errsz, APC_EINVAL, "status.version: missing") : 0;
    if (rc == 0)
        rc = check_opt("status", "pid", s->pid, 0, UINT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_opt("status", "started_at", s->started_at, 0, APC_PROTO_MAX_INSTANT_MS, err,
                       errsz);
    if (rc == 0)
        rc = check_opt("status", "now", s->now, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
    if (rc == 0)
        rc = check_range("status", "workers", s->workers, 0, INT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_range("status", "workers_busy", s->workers_busy, 0, INT32_MAX, err, errsz);
    if (rc == 0)
        rc = check_range("status", "jobs", s->jobs, 0, APC_PROTO_MAX_ID, err, errsz);
    if (rc == 0)
        rc = check_range("status", "queued", s->queued, 0, APC_PROTO_MAX_ID, err, errsz);
    if (rc == 0)
        rc = check_range("status", "running", s->running, 0, APC_PROTO_MAX_ID, err, errsz);
    return rc;
}

/* The value rules of a response, shared by encoder and decoder. */
static int check_response(const apc_proto_response_t *r, char *err, size_t errsz)
{
    char scope[32];
    size_t i;
    int rc = 0;

    switch (r->kind) {
    case APC_RESP_ERROR:
        if (r->error_code >= 0 || strcmp(apc_errname(r->error_code), "EUNKNOWN") == 0)
            return apc_seterr(err, errsz, APC_EINVAL, "error.code: %d is not an APC_E* code",
                              r->error_code);
        if (r->error_message == NULL)
            return apc_seterr(err, errsz, APC_EINVAL, "error.message: missing");
        return 0;
    case APC_RESP_ACK:
        return 0;
    case APC_RESP_STATUS:
        return check_status(&r->status, err, errsz);
    case APC_RESP_LIST:
        if (r->njobs > 0 && r->jobs == NULL)
            return apc_seterr(err, errsz, APC_EINVAL, "jobs: missing");
        for (i = 0; rc == 0 && i < r->njobs; i++) {
            (void)snprintf(scope, sizeof scope, "jobs[%lu]", (unsigned long)i);
            rc = check_job_info(scope, &r->jobs[i], err, errsz);
        }
        return rc;
    case APC_RESP_SUBMITTED:
        rc = check_range("submit", "id", r->id, 1, APC_PROTO_MAX_ID, err, errsz);
        if (rc == 0)
            rc = check_job("submit", "job", r->job, err, errsz);
        if (rc == 0)
            rc =
                check_range("submit", "due_at", r->due_at, 0, APC_PROTO_MAX_INSTANT_MS, err, errsz);
        return rc;
    case APC_RESP_RUN:
        if (r->event != NULL && !in_list(r->event, run_events))
            return apc_seterr(err, errsz, APC_EINVAL, "event: must be queued, started or finished");
        return check_run("run", &r->run, err, errsz);
    case APC_RESP_RUNS:
        if (r->nruns > 0 && r->runs == NULL)
            return apc_seterr(err, errsz, APC_EINVAL, "runs: missing");
        for (i = 0; rc == 0 && i < r->nruns; i++) {
            (void)snprintf(scope, sizeof scope, "runs[%lu]", (unsigned long)i);
            rc = check_run(scope, &r->runs[i], err, errsz);
        }
        return rc;
    case APC_RESP_LOGS:
        rc = check_range("logs", "id", r->id, 1, APC_PROTO_MAX_ID, err, errsz);
        if (rc == 0 && r->data == NULL)
            rc = apc_seterr(err, errsz, APC_EINVAL, "logs.data: missing");
        return rc;
    default:
        return apc_seterr(err, errsz, APC_EINVAL, "response: unknown kind %d", (int)r->kind);
    }
}

/* Builds the JSON object of a run record; NULL on OOM. */
static cJSON *run_json(const apc_proto_run_t *r)
{
    cJSON *o = cJSON_CreateObject();
    int bad;

    if (o == NULL)
        return NULL;
    bad = add_int(o, "id", r->id) | add_text(o, "job", r->job) |
          add_text(o, "trigger", r->trigger) | add_text(o, "status", r->status) |
          add_int(o, "attempt", r->attempt) | add_int(o, "queued_at", r->queued_at) |
          add_int(o, "started_at", r->started_at) | add_int(o, "finished_at", r->finished_at) |
          add_int(o, "exit_code", r->has_exit_code ? r->exit_code : APC_PROTO_NONE) |
          add_text(o, "submitted_by", r->submitted_by) | add_int(o, "worker", r->worker) |
          add_int(o, "pid", r->pid) | add_text(o, "output_path", r->output_path) |
          add_text(o, "output_tail", r->output_tail) | add_text(o, "error", r->error);
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *job_json(const apc_proto_job_info_t *j)
{
    cJSON *o = cJSON_CreateObject();
    int bad;

    if (o == NULL)
        return NULL;
    bad = add_text(o, "name", j->name) | add_text(o, "schedule", j->schedule) |
          add_bool(o, "enabled", j->enabled) | add_bool(o, "paused", j->paused) |
          add_int(o, "paused_until", j->paused_until) | add_int(o, "next_run", j->next_run) |
          add_int(o, "running", j->running) | add_text(o, "last_status", j->last_status) |
          add_int(o, "last_finished_at", j->last_finished_at);
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Returns the printed size of o, or 0 on OOM. */
static size_t printed_size(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    size_t n;

    if (s == NULL)
        return 0;
    n = strlen(s);
    cJSON_free(s);
    return n;
}

/* Adds the newest runs that fit in the message; sets "more". Returns 0, -1 (OOM), or 1 if
   not even the envelope fits. */
static int add_runs_fitting(cJSON *o, const apc_proto_response_t *r)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "runs");
    size_t total, i;
    int more = r->more;

    /* Measure with "false", the longer of the two values the flag can take. */
    if (arr == NULL || add_bool(o, "more", 0) != 0)
        return -1;
    total = printed_size(o);
    if (total == 0)
        return -1;
    for (i = 0; i < r->nruns; i++) {
        cJSON *item = run_json(&r->runs[i]);
        size_t n = item ? printed_size(item) : 0;
        if (n == 0) {
            cJSON_Delete(item);
            return -1;
        }
        if (total + n + 1 > APC_PROTO_MAX_MESSAGE) {
            cJSON_Delete(item);
            more = 1;
            break;
        }
        total += n + (i > 0);
        if (!cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            return -1;
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "more");
    return add_bool(o, "more", more);
}

/* Escaped size of one byte in cJSON's output. */
static size_t escaped_size(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1;
}

/* Adds "data" (sanitized, oldest bytes dropped to fit) and "truncated". */
static int add_logs_fitting(cJSON *o, const apc_proto_response_t *r)
{
    char *clean = utf8_sanitize(r->data);
    size_t total, len, start, budget;
    int truncated = r->truncated, rc = -1;

    if (clean == NULL)
        return -1;
    if (!cJSON_AddStringToObject(o, "data", "") || add_bool(o, "truncated", 0) != 0)
        goto cleanup;
    total = printed_size(o);
    if (total == 0)
        goto cleanup;
    budget = total < APC_PROTO_MAX_MESSAGE ? APC_PROTO_MAX_MESSAGE - total : 0;
    len = strlen(clean);
    start = len;
    while (start > 0 && escaped_size((unsigned char)clean[start - 1]) <= budget) {
        budget -= escaped_size((unsigned char)clean[start - 1]);
        start--;
    }
    /* Never start in the middle of a UTF-8 sequence. */
    while (start < len && ((unsigned char)clean[start] & 0xC0u) == 0x80u)
        start++;
    if (start > 0)
        truncated = 1;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "data");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "truncated");
    if (!cJSON_AddStringToObject(o, "data", clean + start) || add_bool(o, "truncated", truncated))
        goto cleanup;
    rc = 0;
cleanup:
    free(clean);
    return rc;
}

int apc_proto_response_encode(const apc_proto_response_t *resp, apc_buf_t *out, char *err,
                              size_t errsz)
{
    cJSON *o = NULL, *sub, *arr;
    size_t i;
    int rc, bad = 0;

    rc = check_response(resp, err, errsz);
    if (rc != 0)
        return rc;
    o = new_message(resp->kind != APC_RESP_ERROR);
    if (o == NULL)
        goto oom;
    switch (resp->kind) {
    case APC_RESP_ERROR:
        sub = cJSON_AddObjectToObject(o, "error");
        bad = sub == NULL || !cJSON_AddStringToObject(sub, "code", apc_errname(resp->error_code)) ||
              add_text(sub, "message", resp->error_message) != 0;
        break;
    case APC_RESP_ACK:
        if (resp->message != NULL)
            bad = add_text(o, "message", resp->message);
        break;
    case APC_RESP_STATUS: {
        const apc_proto_status_t *s = &resp->status;
        sub = cJSON_AddObjectToObject(o, "status");
        bad = sub == NULL ||
              (add_text(sub, "version", s->version) | add_int(sub, "pid", s->pid) |
               add_int(sub, "started_at", s->started_at) | add_int(sub, "now", s->now) |
               add_int(sub, "workers", s->workers) | add_int(sub, "workers_busy", s->workers_busy) |
               add_int(sub, "jobs", s->jobs) | add_int(sub, "queued", s->queued) |
               add_int(sub, "running", s->running)) != 0;
        break;
    }
    case APC_RESP_LIST:
        arr = cJSON_AddArrayToObject(o, "jobs");
        bad = arr == NULL;
        for (i = 0; !bad && i < resp->njobs; i++) {
            cJSON *item = job_json(&resp->jobs[i]);
            bad = item == NULL || !cJSON_AddItemToArray(arr, item);
            if (bad)
                cJSON_Delete(item);
        }
        break;
    case APC_RESP_SUBMITTED:
        bad = add_int(o, "id", resp->id) | add_text(o, "job", resp->job) |
              add_int(o, "due_at", resp->due_at) | add_bool(o, "wait", resp->wait);
        break;
    case APC_RESP_RUN:
        if (resp->event != NULL)
            bad = add_text(o, "event", resp->event);
        sub = run_json(&resp->run);
        bad |= sub == NULL || !cJSON_AddItemToObject(o, "run", sub);
        if (bad && sub != NULL && cJSON_GetObjectItemCaseSensitive(o, "run") != sub)
            cJSON_Delete(sub);
        break;
    case APC_RESP_RUNS:
        rc = add_runs_fitting(o, resp);
        bad = rc != 0;
        break;
    case APC_RESP_LOGS:
        bad = add_int(o, "id", resp->id) | add_logs_fitting(o, resp);
        break;
    default:
        break;
    }
    if (bad)
        goto oom;
    rc = print_to(o, out, err, errsz);
    cJSON_Delete(o);
    return rc;
oom:
    cJSON_Delete(o);
    return apc_seterr(err, errsz, APC_ENOMEM, "out of memory encoding a response");
}

int apc_proto_encode_error(int code, const char *message, apc_buf_t *out)
{
    apc_proto_response_t r;

    apc_proto_response_init(&r, APC_RESP_ERROR);
    r.error_code = code;
    r.error_message = message ? message : apc_strerror(code);
    return apc_proto_response_encode(&r, out, NULL, 0);
}

/* Maps a symbolic name ("ENOTFOUND") back to its APC_E* code; APC_EPROTO if unknown. */
static int code_from_name(const char *name)
{
    int c;

    for (c = APC_EFIRST_ + 1; c < APC_ELAST_; c++)
        if (strcmp(apc_errname(c), name) == 0)
            return c;
    return APC_EPROTO;
}

static const char *const run_keys[] = {"id",          "job",          "trigger",    "status",
                                       "attempt",     "queued_at",    "started_at", "finished_at",
                                       "exit_code",   "submitted_by", "worker",     "pid",
                                       "output_path", "output_tail",  "error",      NULL};

static int read_run(dctx_t *d, const cJSON *o, apc_proto_run_t *r)
{
    int rc;

    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(o))
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s: expected an object", d->scope);
    rc = d_keys(d, o, run_keys, 0);
    if (rc == 0)
        rc = d_int(d, o, "id", REQ, &r->id);
    if (rc == 0)
        rc = d_str(d, o, "job", REQ, &r->job);
    if (rc == 0)
        rc = d_str(d, o, "trigger", REQ, &r->trigger);
    if (rc == 0)
        rc = d_str(d, o, "status", REQ, &r->status);
    if (rc == 0)
        rc = d_int(d, o, "attempt", REQ, &r->attempt);
    if (rc == 0)
        rc = d_int(d, o, "queued_at", REQ | NUL_OK, &r->queued_at);
    if (rc == 0)
        rc = d_int(d, o, "started_at", REQ | NUL_OK, &r->started_at);
    if (rc == 0)
        rc = d_int(d, o, "finished_at", REQ | NUL_OK, &r->finished_at);
    if (rc == 0)
        rc = d_int(d, o, "exit_code", REQ | NUL_OK, &r->exit_code);
    if (rc == 0) {
        r->has_exit_code = r->exit_code != APC_PROTO_NONE;
        if (!r->has_exit_code)
            r->exit_code = 0;
        rc = d_str(d, o, "submitted_by", REQ | NUL_OK, &r->submitted_by);
    }
    if (rc == 0)
        rc = d_int(d, o, "worker", REQ | NUL_OK, &r->worker);
    if (rc == 0)
        rc = d_int(d, o, "pid", REQ | NUL_OK, &r->pid);
    if (rc == 0)
        rc = d_str(d, o, "output_path", REQ | NUL_OK, &r->output_path);
    if (rc == 0)
        rc = d_str(d, o, "output_tail", REQ | NUL_OK, &r->output_tail);
    if (rc == 0)
        rc = d_str(d, o, "error", REQ | NUL_OK, &r->error);
    return rc;
}

static const char *const job_keys[] = {
    "name",     "schedule", "enabled",     "paused",           "paused_until",
    "next_run", "running",  "last_status", "last_finished_at", NULL};

static int read_job(dctx_t *d, const cJSON *o, apc_proto_job_info_t *j)
{
    int rc;

    memset(j, 0, sizeof *j);
    if (!cJSON_IsObject(o))
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s: expected an object", d->scope);
    rc = d_keys(d, o, job_keys, 0);
    if (rc == 0)
        rc = d_str(d, o, "name", REQ, &j->name);
    if (rc == 0)
        rc = d_str(d, o, "schedule", REQ | NUL_OK, &j->schedule);
    if (rc == 0)
        rc = d_bool(d, o, "enabled", REQ, &j->enabled);
    if (rc == 0)
        rc = d_bool(d, o, "paused", REQ, &j->paused);
    if (rc == 0)
        rc = d_int(d, o, "paused_until", REQ | NUL_OK, &j->paused_until);
    if (rc == 0)
        rc = d_int(d, o, "next_run", REQ | NUL_OK, &j->next_run);
    if (rc == 0)
        rc = d_int(d, o, "running", REQ, &j->running);
    if (rc == 0)
        rc = d_str(d, o, "last_status", REQ | NUL_OK, &j->last_status);
    if (rc == 0)
        rc = d_int(d, o, "last_finished_at", REQ | NUL_OK, &j->last_finished_at);
    return rc;
}

static const char *const status_keys[] = {
    "version",      "pid",  "started_at", "now",     "workers",
    "workers_busy", "jobs", "queued",     "running", NULL};

static int read_status(dctx_t *d, const cJSON *o, apc_proto_status_t *s)
{
    int rc;

    if (!cJSON_IsObject(o))
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "status: expected an object");
    rc = d_keys(d, o, status_keys, 0);
    if (rc == 0)
        rc = d_str(d, o, "version", REQ, &s->version);
    if (rc == 0)
        rc = d_int(d, o, "pid", REQ | NUL_OK, &s->pid);
    if (rc == 0)
        rc = d_int(d, o, "started_at", REQ | NUL_OK, &s->started_at);
    if (rc == 0)
        rc = d_int(d, o, "now", REQ | NUL_OK, &s->now);
    if (rc == 0)
        rc = d_int(d, o, "workers", REQ, &s->workers);
    if (rc == 0)
        rc = d_int(d, o, "workers_busy", REQ, &s->workers_busy);
    if (rc == 0)
        rc = d_int(d, o, "jobs", REQ, &s->jobs);
    if (rc == 0)
        rc = d_int(d, o, "queued", REQ, &s->queued);
    if (rc == 0)
        rc = d_int(d, o, "running", REQ, &s->running);
    return rc;
}

/* Reads an array of objects with reader fn into a calloc'd array; returns 0 or an error. */
static int read_array(dctx_t *d, const cJSON *root, const char *key, size_t elem, void **out,
                      size_t *n, int (*fn)(dctx_t *, const cJSON *, void *))
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key), *c;
    size_t count = 0, i = 0;
    char *base;
    dctx_t sub;

    *out = NULL;
    *n = 0;
    if (a == NULL)
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s: required", key);
    if (!cJSON_IsArray(a))
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "%s: expected an array", key);
    for (c = a->child; c != NULL; c = c->next)
        count++;
    if (count == 0)
        return 0;
    base = calloc(count, elem);
    if (base == NULL)
        return apc_seterr(d->err, d->errsz, APC_ENOMEM, "out of memory");
    *out = base;
    for (c = a->child; c != NULL; c = c->next, i++) {
        dctx_init(&sub, d->err, d->errsz, "");
        (void)snprintf(sub.scope, sizeof sub.scope, "%s[%lu]", key, (unsigned long)i);
        int rc = fn(&sub, c, base + i * elem);
        if (rc != 0)
            return rc;
        *n = i + 1;
    }
    return 0;
}

static int read_run_v(dctx_t *d, const cJSON *o, void *out)
{
    return read_run(d, o, out);
}

static int read_job_v(dctx_t *d, const cJSON *o, void *out)
{
    return read_job(d, o, out);
}

/* Reads the body of a successful response of the given kind. */
static int read_body(dctx_t *d, const cJSON *root, owner_t *own, apc_proto_response_t *r)
{
    const cJSON *sub;
    void *arr = NULL;
    int rc = 0;

    switch (r->kind) {
    case APC_RESP_ACK:
        return d_str(d, root, "message", NUL_OK, &r->message);
    case APC_RESP_STATUS:
        sub = cJSON_GetObjectItemCaseSensitive(root, "status");
        if (sub == NULL)
            return apc_seterr(d->err, d->errsz, APC_EPROTO, "status: required");
        dctx_init(d, d->err, d->errsz, "status");
        return read_status(d, sub, &r->status);
    case APC_RESP_LIST:
        rc = read_array(d, root, "jobs", sizeof(apc_proto_job_info_t), &arr, &r->njobs, read_job_v);
        own->jobs = arr;
        r->jobs = own->jobs;
        return rc;
    case APC_RESP_SUBMITTED:
        rc = d_int(d, root, "id", REQ, &r->id);
        if (rc == 0)
            rc = d_str(d, root, "job", REQ, &r->job);
        if (rc == 0)
            rc = d_int(d, root, "due_at", REQ, &r->due_at);
        if (rc == 0)
            rc = d_bool(d, root, "wait", REQ, &r->wait);
        return rc;
    case APC_RESP_RUN:
        rc = d_str(d, root, "event", NUL_OK, &r->event);
        sub = cJSON_GetObjectItemCaseSensitive(root, "run");
        if (rc == 0 && sub == NULL)
            rc = apc_seterr(d->err, d->errsz, APC_EPROTO, "run: required");
        if (rc == 0) {
            dctx_init(d, d->err, d->errsz, "run");
            rc = read_run(d, sub, &r->run);
        }
        return rc;
    case APC_RESP_RUNS:
        rc = read_array(d, root, "runs", sizeof(apc_proto_run_t), &arr, &r->nruns, read_run_v);
        own->runs = arr;
        r->runs = own->runs;
        if (rc == 0)
            rc = d_bool(d, root, "more", REQ, &r->more);
        return rc;
    case APC_RESP_LOGS:
        rc = d_int(d, root, "id", REQ, &r->id);
        if (rc == 0)
            rc = d_str(d, root, "data", REQ, &r->data);
        if (rc == 0)
            rc = d_bool(d, root, "truncated", REQ, &r->truncated);
        return rc;
    default:
        return apc_seterr(d->err, d->errsz, APC_EPROTO, "response: unexpected kind");
    }
}

static const char *const resp_keys[] = {"v",    "ok",   "error",  "message",   "status", "jobs",
                                        "id",   "job",  "due_at", "wait",      "event",  "run",
                                        "runs", "more", "data",   "truncated", NULL};

int apc_proto_response_decode(const char *msg, size_t len, apc_proto_op_t op,
                              apc_proto_response_t *out, char *err, size_t errsz)
{
    cJSON *root = NULL;
    owner_t *own = NULL;
    const cJSON *e;
    int ok = 0, rc;
    dctx_t d;

    apc_proto_response_init(out, APC_RESP_ACK);
    if (apc_proto_op_name(op) == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "op: unknown operation %d", (int)op);
    rc = parse_message(msg, len, &root, err, errsz);
    if (rc != 0)
        return rc;
    own = owner_new(root);
    if (own == NULL) {
        cJSON_Delete(root);
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    }
    dctx_init(&d, err, errsz, "response");
    rc = d_keys(&d, own->root, resp_keys, 0);
    if (rc == 0)
        rc = d_bool(&d, own->root, "ok", REQ, &ok);
    if (rc != 0)
        goto fail;
    if (!ok) {
        out->kind = APC_RESP_ERROR;
        e = cJSON_GetObjectItemCaseSensitive(own->root, "error");
        if (e == NULL || !cJSON_IsObject(e)) {
            rc = apc_seterr(err, errsz, APC_EPROTO, "error: expected an object");
            goto fail;
        }
        dctx_init(&d, err, errsz, "error");
        rc = d_str(&d, e, "code", REQ, &out->error_name);
        if (rc == 0)
            rc = d_str(&d, e, "message", REQ, &out->error_message);
        if (rc != 0)
            goto fail;
        out->error_code = code_from_name(out->error_name);
        out->owner_ = own;
        return 0;
    }
    switch (op) {
    case APC_OP_STATUS:
        out->kind = APC_RESP_STATUS;
        break;
    case APC_OP_LIST:
        out->kind = APC_RESP_LIST;
        break;
    case APC_OP_SUBMIT:
        out->kind =
            cJSON_GetObjectItemCaseSensitive(own->root, "run") ? APC_RESP_RUN : APC_RESP_SUBMITTED;
        break;
    case APC_OP_SHOW:
        out->kind = APC_RESP_RUN;
        break;
    case APC_OP_HISTORY:
        out->kind = APC_RESP_RUNS;
        break;
    case APC_OP_LOGS:
        out->kind = APC_RESP_LOGS;
        break;
    default:
        out->kind = APC_RESP_ACK;
        break;
    }
    dctx_init(&d, err, errsz, apc_proto_op_name(op));
    rc = read_body(&d, own->root, own, out);
    if (rc == 0)
        rc = check_response(out, err, errsz);
    if (rc == 0) {
        out->owner_ = own;
        return 0;
    }
fail:
    owner_free(own);
    apc_proto_response_init(out, APC_RESP_ACK);
    return rc;
}

void apc_proto_response_free(apc_proto_response_t *resp)
{
    if (resp == NULL)
        return;
    owner_free(resp->owner_);
    apc_proto_response_init(resp, resp->kind);
}

static int run_eq(const apc_proto_run_t *a, const apc_proto_run_t *b)
{
    return a->id == b->id && str_eq(a->job, b->job) && str_eq(a->trigger, b->trigger) &&
           str_eq(a->status, b->status) && a->attempt == b->attempt &&
           a->queued_at == b->queued_at && a->started_at == b->started_at &&
           a->finished_at == b->finished_at && a->has_exit_code == b->has_exit_code &&
           (!a->has_exit_code || a->exit_code == b->exit_code) &&
           str_eq(a->submitted_by, b->submitted_by) && a->worker == b->worker && a->pid == b->pid &&
           str_eq(a->output_path, b->output_path) && str_eq(a->output_tail, b->output_tail) &&
           str_eq(a->error, b->error);
}

static int job_eq(const apc_proto_job_info_t *a, const apc_proto_job_info_t *b)
{
    return str_eq(a->name, b->name) && str_eq(a->schedule, b->schedule) &&
           !a->enabled == !b->enabled && !a->paused == !b->paused &&
           a->paused_until == b->paused_until && a->next_run == b->next_run &&
           a->running == b->running && str_eq(a->last_status, b->last_status) &&
           a->last_finished_at == b->last_finished_at;
}

int apc_proto_response_equal(const apc_proto_response_t *a, const apc_proto_response_t *b)
{
    const apc_proto_status_t *s = &a->status, *t = &b->status;
    size_t i;

    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case APC_RESP_ERROR:
        return a->error_code == b->error_code && str_eq(a->error_message, b->error_message);
    case APC_RESP_ACK:
        return str_eq(a->message, b->message);
    case APC_RESP_STATUS:
        return str_eq(s->version, t->version) && s->pid == t->pid &&
               s->started_at == t->started_at && s->now == t->now && s->workers == t->workers &&
               s->workers_busy == t->workers_busy && s->jobs == t->jobs && s->queued == t->queued &&
               s->running == t->running;
    case APC_RESP_LIST:
        if (a->njobs != b->njobs)
            return 0;
        for (i = 0; i < a->njobs; i++)
            if (!job_eq(&a->jobs[i], &b->jobs[i]))
                return 0;
        return 1;
    case APC_RESP_SUBMITTED:
        return a->id == b->id && str_eq(a->job, b->job) && a->due_at == b->due_at &&
               !a->wait == !b->wait;
    case APC_RESP_RUN:
        return str_eq(a->event, b->event) && run_eq(&a->run, &b->run);
    case APC_RESP_RUNS:
        if (a->nruns != b->nruns || !a->more != !b->more)
            return 0;
        for (i = 0; i < a->nruns; i++)
            if (!run_eq(&a->runs[i], &b->runs[i]))
                return 0;
        return 1;
    case APC_RESP_LOGS:
        return a->id == b->id && str_eq(a->data, b->data) && !a->truncated == !b->truncated;
    default:
        return 0;
    }
}
