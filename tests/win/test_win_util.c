/*
 * test_win_util.c - UTF-8/UTF-16 conversion, Win32 error texts and time conversion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "win_util.h"

static void utf8_round_trips_through_utf16(void **state)
{
    const char *s = "C:\\Jobs\\r\xC3\xA9sum\xC3\xA9 \xE2\x82\xAC.cmd"; /* résumé € */
    wchar_t *w = apc_utf8_to_wide(s);
    char *back;
    (void)state;
    assert_non_null(w);
    assert_int_equal(w[9], 0x00E9); /* C : \ J o b s \ r é */
    back = apc_wide_to_utf8(w);
    assert_string_equal(back, s);
    free(w);
    free(back);
}

static void invalid_utf8_is_refused(void **state)
{
    (void)state;
    assert_null(apc_utf8_to_wide("bad \xC3\x28 byte"));
    assert_null(apc_utf8_to_wide(NULL));
}

static void win_error_keeps_the_system_text_and_code(void **state)
{
    char err[256];
    (void)state;
    assert_int_equal(apc_win_seterr(err, sizeof err, ERROR_FILE_NOT_FOUND, "opening %s", "x.db"),
                     APC_ENOTFOUND);
    /* The exact system text differs by Windows language; its frame and code do not. */
    assert_true(strncmp(err, "opening x.db: ", 14) == 0);
    assert_non_null(strstr(err, " (error 2)"));
    assert_null(strstr(err, ".\r\n"));
    assert_int_equal(apc_win_errno(ERROR_ACCESS_DENIED), APC_EDENIED);
    assert_int_equal(apc_win_errno(ERROR_SHARING_VIOLATION), APC_EBUSY);
    assert_int_equal(apc_win_errno(12345), APC_ESYS);
}

static void filetime_and_unix_ms_convert_both_ways(void **state)
{
    int64_t now;
    (void)state;
    /* 2026-01-01T00:00:00Z */
    assert_int_equal(apc_win_filetime_from_ms(INT64_C(1767225600000)), INT64_C(134116992000000000));
    assert_int_equal(apc_win_ms_from_filetime(INT64_C(134116992000000000)), INT64_C(1767225600000));
    now = apc_win_now_ms();
    assert_true(now > INT64_C(1767225600000) - INT64_C(365) * 86400000 * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_round_trips_through_utf16),
        cmocka_unit_test(invalid_utf8_is_refused),
        cmocka_unit_test(win_error_keeps_the_system_text_and_code),
        cmocka_unit_test(filetime_and_unix_ms_convert_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
