/*
 * test_rel_security.c - security read-backs and hostile command lines, against the REAL
 * apcsvc.exe:
 *
 *   - the live control pipe's security descriptor, read back with GetSecurityInfo: owner
 *     Administrators, a present, protected DACL (never a NULL DACL) with exactly SYSTEM and
 *     Administrators (plus control_allow), and no ACE for Everyone or Anonymous;
 *   - the data folder the service creates: its DACL is read back and compared with the
 *     documented one; Wine ignores the descriptor given to CreateDirectoryW, so under Wine the
 *     test prints what it read and what Windows gives (verified on Windows only);
 *   - configured and submitted command lines with quotes, %, ^, &, |, <, >, backslashes:
 *     an .exe receives each argument literally (the helper prints its argv), and a .bat target
 *     with a cmd.exe metacharacter is refused with an error naming the argument - the script
 *     never runs (it would leave a marker file);
 *   - the config file's ACL check (service/win/cfgacl.c): a table of descriptors, each
 *     refused or accepted as README "Security model in short" says, and the real apcsvc.exe
 *     refusing (exit 2) a config that Everyone may write; FIGURE security.config_acl.
 *
 * Thread: the cmocka test thread; the service and its jobs are separate processes.
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
#include "rel_common.h"

/* The descriptor of a kernel object or file as SDDL (owner + DACL); fails the test on error. */
static char *sddl_of(HANDLE h, const wchar_t *path)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    wchar_t *w = NULL;
    char *s;
    DWORD rc;

    if (h != NULL)
        rc = GetSecurityInfo(h, SE_KERNEL_OBJECT,
                             OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, NULL, NULL,
                             &dacl, NULL, &sd);
    else
        rc = GetNamedSecurityInfoW(path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL,
                                   &dacl, NULL, &sd);
    if (rc != ERROR_SUCCESS)
        fail_msg("GetSecurityInfo: error %lu", (unsigned long)rc);
    /* A NULL DACL would grant everyone everything: it must be present and non-NULL. */
    assert_non_null(dacl);
    assert_true(ConvertSecurityDescriptorToStringSecurityDescriptorW(
        sd, SDDL_REVISION_1,
        (h != NULL ? OWNER_SECURITY_INFORMATION : 0) | DACL_SECURITY_INFORMATION, &w, NULL));
    s = apc_wide_to_utf8(w);
    assert_non_null(s);
    LocalFree(w);
    LocalFree(sd);
    return s;
}

/* Fails if the SDDL has an ACE for Everyone (WD), Anonymous (AN) or Guests (BG). */
static void assert_no_world_ace(const char *sddl)
{
    assert_null(strstr(sddl, ";;;WD)"));
    assert_null(strstr(sddl, ";;;AN)"));
    assert_null(strstr(sddl, ";;;BG)"));
    assert_null(strstr(sddl, ";;;S-1-1-0)"));
}

/* Writes a config with the given service extras and jobs (like e2e_svc_config, but free). */
static void write_config(e2e_svc_t *s, const char *service_extra, const char *jobs)
{
    apc_buf_t b = {0};

    apc_buf_printf(&b,
                   "{\"service\": {\"name\": \"%s\", \"workers\": 4, \"shutdown_grace\": \"2s\", "
                   "\"history\": \"history.db\", \"output_dir\": \"runs\", \"log_dir\": "
                   "\"logs\"%s},\n \"jobs\": [\n%s\n]}\n",
                   s->name, service_extra, jobs);
    assert_false(apc_buf_failed(&b));
    e2e_write_file(s->config, b.data);
    apc_buf_free(&b);
}

static char *pipe_sddl(const char *name)
{
    wchar_t *path = e2e_wide("\\\\.\\pipe\\%s", name);
    HANDLE h = CreateFileW(path, READ_CONTROL | GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL);
    char *s;

    free(path);
    assert_true(h != INVALID_HANDLE_VALUE);
    s = sddl_of(h, NULL);
    CloseHandle(h);
    return s;
}

static void the_live_pipe_dacl_is_protected_and_grants_only_system_and_administrators(void **state)
{
    e2e_svc_t *s = *state;
    char *sddl;

    e2e_svc_init(s, "pipedacl");
    write_config(s, "", "{\"name\": \"idle\", \"builtin\": \"noop\"}");
    e2e_svc_start(s);
    sddl = pipe_sddl(s->name);
    rel_figure("security.pipe_dacl", "sddl=%s everyone=no anonymous=no null_dacl=no", sddl);
    assert_string_equal(sddl, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)");
    assert_no_world_ace(sddl);
    free(sddl);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void control_allow_adds_one_ace_without_create_pipe_instance(void **state)
{
    e2e_svc_t *s = *state;
    char *sddl;

    e2e_svc_init(s, "pipeallow");
    write_config(s, ", \"control_allow\": [\"Users\"]",
                 "{\"name\": \"idle\", \"builtin\": \"noop\"}");
    e2e_svc_start(s);
    sddl = pipe_sddl(s->name);
    rel_figure("security.pipe_dacl_control_allow", "sddl=%s", sddl);
    assert_string_equal(sddl, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;BU)");
    assert_no_world_ace(sddl);
    free(sddl);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void the_data_folder_the_service_creates_gets_the_documented_dacl(void **state)
{
    static const char want[] = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";
    e2e_svc_t *s = *state;
    char runs[MAX_PATH];
    wchar_t *w;
    char *sddl;
    int wine = rel_under_wine();

    e2e_svc_init(s, "datadacl");
    write_config(s, "", "{\"name\": \"idle\", \"builtin\": \"noop\"}");
    e2e_svc_start(s);
    (void)snprintf(runs, sizeof runs, "%s\\runs", s->dir);
    w = apc_utf8_to_wide(runs);
    assert_non_null(w);
    sddl = sddl_of(NULL, w);
    free(w);
    rel_figure("security.data_dacl", "read=%s windows_expects=%s %s", sddl, want,
               wine ? "(Wine ignores the descriptor: verified on Windows only)" : "(Windows)");
    if (wine)
        print_message("native-Windows check skipped under Wine: folder DACL read back as %s\n",
                      sddl);
    else
        assert_string_equal(sddl, want);
    assert_no_world_ace(sddl);
    free(sddl);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* The argument lines the helper printed for run id, after argv[0] and its "argv" verb. */
static char *argv_output(const char *db, int64_t id)
{
    apc_run_record_t *r = e2e_wait_run(db, id, APC_RUN_STATUS_COUNT, 60000);
    char *text, *nl;

    if (r->status != APC_RUN_SUCCEEDED)
        fail_msg("run %lld: %s: %s", (long long)id, apc_run_status_name(r->status),
                 r->error != NULL ? r->error : "");
    assert_non_null(r->output_path);
    text = e2e_lf(e2e_slurp(r->output_path));
    assert_non_null(text);
    apc_run_record_free(r);
    nl = strchr(text, '\n');
    assert_non_null(nl);
    nl = strchr(nl + 1, '\n');
    assert_non_null(nl);
    memmove(text, nl + 1, strlen(nl + 1) + 1);
    return text;
}

/* The hostile arguments, as JSON and as the program must receive them (one per line). */
#define HOSTILE_JSON                                                                \
    "\"a \\\"quoted\\\" b\", \"100%PATH%\", \"x^y\", \"p&q\", \"r|s\", \"t<u>v\", " \
    "\"back\\\\slash\\\\\", \"\\\"\", \"\", \"& echo INJECTED\", \"%COMSPEC%\", \"(x)\", \"!x!\""
#define HOSTILE_ARGV                                                                          \
    "a \"quoted\" b\n100%PATH%\nx^y\np&q\nr|s\nt<u>v\nback\\slash\\\n\"\n\n& echo INJECTED\n" \
    "%COMSPEC%\n(x)\n!x!\n"

static void hostile_arguments_in_the_config_reach_an_exe_literally(void **state)
{
    e2e_svc_t *s = *state;

    e2e_svc_init(s, "argvcfg");
    write_config(s, "",
                 "{\"name\": \"echo\", \"schedule\": \"@startup\", \"command\": [\"%CHILD%\", "
                 "\"argv\", " HOSTILE_JSON "]}");
    /* write_config does not substitute %CHILD%: do it here. */
    {
        char *text = e2e_slurp(s->config), *hit;
        apc_buf_t b = {0};
        assert_non_null(text);
        hit = strstr(text, "%CHILD%");
        assert_non_null(hit);
        apc_buf_printf(&b, "%.*s%s%s", (int)(hit - text), text, s->child, hit + 7);
        assert_false(apc_buf_failed(&b));
        e2e_write_file(s->config, b.data);
        apc_buf_free(&b);
        free(text);
    }
    e2e_svc_start(s);
    {
        char *got = argv_output(s->db, 1);
        assert_string_equal(got, HOSTILE_ARGV);
        free(got);
    }
    rel_figure("security.argv_exe", "arguments=13 received_literally=13 injected=0");
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void hostile_arguments_submitted_through_the_pipe_reach_an_exe_literally(void **state)
{
    e2e_svc_t *s = *state;
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP), jobs[1024];
    int64_t id = 0;
    int code = 0;
    char *got;

    assert_non_null(buf);
    e2e_svc_init(s, "argvpipe");
    (void)snprintf(jobs, sizeof jobs,
                   "{\"name\": \"echo\", \"allow_args\": true, \"command\": [\"%s\", \"argv\"]}",
                   s->child);
    write_config(s, "", jobs);
    e2e_svc_start(s);
    assert_int_equal(rel_pipe_open(&p, s->name, 30000), 0);
    assert_int_equal(
        rel_submit(&p, "{\"v\":1,\"op\":\"submit\",\"job\":\"echo\",\"args\":[" HOSTILE_JSON "]}",
                   &id, &code, buf, 30000),
        1);
    rel_pipe_close(&p);
    got = argv_output(s->db, id);
    assert_string_equal(got, HOSTILE_ARGV);
    free(got);
    free(buf);
    rel_figure("security.argv_pipe", "arguments=13 received_literally=13 injected=0");
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void a_batch_target_with_cmd_metacharacters_is_refused_and_never_runs(void **state)
{
    static const char *const chars[] = {"%", "^", "&", "|", "\\\"", "<", ">", "!"};
    static const char *const shown[] = {"%", "^", "&", "|", "\"", "<", ">", "!"};
    e2e_svc_t *s = *state;
    char bat[MAX_PATH], batjson[MAX_PATH * 2], marker[MAX_PATH], want[512];
    apc_buf_t jobs = {0};
    size_t i, n = sizeof chars / sizeof chars[0];
    char *text;

    e2e_svc_init(s, "batch");
    (void)snprintf(bat, sizeof bat, "%s\\run me.bat", s->dir);
    (void)snprintf(marker, sizeof marker, "%s\\marker.txt", s->dir);
    /* If cmd.exe ever ran this script, the marker file would exist. */
    text = apc_strdup("@echo ran %* > \"%~dp0marker.txt\"\r\n");
    assert_non_null(text);
    e2e_write_file(bat, text);
    free(text);
    e2e_json_escape(bat, batjson, sizeof batjson);
    for (i = 0; i < n; i++)
        apc_buf_printf(&jobs,
                       "%s{\"name\": \"b%u\", \"schedule\": \"@startup\", \"command\": [\"%s\", "
                       "\"safe\", \"x%sy\"]}",
                       i == 0 ? "" : ",\n", (unsigned)i, batjson, chars[i]);
    assert_false(apc_buf_failed(&jobs));
    write_config(s, "", jobs.data);
    apc_buf_free(&jobs);
    e2e_svc_start(s);

    for (i = 0; i < n; i++) {
        e2e_rows_t rows = {{0}, 0};
        char job[8];
        DWORD start = GetTickCount();
        (void)snprintf(job, sizeof job, "b%u", (unsigned)i);
        while (e2e_rows_load(s->db, job, &rows) != 0 || rows.n == 0 ||
               !apc_run_status_is_final(rows.r[0]->status)) {
            if (GetTickCount() - start > 60000)
                fail_msg("no final row for job %s within 60 s", job);
            Sleep(50);
        }
        (void)snprintf(want, sizeof want,
                       "argv[2] contains '%s', which cmd.exe would interpret in an argument to a "
                       "batch file",
                       shown[i]);
        assert_string_equal(apc_run_status_name(rows.r[0]->status), "failed");
        if (rows.r[0]->error == NULL || strstr(rows.r[0]->error, want) == NULL)
            fail_msg("job %s: error \"%s\", wanted it to contain \"%s\"", job,
                     rows.r[0]->error != NULL ? rows.r[0]->error : "(null)", want);
        print_message("%s: %s\n", job, rows.r[0]->error);
        assert_true(rows.r[0]->pid <= 0);
        e2e_rows_free(&rows);
    }
    text = e2e_slurp(marker);
    assert_null(text);
    rel_figure("security.batch", "metacharacters=%u refused=%u script_ran=0", (unsigned)n,
               (unsigned)n);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- The config file's ACL ------------------------------------------------------------------ */

/* One descriptor and whether the check must refuse it (file or folder rules). */
static const struct {
    const wchar_t *sddl;
    int folder;
    int refuse;
    const char *what;
} acl_cases[] = {
    {L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)", 0, 0, "installer's file DACL"},
    {L"O:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)", 0, 0, "users read+execute"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFW;;;BU)", 0, 1, "users write"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;0x4;;;BU)", 0, 1, "users append only"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;GA;;;WD)", 0, 1, "everyone generic all"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;GW;;;AU)", 0, 1, "authenticated users generic write"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;WD;;;BU)", 0, 1, "users WRITE_DAC"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;WO;;;BU)", 0, 1, "users WRITE_OWNER"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;SD;;;BU)", 0, 1, "users DELETE"},
    {L"O:BUD:P(A;;FA;;;SY)(A;;FA;;;BA)", 0, 1, "owner users"},
    {L"O:WDD:P(A;;FA;;;SY)", 0, 1, "owner everyone"},
    {L"O:BAD:P(A;;FA;;;SY)(A;OICIIO;FA;;;BU)", 1, 0, "inherit-only users full"},
    {L"O:BAD:(D;;0xd0006;;;BU)(A;;FA;;;BU)", 0, 0, "same-SID deny first"},
    {L"O:BAD:(D;;0xd0006;;;BG)(A;;FA;;;BU)", 0, 1, "other-SID deny first"},
    {L"O:BAD:(A;;FA;;;BU)(D;;0xd0006;;;BU)", 0, 1, "deny after allow"},
    {L"O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;CI;0x116;;;BU)", 1, 0, "ProgramData-like folder"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;GW;;;BU)", 1, 0, "folder generic write (add only)"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;0x40;;;BU)", 1, 1, "folder FILE_DELETE_CHILD"},
    {L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;CO)(A;;FA;;;S-1-3-4)", 0, 0, "creator owner, owner rights"},
};

static void the_config_acl_check_refuses_every_writable_case_and_the_service_exits_2(void **state)
{
    e2e_svc_t *s = *state;
    size_t i, n = sizeof acl_cases / sizeof acl_cases[0];
    unsigned refused = 0, accepted = 0, wrong = 0;
    char err[2048], args[MAX_PATH + 64];
    PSECURITY_DESCRIPTOR sd = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    PACL dacl = NULL;
    wchar_t *w;
    e2e_result_t r;

    for (i = 0; i < n; i++) {
        int rc;
        assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
            acl_cases[i].sddl, SDDL_REVISION_1, &sd, NULL));
        rc = apc_cfgacl_check_sd(sd, acl_cases[i].folder, "C:\\cfg", NULL, err, sizeof err);
        LocalFree(sd);
        sd = NULL;
        assert_true(rc == 0 || rc == APC_EDENIED);
        if (rc == APC_EDENIED)
            refused++;
        else
            accepted++;
        if ((rc == APC_EDENIED) != acl_cases[i].refuse) {
            wrong++;
            print_error("%s: expected %s, got %d (%s)\n", acl_cases[i].what,
                        acl_cases[i].refuse ? "refused" : "accepted", rc, err);
        }
    }

    /* The real service on a file Everyone may write (what Wine reads back from o+rwx). */
    e2e_svc_init(s, "relacl");
    write_config(s, "", "{\"name\": \"ok\", \"builtin\": \"noop\"}");
    assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
        L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)(A;;0x1301ff;;;WD)", SDDL_REVISION_1, &sd, NULL));
    assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted));
    w = apc_utf8_to_wide(s->config);
    assert_non_null(w);
    assert_int_equal(
        SetNamedSecurityInfoW(w, SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL,
                              NULL, dacl, NULL),
        ERROR_SUCCESS);
    LocalFree(sd);
    (void)snprintf(args, sizeof args, "run --config \"%s\"", s->config);
    r = e2e_run(E2E_APCSVC, args);
    rel_figure("security.config_acl",
               "cases=%u refused=%u accepted=%u wrong=%u service_exit_on_everyone_writable=%lu",
               (unsigned)n, refused, accepted, wrong, (unsigned long)r.code);
    assert_int_equal(wrong, 0);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, ": refused: Everyone may change this file"));
    e2e_result_free(&r);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            the_live_pipe_dacl_is_protected_and_grants_only_system_and_administrators,
            e2e_svc_setup, e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(control_allow_adds_one_ace_without_create_pipe_instance,
                                        e2e_svc_setup, e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            the_data_folder_the_service_creates_gets_the_documented_dacl, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(hostile_arguments_in_the_config_reach_an_exe_literally,
                                        e2e_svc_setup, e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            hostile_arguments_submitted_through_the_pipe_reach_an_exe_literally, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_batch_target_with_cmd_metacharacters_is_refused_and_never_runs, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            the_config_acl_check_refuses_every_writable_case_and_the_service_exits_2, e2e_svc_setup,
            e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
