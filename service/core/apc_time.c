/*
 * apc_time.c - calendar arithmetic and the duration, size and ISO-8601
 * parsers/formatters (see apc_time.h).
 *
 * Why this way: parsers walk the text by hand rather than with sscanf/strtol
 * so that every malformed input gets a precise message, signs and spaces are
 * never silently accepted, and overflow is checked before it happens.
 *
 * Thread safety: pure functions; any thread.
 */
#include "apc_time.h"

#include <stdio.h>
#include <string.h>

#include "apc_error.h"

int64_t apc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int64_t apc_floor_mod(int64_t a, int64_t b)
{
    return a - apc_floor_div(a, b) * b;
}

/* Howard Hinnant's days_from_civil: eras of 400 years, March-based years. */
int64_t apc_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = apc_floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void apc_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = apc_floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;

    *y = yoe + era * 400 + (mm <= 2);
    *m = (int)mm;
    *d = (int)dd;
}

int apc_is_leap_year(int64_t y)
{
    return (apc_floor_mod(y, 4) == 0 && apc_floor_mod(y, 100) != 0) || apc_floor_mod(y, 400) == 0;
}

int apc_days_in_month(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m < 1 || m > 12)
        return 0;
    if (m == 2 && apc_is_leap_year(y))
        return 29;
    return len[m - 1];
}

int apc_weekday_from_days(int64_t days)
{
    /* 1970-01-01 was a Thursday (4). */
    return (int)apc_floor_mod(days + 4, 7);
}

/* ---- durations ---------------------------------------------------------- */

#define UNIT_HELP "(use ms, s, m, h or d)"

/* Units from largest to smallest; rank is the position in this table. */
static const struct {
    const char *name;
    int64_t ms;
} units[] = {
    {"d", APC_MS_PER_DAY},
    {"h", APC_MS_PER_HOUR},
    {"m", APC_MS_PER_MIN},
    {"s", APC_MS_PER_S},
    {"ms", 1},
};
#define NUNITS (sizeof units / sizeof units[0])

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int apc_duration_parse(const char *s, int64_t *out_ms, char *err, size_t errsz)
{
    const char *p = s;
    int64_t total = 0;
    int last_rank = -1;

    if (s == NULL || out_ms == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "duration is missing");
    if (*s == '\0')
        return apc_seterr(err, errsz, APC_ESYNTAX, "duration is empty " UNIT_HELP);
    while (*p != '\0') {
        int64_t n = 0;
        const char *u;
        size_t ulen;
        size_t i;
        int rank = -1;

        if (!is_digit(*p))
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "duration \"%s\" must be numbers with units, like 90s or 1h30m", s);
        while (is_digit(*p)) {
            int dg = *p - '0';
            if (n > (INT64_MAX - dg) / 10)
                return apc_seterr(err, errsz, APC_ERANGE, "duration \"%s\" is too large", s);
            n = n * 10 + dg;
            p++;
        }
        u = p;
        while (is_alpha(*p))
            p++;
        ulen = (size_t)(p - u);
        if (ulen == 0) {
            if (*p == '\0')
                return apc_seterr(err, errsz, APC_ESYNTAX, "duration \"%s\" has no unit " UNIT_HELP,
                                  s);
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "duration \"%s\" must be numbers with units, like 90s or 1h30m", s);
        }
        for (i = 0; i < NUNITS; i++) {
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0) {
                rank = (int)i;
                break;
            }
        }
        if (rank < 0)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "duration \"%s\" has an unknown unit \"%.*s\" " UNIT_HELP, s,
                              (int)ulen, u);
        if (rank == last_rank)
            return apc_seterr(err, errsz, APC_ESYNTAX, "duration \"%s\" repeats the unit \"%s\"", s,
                              units[rank].name);
        if (rank < last_rank)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "duration \"%s\" has units out of order (write d, h, m, s, ms from "
                              "largest to smallest)",
                              s);
        last_rank = rank;
        if (n > INT64_MAX / units[rank].ms || total > INT64_MAX - n * units[rank].ms)
            return apc_seterr(err, errsz, APC_ERANGE, "duration \"%s\" is too large", s);
        total += n * units[rank].ms;
    }
    *out_ms = total;
    return 0;
}

int apc_duration_format(int64_t ms, char *buf, size_t size)
{
    char tmp[APC_DURATION_BUFSZ];
    size_t len = 0;
    size_t i;

    if (buf == NULL)
        return APC_EINVAL;
    if (size > 0)
        buf[0] = '\0';
    if (ms < 0)
        return APC_EINVAL;
    if (ms == 0) {
        memcpy(tmp, "0s", 3);
        len = 2;
    }
    for (i = 0; i < NUNITS && ms > 0; i++) {
        int64_t n = ms / units[i].ms;
        int w;

        if (n == 0)
            continue;
        ms -= n * units[i].ms;
        w = snprintf(tmp + len, sizeof tmp - len, "%lld%s", (long long)n, units[i].name);
        if (w < 0 || (size_t)w >= sizeof tmp - len)
            return APC_ETOOBIG;
        len += (size_t)w;
    }
    if (len + 1 > size)
        return APC_ETOOBIG;
    memcpy(buf, tmp, len + 1);
    return 0;
}

/* ---- sizes ------------------------------------------------------------- */

#define SIZE_HELP "(use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"

int apc_size_parse(const char *s, uint64_t *out_bytes, char *err, size_t errsz)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } su[] = {
        {"B", 1u},
        {"KiB", UINT64_C(1) << 10},
        {"MiB", UINT64_C(1) << 20},
        {"GiB", UINT64_C(1) << 30},
        {"TiB", UINT64_C(1) << 40},
        {"KB", UINT64_C(1000)},
        {"MB", UINT64_C(1000000)},
        {"GB", UINT64_C(1000000000)},
        {"TB", UINT64_C(1000000000000)},
    };
    const char *p = s;
    uint64_t n = 0, mult = 1;

    if (s == NULL || out_bytes == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "size is missing");
    if (*s == '\0')
        return apc_seterr(err, errsz, APC_ESYNTAX, "size is empty");
    if (!is_digit(*p))
        return apc_seterr(err, errsz, APC_ESYNTAX,
                          "size \"%s\" must be a number with an optional unit, like 64KiB", s);
    while (is_digit(*p)) {
        unsigned dg = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - dg) / 10)
            return apc_seterr(err, errsz, APC_ERANGE, "size \"%s\" is too large", s);
        n = n * 10 + dg;
        p++;
    }
    if (*p != '\0') {
        int found = 0;
        for (size_t i = 0; i < sizeof su / sizeof su[0]; i++) {
            if (strcmp(p, su[i].name) == 0) {
                mult = su[i].mult;
                found = 1;
                break;
            }
        }
        if (!found)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "size \"%s\" has an unknown unit \"%s\" " SIZE_HELP, s, p);
    }
    if (n > UINT64_MAX / mult)
        return apc_seterr(err, errsz, APC_ERANGE, "size \"%s\" is too large", s);
    *out_bytes = n * mult;
    return 0;
}

/* ---- ISO-8601 ---------------------------------------------------------- */

#define ISO_EXAMPLE "(expected e.g. 2026-03-08T02:30:00Z or 2026-03-08T02:30:00+01:00)"

/* Reads exactly n digits at *pp; returns -1 if they are not all digits. */
static int fixed_digits(const char **pp, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!is_digit((*pp)[i]))
            return -1;
        v = v * 10 + ((*pp)[i] - '0');
    }
    *pp += n;
    return v;
}

static int expect(const char **pp, char c)
{
    if (**pp != c)
        return -1;
    (*pp)++;
    return 0;
}

int apc_time_parse_iso8601(const char *s, int64_t *out_ms, char *err, size_t errsz)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, ms = 0;
    int32_t off = 0;
    int64_t days, v;

    if (s == NULL || out_ms == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "time is missing");
    if ((y = fixed_digits(&p, 4)) < 0 || expect(&p, '-') || (mo = fixed_digits(&p, 2)) < 0 ||
        expect(&p, '-') || (d = fixed_digits(&p, 2)) < 0 || (*p != 'T' && *p != 't'))
        return apc_seterr(err, errsz, APC_ESYNTAX, "time \"%s\" is not ISO-8601 " ISO_EXAMPLE, s);
    p++;
    if ((h = fixed_digits(&p, 2)) < 0 || expect(&p, ':') || (mi = fixed_digits(&p, 2)) < 0 ||
        expect(&p, ':') || (sec = fixed_digits(&p, 2)) < 0)
        return apc_seterr(err, errsz, APC_ESYNTAX, "time \"%s\" is not ISO-8601 " ISO_EXAMPLE, s);
    if (*p == '.') {
        int nd = 0;
        p++;
        while (is_digit(*p)) {
            if (nd < 3)
                ms = ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0 || nd > 9)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "time \"%s\" has a fraction of second that is not 1-9 digits", s);
        for (; nd < 3; nd++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if ((oh = fixed_digits(&p, 2)) < 0 || expect(&p, ':') || (om = fixed_digits(&p, 2)) < 0)
            return apc_seterr(err, errsz, APC_ESYNTAX,
                              "time \"%s\" has a malformed UTC offset (write Z, +hh:mm or -hh:mm)",
                              s);
        if (oh > 23 || om > 59)
            return apc_seterr(err, errsz, APC_ERANGE,
                              "time \"%s\" has UTC offset out of range (-23:59 to +23:59)", s);
        off = (int32_t)(sign * (oh * 3600 + om * 60));
    } else if (*p == '\0') {
        return apc_seterr(err, errsz, APC_ESYNTAX,
                          "time \"%s\" has no UTC offset (add Z or an offset like +01:00)", s);
    } else {
        return apc_seterr(err, errsz, APC_ESYNTAX, "time \"%s\" is not ISO-8601 " ISO_EXAMPLE, s);
    }
    if (*p != '\0')
        return apc_seterr(err, errsz, APC_ESYNTAX,
                          "time \"%s\" has trailing text after the UTC offset", s);
    if (mo < 1 || mo > 12)
        return apc_seterr(err, errsz, APC_ERANGE, "time \"%s\" has month %02d out of range 01-12",
                          s, mo);
    if (d < 1 || d > apc_days_in_month(y, mo))
        return apc_seterr(err, errsz, APC_ERANGE,
                          "time \"%s\" has day %02d, but %04d-%02d has %d days", s, d, y, mo,
                          apc_days_in_month(y, mo));
    if (h > 23)
        return apc_seterr(err, errsz, APC_ERANGE, "time \"%s\" has hour %02d out of range 00-23", s,
                          h);
    if (mi > 59)
        return apc_seterr(err, errsz, APC_ERANGE, "time \"%s\" has minute %02d out of range 00-59",
                          s, mi);
    if (sec > 59)
        return apc_seterr(err, errsz, APC_ERANGE, "time \"%s\" has second %02d out of range 00-59",
                          s, sec);
    days = apc_days_from_civil(y, mo, d);
    v = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000 + ms;
    *out_ms = v;
    return 0;
}

int apc_time_format_iso8601(int64_t ms, int32_t offset_s, char *buf, size_t size)
{
    char tmp[APC_ISO8601_BUFSZ];
    char offs[16];
    int64_t local_s, days, y, secs;
    int m, d, frac, w;

    if (buf == NULL)
        return APC_EINVAL;
    if (size > 0)
        buf[0] = '\0';
    if (offset_s <= -360000 || offset_s >= 360000)
        return APC_ERANGE;
    /* Limit to the years we print with four digits; also keeps the sums below in range. */
    if (ms < INT64_C(-62167219200000) - APC_MS_PER_DAY ||
        ms > INT64_C(253402300799999) + APC_MS_PER_DAY)
        return APC_ERANGE;
    local_s = apc_floor_div(ms, 1000) + offset_s;
    frac = (int)apc_floor_mod(ms, 1000);
    days = apc_floor_div(local_s, 86400);
    secs = local_s - days * 86400;
    apc_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return APC_ERANGE;
    if (offset_s == 0) {
        memcpy(offs, "Z", 2);
    } else {
        int32_t a = offset_s < 0 ? -offset_s : offset_s;
        char sign = offset_s < 0 ? '-' : '+';
        if (a % 60 == 0)
            (void)snprintf(offs, sizeof offs, "%c%02d:%02d", sign, (int)(a / 3600),
                           (int)(a / 60 % 60));
        else
            (void)snprintf(offs, sizeof offs, "%c%02d:%02d:%02d", sign, (int)(a / 3600),
                           (int)(a / 60 % 60), (int)(a % 60));
    }
    if (frac != 0)
        w = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s", (int)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), frac, offs);
    else
        w = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d%s", (int)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), offs);
    if (w < 0 || (size_t)w >= sizeof tmp)
        return APC_ETOOBIG;
    if ((size_t)w + 1 > size)
        return APC_ETOOBIG;
    memcpy(buf, tmp, (size_t)w + 1);
    return 0;
}
