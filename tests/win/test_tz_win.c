/*
 * test_tz_win.c - the Windows local zone agrees with SystemTimeToTzSpecificLocalTime at a
 * January and a July instant, and refuses instants SYSTEMTIME cannot hold.
 *
 * Under Wine the zone is the Linux host's (see README.md (section Running apcsvc.exe) for what TZ does there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "apc_error.h"
#include "tz_win.h"

/* The offset Windows' own API gives for the current zone at utc_s (Unix seconds). */
static int32_t system_offset(int64_t utc_s)
{
    ULONGLONG ticks = (ULONGLONG)(utc_s + INT64_C(11644473600)) * 10000000u;
    FILETIME ft, lft;
    SYSTEMTIME st, lst;
    ULONGLONG lticks;
    ft.dwLowDateTime = (DWORD)(ticks & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)(ticks >> 32);
    assert_true(FileTimeToSystemTime(&ft, &st));
    assert_true(SystemTimeToTzSpecificLocalTime(NULL, &st, &lst));
    assert_true(SystemTimeToFileTime(&lst, &lft));
    lticks = ((ULONGLONG)lft.dwHighDateTime << 32) | lft.dwLowDateTime;
    return (int32_t)(((int64_t)lticks - (int64_t)ticks) / 10000000);
}

static void january_offset_matches_the_system(void **state)
{
    apc_tz_win_t z;
    int32_t off = 12345;
    const int64_t jan = INT64_C(1768478400); /* 2026-01-15T12:00:00Z */
    (void)state;
    assert_int_equal(apc_tz_win_local(&z, NULL, 0), 0);
    assert_int_equal(z.tz.offset_at(&z.tz, jan, &off), 0);
    assert_int_equal(off, system_offset(jan));
    print_message("local zone %s: January offset %d s\n", z.name, (int)off);
}

static void july_offset_matches_the_system(void **state)
{
    apc_tz_win_t z;
    int32_t off = 12345;
    const int64_t jul = INT64_C(1784116800); /* 2026-07-15T12:00:00Z */
    (void)state;
    assert_int_equal(apc_tz_win_local(&z, NULL, 0), 0);
    assert_int_equal(apc_tz_offset_at_ms(&z.tz, jul * 1000, &off), 0);
    assert_int_equal(off, system_offset(jul));
    print_message("local zone %s: July offset %d s\n", z.name, (int)off);
}

static void instants_outside_systemtime_are_refused(void **state)
{
    apc_tz_win_t z;
    int32_t off = 12345;
    (void)state;
    assert_int_equal(apc_tz_win_local(&z, NULL, 0), 0);
    assert_int_equal(z.tz.offset_at(&z.tz, APC_TZ_WIN_MIN_S - 1, &off), APC_ERANGE);
    assert_int_equal(z.tz.offset_at(&z.tz, APC_TZ_WIN_MAX_S + 1, &off), APC_ERANGE);
    assert_int_equal(z.tz.offset_at(&z.tz, INT64_MIN, &off), APC_ERANGE);
    assert_int_equal(off, 12345);
    assert_int_equal(z.tz.offset_at(&z.tz, APC_TZ_WIN_MIN_S, &off), 0);
    assert_int_equal(z.tz.offset_at(&z.tz, APC_TZ_WIN_MAX_S, &off), 0);
    assert_int_equal(z.tz.offset_at(&z.tz, 0, NULL), APC_EINVAL);
}

static void zone_is_named_after_the_windows_key(void **state)
{
    apc_tz_win_t z;
    DYNAMIC_TIME_ZONE_INFORMATION d;
    char want[APC_TZ_NAME_MAX];
    (void)state;
    assert_int_equal(apc_tz_win_local(&z, NULL, 0), 0);
    assert_true(GetDynamicTimeZoneInformation(&d) != TIME_ZONE_ID_INVALID);
    (void)snprintf(want, sizeof want, "local (%ls)", d.TimeZoneKeyName);
    assert_string_equal(z.tz.name, want);
    assert_ptr_equal(z.tz.ctx, &z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(january_offset_matches_the_system),
        cmocka_unit_test(july_offset_matches_the_system),
        cmocka_unit_test(instants_outside_systemtime_are_refused),
        cmocka_unit_test(zone_is_named_after_the_windows_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
