/*
 * test_install.c - `apcsvc install/uninstall` through install.c against the real service
 * control manager and registry (Wine's services.exe here): the quoted image path, start type,
 * description, preshutdown timeout, failure actions, delayed start, the in-place upgrade, the
 * event source key and removal. Each test uses its own service and event source name, so the
 * tests share the build's Wine prefix with other tests without meeting them.
 *
 * Where Wine does not store a setting (failure actions, delayed start), the test checks the
 * Windows result on Windows and, under Wine, that the refusal was reported as a warning, and
 * says so on stdout ("verified on Windows only").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "install.h"
#include "win_util.h"

static char name[80];
static char source[80];
static wchar_t wname[80];

static int on_wine(void)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

static int setup(void **state)
{
    static int seq;
    (void)state;
    ++seq;
    (void)snprintf(name, sizeof name, "apc-test-inst-%lu-%d", GetCurrentProcessId(), seq);
    (void)snprintf(source, sizeof source, "ApcSchedTest-%lu-%d", GetCurrentProcessId(), seq);
    (void)MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 80);
    return 0;
}

/* Removes whatever a test left behind, so a failed test does not leak a service. */
static int teardown(void **state)
{
    apc_install_opts_t o;
    char err[256];
    (void)state;
    memset(&o, 0, sizeof o);
    o.name = name;
    o.event_source = source;
    (void)apc_install_remove(&o, NULL, err, sizeof err);
    return 0;
}

static apc_install_opts_t opts(const char *exe, const char *config)
{
    apc_install_opts_t o;
    memset(&o, 0, sizeof o);
    o.name = name;
    o.event_source = source;
    o.exe_path = exe;
    o.config_path = config;
    return o;
}

static void install_ok(const char *exe, const char *config)
{
    apc_install_opts_t o = opts(exe, config);
    char err[512] = "";
    int rc = apc_install_service(&o, NULL, err, sizeof err);
    if (rc != 0)
        print_error("apc_install_service: %s\n", err);
    assert_int_equal(rc, 0);
}

/* Reads the service's QUERY_SERVICE_CONFIGW into a malloc'd buffer. */
static QUERY_SERVICE_CONFIGW *query_config(void)
{
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    SC_HANDLE svc;
    QUERY_SERVICE_CONFIGW *qc;
    DWORD need = 0;

    assert_non_null(scm);
    svc = OpenServiceW(scm, wname, SERVICE_QUERY_CONFIG);
    assert_non_null(svc);
    assert_false(QueryServiceConfigW(svc, NULL, 0, &need));
    assert_int_equal(GetLastError(), ERROR_INSUFFICIENT_BUFFER);
    qc = malloc(need);
    assert_non_null(qc);
    assert_true(QueryServiceConfigW(svc, qc, need, &need));
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return qc;
}

/* Reads one ChangeServiceConfig2 level back; returns NULL (and the error) if it fails. */
static void *query_config2(DWORD level, DWORD *error)
{
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    SC_HANDLE svc;
    BYTE *buf = NULL;
    DWORD need = 0;

    *error = 0;
    assert_non_null(scm);
    svc = OpenServiceW(scm, wname, SERVICE_QUERY_CONFIG);
    assert_non_null(svc);
    if (!QueryServiceConfig2W(svc, level, NULL, 0, &need) &&
        GetLastError() == ERROR_INSUFFICIENT_BUFFER) {
        buf = malloc(need);
        assert_non_null(buf);
        if (!QueryServiceConfig2W(svc, level, buf, need, &need)) {
            *error = GetLastError();
            free(buf);
            buf = NULL;
        }
    } else {
        *error = GetLastError();
    }
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return buf;
}

static char *utf8(const wchar_t *w)
{
    char *s = apc_wide_to_utf8(w);
    assert_non_null(s);
    return s;
}

static void test_binpath_quotes_exe_and_config(void **state)
{
    char *bin = NULL;
    char err[256];
    (void)state;
    assert_int_equal(apc_install_binpath("C:\\Program Files\\ApcSched\\apcsvc.exe",
                                         "C:\\ProgramData\\ApcSched\\apcsvc.json", &bin, err,
                                         sizeof err),
                     0);
    assert_string_equal(bin, "\"C:\\Program Files\\ApcSched\\apcsvc.exe\" --config "
                             "\"C:\\ProgramData\\ApcSched\\apcsvc.json\"");
    free(bin);
}

static void test_binpath_without_config_is_the_quoted_exe(void **state)
{
    char *bin = NULL;
    char err[256];
    (void)state;
    assert_int_equal(apc_install_binpath("C:\\apc\\apcsvc.exe", NULL, &bin, err, sizeof err), 0);
    assert_string_equal(bin, "\"C:\\apc\\apcsvc.exe\"");
    free(bin);
}

static void test_binpath_refuses_a_quote_in_a_path(void **state)
{
    char *bin = NULL;
    char err[256];
    (void)state;
    assert_int_equal(apc_install_binpath("C:\\a\"b\\apcsvc.exe", NULL, &bin, err, sizeof err),
                     APC_EINVAL);
    assert_null(bin);
    assert_string_equal(err, "path \"C:\\a\"b\\apcsvc.exe\" cannot be quoted on a command line: "
                             "it contains '\"'");
}

static void test_binpath_refuses_a_trailing_backslash(void **state)
{
    char *bin = NULL;
    char err[256];
    (void)state;
    assert_int_equal(apc_install_binpath("C:\\apc\\apcsvc.exe", "C:\\cfg\\", &bin, err, sizeof err),
                     APC_EINVAL);
    assert_null(bin);
    assert_string_equal(err,
                        "path \"C:\\cfg\\\" cannot be quoted on a command line: it ends with '\\'");
}

static void test_self_path_is_this_executable(void **state)
{
    char *self = NULL;
    char err[256];
    const char *tail = "win_test_install.exe";
    size_t n;
    (void)state;
    assert_int_equal(apc_install_self_path(&self, err, sizeof err), 0);
    n = strlen(self);
    assert_true(n > strlen(tail));
    assert_string_equal(self + n - strlen(tail), tail);
    free(self);
}

static void test_install_creates_an_auto_start_service_with_the_quoted_path(void **state)
{
    char want[160];
    QUERY_SERVICE_CONFIGW *qc;
    char *bin;
    char *display;
    (void)state;
    install_ok("C:\\Program Files\\ApcSched\\apcsvc.exe", "C:\\ProgramData\\ApcSched\\apcsvc.json");
    qc = query_config();
    bin = utf8(qc->lpBinaryPathName);
    display = utf8(qc->lpDisplayName);
    assert_string_equal(bin, "\"C:\\Program Files\\ApcSched\\apcsvc.exe\" --config "
                             "\"C:\\ProgramData\\ApcSched\\apcsvc.json\"");
    (void)snprintf(want, sizeof want, "ApcSched job scheduler (%s)", name);
    assert_string_equal(display, want);
    assert_int_equal(qc->dwServiceType, SERVICE_WIN32_OWN_PROCESS);
    assert_int_equal(qc->dwStartType, SERVICE_AUTO_START);
    assert_int_equal(qc->dwErrorControl, SERVICE_ERROR_NORMAL);
    free(display);
    free(bin);
    free(qc);
}

static void test_install_sets_the_description(void **state)
{
    SERVICE_DESCRIPTIONW *d;
    DWORD error;
    char *text;
    (void)state;
    install_ok("C:\\apc\\apcsvc.exe", NULL);
    d = query_config2(SERVICE_CONFIG_DESCRIPTION, &error);
    assert_non_null(d);
    text = utf8(d->lpDescription);
    assert_string_equal(text, APC_INSTALL_DESCRIPTION);
    free(text);
    free(d);
}

static void test_install_sets_the_preshutdown_timeout(void **state)
{
    apc_install_opts_t o = opts("C:\\apc\\apcsvc.exe", NULL);
    SERVICE_PRESHUTDOWN_INFO *p;
    DWORD error;
    char err[512];
    (void)state;
    o.preshutdown_ms = 45000;
    assert_int_equal(apc_install_service(&o, NULL, err, sizeof err), 0);
    p = query_config2(SERVICE_CONFIG_PRESHUTDOWN_INFO, &error);
    assert_non_null(p);
    assert_int_equal(p->dwPreshutdownTimeout, 45000);
    free(p);
}

/*
 * Failure actions: restart after 5 s, 10 s, 60 s, reset after a day. Windows stores them;
 * Wine 8 does not, and install must then report each refusal as a warning and go on.
 */
static void test_install_sets_failure_actions_or_warns(void **state)
{
    apc_install_opts_t o = opts("C:\\apc\\apcsvc.exe", NULL);
    SERVICE_FAILURE_ACTIONSW *fa;
    FILE *out = tmpfile();
    char text[2048];
    size_t n;
    DWORD error;
    char err[512];
    int warnings = -1;
    (void)state;
    assert_non_null(out);
    o.out = out;
    assert_int_equal(apc_install_service(&o, &warnings, err, sizeof err), 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    (void)fclose(out);
    fa = query_config2(SERVICE_CONFIG_FAILURE_ACTIONS, &error);
    if (fa != NULL && fa->cActions == 3) {
        assert_int_equal(fa->dwResetPeriod, 86400);
        assert_int_equal(fa->lpsaActions[0].Type, SC_ACTION_RESTART);
        assert_int_equal(fa->lpsaActions[0].Delay, 5000);
        assert_int_equal(fa->lpsaActions[1].Delay, 10000);
        assert_int_equal(fa->lpsaActions[2].Type, SC_ACTION_RESTART);
        assert_int_equal(fa->lpsaActions[2].Delay, 60000);
        assert_null(strstr(text, "warning: failure actions (restart"));
    } else {
        assert_true(on_wine());
        (void)printf("failure actions: not stored by Wine (verified on Windows only); "
                     "install warned: %s",
                     text);
        /* Wine 8 accepts them, stores nothing, and refuses to read them back. */
        assert_non_null(strstr(text, "apcsvc: warning: failure actions not confirmed: reading "
                                     "them back failed: Invalid level (error 124)\n"));
        assert_true(warnings >= 1);
    }
    free(fa);
}

static void test_install_sets_delayed_auto_start_or_warns(void **state)
{
    apc_install_opts_t o = opts("C:\\apc\\apcsvc.exe", NULL);
    SERVICE_DELAYED_AUTO_START_INFO *d;
    FILE *out = tmpfile();
    char text[2048];
    size_t n;
    DWORD error;
    char err[512];
    (void)state;
    assert_non_null(out);
    o.out = out;
    assert_int_equal(apc_install_service(&o, NULL, err, sizeof err), 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    (void)fclose(out);
    d = query_config2(SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &error);
    if (d != NULL && d->fDelayedAutostart) {
        assert_null(strstr(text, "warning: delayed automatic start"));
    } else {
        assert_true(on_wine());
        (void)printf("delayed auto start: not stored by Wine (verified on Windows only); "
                     "install said: %s",
                     text);
        assert_non_null(strstr(text, "apcsvc: warning: delayed automatic start not set: "));
    }
    free(d);
}

static void test_install_over_an_existing_service_updates_it_in_place(void **state)
{
    apc_install_opts_t o = opts("C:\\new\\apcsvc.exe", "C:\\new\\apcsvc.json");
    QUERY_SERVICE_CONFIGW *qc;
    FILE *out = tmpfile();
    char text[2048];
    char err[512];
    char *bin;
    size_t n;
    (void)state;
    install_ok("C:\\old\\apcsvc.exe", "C:\\old\\apcsvc.json");
    assert_non_null(out);
    o.out = out;
    assert_int_equal(apc_install_service(&o, NULL, err, sizeof err), 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    (void)fclose(out);
    qc = query_config();
    bin = utf8(qc->lpBinaryPathName);
    assert_string_equal(bin, "\"C:\\new\\apcsvc.exe\" --config \"C:\\new\\apcsvc.json\"");
    assert_int_equal(qc->dwStartType, SERVICE_AUTO_START);
    assert_non_null(strstr(text, "apcsvc: service \""));
    assert_non_null(strstr(text, "\" existed: updated it in place: \"C:\\new\\apcsvc.exe\" "
                                 "--config \"C:\\new\\apcsvc.json\"\n"));
    free(bin);
    free(qc);
}

static void test_install_registers_the_event_source(void **state)
{
    wchar_t key[256];
    wchar_t file[MAX_PATH];
    DWORD types = 0;
    DWORD size = sizeof file;
    DWORD type = 0;
    char *f;
    (void)state;
    install_ok("C:\\apc\\apcsvc.exe", NULL);
    (void)_snwprintf(key, 256, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%hs",
                     source);
    assert_int_equal(RegGetValueW(HKEY_LOCAL_MACHINE, key, L"EventMessageFile",
                                  RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND, &type, file, &size),
                     ERROR_SUCCESS);
    assert_int_equal(type, REG_EXPAND_SZ);
    f = utf8(file);
    assert_string_equal(f, "C:\\apc\\apcsvc.exe");
    size = sizeof types;
    assert_int_equal(RegGetValueW(HKEY_LOCAL_MACHINE, key, L"TypesSupported", RRF_RT_REG_DWORD,
                                  NULL, &types, &size),
                     ERROR_SUCCESS);
    assert_int_equal(types, 7);
    free(f);
}

static void test_remove_deletes_the_service_and_the_event_source(void **state)
{
    apc_install_opts_t o = opts(NULL, NULL);
    SC_HANDLE scm;
    SC_HANDLE svc;
    wchar_t key[256];
    HKEY h = NULL;
    char err[512] = "";
    (void)state;
    install_ok("C:\\apc\\apcsvc.exe", NULL);
    assert_int_equal(apc_install_remove(&o, NULL, err, sizeof err), 0);
    scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    assert_non_null(scm);
    svc = OpenServiceW(scm, wname, SERVICE_QUERY_STATUS);
    assert_null(svc);
    assert_int_equal(GetLastError(), ERROR_SERVICE_DOES_NOT_EXIST);
    CloseServiceHandle(scm);
    (void)_snwprintf(key, 256, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%hs",
                     source);
    assert_int_equal(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_READ, &h), ERROR_FILE_NOT_FOUND);
}

static void test_remove_of_a_missing_service_is_not_found(void **state)
{
    apc_install_opts_t o = opts(NULL, NULL);
    char err[512] = "";
    char want[200];
    (void)state;
    assert_int_equal(apc_install_remove(&o, NULL, err, sizeof err), APC_ENOTFOUND);
    (void)snprintf(want, sizeof want, "service \"%s\" is not installed", name);
    assert_string_equal(err, want);
}

static void test_event_source_remove_of_a_missing_key_is_no_error(void **state)
{
    char err[256];
    int existed = -1;
    (void)state;
    assert_int_equal(apc_install_event_source_remove(source, &existed, err, sizeof err), 0);
    assert_int_equal(existed, 0);
}

static void test_event_source_name_with_a_backslash_is_refused(void **state)
{
    char err[256];
    (void)state;
    assert_int_equal(apc_install_event_source_add("a\\b", "C:\\x.exe", err, sizeof err),
                     APC_EINVAL);
    assert_string_equal(err, "event source name \"a\\b\" is not valid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binpath_quotes_exe_and_config),
        cmocka_unit_test(test_binpath_without_config_is_the_quoted_exe),
        cmocka_unit_test(test_binpath_refuses_a_quote_in_a_path),
        cmocka_unit_test(test_binpath_refuses_a_trailing_backslash),
        cmocka_unit_test(test_self_path_is_this_executable),
        cmocka_unit_test_setup_teardown(
            test_install_creates_an_auto_start_service_with_the_quoted_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_sets_the_description, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_sets_the_preshutdown_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_sets_failure_actions_or_warns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_install_sets_delayed_auto_start_or_warns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_install_over_an_existing_service_updates_it_in_place,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_registers_the_event_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_deletes_the_service_and_the_event_source, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_remove_of_a_missing_service_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_event_source_remove_of_a_missing_key_is_no_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_source_name_with_a_backslash_is_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
