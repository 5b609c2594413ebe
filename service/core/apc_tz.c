/*
 * apc_tz.c - the time zone providers: UTC, POSIX TZ rules, and (POSIX only)
 * the C library's local zone. See apc_tz.h.
 *
 * Why this way: a rules zone is evaluated by computing the transition
 * instants of the years around t and taking the last one at or before t.
 * Looking at three years instead of one makes southern-hemisphere rules
 * (DST across New Year) and RFC 8536 rules with hours beyond 24 come out
 * right without special cases. Evaluation needs no heap and no libc time
 * functions, so it behaves identically on every platform and under Wine.
 *
 * Thread safety: the providers are pure functions of immutable data; the
 * libc provider calls localtime_r, which reads TZ.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
/* localtime_r is POSIX; the build defines this too, but a hand-built fuzzer may not. */
#define _POSIX_C_SOURCE 200809L
#endif
#include "apc_tz.h"

#include <string.h>
#ifndef _WIN32
#include <time.h>
#endif

#include "apc_error.h"
#include "apc_time.h"

int apc_tz_offset_at_ms(const apc_tz_t *tz, int64_t utc_ms, int32_t *offset_s)
{
    if (tz == NULL || tz->offset_at == NULL || offset_s == NULL)
        return APC_EINVAL;
    return tz->offset_at(tz, apc_floor_div(utc_ms, 1000), offset_s);
}

/* ---- UTC --------------------------------------------------------------- */

static int utc_offset_at(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s)
{
    (void)tz;
    (void)utc_s;
    *offset_s = 0;
    return 0;
}

static const apc_tz_t utc_zone = {utc_offset_at, NULL, "UTC"};

const apc_tz_t *apc_tz_utc(void)
{
    return &utc_zone;
}

/* ---- POSIX TZ rules: evaluation ---------------------------------------- */

/* Local seconds since the epoch (in the wall time the rule is written in) of a rule date in y. */
static int64_t rule_local_s(const apc_tz_date_t *r, int64_t y)
{
    int64_t days = apc_days_from_civil(y, 1, 1);

    switch (r->kind) {
    case APC_TZ_DATE_JULIAN1:
        /* Jn counts 1-365 and never February 29, so from day 60 on a leap year shifts by one. */
        days += r->day - 1;
        if (apc_is_leap_year(y) && r->day >= 60)
            days++;
        break;
    case APC_TZ_DATE_JULIAN0:
        days += r->day;
        break;
    default: {
        int64_t first = apc_days_from_civil(y, r->month, 1);
        int wd1 = apc_weekday_from_days(first);
        int mday = 1 + (r->wday - wd1 + 7) % 7 + 7 * (r->week - 1);
        int len = apc_days_in_month(y, r->month);
        /* Week 5 means "the last such weekday", which may be the 4th. */
        while (mday > len)
            mday -= 7;
        days = first + mday - 1;
        break;
    }
    }
    return days * 86400 + r->time_s;
}

static int rules_offset_at(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s)
{
    const apc_tz_rules_t *r = tz->ctx;
    int64_t y0, yy;
    int m, d;
    int64_t best_t = INT64_MIN;
    int best_dst = 0, best_is_end = 0;

    if (r == NULL)
        return APC_EINVAL;
    if (!r->has_dst) {
        *offset_s = r->std_offset_s;
        return 0;
    }
    /* Years far outside any realistic use would overflow the day arithmetic below. */
    if (utc_s < INT64_C(-1000000) * 366 * 86400 || utc_s > INT64_C(1000000) * 366 * 86400)
        return APC_ERANGE;
    apc_civil_from_days(apc_floor_div(utc_s + r->std_offset_s, 86400), &y0, &m, &d);
    for (yy = y0 - 1; yy <= y0 + 1; yy++) {
        /* The start is written in standard time, the end in daylight time. */
        int64_t ts = rule_local_s(&r->start, yy) - r->std_offset_s;
        int64_t te = rule_local_s(&r->end, yy) - r->dst_offset_s;
        /* Latest transition at or before utc_s wins; on a tie an end precedes a start, which
         * is how "DST all year" rules (start Jan 1 0:00, end Dec 31 25:00) stay in DST. */
        if (ts <= utc_s && (ts > best_t || (ts == best_t && best_is_end))) {
            best_t = ts;
            best_dst = 1;
            best_is_end = 0;
        }
        if (te <= utc_s && te > best_t) {
            best_t = te;
            best_dst = 0;
            best_is_end = 1;
        }
    }
    *offset_s = best_dst ? r->dst_offset_s : r->std_offset_s;
    return 0;
}

void apc_tz_from_rules(apc_tz_t *tz, const apc_tz_rules_t *rules)
{
    tz->offset_at = rules_offset_at;
    tz->ctx = rules;
    tz->name = rules->name;
}

/*
 * The provider contract (apc_tz.h) promises that offset changes are at least
 * APC_TZ_MIN_CHANGE_GAP_S apart, which lets the scheduler find the single
 * change near a local time by sampling. Real rules change months apart; a
 * rule like "J6,5/29" (a 26-hour summer) is rejected here. The check replays
 * the changes of 2000-2030 exactly as rules_offset_at orders them; that span
 * has every combination of weekday and leap year a rule can depend on.
 */
static int changes_far_apart(const apc_tz_rules_t *r)
{
    int64_t at[64];
    int dst[64];
    int n = 0, state = -1;
    int64_t last = 0;
    int have_last = 0;

    for (int64_t y = 2000; y <= 2030; y++) {
        at[n] = rule_local_s(&r->start, y) - r->std_offset_s;
        dst[n++] = 1;
        at[n] = rule_local_s(&r->end, y) - r->dst_offset_s;
        dst[n++] = 0;
    }
    /* Insertion sort by instant; on a tie the end comes first, as in rules_offset_at. */
    for (int i = 1; i < n; i++) {
        int64_t a = at[i];
        int d = dst[i], j = i - 1;
        while (j >= 0 && (at[j] > a || (at[j] == a && dst[j] > d))) {
            at[j + 1] = at[j];
            dst[j + 1] = dst[j];
            j--;
        }
        at[j + 1] = a;
        dst[j + 1] = d;
    }
    for (int i = 0; i < n; i++) {
        /* Events at the same instant collapse: only the last one is ever in force. */
        if (i + 1 < n && at[i + 1] == at[i])
            continue;
        if (dst[i] == state)
            continue;
        if (state >= 0) {
            if (have_last && at[i] - last < APC_TZ_MIN_CHANGE_GAP_S)
                return 0;
            last = at[i];
            have_last = 1;
        }
        state = dst[i];
    }
    return 1;
}

/* ---- POSIX TZ rules: parsing ------------------------------------------- */

typedef struct {
    const char *spec; /* the whole text, for messages */
    const char *p;
    char *err;
    size_t errsz;
} tzparser_t;

static int tz_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int tz_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A zone abbreviation: 3+ letters, or <...> of letters, digits, '+' and '-'. */
static int tz_name(tzparser_t *ps, const char *which)
{
    const char *start = ps->p;
    size_t n = 0;

    if (*ps->p == '<') {
        ps->p++;
        while (tz_alpha(*ps->p) || tz_digit(*ps->p) || *ps->p == '+' || *ps->p == '-') {
            ps->p++;
            n++;
        }
        if (*ps->p != '>')
            return apc_seterr(ps->err, ps->errsz, APC_ESYNTAX,
                              "time zone \"%s\": the %s name that starts with '<' has no '>'",
                              ps->spec, which);
        ps->p++;
    } else {
        while (tz_alpha(*ps->p)) {
            ps->p++;
            n++;
        }
    }
    if (n < 3)
        return apc_seterr(ps->err, ps->errsz, APC_ESYNTAX,
                          "time zone \"%s\": the %s name \"%.*s\" must be at least 3 letters",
                          ps->spec, which, (int)(ps->p - start), start);
    return 0;
}

/*
 * [+-]hh[:mm[:ss]] with hh 0..max_h; stores seconds (sign applied) in *out.
 * Used both for offsets (max 24) and for transition times (max 167).
 */
static int tz_hms(tzparser_t *ps, int max_h, const char *what, int32_t *out)
{
    int sign = 1;
    int32_t v[3] = {0, 0, 0};
    int i;

    if (*ps->p == '+' || *ps->p == '-') {
        sign = *ps->p == '-' ? -1 : 1;
        ps->p++;
    }
    for (i = 0; i < 3; i++) {
        int nd = 0;
        if (i > 0) {
            if (*ps->p != ':')
                break;
            ps->p++;
        }
        while (tz_digit(*ps->p) && nd < 3) {
            v[i] = v[i] * 10 + (*ps->p - '0');
            ps->p++;
            nd++;
        }
        if (nd == 0 || tz_digit(*ps->p))
            return apc_seterr(ps->err, ps->errsz, APC_ESYNTAX,
                              "time zone \"%s\": %s must be written [+-]hh[:mm[:ss]]", ps->spec,
                              what);
    }
    if (v[0] > max_h || v[1] > 59 || v[2] > 59)
        return apc_seterr(ps->err, ps->errsz, APC_ERANGE,
                          "time zone \"%s\": %s is out of range (hours 0-%d, minutes and seconds "
                          "0-59)",
                          ps->spec, what, max_h);
    *out = (int32_t)(sign * (v[0] * 3600 + v[1] * 60 + v[2]));
    return 0;
}

/* A small unsigned number for the rule dates; -1 if there are no digits. */
static int tz_num(tzparser_t *ps)
{
    int v = 0, nd = 0;

    while (tz_digit(*ps->p) && nd < 4) {
        v = v * 10 + (*ps->p - '0');
        ps->p++;
        nd++;
    }
    return nd == 0 ? -1 : v;
}

static int tz_date(tzparser_t *ps, apc_tz_date_t *out, const char *which)
{
    apc_tz_date_t r;
    int rc;

    memset(&r, 0, sizeof r);
    if (*ps->p == 'M') {
        int m, w, d;
        ps->p++;
        m = tz_num(ps);
        if (m < 0 || *ps->p != '.')
            goto bad;
        ps->p++;
        w = tz_num(ps);
        if (w < 0 || *ps->p != '.')
            goto bad;
        ps->p++;
        d = tz_num(ps);
        if (d < 0)
            goto bad;
        if (m < 1 || m > 12 || w < 1 || w > 5 || d > 6)
            return apc_seterr(ps->err, ps->errsz, APC_ERANGE,
                              "time zone \"%s\": the %s date M%d.%d.%d is out of range (month "
                              "1-12, week 1-5, weekday 0-6)",
                              ps->spec, which, m, w, d);
        r.kind = APC_TZ_DATE_MWD;
        r.month = (uint8_t)m;
        r.week = (uint8_t)w;
        r.wday = (uint8_t)d;
    } else if (*ps->p == 'J') {
        int n;
        ps->p++;
        n = tz_num(ps);
        if (n < 0)
            goto bad;
        if (n < 1 || n > 365)
            return apc_seterr(ps->err, ps->errsz, APC_ERANGE,
                              "time zone \"%s\": the %s date J%d is out of range (J1-J365)",
                              ps->spec, which, n);
        r.kind = APC_TZ_DATE_JULIAN1;
        r.day = (int16_t)n;
    } else if (tz_digit(*ps->p)) {
        int n = tz_num(ps);
        if (n > 365)
            return apc_seterr(ps->err, ps->errsz, APC_ERANGE,
                              "time zone \"%s\": the %s date %d is out of range (0-365)", ps->spec,
                              which, n);
        r.kind = APC_TZ_DATE_JULIAN0;
        r.day = (int16_t)n;
    } else {
        goto bad;
    }
    r.time_s = 7200; /* POSIX default: 02:00:00 */
    if (*ps->p == '/') {
        ps->p++;
        rc = tz_hms(ps, 167, "the time of a change", &r.time_s);
        if (rc != 0)
            return rc;
    }
    *out = r;
    return 0;
bad:
    return apc_seterr(ps->err, ps->errsz, APC_ESYNTAX,
                      "time zone \"%s\": the %s date must be Mm.w.d, Jn or n (e.g. M3.2.0)",
                      ps->spec, which);
}

int apc_tz_rules_parse(const char *spec, apc_tz_rules_t *out, char *err, size_t errsz)
{
    tzparser_t ps;
    apc_tz_rules_t r;
    int32_t v;
    int rc;

    if (spec == NULL || out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "time zone is missing");
    ps.spec = spec;
    ps.p = spec;
    ps.err = err;
    ps.errsz = errsz;
    memset(&r, 0, sizeof r);
    if (*spec == '\0')
        return apc_seterr(err, errsz, APC_ESYNTAX, "time zone is empty");
    if (strlen(spec) >= sizeof r.name)
        return apc_seterr(err, errsz, APC_ETOOBIG, "time zone \"%.20s...\" is longer than %d bytes",
                          spec, APC_TZ_NAME_MAX - 1);
    memcpy(r.name, spec, strlen(spec) + 1);
    if ((rc = tz_name(&ps, "standard")) != 0)
        return rc;
    if (*ps.p == '\0' || *ps.p == ',')
        return apc_seterr(err, errsz, APC_ESYNTAX,
                          "time zone \"%s\" has no UTC offset after the standard name (e.g. EST5 "
                          "or CET-1)",
                          spec);
    if ((rc = tz_hms(&ps, 24, "the standard offset", &v)) != 0)
        return rc;
    /* POSIX writes offsets west-positive; we store them the ISO way. */
    r.std_offset_s = -v;
    r.dst_offset_s = r.std_offset_s;
    if (*ps.p != '\0') {
        if ((rc = tz_name(&ps, "daylight")) != 0)
            return rc;
        r.has_dst = 1;
        r.dst_offset_s = r.std_offset_s + 3600;
        if (*ps.p != '\0' && *ps.p != ',') {
            if ((rc = tz_hms(&ps, 24, "the daylight offset", &v)) != 0)
                return rc;
            r.dst_offset_s = -v;
        }
        if (*ps.p != ',')
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "time zone \"%s\" names a daylight time but gives no rule (add "
                              "e.g. ,M3.2.0,M11.1.0)",
                              spec);
        ps.p++;
        if ((rc = tz_date(&ps, &r.start, "start")) != 0)
            return rc;
        if (*ps.p != ',')
            return apc_seterr(
                err, errsz, APC_ESYNTAX,
                "time zone \"%s\" needs two dates after the daylight name (start,end)", spec);
        ps.p++;
        if ((rc = tz_date(&ps, &r.end, "end")) != 0)
            return rc;
    }
    if (*ps.p != '\0')
        return apc_seterr(err, errsz, APC_ESYNTAX, "time zone \"%s\" has unexpected text \"%s\"",
                          spec, ps.p);
    if (r.has_dst && r.dst_offset_s != r.std_offset_s && !changes_far_apart(&r))
        return apc_seterr(err, errsz, APC_ERANGE,
                          "time zone \"%s\" changes its UTC offset twice within 7 days", spec);
    *out = r;
    return 0;
}

/* ---- the C library's local zone (native only) -------------------------- */

#ifndef _WIN32
/*
 * The offset is computed as (local broken-down time read as UTC) - t rather
 * than read from tm_gmtoff: tm_gmtoff is not in POSIX.1-2008, and glibc hides
 * it under the strict feature macros this build uses. The two are equal by
 * definition.
 */
static int libc_offset_at(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s)
{
    struct tm tm;
    time_t t;
    int64_t local;

    (void)tz;
    if (utc_s < INT64_C(-67768040609740800) || utc_s > INT64_C(67767976233316800))
        return APC_ERANGE;
    t = (time_t)utc_s;
    if ((int64_t)t != utc_s || localtime_r(&t, &tm) == NULL)
        return APC_ERANGE;
    local = apc_days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) * 86400 +
            tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    *offset_s = (int32_t)(local - utc_s);
    return 0;
}

static const apc_tz_t libc_zone = {libc_offset_at, NULL, "libc local time"};

const apc_tz_t *apc_tz_libc_local(void)
{
    return &libc_zone;
}
#endif
