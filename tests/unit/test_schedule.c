/*
 * test_schedule.c - schedule parsing, next fire times (UTC and across real
 * 2026 DST transitions) and the DST lint (apc_schedule.h).
 *
 * Fire times are asserted as ISO-8601 text in the zone's local time, so each
 * expectation reads like the wall clock a user would see.
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
#include "apc_schedule.h"
#include "apc_time.h"
#include "apc_tz.h"

#define NEW_YORK "EST5EDT,M3.2.0,M11.1.0"
#define BERLIN "CET-1CEST,M3.5.0,M10.5.0/3"

static apc_tz_rules_t ny_rules, berlin_rules;
static apc_tz_t ny, berlin;

static int setup_zones(void **state)
{
    char err[200];
    (void)state;
    if (apc_tz_rules_parse(NEW_YORK, &ny_rules, err, sizeof err) != 0 ||
        apc_tz_rules_parse(BERLIN, &berlin_rules, err, sizeof err) != 0)
        return -1;
    apc_tz_from_rules(&ny, &ny_rules);
    apc_tz_from_rules(&berlin, &berlin_rules);
    return 0;
}

static int64_t iso(const char *s)
{
    int64_t v = 0;
    char err[200] = "";
    if (apc_time_parse_iso8601(s, &v, err, sizeof err) != 0)
        fail_msg("%s: %s", s, err);
    return v;
}

static apc_schedule_t parse(const char *expr)
{
    apc_schedule_t s;
    char err[200] = "";
    memset(&s, 0, sizeof s);
    if (apc_schedule_parse(expr, &s, err, sizeof err) != 0)
        fail_msg("%s: %s", expr, err);
    return s;
}

/* Asserts the next n fire times of expr after `from`, written in tz's local time. */
static void expect_fires(const char *expr, const apc_tz_t *tz, const char *from, int n,
                         const char *const *want)
{
    apc_schedule_t s = parse(expr);
    int64_t t = iso(from), next = 0;
    char got[APC_ISO8601_BUFSZ];

    for (int i = 0; i < n; i++) {
        int32_t o = 0;
        int rc = apc_schedule_next(&s, t, tz, &next);
        if (rc != 0)
            fail_msg("%s: fire %d: %s", expr, i, apc_errname(rc));
        assert_int_equal(apc_tz_offset_at_ms(tz, next, &o), 0);
        assert_int_equal(apc_time_format_iso8601(next, o, got, sizeof got), 0);
        if (strcmp(got, want[i]) != 0)
            fail_msg("%s after %s: fire %d is %s, expected %s", expr, from, i, got, want[i]);
        assert_true(next > t);
        t = next;
    }
}

static void expect_error(const char *expr, int code, const char *text)
{
    apc_schedule_t s;
    char err[200] = "";
    s.kind = APC_SCHED_STARTUP;
    assert_int_equal(apc_schedule_parse(expr, &s, err, sizeof err), code);
    assert_string_equal(err, text);
    assert_int_equal(s.kind, APC_SCHED_STARTUP); /* untouched on error */
}

/* ---- parsing and matching in UTC -------------------------------------------- */

static void schedule_value_stays_below_64_bytes(void **state)
{
    (void)state;
    assert_true(sizeof(apc_schedule_t) < 64);
}

static void five_fields_fire_on_second_zero(void **state)
{
    static const char *const want[] = {"2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z",
                                       "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"};
    (void)state;
    expect_fires("*/15 * * * *", apc_tz_utc(), "2026-01-01T00:00:00Z", 4, want);
}

static void six_fields_put_seconds_first(void **state)
{
    static const char *const want[] = {"2026-01-01T00:00:10Z", "2026-01-01T00:00:40Z",
                                       "2026-01-01T00:01:10Z"};
    (void)state;
    expect_fires("10/30 * * * * *", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
}

static void next_is_strictly_after_a_fractional_instant(void **state)
{
    static const char *const want[] = {"2026-01-01T00:01:00Z"};
    static const char *const same[] = {"2026-01-01T00:01:00Z"};
    (void)state;
    expect_fires("* * * * *", apc_tz_utc(), "2026-01-01T00:00:59.999Z", 1, want);
    expect_fires("* * * * *", apc_tz_utc(), "2026-01-01T00:00:00.001Z", 1, same);
}

static void ranges_steps_and_lists_combine(void **state)
{
    static const char *const want[] = {"2026-01-01T09:10:00Z", "2026-01-01T09:15:00Z",
                                       "2026-01-01T09:20:00Z", "2026-01-01T09:50:00Z",
                                       "2026-01-01T17:10:00Z"};
    (void)state;
    expect_fires("10-20/5,50 9,17 * * *", apc_tz_utc(), "2026-01-01T00:00:00Z", 5, want);
}

static void single_value_with_step_runs_to_the_field_maximum(void **state)
{
    static const char *const want[] = {"2026-01-01T00:05:00Z", "2026-01-01T00:15:00Z",
                                       "2026-01-01T00:55:00Z", "2026-01-01T01:05:00Z"};
    apc_schedule_t s = parse("5/10 * * * *");
    int64_t t = iso("2026-01-01T00:00:00Z"), n = 0;
    (void)state;
    expect_fires("5/10 * * * *", apc_tz_utc(), "2026-01-01T00:00:00Z", 2, want);
    assert_int_equal(apc_schedule_next(&s, iso("2026-01-01T00:50:00Z"), NULL, &n), 0);
    assert_int_equal(n, iso(want[2]));
    assert_int_equal(apc_schedule_next(&s, n, NULL, &n), 0);
    assert_int_equal(n, iso(want[3]));
    (void)t;
}

static void month_and_day_names_are_case_insensitive(void **state)
{
    static const char *const want[] = {"2026-03-02T12:00:00Z", "2026-03-06T12:00:00Z",
                                       "2026-03-09T12:00:00Z", "2026-06-01T12:00:00Z"};
    (void)state;
    expect_fires("0 12 * mar,Jun MON,fri", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
    expect_fires("0 12 * MAR-jun mon-MON", apc_tz_utc(), "2026-03-01T00:00:00Z", 1, want);
}

static void day_of_week_7_is_sunday(void **state)
{
    static const char *const want[] = {"2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"};
    (void)state;
    expect_fires("0 0 * * 7", apc_tz_utc(), "2026-03-01T00:00:00Z", 2, want);
    expect_fires("0 0 * * 0", apc_tz_utc(), "2026-03-01T00:00:00Z", 2, want);
    expect_fires("0 0 * * 6-7", apc_tz_utc(), "2026-03-07T12:00:00Z", 1, want);
}

static void restricted_day_fields_match_either(void **state)
{
    /* Friday or the 13th (cronie): 2026-03-06 Fri, 03-13 Fri+13th, 03-20 Fri, 04-03 Fri... */
    static const char *const want[] = {"2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z",
                                       "2026-03-20T00:00:00Z", "2026-03-27T00:00:00Z",
                                       "2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z",
                                       "2026-04-13T00:00:00Z"};
    (void)state;
    expect_fires("0 0 13 * FRI", apc_tz_utc(), "2026-03-01T00:00:00Z", 7, want);
}

static void day_field_starting_with_star_makes_both_required(void **state)
{
    /* "*" + "/2" is unrestricted for the either-rule, so: odd days that are Fridays. */
    static const char *const want[] = {"2026-03-13T00:00:00Z", "2026-03-27T00:00:00Z",
                                       "2026-04-03T00:00:00Z", "2026-04-17T00:00:00Z"};
    (void)state;
    expect_fires("0 0 */2 * FRI", apc_tz_utc(), "2026-03-01T00:00:00Z", 4, want);
}

static void star_day_of_week_with_step_requires_both(void **state)
{
    /* dow "*" + "/2" = Sun, Tue, Thu, Sat, and it must also be the 1st-5th. */
    static const char *const want[] = {"2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z",
                                       "2026-03-05T00:00:00Z", "2026-04-02T00:00:00Z"};
    (void)state;
    expect_fires("0 0 1-5 * */2", apc_tz_utc(), "2026-02-28T00:00:00Z", 4, want);
}

static void last_day_of_month_follows_month_length(void **state)
{
    static const char *const want[] = {"2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z",
                                       "2028-03-31T00:00:00Z", "2028-04-30T00:00:00Z"};
    (void)state;
    expect_fires("0 0 L * *", apc_tz_utc(), "2028-01-01T00:00:00Z", 4, want);
}

static void nth_weekday_of_the_month(void **state)
{
    /* Second Sunday: the US DST start. */
    static const char *const want[] = {"2026-03-08T00:00:00Z", "2027-03-14T00:00:00Z",
                                       "2028-03-12T00:00:00Z"};
    (void)state;
    expect_fires("0 0 * 3 SUN#2", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
}

static void fifth_weekday_skips_months_without_one(void **state)
{
    static const char *const want[] = {"2026-03-30T00:00:00Z", "2026-06-29T00:00:00Z",
                                       "2026-08-31T00:00:00Z"};
    (void)state;
    expect_fires("0 0 * * 1#5", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
}

static void last_weekday_of_the_month(void **state)
{
    /* Last Sunday of March and October: the EU DST changes. */
    static const char *const want[] = {"2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z",
                                       "2027-03-28T01:00:00Z"};
    (void)state;
    expect_fires("0 1 * 3,10 0L", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
    expect_fires("0 1 * 3,10 SUNL", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
    expect_fires("0 1 * 3,10 sunl", apc_tz_utc(), "2026-01-01T00:00:00Z", 3, want);
}

static void day_list_with_nth_and_plain_weekdays(void **state)
{
    static const char *const want[] = {"2026-03-02T00:00:00Z", "2026-03-06T00:00:00Z",
                                       "2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z",
                                       "2026-03-27T00:00:00Z", "2026-04-03T00:00:00Z",
                                       "2026-04-06T00:00:00Z"};
    (void)state;
    expect_fires("0 0 * * MON#1,FRI", apc_tz_utc(), "2026-03-01T00:00:00Z", 7, want);
}

static void february_29_waits_for_a_leap_year(void **state)
{
    static const char *const want[] = {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"};
    (void)state;
    expect_fires("0 0 29 2 *", apc_tz_utc(), "2026-01-01T00:00:00Z", 2, want);
}

static void rare_match_is_found_decades_ahead(void **state)
{
    /* February 29 that is a Sunday: day-of-week "*" + "/7" (= 0 and 7, Sunday) starts with
     * '*', so both day fields must match. */
    static const char *const want[] = {"2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z",
                                       "2088-02-29T00:00:00Z"};
    (void)state;
    expect_fires("0 0 29 2 */7", apc_tz_utc(), "2026-03-01T00:00:00Z", 3, want);
}

static void carries_roll_over_year_end(void **state)
{
    static const char *const want[] = {"2027-01-01T00:00:00Z"};
    static const char *const sec[] = {"2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"};
    (void)state;
    expect_fires("0 0 * * *", apc_tz_utc(), "2026-12-31T00:00:00Z", 1, want);
    expect_fires("* * * * * *", apc_tz_utc(), "2026-12-31T23:59:58Z", 2, sec);
}

static void macros_expand_to_their_cron_times(void **state)
{
    static const char *const yearly[] = {"2027-01-01T00:00:00Z"};
    static const char *const monthly[] = {"2026-04-01T00:00:00Z"};
    static const char *const weekly[] = {"2026-03-15T00:00:00Z"};
    static const char *const daily[] = {"2026-03-09T00:00:00Z"};
    static const char *const hourly[] = {"2026-03-08T13:00:00Z"};
    const char *from = "2026-03-08T12:34:56Z";
    (void)state;
    expect_fires("@yearly", apc_tz_utc(), from, 1, yearly);
    expect_fires("@annually", apc_tz_utc(), from, 1, yearly);
    expect_fires("@monthly", apc_tz_utc(), from, 1, monthly);
    expect_fires("@weekly", apc_tz_utc(), from, 1, weekly);
    expect_fires("@daily", apc_tz_utc(), from, 1, daily);
    expect_fires("@midnight", apc_tz_utc(), from, 1, daily);
    expect_fires("@hourly", apc_tz_utc(), from, 1, hourly);
    expect_fires("  @HOURLY  ", apc_tz_utc(), from, 1, hourly);
}

static void every_adds_the_interval_to_the_last_fire(void **state)
{
    apc_schedule_t s = parse("@every 1h30m");
    int64_t n = 0;
    (void)state;
    assert_int_equal(s.kind, APC_SCHED_EVERY);
    assert_int_equal(s.u.every_ms, 5400000);
    assert_int_equal(apc_schedule_next(&s, iso("2026-03-08T06:30:00.250Z"), &ny, &n), 0);
    assert_int_equal(n, iso("2026-03-08T08:00:00.250Z"));
    assert_int_equal(apc_schedule_next(&s, INT64_MAX - 1000, NULL, &n), APC_ENOTFOUND);
}

static void at_fires_once_then_never(void **state)
{
    apc_schedule_t s = parse("@at 2026-03-08T02:30:00-05:00");
    int64_t n = 0;
    (void)state;
    assert_int_equal(s.kind, APC_SCHED_AT);
    assert_int_equal(apc_schedule_next(&s, iso("2026-01-01T00:00:00Z"), NULL, &n), 0);
    assert_int_equal(n, iso("2026-03-08T07:30:00Z"));
    assert_int_equal(apc_schedule_next(&s, n, NULL, &n), APC_ENOTFOUND);
}

static void startup_has_no_next_time(void **state)
{
    apc_schedule_t s = parse("@startup");
    int64_t n = 42;
    (void)state;
    assert_int_equal(s.kind, APC_SCHED_STARTUP);
    assert_int_equal(apc_schedule_next(&s, 0, NULL, &n), APC_ENOTFOUND);
    assert_int_equal(n, 42);
}

static void no_fire_time_after_year_9999(void **state)
{
    apc_schedule_t s = parse("@yearly");
    int64_t n = 0;
    (void)state;
    assert_int_equal(apc_schedule_next(&s, iso("9999-06-01T00:00:00Z"), NULL, &n), APC_ENOTFOUND);
    assert_int_equal(apc_schedule_next(&s, iso("9998-06-01T00:00:00Z"), NULL, &n), 0);
    assert_int_equal(n, iso("9999-01-01T00:00:00Z"));
}

static void instants_before_year_0_start_at_year_0(void **state)
{
    apc_schedule_t s = parse("@yearly");
    int64_t n = 0;
    (void)state;
    assert_int_equal(apc_schedule_next(&s, INT64_MIN, NULL, &n), 0);
    assert_int_equal(n, iso("0000-01-01T00:00:00Z"));
}

/* ---- error messages, verbatim ----------------------------------------------- */

static void wrong_field_count_is_reported(void **state)
{
    (void)state;
    expect_error("* * * *", APC_ESYNTAX, "expected 5 or 6 fields, got 4");
    expect_error("* * * * * * *", APC_ESYNTAX, "expected 5 or 6 fields, got 7");
}

static void empty_schedule_is_reported(void **state)
{
    (void)state;
    expect_error("", APC_ESYNTAX, "schedule is empty");
    expect_error(" \t ", APC_ESYNTAX, "schedule is empty");
}

static void value_out_of_range_names_field_and_range(void **state)
{
    (void)state;
    expect_error("61 * * * *", APC_ERANGE, "minute field \"61\" is out of range 0-59");
    expect_error("60 * * * * *", APC_ERANGE, "second field \"60\" is out of range 0-59");
    expect_error("0 24 * * *", APC_ERANGE, "hour field \"24\" is out of range 0-23");
    expect_error("0 0 0 * *", APC_ERANGE, "day-of-month field \"0\" is out of range 1-31");
    expect_error("0 0 * 1-13 *", APC_ERANGE, "month field \"13\" is out of range 1-12");
    expect_error("0 0 * * 8", APC_ERANGE, "day-of-week field \"8\" is out of range 0-7");
    expect_error("1,99999999999 * * * *", APC_ERANGE,
                 "minute field \"99999999999\" is out of range 0-59");
}

static void unknown_name_is_reported(void **state)
{
    (void)state;
    expect_error("0 0 * JANUARY *", APC_ESYNTAX,
                 "month field \"JANUARY\" is not a number or month name (JAN-DEC)");
    expect_error("0 0 * * FUN", APC_ESYNTAX,
                 "day-of-week field \"FUN\" is not a number or day name (SUN-SAT)");
    expect_error("0 0 * * FUNL", APC_ESYNTAX,
                 "day-of-week field \"FUN\" is not a number or day name (SUN-SAT)");
    expect_error("0 0 * * MONDAY", APC_ESYNTAX,
                 "day-of-week field \"MONDAY\" is not a number or day name (SUN-SAT)");
    expect_error("x * * * *", APC_ESYNTAX, "minute field \"x\" is not a number");
    expect_error("0 0 LW * *", APC_ESYNTAX, "day-of-month field \"LW\" is not a number or L");
    expect_error("0 MON * * *", APC_ESYNTAX, "hour field \"MON\" is not a number");
}

static void backwards_range_is_reported(void **state)
{
    (void)state;
    expect_error("0 20-4 * * *", APC_ERANGE,
                 "hour field \"20-4\" is a range that runs backwards (20 > 4)");
}

static void bad_step_is_reported(void **state)
{
    (void)state;
    expect_error("*/0 * * * *", APC_ERANGE, "minute field \"*/0\" has step 0 (must be 1-59)");
    expect_error("*/60 * * * *", APC_ERANGE, "minute field \"*/60\" has step 60 (must be 1-59)");
    expect_error("*/ * * * *", APC_ESYNTAX, "minute field \"*/\" needs a number after /");
    expect_error("*/5x * * * *", APC_ESYNTAX, "minute field \"*/5x\" needs a number after /");
}

static void empty_list_item_is_reported(void **state)
{
    (void)state;
    expect_error("1,,2 * * * *", APC_ESYNTAX, "minute field \"1,,2\" has an empty list item");
    expect_error("1, * * * *", APC_ESYNTAX, "minute field \"1,\" has an empty list item");
}

static void unexpected_characters_are_reported(void **state)
{
    (void)state;
    expect_error("5#2 * * * *", APC_ESYNTAX, "minute field \"5#2\" has unexpected \"#2\"");
    expect_error("1-2-3 * * * *", APC_ESYNTAX, "minute field \"1-2-3\" has unexpected \"-3\"");
    expect_error("** * * * *", APC_ESYNTAX, "minute field \"**\" has unexpected \"*\"");
    expect_error("1- * * * *", APC_ESYNTAX, "minute field \"1-\" is incomplete");
    expect_error("-1 * * * *", APC_ESYNTAX, "minute field \"-1\" has unexpected \"-\"");
    expect_error("0 0 * * 1L2", APC_ESYNTAX, "day-of-week field \"1L2\" has unexpected \"2\"");
}

static void bad_nth_weekday_is_reported(void **state)
{
    (void)state;
    expect_error("0 0 * * MON#6", APC_ERANGE,
                 "day-of-week field \"MON#6\" asks for occurrence 6 (must be 1-5)");
    expect_error("0 0 * * 1#", APC_ESYNTAX, "day-of-week field \"1#\" needs a number 1-5 after #");
}

static void schedule_that_can_never_fire_is_rejected(void **state)
{
    (void)state;
    expect_error("0 0 30 2 *", APC_ENEVER, "schedule \"0 0 30 2 *\" can never fire");
    expect_error("0 0 31 4,6 *", APC_ENEVER, "schedule \"0 0 31 4,6 *\" can never fire");
    expect_error(" 0 0 0 31 9,11 * ", APC_ENEVER, "schedule \"0 0 0 31 9,11 *\" can never fire");
    expect_error("0 0 30,31 2 *", APC_ENEVER, "schedule \"0 0 30,31 2 *\" can never fire");
    expect_error("0 0 30 2 */7", APC_ENEVER, "schedule \"0 0 30 2 */7\" can never fire");
}

static void rare_but_possible_schedules_are_accepted(void **state)
{
    apc_schedule_t s;
    char err[200];
    (void)state;
    assert_int_equal(apc_schedule_parse("0 0 29 2 *", &s, err, sizeof err), 0);
    assert_int_equal(apc_schedule_parse("0 0 29 2 */7", &s, err, sizeof err), 0);
    assert_int_equal(apc_schedule_parse("0 0 30 2 MON", &s, err, sizeof err), 0);
    assert_int_equal(apc_schedule_parse("0 0 * 2 1#5", &s, err, sizeof err), 0);
}

static void unknown_macro_is_reported(void **state)
{
    (void)state;
    expect_error("@reboot", APC_ESYNTAX,
                 "unknown macro \"@reboot\" (use @yearly, @annually, @monthly, @weekly, @daily, "
                 "@midnight, @hourly, @every, @at or @startup)");
}

static void macro_with_argument_is_reported(void **state)
{
    (void)state;
    expect_error("@hourly 5", APC_ESYNTAX, "macro \"@hourly\" takes no argument");
    expect_error("@startup now", APC_ESYNTAX, "macro \"@startup\" takes no argument");
}

static void every_errors_are_reported(void **state)
{
    (void)state;
    expect_error("@every", APC_ESYNTAX, "@every needs a duration, e.g. \"@every 15m\"");
    expect_error("@every 5x", APC_ESYNTAX,
                 "duration \"5x\" has an unknown unit \"x\" (use ms, s, m, h or d)");
    expect_error("@every 500ms", APC_ERANGE,
                 "@every interval \"500ms\" is shorter than the minimum of 1s");
    expect_error("@every 0s", APC_ERANGE,
                 "@every interval \"0s\" is shorter than the minimum of 1s");
}

static void at_errors_are_reported(void **state)
{
    (void)state;
    expect_error("@at", APC_ESYNTAX, "@at needs an instant, e.g. \"@at 2026-03-08T02:30:00Z\"");
    expect_error("@at 2026-03-08T02:30:00", APC_ESYNTAX,
                 "time \"2026-03-08T02:30:00\" has no UTC offset (add Z or an offset like +01:00)");
}

/* ---- DST: New York 2026-03-08 and 2026-11-01, Berlin 2026-03-29 and 2026-10-25 ---------- */

static void ny_hourly_skips_the_missing_2am(void **state)
{
    static const char *const want[] = {"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
                                       "2026-03-08T04:00:00-04:00"};
    (void)state;
    expect_fires("0 * * * *", &ny, "2026-03-08T05:30:00Z", 3, want);
}

static void ny_quarter_hours_in_the_gap_fire_once_at_3am(void **state)
{
    static const char *const want[] = {"2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00",
                                       "2026-03-08T03:15:00-04:00"};
    (void)state;
    expect_fires("*/15 * * * *", &ny, "2026-03-08T06:40:00Z", 3, want);
}

static void ny_daily_0230_runs_at_0300_on_the_spring_forward_day(void **state)
{
    static const char *const want[] = {"2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00",
                                       "2026-03-09T02:30:00-04:00"};
    (void)state;
    expect_fires("30 2 * * *", &ny, "2026-03-07T00:00:00Z", 3, want);
    /* The example of the contract: 03:00 EDT = 07:00Z. */
    {
        apc_schedule_t s = parse("30 2 * * *");
        int64_t n = 0;
        assert_int_equal(apc_schedule_next(&s, iso("2026-03-08T00:00:00Z"), &ny, &n), 0);
        assert_int_equal(n, iso("2026-03-08T07:00:00Z"));
    }
}

static void ny_hourly_fires_the_repeated_1am_once(void **state)
{
    /* 01:00 EDT fires; 01:00 EST is the same wall time again and does not. */
    static const char *const want[] = {"2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
                                       "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"};
    (void)state;
    expect_fires("0 * * * *", &ny, "2026-11-01T03:30:00Z", 4, want);
}

static void ny_quarter_hours_in_the_repeated_hour_fire_once(void **state)
{
    static const char *const want[] = {"2026-11-01T01:30:00-04:00", "2026-11-01T01:45:00-04:00",
                                       "2026-11-01T02:00:00-05:00"};
    (void)state;
    expect_fires("*/15 * * * *", &ny, "2026-11-01T05:20:00Z", 3, want);
}

static void ny_from_inside_the_second_1am_waits_for_2am(void **state)
{
    /* 06:20Z is 01:20 EST, the second pass through 01:xx: everything up to 02:00 has run. */
    static const char *const want[] = {"2026-11-01T02:00:00-05:00"};
    (void)state;
    expect_fires("*/15 * * * *", &ny, "2026-11-01T06:20:00Z", 1, want);
    expect_fires("* * * * * *", &ny, "2026-11-01T06:20:00Z", 1, want);
}

static void ny_daily_0130_runs_once_on_the_fall_back_day(void **state)
{
    static const char *const want[] = {"2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00",
                                       "2026-11-02T01:30:00-05:00"};
    (void)state;
    expect_fires("30 1 * * *", &ny, "2026-10-31T00:00:00Z", 3, want);
}

static void ny_daily_0230_is_unaffected_by_fall_back(void **state)
{
    static const char *const want[] = {"2026-10-31T02:30:00-04:00", "2026-11-01T02:30:00-05:00",
                                       "2026-11-02T02:30:00-05:00"};
    (void)state;
    expect_fires("30 2 * * *", &ny, "2026-10-31T00:00:00Z", 3, want);
}

static void berlin_hourly_skips_the_missing_2am(void **state)
{
    static const char *const want[] = {"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00",
                                       "2026-03-29T04:00:00+02:00"};
    (void)state;
    expect_fires("0 * * * *", &berlin, "2026-03-28T23:30:00Z", 3, want);
}

static void berlin_quarter_hours_in_the_gap_fire_once_at_3am(void **state)
{
    static const char *const want[] = {"2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00",
                                       "2026-03-29T03:15:00+02:00"};
    (void)state;
    expect_fires("*/15 * * * *", &berlin, "2026-03-29T00:40:00Z", 3, want);
}

static void berlin_daily_0230_runs_at_0300_on_the_spring_forward_day(void **state)
{
    static const char *const want[] = {"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00",
                                       "2026-03-30T02:30:00+02:00"};
    (void)state;
    expect_fires("30 2 * * *", &berlin, "2026-03-28T00:00:00Z", 3, want);
}

static void berlin_hourly_fires_the_repeated_2am_once(void **state)
{
    static const char *const want[] = {"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                                       "2026-10-25T03:00:00+01:00"};
    (void)state;
    expect_fires("0 * * * *", &berlin, "2026-10-24T22:30:00Z", 3, want);
}

static void berlin_quarter_hours_in_the_repeated_hour_fire_once(void **state)
{
    static const char *const want[] = {"2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00"};
    (void)state;
    expect_fires("*/15 * * * *", &berlin, "2026-10-25T00:40:00Z", 2, want);
}

static void berlin_daily_0230_runs_once_on_the_fall_back_day(void **state)
{
    static const char *const want[] = {"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
                                       "2026-10-26T02:30:00+01:00"};
    (void)state;
    expect_fires("30 2 * * *", &berlin, "2026-10-24T00:00:00Z", 3, want);
}

#ifndef _WIN32
/*
 * Native cross-check: the same schedules evaluated with the C library's tz
 * database (TZ=America/New_York, TZ=Europe/Berlin) give the same instants as
 * the POSIX rules zone, fire by fire, through all of 2026.
 */
static void cross_check_year(const char *olson, const apc_tz_t *rules, const char *expr)
{
    apc_schedule_t s = parse(expr);
    const apc_tz_t *libc = apc_tz_libc_local();
    int64_t a = iso("2026-01-01T00:00:00Z"), b = a, end = iso("2027-01-01T00:00:00Z");
    int fires = 0;

    assert_int_equal(setenv("TZ", olson, 1), 0);
    tzset();
    while (a < end) {
        assert_int_equal(apc_schedule_next(&s, a, rules, &a), 0);
        assert_int_equal(apc_schedule_next(&s, b, libc, &b), 0);
        if (a != b)
            fail_msg("%s in %s: rules zone %lld, libc %lld", expr, olson, (long long)a,
                     (long long)b);
        fires++;
    }
    printf("native cross-check: \"%s\" in %s: %d fire times in 2026 agree with libc\n", expr, olson,
           fires);
    unsetenv("TZ");
    tzset();
}

static void new_york_agrees_with_libc_through_2026(void **state)
{
    (void)state;
    cross_check_year("America/New_York", &ny, "0 * * * *");
    cross_check_year("America/New_York", &ny, "*/15 * * * *");
    cross_check_year("America/New_York", &ny, "30 2 * * *");
    cross_check_year("America/New_York", &ny, "30 1 * * *");
}

static void berlin_agrees_with_libc_through_2026(void **state)
{
    (void)state;
    cross_check_year("Europe/Berlin", &berlin, "0 * * * *");
    cross_check_year("Europe/Berlin", &berlin, "*/15 * * * *");
    cross_check_year("Europe/Berlin", &berlin, "30 2 * * *");
}
#endif

/* ---- DST lint ------------------------------------------------------------------ */

static void lint_lists_daily_0230_in_new_york(void **state)
{
    apc_schedule_t s = parse("30 2 * * *");
    apc_buf_t out = {0};
    int count = -1;
    (void)state;
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-01-01T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 1);
    assert_string_equal(out.data, "2026-03-08: 02:30 does not exist (clocks go forward "
                                  "02:00->03:00); runs at 03:00\n");
    apc_buf_free(&out);
}

static void lint_lists_quarter_hours_in_both_transitions(void **state)
{
    apc_schedule_t s = parse("*/15 * * * *");
    apc_buf_t out = {0};
    int count = -1;
    (void)state;
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-01-01T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 8);
    assert_string_equal(
        out.data,
        "2026-03-08: 02:00 does not exist (clocks go forward 02:00->03:00); runs at 03:00\n"
        "2026-03-08: 02:15 does not exist (clocks go forward 02:00->03:00); runs at 03:00\n"
        "2026-03-08: 02:30 does not exist (clocks go forward 02:00->03:00); runs at 03:00\n"
        "2026-03-08: 02:45 does not exist (clocks go forward 02:00->03:00); runs at 03:00\n"
        "2026-11-01: 01:00 occurs twice (clocks go back 02:00->01:00); runs once, at the first "
        "(UTC-04:00)\n"
        "2026-11-01: 01:15 occurs twice (clocks go back 02:00->01:00); runs once, at the first "
        "(UTC-04:00)\n"
        "2026-11-01: 01:30 occurs twice (clocks go back 02:00->01:00); runs once, at the first "
        "(UTC-04:00)\n"
        "2026-11-01: 01:45 occurs twice (clocks go back 02:00->01:00); runs once, at the first "
        "(UTC-04:00)\n");
    apc_buf_free(&out);
}

static void lint_summarises_after_eight_lines(void **state)
{
    apc_schedule_t s = parse("* * * * *");
    apc_buf_t out = {0};
    int count = -1;
    const char *last;
    (void)state;
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-06-01T00:00:00Z"), &berlin, &out, &count),
                     0);
    assert_int_equal(count, 120);
    /* From June: the fall-back of 2026-10-25, then the spring-forward of 2027-03-28. */
    last = strstr(out.data, "2026-10-25: 02:07");
    assert_non_null(last);
    assert_non_null(
        strstr(out.data, "2027-03-28: ... and 52 more fire times in the skipped hour\n"));
    assert_non_null(
        strstr(out.data, "2026-10-25: ... and 52 more fire times in the repeated hour\n"));
    assert_null(strstr(out.data, "2027-03-28: 02:08"));
    assert_null(strstr(out.data, "2026-03-29"));
    apc_buf_free(&out);
}

static void lint_is_quiet_for_schedules_outside_the_changes(void **state)
{
    apc_schedule_t s = parse("0 12 * * *");
    apc_schedule_t e = parse("@every 15m");
    apc_buf_t out = {0};
    int count = -1;
    (void)state;
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-01-01T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 0);
    assert_null(out.data);
    assert_int_equal(apc_schedule_dst_lint(&e, iso("2026-01-01T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-01-01T00:00:00Z"), NULL, &out, &count), 0);
    assert_int_equal(count, 0);
    apc_buf_free(&out);
}

static void lint_looks_twelve_months_ahead(void **state)
{
    apc_schedule_t s = parse("30 2 * * *");
    apc_buf_t out = {0};
    int count = -1;
    (void)state;
    /* From 2026-03-09 the next gap is 2027-03-14 (beyond 12 months: none); the overlap is
     * 2026-11-01 at 01:00-02:00, which 02:30 misses. */
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-03-09T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(apc_schedule_dst_lint(&s, iso("2026-03-15T00:00:00Z"), &ny, &out, &count), 0);
    assert_int_equal(count, 1);
    assert_string_equal(out.data, "2027-03-14: 02:30 does not exist (clocks go forward "
                                  "02:00->03:00); runs at 03:00\n");
    apc_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedule_value_stays_below_64_bytes),
        cmocka_unit_test(five_fields_fire_on_second_zero),
        cmocka_unit_test(six_fields_put_seconds_first),
        cmocka_unit_test(next_is_strictly_after_a_fractional_instant),
        cmocka_unit_test(ranges_steps_and_lists_combine),
        cmocka_unit_test(single_value_with_step_runs_to_the_field_maximum),
        cmocka_unit_test(month_and_day_names_are_case_insensitive),
        cmocka_unit_test(day_of_week_7_is_sunday),
        cmocka_unit_test(restricted_day_fields_match_either),
        cmocka_unit_test(day_field_starting_with_star_makes_both_required),
        cmocka_unit_test(star_day_of_week_with_step_requires_both),
        cmocka_unit_test(last_day_of_month_follows_month_length),
        cmocka_unit_test(nth_weekday_of_the_month),
        cmocka_unit_test(fifth_weekday_skips_months_without_one),
        cmocka_unit_test(last_weekday_of_the_month),
        cmocka_unit_test(day_list_with_nth_and_plain_weekdays),
        cmocka_unit_test(february_29_waits_for_a_leap_year),
        cmocka_unit_test(rare_match_is_found_decades_ahead),
        cmocka_unit_test(carries_roll_over_year_end),
        cmocka_unit_test(macros_expand_to_their_cron_times),
        cmocka_unit_test(every_adds_the_interval_to_the_last_fire),
        cmocka_unit_test(at_fires_once_then_never),
        cmocka_unit_test(startup_has_no_next_time),
        cmocka_unit_test(no_fire_time_after_year_9999),
        cmocka_unit_test(instants_before_year_0_start_at_year_0),
        cmocka_unit_test(wrong_field_count_is_reported),
        cmocka_unit_test(empty_schedule_is_reported),
        cmocka_unit_test(value_out_of_range_names_field_and_range),
        cmocka_unit_test(unknown_name_is_reported),
        cmocka_unit_test(backwards_range_is_reported),
        cmocka_unit_test(bad_step_is_reported),
        cmocka_unit_test(empty_list_item_is_reported),
        cmocka_unit_test(unexpected_characters_are_reported),
        cmocka_unit_test(bad_nth_weekday_is_reported),
        cmocka_unit_test(schedule_that_can_never_fire_is_rejected),
        cmocka_unit_test(rare_but_possible_schedules_are_accepted),
        cmocka_unit_test(unknown_macro_is_reported),
        cmocka_unit_test(macro_with_argument_is_reported),
        cmocka_unit_test(every_errors_are_reported),
        cmocka_unit_test(at_errors_are_reported),
        cmocka_unit_test(ny_hourly_skips_the_missing_2am),
        cmocka_unit_test(ny_quarter_hours_in_the_gap_fire_once_at_3am),
        cmocka_unit_test(ny_daily_0230_runs_at_0300_on_the_spring_forward_day),
        cmocka_unit_test(ny_hourly_fires_the_repeated_1am_once),
        cmocka_unit_test(ny_quarter_hours_in_the_repeated_hour_fire_once),
        cmocka_unit_test(ny_from_inside_the_second_1am_waits_for_2am),
        cmocka_unit_test(ny_daily_0130_runs_once_on_the_fall_back_day),
        cmocka_unit_test(ny_daily_0230_is_unaffected_by_fall_back),
        cmocka_unit_test(berlin_hourly_skips_the_missing_2am),
        cmocka_unit_test(berlin_quarter_hours_in_the_gap_fire_once_at_3am),
        cmocka_unit_test(berlin_daily_0230_runs_at_0300_on_the_spring_forward_day),
        cmocka_unit_test(berlin_hourly_fires_the_repeated_2am_once),
        cmocka_unit_test(berlin_quarter_hours_in_the_repeated_hour_fire_once),
        cmocka_unit_test(berlin_daily_0230_runs_once_on_the_fall_back_day),
#ifndef _WIN32
        cmocka_unit_test(new_york_agrees_with_libc_through_2026),
        cmocka_unit_test(berlin_agrees_with_libc_through_2026),
#endif
        cmocka_unit_test(lint_lists_daily_0230_in_new_york),
        cmocka_unit_test(lint_lists_quarter_hours_in_both_transitions),
        cmocka_unit_test(lint_summarises_after_eight_lines),
        cmocka_unit_test(lint_is_quiet_for_schedules_outside_the_changes),
        cmocka_unit_test(lint_looks_twelve_months_ahead),
    };
    return cmocka_run_group_tests(tests, setup_zones, NULL);
}
