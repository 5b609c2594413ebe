/*
 * apc_time.h - instants, durations and sizes: parsing and formatting of the
 * values users write in the config ("15m", "64MiB", "2026-03-08T02:30:00Z")
 * and the calendar arithmetic the scheduler builds on.
 *
 * Why this way: every instant in ApcSched is an int64_t count of Unix
 * milliseconds in UTC; local time exists only at the edges (apc_tz.h). The
 * calendar functions are the proleptic Gregorian ones (Howard Hinnant's
 * days_from_civil), exact for any year an int64_t can hold, so nothing here
 * depends on the C library's time_t, gmtime or locale.
 *
 * Thread safety: pure functions; any thread.
 */
#ifndef APC_TIME_H
#define APC_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "No instant": the value of an unset time field. */
#define APC_TIME_NONE INT64_MIN

/* Milliseconds per unit, for readable arithmetic. */
#define APC_MS_PER_S INT64_C(1000)
#define APC_MS_PER_MIN INT64_C(60000)
#define APC_MS_PER_HOUR INT64_C(3600000)
#define APC_MS_PER_DAY INT64_C(86400000)

/* Buffer sizes that always suffice for the formatters below. */
#define APC_DURATION_BUFSZ 40
#define APC_ISO8601_BUFSZ 40

/*
 * Parses a duration: one or more <digits><unit> groups with units ms, s, m,
 * h, d in descending order, each at most once, no sign, no spaces ("250ms",
 * "30s", "15m", "1h30m", "2d", "0s"). Returns 0 and the value in *out_ms, or
 * APC_ESYNTAX (malformed) / APC_ERANGE (does not fit in int64_t ms) with the
 * reason in err, e.g.
 *   duration "5x" has an unknown unit "x" (use ms, s, m, h or d)
 * *out_ms is written only on success.
 */
int apc_duration_parse(const char *s, int64_t *out_ms, char *err, size_t errsz);

/*
 * Formats a non-negative duration in the form apc_duration_parse reads back,
 * largest units first, zero groups left out: 5400000 -> "1h30m", 0 -> "0s",
 * 1500 -> "1s500ms". Returns 0, APC_EINVAL for a negative value, or
 * APC_ETOOBIG when buf is too small (buf is then set to "" if size > 0).
 * APC_DURATION_BUFSZ always suffices.
 */
int apc_duration_format(int64_t ms, char *buf, size_t size);

/*
 * Parses a byte size: digits, optionally followed by one unit: B, KiB, MiB,
 * GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000); units are
 * case-sensitive because "Mb" (megabit) is not "MB". "512", "512B", "64KiB",
 * "1MiB", "2GiB". Returns 0, APC_ESYNTAX or APC_ERANGE (overflows uint64_t);
 * the reason goes into err.
 */
int apc_size_parse(const char *s, uint64_t *out_bytes, char *err, size_t errsz);

/*
 * Parses an RFC 3339 / ISO-8601 instant with a mandatory offset:
 * "2026-03-08T02:30:00Z", "2026-03-08T02:30:00+01:00", an optional fraction
 * of 1-9 digits after the seconds ("...:00.123Z", truncated to milliseconds).
 * 't' and 'z' are accepted in lower case, as RFC 3339 allows. Years
 * 0000-9999. Returns 0 and Unix ms UTC, or APC_ESYNTAX / APC_ERANGE with the
 * reason in err (a missing offset is an error: a bare local time is
 * ambiguous for a service that may run in another zone).
 */
int apc_time_parse_iso8601(const char *s, int64_t *out_ms, char *err, size_t errsz);

/*
 * Formats ms (Unix ms UTC) as local time at the given UTC offset: offset 0
 * gives "2026-03-08T07:00:00Z", otherwise "2026-03-08T03:00:00-04:00";
 * ".123" is printed only when the milliseconds are non-zero. An offset that
 * is not a whole number of minutes (historic local mean time) is printed as
 * +hh:mm:ss so that the text still names the exact instant. Returns 0,
 * APC_ERANGE if the local year is outside 0000-9999 or |offset| >= 100h,
 * APC_ETOOBIG if buf is too small (APC_ISO8601_BUFSZ always suffices).
 */
int apc_time_format_iso8601(int64_t ms, int32_t offset_s, char *buf, size_t size);

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1-12, d 1-31). */
int64_t apc_days_from_civil(int64_t y, int m, int d);

/* The inverse of apc_days_from_civil. */
void apc_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Returns 1 if y is a Gregorian leap year. */
int apc_is_leap_year(int64_t y);

/* Number of days in month m (1-12) of year y. */
int apc_days_in_month(int64_t y, int m);

/* Day of the week of a day number from apc_days_from_civil: 0 = Sunday .. 6. */
int apc_weekday_from_days(int64_t days);

/* Floor division and modulo, because C's / and % round toward zero. */
int64_t apc_floor_div(int64_t a, int64_t b);
int64_t apc_floor_mod(int64_t a, int64_t b);

#endif /* APC_TIME_H */
