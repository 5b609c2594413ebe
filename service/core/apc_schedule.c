/*
 * apc_schedule.c - cron and macro schedules: parsing, next fire time, and the
 * DST lint (see apc_schedule.h and README.md (section Schedules)).
 *
 * Why this way:
 *  - A cron expression is stored as bitsets, one per field. next() works on
 *    local wall-clock seconds ("wall time": local date and time read as if it
 *    were UTC) and finds the next match field by field: the month, then the
 *    first matching day of that month from a 31-bit day mask, then the hour,
 *    minute and second, each with one bit search; a field with no bit left
 *    carries into the next larger one. The cost is a handful of bit
 *    operations per field, independent of how far away the match is.
 *  - The day mask of a month follows cronie: when both day fields are
 *    restricted a day matches if either matches; a field written with a
 *    leading '*' ("*", "*" + "/2") counts as unrestricted, and then both must
 *    match.
 *  - Wall time is turned into UTC through apc_tz_t only. The DST rule:
 *      gap (spring forward):  a wall time that does not exist fires once, at
 *                             the first valid instant after the gap (the
 *                             transition itself: 02:30 -> 03:00 EDT);
 *      overlap (fall back):   a wall time that occurs twice fires once, at
 *                             its first occurrence.
 *    Seen as a function from wall time to UTC ("first instant at which the
 *    clock shows W or later") this is monotone, so the next fire time is the
 *    first matching W whose instant is strictly after the given one.
 *  - "Can never fire" is decided exactly at parse time: whether a day can
 *    match depends only on the month, its first weekday and (for February)
 *    the leap year, and the Gregorian calendar has every combination, so the
 *    check tries all 12 x 7 x 2 of them.
 *
 * Thread safety: pure functions; any thread.
 */
#include "apc_schedule.h"

#include <stdio.h>
#include <string.h>

#include "apc_error.h"
#include "apc_time.h"

/* next() does not look past this year: four-digit years are all we format. */
#define MAX_YEAR 9999
/* Unix seconds of 0000-01-01T00:00:00Z; earlier instants are clamped to it. */
#define MIN_UTC_S INT64_C(-62167219200)
/* Unix seconds of 9999-12-31T23:59:59Z: no fire time is reported after it. */
#define MAX_UTC_S INT64_C(253402300799)
/* Generous bound on an offset (the real maximum is 14 h; POSIX rules allow 24 h). */
#define MAX_OFFSET_S (26 * 3600)

/* Keep the schedule small: the service may hold 100,000 of them. */
_Static_assert(sizeof(apc_schedule_t) <= 64, "apc_schedule_t must stay below 64 bytes");

/* ---- bit helpers -------------------------------------------------------- */

/* Index of the lowest set bit of v (v != 0). */
static int lowbit(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(v);
#else
    /* De Bruijn multiplication: O(1) without compiler intrinsics. */
    static const int tab[64] = {0,  1,  2,  53, 3,  7,  54, 27, 4,  38, 41, 8,  34, 55, 48, 28,
                                62, 5,  39, 46, 44, 42, 22, 9,  24, 35, 59, 56, 49, 18, 29, 11,
                                63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21, 23, 58, 17, 10,
                                51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12};
    return tab[((v & (0 - v)) * UINT64_C(0x022fdd63cc95386d)) >> 58];
#endif
}

/* Bits k..63 set (k 0-64). */
static uint64_t from_bit(int k)
{
    return k >= 64 ? 0 : ~UINT64_C(0) << k;
}

/* ---- the day mask -------------------------------------------------------- */

/*
 * Days (bits 1..ndays) of a month with ndays days whose first day is weekday
 * wd1 (0 = Sunday) that satisfy the day-of-month and day-of-week fields.
 */
static uint64_t day_mask(const apc_cron_t *c, int ndays, int wd1)
{
    uint64_t valid = (from_bit(1) & ~from_bit(ndays + 1));
    uint64_t dom = (uint64_t)c->dom;
    uint64_t dow, rot;
    int w;

    if (c->flags & APC_CRON_DOM_LAST)
        dom |= UINT64_C(1) << ndays;
    dom &= valid;
    /* Rotate the weekday bits so that bit k says whether day 1+k matches, then repeat the week. */
    rot = (((uint64_t)c->dow >> wd1) | ((uint64_t)c->dow << (7 - wd1))) & 0x7f;
    dow = (rot | rot << 7 | rot << 14 | rot << 21 | rot << 28) << 1;
    for (w = 0; w < 7; w++) {
        unsigned nth = c->nth[w];
        int first, n;
        if (nth == 0)
            continue;
        first = 1 + (w - wd1 + 7) % 7;
        for (n = 1; n <= 5; n++)
            if (nth & (1u << n))
                dow |= UINT64_C(1) << (first + 7 * (n - 1));
        if (nth & APC_CRON_NTH_LAST)
            dow |= UINT64_C(1) << (first + 7 * ((ndays - first) / 7));
    }
    dow &= valid;
    if (c->flags & (APC_CRON_DOM_STAR | APC_CRON_DOW_STAR))
        return dom & dow;
    return dom | dow;
}

static uint64_t day_mask_ym(const apc_cron_t *c, int64_t y, int m)
{
    return day_mask(c, apc_days_in_month(y, m),
                    apc_weekday_from_days(apc_days_from_civil(y, m, 1)));
}

/* Returns 1 if some month of some year has a matching day. */
static int can_fire(const apc_cron_t *c)
{
    for (int m = 1; m <= 12; m++) {
        if (!(c->mon & (1u << m)))
            continue;
        for (int wd1 = 0; wd1 < 7; wd1++) {
            if (day_mask(c, apc_days_in_month(2001, m), wd1) != 0)
                return 1;
            if (m == 2 && day_mask(c, 29, wd1) != 0)
                return 1;
        }
    }
    return 0;
}

/*
 * The first wall time (local seconds, read as UTC) strictly after wall_floor
 * that matches c. Field by field with carries; see the file comment.
 * Returns 0 or APC_ENOTFOUND past MAX_YEAR.
 */
static int next_wall(const apc_cron_t *c, int64_t wall_floor, int64_t *out)
{
    int64_t t = wall_floor + 1;
    int64_t days = apc_floor_div(t, 86400);
    int64_t sod = t - days * 86400;
    int64_t y;
    int mo, d, h = (int)(sod / 3600), mi = (int)(sod / 60 % 60), s = (int)(sod % 60);

    apc_civil_from_days(days, &y, &mo, &d);
    for (;;) {
        uint64_t bits;
        if (y > MAX_YEAR)
            return APC_ENOTFOUND;
        bits = (uint64_t)c->mon & from_bit(mo);
        if (bits == 0) {
            y++;
            mo = 1;
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (lowbit(bits) != mo) {
            mo = lowbit(bits);
            d = 1;
            h = mi = s = 0;
        }
        bits = day_mask_ym(c, y, mo) & from_bit(d);
        if (bits == 0) {
            mo++;
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (lowbit(bits) != d) {
            d = lowbit(bits);
            h = mi = s = 0;
        }
        bits = (uint64_t)c->hour & from_bit(h);
        if (bits == 0) {
            d++;
            h = mi = s = 0;
            continue;
        }
        if (lowbit(bits) != h) {
            h = lowbit(bits);
            mi = s = 0;
        }
        bits = c->min & from_bit(mi);
        if (bits == 0) {
            h++;
            mi = s = 0;
            continue;
        }
        if (lowbit(bits) != mi) {
            mi = lowbit(bits);
            s = 0;
        }
        bits = c->sec & from_bit(s);
        if (bits == 0) {
            mi++;
            s = 0;
            continue;
        }
        s = lowbit(bits);
        break;
    }
    *out = apc_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

/* ---- wall time to UTC ---------------------------------------------------- */

static int off_at(const apc_tz_t *tz, int64_t utc_s, int32_t *o)
{
    return tz->offset_at(tz, utc_s, o);
}

/*
 * The first instant in (lo, hi] whose offset differs from the offset at lo,
 * given that the offset at hi differs: the transition. Bisection, so about
 * 17 calls for a gap of a day.
 */
static int find_transition(const apc_tz_t *tz, int64_t lo, int64_t hi, int64_t *out)
{
    int32_t olo, o;
    int rc = off_at(tz, lo, &olo);

    if (rc != 0)
        return rc;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((rc = off_at(tz, mid, &o)) != 0)
            return rc;
        if (o == olo)
            lo = mid;
        else
            hi = mid;
    }
    *out = hi;
    return 0;
}

/*
 * How wall time w maps to UTC under the DST rule. *first is the instant it
 * fires at. If w occurs twice, *overlap is set and *skip_to receives the last
 * wall second of the repeated stretch (so a caller already past the first
 * occurrence can jump over the whole stretch at once).
 */
static int wall_to_utc(const apc_tz_t *tz, int64_t w, int64_t *first, int *overlap,
                       int64_t *skip_to)
{
    int32_t oa, ob, o;
    int64_t ua, ub, t;
    int va, vb, rc;

    *overlap = 0;
    /*
     * Every instant that can show wall time w lies within MAX_OFFSET_S of w. The offsets at the
     * two ends of that window are the one before and the one after the only change that can
     * lie inside it (the apc_tz.h contract puts changes at least 7 days apart).
     */
    if ((rc = off_at(tz, w - MAX_OFFSET_S, &oa)) != 0 ||
        (rc = off_at(tz, w + MAX_OFFSET_S, &ob)) != 0)
        return rc;
    if (oa == ob) {
        /* No change in the window: the one reading is the answer. */
        *first = w - oa;
        return 0;
    }
    ua = w - oa;
    ub = w - ob;
    if ((rc = off_at(tz, ua, &o)) != 0)
        return rc;
    va = o == oa;
    if ((rc = off_at(tz, ub, &o)) != 0)
        return rc;
    vb = o == ob;
    if (va && vb && ua != ub) {
        /* Repeated: the first occurrence is the one under the larger (earlier) offset. */
        int64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
        int32_t olo = ua < ub ? oa : ob;
        if ((rc = find_transition(tz, lo, hi, &t)) != 0)
            return rc;
        *first = lo;
        *overlap = 1;
        *skip_to = t + olo - 1;
        return 0;
    }
    if (va) {
        *first = ua;
        return 0;
    }
    if (vb) {
        *first = ub;
        return 0;
    }
    /* Skipped: fire at the first valid instant after the gap, the transition itself. */
    return find_transition(tz, ua < ub ? ua : ub, ua < ub ? ub : ua, first);
}

static int cron_next(const apc_cron_t *c, int64_t after_ms, const apc_tz_t *tz, int64_t *next_ms)
{
    int64_t after_s = apc_floor_div(after_ms, 1000);
    int64_t floor, w, first, skip;
    int32_t o;
    int overlap, rc, i;

    if (after_s < MIN_UTC_S)
        after_s = MIN_UTC_S - 1;
    if (after_s >= MAX_UTC_S)
        return APC_ENOTFOUND;
    if ((rc = off_at(tz, after_s, &o)) != 0)
        return rc;
    if (o <= -MAX_OFFSET_S || o >= MAX_OFFSET_S)
        return APC_ERANGE;
    floor = after_s + o;
    /* At most one repeated stretch needs skipping; the bound only guards against odd zones. */
    for (i = 0; i < 8; i++) {
        if ((rc = next_wall(c, floor, &w)) != 0)
            return rc;
        if ((rc = wall_to_utc(tz, w, &first, &overlap, &skip)) != 0)
            return rc;
        if (first > after_s) {
            if (first > MAX_UTC_S)
                return APC_ENOTFOUND;
            *next_ms = first * 1000;
            return 0;
        }
        /* Only a wall time repeated after its first occurrence lands here. */
        floor = overlap && skip > w ? skip : w;
    }
    return APC_ERANGE;
}

int apc_schedule_next(const apc_schedule_t *s, int64_t after_ms, const apc_tz_t *tz,
                      int64_t *next_ms)
{
    if (s == NULL || next_ms == NULL)
        return APC_EINVAL;
    if (tz == NULL)
        tz = apc_tz_utc();
    if (tz->offset_at == NULL)
        return APC_EINVAL;
    switch (s->kind) {
    case APC_SCHED_CRON:
        return cron_next(&s->u.cron, after_ms, tz, next_ms);
    case APC_SCHED_EVERY:
        if (s->u.every_ms <= 0 || after_ms > INT64_MAX - s->u.every_ms)
            return APC_ENOTFOUND;
        *next_ms = after_ms + s->u.every_ms;
        return 0;
    case APC_SCHED_AT:
        if (s->u.at_ms <= after_ms)
            return APC_ENOTFOUND;
        *next_ms = s->u.at_ms;
        return 0;
    case APC_SCHED_STARTUP:
        return APC_ENOTFOUND;
    default:
        return APC_EINVAL;
    }
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* 3-letter names for lo.., or NULL */
    const char *kind;         /* what a bad token is not */
} field_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW };

static const field_t fields[6] = {
    {"second", 0, 59, NULL, "a number"},
    {"minute", 0, 59, NULL, "a number"},
    {"hour", 0, 23, NULL, "a number"},
    {"day-of-month", 1, 31, NULL, "a number or L"},
    {"month", 1, 12, month_names, "a number or month name (JAN-DEC)"},
    {"day-of-week", 0, 7, day_names, "a number or day name (SUN-SAT)"},
};

typedef struct {
    const field_t *f;
    const char *field; /* the whole field text, for messages */
    int flen;
    char *err;
    size_t errsz;
} fparse_t;

static int c_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int c_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char c_upper(char c)
{
    return (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
}

/*
 * Reads one value (number or name) at *pp, not beyond end. Returns 0 and the
 * value, or an error naming the token.
 */
static int read_value(fparse_t *fp, const char **pp, const char *end, int *out)
{
    const char *p = *pp, *tok = p;

    if (p < end && c_digit(*p)) {
        long v = 0;
        while (p < end && c_digit(*p)) {
            if (v < 100000)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < fp->f->lo || v > fp->f->hi)
            return apc_seterr(fp->err, fp->errsz, APC_ERANGE,
                              "%s field \"%.*s\" is out of range %d-%d", fp->f->name,
                              (int)(p - tok), tok, fp->f->lo, fp->f->hi);
        *out = (int)v;
        *pp = p;
        return 0;
    }
    while (p < end && (c_alpha(*p) || c_digit(*p)))
        p++;
    /* "FRIL": a day name followed by the L of "last such weekday"; parse_item reads the L. */
    if (fp->f == &fields[F_DOW] && p - tok == 4 && c_alpha(tok[0]) && c_upper(tok[3]) == 'L')
        p = tok + 3;
    if (p == tok) {
        if (tok == end)
            return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX, "%s field \"%.*s\" is incomplete",
                              fp->f->name, fp->flen, fp->field);
        return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX,
                          "%s field \"%.*s\" has unexpected \"%c\"", fp->f->name, fp->flen,
                          fp->field, *tok);
    }
    if (fp->f->names != NULL && p - tok == 3) {
        int n = fp->f->hi - fp->f->lo + 1;
        if (fp->f->names == day_names)
            n = 7;
        for (int i = 0; i < n; i++) {
            const char *nm = fp->f->names[i];
            if (c_upper(tok[0]) == nm[0] && c_upper(tok[1]) == nm[1] && c_upper(tok[2]) == nm[2]) {
                *out = fp->f->lo + i;
                *pp = p;
                return 0;
            }
        }
    }
    return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX, "%s field \"%.*s\" is not %s", fp->f->name,
                      (int)(p - tok), tok, fp->f->kind);
}

/* Sets bits lo..hi step st in *bits. */
static void set_range(uint64_t *bits, int lo, int hi, int st)
{
    for (int v = lo; v <= hi; v += st)
        *bits |= UINT64_C(1) << v;
}

/* One list item [p, end) of a field. */
static int parse_item(fparse_t *fp, const char *p, const char *end, uint64_t *bits, apc_cron_t *c)
{
    const char *item = p;
    int ilen = (int)(end - p);
    int lo, hi, st = 1;
    int single = 0;

    if (fp->f == &fields[F_DOM] && ilen == 1 && c_upper(*p) == 'L') {
        c->flags |= APC_CRON_DOM_LAST;
        return 0;
    }
    if (*p == '*') {
        lo = fp->f->lo;
        hi = fp->f->hi;
        p++;
    } else {
        int rc = read_value(fp, &p, end, &lo);
        if (rc != 0)
            return rc;
        hi = lo;
        single = 1;
        if (p < end && *p == '-') {
            p++;
            if ((rc = read_value(fp, &p, end, &hi)) != 0)
                return rc;
            single = 0;
            if (lo > hi)
                return apc_seterr(fp->err, fp->errsz, APC_ERANGE,
                                  "%s field \"%.*s\" is a range that runs backwards (%d > %d)",
                                  fp->f->name, ilen, item, lo, hi);
        } else if (fp->f == &fields[F_DOW] && p < end && (*p == '#' || c_upper(*p) == 'L')) {
            int wd = lo % 7;
            if (*p == '#') {
                int n = 0;
                const char *ns = ++p;
                while (p < end && c_digit(*p) && n < 100)
                    n = n * 10 + (*p++ - '0');
                if (p == ns || p != end)
                    return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX,
                                      "%s field \"%.*s\" needs a number 1-5 after #", fp->f->name,
                                      ilen, item);
                if (n < 1 || n > 5)
                    return apc_seterr(fp->err, fp->errsz, APC_ERANGE,
                                      "%s field \"%.*s\" asks for occurrence %d (must be 1-5)",
                                      fp->f->name, ilen, item, n);
                c->nth[wd] = (uint8_t)(c->nth[wd] | (1u << n));
            } else {
                p++;
                if (p != end)
                    return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX,
                                      "%s field \"%.*s\" has unexpected \"%.*s\"", fp->f->name,
                                      ilen, item, (int)(end - p), p);
                c->nth[wd] = (uint8_t)(c->nth[wd] | APC_CRON_NTH_LAST);
            }
            return 0;
        }
    }
    if (p < end && *p == '/') {
        const char *ss = ++p;
        int n = 0;
        while (p < end && c_digit(*p) && n < 100000)
            n = n * 10 + (*p++ - '0');
        if (p == ss || p != end)
            return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX,
                              "%s field \"%.*s\" needs a number after /", fp->f->name, ilen, item);
        if (n < 1 || n > fp->f->hi)
            return apc_seterr(fp->err, fp->errsz, APC_ERANGE,
                              "%s field \"%.*s\" has step %d (must be 1-%d)", fp->f->name, ilen,
                              item, n, fp->f->hi);
        st = n;
        /* "5/10" means 5-max/10, as in cronie and Vixie cron. */
        if (single)
            hi = fp->f->hi;
    }
    if (p != end)
        return apc_seterr(fp->err, fp->errsz, APC_ESYNTAX,
                          "%s field \"%.*s\" has unexpected \"%.*s\"", fp->f->name, ilen, item,
                          (int)(end - p), p);
    set_range(bits, lo, hi, st);
    return 0;
}

static int parse_field(int fi, const char *s, int len, apc_cron_t *c, char *err, size_t errsz)
{
    fparse_t fp;
    uint64_t bits = 0;
    const char *p = s, *end = s + len;

    fp.f = &fields[fi];
    fp.field = s;
    fp.flen = len;
    fp.err = err;
    fp.errsz = errsz;
    for (;;) {
        const char *comma = p;
        int rc;
        while (comma < end && *comma != ',')
            comma++;
        if (comma == p)
            return apc_seterr(err, errsz, APC_ESYNTAX, "%s field \"%.*s\" has an empty list item",
                              fp.f->name, len, s);
        if ((rc = parse_item(&fp, p, comma, &bits, c)) != 0)
            return rc;
        if (comma == end)
            break;
        p = comma + 1;
    }
    switch (fi) {
    case F_SEC:
        c->sec = bits;
        break;
    case F_MIN:
        c->min = bits;
        break;
    case F_HOUR:
        c->hour = (uint32_t)bits;
        break;
    case F_DOM:
        c->dom = (uint32_t)bits;
        if (*s == '*')
            c->flags |= APC_CRON_DOM_STAR;
        break;
    case F_MON:
        c->mon = (uint16_t)bits;
        break;
    default:
        /* 7 is Sunday too. */
        if (bits & (UINT64_C(1) << 7))
            bits = (bits | 1u) & 0x7f;
        c->dow = (uint8_t)bits;
        if (*s == '*')
            c->flags |= APC_CRON_DOW_STAR;
        break;
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Returns the first non-space character of [p, end), or end. */
static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    return p;
}

/* Returns the end of the word (run of non-space characters) that starts at p. */
static const char *skip_word(const char *p, const char *end)
{
    while (p < end && !is_space(*p))
        p++;
    return p;
}

/* Returns the end of [s, e) with trailing spaces removed. */
static const char *trim_end(const char *s, const char *e)
{
    while (e > s && is_space(e[-1]))
        e--;
    return e;
}

static int parse_cron(const char *s, size_t len, apc_cron_t *c, char *err, size_t errsz)
{
    const char *start[7];
    int flen[7];
    int n = 0, first, i;
    const char *p = s, *end = s + len;

    for (p = skip_space(p, end); p < end; p = skip_space(p, end)) {
        const char *w = p;
        p = skip_word(p, end);
        if (n < 7) {
            start[n] = w;
            flen[n] = (int)(p - w);
        }
        n++;
    }
    if (n != 5 && n != 6)
        return apc_seterr(err, errsz, APC_ESYNTAX, "expected 5 or 6 fields, got %d", n);
    memset(c, 0, sizeof *c);
    first = n == 6 ? F_SEC : F_MIN;
    if (n == 5)
        c->sec = 1; /* second 0 */
    else
        c->flags |= APC_CRON_SECONDS;
    for (i = 0; i < n; i++) {
        int rc = parse_field(first + i, start[i], flen[i], c, err, errsz);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Case-insensitive match of the macro word [w, w+n) against name (without '@'). */
static int word_is(const char *w, size_t n, const char *name)
{
    if (strlen(name) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (c_upper(w[i]) != c_upper(name[i]))
            return 0;
    return 1;
}

/* The text of each argument-less macro as the cron expression it stands for. */
static const struct {
    const char *name;
    const char *cron;
} macros[] = {
    {"yearly", "0 0 1 1 *"}, {"annually", "0 0 1 1 *"}, {"monthly", "0 0 1 * *"},
    {"weekly", "0 0 * * 0"}, {"daily", "0 0 * * *"},    {"midnight", "0 0 * * *"},
    {"hourly", "0 * * * *"},
};

#define MACRO_HELP                                                                            \
    "(use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every, @at or " \
    "@startup)"

static int parse_macro(const char *s, size_t len, apc_schedule_t *out, char *err, size_t errsz)
{
    const char *w = s + 1, *p = s + 1, *end = s + len;
    size_t wn, an;

    p = skip_word(p, end);
    wn = (size_t)(p - w);
    p = skip_space(p, end);
    an = (size_t)(end - p);
    if (word_is(w, wn, "every") || word_is(w, wn, "at")) {
        int every = word_is(w, wn, "every");
        char arg[128];
        int rc;
        if (an == 0)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              every ? "@every needs a duration, e.g. \"@every 15m\""
                                    : "@at needs an instant, e.g. \"@at 2026-03-08T02:30:00Z\"");
        if (an >= sizeof arg)
            return apc_seterr(err, errsz, APC_ETOOBIG, "@%s argument is longer than %d bytes",
                              every ? "every" : "at", (int)sizeof arg - 1);
        memcpy(arg, p, an);
        arg[an] = '\0';
        if (every) {
            int64_t ms;
            if ((rc = apc_duration_parse(arg, &ms, err, errsz)) != 0)
                return rc;
            if (ms < 1000)
                return apc_seterr(err, errsz, APC_ERANGE,
                                  "@every interval \"%s\" is shorter than the minimum of 1s", arg);
            out->kind = APC_SCHED_EVERY;
            out->u.every_ms = ms;
        } else {
            int64_t ms;
            if ((rc = apc_time_parse_iso8601(arg, &ms, err, errsz)) != 0)
                return rc;
            out->kind = APC_SCHED_AT;
            out->u.at_ms = ms;
        }
        return 0;
    }
    if (word_is(w, wn, "startup")) {
        if (an != 0)
            return apc_seterr(err, errsz, APC_ESYNTAX, "macro \"@startup\" takes no argument");
        out->kind = APC_SCHED_STARTUP;
        return 0;
    }
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
        if (!word_is(w, wn, macros[i].name))
            continue;
        if (an != 0)
            return apc_seterr(err, errsz, APC_ESYNTAX, "macro \"@%s\" takes no argument",
                              macros[i].name);
        out->kind = APC_SCHED_CRON;
        return parse_cron(macros[i].cron, strlen(macros[i].cron), &out->u.cron, err, errsz);
    }
    return apc_seterr(err, errsz, APC_ESYNTAX, "unknown macro \"%.*s\" " MACRO_HELP, (int)(wn + 1),
                      s);
}

int apc_schedule_parse(const char *expr, apc_schedule_t *out, char *err, size_t errsz)
{
    apc_schedule_t sc;
    const char *s, *e;
    size_t len;
    int rc;

    if (expr == NULL || out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "schedule is missing");
    e = expr + strlen(expr);
    s = skip_space(expr, e);
    e = trim_end(s, e);
    len = (size_t)(e - s);
    if (len == 0)
        return apc_seterr(err, errsz, APC_ESYNTAX, "schedule is empty");
    memset(&sc, 0, sizeof sc);
    if (*s == '@') {
        rc = parse_macro(s, len, &sc, err, errsz);
    } else {
        sc.kind = APC_SCHED_CRON;
        rc = parse_cron(s, len, &sc.u.cron, err, errsz);
        if (rc == 0 && !can_fire(&sc.u.cron))
            rc =
                apc_seterr(err, errsz, APC_ENEVER, "schedule \"%.*s\" can never fire", (int)len, s);
    }
    if (rc != 0)
        return rc;
    *out = sc;
    return 0;
}

/* ---- DST lint ------------------------------------------------------------ */

/* Lines written per transition before the rest is summarised. */
#define LINT_MAX_LINES 8
/*
 * Sampling step for finding changes of offset: shorter than the minimum gap
 * between two changes (apc_tz.h), so no change can hide between two samples.
 * That makes the lint about 61 offset lookups plus a bisection per change.
 */
#define LINT_STEP_S (APC_TZ_MIN_CHANGE_GAP_S - 86400)

/* "HH:MM", or "HH:MM:SS" when the seconds are not zero, of a wall time. */
static void fmt_hm(int64_t wall, char *buf, size_t size)
{
    int64_t sod = apc_floor_mod(wall, 86400);
    int h = (int)(sod / 3600), m = (int)(sod / 60 % 60), s = (int)(sod % 60);

    if (s != 0)
        (void)snprintf(buf, size, "%02d:%02d:%02d", h, m, s);
    else
        (void)snprintf(buf, size, "%02d:%02d", h, m);
}

static void fmt_date(int64_t wall, char *buf, size_t size)
{
    int64_t y;
    int m, d;

    apc_civil_from_days(apc_floor_div(wall, 86400), &y, &m, &d);
    (void)snprintf(buf, size, "%04d-%02d-%02d", (int)y, m, d);
}

static void fmt_offset(int32_t o, char *buf, size_t size)
{
    int32_t a = o < 0 ? -o : o;

    (void)snprintf(buf, size, "UTC%c%02d:%02d", o < 0 ? '-' : '+', (int)(a / 3600),
                   (int)(a / 60 % 60));
}

/* Lists the fire times of c inside the wall stretch [from, to) of one transition. */
static int lint_transition(const apc_cron_t *c, int64_t t, int32_t o1, int32_t o2, apc_buf_t *out,
                           int *count)
{
    int64_t lo = t + (o1 < o2 ? o1 : o2), hi = t + (o1 < o2 ? o2 : o1);
    int64_t floor = lo - 1, w;
    char before[16], after[16], when[16], date[16], offs[16];
    int n = 0;

    fmt_hm(t + o1, before, sizeof before);
    fmt_hm(t + o2, after, sizeof after);
    fmt_offset(o1, offs, sizeof offs);
    while (next_wall(c, floor, &w) == 0 && w < hi) {
        n++;
        floor = w;
        if (n > LINT_MAX_LINES)
            continue;
        fmt_date(w, date, sizeof date);
        fmt_hm(w, when, sizeof when);
        if (o2 > o1)
            apc_buf_printf(out, "%s: %s does not exist (clocks go forward %s->%s); runs at %s\n",
                           date, when, before, after, after);
        else
            apc_buf_printf(out,
                           "%s: %s occurs twice (clocks go back %s->%s); runs once, at the "
                           "first (%s)\n",
                           date, when, before, after, offs);
    }
    if (n > LINT_MAX_LINES) {
        fmt_date(lo, date, sizeof date);
        apc_buf_printf(out, "%s: ... and %d more fire times in the %s hour\n", date,
                       n - LINT_MAX_LINES, o2 > o1 ? "skipped" : "repeated");
    }
    *count += n;
    return 0;
}

int apc_schedule_dst_lint(const apc_schedule_t *s, int64_t from_ms, const apc_tz_t *tz,
                          apc_buf_t *out, int *count)
{
    int64_t from_s, to_s, t0, t1, y;
    int32_t o0, o1;
    int m, d, rc, n = 0;

    if (s == NULL || out == NULL || count == NULL)
        return APC_EINVAL;
    *count = 0;
    if (tz == NULL)
        tz = apc_tz_utc();
    if (tz->offset_at == NULL)
        return APC_EINVAL;
    if (s->kind != APC_SCHED_CRON)
        return 0;
    from_s = apc_floor_div(from_ms, 1000);
    if (from_s < MIN_UTC_S || from_s > MAX_UTC_S - 366 * 86400)
        return APC_ERANGE;
    /* "The next 12 months": the same UTC date and time one year later (Feb 29 -> Feb 28). */
    apc_civil_from_days(apc_floor_div(from_s, 86400), &y, &m, &d);
    if (m == 2 && d == 29)
        d = 28;
    to_s = apc_days_from_civil(y + 1, m, d) * 86400 + apc_floor_mod(from_s, 86400);
    if ((rc = off_at(tz, from_s, &o0)) != 0)
        return rc;
    for (t0 = from_s; t0 < to_s; t0 = t1, o0 = o1) {
        int64_t t;
        t1 = t0 + LINT_STEP_S < to_s ? t0 + LINT_STEP_S : to_s;
        if ((rc = off_at(tz, t1, &o1)) != 0)
            return rc;
        if (o1 == o0)
            continue;
        if ((rc = find_transition(tz, t0, t1, &t)) != 0)
            return rc;
        /* Read the offsets right at the change, in case the step hid a second one. */
        {
            int32_t ob, oa;
            if ((rc = off_at(tz, t - 1, &ob)) != 0 || (rc = off_at(tz, t, &oa)) != 0)
                return rc;
            (void)lint_transition(&s->u.cron, t, ob, oa, out, &n);
        }
    }
    *count = n;
    if (apc_buf_failed(out))
        return APC_ENOMEM;
    return 0;
}
