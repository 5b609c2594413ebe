/*
 * apc_config.c - loads apcsvc.json into an apc_config_t (see apc_config.h and
 * README.md (section Configuration) for the format).
 *
 * How a load goes:
 *   1. cheap checks on the raw bytes: size cap, UTF-16 / NUL / invalid UTF-8
 *      (so every string handed on to Windows converts cleanly);
 *   2. cJSON parses a NUL-terminated copy; a syntax error is reported at the
 *      byte where cJSON stopped (returned through return_parse_end, not the
 *      global cJSON_GetErrorPtr, so that loads on different threads do not
 *      read each other's error);
 *   3. one walk over the tree fills the structs and queues every problem as
 *      a "pending" finding that remembers the cJSON node it is about;
 *   4. only if something is pending, apc_jsonpos_resolve finds all the
 *      positions in one scan, and the findings are sorted into file order.
 * A valid file therefore never pays for positions.
 *
 * Memory: all strings and string arrays of a config are carved from an arena
 * of 64 KiB chunks, each job is one fixed-size record in one array, and jobs
 * are found by name through an open-addressing index of uint32_t slots.
 * Freeing a config is a handful of free() calls however many jobs it has.
 *
 * Thread safety: no static mutable state of our own (see apc_config.h about
 * cJSON's); any thread may parse, and a finished config is read-only.
 */
#include "apc_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "apc_error.h"
#include "apc_jsonpos.h"
#include "apc_time.h"

/* ---- Diagnostics ------------------------------------------------------------------------- */

static int diags_vadd(apc_diags_t *d, apc_diag_severity_t severity, const char *file, unsigned line,
                      unsigned col, const char *path, const char *fmt, va_list ap) APC_PRINTF(7, 0);

static int diags_vadd(apc_diags_t *d, apc_diag_severity_t severity, const char *file, unsigned line,
                      unsigned col, const char *path, const char *fmt, va_list ap)
{
    apc_buf_t b = {0};
    size_t flen, plen;
    char *mem;
    apc_diag_t *g;

    if (file == NULL)
        file = "";
    if (path == NULL)
        path = "";
    flen = strlen(file);
    plen = strlen(path);
    apc_buf_append(&b, file, flen + 1);
    apc_buf_append(&b, path, plen + 1);
    apc_buf_vprintf(&b, fmt, ap);
    mem = apc_buf_take(&b);
    if (mem == NULL)
        goto oom;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        apc_diag_t *items;
        if (cap > (size_t)-1 / sizeof(apc_diag_t)) {
            free(mem);
            goto oom;
        }
        items = realloc(d->items, cap * sizeof(apc_diag_t));
        if (items == NULL) {
            free(mem);
            goto oom;
        }
        d->items = items;
        d->cap = cap;
    }
    g = &d->items[d->count++];
    g->severity = severity;
    g->line = line;
    g->col = col;
    g->file = mem;
    g->path = mem + flen + 1;
    g->message = mem + flen + 1 + plen + 1;
    if (severity == APC_DIAG_WARNING)
        d->warnings++;
    else
        d->errors++;
    return 0;

oom:
    d->failed = 1;
    return APC_ENOMEM;
}

int apc_diags_add(apc_diags_t *d, apc_diag_severity_t severity, const char *file, unsigned line,
                  unsigned col, const char *path, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (d == NULL || fmt == NULL)
        return APC_EINVAL;
    va_start(ap, fmt);
    rc = diags_vadd(d, severity, file, line, col, path, fmt, ap);
    va_end(ap);
    return rc;
}

void apc_diags_free(apc_diags_t *d)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < d->count; i++)
        free(d->items[i].file);
    free(d->items);
    memset(d, 0, sizeof(*d));
}

void apc_diag_format(const apc_diag_t *g, apc_buf_t *out)
{
    const char *sep = "";
    int has_file = g->file != NULL && g->file[0] != '\0';

    if (has_file) {
        apc_buf_puts(out, g->file);
        sep = ": ";
    }
    if (g->line > 0) {
        apc_buf_printf(out, "%s%u:%u", has_file ? ":" : "", g->line, g->col);
        sep = ": ";
    }
    if (g->severity == APC_DIAG_WARNING) {
        apc_buf_printf(out, "%swarning", sep);
        sep = ": ";
    }
    if (g->path != NULL && g->path[0] != '\0') {
        apc_buf_printf(out, "%s%s", sep, g->path);
        sep = ": ";
    }
    apc_buf_printf(out, "%s%s", sep, g->message != NULL ? g->message : "");
}

void apc_diags_format(const apc_diags_t *d, apc_buf_t *out)
{
    size_t i;

    for (i = 0; d != NULL && i < d->count; i++) {
        apc_diag_format(&d->items[i], out);
        apc_buf_append(out, "\n", 1);
    }
}

/* ---- Arena and private state ------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t cap;
    size_t used;
} chunk_t;

/* Chunk data starts 16-aligned after the header, so 8-byte alignment is easy inside. */
#define CHUNK_HDR ((sizeof(chunk_t) + 15u) / 16u * 16u)
#define CHUNK_SIZE (64u * 1024u)

struct apc_config_priv {
    chunk_t *chunks;
    size_t arena_bytes;  /* malloc'd for chunks, headers included */
    size_t string_bytes; /* characters and terminators of every string */
    uint32_t *index;     /* job number + 1 per slot, 0 = empty */
    size_t index_mask;   /* slots - 1; slots is a power of two */
};

/* Returns n bytes aligned to align (1 or a power of two up to 16) from the arena, or NULL. */
static void *arena_alloc(struct apc_config_priv *p, size_t n, size_t align)
{
    chunk_t *c = p->chunks, *nc;
    size_t cap;

    if (c != NULL) {
        size_t off = (c->used + align - 1) & ~(align - 1);
        if (off <= c->cap && n <= c->cap - off) {
            c->used = off + n;
            return (char *)c + CHUNK_HDR + off;
        }
    }
    if (n > (size_t)-1 - CHUNK_HDR - CHUNK_SIZE)
        return NULL;
    /* A large block gets a chunk of its own, kept behind the current one so that the
     * current chunk's free space is still used by the small strings that follow. */
    cap = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE - CHUNK_HDR;
    nc = malloc(CHUNK_HDR + cap);
    if (nc == NULL)
        return NULL;
    p->arena_bytes += CHUNK_HDR + cap;
    nc->cap = cap;
    nc->used = n;
    if (c != NULL && cap == n) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        p->chunks = nc;
    }
    return (char *)nc + CHUNK_HDR;
}

static char *arena_strndup(struct apc_config_priv *p, const char *s, size_t n)
{
    char *d;

    if (n == (size_t)-1)
        return NULL;
    d = arena_alloc(p, n + 1, 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    p->string_bytes += n + 1;
    return d;
}

static char *arena_strdup(struct apc_config_priv *p, const char *s)
{
    return arena_strndup(p, s, strlen(s));
}

static void priv_free(struct apc_config_priv *p)
{
    chunk_t *c, *next;

    if (p == NULL)
        return;
    for (c = p->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(p->index);
    free(p);
}

/* ---- Names and the name index ------------------------------------------------------------ */

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int equal_nocase(const char *a, const char *b)
{
    while (*a != '\0' && lower((unsigned char)*a) == lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

/* FNV-1a over the lower-cased name, so that names differing only in case collide. */
static uint32_t hash_nocase(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++) {
        h ^= lower((unsigned char)*s);
        h *= 16777619u;
    }
    return h;
}

/*
 * Inserts job number i under its name. Returns -1 when inserted, or the
 * number of the job that already has the name.
 */
static long index_insert(struct apc_config_priv *p, const apc_job_config_t *jobs, size_t i)
{
    size_t slot = hash_nocase(jobs[i].name) & p->index_mask;

    while (p->index[slot] != 0) {
        size_t other = p->index[slot] - 1u;
        if (equal_nocase(jobs[other].name, jobs[i].name))
            return (long)other;
        slot = (slot + 1) & p->index_mask;
    }
    p->index[slot] = (uint32_t)(i + 1);
    return -1;
}

/* Windows device names that cannot be used as a file or folder name, with any extension. */
static int is_reserved_device_name(const char *s)
{
    static const char *const names[] = {"con", "prn", "aux", "nul"};
    size_t n = strcspn(s, ".");
    size_t k;

    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (n == 3 && lower((unsigned char)s[0]) == names[k][0] &&
            lower((unsigned char)s[1]) == names[k][1] && lower((unsigned char)s[2]) == names[k][2])
            return 1;
    if (n == 4 && s[3] >= '1' && s[3] <= '9') {
        char a = (char)lower((unsigned char)s[0]), b = (char)lower((unsigned char)s[1]),
             c = (char)lower((unsigned char)s[2]);
        if ((a == 'c' && b == 'o' && c == 'm') || (a == 'l' && b == 'p' && c == 't'))
            return 1;
    }
    return 0;
}

static int is_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* ---- Text helpers ------------------------------------------------------------------------ */

/*
 * Appends s as a double-quoted, escaped string, cut after max bytes (at a
 * character boundary, marked with "..."), so that user text in a message can
 * neither break the one-line format nor make it unreadably long.
 */
static void quote_n(apc_buf_t *b, const char *s, size_t n, size_t max)
{
    size_t i = 0;

    apc_buf_append(b, "\"", 1);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (i >= max) {
            apc_buf_puts(b, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            apc_buf_append(b, e, 2);
        } else if (c == '\n') {
            apc_buf_puts(b, "\\n");
        } else if (c == '\t') {
            apc_buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            apc_buf_printf(b, "\\u%04x", (unsigned)c);
        } else {
            size_t k = 1;
            while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
                k++;
            apc_buf_append(b, s + i, k);
            i += k;
            continue;
        }
        i++;
    }
    apc_buf_append(b, "\"", 1);
}

static void quote(apc_buf_t *b, const char *s)
{
    quote_n(b, s, strlen(s), 60);
}

/* Describes the JSON type of v for "expected ..., got <this>" messages. */
static const char *kind_of(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

/* Levenshtein distance ignoring ASCII case; strings longer than 64 bytes count as far away. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t row[65], la = strlen(a), lb = strlen(b), i, j;

    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Returns the closest of names[0..n) within edit distance 2 of s, or NULL. */
static const char *suggest(const char *s, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3, k;

    for (k = 0; k < n; k++) {
        size_t d = edit_distance(s, names[k]);
        if (d < best_d && names[k][0] != '$') {
            best_d = d;
            best = names[k];
        }
    }
    return best;
}

/* ---- Paths ------------------------------------------------------------------------------- */

static int is_sep(char c)
{
    return c == '/' || c == '\\';
}

static int is_drive(const char *p)
{
    return ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':';
}

int apc_config_path_is_absolute(const char *path)
{
    if (path == NULL)
        return 0;
    return is_sep(path[0]) || (is_drive(path) && is_sep(path[2]));
}

#ifdef _WIN32
#define NATIVE_SEP '\\'
#else
#define NATIVE_SEP '/'
#endif

/*
 * Works out how path joins base_dir: sets *copy_whole (path used as is),
 * *skip (bytes of leading "./" to drop) and *sep (0 when base_dir already
 * ends in a separator or path is "."). Returns 0 or APC_EINVAL with the
 * reason in err.
 */
static int plan_join(const char *base, const char *path, int *copy_whole, size_t *skip, char *sep,
                     char *err, size_t errsz)
{
    size_t blen, k;

    *copy_whole = 0;
    *skip = 0;
    *sep = 0;
    if (path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "must not be empty");
    if (is_drive(path) && !is_sep(path[2]))
        return apc_seterr(err, errsz, APC_EINVAL,
                          "drive-relative path \"%.60s\" depends on the current folder of drive "
                          "%c: (write %c:\\%.60s)",
                          path, path[0], path[0], path + 2);
    if (apc_config_path_is_absolute(path) || base == NULL || base[0] == '\0') {
        *copy_whole = 1;
        return 0;
    }
    while (path[*skip] == '.' && is_sep(path[*skip + 1])) {
        *skip += 2;
        while (is_sep(path[*skip]))
            (*skip)++;
    }
    if (strcmp(path + *skip, ".") == 0)
        *skip = strlen(path);
    if (path[*skip] == '\0')
        return 0; /* "." or "./": the base folder itself */
    blen = strlen(base);
    if (is_sep(base[blen - 1]))
        return 0;
    *sep = NATIVE_SEP;
    if (blen == 2 && is_drive(base))
        *sep = '\\';
    for (k = blen; k > 0; k--) {
        if (is_sep(base[k - 1])) {
            *sep = base[k - 1];
            break;
        }
    }
    return 0;
}

/* Writes the joined path into dst, which has room for resolved_len() + 1 bytes. */
static void write_join(char *dst, const char *base, const char *path, int copy_whole, size_t skip,
                       char sep)
{
    size_t n = 0, len;

    if (copy_whole) {
        len = strlen(path);
        memcpy(dst, path, len + 1);
        return;
    }
    len = strlen(base);
    memcpy(dst, base, len);
    n = len;
    if (sep != 0)
        dst[n++] = sep;
    len = strlen(path + skip);
    memcpy(dst + n, path + skip, len + 1);
}

static size_t joined_len(const char *base, const char *path, int copy_whole, size_t skip, char sep)
{
    if (copy_whole)
        return strlen(path);
    return strlen(base) + (sep != 0) + strlen(path + skip);
}

int apc_config_path_resolve(const char *base_dir, const char *path, char **out, char *err,
                            size_t errsz)
{
    int copy_whole, rc;
    size_t skip, n;
    char sep;

    if (out == NULL)
        return APC_EINVAL;
    *out = NULL;
    if (path == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no path");
    rc = plan_join(base_dir, path, &copy_whole, &skip, &sep, err, errsz);
    if (rc != 0)
        return rc;
    n = joined_len(base_dir, path, copy_whole, skip, sep);
    *out = malloc(n + 1);
    if (*out == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    write_join(*out, base_dir, path, copy_whole, skip, sep);
    return 0;
}

/* ---- The walk: context, JSON paths and pending findings ---------------------------------- */

/* One step of a JSON path, linked towards the root; key NULL means an array index. */
typedef struct seg {
    const struct seg *up;
    const char *key;
    size_t index;
} seg_t;

/* Marks where, in a pending message, the position of the referenced node goes. */
#define REF_POS "\x01"

typedef struct pend {
    const cJSON *node; /* the value (or member, with want_key) the finding is about */
    const cJSON *ref;  /* another node whose line:col replaces REF_POS, or NULL */
    char *text;        /* "path\0message" */
    size_t seq;
    int want_key;
    int ref_key;
} pend_t;

typedef struct ctx {
    apc_config_t *cfg;
    struct apc_config_priv *priv;
    const char *base_dir;
    pend_t *pend;
    size_t npend;
    size_t cappend;
    int oom;
    const cJSON **name_nodes; /* per job: its "name" member, for duplicate reports */
    apc_config_zone_t *zones;
    size_t nzones;
    size_t capzones;
    char err[512]; /* detail from the time, schedule and tz parsers */
} ctx_t;

static int is_plain_key(const char *k)
{
    if (*k == '\0')
        return 0;
    for (; *k != '\0'; k++)
        if (!is_name_char((unsigned char)*k) && *k != '$')
            return 0;
    return 1;
}

/* Appends the path from the root to s: jobs[3].env.PATH, jobs[0].env["A B"]. */
static void path_format(apc_buf_t *b, const seg_t *s)
{
    if (s == NULL)
        return;
    path_format(b, s->up); /* paths are at most four steps deep */
    if (s->key == NULL) {
        apc_buf_printf(b, "[%lu]", (unsigned long)s->index);
    } else if (is_plain_key(s->key)) {
        if (b->len > 0)
            apc_buf_append(b, ".", 1);
        apc_buf_puts(b, s->key);
    } else {
        apc_buf_append(b, "[", 1);
        quote(b, s->key);
        apc_buf_append(b, "]", 1);
    }
}

/*
 * Queues an error about node (its key with want_key) at JSON path `at`. The
 * message is printf-formatted; REF_POS in it is replaced by the line:col of
 * ref (its key with ref_key) once positions are known.
 */
static void report_ref(ctx_t *c, const seg_t *at, const cJSON *node, int want_key, const cJSON *ref,
                       int ref_key, const char *fmt, ...) APC_PRINTF(7, 8);

static void report_ref(ctx_t *c, const seg_t *at, const cJSON *node, int want_key, const cJSON *ref,
                       int ref_key, const char *fmt, ...)
{
    apc_buf_t b = {0};
    va_list ap;
    pend_t *p;

    if (c->npend == c->cappend) {
        size_t cap = c->cappend ? c->cappend * 2 : 16;
        pend_t *np =
            cap < (size_t)-1 / sizeof(pend_t) ? realloc(c->pend, cap * sizeof(pend_t)) : NULL;
        if (np == NULL) {
            c->oom = 1;
            return;
        }
        c->pend = np;
        c->cappend = cap;
    }
    path_format(&b, at);
    apc_buf_append(&b, "", 1);
    va_start(ap, fmt);
    apc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    p = &c->pend[c->npend];
    p->text = apc_buf_take(&b);
    if (p->text == NULL) {
        c->oom = 1;
        return;
    }
    p->node = node;
    p->want_key = want_key;
    p->ref = ref;
    p->ref_key = ref_key;
    p->seq = c->npend;
    c->npend++;
}

/* Queues an error about the value node at path at (the common case). */
#define report(c, at, node, ...) report_ref((c), (at), (node), 0, NULL, 0, __VA_ARGS__)

/*
 * Builds a message with a quoted user string in it: fmt must contain exactly
 * one "%s", which receives the quoted, escaped, shortened form of s. The
 * result lives in a buffer the caller frees with apc_buf_free.
 */
static const char *with_quoted(apc_buf_t *b, const char *s)
{
    apc_buf_reset(b);
    quote(b, s);
    return apc_buf_failed(b) || b->data == NULL ? "\"?\"" : b->data;
}

/* ---- Value readers: each reports its own errors and returns 0 or -1 ---------------------- */

static int get_int(ctx_t *c, const seg_t *at, const cJSON *v, int lo, int hi, int *out)
{
    double d;

    if (!cJSON_IsNumber(v)) {
        report(c, at, v, "expected an integer %d-%d, got %s", lo, hi, kind_of(v));
        return -1;
    }
    d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || (double)(int)d != d) {
        report(c, at, v, "expected an integer %d-%d, got %.15g", lo, hi, d);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int get_bool(ctx_t *c, const seg_t *at, const cJSON *v, bool *out)
{
    if (!cJSON_IsBool(v)) {
        report(c, at, v, "expected true or false, got %s", kind_of(v));
        return -1;
    }
    *out = cJSON_IsTrue(v) != 0;
    return 0;
}

static int get_string(ctx_t *c, const seg_t *at, const cJSON *v, const char *what)
{
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        report(c, at, v, "expected %s, got %s", what, kind_of(v));
        return -1;
    }
    return 0;
}

static void fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (apc_duration_format(ms, buf, size) != 0)
        (void)apc_seterr(buf, size, 0, "?");
}

/*
 * Reads a duration string within [lo, hi]; with nullable, JSON null means
 * "none" (APC_TIME_NONE).
 */
static int get_duration(ctx_t *c, const seg_t *at, const cJSON *v, int64_t lo, int64_t hi,
                        int nullable, int64_t *out)
{
    apc_buf_t q = {0};
    int64_t ms = 0;

    if (nullable && cJSON_IsNull(v)) {
        *out = APC_TIME_NONE;
        return 0;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        report(c, at, v, "expected a duration like \"30s\"%s, got %s", nullable ? " or null" : "",
               kind_of(v));
        return -1;
    }
    if (apc_duration_parse(v->valuestring, &ms, c->err, sizeof(c->err)) != 0) {
        report(c, at, v, "%s", c->err);
        return -1;
    }
    if (ms < lo || ms > hi) {
        char a[APC_DURATION_BUFSZ], z[APC_DURATION_BUFSZ];
        fmt_duration(lo, a, sizeof(a));
        fmt_duration(hi, z, sizeof(z));
        report(c, at, v, "expected a duration from %s to %s%s, got %s", a, z,
               nullable ? " or null" : "", with_quoted(&q, v->valuestring));
        apc_buf_free(&q);
        return -1;
    }
    *out = ms;
    return 0;
}

/* Reads a byte size: a string like "1MiB" or a non-negative integer, at most hi. */
static int get_size(ctx_t *c, const seg_t *at, const cJSON *v, uint64_t hi, const char *hi_text,
                    uint64_t *out)
{
    apc_buf_t q = {0};
    uint64_t n = 0;

    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= 0 && d <= (double)hi) || (double)(uint64_t)d != d) {
            report(c, at, v, "expected a size from 0 to %s, got %.15g", hi_text, d);
            return -1;
        }
        *out = (uint64_t)d;
        return 0;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        report(c, at, v, "expected a size like \"1MiB\", got %s", kind_of(v));
        return -1;
    }
    if (apc_size_parse(v->valuestring, &n, c->err, sizeof(c->err)) != 0) {
        report(c, at, v, "%s", c->err);
        return -1;
    }
    if (n > hi) {
        report(c, at, v, "expected a size from 0 to %s, got %s", hi_text,
               with_quoted(&q, v->valuestring));
        apc_buf_free(&q);
        return -1;
    }
    *out = n;
    return 0;
}

/* Reads one of names[0..n) into *out (its index). */
static int get_enum(ctx_t *c, const seg_t *at, const cJSON *v, const char *const *names, size_t n,
                    uint8_t *out)
{
    apc_buf_t list = {0}, q = {0};
    size_t k;

    if (cJSON_IsString(v) && v->valuestring != NULL) {
        for (k = 0; k < n; k++) {
            if (strcmp(v->valuestring, names[k]) == 0) {
                *out = (uint8_t)k;
                return 0;
            }
        }
    }
    for (k = 0; k < n; k++)
        apc_buf_printf(&list, "%s\"%s\"", k == 0 ? "" : ", ", names[k]);
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        report(c, at, v, "expected one of %s, got %s", list.data ? list.data : "", kind_of(v));
    } else {
        const char *hint = suggest(v->valuestring, names, n);
        report(c, at, v, "expected one of %s, got %s%s%s%s", list.data ? list.data : "",
               with_quoted(&q, v->valuestring), hint ? " (did you mean \"" : "", hint ? hint : "",
               hint ? "\"?)" : "");
    }
    apc_buf_free(&list);
    apc_buf_free(&q);
    return -1;
}

#define NAME_RULE "a name of 1-64 characters from A-Z a-z 0-9 . _ -"

/* Reads a job or service name into the arena. */
static int get_name(ctx_t *c, const seg_t *at, const cJSON *v, char **out)
{
    apc_buf_t q = {0};
    const char *s;
    size_t n;

    if (get_string(c, at, v, NAME_RULE) != 0)
        return -1;
    s = v->valuestring;
    n = strlen(s);
    if (n == 0 || n > APC_JOB_NAME_MAX ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789._-") != n) {
        report(c, at, v, "expected " NAME_RULE ", got %s", with_quoted(&q, s));
        apc_buf_free(&q);
        return -1;
    }
    if (s[n - 1] == '.') {
        report(c, at, v, "name %s must not end with \".\" (Windows drops it from file names)",
               with_quoted(&q, s));
        apc_buf_free(&q);
        return -1;
    }
    if (is_reserved_device_name(s)) {
        report(c, at, v, "name %s is a reserved device name on Windows", with_quoted(&q, s));
        apc_buf_free(&q);
        return -1;
    }
    *out = arena_strndup(c->priv, s, n);
    if (*out == NULL)
        c->oom = 1;
    return *out == NULL ? -1 : 0;
}

/* Reads a path and resolves it against the base folder, into the arena. */
static int get_path(ctx_t *c, const seg_t *at, const cJSON *v, char **out)
{
    int copy_whole;
    size_t skip, n;
    char sep;

    if (get_string(c, at, v, "a path string") != 0)
        return -1;
    if (plan_join(c->base_dir, v->valuestring, &copy_whole, &skip, &sep, c->err, sizeof(c->err)) !=
        0) {
        report(c, at, v, "%s", c->err);
        return -1;
    }
    n = joined_len(c->base_dir, v->valuestring, copy_whole, skip, sep);
    *out = arena_alloc(c->priv, n + 1, 1);
    if (*out == NULL) {
        c->oom = 1;
        return -1;
    }
    c->priv->string_bytes += n + 1;
    write_join(*out, c->base_dir, v->valuestring, copy_whole, skip, sep);
    return 0;
}

/* Resolves a default path (no errors possible for the fixed defaults). */
static char *default_path(ctx_t *c, const char *path)
{
    int copy_whole;
    size_t skip, n;
    char sep;
    char *out;

    if (plan_join(c->base_dir, path, &copy_whole, &skip, &sep, NULL, 0) != 0)
        return NULL;
    n = joined_len(c->base_dir, path, copy_whole, skip, sep);
    out = arena_alloc(c->priv, n + 1, 1);
    if (out == NULL) {
        c->oom = 1;
        return NULL;
    }
    c->priv->string_bytes += n + 1;
    write_join(out, c->base_dir, path, copy_whole, skip, sep);
    return out;
}

/*
 * Sorts the members of obj into vals[k] by keys[k] and reports unknown keys
 * (with a suggestion) and keys given twice. vals must have nkeys entries.
 */
static void collect(ctx_t *c, const seg_t *at, const cJSON *obj, const char *const *keys,
                    size_t nkeys, const cJSON **vals)
{
    const cJSON *m;
    size_t k;

    for (k = 0; k < nkeys; k++)
        vals[k] = NULL;
    for (m = obj->child; m != NULL; m = m->next) {
        const char *key = m->string != NULL ? m->string : "";
        seg_t s;
        s.up = at;
        s.key = key;
        s.index = 0;
        for (k = 0; k < nkeys; k++)
            if (strcmp(key, keys[k]) == 0)
                break;
        if (k == nkeys) {
            const char *hint = suggest(key, keys, nkeys);
            if (hint != NULL)
                report_ref(c, &s, m, 1, NULL, 0, "unknown key (did you mean \"%s\"?)", hint);
            else
                report_ref(c, &s, m, 1, NULL, 0, "unknown key");
        } else if (vals[k] != NULL) {
            report_ref(c, &s, m, 1, vals[k], 1, "duplicate key (first defined at " REF_POS ")");
        } else {
            vals[k] = m;
        }
    }
}

/* ---- The "service" block ----------------------------------------------------------------- */

enum {
    S_NAME,
    S_WORKERS,
    S_HISTORY,
    S_OUTPUT_DIR,
    S_LOG_DIR,
    S_RETENTION,
    S_GRACE,
    S_CONTROL,
    S_INSECURE, /* no longer a setting: refused with where it went (see walk_service) */
    S_COMMENT,
    S_COUNT
};

static const char *const service_keys[S_COUNT] = {
    "name",           "workers",       "history",
    "output_dir",     "log_dir",       "retention_days",
    "shutdown_grace", "control_allow", "allow_insecure_config",
    "$comment"};

static void walk_service(ctx_t *c, const cJSON *sv)
{
    apc_service_config_t *s = &c->cfg->service;
    const cJSON *v[S_COUNT];
    seg_t top = {NULL, "service", 0}, at[S_COUNT];
    size_t k, n;
    const cJSON *e;

    for (k = 0; k < S_COUNT; k++) {
        at[k].up = &top;
        at[k].key = service_keys[k];
        at[k].index = 0;
    }
    s->workers = 0;
    s->retention_days = 30;
    s->shutdown_grace_ms = 30 * APC_MS_PER_S;

    if (sv != NULL && !cJSON_IsObject(sv)) {
        report(c, &top, sv, "expected an object, got %s", kind_of(sv));
        sv = NULL;
    }
    if (sv != NULL)
        collect(c, &top, sv, service_keys, S_COUNT, v);
    else
        for (k = 0; k < S_COUNT; k++)
            v[k] = NULL;

    if (v[S_NAME] != NULL)
        (void)get_name(c, &at[S_NAME], v[S_NAME], &s->name);
    if (v[S_WORKERS] != NULL)
        (void)get_int(c, &at[S_WORKERS], v[S_WORKERS], 0, APC_CONFIG_MAX_WORKERS, &s->workers);
    if (v[S_HISTORY] != NULL)
        (void)get_path(c, &at[S_HISTORY], v[S_HISTORY], &s->history);
    if (v[S_OUTPUT_DIR] != NULL)
        (void)get_path(c, &at[S_OUTPUT_DIR], v[S_OUTPUT_DIR], &s->output_dir);
    if (v[S_LOG_DIR] != NULL)
        (void)get_path(c, &at[S_LOG_DIR], v[S_LOG_DIR], &s->log_dir);
    if (v[S_RETENTION] != NULL)
        (void)get_int(c, &at[S_RETENTION], v[S_RETENTION], 0, 36500, &s->retention_days);
    if (v[S_GRACE] != NULL)
        (void)get_duration(c, &at[S_GRACE], v[S_GRACE], 0, 10 * APC_MS_PER_MIN, 0,
                           &s->shutdown_grace_ms);
    /*
     * The switch that turns the config file's ACL check off cannot live in the checked file:
     * whoever may write the file could switch its own check off. It is an apcsvc.exe option,
     * whose command line (the SCM's image path) only administrators can change.
     */
    if (v[S_INSECURE] != NULL)
        report_ref(c, &at[S_INSECURE], v[S_INSECURE], 1, NULL, 0,
                   "this setting moved to the apcsvc.exe command line (--allow-insecure-config) "
                   "because a writable config could turn its own check off");

    if (s->name == NULL)
        s->name = arena_strdup(c->priv, "apcsvc");
    if (s->history == NULL)
        s->history = default_path(c, "history.db");
    if (s->output_dir == NULL)
        s->output_dir = default_path(c, "runs");
    if (s->log_dir == NULL)
        s->log_dir = default_path(c, "logs");

    e = v[S_CONTROL];
    if (e != NULL && !cJSON_IsArray(e)) {
        report(c, &at[S_CONTROL], e, "expected an array of account or group names, got %s",
               kind_of(e));
        e = NULL;
    }
    n = 0;
    if (e != NULL)
        for (const cJSON *x = e->child; x != NULL; x = x->next)
            n++;
    s->control_allow = arena_alloc(c->priv, (n + 1) * sizeof(char *), sizeof(char *));
    if (s->control_allow == NULL || s->name == NULL) {
        c->oom = 1;
        return;
    }
    k = 0;
    if (e != NULL) {
        for (const cJSON *x = e->child; x != NULL; x = x->next, k++) {
            seg_t el = {&at[S_CONTROL], NULL, k};
            s->control_allow[k] = NULL;
            if (!cJSON_IsString(x) || x->valuestring == NULL || x->valuestring[0] == '\0') {
                report(c, &el, x,
                       "expected an account or group name like \"BUILTIN\\\\Users\", "
                       "got %s",
                       cJSON_IsString(x) ? "\"\"" : kind_of(x));
                continue;
            }
            s->control_allow[k] = arena_strdup(c->priv, x->valuestring);
            if (s->control_allow[k] == NULL)
                c->oom = 1;
        }
    }
    s->control_allow[n] = NULL;
}

/* ---- Jobs -------------------------------------------------------------------------------- */

enum {
    J_NAME,
    J_COMMAND,
    J_BUILTIN,
    J_ARGS,
    J_SCHEDULE,
    J_TIMEZONE,
    J_CWD,
    J_ENV,
    J_TIMEOUT,
    J_RETRIES,
    J_BACKOFF,
    J_OVERLAP,
    J_MISSED,
    J_MISSED_WITHIN,
    J_JITTER,
    J_ENABLED,
    J_OUTPUT_LIMIT,
    J_ALLOW_ARGS,
    J_COMMENT,
    J_COUNT
};

static const char *const job_keys[J_COUNT] = {
    "name",   "command", "builtin",      "args",          "schedule", "timezone", "cwd",
    "env",    "timeout", "retries",      "retry_backoff", "overlap",  "missed",   "missed_within",
    "jitter", "enabled", "output_limit", "allow_args",    "$comment"};

static const char *const overlap_names[] = {"skip", "queue", "parallel", "replace"};
static const char *const missed_names[] = {"run_once", "skip"};
static const char *const builtin_names[] = {"noop", "sleep"};

/* An upper bound that keeps the environment check linear enough and Windows-sized. */
#define MAX_ENV_VARS 1024u

/* Copies a JSON array of strings into a NULL-terminated arena array (argv or args). */
static char **get_argv(ctx_t *c, const seg_t *at, const cJSON *arr)
{
    const cJSON *x;
    size_t n = 0, k = 0;
    char **argv;
    int bad = 0;

    for (x = arr->child; x != NULL; x = x->next)
        n++;
    argv = arena_alloc(c->priv, (n + 1) * sizeof(char *), sizeof(char *));
    if (argv == NULL) {
        c->oom = 1;
        return NULL;
    }
    for (x = arr->child; x != NULL; x = x->next, k++) {
        seg_t el = {at, NULL, k};
        argv[k] = NULL;
        if (get_string(c, &el, x, "a string") != 0) {
            bad = 1;
            continue;
        }
        argv[k] = arena_strdup(c->priv, x->valuestring);
        if (argv[k] == NULL) {
            c->oom = 1;
            return NULL;
        }
    }
    argv[n] = NULL;
    return bad ? NULL : argv;
}

static void job_command(ctx_t *c, const seg_t *at, const cJSON *v, apc_job_config_t *j)
{
    seg_t first = {at, NULL, 0};

    if (!cJSON_IsArray(v)) {
        report(c, at, v,
               "expected a non-empty array of strings like [\"prog.exe\", \"arg\"], got %s",
               kind_of(v));
        return;
    }
    if (v->child == NULL) {
        report(c, at, v, "must not be empty: the first element is the program to run");
        return;
    }
    j->argv = get_argv(c, at, v);
    if (j->argv != NULL && j->argv[0][0] == '\0') {
        report(c, &first, v->child, "the program name must not be empty");
        j->argv = NULL;
    }
}

static void job_builtin(ctx_t *c, const seg_t *at, const cJSON *const *v, apc_job_config_t *j)
{
    seg_t sb = {at, "builtin", 0}, sa = {at, "args", 0}, s0 = {&sa, NULL, 0};
    const cJSON *args = v[J_ARGS];
    uint8_t which = 0;
    size_t n = 0;

    if (v[J_BUILTIN] == NULL) {
        if (args != NULL)
            report(c, &sa, args,
                   "only allowed with \"builtin\" (put a command's arguments "
                   "in \"command\")");
        return;
    }
    if (v[J_COMMAND] != NULL)
        report(c, &sb, v[J_BUILTIN],
               "cannot be combined with \"command\" (a job has exactly one of them)");
    if (get_enum(c, &sb, v[J_BUILTIN], builtin_names, 2, &which) != 0)
        return;
    j->builtin = (uint8_t)(which == 0 ? APC_BUILTIN_NOOP : APC_BUILTIN_SLEEP);
    if (args != NULL && !cJSON_IsArray(args)) {
        report(c, &sa, args, "expected an array of strings, got %s", kind_of(args));
        return;
    }
    if (args != NULL)
        for (const cJSON *x = args->child; x != NULL; x = x->next)
            n++;
    if (j->builtin == APC_BUILTIN_NOOP) {
        if (n > 0)
            report(c, &sa, args, "builtin \"noop\" takes no arguments");
        return;
    }
    if (args == NULL) {
        report(c, &sb, v[J_BUILTIN], "builtin \"sleep\" needs \"args\": [\"<duration>\"]");
        return;
    }
    if (n != 1) {
        report(c, &sa, args, "builtin \"sleep\" takes exactly one argument, a duration, got %lu",
               (unsigned long)n);
        return;
    }
    (void)get_duration(c, &s0, args->child, 0, APC_MS_PER_DAY, 0, &j->sleep_ms);
}

static void job_env(ctx_t *c, const seg_t *at, const cJSON *v, apc_job_config_t *j)
{
    const cJSON *m, *o;
    apc_buf_t q = {0}, kv = {0};
    size_t n = 0, k = 0;
    int bad = 0;

    if (!cJSON_IsObject(v)) {
        report(c, at, v, "expected an object of name: \"value\" strings, got %s", kind_of(v));
        return;
    }
    for (m = v->child; m != NULL; m = m->next)
        n++;
    if (n > MAX_ENV_VARS) {
        report(c, at, v, "too many environment variables: %lu (at most %u)", (unsigned long)n,
               MAX_ENV_VARS);
        return;
    }
    j->env = arena_alloc(c->priv, (n + 1) * sizeof(char *), sizeof(char *));
    if (j->env == NULL) {
        c->oom = 1;
        return;
    }
    for (m = v->child; m != NULL; m = m->next, k++) {
        const char *name = m->string != NULL ? m->string : "";
        seg_t s = {at, name, 0};
        j->env[k] = NULL;
        if (name[0] == '\0') {
            report_ref(c, &s, m, 1, NULL, 0, "environment variable names must not be empty");
            bad = 1;
            continue;
        }
        if (strchr(name, '=') != NULL) {
            report_ref(c, &s, m, 1, NULL, 0, "environment variable names must not contain \"=\"");
            bad = 1;
            continue;
        }
        for (o = v->child; o != m; o = o->next) {
            if (o->string != NULL && equal_nocase(o->string, name)) {
                if (strcmp(o->string, name) == 0)
                    report_ref(c, &s, m, 1, o, 1,
                               "duplicate environment variable (first defined at " REF_POS ")");
                else
                    report_ref(c, &s, m, 1, o, 1,
                               "duplicate environment variable (names ignore case; first defined "
                               "at " REF_POS " as %s)",
                               with_quoted(&q, o->string));
                bad = 1;
                break;
            }
        }
        if (o != m)
            continue;
        if (get_string(c, &s, m, "a string") != 0) {
            bad = 1;
            continue;
        }
        apc_buf_reset(&kv);
        apc_buf_printf(&kv, "%s=%s", name, m->valuestring);
        if (apc_buf_failed(&kv) || (j->env[k] = arena_strdup(c->priv, kv.data)) == NULL)
            c->oom = 1;
    }
    j->env[n] = NULL;
    if (bad || n == 0)
        j->env = NULL;
    apc_buf_free(&q);
    apc_buf_free(&kv);
}

static void job_timezone(ctx_t *c, const seg_t *at, const cJSON *v, apc_job_config_t *j)
{
    apc_config_zone_t *z;
    const char *s;
    size_t k;

    if (get_string(c, at, v,
                   "\"local\", \"UTC\" or a POSIX TZ rule like \"CET-1CEST,M3.5.0,M10.5.0/3\"") !=
        0)
        return;
    s = v->valuestring;
    for (k = 0; k < c->nzones; k++) {
        if (strcmp(c->zones[k].name, s) == 0) {
            j->zone = (uint16_t)k;
            return;
        }
    }
    if (c->nzones >= APC_CONFIG_MAX_ZONES) {
        report(c, at, v, "too many different time zones (at most %u)", APC_CONFIG_MAX_ZONES);
        return;
    }
    if (c->nzones == c->capzones) {
        size_t cap = c->capzones * 2;
        apc_config_zone_t *nz = realloc(c->zones, cap * sizeof(*nz));
        if (nz == NULL) {
            c->oom = 1;
            return;
        }
        c->zones = nz;
        c->capzones = cap;
    }
    z = &c->zones[c->nzones];
    memset(z, 0, sizeof(*z));
    if (apc_tz_rules_parse(s, &z->rules, c->err, sizeof(c->err)) != 0) {
        if (strchr(s, '/') != NULL && strchr(s, ',') == NULL) {
            /* Looks like an IANA name ("Europe/Paris"): say what to write instead. */
            apc_buf_t q = {0};
            report(c, at, v,
                   "zone names like %s are not supported; use \"local\", \"UTC\" or a POSIX TZ "
                   "rule like \"CET-1CEST,M3.5.0,M10.5.0/3\"",
                   with_quoted(&q, s));
            apc_buf_free(&q);
        } else {
            report(c, at, v, "%s", c->err);
        }
        return;
    }
    z->kind = APC_ZONE_RULES;
    z->name = arena_strdup(c->priv, s);
    if (z->name == NULL) {
        c->oom = 1;
        return;
    }
    j->zone = (uint16_t)c->nzones++;
}

static void walk_job(ctx_t *c, const seg_t *at, const cJSON *jv, size_t i)
{
    apc_job_config_t *j = &c->cfg->jobs[i];
    const cJSON *v[J_COUNT];
    seg_t s[J_COUNT];
    size_t k;
    int n = 0;

    j->timeout_ms = APC_TIME_NONE;
    j->retry_backoff_ms = 30 * APC_MS_PER_S;
    j->missed_within_ms = APC_TIME_NONE;
    j->output_limit = 1024u * 1024u;
    j->overlap = (uint8_t)APC_OVERLAP_SKIP;
    j->missed = (uint8_t)APC_MISSED_RUN_ONCE;
    j->enabled = true;
    j->cwd = c->cfg->base_dir[0] != '\0' ? c->cfg->base_dir : NULL;

    if (!cJSON_IsObject(jv)) {
        report(c, at, jv, "expected an object, got %s", kind_of(jv));
        return;
    }
    collect(c, at, jv, job_keys, J_COUNT, v);
    for (k = 0; k < J_COUNT; k++) {
        s[k].up = at;
        s[k].key = job_keys[k];
        s[k].index = 0;
    }

    if (v[J_NAME] == NULL) {
        report(c, at, jv, "missing required key \"name\"");
    } else if (get_name(c, &s[J_NAME], v[J_NAME], &j->name) == 0) {
        long other;
        c->name_nodes[i] = v[J_NAME];
        other = index_insert(c->priv, c->cfg->jobs, i);
        if (other >= 0) {
            apc_buf_t q1 = {0}, q2 = {0};
            const char *first = c->cfg->jobs[other].name;
            if (strcmp(first, j->name) == 0)
                report_ref(c, &s[J_NAME], v[J_NAME], 0, c->name_nodes[other], 0,
                           "duplicate job name %s (first defined at " REF_POS ")",
                           with_quoted(&q1, j->name));
            else
                report_ref(c, &s[J_NAME], v[J_NAME], 0, c->name_nodes[other], 0,
                           "duplicate job name %s (job names ignore case; first defined at " REF_POS
                           " as %s)",
                           with_quoted(&q1, j->name), with_quoted(&q2, first));
            apc_buf_free(&q1);
            apc_buf_free(&q2);
        }
    }

    if (v[J_COMMAND] == NULL && v[J_BUILTIN] == NULL)
        report(c, at, jv, "needs \"command\" (an argv array) or \"builtin\"");
    if (v[J_COMMAND] != NULL)
        job_command(c, &s[J_COMMAND], v[J_COMMAND], j);
    job_builtin(c, at, v, j);

    if (v[J_SCHEDULE] != NULL && !cJSON_IsNull(v[J_SCHEDULE])) {
        if (get_string(c, &s[J_SCHEDULE], v[J_SCHEDULE],
                       "a schedule like \"*/5 * * * *\" or null") == 0) {
            if (apc_schedule_parse(v[J_SCHEDULE]->valuestring, &j->schedule, c->err,
                                   sizeof(c->err)) != 0)
                report(c, &s[J_SCHEDULE], v[J_SCHEDULE], "%s", c->err);
            else if ((j->schedule_expr = arena_strdup(c->priv, v[J_SCHEDULE]->valuestring)) == NULL)
                c->oom = 1;
        }
    }
    if (v[J_TIMEZONE] != NULL)
        job_timezone(c, &s[J_TIMEZONE], v[J_TIMEZONE], j);
    if (v[J_CWD] != NULL)
        (void)get_path(c, &s[J_CWD], v[J_CWD], &j->cwd);
    if (v[J_ENV] != NULL)
        job_env(c, &s[J_ENV], v[J_ENV], j);
    if (v[J_TIMEOUT] != NULL)
        (void)get_duration(c, &s[J_TIMEOUT], v[J_TIMEOUT], 1, 30 * APC_MS_PER_DAY, 1,
                           &j->timeout_ms);
    if (v[J_RETRIES] != NULL &&
        get_int(c, &s[J_RETRIES], v[J_RETRIES], 0, APC_CONFIG_MAX_RETRIES, &n) == 0)
        j->retries = (uint8_t)n;
    if (v[J_BACKOFF] != NULL)
        (void)get_duration(c, &s[J_BACKOFF], v[J_BACKOFF], 0, APC_MS_PER_DAY, 0,
                           &j->retry_backoff_ms);
    if (v[J_OVERLAP] != NULL)
        (void)get_enum(c, &s[J_OVERLAP], v[J_OVERLAP], overlap_names, 4, &j->overlap);
    if (v[J_MISSED] != NULL)
        (void)get_enum(c, &s[J_MISSED], v[J_MISSED], missed_names, 2, &j->missed);
    if (v[J_MISSED_WITHIN] != NULL)
        (void)get_duration(c, &s[J_MISSED_WITHIN], v[J_MISSED_WITHIN], 1, 365 * APC_MS_PER_DAY, 1,
                           &j->missed_within_ms);
    if (v[J_JITTER] != NULL)
        (void)get_duration(c, &s[J_JITTER], v[J_JITTER], 0, APC_MS_PER_DAY, 0, &j->jitter_ms);
    if (v[J_ENABLED] != NULL)
        (void)get_bool(c, &s[J_ENABLED], v[J_ENABLED], &j->enabled);
    if (v[J_OUTPUT_LIMIT] != NULL)
        (void)get_size(c, &s[J_OUTPUT_LIMIT], v[J_OUTPUT_LIMIT], 1024u * 1024u * 1024u, "1GiB",
                       &j->output_limit);
    if (v[J_ALLOW_ARGS] != NULL)
        (void)get_bool(c, &s[J_ALLOW_ARGS], v[J_ALLOW_ARGS], &j->allow_args);
}

static void walk_jobs(ctx_t *c, const cJSON *jobs)
{
    seg_t top = {NULL, "jobs", 0};
    struct apc_config_priv *p = c->priv;
    const cJSON *x;
    size_t n = 0, slots = 16, i = 0;

    if (!cJSON_IsArray(jobs)) {
        report(c, &top, jobs, "expected an array of jobs, got %s", kind_of(jobs));
        return;
    }
    for (x = jobs->child; x != NULL; x = x->next)
        n++;
    if (n > APC_CONFIG_MAX_JOBS) {
        report(c, &top, jobs, "too many jobs: %lu (at most %u)", (unsigned long)n,
               APC_CONFIG_MAX_JOBS);
        return;
    }
    if (n == 0)
        return;
    while (slots < 2 * n)
        slots *= 2;
    c->cfg->jobs = calloc(n, sizeof(apc_job_config_t));
    c->name_nodes = calloc(n, sizeof(const cJSON *));
    p->index = calloc(slots, sizeof(uint32_t));
    if (c->cfg->jobs == NULL || c->name_nodes == NULL || p->index == NULL) {
        c->oom = 1;
        return;
    }
    p->index_mask = slots - 1;
    c->cfg->njobs = n;
    for (x = jobs->child; x != NULL && !c->oom; x = x->next, i++) {
        seg_t at = {&top, NULL, i};
        walk_job(c, &at, x, i);
    }
}

/* ---- Raw text checks and syntax errors --------------------------------------------------- */

/*
 * Returns the offset of the first NUL byte or byte that is not part of
 * well-formed UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF), or len if there is none.
 */
static size_t first_bad_byte(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;

        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i; /* NUL, a stray continuation byte, C0/C1 or F5-FF */
        }
        if (len - i <= need || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        if (need >= 2 && (s[i + 2] < 0x80 || s[i + 2] > 0xBF))
            return i;
        if (need == 3 && (s[i + 3] < 0x80 || s[i + 3] > 0xBF))
            return i;
        i += need + 1;
    }
    return len;
}

/*
 * cJSON accepts "\uZZZZ" (reading bad hex digits as 0) and "\u0000", and
 * both cut the string short without a word. In text cJSON has accepted, a
 * backslash only occurs inside strings, so finding such escapes needs no
 * string tracking: returns the offset of the first one, or len.
 */
static size_t first_nul_escape(const char *text, size_t len)
{
    const char *p = text, *end = text + len;

    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL && end - p >= 2) {
        if (p[1] == 'u') {
            int k, zero = 1;
            if (end - p < 6)
                return (size_t)(p - text);
            for (k = 2; k < 6; k++) {
                char h = p[k];
                if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                    return (size_t)(p - text);
                if (h != '0')
                    zero = 0;
            }
            if (zero)
                return (size_t)(p - text);
        }
        p += 2;
    }
    return len;
}

/* Adds a finding at a byte offset (used before there is a tree to point into). */
static void add_at(apc_diags_t *diags, const char *file, const char *text, size_t len, size_t off,
                   const char *msg)
{
    unsigned line, col;

    if (diags == NULL)
        return;
    apc_jsonpos_linecol(text, len, off, &line, &col);
    (void)apc_diags_add(diags, APC_DIAG_ERROR, file, line, col, "", "%s", msg);
}

/*
 * Reports a JSON syntax error. cJSON's offset (cjson_off) is only roughly
 * right, so the exact spot and the explanation come from
 * apc_jsonpos_syntax_error; cJSON's offset is the fallback should the two
 * ever disagree.
 */
static void syntax_error(apc_diags_t *diags, const char *file, const char *text, size_t len,
                         size_t cjson_off)
{
    char msg[256];
    size_t off = cjson_off;

    if (apc_jsonpos_syntax_error(text, len, &off, msg, sizeof(msg)) == 0) {
        off = cjson_off;
        (void)apc_seterr(msg, sizeof(msg), 0, "syntax error");
    }
    add_at(diags, file, text, len, off, msg);
}

/* ---- Turning pending findings into diagnostics ------------------------------------------- */

typedef struct order {
    size_t offset;
    size_t seq;
} order_t;

static int cmp_order(const void *a, const void *b)
{
    const order_t *x = a, *y = b;

    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Resolves the positions of every pending finding and moves them, in file order, into diags. */
static int flush_pending(ctx_t *c, const char *file, const char *text, size_t len,
                         const cJSON *root, apc_diags_t *diags)
{
    apc_jsonpos_req_t *reqs = NULL;
    order_t *ord = NULL;
    apc_buf_t msg = {0};
    size_t i;
    int rc = 0;

    if (c->npend == 0 || diags == NULL)
        return 0;
    reqs = calloc(c->npend, 2 * sizeof(*reqs));
    ord = calloc(c->npend, sizeof(*ord));
    if (reqs == NULL || ord == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    for (i = 0; i < c->npend; i++) {
        reqs[2 * i].node = c->pend[i].node;
        reqs[2 * i].want_key = c->pend[i].want_key;
        reqs[2 * i + 1].node = c->pend[i].ref;
        reqs[2 * i + 1].want_key = c->pend[i].ref_key;
    }
    rc = apc_jsonpos_resolve(text, len, root, reqs, 2 * c->npend);
    if (rc != 0)
        goto cleanup;
    for (i = 0; i < c->npend; i++) {
        ord[i].offset = reqs[2 * i].offset;
        ord[i].seq = i;
    }
    qsort(ord, c->npend, sizeof(*ord), cmp_order);
    for (i = 0; i < c->npend; i++) {
        const pend_t *p = &c->pend[ord[i].seq];
        const apc_jsonpos_req_t *r = &reqs[2 * ord[i].seq];
        const char *path = p->text, *m = p->text + strlen(p->text) + 1, *mark;

        apc_buf_reset(&msg);
        mark = strstr(m, REF_POS);
        if (mark != NULL) {
            apc_buf_append(&msg, m, (size_t)(mark - m));
            apc_buf_printf(&msg, "%u:%u", r[1].line, r[1].col);
            apc_buf_puts(&msg, mark + 1);
        } else {
            apc_buf_puts(&msg, m);
        }
        if (apc_buf_failed(&msg)) {
            rc = APC_ENOMEM;
            goto cleanup;
        }
        rc = apc_diags_add(diags, APC_DIAG_ERROR, file, r->line, r->col, path, "%s", msg.data);
        if (rc != 0)
            goto cleanup;
    }

cleanup:
    apc_buf_free(&msg);
    free(ord);
    free(reqs);
    return rc;
}

/* ---- Public entry points ----------------------------------------------------------------- */

static const char *const top_keys[] = {"$schema", "$comment", "service", "jobs"};

void apc_config_free(apc_config_t *cfg)
{
    if (cfg == NULL)
        return;
    priv_free(cfg->priv);
    free(cfg->jobs);
    free(cfg->zones);
    free(cfg);
}

int apc_config_parse(const char *text, size_t len, const char *display_name, const char *base_dir,
                     apc_config_t **out, apc_diags_t *diags)
{
    const char *file = display_name != NULL ? display_name : "";
    apc_config_t *cfg = NULL;
    cJSON *root = NULL;
    char *copy = NULL;
    const char *end = NULL;
    const cJSON *v[4];
    ctx_t c;
    size_t bad, i;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    if (out == NULL || (text == NULL && len > 0))
        return APC_EINVAL;
    *out = NULL;
    if (text == NULL)
        text = "";

    /* 1. Raw checks. */
    if (len > APC_CONFIG_MAX_BYTES) {
        if (diags != NULL)
            (void)apc_diags_add(diags, APC_DIAG_ERROR, file, 0, 0, "",
                                "the file is %lu bytes; the limit is %u (32 MiB)",
                                (unsigned long)len, APC_CONFIG_MAX_BYTES);
        return APC_ETOOBIG;
    }
    if (len >= 2 && (((unsigned char)text[0] == 0xFF && (unsigned char)text[1] == 0xFE) ||
                     ((unsigned char)text[0] == 0xFE && (unsigned char)text[1] == 0xFF))) {
        add_at(diags, file, text, len, 0, "the file is UTF-16; save it as UTF-8");
        return APC_ESYNTAX;
    }
    bad = first_bad_byte((const unsigned char *)text, len);
    if (bad < len) {
        char msg[96];
        if (text[bad] == '\0')
            (void)apc_seterr(msg, sizeof(msg), 0, "NUL byte in the text (is this a text file?)");
        else
            (void)apc_seterr(msg, sizeof(msg), 0,
                             "invalid UTF-8 (byte 0x%02X); save the file as "
                             "UTF-8",
                             (unsigned)(unsigned char)text[bad]);
        add_at(diags, file, text, len, bad, msg);
        return APC_ESYNTAX;
    }

    /* 2. JSON syntax, on a NUL-terminated copy so that cJSON can never read past the end.
     * The terminator is passed in the length on purpose: cJSON then reports a truncated
     * file at the terminator (offset len, "unexpected end of file") instead of at the
     * last real character; the text itself holds no NUL (checked above). */
    copy = malloc(len + 1);
    if (copy == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    i = (len >= 3 && memcmp(copy, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0; /* a byte order mark */
    while (i < len && (unsigned char)copy[i] <= 32)
        i++;
    if (i == len) {
        add_at(diags, file, text, len, 0, "the file is empty (expected a JSON object)");
        rc = APC_ESYNTAX;
        goto cleanup;
    }
    root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
    if (root == NULL) {
        syntax_error(diags, file, text, len, end != NULL ? (size_t)(end - copy) : 0);
        rc = APC_ESYNTAX;
        goto cleanup;
    }
    for (i = (size_t)(end - copy); i < len && (unsigned char)copy[i] <= 32; i++)
        ;
    if (i < len || (i = first_nul_escape(copy, len)) < len) {
        syntax_error(diags, file, text, len, i);
        rc = APC_ESYNTAX;
        goto cleanup;
    }

    /* 3. The walk. */
    cfg = calloc(1, sizeof(*cfg));
    c.priv = calloc(1, sizeof(*c.priv));
    c.capzones = 4;
    c.zones = calloc(c.capzones, sizeof(*c.zones));
    if (cfg == NULL || c.priv == NULL || c.zones == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    cfg->priv = c.priv;
    c.cfg = cfg;
    cfg->source = arena_strdup(c.priv, file);
    cfg->base_dir = arena_strdup(c.priv, base_dir != NULL ? base_dir : "");
    c.zones[0].kind = APC_ZONE_LOCAL;
    c.zones[0].name = arena_strdup(c.priv, "local");
    c.zones[1].kind = APC_ZONE_UTC;
    c.zones[1].name = arena_strdup(c.priv, "UTC");
    c.nzones = 2;
    if (cfg->source == NULL || cfg->base_dir == NULL || c.zones[0].name == NULL ||
        c.zones[1].name == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    c.base_dir = cfg->base_dir;

    if (!cJSON_IsObject(root)) {
        report(&c, NULL, root, "expected an object at the top level, got %s", kind_of(root));
        v[2] = v[3] = NULL;
    } else {
        collect(&c, NULL, root, top_keys, 4, v);
    }
    walk_service(&c, v[2]);
    if (v[3] != NULL && !c.oom)
        walk_jobs(&c, v[3]);
    if (c.oom) {
        rc = APC_ENOMEM;
        goto cleanup;
    }

    /* 4. Findings, positioned and in file order. */
    if (c.npend > 0) {
        rc = flush_pending(&c, file, copy, len, root, diags);
        if (rc == 0)
            rc = APC_EINVAL;
        goto cleanup;
    }

    cfg->zones = c.zones;
    cfg->nzones = c.nzones;
    c.zones = NULL;
    cfg->zones[1].tz = *apc_tz_utc();
    for (i = 2; i < cfg->nzones; i++)
        apc_tz_from_rules(&cfg->zones[i].tz, &cfg->zones[i].rules);
    *out = cfg;
    cfg = NULL;

cleanup:
    for (i = 0; i < c.npend; i++)
        free(c.pend[i].text);
    free(c.pend);
    free(c.name_nodes);
    free(c.zones);
    apc_config_free(cfg);
    cJSON_Delete(root);
    free(copy);
    if (rc == APC_ENOMEM && diags != NULL)
        diags->failed = 1;
    return rc;
}

/* Returns the system's text for errno value e (thread-safe where the platform allows). */
static void errno_text(int e, char *buf, size_t size)
{
#if defined(_MSC_VER)
    if (strerror_s(buf, size, e) != 0)
        (void)apc_seterr(buf, size, 0, "error %d", e);
#else
    (void)apc_seterr(buf, size, 0, "%s", strerror(e));
#endif
}

/* Opens path for binary reading; on failure returns NULL with the errno value in *err. */
static FILE *open_read(const char *path, int *err)
{
    FILE *f = NULL;

#if defined(_MSC_VER)
    *err = (int)fopen_s(&f, path, "rb");
#else
    errno = 0;
    f = fopen(path, "rb");
    *err = errno;
#endif
    return f;
}

int apc_config_load(const char *path, apc_config_t **out, apc_diags_t *diags)
{
    FILE *f = NULL;
    char *text = NULL, *base = NULL;
    size_t len = 0, cap = 0, k;
    char why[256];
    int rc = 0, e = 0;

    if (out == NULL || path == NULL)
        return APC_EINVAL;
    *out = NULL;
    f = open_read(path, &e);
    if (f == NULL) {
        errno_text(e, why, sizeof(why));
        if (diags != NULL)
            (void)apc_diags_add(diags, APC_DIAG_ERROR, path, 0, 0, "", "cannot open: %s", why);
        return e == ENOENT ? APC_ENOTFOUND : APC_EIO;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            char *nt;
            if (cap > APC_CONFIG_MAX_BYTES) {
                if (diags != NULL)
                    (void)apc_diags_add(diags, APC_DIAG_ERROR, path, 0, 0, "",
                                        "the file is larger than %u bytes (32 MiB)",
                                        APC_CONFIG_MAX_BYTES);
                rc = APC_ETOOBIG;
                goto cleanup;
            }
            cap = cap ? cap * 2 : 64u * 1024u;
            nt = realloc(text, cap + 1);
            if (nt == NULL) {
                rc = APC_ENOMEM;
                goto cleanup;
            }
            text = nt;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                errno_text(errno, why, sizeof(why));
                if (diags != NULL)
                    (void)apc_diags_add(diags, APC_DIAG_ERROR, path, 0, 0, "", "cannot read: %s",
                                        why);
                rc = APC_EIO;
                goto cleanup;
            }
            break;
        }
    }
    for (k = strlen(path); k > 0 && !is_sep(path[k - 1]); k--)
        ;
    if (k == 0)
        base = apc_strdup(".");
    else if (k == 1 || (k == 3 && is_drive(path)))
        base = apc_strndup(path, k); /* keep the root's separator: "/" or "C:\" */
    else
        base = apc_strndup(path, k - 1);
    if (base == NULL) {
        rc = APC_ENOMEM;
        goto cleanup;
    }
    rc = apc_config_parse(text, len, path, base, out, diags);

cleanup:
    if (f != NULL)
        fclose(f);
    free(text);
    free(base);
    return rc;
}

const apc_job_config_t *apc_config_find_job(const apc_config_t *cfg, const char *name)
{
    size_t slot;

    if (cfg == NULL || name == NULL || cfg->priv == NULL || cfg->priv->index == NULL)
        return NULL;
    slot = hash_nocase(name) & cfg->priv->index_mask;
    while (cfg->priv->index[slot] != 0) {
        const apc_job_config_t *j = &cfg->jobs[cfg->priv->index[slot] - 1u];
        if (equal_nocase(j->name, name))
            return j;
        slot = (slot + 1) & cfg->priv->index_mask;
    }
    return NULL;
}

const apc_tz_t *apc_config_job_tz(const apc_config_t *cfg, const apc_job_config_t *job,
                                  const apc_tz_t *local_tz)
{
    if (cfg == NULL || job == NULL || job->zone >= cfg->nzones)
        return NULL;
    if (cfg->zones[job->zone].kind == APC_ZONE_LOCAL)
        return local_tz;
    return &cfg->zones[job->zone].tz;
}

int apc_config_lint(const apc_config_t *cfg, const apc_tz_t *local_tz, int64_t now_ms,
                    apc_diags_t *diags)
{
    apc_buf_t lines = {0};
    char path[48];
    size_t i;
    int rc = 0;

    if (cfg == NULL || diags == NULL)
        return APC_EINVAL;
    for (i = 0; i < cfg->njobs; i++) {
        const apc_job_config_t *j = &cfg->jobs[i];
        const apc_config_zone_t *z = &cfg->zones[j->zone];
        const apc_tz_t *tz;
        const char *p;
        int count = 0;

        if (j->schedule_expr == NULL || j->schedule.kind != APC_SCHED_CRON)
            continue;
        if (z->kind == APC_ZONE_UTC || (z->kind == APC_ZONE_RULES && !z->rules.has_dst))
            continue;
        tz = apc_config_job_tz(cfg, j, local_tz);
        if (tz == NULL)
            continue;
        apc_buf_reset(&lines);
        rc = apc_schedule_dst_lint(&j->schedule, now_ms, tz, &lines, &count);
        if (rc != 0)
            goto cleanup;
        (void)apc_seterr(path, sizeof(path), 0, "jobs[%lu].schedule", (unsigned long)i);
        for (p = lines.data; p != NULL && *p != '\0';) {
            size_t n = strcspn(p, "\n");
            if (n > 0 && n <= (size_t)0x7fffffff) {
                rc = apc_diags_add(diags, APC_DIAG_WARNING, cfg->source, 0, 0, path, "%.*s", (int)n,
                                   p);
                if (rc != 0)
                    goto cleanup;
            }
            p += n;
            if (*p == '\n')
                p++;
        }
    }

cleanup:
    apc_buf_free(&lines);
    return rc;
}

void apc_config_memory(const apc_config_t *cfg, size_t *total, size_t *strings)
{
    size_t t = 0, s = 0;

    if (cfg != NULL) {
        t = sizeof(*cfg) + cfg->njobs * sizeof(apc_job_config_t) +
            cfg->nzones * sizeof(apc_config_zone_t);
        if (cfg->priv != NULL) {
            t += sizeof(*cfg->priv) + cfg->priv->arena_bytes;
            if (cfg->priv->index != NULL)
                t += (cfg->priv->index_mask + 1) * sizeof(uint32_t);
            s = cfg->priv->string_bytes;
        }
    }
    if (total != NULL)
        *total = t;
    if (strings != NULL)
        *strings = s;
}
