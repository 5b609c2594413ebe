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

static void read_tail_starts_at_a_character_and_shows_nul_as_replacement(void **state)
{
    wchar_t dir[MAX_PATH], file[MAX_PATH];
    char *path, err[256] = "";
    apc_buf_t data = {0};
    int truncated = -1;
    HANDLE h;
    DWORD put;
    /* "ab" "é" (C3 A9) "c" NUL "d": the last 5 bytes cut the é in half. */
    static const char bytes[] = {'a', 'b', '\xC3', '\xA9', 'c', '\0', 'd'};
    (void)state;

    assert_true(GetTempPathW(MAX_PATH, dir) > 0);
    assert_true(GetTempFileNameW(dir, L"apt", 0, file) != 0);
    h = CreateFileW(file, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    assert_true(WriteFile(h, bytes, sizeof bytes, &put, NULL) && put == sizeof bytes);
    assert_true(CloseHandle(h));
    path = apc_wide_to_utf8(file);

    assert_int_equal(apc_win_read_tail(path, 4, &data, &truncated, err, sizeof err), 0);
    assert_int_equal(truncated, 1);
    assert_string_equal(data.data, "c\xEF\xBF\xBD"
                                   "d"); /* the cut é is skipped */
    apc_buf_reset(&data);
    assert_int_equal(apc_win_read_tail(path, 100, &data, &truncated, err, sizeof err), 0);
    assert_int_equal(truncated, 0);
    assert_string_equal(data.data, "ab\xC3\xA9"
                                   "c\xEF\xBF\xBD"
                                   "d");
    apc_buf_free(&data);
    assert_true(DeleteFileW(file));
    assert_int_equal(apc_win_read_tail(path, 4, &data, &truncated, err, sizeof err), APC_ENOTFOUND);
    assert_non_null(strstr(err, " (error 2)"));
    apc_buf_free(&data);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_round_trips_through_utf16),
        cmocka_unit_test(invalid_utf8_is_refused),
        cmocka_unit_test(win_error_keeps_the_system_text_and_code),
        cmocka_unit_test(filetime_and_unix_ms_convert_both_ways),
        cmocka_unit_test(read_tail_starts_at_a_character_and_shows_nul_as_replacement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
