/*
 * test_apcctl.c - apcctl.exe as an operator uses it: the REAL executable is started as a child
 * process (CreateProcessW, stdout and stderr captured to files, GetExitCodeProcess), and its
 * exact output and exit code are checked.
 *
 * Covered here: help and usage errors for every command, the offline commands (validate with
 * exact diagnostics, next with exact timestamps, and both with --json), "service not running"
 * (exit 3), reading the history database directly when the service is down, a stdout write
 * error, and the pipe client against a scripted pipe server on a test thread (the exact
 * request apcctl sends, how it renders answers, errors, oversized messages, and `run --wait`
 * with its exit code taken from the streamed "finished" event). Tests against a real `apcsvc.exe run` are in
 * test_apcctl_svc.c once the service's console mode exists.
 *
 * Threads: the test thread, plus one scripted pipe-server thread per pipe test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_history.h"
#include "apc_str.h"
#include "win_util.h"

#define APCCTL APC_TEST_BIN_DIR "/tools/apcctl/apcctl.exe"
#define DATA APC_TEST_DATA_DIR "/apcctl"

/* ---- Running apcctl.exe ----------------------------------------------------------------- */

typedef struct result {
    DWORD code;
    char *out;
    char *err;
} result_t;

static void result_free(result_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* "/work/x" -> "Z:\work\x": Wine maps Z: to the Unix root. */
static void win_path(const char *unix_path, char *out, size_t size)
{
    size_t i;

    snprintf(out, size, "Z:%s", unix_path);
    for (i = 0; out[i] != '\0'; i++)
        if (out[i] == '/')
            out[i] = '\\';
}

static char *slurp(const wchar_t *path)
{
    HANDLE f = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, 0, NULL);
    LARGE_INTEGER size;
    DWORD got = 0;
    char *s;

    assert_true(f != INVALID_HANDLE_VALUE);
    assert_true(GetFileSizeEx(f, &size));
    s = malloc((size_t)size.QuadPart + 1);
    assert_non_null(s);
    assert_true(size.QuadPart == 0 || ReadFile(f, s, (DWORD)size.QuadPart, &got, NULL));
    s[got] = '\0';
    CloseHandle(f);
    return s;
}

static HANDLE inheritable_file(const wchar_t *path, DWORD access)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE h = CreateFileW(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, CREATE_ALWAYS,
                           FILE_ATTRIBUTE_TEMPORARY, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    return h;
}

/*
 * Runs `apcctl.exe <args>` (args is the rest of the command line, UTF-8) and returns its exit
 * code and output. stdout_access lets a test hand apcctl an unwritable stdout.
 */
static result_t run_ctl_ex(const char *args, DWORD stdout_access)
{
    char exe[MAX_PATH], line[8192];
    wchar_t tmp[MAX_PATH], outp[MAX_PATH], errp[MAX_PATH];
    wchar_t *wline;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    result_t r;
    HANDLE out, err, in;
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};

    memset(&r, 0, sizeof r);
    win_path(APCCTL, exe, sizeof exe);
    snprintf(line, sizeof line, "\"%s\" %s", exe, args);
    wline = apc_utf8_to_wide(line);
    assert_non_null(wline);
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    assert_true(GetTempFileNameW(tmp, L"cto", 0, outp) != 0);
    assert_true(GetTempFileNameW(tmp, L"cte", 0, errp) != 0);
    out = inheritable_file(outp, stdout_access);
    err = inheritable_file(errp, GENERIC_WRITE);
    in = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                     0, NULL);
    assert_true(in != INVALID_HANDLE_VALUE);
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in;
    si.hStdOutput = out;
    si.hStdError = err;
    assert_true(
        CreateProcessW(NULL, wline, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &si, &pi));
    assert_int_equal(WaitForSingleObject(pi.hProcess, 60000), WAIT_OBJECT_0);
    assert_true(GetExitCodeProcess(pi.hProcess, &r.code));
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    CloseHandle(out);
    CloseHandle(err);
    CloseHandle(in);
    r.out = slurp(outp);
    r.err = slurp(errp);
    DeleteFileW(outp);
    DeleteFileW(errp);
    free(wline);
    return r;
}

static result_t run_ctl(const char *args)
{
    return run_ctl_ex(args, GENERIC_WRITE);
}

/* The first line of s (without the newline), in a static buffer. */
static const char *first_line(const char *s)
{
    static char line[1024];
    size_t n = strcspn(s, "\r\n");

    if (n >= sizeof line)
        n = sizeof line - 1;
    memcpy(line, s, n);
    line[n] = '\0';
    return line;
}

/* ---- Help and usage ------------------------------------------------------------------------ */

static void help_lists_every_command_and_the_exit_codes(void **state)
{
    result_t r = run_ctl("--help");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(first_line(r.out),
                        "usage: apcctl [--service NAME] COMMAND [ARGS] [--help]");
    assert_non_null(
        strstr(r.out, "\n  run       queue a run now or later; --wait for it to end\n"));
    assert_non_null(strstr(r.out, "\n  next      the next fire times of a schedule (offline)\n"));
    assert_non_null(strstr(r.out, "\n  3    cannot reach the service (not running, access "
                                  "denied, busy)\n"));
    assert_non_null(strstr(r.out, "  130  the run was cancelled\n"));
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void every_command_has_help_that_exits_0(void **state)
{
    static const char *const cmds[] = {"status",   "list", "run",    "cancel", "history",
                                       "show",     "logs", "reload", "pause",  "resume",
                                       "validate", "next", "help"};
    char args[64], want[64];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        result_t r;
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        r = run_ctl(args);
        snprintf(want, sizeof want, "usage: apcctl %s", cmds[i]);
        assert_int_equal(r.code, 0);
        assert_memory_equal(r.out, want, strlen(want));
        assert_non_null(strstr(r.out, "Exit codes:\n"));
        result_free(&r);
    }
}

static void no_command_is_a_usage_error(void **state)
{
    result_t r = run_ctl("");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: no command given\n"
                               "apcctl: usage: apcctl COMMAND [ARGS] (see apcctl --help)\n");
    result_free(&r);
}

static void unknown_command_exits_2_naming_it(void **state)
{
    result_t r = run_ctl("frobnicate");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: unknown command \"frobnicate\"");
    result_free(&r);
}

static void unknown_option_exits_2_naming_it(void **state)
{
    result_t r = run_ctl("history --frob");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: history: unknown option \"--frob\"");
    result_free(&r);
}

static void option_of_another_command_is_refused(void **state)
{
    result_t r = run_ctl("status --tail 5");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: status: unknown option \"--tail\"");
    result_free(&r);
}

static void missing_argument_exits_2_naming_it(void **state)
{
    result_t r = run_ctl("show");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(r.err, "apcctl: show: missing RUN_ID\n"
                               "apcctl: usage: apcctl show RUN_ID [--json] [--db PATH | --config "
                               "PATH] (see apcctl show --help)\n");
    result_free(&r);
}

static void extra_argument_exits_2_naming_it(void **state)
{
    result_t r = run_ctl("cancel 5 6");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: cancel: unexpected argument \"6\"");
    result_free(&r);
}

static void run_id_must_be_a_number(void **state)
{
    result_t r = run_ctl("logs abc");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err),
                        "apcctl: logs: RUN_ID: \"abc\" is not a run id (a number from 1)");
    result_free(&r);
}

static void history_limit_out_of_range_exits_2(void **state)
{
    result_t r = run_ctl("history --limit 1001");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err),
                        "apcctl: history: --limit: \"1001\" is not a number from 1 to 1000");
    result_free(&r);
}

static void history_unknown_status_exits_2(void **state)
{
    result_t r = run_ctl("history --status broken");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err),
                        "apcctl: history: --status: \"broken\" is not one of queued running "
                        "succeeded failed timed_out cancelled interrupted skipped");
    result_free(&r);
}

static void run_at_and_in_are_exclusive(void **state)
{
    result_t r = run_ctl("run backup --at 2026-01-01T00:00:00Z --in 10m");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: run: --at and --in are exclusive");
    result_free(&r);
}

static void run_bad_duration_exits_2_with_the_parser_message(void **state)
{
    result_t r = run_ctl("run backup --in 5x");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: run: --in: duration \"5x\" has an unknown "
                                           "unit \"x\" (use ms, s, m, h or d)");
    result_free(&r);
}

static void run_bad_job_name_is_refused_before_sending(void **state)
{
    result_t r = run_ctl("--service apcctl-none run \"a b\"");
    (void)state;
    /* The codec refuses it client-side with the service's own words: no connection needed. */
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: run: submit.job: job name \"a b\" must be "
                                           "1-64 characters of A-Z a-z 0-9 . _ -");
    result_free(&r);
}

static void bad_service_name_exits_2(void **state)
{
    result_t r = run_ctl("--service ..\\x status");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err),
                        "apcctl: status: --service: \"..\\x\" is not a service name (1-64 "
                        "characters of A-Z a-z 0-9 . _ -)");
    result_free(&r);
}

static void double_dash_only_for_run(void **state)
{
    result_t r = run_ctl("status -- x");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err), "apcctl: status: \"--\" is not accepted here");
    result_free(&r);
}

/* ---- Offline: validate and next ------------------------------------------------------------ */

static void validate_valid_config_exits_0(void **state)
{
    result_t r = run_ctl("validate " DATA "/good.json");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, DATA "/good.json: valid (2 jobs, 0 warnings)\n");
    result_free(&r);
}

static void validate_reports_dst_warnings_and_still_exits_0(void **state)
{
    result_t r = run_ctl("validate " DATA "/dst.json");
    const char *p;
    (void)state;
    assert_int_equal(r.code, 0);
    /* The dates depend on today (the next 12 months); the shape and the rules do not. */
    p = strstr(r.out, DATA "/dst.json: warning: jobs[0].schedule: ");
    assert_non_null(p);
    assert_non_null(strstr(r.out, ": 02:30 does not exist (clocks go forward 02:00->03:00); "
                                  "runs at 03:00\n"));
    assert_non_null(strstr(r.out, ": 01:30 occurs twice (clocks go back 02:00->01:00); runs "
                                  "once, at the first (UTC-04:00)\n"));
    assert_non_null(strstr(r.out, DATA "/dst.json: valid (1 job, 2 warnings)\n"));
    result_free(&r);
}

static void validate_invalid_config_prints_every_error_and_exits_1(void **state)
{
    result_t r = run_ctl("validate " DATA "/bad.json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out,
                        DATA "/bad.json:4:18: jobs[0].schedule: minute field \"61\" is out "
                             "of range 0-59\n" DATA "/bad.json:5:49: jobs[1].retries: expected "
                             "an integer 0-100, got 101\n" DATA
                             "/bad.json: invalid (2 errors, 0 warnings)\n");
    result_free(&r);
}

static void validate_missing_file_exits_1(void **state)
{
    result_t r = run_ctl("validate " DATA "/missing.json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_memory_equal(
        r.out, DATA "/missing.json: cannot open: ", strlen(DATA "/missing.json: cannot open: "));
    assert_non_null(strstr(r.out, "\n" DATA "/missing.json: invalid (1 error, 0 warnings)\n"));
    result_free(&r);
}

static void next_prints_exact_utc_times(void **state)
{
    result_t r = run_ctl("next \"30 2 * * 1-5\" --from 2026-03-06T00:00:00Z --count 3 --utc");
    (void)state;
    assert_int_equal(r.code, 0);
    /* 2026-03-06 is a Friday: Friday, then Monday and Tuesday. */
    assert_string_equal(r.out, "2026-03-06T02:30:00Z\n2026-03-09T02:30:00Z\n"
                               "2026-03-10T02:30:00Z\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void next_defaults_to_five_times(void **state)
{
    result_t r = run_ctl("next \"@every 15m\" --from 2026-01-01T00:00:00Z --utc");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "2026-01-01T00:15:00Z\n2026-01-01T00:30:00Z\n2026-01-01T00:45:00Z\n"
                               "2026-01-01T01:00:00Z\n2026-01-01T01:15:00Z\n");
    result_free(&r);
}

static void next_from_with_offset_is_read_as_an_instant(void **state)
{
    result_t r = run_ctl("next @hourly --from 2026-03-08T02:30:00+01:00 --count 1 --utc");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "2026-03-08T02:00:00Z\n");
    result_free(&r);
}

static void next_of_a_past_at_prints_nothing(void **state)
{
    result_t r = run_ctl("next \"@at 2020-01-01T00:00:00Z\" --from 2026-01-01T00:00:00Z --utc");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: next: schedule \"@at 2020-01-01T00:00:00Z\" has no fire "
                               "time after the start\n");
    result_free(&r);
}

static void next_bad_expression_exits_1_with_the_reason(void **state)
{
    result_t r = run_ctl("next \"61 * * * *\"");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.err, "apcctl: next: schedule \"61 * * * *\": minute field \"61\" is out "
                               "of range 0-59\n");
    result_free(&r);
}

static void next_count_out_of_range_exits_2(void **state)
{
    result_t r = run_ctl("next @daily --count 0");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_string_equal(first_line(r.err),
                        "apcctl: next: --count: \"0\" is not a number from 1 to 1000");
    result_free(&r);
}

/* ---- Offline --json: validate and next ---------------------------------------------------- */

static void validate_json_valid_config_prints_ok_and_exits_0(void **state)
{
    result_t r = run_ctl("validate " DATA "/good.json --json");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "{\"ok\":true,\"file\":\"" DATA "/good.json\",\"errors\":0,"
                               "\"warnings\":0,\"diagnostics\":[]}\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void validate_json_invalid_config_prints_every_error_and_exits_1(void **state)
{
    result_t r = run_ctl("validate " DATA "/bad.json --json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out,
                        "{\"ok\":false,\"file\":\"" DATA "/bad.json\",\"errors\":2,\"warnings\":0,"
                        "\"diagnostics\":["
                        "{\"severity\":\"error\",\"file\":\"" DATA "/bad.json\",\"line\":4,"
                        "\"col\":18,\"path\":\"jobs[0].schedule\","
                        "\"message\":\"minute field \\\"61\\\" is out of range 0-59\"},"
                        "{\"severity\":\"error\",\"file\":\"" DATA "/bad.json\",\"line\":5,"
                        "\"col\":49,\"path\":\"jobs[1].retries\","
                        "\"message\":\"expected an integer 0-100, got 101\"}]}\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

/*
 * escape.json has the schedule 5\" (the message quotes it) and a key x\y"z (the path quotes
 * it): every quote and backslash must come out escaped. The expected text was derived with
 * an independent JSON encoder (Python's json.dumps), not from apcctl's output.
 */
static void validate_json_escapes_quotes_and_backslashes(void **state)
{
    result_t r = run_ctl("validate " DATA "/escape.json --json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out,
                        "{\"ok\":false,\"file\":\"" DATA "/escape.json\",\"errors\":2,"
                        "\"warnings\":0,\"diagnostics\":["
                        "{\"severity\":\"error\",\"file\":\"" DATA "/escape.json\",\"line\":3,"
                        "\"col\":50,\"path\":\"jobs[0].schedule\","
                        /* minute field "5\"" has unexpected "\"" */
                        "\"message\":\"minute field \\\"5\\\\\\\"\\\" has unexpected "
                        "\\\"\\\\\\\"\\\"\"},"
                        "{\"severity\":\"error\",\"file\":\"" DATA "/escape.json\",\"line\":3,"
                        "\"col\":67,"
                        /* jobs[0]["x\\y\"z"] */
                        "\"path\":\"jobs[0][\\\"x\\\\\\\\y\\\\\\\"z\\\"]\","
                        "\"message\":\"unknown key\"}]}\n");
    result_free(&r);
}

static void validate_json_syntax_error_has_a_null_path(void **state)
{
    result_t r = run_ctl("validate " DATA "/syntax.json --json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "{\"ok\":false,\"file\":\"" DATA "/syntax.json\",\"errors\":1,"
                               "\"warnings\":0,\"diagnostics\":["
                               "{\"severity\":\"error\",\"file\":\"" DATA "/syntax.json\","
                               "\"line\":3,\"col\":18,\"path\":null,"
                               "\"message\":\"syntax error near \\\"}\\\" (a comma before a "
                               "closing bracket is not allowed in JSON)\"}]}\n");
    result_free(&r);
}

static void validate_json_missing_file_has_no_position(void **state)
{
    static const char head[] = "{\"ok\":false,\"file\":\"" DATA "/missing.json\",\"errors\":1,"
                               "\"warnings\":0,\"diagnostics\":["
                               "{\"severity\":\"error\",\"file\":\"" DATA "/missing.json\","
                               "\"line\":null,\"col\":null,\"path\":null,"
                               "\"message\":\"cannot open: ";
    static const char tail[] = "\"}]}\n";
    result_t r = run_ctl("validate " DATA "/missing.json --json");
    size_t n;
    (void)state;
    assert_int_equal(r.code, 1);
    /* The system's text for "file not found" sits between head and tail. */
    n = strlen(r.out);
    assert_true(n > strlen(head) + strlen(tail));
    assert_memory_equal(r.out, head, strlen(head));
    assert_string_equal(r.out + n - strlen(tail), tail);
    assert_ptr_equal(strchr(r.out, '\n'), r.out + n - 1); /* one line */
    result_free(&r);
}

static void next_json_prints_exact_utc_times_and_milliseconds(void **state)
{
    result_t r =
        run_ctl("next \"30 2 * * 1-5\" --from 2026-03-06T00:00:00Z --count 3 --utc --json");
    (void)state;
    assert_int_equal(r.code, 0);
    /* 1772764200000 = 2026-03-06T02:30:00Z: 20,518 days and 2.5 hours after the epoch. */
    assert_string_equal(r.out, "{\"schedule\":\"30 2 * * 1-5\",\"zone\":\"UTC\",\"times\":["
                               "{\"at\":\"2026-03-06T02:30:00Z\",\"ms\":1772764200000},"
                               "{\"at\":\"2026-03-09T02:30:00Z\",\"ms\":1773023400000},"
                               "{\"at\":\"2026-03-10T02:30:00Z\",\"ms\":1773109800000}]}\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void next_json_without_utc_names_the_local_zone(void **state)
{
    static const char head[] = "{\"schedule\":\"@daily\",\"zone\":\"local\",\"times\":[{\"at\":\"";
    result_t r = run_ctl("next @daily --from 2026-01-01T00:00:00Z --count 1 --json");
    (void)state;
    assert_int_equal(r.code, 0);
    /* The time itself depends on the machine's zone; the zone name does not. */
    assert_memory_equal(r.out, head, strlen(head));
    result_free(&r);
}

static void next_json_of_a_past_at_prints_no_times(void **state)
{
    result_t r =
        run_ctl("next \"@at 2020-01-01T00:00:00Z\" --from 2026-01-01T00:00:00Z --utc --json");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_string_equal(
        r.out, "{\"schedule\":\"@at 2020-01-01T00:00:00Z\",\"zone\":\"UTC\",\"times\":[]}\n");
    assert_string_equal(r.err, "apcctl: next: schedule \"@at 2020-01-01T00:00:00Z\" has no fire "
                               "time after the start\n");
    result_free(&r);
}

static void next_json_bad_expression_prints_no_json_and_exits_1(void **state)
{
    result_t r = run_ctl("next \"61 * * * *\" --json");
    (void)state;
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: next: schedule \"61 * * * *\": minute field \"61\" is out "
                               "of range 0-59\n");
    result_free(&r);
}

/* ---- No service ---------------------------------------------------------------------------- */

static void status_without_service_exits_3_not_running(void **state)
{
    result_t r = run_ctl("--service apcctl-test-none status");
    (void)state;
    assert_int_equal(r.code, 3);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: cannot reach service \"apcctl-test-none\": not running "
                               "(no pipe \\\\.\\pipe\\apcctl-test-none)\n");
    result_free(&r);
}

static void every_service_command_exits_3_without_service(void **state)
{
    static const char *const cmds[] = {"list",   "run x",  "cancel 1", "history", "show 1",
                                       "logs 1", "reload", "pause x",  "resume x"};
    char args[128];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        result_t r;
        snprintf(args, sizeof args, "--service apcctl-test-none %s", cmds[i]);
        r = run_ctl(args);
        assert_int_equal(r.code, 3);
        assert_string_equal(r.err, "apcctl: cannot reach service \"apcctl-test-none\": not "
                                   "running (no pipe \\\\.\\pipe\\apcctl-test-none)\n");
        result_free(&r);
    }
}

/* ---- Reading the database when the service is down ------------------------------------------ */

typedef struct dbfx {
    char dir[MAX_PATH * 3];
    char db[MAX_PATH * 3];
    char log[MAX_PATH * 3];
} dbfx_t;

static void write_text(const char *path, const char *text)
{
    wchar_t *w = apc_utf8_to_wide(path);
    HANDLE f;
    DWORD done = 0;

    assert_non_null(w);
    f = CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    assert_true(f != INVALID_HANDLE_VALUE);
    assert_true(WriteFile(f, text, (DWORD)strlen(text), &done, NULL));
    CloseHandle(f);
    free(w);
}

/* A history database with two finished runs of "backup" and one output file. */
static int db_setup(void **state)
{
    dbfx_t *fx = calloc(1, sizeof *fx);
    wchar_t tmp[MAX_PATH];
    char *tmp8;
    apc_history_t *h = NULL;
    apc_history_op_t ops[2];
    char err[512];

    assert_non_null(fx);
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    tmp8 = apc_wide_to_utf8(tmp);
    snprintf(fx->dir, sizeof fx->dir, "%sapcctl-db-%lu", tmp8, GetCurrentProcessId());
    free(tmp8);
    CreateDirectoryA(fx->dir, NULL);
    snprintf(fx->db, sizeof fx->db, "%s\\history.db", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s\\2.log", fx->dir);
    DeleteFileA(fx->db);
    write_text(fx->log, "line 1\nline 2\nlast line\n");
    assert_int_equal(apc_history_open(fx->db, APC_HISTORY_READWRITE, &h, err, sizeof err), 0);
    memset(ops, 0, sizeof ops);
    ops[0].kind = APC_HOP_INSERT;
    ops[0].run.id = 1;
    ops[0].run.job = "backup";
    ops[0].run.trigger = APC_TRIGGER_SCHEDULE;
    ops[0].run.status = APC_RUN_SUCCEEDED;
    ops[0].run.queued_at = INT64_C(1767225600000);
    ops[0].run.started_at = INT64_C(1767225600015);
    ops[0].run.finished_at = INT64_C(1767225660015);
    ops[0].run.scheduled_for = APC_TIME_NONE;
    ops[0].run.has_exit_code = 1;
    ops[0].run.exit_code = 0;
    ops[1] = ops[0];
    ops[1].run.id = 2;
    ops[1].run.trigger = APC_TRIGGER_MANUAL;
    ops[1].run.status = APC_RUN_FAILED;
    ops[1].run.exit_code = INT64_C(3221225477);
    ops[1].run.submitted_by = "HOST\\op";
    ops[1].run.output_path = fx->log;
    ops[1].run.output_tail = "last line\n";
    assert_int_equal(apc_history_write(h, ops, 2, err, sizeof err), 0);
    apc_history_close(h);
    *state = fx;
    return 0;
}

static int db_teardown(void **state)
{
    dbfx_t *fx = *state;
    char p[MAX_PATH * 3];

    DeleteFileA(fx->db);
    snprintf(p, sizeof p, "%s-wal", fx->db);
    DeleteFileA(p);
    snprintf(p, sizeof p, "%s-shm", fx->db);
    DeleteFileA(p);
    DeleteFileA(fx->log);
    RemoveDirectoryA(fx->dir);
    free(fx);
    return 0;
}

static void history_reads_the_database_when_the_service_is_down(void **state)
{
    dbfx_t *fx = *state;
    char args[1024], note[1024];
    result_t r;

    snprintf(args, sizeof args, "--service apcctl-test-none history --json --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 0);
    snprintf(note, sizeof note, "apcctl: service not running; read from %s\n", fx->db);
    assert_string_equal(r.err, note);
    assert_memory_equal(r.out,
                        "{\"v\":1,\"ok\":true,\"runs\":[{\"id\":2,\"job\":\"backup\","
                        "\"trigger\":\"manual\",\"status\":\"failed\"",
                        strlen("{\"v\":1,\"ok\":true,\"runs\":[{\"id\":2,\"job\":\"backup\","
                               "\"trigger\":\"manual\",\"status\":\"failed\""));
    assert_non_null(strstr(r.out, "\"exit_code\":3221225477"));
    assert_non_null(strstr(r.out, "{\"id\":1,\"job\":\"backup\",\"trigger\":\"schedule\","
                                  "\"status\":\"succeeded\""));
    assert_non_null(strstr(r.out, "],\"more\":false}\n"));
    result_free(&r);
}

static void history_filters_by_status_in_the_database(void **state)
{
    dbfx_t *fx = *state;
    char args[1024];
    result_t r;

    snprintf(args, sizeof args,
             "--service apcctl-test-none history backup --status succeeded --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 0);
    /* Header plus one row; the QUEUED column is local time, so only the fixed columns. */
    assert_memory_equal(r.out, "ID  JOB     STATUS     TRIGGER   QUEUED",
                        strlen("ID  JOB     STATUS     TRIGGER   QUEUED"));
    assert_non_null(strstr(r.out, "\n1   backup  succeeded  schedule  "));
    assert_null(strstr(r.out, "failed"));
    assert_non_null(strstr(r.out, "  1m        0\n"));
    result_free(&r);
}

static void show_reads_one_run_from_the_database(void **state)
{
    dbfx_t *fx = *state;
    char args[1024];
    result_t r;

    snprintf(args, sizeof args, "--service apcctl-test-none show 2 --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.out,
                        "run           2\njob           backup\nstatus        failed\n"
                        "trigger       manual (attempt 1)\nsubmitted by  HOST\\op\n",
                        strlen("run           2\njob           backup\nstatus        failed\n"
                               "trigger       manual (attempt 1)\nsubmitted by  HOST\\op\n"));
    assert_non_null(strstr(r.out, "\nduration      1m\nexit code     3221225477 (0xC0000005)\n"));
    assert_non_null(strstr(r.out, "\n--- output (end) ---\nlast line\n"));
    result_free(&r);
}

static void show_of_an_unknown_run_exits_1(void **state)
{
    dbfx_t *fx = *state;
    char args[1024];
    result_t r;

    snprintf(args, sizeof args, "--service apcctl-test-none show 99 --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "\napcctl: run 99 not found\n"));
    result_free(&r);
}

static void logs_read_the_output_file_tail(void **state)
{
    dbfx_t *fx = *state;
    char args[1024];
    result_t r;

    snprintf(args, sizeof args, "--service apcctl-test-none logs 2 --tail 17 --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "line 2\nlast line\n");
    assert_non_null(
        strstr(r.err, "apcctl: run 2: output truncated, showing its end (use --tail to see more)"));
    result_free(&r);
}

static void list_reads_last_status_from_the_database(void **state)
{
    dbfx_t *fx = *state;
    char args[1024];
    result_t r;

    snprintf(args, sizeof args, "--service apcctl-test-none list --json --db \"%s\"", fx->db);
    r = run_ctl(args);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out,
                        "{\"v\":1,\"ok\":true,\"jobs\":[{\"name\":\"backup\","
                        "\"schedule\":\"\",\"enabled\":true,\"paused\":false,"
                        "\"paused_until\":null,\"next_run\":null,\"running\":0,"
                        "\"last_status\":\"failed\",\"last_finished_at\":1767225660015}]}\n");
    result_free(&r);
}

/* ---- Output errors ------------------------------------------------------------------------- */

static void write_error_on_stdout_is_reported_and_fails(void **state)
{
    /* stdout opened read-only: every write fails, as on a full disk or a closed pipe. */
    result_t r = run_ctl_ex("--help", GENERIC_READ);
    (void)state;
    assert_int_equal(r.code, 1);
    assert_memory_equal(r.err, "apcctl: error writing to standard output: ",
                        strlen("apcctl: error writing to standard output: "));
    result_free(&r);
}

/* ---- The pipe client against a scripted pipe server (test fixture) ------------------------- */

/*
 * A scripted server: one pipe instance and one thread per expected connection, created before
 * apcctl starts (so no connection can find the name missing). Each thread accepts one client,
 * reads its request, and answers with the messages scripted for the request's op.
 */
#define FAKE_MAX 4

typedef struct fake_entry {
    const char *op;         /* "status", "submit", ... */
    const char *answers[4]; /* messages to send, NULL-terminated */
} fake_entry_t;

typedef struct fake_conn {
    HANDLE pipe;
    HANDLE thread;
    const fake_entry_t *script;
    size_t nscript;
    char request[70000];
} fake_conn_t;

typedef struct fake {
    fake_conn_t conns[FAKE_MAX];
    size_t n;
} fake_t;

static DWORD WINAPI fake_serve(void *p)
{
    fake_conn_t *c = p;
    DWORD got = 0, done;
    char key[64];
    size_t i, k;

    if (!ConnectNamedPipe(c->pipe, NULL) && GetLastError() != ERROR_PIPE_CONNECTED)
        return 1;
    if (!ReadFile(c->pipe, c->request, sizeof c->request - 1, &got, NULL))
        return 1;
    c->request[got] = '\0';
    for (i = 0; i < c->nscript; i++) {
        snprintf(key, sizeof key, "\"op\":\"%s\"", c->script[i].op);
        if (strstr(c->request, key) == NULL)
            continue;
        for (k = 0; k < 4 && c->script[i].answers[k] != NULL; k++) {
            const char *a = c->script[i].answers[k];
            if (!WriteFile(c->pipe, a, (DWORD)strlen(a), &done, NULL))
                break;
            Sleep(20); /* let apcctl see the events one by one, as a real run would */
        }
        break;
    }
    FlushFileBuffers(c->pipe);
    DisconnectNamedPipe(c->pipe);
    return 0;
}

static void fake_start(fake_t *f, const char *name, size_t nconn, const fake_entry_t *script,
                       size_t nscript)
{
    char path[128];
    wchar_t *w;
    size_t i;

    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "\\\\.\\pipe\\%s", name);
    w = apc_utf8_to_wide(path);
    assert_non_null(w);
    assert_true(nconn <= FAKE_MAX);
    for (i = 0; i < nconn; i++) {
        fake_conn_t *c = &f->conns[i];
        c->script = script;
        c->nscript = nscript;
        c->pipe = CreateNamedPipeW(w, PIPE_ACCESS_DUPLEX,
                                   PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, FAKE_MAX,
                                   65536, 65536, 0, NULL);
        assert_true(c->pipe != INVALID_HANDLE_VALUE);
        c->thread = CreateThread(NULL, 0, fake_serve, c, 0, NULL);
        assert_non_null(c->thread);
    }
    f->n = nconn;
    free(w);
}

/* Ends the server; returns the request of connection 0 in f->conns[0].request. */
static void fake_stop(fake_t *f)
{
    size_t i;

    for (i = 0; i < f->n; i++) {
        /* A thread still waiting for a client is released by closing its pipe. */
        if (WaitForSingleObject(f->conns[i].thread, 2000) != WAIT_OBJECT_0) {
            CancelSynchronousIo(f->conns[i].thread);
            WaitForSingleObject(f->conns[i].thread, 5000);
        }
        CloseHandle(f->conns[i].thread);
        CloseHandle(f->conns[i].pipe);
    }
}

static void status_shows_the_services_answer(void **state)
{
    static const fake_entry_t script[] = {
        {"status",
         {"{\"v\":1,\"ok\":true,\"status\":{\"version\":\"0.1.0\",\"pid\":808,"
          "\"started_at\":1767225600000,\"now\":1767229200000,\"workers\":4,\"workers_busy\":1,"
          "\"jobs\":12,\"queued\":2,\"running\":1}}",
          NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-status", 1, script, 1);
    r = run_ctl("--service apcctl-fake-status status");
    fake_stop(&f);
    assert_string_equal(f.conns[0].request, "{\"v\":1,\"op\":\"status\"}");
    assert_int_equal(r.code, 0);
    assert_string_equal(first_line(r.out),
                        "service  apcctl-fake-status: running, pid 808, version 0.1.0");
    assert_non_null(strstr(r.out, "\nuptime   1h (since "));
    assert_non_null(strstr(r.out, ")\nworkers  1 busy, 3 idle, 4 in all\njobs     12\n"
                                  "runs     1 running, 2 queued\n"));
    result_free(&r);
}

static void json_prints_the_answer_unchanged(void **state)
{
    static const fake_entry_t script[] = {
        {"pause", {"{\"v\":1,\"ok\":true,\"message\":\"job backup paused for 2h\"}", NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-json", 1, script, 1);
    r = run_ctl("--service apcctl-fake-json pause backup --for 2h --json");
    fake_stop(&f);
    assert_string_equal(f.conns[0].request,
                        "{\"v\":1,\"op\":\"pause\",\"job\":\"backup\",\"for_ms\":7200000}");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "{\"v\":1,\"ok\":true,\"message\":\"job backup paused for 2h\"}\n");
    result_free(&r);
}

static void service_error_exits_1_with_its_message(void **state)
{
    static const fake_entry_t script[] = {
        {"cancel",
         {"{\"v\":1,\"ok\":false,\"error\":{\"code\":\"ENOTFOUND\",\"message\":\"run 99 not "
          "found\"}}",
          NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-err", 1, script, 1);
    r = run_ctl("--service apcctl-fake-err cancel 99");
    fake_stop(&f);
    assert_string_equal(f.conns[0].request, "{\"v\":1,\"op\":\"cancel\",\"id\":99}");
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: run 99 not found (ENOTFOUND)\n");
    result_free(&r);
}

static void oversized_answer_is_refused(void **state)
{
    static char big[70001];
    static fake_entry_t script[] = {{"status", {big, NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    fake_start(&f, "apcctl-fake-big", 1, script, 1);
    r = run_ctl("--service apcctl-fake-big status");
    fake_stop(&f);
    assert_int_equal(r.code, 3);
    assert_string_equal(r.err, "apcctl: cannot reach service \"apcctl-fake-big\": the service sent "
                               "a message larger than 65536 bytes\n");
    result_free(&r);
}

#define RUN77(status, exit)                                                                       \
    "{\"v\":1,\"ok\":true,\"event\":\"finished\",\"run\":{\"id\":77,\"job\":\"build\","           \
    "\"trigger\":\"manual\",\"status\":\"" status "\",\"attempt\":1,\"queued_at\":1767225600000," \
    "\"started_at\":1767225600010,\"finished_at\":1767225604010,\"exit_code\":" exit              \
    ",\"submitted_by\":\"HOST\\\\op\",\"worker\":1,\"pid\":4242,\"output_path\":null,"            \
    "\"output_tail\":\"tail\\n\",\"error\":null}}"

#define SUBMITTED77 \
    "{\"v\":1,\"ok\":true,\"id\":77,\"job\":\"build\",\"due_at\":1767225600000,\"wait\":true}"

static void run_wait_exits_with_the_jobs_exit_code(void **state)
{
    static const fake_entry_t script[] = {
        {"submit", {SUBMITTED77, RUN77("failed", "7"), NULL}},
        {"logs",
         {"{\"v\":1,\"ok\":true,\"id\":77,\"data\":\"hello\\n\",\"truncated\":false}", NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-wait", 2, script, 2);
    r = run_ctl("--service apcctl-fake-wait run build --wait -- \"a b\"");
    fake_stop(&f);
    assert_string_equal(f.conns[0].request[0] == '{' && strstr(f.conns[0].request, "submit")
                            ? f.conns[0].request
                            : f.conns[1].request,
                        "{\"v\":1,\"op\":\"submit\",\"job\":\"build\",\"args\":[\"a b\"],"
                        "\"wait\":true}");
    assert_int_equal(r.code, 7);
    /* stdout: the run id, then the job's output; the summary goes to stderr. */
    assert_string_equal(r.out, "77\nhello\n");
    assert_non_null(strstr(r.err, "\napcctl: run 77 failed (exit code 7) after 4s\n"));
    result_free(&r);
}

static void run_wait_passes_a_32_bit_exit_code_through(void **state)
{
    static const fake_entry_t script[] = {
        {"submit", {SUBMITTED77, RUN77("failed", "3221225477"), NULL}},
        {"logs", {"{\"v\":1,\"ok\":true,\"id\":77,\"data\":\"\",\"truncated\":false}", NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-crash", 2, script, 2);
    r = run_ctl("--service apcctl-fake-crash run build --wait");
    fake_stop(&f);
    assert_int_equal(r.code, 0xC0000005u);
    result_free(&r);
}

static void run_wait_timed_out_exits_124(void **state)
{
    static const fake_entry_t script[] = {
        {"submit", {SUBMITTED77, RUN77("timed_out", "null"), NULL}},
        {"logs", {"{\"v\":1,\"ok\":true,\"id\":77,\"data\":\"\",\"truncated\":false}", NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-timeout", 2, script, 2);
    r = run_ctl("--service apcctl-fake-timeout run build --wait");
    fake_stop(&f);
    assert_int_equal(r.code, 124);
    assert_non_null(strstr(r.err, "\napcctl: run 77 timed_out after 4s\n"));
    result_free(&r);
}

static void run_wait_cancelled_exits_130(void **state)
{
    static const fake_entry_t script[] = {
        {"submit", {SUBMITTED77, RUN77("cancelled", "null"), NULL}},
        {"logs", {"{\"v\":1,\"ok\":true,\"id\":77,\"data\":\"\",\"truncated\":false}", NULL}}};
    fake_t f;
    result_t r;
    (void)state;
    fake_start(&f, "apcctl-fake-cancel", 2, script, 2);
    r = run_ctl("--service apcctl-fake-cancel run build --wait");
    fake_stop(&f);
    assert_int_equal(r.code, 130);
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_lists_every_command_and_the_exit_codes),
        cmocka_unit_test(every_command_has_help_that_exits_0),
        cmocka_unit_test(no_command_is_a_usage_error),
        cmocka_unit_test(unknown_command_exits_2_naming_it),
        cmocka_unit_test(unknown_option_exits_2_naming_it),
        cmocka_unit_test(option_of_another_command_is_refused),
        cmocka_unit_test(missing_argument_exits_2_naming_it),
        cmocka_unit_test(extra_argument_exits_2_naming_it),
        cmocka_unit_test(run_id_must_be_a_number),
        cmocka_unit_test(history_limit_out_of_range_exits_2),
        cmocka_unit_test(history_unknown_status_exits_2),
        cmocka_unit_test(run_at_and_in_are_exclusive),
        cmocka_unit_test(run_bad_duration_exits_2_with_the_parser_message),
        cmocka_unit_test(run_bad_job_name_is_refused_before_sending),
        cmocka_unit_test(bad_service_name_exits_2),
        cmocka_unit_test(double_dash_only_for_run),
        cmocka_unit_test(validate_valid_config_exits_0),
        cmocka_unit_test(validate_reports_dst_warnings_and_still_exits_0),
        cmocka_unit_test(validate_invalid_config_prints_every_error_and_exits_1),
        cmocka_unit_test(validate_missing_file_exits_1),
        cmocka_unit_test(next_prints_exact_utc_times),
        cmocka_unit_test(next_defaults_to_five_times),
        cmocka_unit_test(next_from_with_offset_is_read_as_an_instant),
        cmocka_unit_test(next_of_a_past_at_prints_nothing),
        cmocka_unit_test(next_bad_expression_exits_1_with_the_reason),
        cmocka_unit_test(next_count_out_of_range_exits_2),
        cmocka_unit_test(validate_json_valid_config_prints_ok_and_exits_0),
        cmocka_unit_test(validate_json_invalid_config_prints_every_error_and_exits_1),
        cmocka_unit_test(validate_json_escapes_quotes_and_backslashes),
        cmocka_unit_test(validate_json_syntax_error_has_a_null_path),
        cmocka_unit_test(validate_json_missing_file_has_no_position),
        cmocka_unit_test(next_json_prints_exact_utc_times_and_milliseconds),
        cmocka_unit_test(next_json_without_utc_names_the_local_zone),
        cmocka_unit_test(next_json_of_a_past_at_prints_no_times),
        cmocka_unit_test(next_json_bad_expression_prints_no_json_and_exits_1),
        cmocka_unit_test(status_without_service_exits_3_not_running),
        cmocka_unit_test(every_service_command_exits_3_without_service),
        cmocka_unit_test_setup_teardown(history_reads_the_database_when_the_service_is_down,
                                        db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(history_filters_by_status_in_the_database, db_setup,
                                        db_teardown),
        cmocka_unit_test_setup_teardown(show_reads_one_run_from_the_database, db_setup,
                                        db_teardown),
        cmocka_unit_test_setup_teardown(show_of_an_unknown_run_exits_1, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(logs_read_the_output_file_tail, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(list_reads_last_status_from_the_database, db_setup,
                                        db_teardown),
        cmocka_unit_test(write_error_on_stdout_is_reported_and_fails),
        cmocka_unit_test(status_shows_the_services_answer),
        cmocka_unit_test(json_prints_the_answer_unchanged),
        cmocka_unit_test(service_error_exits_1_with_its_message),
        cmocka_unit_test(oversized_answer_is_refused),
        cmocka_unit_test(run_wait_exits_with_the_jobs_exit_code),
        cmocka_unit_test(run_wait_passes_a_32_bit_exit_code_through),
        cmocka_unit_test(run_wait_timed_out_exits_124),
        cmocka_unit_test(run_wait_cancelled_exits_130),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
