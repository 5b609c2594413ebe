/*
 * test_svc.c - the service lifecycle and the control handler (svc.c), with a fake engine so
 * every branch runs without an SCM: the exact sequence of SERVICE_STATUS reports, what each
 * control does (PRESHUTDOWN and SHUTDOWN too, which Wine never delivers), reload replies as
 * APCs on the service main thread, the console stop event and the console control handler.
 *
 * Real parts: real threads, real APCs, real files (config, log) in a temp folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc.h"
#include "win_util.h"

#include <shellapi.h>

/* ---- A fake engine ------------------------------------------------------------------------ */

struct apc_engine {
    HANDLE done; /* manual-reset: set when the fake "ended" */
};

static struct {
    int start_rc;
    const char *start_error;
    int reload_result;
    LONG starts, stops, posts, frees;
    char config_path[MAX_PATH * 3];
    const apc_tz_t *local_tz;
} F;
static apc_engine_t *last_engine; /* the fake engine last started, to end it "by itself" */

static int fake_start(const apc_engine_opts_t *o, apc_engine_t **out, apc_buf_t *errors)
{
    apc_engine_t *e;
    InterlockedIncrement(&F.starts);
    (void)snprintf(F.config_path, sizeof F.config_path, "%s", o->config_path);
    F.local_tz = o->local_tz;
    *out = NULL;
    if (F.start_rc != 0) {
        apc_buf_puts(errors, F.start_error);
        return F.start_rc;
    }
    e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    assert_non_null(e->done);
    o->log(o->log_ctx, APC_ENGINE_LOG_INFO, "started 1 workers");
    last_engine = e;
    *out = e;
    return 0;
}

static void fake_stop(apc_engine_t *e)
{
    InterlockedIncrement(&F.stops);
    (void)SetEvent(e->done);
}

static int fake_join(apc_engine_t *e, DWORD timeout_ms)
{
    DWORD w;
    do
        w = WaitForSingleObjectEx(e->done, timeout_ms, TRUE);
    while (w == WAIT_IO_COMPLETION);
    return w == WAIT_OBJECT_0 ? 0 : APC_ETIMEDOUT;
}

static HANDLE fake_done_event(const apc_engine_t *e)
{
    return e->done;
}

static void fake_free(apc_engine_t *e)
{
    InterlockedIncrement(&F.frees);
    if (e != NULL) {
        CloseHandle(e->done);
        free(e);
    }
}

static void CALLBACK reply_apc(ULONG_PTR p)
{
    apc_engine_req_t *req = (apc_engine_req_t *)p;
    req->done(req);
}

static int fake_post(apc_engine_t *e, apc_engine_req_t *req)
{
    (void)e;
    InterlockedIncrement(&F.posts);
    assert_int_equal(req->in.op, APC_OP_RELOAD);
    req->result = F.reload_result;
    if (F.reload_result != 0)
        /* Like the real engine: the answer is a protocol error message. */
        (void)apc_proto_encode_error(F.reload_result, "jobs[0].schedule: bad", &req->response);
    return QueueUserAPC(reply_apc, req->reply_thread, (ULONG_PTR)req) ? 0 : APC_ESYS;
}

static const apc_svc_engine_ops_t fake_ops = {fake_start,      fake_stop, fake_join,
                                              fake_done_event, fake_free, fake_post};

/* ---- Recording status reports and event log entries --------------------------------------- */

#define MAX_REPORTS 64
static SERVICE_STATUS reports[MAX_REPORTS];
static int nreports;
static HANDLE running_event; /* set when RUNNING is reported */

static void status_hook(void *ctx, const SERVICE_STATUS *st)
{
    (void)ctx;
    if (nreports < MAX_REPORTS)
        reports[nreports++] = *st;
    if (st->dwCurrentState == SERVICE_RUNNING)
        (void)SetEvent(running_event);
}

static char events[4096];
static SRWLOCK events_lock = SRWLOCK_INIT;

static void event_hook(void *ctx, WORD type, DWORD id, const char *text)
{
    size_t n;
    (void)ctx;
    AcquireSRWLockExclusive(&events_lock);
    n = strlen(events);
    (void)snprintf(events + n, sizeof events - n, "[%u %lu] %s\n", (unsigned)type,
                   (unsigned long)id, text);
    ReleaseSRWLockExclusive(&events_lock);
}

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return INT64_C(1795677302123); /* 2026-11-26T07:15:02.123Z */
}

static const apc_svclog_hooks_t log_hooks = {fixed_now, event_hook, NULL};

/* ---- Fixture: a temp folder with a config ------------------------------------------------- */

static char dir[MAX_PATH * 3];
static char cfg_path[MAX_PATH * 3];
static FILE *console_out;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (f == NULL)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static int setup(void **state)
{
    wchar_t tmp[MAX_PATH];
    char *t;
    static int seq;
    (void)state;
    memset(&F, 0, sizeof F);
    nreports = 0;
    events[0] = '\0';
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    t = apc_wide_to_utf8(tmp);
    (void)snprintf(dir, sizeof dir, "%sapc-test-svc-%lu-%llu-%d", t, GetCurrentProcessId(),
                   (unsigned long long)GetTickCount64(), ++seq);
    free(t);
    assert_true(CreateDirectoryA(dir, NULL));
    (void)snprintf(cfg_path, sizeof cfg_path, "%s\\apcsvc.json", dir);
    write_file(cfg_path, "{\"service\": {\"name\": \"svctest\", \"shutdown_grace\": \"5s\"},\n"
                         " \"jobs\": [{\"name\": \"tick\", \"builtin\": \"noop\", "
                         "\"schedule\": \"@every 1s\"}]}\n");
    running_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    assert_non_null(running_event);
    console_out = tmpfile();
    assert_non_null(console_out);
    return 0;
}

static int teardown(void **state)
{
    wchar_t *w;
    SHFILEOPSTRUCTW op;
    size_t n;
    (void)state;
    CloseHandle(running_event);
    fclose(console_out);
    /* Remove the temp tree (double-NUL-terminated path for SHFileOperationW). */
    n = strlen(dir);
    w = calloc(n + 2, sizeof *w);
    assert_non_null(w);
    assert_true(MultiByteToWideChar(CP_UTF8, 0, dir, -1, w, (int)n + 1) > 0);
    memset(&op, 0, sizeof op);
    op.wFunc = FO_DELETE;
    op.pFrom = w;
    op.fFlags = FOF_NO_UI;
    (void)SHFileOperationW(&op);
    free(w);
    return 0;
}

static apc_svc_t *make_svc(int console)
{
    apc_svc_opts_t o;
    apc_svc_t *svc = NULL;
    char err[256];
    memset(&o, 0, sizeof o);
    o.config_path = cfg_path;
    o.console = console;
    o.engine = &fake_ops;
    o.out = console_out;
    o.status_hook = status_hook;
    o.log_hooks = &log_hooks;
    assert_int_equal(apc_svc_create(&o, &svc, err, sizeof err), 0);
    return svc;
}

/* The service main thread of a test: runs the lifecycle, returns its exit code. */
static DWORD WINAPI run_thread(LPVOID p)
{
    return (DWORD)apc_svc_run(p);
}

static HANDLE start_running(apc_svc_t *svc)
{
    HANDLE t = CreateThread(NULL, 0, run_thread, svc, 0, NULL);
    assert_non_null(t);
    assert_int_equal(WaitForSingleObject(running_event, 10000), WAIT_OBJECT_0);
    return t;
}

static DWORD finish(HANDLE t)
{
    DWORD code = 999;
    assert_int_equal(WaitForSingleObject(t, 10000), WAIT_OBJECT_0);
    assert_true(GetExitCodeThread(t, &code));
    CloseHandle(t);
    return code;
}

static char *log_text(void)
{
    char path[MAX_PATH * 3];
    (void)snprintf(path, sizeof path, "%s\\logs\\apcsvc.log", dir);
    return read_file(path);
}

static void assert_report(int i, DWORD state, DWORD checkpoint, DWORD win32, DWORD specific)
{
    assert_true(i < nreports);
    assert_int_equal(reports[i].dwCurrentState, state);
    assert_int_equal(reports[i].dwCheckPoint, checkpoint);
    assert_int_equal(reports[i].dwWin32ExitCode, win32);
    assert_int_equal(reports[i].dwServiceSpecificExitCode, specific);
}

/* ---- Tests --------------------------------------------------------------------------------- */

static void stop_reports_stop_pending_then_stopped_after_the_engine_ended(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    (void)state;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.stops, 1);
    assert_int_equal(F.frees, 1);
    /* START_PENDING with rising checkpoints, RUNNING, STOP_PENDING, STOPPED last. */
    assert_int_equal(nreports, 6);
    assert_report(0, SERVICE_START_PENDING, 1, NO_ERROR, 0);
    assert_report(1, SERVICE_START_PENDING, 2, NO_ERROR, 0);
    assert_report(2, SERVICE_START_PENDING, 3, NO_ERROR, 0);
    assert_report(3, SERVICE_RUNNING, 0, NO_ERROR, 0);
    assert_int_equal(reports[3].dwControlsAccepted, SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN |
                                                        SERVICE_ACCEPT_PRESHUTDOWN |
                                                        SERVICE_ACCEPT_PARAMCHANGE);
    assert_report(4, SERVICE_STOP_PENDING, 1, NO_ERROR, 0); /* a new pending operation */
    assert_int_equal(reports[4].dwWaitHint, 5000 + APC_SVC_STOP_MARGIN_MS);
    assert_report(5, SERVICE_STOPPED, 0, NO_ERROR, 0);
    apc_svc_free(svc);
}

static void preshutdown_takes_the_stop_path(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    (void)state;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_PRESHUTDOWN), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.stops, 1);
    assert_report(nreports - 2, SERVICE_STOP_PENDING, 1, NO_ERROR, 0);
    assert_report(nreports - 1, SERVICE_STOPPED, 0, NO_ERROR, 0);
    apc_svc_free(svc);
}

static void shutdown_takes_the_stop_path(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    (void)state;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_SHUTDOWN), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.stops, 1);
    assert_report(nreports - 1, SERVICE_STOPPED, 0, NO_ERROR, 0);
    apc_svc_free(svc);
}

static void a_second_stop_only_re_reports_stop_pending(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    SERVICE_STATUS st;
    (void)state;
    t = start_running(svc);
    /* Hold the engine "busy": the fake ends on stop, so take the lock path before it joins. */
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    apc_svc_status(svc, &st);
    if (st.dwCurrentState == SERVICE_STOP_PENDING)
        assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP_AGAIN);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_IGNORED);
    assert_int_equal(F.stops, 1);
    apc_svc_free(svc);
}

static void interrogate_and_unknown_controls(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    (void)state;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_INTERROGATE),
                     APC_SVC_ACT_INTERROGATE);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_PAUSE),
                     APC_SVC_ACT_NOT_IMPLEMENTED);
    assert_int_equal(apc_svc_handle_control(svc, 200), APC_SVC_ACT_NOT_IMPLEMENTED);
    assert_int_equal(F.stops, 0);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    apc_svc_free(svc);
}

static void paramchange_reload_result_is_logged_on_the_main_thread(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    char *log;
    char want[1024];
    (void)state;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_PARAMCHANGE), APC_SVC_ACT_RELOAD);
    /* The reply is an APC to the service main thread; give it a moment, then stop. */
    for (int i = 0; i < 100 && strstr(events, "[4 5]") == NULL; i++)
        Sleep(20);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.posts, 1);
    (void)snprintf(want, sizeof want,
                   "2026-11-26T07:15:02.123Z INFO service: reload requested (PARAMCHANGE)\r\n"
                   "2026-11-26T07:15:02.123Z INFO service: configuration reloaded from %s\r\n",
                   cfg_path);
    log = log_text();
    assert_non_null(log);
    if (strstr(log, want) == NULL)
        print_message("log:\n%s\nwant:\n%s\n", log, want);
    assert_non_null(strstr(log, want));
    free(log);
    (void)snprintf(want, sizeof want, "[4 5] service: configuration reloaded from %s\n", cfg_path);
    assert_non_null(strstr(events, want));
    apc_svc_free(svc);
}

static void refused_reload_is_an_error_event(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    (void)state;
    F.reload_result = APC_EINVAL;
    t = start_running(svc);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_PARAMCHANGE), APC_SVC_ACT_RELOAD);
    for (int i = 0; i < 100 && strstr(events, "[1 5]") == NULL; i++)
        Sleep(20);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_non_null(strstr(events, "[1 5] service: reload refused (invalid argument), the previous "
                                   "configuration stays in force: jobs[0].schedule: bad\n"));
    apc_svc_free(svc);
}

static void engine_start_failure_reports_stopped_with_code_4_and_an_event(void **state)
{
    apc_svc_t *svc = make_svc(0);
    (void)state;
    F.start_rc = APC_EDB;
    F.start_error = "history.db: unable to open database file\n";
    assert_int_equal(apc_svc_run(svc), APC_SVC_EXIT_START);
    assert_int_equal(F.stops, 0);
    assert_int_equal(nreports, 4);
    assert_report(2, SERVICE_START_PENDING, 3, NO_ERROR, 0);
    assert_report(3, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR, APC_SVC_EXIT_START);
    assert_string_equal(events, "[1 4] service: the engine could not start (history database "
                                "error):\nhistory.db: unable to open database file\n\n");
    apc_svc_free(svc);
}

static void invalid_config_stops_with_code_2_and_prints_every_error(void **state)
{
    apc_svc_t *svc;
    char want[2048];
    char got[2048];
    size_t n;
    (void)state;
    write_file(cfg_path, "{\n  \"jobs\": [\n    {\"name\": \"a\", \"builtin\": \"noop\",\n"
                         "     \"schedule\": \"61 * * * *\"},\n    {\"name\": 5}\n  ]\n}\n");
    svc = make_svc(1);
    assert_int_equal(apc_svc_run(svc), APC_SVC_EXIT_CONFIG);
    assert_int_equal(F.starts, 0);
    assert_report(nreports - 1, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR,
                  APC_SVC_EXIT_CONFIG);
    rewind(console_out);
    n = fread(got, 1, sizeof got - 1, console_out);
    got[n] = '\0';
    (void)snprintf(want, sizeof want,
                   "%s:4:18: jobs[0].schedule: minute field \"61\" is out of range 0-59\n"
                   "%s:5:5: jobs[1]: needs \"command\" (an argv array) or \"builtin\"\n"
                   "%s:5:14: jobs[1].name: expected a name of 1-64 characters from A-Z a-z 0-9 "
                   ". _ -, got a number\n"
                   "apcsvc: the configuration is invalid\n",
                   cfg_path, cfg_path, cfg_path);
    assert_string_equal(got, want);
    assert_true(strncmp(events, "[1 3] service: the configuration is invalid:\n", 45) == 0);
    apc_svc_free(svc);
}

static void missing_config_stops_with_code_2(void **state)
{
    apc_svc_t *svc;
    (void)state;
    assert_true(DeleteFileA(cfg_path));
    svc = make_svc(0);
    assert_int_equal(apc_svc_run(svc), APC_SVC_EXIT_CONFIG);
    assert_true(strncmp(events, "[1 3] service: cannot read the configuration:\n", 46) == 0);
    apc_svc_free(svc);
}

static void engine_ending_by_itself_is_a_failure(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    char *log;
    (void)state;
    t = start_running(svc);
    /* The engine ends although nobody asked it to (as if its thread had failed). */
    assert_non_null(last_engine);
    (void)SetEvent(last_engine->done);
    assert_int_equal(finish(t), APC_SVC_EXIT_FAILED);
    assert_report(nreports - 1, SERVICE_STOPPED, 0, ERROR_SERVICE_SPECIFIC_ERROR,
                  APC_SVC_EXIT_FAILED);
    log = log_text();
    assert_non_null(strstr(log, "ERROR service: the engine ended without a stop request\r\n"));
    free(log);
    apc_svc_free(svc);
}

static void console_ctrl_c_takes_the_stop_path(void **state)
{
    apc_svc_t *svc = make_svc(1);
    HANDLE t;
    (void)state;
    t = start_running(svc);
    assert_true(apc_svc_console_handler(CTRL_C_EVENT));
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.stops, 1);
    /* Not running any more: the default handler (process end) takes over. */
    assert_false(apc_svc_console_handler(CTRL_BREAK_EVENT));
    apc_svc_free(svc);
}

static void console_stop_event_stops_cleanly(void **state)
{
    apc_svc_t *svc = make_svc(1);
    HANDLE t, ev;
    char *log;
    (void)state;
    t = start_running(svc);
    ev = OpenEventW(EVENT_MODIFY_STATE, FALSE, L"Local\\ApcSched-svctest-stop");
    assert_non_null(ev);
    assert_true(SetEvent(ev));
    CloseHandle(ev);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    assert_int_equal(F.stops, 1);
    log = log_text();
    assert_non_null(strstr(log, "2026-11-26T07:15:02.123Z INFO service: stop event signalled\r\n"));
    assert_non_null(strstr(log, "2026-11-26T07:15:02.123Z INFO service: stopped\r\n"));
    assert_non_null(strstr(log, "2026-11-26T07:15:02.123Z INFO engine: started 1 workers\r\n"));
    free(log);
    apc_svc_free(svc);
}

static void second_console_instance_with_the_same_name_is_refused(void **state)
{
    apc_svc_t *svc = make_svc(1);
    HANDLE ev;
    char got[512];
    size_t n;
    (void)state;
    ev = CreateEventW(NULL, FALSE, FALSE, L"Local\\ApcSched-svctest-stop");
    assert_non_null(ev);
    assert_int_equal(apc_svc_run(svc), APC_SVC_EXIT_RUNNING);
    CloseHandle(ev);
    assert_int_equal(F.starts, 0);
    rewind(console_out);
    n = fread(got, 1, sizeof got - 1, console_out);
    got[n] = '\0';
    assert_string_equal(got, "apcsvc: an instance named \"svctest\" is already running (its stop "
                             "event Local\\ApcSched-svctest-stop exists); stop it first or use "
                             "--name\n");
    apc_svc_free(svc);
}

static void data_and_log_folders_are_created(void **state)
{
    apc_svc_t *svc = make_svc(0);
    HANDLE t;
    char p[MAX_PATH * 3];
    (void)state;
    t = start_running(svc);
    (void)snprintf(p, sizeof p, "%s\\runs", dir);
    assert_true(GetFileAttributesA(p) & FILE_ATTRIBUTE_DIRECTORY);
    assert_true(GetFileAttributesA(p) != INVALID_FILE_ATTRIBUTES);
    (void)snprintf(p, sizeof p, "%s\\logs\\apcsvc.log", dir);
    assert_true(GetFileAttributesA(p) != INVALID_FILE_ATTRIBUTES);
    assert_string_equal(F.config_path, cfg_path);
    assert_non_null(F.local_tz);
    assert_int_equal(strncmp(F.local_tz->name, "local (", 7), 0);
    assert_int_equal(apc_svc_handle_control(svc, SERVICE_CONTROL_STOP), APC_SVC_ACT_STOP);
    assert_int_equal(finish(t), APC_SVC_EXIT_OK);
    apc_svc_free(svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            stop_reports_stop_pending_then_stopped_after_the_engine_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(preshutdown_takes_the_stop_path, setup, teardown),
        cmocka_unit_test_setup_teardown(shutdown_takes_the_stop_path, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_stop_only_re_reports_stop_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(interrogate_and_unknown_controls, setup, teardown),
        cmocka_unit_test_setup_teardown(paramchange_reload_result_is_logged_on_the_main_thread,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(refused_reload_is_an_error_event, setup, teardown),
        cmocka_unit_test_setup_teardown(
            engine_start_failure_reports_stopped_with_code_4_and_an_event, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_config_stops_with_code_2_and_prints_every_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(missing_config_stops_with_code_2, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_ending_by_itself_is_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(console_ctrl_c_takes_the_stop_path, setup, teardown),
        cmocka_unit_test_setup_teardown(console_stop_event_stops_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(second_console_instance_with_the_same_name_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(data_and_log_folders_are_created, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
