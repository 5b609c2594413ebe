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
 *     never runs (it would leave a marker file).
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
