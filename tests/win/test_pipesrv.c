/*
 * test_pipesrv.c - the control pipe server (service/win/pipesrv.c) through a real named pipe:
 * clients are CreateFileW handles in message mode opened with SECURITY_SQOS_PRESENT |
 * SECURITY_IDENTIFICATION, as apcctl opens them, on the test thread or on client threads.
 *
 * Backend: the real engine (service/win/engine.c) started in-process from a temporary config
 * with a builtin noop job, its history thread writing a real SQLite file in a temp folder;
 * the pipe server posts to it with apc_engine_post exactly as the service does. (During
 * development a stand-in engine thread served here; it is gone.) history/show/logs are
 * answered by the pipe server itself from the same SQLite file, read-only.
 *
 * Wine stores but does not enforce pipe DACLs and ignores FILE_FLAG_FIRST_PIPE_INSTANCE
 * (DESIGN.md section 5): the DACL is checked by reading it back; refusal of a non-member and
 * of a squatter are verified on Windows only (docs/security.md).
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
#include "apc_protocol.h"
#include "apc_str.h"
#include "pipesec.h"
#include "pipesrv.h"
#include "win_util.h"
#include "test_fs.h"

#define RESP_CAP 70000

/* ---- Per-test environment ---------------------------------------------------------------- */

typedef struct env {
    char dir[MAX_PATH * 3];
    char db[MAX_PATH * 3];
    char name[64];
    apc_engine_t *engine;
    apc_pipesrv_t *srv;
    wchar_t *wpath;
} env_t;

static LONG counter;

/* The service log sink: the server's lines go to stderr, to read when a test fails. */
static void test_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "[pipesrv %d] %s\n", level, msg);
}

/* Writes the config (relative paths resolve against its folder) and starts the real engine,
   which creates the history database before the pipe server starts, as in the service. */
static void start_engine(env_t *e)
{
    char cfg[MAX_PATH * 3], text[1024];
    apc_engine_opts_t o;
    apc_buf_t errors = {0};
    FILE *fp;
    int rc;

    snprintf(cfg, sizeof(cfg), "%s\\apcsvc.json", e->dir);
    snprintf(text, sizeof(text),
             "{\"service\": {\"name\": \"%s\", \"history\": \"history.db\", "
             "\"output_dir\": \"runs\", \"log_dir\": \"logs\", \"workers\": 8},\n"
             "\"jobs\": [{\"name\": \"noop\", \"builtin\": \"noop\", "
             "\"overlap\": \"parallel\"}]}\n",
             e->name);
    fp = fopen(cfg, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
    memset(&o, 0, sizeof(o));
    o.config_path = cfg;
    rc = apc_engine_start(&o, &e->engine, &errors);
    if (rc != 0)
        print_error("engine start: %s\n", errors.data != NULL ? errors.data : "?");
    apc_buf_free(&errors);
    assert_int_equal(rc, 0);
}

/* Creates a temp folder, starts the real engine on it and a pipe server in front. */
static env_t *env_start(DWORD idle_ms, const char *const *allow)
{
    env_t *e = calloc(1, sizeof(*e));
    wchar_t tmp[MAX_PATH];
    char *tmp8, err[512] = "";
    apc_pipesrv_opts_t o;
    LONG n = InterlockedIncrement(&counter);

    assert_non_null(e);
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    tmp8 = apc_wide_to_utf8(tmp);
    /* Wine reuses process ids across runs: the tick count keeps a failed run's leftovers away. */
    snprintf(e->dir, sizeof(e->dir), "%sapcpipe-%lu-%ld-%llu", tmp8, GetCurrentProcessId(), n,
             (unsigned long long)GetTickCount64());
    free(tmp8);
    {
        wchar_t *wd = apc_utf8_to_wide(e->dir);
        assert_true(CreateDirectoryW(wd, NULL) || GetLastError() == ERROR_ALREADY_EXISTS);
        free(wd);
    }
    snprintf(e->db, sizeof(e->db), "%s\\history.db", e->dir);
    snprintf(e->name, sizeof(e->name), "apcpipe-test-%lu-%ld", GetCurrentProcessId(), n);
    start_engine(e);
    memset(&o, 0, sizeof(o));
    o.name = e->name;
    o.engine = e->engine;
    o.post = apc_engine_post;
    o.history_path = e->db;
    o.control_allow = allow;
    o.idle_timeout_ms = idle_ms;
    o.log = test_log;
    assert_int_equal(apc_pipesrv_start(&o, &e->srv, err, sizeof(err)), 0);
    e->wpath = apc_utf8_to_wide(apc_pipesrv_path(e->srv));
    return e;
}

static void env_stop(env_t *e)
{
    wchar_t *wd;

    /* The order the service uses: the pipe first (no new requests), then the engine. */
    apc_pipesrv_stop(e->srv);
    assert_int_equal(apc_pipesrv_join(e->srv, 10000), 0);
    apc_pipesrv_free(e->srv);
    apc_engine_stop(e->engine);
    assert_int_equal(apc_engine_join(e->engine, 30000), 0);
    apc_engine_free(e->engine);
    wd = apc_utf8_to_wide(e->dir);
    test_remove_tree(wd);
    free(wd);
    free(e->wpath);
    free(e);
}

/* ---- Client helpers ---------------------------------------------------------------------- */

/* Opens a message-mode client as apcctl does; waits while every instance is busy. */
static HANDLE client_open(const wchar_t *path)
{
    DWORD mode = PIPE_READMODE_MESSAGE;
    int tries;

    for (tries = 0; tries < 200; tries++) {
        HANDLE h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                               SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (h != INVALID_HANDLE_VALUE) {
            if (!SetNamedPipeHandleState(h, &mode, NULL, NULL)) {
                CloseHandle(h);
                return INVALID_HANDLE_VALUE;
            }
            return h;
        }
        if (GetLastError() != ERROR_PIPE_BUSY)
            return INVALID_HANDLE_VALUE;
        (void)WaitNamedPipeW(path, 1000);
    }
    return INVALID_HANDLE_VALUE;
}

/* Sends one message and reads one response message into buf (NUL-terminated). Returns the
   response length, or -1 with the Win32 error in *code. */
static long client_call(HANDLE h, const char *msg, size_t len, char *buf, DWORD cap, DWORD *code)
{
    DWORD n = 0;

    *code = 0;
    if (!WriteFile(h, msg, (DWORD)len, &n, NULL) || n != len) {
        *code = GetLastError();
        return -1;
    }
    if (!ReadFile(h, buf, cap - 1, &n, NULL)) {
        *code = GetLastError();
        return -1;
    }
    buf[n] = '\0';
    return (long)n;
}

/* After the server hung up: the next read fails with a broken/disconnected pipe. */
static void assert_closed_by_server(HANDLE h)
{
    char b[16];
    DWORD n = 0, code;

    assert_false(ReadFile(h, b, sizeof(b), &n, NULL));
    code = GetLastError();
    if (code != ERROR_BROKEN_PIPE && code != ERROR_PIPE_NOT_CONNECTED)
        print_error("read after the server closed: error %lu\n", (unsigned long)code);
    assert_true(code == ERROR_BROKEN_PIPE || code == ERROR_PIPE_NOT_CONNECTED);
}

/* The account of this process, computed independently of pipesec.c. */
static char *own_account(void)
{
    HANDLE token = NULL;
    ULONGLONG buf[64];
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

/* Decodes buf as the response to op and checks it is an error with this code and text. */
static void assert_error_response(const char *buf, long n, apc_proto_op_t op, int code,
                                  const char *message)
{
    apc_proto_response_t r;
    char err[256] = "";

    assert_true(n > 0);
    assert_int_equal(apc_proto_response_decode(buf, (size_t)n, op, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, APC_RESP_ERROR);
    assert_string_equal(apc_errname(r.error_code), apc_errname(code));
    assert_string_equal(r.error_message, message);
    apc_proto_response_free(&r);
}

/* ---- Tests ------------------------------------------------------------------------------- */

static void status_round_trip(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char req[] = "{\"v\":1,\"op\":\"status\"}";
    char *buf = malloc(RESP_CAP), err[256] = "";
    HANDLE h = client_open(e->wpath);
    DWORD code;
    long n;
    apc_proto_response_t r;

    (void)state;
    assert_true(h != INVALID_HANDLE_VALUE);
    n = client_call(h, req, sizeof(req) - 1, buf, RESP_CAP, &code);
    if (n < 0)
        print_error("client_call failed: error %lu\n", (unsigned long)code);
    assert_true(n > 0);
    assert_int_equal(apc_proto_response_decode(buf, (size_t)n, APC_OP_STATUS, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, APC_RESP_STATUS);
    assert_string_equal(r.status.version, "0.1.0");
    assert_int_equal(r.status.pid, GetCurrentProcessId());
    assert_int_equal(r.status.workers, 8);
    apc_proto_response_free(&r);
    /* The connection stays open for a further request. */
    n = client_call(h, req, sizeof(req) - 1, buf, RESP_CAP, &code);
    assert_true(n > 0);
    CloseHandle(h);
    free(buf);
    env_stop(e);
}

static void submit_is_answered_after_its_row_is_committed_with_caller_account(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char req[] = "{\"v\":1,\"op\":\"submit\",\"job\":\"noop\"}";
    char *buf = malloc(RESP_CAP), err[256] = "", *me = own_account();
    HANDLE h = client_open(e->wpath);
    apc_history_t *ro = NULL;
    apc_run_record_t *run = NULL;
    apc_proto_response_t r;
    DWORD code;
    long n;

    (void)state;
    assert_true(h != INVALID_HANDLE_VALUE);
    n = client_call(h, req, sizeof(req) - 1, buf, RESP_CAP, &code);
    assert_true(n > 0);
    assert_int_equal(apc_proto_response_decode(buf, (size_t)n, APC_OP_SUBMIT, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, APC_RESP_SUBMITTED);
    assert_string_equal(r.job, "noop");
    /* Read the row right after the reply, on a connection of our own. */
    assert_int_equal(apc_history_open(e->db, APC_HISTORY_READONLY, &ro, err, sizeof(err)), 0);
    assert_int_equal(apc_history_get_run(ro, r.id, &run, err, sizeof(err)), 0);
    assert_string_equal(run->job, "noop");
    assert_int_equal(run->trigger, APC_TRIGGER_MANUAL);
    assert_string_equal(run->submitted_by, me);
    apc_run_record_free(run);
    apc_history_close(ro);
    apc_proto_response_free(&r);
    CloseHandle(h);
    free(me);
    free(buf);
    env_stop(e);
}

static void show_and_history_are_answered_from_the_database(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char sub[] = "{\"v\":1,\"op\":\"submit\",\"job\":\"noop\"}";
    static const char hist[] = "{\"v\":1,\"op\":\"history\",\"job\":\"noop\",\"limit\":2}";
    static const char show[] = "{\"v\":1,\"op\":\"show\",\"id\":2}";
    static const char missing[] = "{\"v\":1,\"op\":\"show\",\"id\":99}";
    char *buf = malloc(RESP_CAP), err[256] = "", *me = own_account();
    HANDLE h = client_open(e->wpath);
    apc_proto_response_t r;
    DWORD code;
    long n;
    int i;

    (void)state;
    for (i = 0; i < 3; i++)
        assert_true(client_call(h, sub, sizeof(sub) - 1, buf, RESP_CAP, &code) > 0);
    n = client_call(h, hist, sizeof(hist) - 1, buf, RESP_CAP, &code);
    assert_int_equal(
        apc_proto_response_decode(buf, (size_t)n, APC_OP_HISTORY, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, APC_RESP_RUNS);
    assert_int_equal(r.nruns, 2);
    assert_int_equal(r.runs[0].id, 3);
    assert_int_equal(r.runs[1].id, 2);
    assert_int_equal(r.more, 1);
    apc_proto_response_free(&r);

    /* The engine runs the noop at once; ask until the run is final (a few ms). */
    for (i = 0; i < 500; i++) {
        n = client_call(h, show, sizeof(show) - 1, buf, RESP_CAP, &code);
        assert_int_equal(
            apc_proto_response_decode(buf, (size_t)n, APC_OP_SHOW, &r, err, sizeof(err)), 0);
        if (r.kind != APC_RESP_RUN || strcmp(r.run.status, "succeeded") == 0)
            break;
        apc_proto_response_free(&r);
        Sleep(10);
    }
    assert_int_equal(r.kind, APC_RESP_RUN);
    assert_int_equal(r.run.id, 2);
    assert_string_equal(r.run.status, "succeeded");
    assert_string_equal(r.run.job, "noop");
    assert_string_equal(r.run.trigger, "manual");
    assert_string_equal(r.run.submitted_by, me);
    apc_proto_response_free(&r);

    n = client_call(h, missing, sizeof(missing) - 1, buf, RESP_CAP, &code);
    assert_error_response(buf, n, APC_OP_SHOW, APC_ENOTFOUND, "run 99 not found");
    CloseHandle(h);
    free(me);
    free(buf);
    env_stop(e);
}

static void logs_returns_the_tail_of_the_output_file(void **state)
{
    env_t *e = env_start(0, NULL);
    char *buf = malloc(RESP_CAP), err[256] = "", out[MAX_PATH * 3], req[128];
    HANDLE h, f;
    apc_history_t *w = NULL;
    apc_history_op_t op;
    apc_proto_response_t r;
    wchar_t *wout;
    DWORD code, n0;
    long n;

    (void)state;
    snprintf(out, sizeof(out), "%s\\77.log", e->dir);
    wout = apc_utf8_to_wide(out);
    f = CreateFileW(wout, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    assert_true(f != INVALID_HANDLE_VALUE);
    assert_true(WriteFile(f, "line1\nline2\nline3\n", 18, &n0, NULL));
    CloseHandle(f);
    /* A finished run pointing at it, written by a second writer connection (WAL allows it). */
    memset(&op, 0, sizeof(op));
    op.kind = APC_HOP_INSERT;
    op.run.id = 77;
    op.run.job = "noop";
    op.run.status = APC_RUN_SUCCEEDED;
    op.run.queued_at = op.run.started_at = op.run.finished_at = 1000;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.output_path = out;
    assert_int_equal(apc_history_open(e->db, APC_HISTORY_READWRITE, &w, err, sizeof(err)), 0);
    assert_int_equal(apc_history_write(w, &op, 1, err, sizeof(err)), 0);
    apc_history_close(w);

    h = client_open(e->wpath);
    snprintf(req, sizeof(req), "{\"v\":1,\"op\":\"logs\",\"id\":77,\"tail_bytes\":12}");
    n = client_call(h, req, strlen(req), buf, RESP_CAP, &code);
    assert_int_equal(apc_proto_response_decode(buf, (size_t)n, APC_OP_LOGS, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.kind, APC_RESP_LOGS);
    assert_int_equal(r.id, 77);
    assert_string_equal(r.data, "line2\nline3\n");
    assert_int_equal(r.truncated, 1);
    apc_proto_response_free(&r);
    CloseHandle(h);
    DeleteFileW(wout);
    free(wout);
    free(buf);
    env_stop(e);
}

/* Sends msg, expects an error response with code/text, then the server hangs up. */
static void expect_error_and_close(env_t *e, const char *msg, size_t len, int code,
                                   const char *text)
{
    char *buf = malloc(RESP_CAP);
    HANDLE h = client_open(e->wpath);
    DWORD wcode;
    long n;

    assert_true(h != INVALID_HANDLE_VALUE);
    n = client_call(h, msg, len, buf, RESP_CAP, &wcode);
    assert_error_response(buf, n, APC_OP_STATUS, code, text);
    assert_closed_by_server(h);
    CloseHandle(h);
    free(buf);
}

static void malformed_json_gets_an_error_and_is_closed(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char msg[] = "{\"v\":1,\"op\":\"status\",}";

    (void)state;
    expect_error_and_close(e, msg, sizeof(msg) - 1, APC_EPROTO,
                           "message: not valid JSON (near offset 21)");
    env_stop(e);
}

static void truncated_request_gets_an_error_and_is_closed(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char msg[] = "{\"v\":1,\"op\":\"sta";

    (void)state;
    expect_error_and_close(e, msg, sizeof(msg) - 1, APC_EPROTO,
                           "message: not valid JSON (near offset 13)");
    env_stop(e);
}

static void garbage_bytes_get_an_error_and_are_closed(void **state)
{
    env_t *e = env_start(0, NULL);
    static const char msg[] = "\x00\xff\xfe garbage \x01\x02";

    (void)state;
    expect_error_and_close(e, msg, sizeof(msg) - 1, APC_EPROTO, "message: NUL byte at offset 0");
    env_stop(e);
}

static void oversize_message_gets_an_error_and_is_closed(void **state)
{
    env_t *e = env_start(0, NULL);
    char *msg = malloc(70000);

    (void)state;
    memset(msg, ' ', 70000);
    memcpy(msg, "{\"v\":1,\"op\":\"status\"", 20);
    msg[69999] = '}';
    expect_error_and_close(e, msg, 70000, APC_ETOOBIG, "message larger than 65536 bytes");
    free(msg);
    env_stop(e);
}

static void silent_client_is_dropped_after_idle_timeout_while_others_are_served(void **state)
{
    env_t *e = env_start(600, NULL);
    static const char req[] = "{\"v\":1,\"op\":\"status\"}";
    char *buf = malloc(RESP_CAP), b[16];
    HANDLE silent = client_open(e->wpath), other;
    ULONGLONG t0 = GetTickCount64(), served_at, dropped_at;
    DWORD code, n = 0;

    (void)state;
    assert_true(silent != INVALID_HANDLE_VALUE);
    Sleep(100);
    other = client_open(e->wpath);
    assert_true(client_call(other, req, sizeof(req) - 1, buf, RESP_CAP, &code) > 0);
    served_at = GetTickCount64();
    assert_true(served_at - t0 < 600); /* served while the silent one still held on */
    assert_false(ReadFile(silent, b, sizeof(b), &n, NULL));
    dropped_at = GetTickCount64();
    code = GetLastError();
    assert_true(code == ERROR_BROKEN_PIPE || code == ERROR_PIPE_NOT_CONNECTED);
    assert_true(dropped_at - t0 >= 550);
    assert_true(dropped_at - t0 < 5000);
    CloseHandle(silent);
    CloseHandle(other);
    free(buf);
    env_stop(e);
}

static void dacl_read_back_from_the_pipe_equals_the_intended_sddl(void **state)
{
    const char *allow[] = {"Users", NULL};
    env_t *e = env_start(0, allow);
    HANDLE h;
    char *back = NULL, err[256] = "";

    (void)state;
    assert_string_equal(apc_pipesrv_sddl(e->srv),
                        "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x12019b;;;BU)");
    h = CreateFileW(e->wpath, GENERIC_READ | GENERIC_WRITE | READ_CONTROL, 0, NULL, OPEN_EXISTING,
                    SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    assert_int_equal(apc_pipesec_read_sddl(h, &back, err, sizeof(err)), 0);
    assert_string_equal(back, apc_pipesrv_sddl(e->srv));
    free(back);
    CloseHandle(h);
    env_stop(e);
}

static void unknown_control_allow_account_fails_start(void **state)
{
    const char *allow[] = {"no-such-account-4711", NULL};
    apc_pipesrv_opts_t o;
    apc_pipesrv_t *srv = (apc_pipesrv_t *)&o; /* must be reset to NULL */
    char err[512] = "";

    (void)state;
    memset(&o, 0, sizeof(o));
    o.name = "apcpipe-test-badallow";
    o.post = apc_engine_post; /* never called: the start fails first */
    o.control_allow = allow;
    assert_int_equal(apc_pipesrv_start(&o, &srv, err, sizeof(err)), APC_EINVAL);
    assert_null(srv);
    assert_true(
        strncmp(err, "service.control_allow: unknown account \"no-such-account-4711\"", 61) == 0);
}

/* Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE: there the second start succeeds. On Windows it
   must fail with the exact message. */
static void second_server_with_the_same_name_is_refused_on_windows(void **state)
{
    env_t *e = env_start(0, NULL);
    apc_pipesrv_opts_t o;
    apc_pipesrv_t *srv2 = NULL;
    char err[512] = "";
    int wine = GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "wine_get_version") != NULL;
    int rc;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.name = e->name;
    o.post = apc_engine_post;
    o.engine = e->engine;
    rc = apc_pipesrv_start(&o, &srv2, err, sizeof(err));
    if (wine) {
        print_message("note: Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE; the squatting refusal "
                      "is verified on Windows only\n");
        assert_int_equal(rc, 0);
        apc_pipesrv_free(srv2);
    } else {
        char expected[256];
        snprintf(expected, sizeof(expected),
                 "pipe \\\\.\\pipe\\%s already exists: another instance or a squatter", e->name);
        assert_int_equal(rc, APC_EEXISTS);
        assert_string_equal(err, expected);
        assert_null(srv2);
    }
    env_stop(e);
}

static void stop_with_connected_clients_ends_the_thread(void **state)
{
    env_t *e = env_start(0, NULL);
    HANDLE a = client_open(e->wpath), b = client_open(e->wpath);

    (void)state;
    assert_true(a != INVALID_HANDLE_VALUE && b != INVALID_HANDLE_VALUE);
    Sleep(50);
    apc_pipesrv_stop(e->srv);
    apc_pipesrv_stop(e->srv); /* twice is harmless */
    assert_int_equal(apc_pipesrv_join(e->srv, 5000), 0);
    assert_closed_by_server(a);
    assert_closed_by_server(b);
    CloseHandle(a);
    CloseHandle(b);
    env_stop(e);
}

/*
 * The cap is exact: 256 clients connect, the 257th is refused with ERROR_PIPE_BUSY because no
 * instance listens any more (waiting instances count against the cap), and once one client
 * leaves the next one is served. The idle timeout is a minute, so no client is dropped meanwhile.
 */
static void the_257th_client_gets_pipe_busy_until_one_of_256_leaves(void **state)
{
    env_t *e = env_start(60000, NULL);
    static const char req[] = "{\"v\":1,\"op\":\"status\"}";
    HANDLE *h = calloc(APC_PIPESRV_MAX_CONNECTIONS, sizeof *h), extra, again;
    char *buf = malloc(RESP_CAP);
    DWORD code = 0;
    int i, opened = 0;

    (void)state;
    assert_non_null(h);
    assert_non_null(buf);
    for (i = 0; i < APC_PIPESRV_MAX_CONNECTIONS; i++) {
        h[i] = client_open(e->wpath);
        opened += h[i] != INVALID_HANDLE_VALUE;
    }
    assert_int_equal(opened, APC_PIPESRV_MAX_CONNECTIONS);
    extra = CreateFileW(e->wpath, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    code = extra == INVALID_HANDLE_VALUE ? GetLastError() : 0;
    if (extra != INVALID_HANDLE_VALUE)
        CloseHandle(extra);
    assert_int_equal(code, ERROR_PIPE_BUSY);
    /* Nothing frees up while all are held: WaitNamedPipe times out. */
    assert_false(WaitNamedPipeW(e->wpath, 500));
    assert_int_equal(GetLastError(), ERROR_SEM_TIMEOUT);
    CloseHandle(h[0]);
    h[0] = INVALID_HANDLE_VALUE;
    again = client_open(e->wpath);
    assert_true(again != INVALID_HANDLE_VALUE);
    assert_true(client_call(again, req, sizeof(req) - 1, buf, RESP_CAP, &code) > 0);
    assert_non_null(strstr(buf, "\"pid\""));
    CloseHandle(again);
    for (i = 0; i < APC_PIPESRV_MAX_CONNECTIONS; i++)
        if (h[i] != INVALID_HANDLE_VALUE)
            CloseHandle(h[i]);
    free(h);
    free(buf);
    env_stop(e);
}

/* ---- 64 concurrent clients --------------------------------------------------------------- */

#define NCLIENTS 64
#define NSUBMITS 50

typedef struct client_job {
    const wchar_t *path;
    int64_t *ids; /* NSUBMITS slots of this client */
    volatile LONG *failures;
} client_job_t;

static DWORD WINAPI submit_client(LPVOID arg)
{
    client_job_t *j = arg;
    static const char req[] = "{\"v\":1,\"op\":\"submit\",\"job\":\"noop\"}";
    char buf[4096], err[128];
    int i;

    for (i = 0; i < NSUBMITS; i++) {
        HANDLE h = client_open(j->path); /* a new connection per submit, as apcctl does */
        apc_proto_response_t r;
        DWORD code;
        long n;

        if (h == INVALID_HANDLE_VALUE) {
            if (InterlockedIncrement(j->failures) == 1)
                fprintf(stderr, "first failure: open: error %lu\n", GetLastError());
            continue;
        }
        n = client_call(h, req, sizeof(req) - 1, buf, sizeof(buf), &code);
        CloseHandle(h);
        if (n <= 0 && InterlockedIncrement(j->failures) == 1)
            fprintf(stderr, "first failure: call: error %lu\n", (unsigned long)code);
        if (n <= 0)
            continue;
        if (apc_proto_response_decode(buf, (size_t)n, APC_OP_SUBMIT, &r, err, sizeof(err)) != 0) {
            if (InterlockedIncrement(j->failures) == 1)
                fprintf(stderr, "first failure: decode: %s\n", err);
            continue;
        }
        if (r.kind == APC_RESP_SUBMITTED)
            j->ids[i] = r.id;
        else if (InterlockedIncrement(j->failures) == 1)
            fprintf(stderr, "first failure: %s\n", buf);
        apc_proto_response_free(&r);
    }
    return 0;
}

typedef struct tally {
    int64_t rows, succeeded, by_status[APC_RUN_STATUS_COUNT];
    unsigned char *seen; /* by id */
    int64_t dup;
} tally_t;

static int count_row(const apc_run_record_t *run, void *ctx)
{
    tally_t *t = ctx;
    t->rows++;
    if ((int)run->status >= 0 && run->status < APC_RUN_STATUS_COUNT)
        t->by_status[run->status]++;
    if (run->status == APC_RUN_SUCCEEDED)
        t->succeeded++;
    if (run->id >= 1 && run->id <= NCLIENTS * NSUBMITS) {
        if (t->seen[run->id]++)
            t->dup++;
    }
    return 0;
}

static void sixty_four_clients_submit_3200_runs_each_recorded_once(void **state)
{
    env_t *e = env_start(0, NULL);
    HANDLE threads[NCLIENTS];
    client_job_t jobs[NCLIENTS];
    int64_t *ids = calloc(NCLIENTS * NSUBMITS, sizeof(*ids));
    unsigned char *answered = calloc(NCLIENTS * NSUBMITS + 1, 1);
    volatile LONG failures = 0;
    apc_history_t *ro = NULL;
    apc_history_filter_t f;
    tally_t t = {0};
    char err[256];
    ULONGLONG t0 = GetTickCount64();
    int i;

    (void)state;
    for (i = 0; i < NCLIENTS; i++) {
        jobs[i].path = e->wpath;
        jobs[i].ids = ids + i * NSUBMITS;
        jobs[i].failures = &failures;
        threads[i] = CreateThread(NULL, 0, submit_client, &jobs[i], 0, NULL);
        assert_non_null(threads[i]);
    }
    assert_int_equal(WaitForMultipleObjects(NCLIENTS, threads, TRUE, 240000), WAIT_OBJECT_0);
    print_message("note: %d submits over %d connections took %llu ms\n", NCLIENTS * NSUBMITS,
                  NCLIENTS * NSUBMITS, (unsigned long long)(GetTickCount64() - t0));
    for (i = 0; i < NCLIENTS; i++)
        CloseHandle(threads[i]);
    assert_int_equal(failures, 0);
    /* Every answer names a distinct run. */
    for (i = 0; i < NCLIENTS * NSUBMITS; i++) {
        assert_true(ids[i] >= 1 && ids[i] <= NCLIENTS * NSUBMITS);
        assert_int_equal(answered[ids[i]], 0);
        answered[ids[i]] = 1;
    }
    /* And the database holds each exactly once; every run ends succeeded (wait for the last). */
    t.seen = calloc(NCLIENTS * NSUBMITS + 1, 1);
    memset(&f, 0, sizeof(f));
    f.job = "noop";
    assert_int_equal(apc_history_open(e->db, APC_HISTORY_READONLY, &ro, err, sizeof(err)), 0);
    for (i = 0; i < 300; i++) {
        memset(t.seen, 0, NCLIENTS * NSUBMITS + 1);
        memset(t.by_status, 0, sizeof(t.by_status));
        t.rows = t.succeeded = t.dup = 0;
        assert_int_equal(apc_history_query(ro, &f, count_row, &t, err, sizeof(err)), 0);
        if (t.succeeded == NCLIENTS * NSUBMITS)
            break;
        Sleep(100);
    }
    apc_history_close(ro);
    /* overlap "parallel": no submit is skipped because another noop is running. */
    if (t.succeeded != NCLIENTS * NSUBMITS) {
        int st;
        print_error("after the wait %lld of %d runs succeeded; by status:", (long long)t.succeeded,
                    NCLIENTS * NSUBMITS);
        for (st = 0; st < APC_RUN_STATUS_COUNT; st++)
            print_error(" %s=%lld", apc_run_status_name((apc_run_status_t)st),
                        (long long)t.by_status[st]);
        print_error("\n");
    }
    assert_int_equal(t.rows, NCLIENTS * NSUBMITS);
    assert_int_equal(t.succeeded, NCLIENTS * NSUBMITS);
    assert_int_equal(t.dup, 0);
    for (i = 1; i <= NCLIENTS * NSUBMITS; i++)
        assert_int_equal(t.seen[i], 1);
    free(t.seen);
    free(answered);
    free(ids);
    env_stop(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_round_trip),
        cmocka_unit_test(submit_is_answered_after_its_row_is_committed_with_caller_account),
        cmocka_unit_test(show_and_history_are_answered_from_the_database),
        cmocka_unit_test(logs_returns_the_tail_of_the_output_file),
        cmocka_unit_test(malformed_json_gets_an_error_and_is_closed),
        cmocka_unit_test(truncated_request_gets_an_error_and_is_closed),
        cmocka_unit_test(garbage_bytes_get_an_error_and_are_closed),
        cmocka_unit_test(oversize_message_gets_an_error_and_is_closed),
        cmocka_unit_test(silent_client_is_dropped_after_idle_timeout_while_others_are_served),
        cmocka_unit_test(dacl_read_back_from_the_pipe_equals_the_intended_sddl),
        cmocka_unit_test(unknown_control_allow_account_fails_start),
        cmocka_unit_test(second_server_with_the_same_name_is_refused_on_windows),
        cmocka_unit_test(stop_with_connected_clients_ends_the_thread),
        cmocka_unit_test(the_257th_client_gets_pipe_busy_until_one_of_256_leaves),
        cmocka_unit_test(sixty_four_clients_submit_3200_runs_each_recorded_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
