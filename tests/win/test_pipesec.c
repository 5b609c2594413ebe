/*
 * test_pipesec.c - the control pipe's security descriptor and the caller's identity
 * (service/win/pipesec.c), through the real Win32 APIs.
 *
 * What Wine cannot show: it stores a pipe's DACL but does not enforce it, and every process is
 * an elevated administrator (DESIGN.md section 5). So these tests check what the descriptor
 * SAYS, exactly, by reading it back from a live pipe; that a non-member is actually refused is
 * verified on Windows only (docs/security.md).
 *
 * Runs on the test's main thread; a pipe client runs on a second thread where needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "pipesec.h"
#include "win_util.h"

/* The account of this test process as "DOMAIN\user", computed independently of pipesec.c. */
static char *own_account(void)
{
    HANDLE token = NULL;
    ULONGLONG buf[64]; /* aligned room for a TOKEN_USER and its SID */
    TOKEN_USER *tu = (TOKEN_USER *)buf;
    DWORD len = 0, nlen = 256, dlen = 256;
    wchar_t name[256], domain[256], full[520];
    SID_NAME_USE use;

    assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
    assert_true(GetTokenInformation(token, TokenUser, buf, sizeof(buf), &len));
    CloseHandle(token);
    assert_true(LookupAccountSidW(NULL, tu->User.Sid, name, &nlen, domain, &dlen, &use));
    if (domain[0] != L'\0')
        swprintf(full, 520, L"%ls\\%ls", domain, name);
    else
        swprintf(full, 520, L"%ls", name);
    return apc_wide_to_utf8(full);
}

static void no_accounts_gives_system_and_administrators_only(void **state)
{
    apc_pipesec_t sec = {0};
    char err[256] = "";

    (void)state;
    assert_int_equal(apc_pipesec_build(NULL, &sec, err, sizeof(err)), 0);
    assert_string_equal(sec.sddl, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)");
    assert_non_null(sec.sd);
    apc_pipesec_free(&sec);
    assert_null(sec.sd);
    assert_null(sec.sddl);
}

static void allowed_group_gets_read_write_without_create_instance(void **state)
{
    const char *allow[] = {"Users", NULL};
    apc_pipesec_t sec = {0};
    char err[256] = "";

    (void)state;
    assert_int_equal(APC_PIPESEC_CLIENT_ACCESS, 0x12019b);
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), 0);
    assert_string_equal(sec.sddl, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;BU)");
    apc_pipesec_free(&sec);
}

static void duplicate_and_builtin_accounts_add_no_ace(void **state)
{
    const char *allow[] = {"Users", "Administrators", "SYSTEM", "BUILTIN\\Users", NULL};
    apc_pipesec_t sec = {0};
    char err[256] = "";

    (void)state;
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), 0);
    assert_string_equal(sec.sddl, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;BU)");
    apc_pipesec_free(&sec);
}

static void user_account_appears_as_its_sid(void **state)
{
    char *me = own_account();
    const char *allow[] = {me, NULL};
    apc_pipesec_t sec = {0};
    char err[256] = "";
    HANDLE token = NULL;
    ULONGLONG buf[64]; /* aligned room for a TOKEN_USER and its SID */
    TOKEN_USER *tu = (TOKEN_USER *)buf;
    DWORD len = 0;
    wchar_t *sidw = NULL;
    char *sid8, expected[512];

    (void)state;
    assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
    assert_true(GetTokenInformation(token, TokenUser, buf, sizeof(buf), &len));
    CloseHandle(token);
    assert_true(ConvertSidToStringSidW(tu->User.Sid, &sidw));
    sid8 = apc_wide_to_utf8(sidw);
    LocalFree(sidw);
    snprintf(expected, sizeof(expected), "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;%s)", sid8);
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), 0);
    assert_string_equal(sec.sddl, expected);
    apc_pipesec_free(&sec);
    free(sid8);
    free(me);
}

static void unknown_account_is_an_error_naming_it(void **state)
{
    const char *allow[] = {"Users", "no-such-account-4711", NULL};
    apc_pipesec_t sec = {0};
    char err[256] = "";

    (void)state;
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), APC_EINVAL);
    assert_null(sec.sd);
    assert_null(sec.sddl);
    /* "<what>: <system text> (error 1332)": ERROR_NONE_MAPPED. */
    assert_true(
        strncmp(err, "service.control_allow: unknown account \"no-such-account-4711\": ", 62) == 0);
    assert_non_null(strstr(err, "(error 1332)"));
}

static void empty_account_name_is_an_error(void **state)
{
    const char *allow[] = {"", NULL};
    apc_pipesec_t sec = {0};
    char err[256] = "";

    (void)state;
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), APC_EINVAL);
    assert_string_equal(err, "service.control_allow: account \"\" is empty or not valid UTF-8");
}

static void free_accepts_null_and_zeroed(void **state)
{
    apc_pipesec_t sec = {0};

    (void)state;
    apc_pipesec_free(NULL);
    apc_pipesec_free(&sec);
}

static const wchar_t *const sec_pipe = L"\\\\.\\pipe\\apc-test-pipesec";

/* A client that connects with identification-level impersonation and sends one byte. */
static DWORD WINAPI one_message_client(LPVOID arg)
{
    HANDLE h;
    DWORD n = 0;

    (void)arg;
    if (!WaitNamedPipeW(sec_pipe, 5000))
        return 1;
    h = CreateFileW(sec_pipe, GENERIC_READ | GENERIC_WRITE | READ_CONTROL, 0, NULL, OPEN_EXISTING,
                    SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return 2;
    if (!WriteFile(h, "x", 1, &n, NULL)) {
        CloseHandle(h);
        return 3;
    }
    /* Wait for the server's one-byte "done" so the connection outlives its checks. */
    (void)ReadFile(h, &n, 1, &n, NULL);
    CloseHandle(h);
    return 0;
}

static void live_pipe_reads_back_the_built_dacl_and_names_the_client(void **state)
{
    const char *allow[] = {"Users", NULL};
    apc_pipesec_t sec = {0};
    SECURITY_ATTRIBUTES sa;
    HANDLE pipe, thread;
    char err[256] = "", buf[8], *back = NULL, *client = NULL, *me = own_account();
    DWORD n = 0, code = 99;

    (void)state;
    assert_int_equal(apc_pipesec_build(allow, &sec, err, sizeof(err)), 0);
    sa.nLength = sizeof(sa);
    sa.lpSecurityDescriptor = sec.sd;
    sa.bInheritHandle = FALSE;
    pipe = CreateNamedPipeW(sec_pipe, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                            PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, 4096, 4096, 0,
                            &sa);
    assert_true(pipe != INVALID_HANDLE_VALUE);
    thread = CreateThread(NULL, 0, one_message_client, NULL, 0, NULL);
    assert_non_null(thread);
    assert_true(ConnectNamedPipe(pipe, NULL) || GetLastError() == ERROR_PIPE_CONNECTED);
    assert_true(ReadFile(pipe, buf, sizeof(buf), &n, NULL));

    assert_int_equal(apc_pipesec_read_sddl(pipe, &back, err, sizeof(err)), 0);
    assert_string_equal(back, sec.sddl);
    assert_int_equal(apc_pipesec_client_name(pipe, &client, err, sizeof(err)), 0);
    assert_string_equal(client, me);

    assert_true(WriteFile(pipe, "k", 1, &n, NULL));
    assert_int_equal(WaitForSingleObject(thread, 10000), WAIT_OBJECT_0);
    assert_true(GetExitCodeThread(thread, &code));
    assert_int_equal(code, 0);
    CloseHandle(thread);
    CloseHandle(pipe);
    free(back);
    free(client);
    free(me);
    apc_pipesec_free(&sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_accounts_gives_system_and_administrators_only),
        cmocka_unit_test(allowed_group_gets_read_write_without_create_instance),
        cmocka_unit_test(duplicate_and_builtin_accounts_add_no_ace),
        cmocka_unit_test(user_account_appears_as_its_sid),
        cmocka_unit_test(unknown_account_is_an_error_naming_it),
        cmocka_unit_test(empty_account_name_is_an_error),
        cmocka_unit_test(free_accepts_null_and_zeroed),
        cmocka_unit_test(live_pipe_reads_back_the_built_dacl_and_names_the_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
