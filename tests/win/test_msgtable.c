/*
 * test_msgtable.c - apcsvc.exe carries the message table its event source points at.
 *
 * The installers register apcsvc.exe as the EventMessageFile of the "ApcSched" source, and
 * the service reports events with the IDs of svclog.h and one insertion string. Event Viewer
 * renders an entry with FormatMessage from that file: this test does the same, on the built
 * apcsvc.exe, for every ID the service writes. (Wine's event log is a stub, so this is how
 * the rendering is verified here.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

#include <stdio.h>
#include <wchar.h>

#include "svclog.h"

static HMODULE load_apcsvc(void)
{
    wchar_t path[MAX_PATH];
    HMODULE h;
    int n;

    /* APC_TEST_BIN_DIR is a Linux path; Wine shows it through drive Z:. */
    n = swprintf(path, MAX_PATH, L"Z:%hs/service/win/apcsvc.exe", APC_TEST_BIN_DIR);
    assert_true(n > 0);
    for (wchar_t *p = path; *p != L'\0'; p++)
        if (*p == L'/')
            *p = L'\\';
    h = LoadLibraryExW(path, NULL, LOAD_LIBRARY_AS_DATAFILE | LOAD_LIBRARY_AS_IMAGE_RESOURCE);
    if (h == NULL)
        fail_msg("LoadLibraryExW(%ls): error %lu", path, (unsigned long)GetLastError());
    return h;
}

/* Renders message id with the one insertion string the service passes; NULL if none. */
static wchar_t *render(HMODULE h, DWORD id, const wchar_t *text)
{
    wchar_t *out = NULL;
    DWORD_PTR args[1];

    args[0] = (DWORD_PTR)text;
    if (FormatMessageW(FORMAT_MESSAGE_FROM_HMODULE | FORMAT_MESSAGE_ALLOCATE_BUFFER |
                           FORMAT_MESSAGE_ARGUMENT_ARRAY,
                       h, id, MAKELANGID(LANG_NEUTRAL, SUBLANG_NEUTRAL), (LPWSTR)&out, 0,
                       (va_list *)args) == 0)
        return NULL;
    return out;
}

static void every_event_id_renders_its_text(void **state)
{
    static const DWORD ids[] = {APC_EVENT_STARTED,      APC_EVENT_STOPPED,  APC_EVENT_CONFIG_ERROR,
                                APC_EVENT_START_FAILED, APC_EVENT_RELOADED, APC_EVENT_ERROR,
                                APC_EVENT_WARNING};
    const wchar_t *text = L"engine: run 118 of backup failed: exit code 3";
    HMODULE h = load_apcsvc();
    (void)state;

    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        wchar_t *got = render(h, ids[i], text);
        wchar_t want[128];

        if (got == NULL) {
            fail_msg("event %lu has no message: error %lu", (unsigned long)ids[i],
                     (unsigned long)GetLastError());
            continue; /* not reached: fail_msg ends the test */
        }
        /* mc ends each message with CRLF. */
        (void)swprintf(want, 128, L"%ls\r\n", text);
        assert_true(wcscmp(got, want) == 0);
        LocalFree(got);
    }
    assert_true(FreeLibrary(h));
}

static void an_id_the_service_never_writes_has_no_message(void **state)
{
    HMODULE h = load_apcsvc();
    (void)state;

    assert_null(render(h, 6, L"x"));
    assert_int_equal(GetLastError(), ERROR_MR_MID_NOT_FOUND);
    assert_true(FreeLibrary(h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_event_id_renders_its_text),
        cmocka_unit_test(an_id_the_service_never_writes_has_no_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
