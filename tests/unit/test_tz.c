/*
 * test_tz.c - time zone providers (apc_tz.h): UTC, POSIX TZ rules, and on
 * POSIX systems a cross-check of the rules against the system's tz database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <time.h>
#endif

#include "apc_error.h"
#include "apc_time.h"
#include "apc_tz.h"

#define NEW_YORK "EST5EDT,M3.2.0,M11.1.0"
#define BERLIN "CET-1CEST,M3.5.0,M10.5.0/3"

static int64_t iso_s(const char *s)
{
    int64_t v = 0;
    char err[200] = "";
    if (apc_time_parse_iso8601(s, &v, err, sizeof err) != 0)
        fail_msg("%s: %s", s, err);
    return v / 1000;
}

static apc_tz_rules_t rules_of(const char *spec)
{
    apc_tz_rules_t r;
    char err[200] = "";
    memset(&r, 0, sizeof r);
    if (apc_tz_rules_parse(spec, &r, err, sizeof err) != 0)
        fail_msg("%s: %s", spec, err);
    return r;
}

static int32_t offset_at(const apc_tz_t *tz, const char *when)
{
    int32_t o = 12345;
    assert_int_equal(tz->offset_at(tz, iso_s(when), &o), 0);
    return o;
}

static void expect_rules_error(const char *spec, int code, const char *text)
{
    apc_tz_rules_t r;
    char err[200] = "";
    assert_int_equal(apc_tz_rules_parse(spec, &r, err, sizeof err), code);
    assert_string_equal(err, text);
}

static void utc_offset_is_always_zero(void **state)
{
    (void)state;
    assert_int_equal(offset_at(apc_tz_utc(), "2026-07-01T12:00:00Z"), 0);
    assert_string_equal(apc_tz_utc()->name, "UTC");
}

static void new_york_rules_parse_to_iso_offsets(void **state)
{
    apc_tz_rules_t r = rules_of(NEW_YORK);
    (void)state;
    assert_int_equal(r.std_offset_s, -18000);
    assert_int_equal(r.dst_offset_s, -14400);
    assert_int_equal(r.has_dst, 1);
    assert_int_equal(r.start.kind, APC_TZ_DATE_MWD);
    assert_int_equal(r.start.month, 3);
    assert_int_equal(r.start.week, 2);
    assert_int_equal(r.start.wday, 0);
    assert_int_equal(r.start.time_s, 7200);
    assert_int_equal(r.end.month, 11);
    assert_int_equal(r.end.week, 1);
    assert_string_equal(r.name, NEW_YORK);
}

static void new_york_changes_at_the_2026_transitions(void **state)
{
    apc_tz_rules_t r = rules_of(NEW_YORK);
    apc_tz_t tz;
    (void)state;
    apc_tz_from_rules(&tz, &r);
    assert_string_equal(tz.name, NEW_YORK);
    /* 2026-03-08 02:00 EST = 07:00Z: clocks go forward to 03:00 EDT. */
    assert_int_equal(offset_at(&tz, "2026-03-08T06:59:59Z"), -18000);
    assert_int_equal(offset_at(&tz, "2026-03-08T07:00:00Z"), -14400);
    /* 2026-11-01 02:00 EDT = 06:00Z: clocks go back to 01:00 EST. */
    assert_int_equal(offset_at(&tz, "2026-11-01T05:59:59Z"), -14400);
    assert_int_equal(offset_at(&tz, "2026-11-01T06:00:00Z"), -18000);
    assert_int_equal(offset_at(&tz, "2026-01-01T00:00:00Z"), -18000);
    assert_int_equal(offset_at(&tz, "2026-12-31T23:59:59Z"), -18000);
}

static void berlin_changes_at_the_2026_transitions(void **state)
{
    apc_tz_rules_t r = rules_of(BERLIN);
    apc_tz_t tz;
    (void)state;
    apc_tz_from_rules(&tz, &r);
    /* 2026-03-29 02:00 CET = 01:00Z: forward to 03:00 CEST. */
    assert_int_equal(offset_at(&tz, "2026-03-29T00:59:59Z"), 3600);
    assert_int_equal(offset_at(&tz, "2026-03-29T01:00:00Z"), 7200);
    /* 2026-10-25 03:00 CEST = 01:00Z: back to 02:00 CET. */
    assert_int_equal(offset_at(&tz, "2026-10-25T00:59:59Z"), 7200);
    assert_int_equal(offset_at(&tz, "2026-10-25T01:00:00Z"), 3600);
}

static void southern_hemisphere_dst_spans_new_year(void **state)
{
    apc_tz_rules_t r = rules_of("AEST-10AEDT,M10.1.0,M4.1.0/3");
    apc_tz_t tz;
    (void)state;
    apc_tz_from_rules(&tz, &r);
    assert_int_equal(offset_at(&tz, "2026-01-15T00:00:00Z"), 39600);
    assert_int_equal(offset_at(&tz, "2026-04-04T15:59:59Z"), 39600);
    assert_int_equal(offset_at(&tz, "2026-04-04T16:00:00Z"), 36000);
    assert_int_equal(offset_at(&tz, "2026-10-03T15:59:59Z"), 36000);
    assert_int_equal(offset_at(&tz, "2026-10-03T16:00:00Z"), 39600);
    assert_int_equal(offset_at(&tz, "2026-12-31T13:00:00Z"), 39600);
}

static void julian_dates_skip_or_count_february_29(void **state)
{
    /* J60 is always March 1; 59 (zero-based) is March 1 in common years, Feb 29 in leap years. */
    apc_tz_rules_t j1 = rules_of("AAA0BBB,J60/0,J300/0");
    apc_tz_rules_t j0 = rules_of("AAA0BBB,59/0,299/0");
    apc_tz_t t1, t0;
    (void)state;
    apc_tz_from_rules(&t1, &j1);
    apc_tz_from_rules(&t0, &j0);
    assert_int_equal(offset_at(&t1, "2028-02-29T12:00:00Z"), 0);
    assert_int_equal(offset_at(&t1, "2028-03-01T00:00:00Z"), 3600);
    assert_int_equal(offset_at(&t0, "2028-02-29T00:00:00Z"), 3600);
    assert_int_equal(offset_at(&t0, "2027-02-28T23:59:59Z"), 0);
    assert_int_equal(offset_at(&t0, "2027-03-01T00:00:00Z"), 3600);
}

static void dst_all_year_rule_stays_in_dst(void **state)
{
    apc_tz_rules_t r = rules_of("EST5EDT,0/0,J365/25");
    apc_tz_t tz;
    (void)state;
    apc_tz_from_rules(&tz, &r);
    assert_int_equal(offset_at(&tz, "2026-01-01T05:00:00Z"), -14400);
    assert_int_equal(offset_at(&tz, "2026-07-01T00:00:00Z"), -14400);
    assert_int_equal(offset_at(&tz, "2027-01-01T04:59:59Z"), -14400);
    assert_int_equal(offset_at(&tz, "2027-01-01T05:00:00Z"), -14400);
}

static void quoted_names_and_minute_offsets_parse(void **state)
{
    apc_tz_rules_t r = rules_of("<+0330>-3:30");
    apc_tz_rules_t n = rules_of("NST3:30NDT,M3.2.0,M11.1.0");
    (void)state;
    assert_int_equal(r.std_offset_s, 12600);
    assert_int_equal(r.has_dst, 0);
    assert_int_equal(n.std_offset_s, -12600);
    assert_int_equal(n.dst_offset_s, -9000);
}

static void explicit_daylight_offset_is_used(void **state)
{
    apc_tz_rules_t r = rules_of("LHST-10:30LHDT-11,M10.1.0,M4.1.0");
    (void)state;
    assert_int_equal(r.std_offset_s, 37800);
    assert_int_equal(r.dst_offset_s, 39600);
}

static void rules_errors_are_exact(void **state)
{
    (void)state;
    expect_rules_error("", APC_ESYNTAX, "time zone is empty");
    expect_rules_error("EST", APC_ESYNTAX,
                       "time zone \"EST\" has no UTC offset after the standard name (e.g. EST5 "
                       "or CET-1)");
    expect_rules_error("E5", APC_ESYNTAX,
                       "time zone \"E5\": the standard name \"E\" must be at least 3 letters");
    expect_rules_error("<+03-3", APC_ESYNTAX,
                       "time zone \"<+03-3\": the standard name that starts with '<' has no '>'");
    expect_rules_error("EST5EDT", APC_ESYNTAX,
                       "time zone \"EST5EDT\" names a daylight time but gives no rule (add e.g. "
                       ",M3.2.0,M11.1.0)");
    expect_rules_error("EST5EDT,M3.2.0", APC_ESYNTAX,
                       "time zone \"EST5EDT,M3.2.0\" needs two dates after the daylight name "
                       "(start,end)");
    expect_rules_error("EST5EDT,M13.2.0,M11.1.0", APC_ERANGE,
                       "time zone \"EST5EDT,M13.2.0,M11.1.0\": the start date M13.2.0 is out of "
                       "range (month 1-12, week 1-5, weekday 0-6)");
    expect_rules_error("EST5EDT,M3.2.0,X", APC_ESYNTAX,
                       "time zone \"EST5EDT,M3.2.0,X\": the end date must be Mm.w.d, Jn or n "
                       "(e.g. M3.2.0)");
    expect_rules_error("EST5EDT,J0,J300", APC_ERANGE,
                       "time zone \"EST5EDT,J0,J300\": the start date J0 is out of range "
                       "(J1-J365)");
    expect_rules_error("EST25", APC_ERANGE,
                       "time zone \"EST25\": the standard offset is out of range (hours 0-24, "
                       "minutes and seconds 0-59)");
    expect_rules_error("EST5EDT,M3.2.0/168,M11.1.0", APC_ERANGE,
                       "time zone \"EST5EDT,M3.2.0/168,M11.1.0\": the time of a change is out of "
                       "range (hours 0-167, minutes and seconds 0-59)");
    expect_rules_error("EST5:", APC_ESYNTAX,
                       "time zone \"EST5:\": the standard offset must be written [+-]hh[:mm[:ss]]");
    expect_rules_error("EST5EDT,M3.2.0,M11.1.0x", APC_ESYNTAX,
                       "time zone \"EST5EDT,M3.2.0,M11.1.0x\" has unexpected text \"x\"");
    expect_rules_error(
        "UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0UTC0U"
        "TC0",
        APC_ETOOBIG, "time zone \"UTC0UTC0UTC0UTC0UTC0...\" is longer than 79 bytes");
}

static void rules_changing_twice_within_a_week_are_rejected(void **state)
{
    (void)state;
    /* A 26-hour summer: Jan 6 02:00 to Jan 7 05:00. */
    expect_rules_error("<+03>-3<+04>,J6,5/29", APC_ERANGE,
                       "time zone \"<+03>-3<+04>,J6,5/29\" changes its UTC offset twice within 7 "
                       "days");
    expect_rules_error("AAA0BBB,M3.2.0,M3.3.0/1", APC_ERANGE,
                       "time zone \"AAA0BBB,M3.2.0,M3.3.0/1\" changes its UTC offset twice within "
                       "7 days");
}

static void offset_at_ms_floors_to_the_second(void **state)
{
    apc_tz_rules_t r = rules_of(NEW_YORK);
    apc_tz_t tz;
    int32_t o = 0;
    (void)state;
    apc_tz_from_rules(&tz, &r);
    assert_int_equal(apc_tz_offset_at_ms(&tz, iso_s("2026-03-08T07:00:00Z") * 1000 - 1, &o), 0);
    assert_int_equal(o, -18000);
    assert_int_equal(apc_tz_offset_at_ms(&tz, iso_s("2026-03-08T07:00:00Z") * 1000, &o), 0);
    assert_int_equal(o, -14400);
    assert_int_equal(apc_tz_offset_at_ms(NULL, 0, &o), APC_EINVAL);
}

#ifndef _WIN32
/*
 * Compares the rules zone with the C library's tz database every 15 minutes
 * over 2025-2027 (and exactly around each transition).
 */
static void cross_check_with_libc(const char *olson, const char *spec)
{
    apc_tz_rules_t r = rules_of(spec);
    apc_tz_t tz;
    const apc_tz_t *libc = apc_tz_libc_local();
    int64_t t, from = iso_s("2025-01-01T00:00:00Z"), to = iso_s("2028-01-01T00:00:00Z");
    int changes = 0;
    int32_t prev = 0;

    printf("native cross-check: rules \"%s\" against the system's tz database for %s\n", spec,
           olson);
    apc_tz_from_rules(&tz, &r);
    assert_int_equal(setenv("TZ", olson, 1), 0);
    tzset();
    for (t = from; t < to; t += 900) {
        int32_t a = 1, b = 2;
        assert_int_equal(tz.offset_at(&tz, t, &a), 0);
        assert_int_equal(libc->offset_at(libc, t, &b), 0);
        if (a != b)
            fail_msg("%s at %lld: rules %d, libc %d", olson, (long long)t, (int)a, (int)b);
        if (t != from && a != prev) {
            /* Check the exact second of the change too. */
            int64_t s;
            for (s = t - 900; s <= t; s++) {
                assert_int_equal(tz.offset_at(&tz, s, &a), 0);
                assert_int_equal(libc->offset_at(libc, s, &b), 0);
                assert_int_equal(a, b);
            }
            changes++;
        }
        prev = a;
    }
    assert_int_equal(changes, 6); /* two per year for 2025, 2026, 2027 */
    unsetenv("TZ");
    tzset();
}

static void rules_match_libc_for_new_york(void **state)
{
    (void)state;
    cross_check_with_libc("America/New_York", NEW_YORK);
}

static void rules_match_libc_for_berlin(void **state)
{
    (void)state;
    cross_check_with_libc("Europe/Berlin", BERLIN);
}

static void libc_zone_reports_historic_local_mean_time(void **state)
{
    int32_t o = 0;
    const apc_tz_t *libc = apc_tz_libc_local();
    (void)state;
    printf("native only: libc local time\n");
    assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
    tzset();
    assert_int_equal(libc->offset_at(libc, iso_s("1800-01-01T00:00:00Z"), &o), 0);
    assert_int_equal(o, -17762);
    assert_int_equal(libc->offset_at(libc, INT64_MAX, &o), APC_ERANGE);
    unsetenv("TZ");
    tzset();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utc_offset_is_always_zero),
        cmocka_unit_test(new_york_rules_parse_to_iso_offsets),
        cmocka_unit_test(new_york_changes_at_the_2026_transitions),
        cmocka_unit_test(berlin_changes_at_the_2026_transitions),
        cmocka_unit_test(southern_hemisphere_dst_spans_new_year),
        cmocka_unit_test(julian_dates_skip_or_count_february_29),
        cmocka_unit_test(dst_all_year_rule_stays_in_dst),
        cmocka_unit_test(quoted_names_and_minute_offsets_parse),
        cmocka_unit_test(explicit_daylight_offset_is_used),
        cmocka_unit_test(rules_errors_are_exact),
        cmocka_unit_test(rules_changing_twice_within_a_week_are_rejected),
        cmocka_unit_test(offset_at_ms_floors_to_the_second),
#ifndef _WIN32
        cmocka_unit_test(rules_match_libc_for_new_york),
        cmocka_unit_test(rules_match_libc_for_berlin),
        cmocka_unit_test(libc_zone_reports_historic_local_mean_time),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
