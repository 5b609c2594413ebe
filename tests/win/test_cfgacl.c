/*
 * test_cfgacl.c - the configuration file's ACL check (service/win/cfgacl.c): descriptors built
 * from SDDL with ConvertStringSecurityDescriptorToSecurityDescriptorW go through the pure
 * check, then real files through the reading wrapper.
 *
 * Wine 8 does not store a DACL set on a file; it derives one from the Unix mode bits (owner =
 * the Wine user, SYSTEM and that user full control, Everyone read, plus write for Everyone
 * when the file is o+w). SetNamedSecurityInfoW with an Everyone write entry sets o+w, so the
 * real-file tests use exactly the entry Wine reads back (0x1301ff), and assert the same text
 * on Windows and under Wine.
 *
 * The last tests run the REAL apcsvc.exe (console mode) and apcctl.exe on such a file: the
 * start is refused with exit code 2 and the finding, --allow-insecure-config starts and logs
 * a WARNING, and a reload of a file that became insecure is refused while the old
 * configuration keeps running.
 *
 * Runs on the test's main thread; the service is a child process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "cfgacl.h"
#include "e2e_harness.h"
#include "win_util.h"

#define CFG "C:\\ProgramData\\ApcSched\\apcsvc.json"
#define DIR "C:\\ProgramData\\ApcSched"
/* Everyone may write (and Wine reads exactly this back from the mode o+rwx); and the secure
   counterpart, which Wine reads back as its default (o+rx). */
#define INSECURE_SDDL L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)(A;;0x1301ff;;;WD)"
#define SECURE_SDDL L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)(A;;0x1200a9;;;WD)"
#define EVERYONE_FINDING                                                        \
    "%s: refused: Everyone may change this file (ACE grants "                   \
    "FILE_WRITE_DATA|FILE_APPEND_DATA|DELETE); make it writable by SYSTEM and " \
    "Administrators only: icacls \"%s\" /inheritance:r /grant:r *S-1-5-18:F "   \
    "*S-1-5-32-544:F *S-1-5-32-545:R /remove:g *S-1-1-0" TAIL
#define TAIL "; or start the service with --allow-insecure-config"
#define FILE_FIX                                                        \
    "make it writable by SYSTEM and Administrators only: icacls \"" CFG \
    "\" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F *S-1-5-32-545:R"
#define DIR_FIX                                                               \
    "make it writable by SYSTEM and Administrators only: icacls \"" DIR       \
    "\" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F " \
    "*S-1-5-32-545:(OI)(CI)RX"

/* Runs the pure check on the descriptor sddl describes; err gets the finding. */
static int check(const wchar_t *sddl, int is_folder, PSID self, char *err, size_t errsz)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    int rc;

    assert_true(
        ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL));
    err[0] = '\0';
    rc = apc_cfgacl_check_sd(sd, is_folder, is_folder ? DIR : CFG, self, err, errsz);
    LocalFree(sd);
    return rc;
}

static void secure_file_is_accepted(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(
        check(L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)", 0, NULL, err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void users_write_is_refused_naming_account_rights_and_fix(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(
        check(L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFW;;;BU)", 0, NULL, err, sizeof err),
        APC_EDENIED);
    assert_string_equal(err, CFG ": refused: BUILTIN\\Users may change this file (ACE grants "
                                 "FILE_WRITE_DATA|FILE_APPEND_DATA); " FILE_FIX TAIL);
}

static void everyone_generic_all_is_refused_and_removed_by_the_fix(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(check(L"O:BAD:(A;;FA;;;SY)(A;;GA;;;WD)", 0, NULL, err, sizeof err),
                     APC_EDENIED);
    assert_string_equal(err, CFG
                        ": refused: Everyone may change this file (ACE grants "
                        "FILE_WRITE_DATA|FILE_APPEND_DATA|DELETE|WRITE_DAC|WRITE_OWNER); " FILE_FIX
                        " /remove:g *S-1-1-0" TAIL);
}

static void null_dacl_is_refused(void **state)
{
    char err[2048];
    SECURITY_DESCRIPTOR sd;
    BYTE admins[SECURITY_MAX_SID_SIZE];
    DWORD n = sizeof admins;
    (void)state;
    /* Built by hand: Wine's SDDL parser does not know "D:NO_ACCESS_CONTROL". */
    assert_true(CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, admins, &n));
    assert_true(InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION));
    assert_true(SetSecurityDescriptorOwner(&sd, (PSID)admins, FALSE));
    assert_true(SetSecurityDescriptorDacl(&sd, TRUE, NULL, FALSE));
    assert_int_equal(apc_cfgacl_check_sd(&sd, 0, CFG, NULL, err, sizeof err), APC_EDENIED);
    assert_string_equal(err, CFG ": refused: this file has no DACL, so everyone may change it; "
                                 "make it writable by SYSTEM and Administrators only: icacls \"" CFG
                                 "\" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F "
                                 "*S-1-5-32-545:R" TAIL);
}

static void owner_users_is_refused(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(check(L"O:BUD:P(A;;FA;;;SY)(A;;FA;;;BA)", 0, NULL, err, sizeof err),
                     APC_EDENIED);
    assert_string_equal(err, CFG ": refused: its owner BUILTIN\\Users may change the permissions "
                                 "of this file; make Administrators the owner: icacls \"" CFG
                                 "\" /setowner *S-1-5-32-544" TAIL);
}

static void owner_system_and_trusted_installer_are_accepted(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(check(L"O:SYD:P(A;;FA;;;SY)", 0, NULL, err, sizeof err), 0);
    assert_int_equal(check(L"O:S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
                           L"D:P(A;;FA;;;SY)",
                           0, NULL, err, sizeof err),
                     0);
}

static void inherit_only_ace_is_ignored(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(
        check(L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;FA;;;BU)", 1, NULL, err, sizeof err), 0);
}

static void deny_for_the_same_sid_before_the_allow_makes_it_safe(void **state)
{
    char err[2048];
    (void)state;
    /* 0xd0006 = FILE_WRITE_DATA|FILE_APPEND_DATA|DELETE|WRITE_DAC|WRITE_OWNER. */
    assert_int_equal(check(L"O:BAD:(D;;0xd0006;;;BU)(A;;FA;;;BU)", 0, NULL, err, sizeof err), 0);
}

static void deny_for_another_sid_does_not_make_it_safe(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(check(L"O:BAD:(D;;0xd0006;;;BG)(A;;FA;;;BU)", 0, NULL, err, sizeof err),
                     APC_EDENIED);
    assert_non_null(strstr(err, "BUILTIN\\Users may change this file"));
}

static void deny_after_the_allow_does_not_make_it_safe(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(check(L"O:BAD:(A;;FA;;;BU)(D;;0xd0006;;;BU)", 0, NULL, err, sizeof err),
                     APC_EDENIED);
}

static void partial_deny_leaves_the_rest_as_the_finding(void **state)
{
    char err[2048];
    (void)state;
    /* Denies FILE_WRITE_DATA only: FILE_APPEND_DATA still lets Users add jobs. */
    assert_int_equal(check(L"O:BAD:(D;;0x2;;;BU)(A;;0x6;;;BU)", 0, NULL, err, sizeof err),
                     APC_EDENIED);
    assert_string_equal(err, CFG ": refused: BUILTIN\\Users may change this file (ACE grants "
                                 "FILE_APPEND_DATA); " FILE_FIX TAIL);
}

static void folder_add_file_for_users_is_accepted(void **state)
{
    char err[2048];
    (void)state;
    /* What C:\ProgramData gives Users: WD (add file), AD (add subfolder), WEA, WA; and GW. */
    assert_int_equal(check(L"O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)"
                           L"(A;CI;0x116;;;BU)(A;;GW;;;BU)",
                           1, NULL, err, sizeof err),
                     0);
}

static void folder_delete_child_for_users_is_refused(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(
        check(L"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x40;;;BU)", 1, NULL, err, sizeof err),
        APC_EDENIED);
    assert_string_equal(err, DIR ": refused: BUILTIN\\Users may change the files in this folder "
                                 "(ACE grants FILE_DELETE_CHILD); " DIR_FIX TAIL);
}

static void creator_owner_and_owner_rights_aces_are_not_findings(void **state)
{
    char err[2048];
    (void)state;
    assert_int_equal(
        check(L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;CO)(A;;FA;;;S-1-3-4)", 0, NULL, err, sizeof err), 0);
}

static void own_account_is_trusted_and_another_user_is_not(void **state)
{
    const wchar_t *sddl = L"O:S-1-5-21-1-2-3-1000D:P(A;;FA;;;S-1-5-21-1-2-3-1000)";
    PSID self = NULL;
    char err[2048];
    (void)state;
    assert_true(ConvertStringSidToSidW(L"S-1-5-21-1-2-3-1000", &self));
    assert_int_equal(check(sddl, 0, self, err, sizeof err), 0);
    assert_int_equal(check(sddl, 0, NULL, err, sizeof err), APC_EDENIED);
    assert_non_null(strstr(err, ": refused: its owner "));
    LocalFree(self);
}

/* ---- Real files through apc_cfgacl_check_file ------------------------------------------- */

static char *temp_file(wchar_t *wpath)
{
    wchar_t dir[MAX_PATH];
    HANDLE h;
    char *p;

    assert_true(GetTempPathW(MAX_PATH, dir) > 0);
    assert_true(GetTempFileNameW(dir, L"acl", 0, wpath) != 0);
    h = CreateFileW(wpath, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    assert_true(CloseHandle(h));
    p = apc_wide_to_utf8(wpath);
    assert_non_null(p);
    return p;
}

static void set_dacl(const wchar_t *path, const wchar_t *sddl)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    PACL dacl = NULL;

    assert_true(
        ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL));
    assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted));
    assert_int_equal(
        SetNamedSecurityInfoW((LPWSTR)path, SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL,
                              NULL, dacl, NULL),
        ERROR_SUCCESS);
    LocalFree(sd);
}

static void a_new_temp_file_of_this_account_is_accepted(void **state)
{
    wchar_t w[MAX_PATH];
    char err[2048] = "";
    char *p = temp_file(w);
    (void)state;
    set_dacl(w, SECURE_SDDL);
    assert_int_equal(apc_cfgacl_check_file(p, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_true(DeleteFileW(w));
    free(p);
}

static void a_file_everyone_may_write_is_refused(void **state)
{
    wchar_t w[MAX_PATH];
    char err[2048] = "";
    char want[4096];
    char *p = temp_file(w);
    (void)state;
    /* 0x1301ff is FILE_ALL_ACCESS without WRITE_DAC and WRITE_OWNER: what Wine reads back for
       a file with the Unix mode o+rwx, and what Windows stores as given. */
    set_dacl(w, INSECURE_SDDL);
    assert_int_equal(apc_cfgacl_check_file(p, err, sizeof err), APC_EDENIED);
    (void)snprintf(want, sizeof want, EVERYONE_FINDING, p, p);
    assert_string_equal(err, want);
    set_dacl(w, SECURE_SDDL);
    assert_true(DeleteFileW(w));
    free(p);
}

static void a_missing_file_is_left_to_the_config_loader(void **state)
{
    char err[256] = "";
    wchar_t dir[MAX_PATH];
    char *d, path[1024];
    (void)state;
    assert_true(GetTempPathW(MAX_PATH, dir) > 0);
    d = apc_wide_to_utf8(dir);
    assert_non_null(d);
    (void)snprintf(path, sizeof path, "%sno-such-apcsvc-config.json", d);
    assert_int_equal(apc_cfgacl_check_file(path, err, sizeof err), 0);
    free(d);
}

/* ---- The real service --------------------------------------------------------------------- */

static void set_dacl_utf8(const char *path, const wchar_t *sddl)
{
    wchar_t *w = apc_utf8_to_wide(path);
    assert_non_null(w);
    set_dacl(w, sddl);
    free(w);
}

static void the_service_refuses_to_start_on_a_config_everyone_may_write(void **state)
{
    e2e_svc_t *s = *state;
    char args[MAX_PATH + 64], want[4096];
    wchar_t *db;
    e2e_result_t r;

    e2e_svc_init(s, "aclrefuse");
    e2e_svc_config(s, 1, "{\"name\": \"ok\", \"builtin\": \"noop\"}");
    set_dacl_utf8(s->config, INSECURE_SDDL);
    (void)snprintf(args, sizeof args, "run --config \"%s\"", s->config);
    r = e2e_run(E2E_APCSVC, args);
    (void)snprintf(want, sizeof want,
                   EVERYONE_FINDING "\napcsvc: the configuration file is not "
                                    "protected\n",
                   s->config, s->config);
    assert_int_equal(r.code, 2);
    assert_string_equal(r.err, want);
    e2e_result_free(&r);
    /* Refused before anything was created from the file: no history database. */
    db = apc_utf8_to_wide(s->db);
    assert_non_null(db);
    assert_int_equal(GetFileAttributesW(db), INVALID_FILE_ATTRIBUTES);
    free(db);
    set_dacl_utf8(s->config, SECURE_SDDL);
}

static void
allow_insecure_config_starts_and_reloads_and_logs_warnings_naming_the_finding(void **state)
{
    e2e_svc_t *s = *state;
    char args[MAX_PATH + 64], finding[4096], want[4200];
    DWORD start = GetTickCount();
    e2e_result_t r;
    char *log;

    e2e_svc_init(s, "aclwarn");
    e2e_svc_config(s, 1, "{\"name\": \"ok\", \"builtin\": \"noop\"}");
    set_dacl_utf8(s->config, INSECURE_SDDL);
    (void)snprintf(args, sizeof args, "run --config \"%s\" --allow-insecure-config", s->config);
    e2e_proc_start(&s->proc, E2E_APCSVC, args);
    while (!e2e_pipe_exists(s->name)) {
        if (e2e_proc_wait(&s->proc, 0))
            fail_msg("apcsvc exited with %lu; stderr:\n%s", (unsigned long)s->proc.code,
                     s->proc.err);
        if (GetTickCount() - start > E2E_START_MS)
            fail_msg("apcsvc %s: no control pipe within %u ms", s->name, E2E_START_MS);
        Sleep(20);
    }
    /* A reload of the same file is taken too, with the engine's own warning. */
    (void)snprintf(args, sizeof args, "--service %s reload", s->name);
    r = e2e_run(E2E_APCCTL, args);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "reloaded: 1 job(s), 0 added, 0 removed\n");
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
    (void)snprintf(finding, sizeof finding, EVERYONE_FINDING, s->config, s->config);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    (void)snprintf(want, sizeof want,
                   " WARNING service: the configuration file is not protected; used anyway "
                   "because of --allow-insecure-config: %s\r\n",
                   finding);
    if (strstr(log, want) == NULL)
        fail_msg("no start warning in the log:\n%s", log);
    (void)snprintf(want, sizeof want,
                   " WARNING engine: reload: the configuration file is not protected; used "
                   "anyway because of --allow-insecure-config: %s\r\n",
                   finding);
    if (strstr(log, want) == NULL)
        fail_msg("no reload warning in the log:\n%s", log);
    free(log);
    set_dacl_utf8(s->config, SECURE_SDDL);
}

static void a_reload_of_a_config_that_became_insecure_is_refused_and_the_old_one_stays(void **state)
{
    e2e_svc_t *s = *state;
    char line[MAX_PATH + 64], want[4200];
    e2e_result_t r;

    e2e_svc_init(s, "aclreload");
    e2e_svc_config(s, 1, "{\"name\": \"ok\", \"builtin\": \"noop\"}");
    e2e_svc_start(s);
    e2e_svc_config(s, 1,
                   "{\"name\": \"ok\", \"builtin\": \"noop\"},"
                   "{\"name\": \"fresh\", \"builtin\": \"noop\"}");
    set_dacl_utf8(s->config, INSECURE_SDDL);
    (void)snprintf(line, sizeof line, "--service %s reload", s->name);
    r = e2e_run(E2E_APCCTL, line);
    (void)snprintf(want, sizeof want, "apcctl: " EVERYONE_FINDING " (EINVAL)\n", s->config,
                   s->config);
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, want);
    e2e_result_free(&r);

    /* Protected again, the same file reloads: the refusal was the ACL, nothing else. */
    set_dacl_utf8(s->config, SECURE_SDDL);
    r = e2e_run(E2E_APCCTL, line);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "reloaded: 2 job(s), 1 added, 0 removed\n");
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secure_file_is_accepted),
        cmocka_unit_test(users_write_is_refused_naming_account_rights_and_fix),
        cmocka_unit_test(everyone_generic_all_is_refused_and_removed_by_the_fix),
        cmocka_unit_test(null_dacl_is_refused),
        cmocka_unit_test(owner_users_is_refused),
        cmocka_unit_test(owner_system_and_trusted_installer_are_accepted),
        cmocka_unit_test(inherit_only_ace_is_ignored),
        cmocka_unit_test(deny_for_the_same_sid_before_the_allow_makes_it_safe),
        cmocka_unit_test(deny_for_another_sid_does_not_make_it_safe),
        cmocka_unit_test(deny_after_the_allow_does_not_make_it_safe),
        cmocka_unit_test(partial_deny_leaves_the_rest_as_the_finding),
        cmocka_unit_test(folder_add_file_for_users_is_accepted),
        cmocka_unit_test(folder_delete_child_for_users_is_refused),
        cmocka_unit_test(creator_owner_and_owner_rights_aces_are_not_findings),
        cmocka_unit_test(own_account_is_trusted_and_another_user_is_not),
        cmocka_unit_test(a_new_temp_file_of_this_account_is_accepted),
        cmocka_unit_test(a_file_everyone_may_write_is_refused),
        cmocka_unit_test(a_missing_file_is_left_to_the_config_loader),
        cmocka_unit_test_setup_teardown(the_service_refuses_to_start_on_a_config_everyone_may_write,
                                        e2e_svc_setup, e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            allow_insecure_config_starts_and_reloads_and_logs_warnings_naming_the_finding,
            e2e_svc_setup, e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_reload_of_a_config_that_became_insecure_is_refused_and_the_old_one_stays,
            e2e_svc_setup, e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
