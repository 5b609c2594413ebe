/*
 * test_time.c - calendar arithmetic, durations, sizes and ISO-8601 (apc_time.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "apc_error.h"
#include "apc_time.h"

/* ---- calendar ---------------------------------------------------------- */

static void days_from_civil_counts_from_the_unix_epoch(void **state)
{
    (void)state;
    assert_int_equal(apc_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(apc_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(apc_days_from_civil(2026, 3, 8), 20520);
    assert_int_equal(apc_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(apc_days_from_civil(0, 1, 1), -719528);
}

static void civil_from_days_inverts_days_from_civil(void **state)
{
    (void)state;
    for (int64_t days = -1000000; days <= 3000000; days += 97) {
        int64_t y;
        int m, d;
        apc_civil_from_days(days, &y, &m, &d);
        assert_true(m >= 1 && m <= 12);
        assert_true(d >= 1 && d <= apc_days_in_month(y, m));
        assert_int_equal(apc_days_from_civil(y, m, d), days);
    }
}

static void leap_years_follow_the_gregorian_rule(void **state)
{
    (void)state;
    assert_true(apc_is_leap_year(2024));
    assert_false(apc_is_leap_year(2026));
    assert_false(apc_is_leap_year(1900));
    assert_true(apc_is_leap_year(2000));
    assert_int_equal(apc_days_in_month(2028, 2), 29);
    assert_int_equal(apc_days_in_month(2100, 2), 28);
    assert_int_equal(apc_days_in_month(2026, 4), 30);
    assert_int_equal(apc_days_in_month(2026, 13), 0);
}

static void weekday_of_2026_03_08_is_sunday(void **state)
{
    (void)state;
    assert_int_equal(apc_weekday_from_days(apc_days_from_civil(2026, 3, 8)), 0);
    assert_int_equal(apc_weekday_from_days(0), 4); /* 1970-01-01 was a Thursday */
    assert_int_equal(apc_weekday_from_days(-1), 3);
}

static void floor_division_rounds_toward_minus_infinity(void **state)
{
    (void)state;
    assert_int_equal(apc_floor_div(-1, 1000), -1);
    assert_int_equal(apc_floor_mod(-1, 1000), 999);
    assert_int_equal(apc_floor_div(1999, 1000), 1);
    assert_int_equal(apc_floor_mod(-7, -3), -1);
}

/* ---- durations --------------------------------------------------------- */

static int64_t dur(const char *s)
{
    int64_t v = -1;
    char err[200] = "";
    int rc = apc_duration_parse(s, &v, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: %s", s, err);
    return v;
}

static void expect_duration_error(const char *s, int code, const char *text)
{
    int64_t v = 12345;
    char err[200] = "";
    assert_int_equal(apc_duration_parse(s, &v, err, sizeof err), code);
    assert_string_equal(err, text);
    assert_int_equal(v, 12345); /* untouched on error */
}

static void duration_accepts_every_unit(void **state)
{
    (void)state;
    assert_int_equal(dur("250ms"), 250);
    assert_int_equal(dur("30s"), 30000);
    assert_int_equal(dur("15m"), 900000);
    assert_int_equal(dur("1h30m"), 5400000);
    assert_int_equal(dur("2d"), 172800000);
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("1d2h3m4s5ms"), 93784005);
    assert_int_equal(dur("90s"), 90000);
}

static void duration_with_an_unknown_unit_is_rejected(void **state)
{
    (void)state;
    expect_duration_error("5x", APC_ESYNTAX,
                          "duration \"5x\" has an unknown unit \"x\" (use ms, s, m, h or d)");
    expect_duration_error("5sec", APC_ESYNTAX,
                          "duration \"5sec\" has an unknown unit \"sec\" (use ms, s, m, h or d)");
}

static void duration_without_a_unit_is_rejected(void **state)
{
    (void)state;
    expect_duration_error("15", APC_ESYNTAX, "duration \"15\" has no unit (use ms, s, m, h or d)");
}

static void empty_duration_is_rejected(void **state)
{
    (void)state;
    expect_duration_error("", APC_ESYNTAX, "duration is empty (use ms, s, m, h or d)");
}

static void duration_with_sign_or_space_is_rejected(void **state)
{
    (void)state;
    expect_duration_error("-5s", APC_ESYNTAX,
                          "duration \"-5s\" must be numbers with units, like 90s or 1h30m");
    expect_duration_error("1h 30m", APC_ESYNTAX,
                          "duration \"1h 30m\" must be numbers with units, like 90s or 1h30m");
    expect_duration_error(" 5s", APC_ESYNTAX,
                          "duration \" 5s\" must be numbers with units, like 90s or 1h30m");
    expect_duration_error("5.5s", APC_ESYNTAX,
                          "duration \"5.5s\" must be numbers with units, like 90s or 1h30m");
}

static void duration_units_must_descend(void **state)
{
    (void)state;
    expect_duration_error("30m1h", APC_ESYNTAX,
                          "duration \"30m1h\" has units out of order (write d, h, m, s, ms from "
                          "largest to smallest)");
}

static void duration_unit_may_appear_once(void **state)
{
    (void)state;
    expect_duration_error("1h1h", APC_ESYNTAX, "duration \"1h1h\" repeats the unit \"h\"");
}

static void duration_overflow_is_detected(void **state)
{
    (void)state;
    expect_duration_error("106751991168d", APC_ERANGE, "duration \"106751991168d\" is too large");
    expect_duration_error("99999999999999999999ms", APC_ERANGE,
                          "duration \"99999999999999999999ms\" is too large");
    expect_duration_error("106751991167d7h12m55s808ms", APC_ERANGE,
                          "duration \"106751991167d7h12m55s808ms\" is too large");
    assert_int_equal(dur("9223372036854775807ms"), INT64_MAX);
}

static void duration_format_uses_largest_units_first(void **state)
{
    char buf[APC_DURATION_BUFSZ];
    (void)state;
    assert_int_equal(apc_duration_format(5400000, buf, sizeof buf), 0);
    assert_string_equal(buf, "1h30m");
    assert_int_equal(apc_duration_format(0, buf, sizeof buf), 0);
    assert_string_equal(buf, "0s");
    assert_int_equal(apc_duration_format(1500, buf, sizeof buf), 0);
    assert_string_equal(buf, "1s500ms");
    assert_int_equal(apc_duration_format(172800000, buf, sizeof buf), 0);
    assert_string_equal(buf, "2d");
    assert_int_equal(apc_duration_format(INT64_MAX, buf, sizeof buf), 0);
    assert_string_equal(buf, "106751991167d7h12m55s807ms");
}

static void duration_format_round_trips(void **state)
{
    char buf[APC_DURATION_BUFSZ];
    (void)state;
    for (int64_t v = 0; v < INT64_MAX / 3; v = v * 3 + 7) {
        assert_int_equal(apc_duration_format(v, buf, sizeof buf), 0);
        assert_int_equal(dur(buf), v);
    }
}

static void duration_format_rejects_negative_and_small_buffers(void **state)
{
    char buf[6] = "xxxxx";
    (void)state;
    assert_int_equal(apc_duration_format(-1, buf, sizeof buf), APC_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(apc_duration_format(5400000, buf, sizeof buf - 1), APC_ETOOBIG);
    assert_string_equal(buf, "");
    assert_int_equal(apc_duration_format(5400000, buf, sizeof buf), 0);
    assert_string_equal(buf, "1h30m");
}

/* ---- sizes ------------------------------------------------------------- */

static uint64_t size_of(const char *s)
{
    uint64_t v = 0;
    char err[200] = "";
    if (apc_size_parse(s, &v, err, sizeof err) != 0)
        fail_msg("%s: %s", s, err);
    return v;
}

static void size_accepts_binary_and_decimal_units(void **state)
{
    (void)state;
    assert_int_equal(size_of("512"), 512);
    assert_int_equal(size_of("512B"), 512);
    assert_int_equal(size_of("64KiB"), 65536);
    assert_int_equal(size_of("1MiB"), 1048576);
    assert_int_equal(size_of("2GiB"), UINT64_C(2147483648));
    assert_int_equal(size_of("1TiB"), UINT64_C(1099511627776));
    assert_int_equal(size_of("64KB"), 64000);
    assert_int_equal(size_of("3MB"), 3000000);
    assert_int_equal(size_of("2GB"), UINT64_C(2000000000));
    assert_int_equal(size_of("0"), 0);
}

static void size_errors_are_exact(void **state)
{
    uint64_t v = 7;
    char err[200];
    (void)state;
    assert_int_equal(apc_size_parse("5x", &v, err, sizeof err), APC_ESYNTAX);
    assert_string_equal(err, "size \"5x\" has an unknown unit \"x\" (use B, KiB, MiB, GiB, TiB, "
                             "KB, MB, GB or TB)");
    assert_int_equal(apc_size_parse("5mb", &v, err, sizeof err), APC_ESYNTAX);
    assert_string_equal(err, "size \"5mb\" has an unknown unit \"mb\" (use B, KiB, MiB, GiB, TiB, "
                             "KB, MB, GB or TB)");
    assert_int_equal(apc_size_parse("", &v, err, sizeof err), APC_ESYNTAX);
    assert_string_equal(err, "size is empty");
    assert_int_equal(apc_size_parse("MiB", &v, err, sizeof err), APC_ESYNTAX);
    assert_string_equal(err, "size \"MiB\" must be a number with an optional unit, like 64KiB");
    assert_int_equal(apc_size_parse("16777216TiB", &v, err, sizeof err), APC_ERANGE);
    assert_string_equal(err, "size \"16777216TiB\" is too large");
    assert_int_equal(apc_size_parse("18446744073709551616", &v, err, sizeof err), APC_ERANGE);
    assert_string_equal(err, "size \"18446744073709551616\" is too large");
    assert_int_equal(v, 7);
}

/* ---- ISO-8601 ---------------------------------------------------------- */

static int64_t iso(const char *s)
{
    int64_t v = 0;
    char err[200] = "";
    if (apc_time_parse_iso8601(s, &v, err, sizeof err) != 0)
        fail_msg("%s: %s", s, err);
    return v;
}

static void expect_iso_error(const char *s, int code, const char *text)
{
    int64_t v = 99;
    char err[200] = "";
    assert_int_equal(apc_time_parse_iso8601(s, &v, err, sizeof err), code);
    assert_string_equal(err, text);
    assert_int_equal(v, 99);
}

static void iso8601_parses_z_and_offsets(void **state)
{
    (void)state;
    assert_int_equal(iso("2026-03-08T02:30:00Z"), INT64_C(1772937000000));
    assert_int_equal(iso("2026-03-08T03:30:00+01:00"), INT64_C(1772937000000));
    assert_int_equal(iso("2026-03-07T21:30:00-05:00"), INT64_C(1772937000000));
    assert_int_equal(iso("2026-03-08t02:30:00z"), INT64_C(1772937000000));
    assert_int_equal(iso("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(iso("1969-12-31T23:59:59.999Z"), -1);
}

static void iso8601_fraction_is_truncated_to_milliseconds(void **state)
{
    (void)state;
    assert_int_equal(iso("1970-01-01T00:00:00.123Z"), 123);
    assert_int_equal(iso("1970-01-01T00:00:00.5Z"), 500);
    assert_int_equal(iso("1970-01-01T00:00:00.123456789Z"), 123);
}

static void iso8601_without_offset_is_rejected(void **state)
{
    (void)state;
    expect_iso_error("2026-03-08T02:30:00", APC_ESYNTAX,
                     "time \"2026-03-08T02:30:00\" has no UTC offset (add Z or an offset like "
                     "+01:00)");
}

static void iso8601_malformed_text_is_rejected(void **state)
{
    (void)state;
    expect_iso_error("2026-3-8T02:30:00Z", APC_ESYNTAX,
                     "time \"2026-3-8T02:30:00Z\" is not ISO-8601 (expected e.g. "
                     "2026-03-08T02:30:00Z or 2026-03-08T02:30:00+01:00)");
    expect_iso_error("2026-03-08 02:30:00Z", APC_ESYNTAX,
                     "time \"2026-03-08 02:30:00Z\" is not ISO-8601 (expected e.g. "
                     "2026-03-08T02:30:00Z or 2026-03-08T02:30:00+01:00)");
    expect_iso_error("2026-03-08T02:30:00+0100", APC_ESYNTAX,
                     "time \"2026-03-08T02:30:00+0100\" has a malformed UTC offset (write Z, "
                     "+hh:mm or -hh:mm)");
    expect_iso_error("2026-03-08T02:30:00Zulu", APC_ESYNTAX,
                     "time \"2026-03-08T02:30:00Zulu\" has trailing text after the UTC offset");
    expect_iso_error("2026-03-08T02:30:00.Z", APC_ESYNTAX,
                     "time \"2026-03-08T02:30:00.Z\" has a fraction of second that is not 1-9 "
                     "digits");
}

static void iso8601_out_of_range_fields_are_rejected(void **state)
{
    (void)state;
    expect_iso_error("2026-02-29T00:00:00Z", APC_ERANGE,
                     "time \"2026-02-29T00:00:00Z\" has day 29, but 2026-02 has 28 days");
    expect_iso_error("2026-13-01T00:00:00Z", APC_ERANGE,
                     "time \"2026-13-01T00:00:00Z\" has month 13 out of range 01-12");
    expect_iso_error("2026-03-08T24:00:00Z", APC_ERANGE,
                     "time \"2026-03-08T24:00:00Z\" has hour 24 out of range 00-23");
    expect_iso_error("2026-03-08T02:60:00Z", APC_ERANGE,
                     "time \"2026-03-08T02:60:00Z\" has minute 60 out of range 00-59");
    expect_iso_error("2026-03-08T02:30:60Z", APC_ERANGE,
                     "time \"2026-03-08T02:30:60Z\" has second 60 out of range 00-59");
    expect_iso_error("2026-03-08T02:30:00+24:00", APC_ERANGE,
                     "time \"2026-03-08T02:30:00+24:00\" has UTC offset out of range (-23:59 to "
                     "+23:59)");
}

static void iso8601_format_prints_z_offset_and_millis(void **state)
{
    char buf[APC_ISO8601_BUFSZ];
    (void)state;
    assert_int_equal(apc_time_format_iso8601(INT64_C(1772937000000), 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "2026-03-08T02:30:00Z");
    assert_int_equal(apc_time_format_iso8601(INT64_C(1772953200000), -14400, buf, sizeof buf), 0);
    assert_string_equal(buf, "2026-03-08T03:00:00-04:00");
    assert_int_equal(apc_time_format_iso8601(INT64_C(1772937000123), 3600, buf, sizeof buf), 0);
    assert_string_equal(buf, "2026-03-08T03:30:00.123+01:00");
    assert_int_equal(apc_time_format_iso8601(-1, 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    assert_int_equal(apc_time_format_iso8601(0, 19800, buf, sizeof buf), 0);
    assert_string_equal(buf, "1970-01-01T05:30:00+05:30");
}

static void iso8601_format_keeps_seconds_of_historic_offsets(void **state)
{
    char buf[APC_ISO8601_BUFSZ];
    (void)state;
    /* New York's local mean time before 1883 was UTC-4:56:02. */
    assert_int_equal(apc_time_format_iso8601(0, -17762, buf, sizeof buf), 0);
    assert_string_equal(buf, "1969-12-31T19:03:58-04:56:02");
}

static void iso8601_format_round_trips(void **state)
{
    char buf[APC_ISO8601_BUFSZ];
    (void)state;
    for (int64_t ms = INT64_C(-62000000000000); ms < INT64_C(253000000000000);
         ms += INT64_C(987654321987)) {
        assert_int_equal(apc_time_format_iso8601(ms, -18000, buf, sizeof buf), 0);
        assert_int_equal(iso(buf), ms);
    }
}

static void iso8601_format_rejects_years_beyond_9999_and_small_buffers(void **state)
{
    char buf[APC_ISO8601_BUFSZ];
    (void)state;
    assert_int_equal(apc_time_format_iso8601(INT64_C(253402300800000), 0, buf, sizeof buf),
                     APC_ERANGE);
    assert_int_equal(apc_time_format_iso8601(INT64_C(253402300799000), 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    assert_int_equal(apc_time_format_iso8601(INT64_MIN, 0, buf, sizeof buf), APC_ERANGE);
    assert_int_equal(apc_time_format_iso8601(0, 0, buf, 20), APC_ETOOBIG);
    assert_string_equal(buf, "");
    assert_int_equal(apc_time_format_iso8601(0, 0, buf, 21), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(days_from_civil_counts_from_the_unix_epoch),
        cmocka_unit_test(civil_from_days_inverts_days_from_civil),
        cmocka_unit_test(leap_years_follow_the_gregorian_rule),
        cmocka_unit_test(weekday_of_2026_03_08_is_sunday),
        cmocka_unit_test(floor_division_rounds_toward_minus_infinity),
        cmocka_unit_test(duration_accepts_every_unit),
        cmocka_unit_test(duration_with_an_unknown_unit_is_rejected),
        cmocka_unit_test(duration_without_a_unit_is_rejected),
        cmocka_unit_test(empty_duration_is_rejected),
        cmocka_unit_test(duration_with_sign_or_space_is_rejected),
        cmocka_unit_test(duration_units_must_descend),
        cmocka_unit_test(duration_unit_may_appear_once),
        cmocka_unit_test(duration_overflow_is_detected),
        cmocka_unit_test(duration_format_uses_largest_units_first),
        cmocka_unit_test(duration_format_round_trips),
        cmocka_unit_test(duration_format_rejects_negative_and_small_buffers),
        cmocka_unit_test(size_accepts_binary_and_decimal_units),
        cmocka_unit_test(size_errors_are_exact),
        cmocka_unit_test(iso8601_parses_z_and_offsets),
        cmocka_unit_test(iso8601_fraction_is_truncated_to_milliseconds),
        cmocka_unit_test(iso8601_without_offset_is_rejected),
        cmocka_unit_test(iso8601_malformed_text_is_rejected),
        cmocka_unit_test(iso8601_out_of_range_fields_are_rejected),
        cmocka_unit_test(iso8601_format_prints_z_offset_and_millis),
        cmocka_unit_test(iso8601_format_keeps_seconds_of_historic_offsets),
        cmocka_unit_test(iso8601_format_round_trips),
        cmocka_unit_test(iso8601_format_rejects_years_beyond_9999_and_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
