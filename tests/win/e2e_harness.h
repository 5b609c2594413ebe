/*
 * e2e_harness.h - what the real-process tests (test_svc_exe.c, test_apcctl_svc.c,
 * test_service_scm.c) share: starting apcsvc.exe, apcctl.exe and the helper child as REAL
 * child processes with their output captured to files, a private temporary folder per test
 * with its config file, a console-mode service instance (start, wait for its control pipe,
 * stop by its documented stop event, or kill it hard), and reading the history database the
 * way an operator would: read-only, while the service writes it.
 *
 * Why a header of static functions: each test file is its own executable (tests/win/test_*.c
 * are globbed one by one), and the harness is test code only, so it is compiled into each of
 * them rather than into the product's libraries. Functions a file does not use are marked
 * with E2E_UNUSED so the strict warning set stays quiet.
 *
 * Robustness under load (2 cores shared with builds): nothing here sleeps for a fixed time to
 * "let something happen"; every wait polls with a deadline and fails the test with what it saw
 * when the deadline passes.
 *
 * Thread: the cmocka test thread only.
 */
#ifndef APC_E2E_HARNESS_H
#define APC_E2E_HARNESS_H

#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_history.h"
#include "apc_str.h"
#include "win_util.h"

#if defined(__GNUC__) || defined(__clang__)
#define E2E_UNUSED __attribute__((unused))
#else
#define E2E_UNUSED
#endif

#define E2E_APCSVC APC_TEST_BIN_DIR "/service/win/apcsvc.exe"
#define E2E_APCCTL APC_TEST_BIN_DIR "/tools/apcctl/apcctl.exe"
#define E2E_CHILD APC_TEST_BIN_DIR "/helpers/apchelper_child.exe"

/* Generous, because two cores are shared with parallel builds and Wine is slow to start. */
#define E2E_START_MS 60000u
#define E2E_STOP_MS 60000u
#define E2E_CMD_MS 60000u

/* ---- Small utilities ----------------------------------------------------------------------- */

/* "/work/x" -> "Z:\work\x": Wine maps Z: to the Unix root. */
static E2E_UNUSED void e2e_win_path(const char *unix_path, char *out, size_t size)
{
    size_t i;

    (void)snprintf(out, size, "Z:%s", unix_path);
    for (i = 0; out[i] != '\0'; i++)
        if (out[i] == '/')
            out[i] = '\\';
}

/* Escapes s for use inside a JSON string literal (backslashes and quotes only: test paths). */
static E2E_UNUSED void e2e_json_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;

    for (; *s != '\0' && o + 3 < size; s++) {
        if (*s == '\\' || *s == '"')
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
}

/* Replaces every "\r\n" by "\n" in place: the C runtime writes text-mode files with CRLF. */
static E2E_UNUSED char *e2e_lf(char *s)
{
    char *r = s, *w = s;

    if (s == NULL)
        return NULL;
    for (; *r != '\0'; r++)
        if (!(r[0] == '\r' && r[1] == '\n'))
            *w++ = *r;
    *w = '\0';
    return s;
}

/* Reads a whole file (UTF-8 path) into a malloc'd string; NULL if it cannot be opened. */
static E2E_UNUSED char *e2e_slurp(const char *path)
{
    wchar_t *w = apc_utf8_to_wide(path);
    HANDLE f;
    LARGE_INTEGER size;
    DWORD got = 0;
    char *s = NULL;

    assert_non_null(w);
    f = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                    OPEN_EXISTING, 0, NULL);
    free(w);
    if (f == INVALID_HANDLE_VALUE)
        return NULL;
    if (GetFileSizeEx(f, &size) && size.QuadPart < 64 * 1024 * 1024) {
        s = malloc((size_t)size.QuadPart + 1);
        assert_non_null(s);
        if (size.QuadPart > 0 && !ReadFile(f, s, (DWORD)size.QuadPart, &got, NULL))
            got = 0;
        s[got] = '\0';
    }
    CloseHandle(f);
    return s;
}

/* Writes text to a file (UTF-8 path), replacing it. */
static E2E_UNUSED void e2e_write_file(const char *path, const char *text)
{
    wchar_t *w = apc_utf8_to_wide(path);
    HANDLE f;
    DWORD done = 0;
    DWORD n = (DWORD)strlen(text);

    assert_non_null(w);
    f = CreateFileW(w, GENERIC_WRITE, FILE_SHARE_READ, NULL, CREATE_ALWAYS, 0, NULL);
    free(w);
    assert_true(f != INVALID_HANDLE_VALUE);
    assert_true(WriteFile(f, text, n, &done, NULL));
    assert_int_equal(done, n);
    assert_true(CloseHandle(f));
}

/* Creates a fresh folder under the user's temp folder; its UTF-8 path (no trailing \) in out. */
static E2E_UNUSED void e2e_make_dir(const char *tag, char *out, size_t size)
{
    static unsigned counter;
    wchar_t tmp[MAX_PATH];
    char *t;
    wchar_t *w;
    DWORD n = GetTempPathW(MAX_PATH, tmp);

    assert_true(n > 0 && n < MAX_PATH);
    t = apc_wide_to_utf8(tmp);
    assert_non_null(t);
    (void)snprintf(out, size, "%sapce2e-%s-%lu-%lu-%u", t, tag,
                   (unsigned long)GetCurrentProcessId(), (unsigned long)GetTickCount(), ++counter);
    free(t);
    w = apc_utf8_to_wide(out);
    assert_non_null(w);
    assert_true(CreateDirectoryW(w, NULL));
    free(w);
}

/* Formats UTF-8 text and returns it as a malloc'd UTF-16 string (for Win32 names). */
static E2E_UNUSED wchar_t *e2e_wide(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    wchar_t *w;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    w = apc_utf8_to_wide(buf);
    assert_non_null(w);
    return w;
}

/* Is process pid still alive? Gone = cannot be opened, or has an exit code. */
static E2E_UNUSED int e2e_pid_alive(DWORD pid)
{
    HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    DWORD w;

    if (h == NULL)
        return 0;
    w = WaitForSingleObject(h, 0);
    CloseHandle(h);
    return w == WAIT_TIMEOUT;
}

/* Waits up to ms for pid to end; returns 1 if it is gone. */
static E2E_UNUSED int e2e_pid_wait_gone(DWORD pid, DWORD ms)
{
    HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, pid);
    DWORD w;

    if (h == NULL)
        return 1;
    w = WaitForSingleObject(h, ms);
    CloseHandle(h);
    return w == WAIT_OBJECT_0;
}

/* ---- Child processes ---------------------------------------------------------------------- */

typedef struct e2e_proc {
    HANDLE process;
    DWORD pid;
    DWORD code;
    int exited;
    wchar_t outp[MAX_PATH], errp[MAX_PATH];
    char *out, *err; /* filled by e2e_proc_wait once the process has ended (CRLF -> LF) */
} e2e_proc_t;

static E2E_UNUSED HANDLE inheritable_out(const wchar_t *path)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE h = CreateFileW(path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                           CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    return h;
}

static E2E_UNUSED char *slurp_w(const wchar_t *path)
{
    char *p = apc_wide_to_utf8(path);
    char *s;

    assert_non_null(p);
    s = e2e_slurp(p);
    free(p);
    return s != NULL ? s : apc_strdup("");
}

/*
 * Starts `<exe> <args>` (exe a Unix path of this build tree, args the rest of the command line
 * in UTF-8) with stdin = NUL and stdout/stderr going to two temporary files.
 */
static E2E_UNUSED void e2e_proc_start(e2e_proc_t *p, const char *exe_unix, const char *args)
{
    char exe[MAX_PATH], line[16384];
    wchar_t tmp[MAX_PATH];
    wchar_t *wline;
    STARTUPINFOEXW si;
    PROCESS_INFORMATION pi;
    HANDLE out, err, in, inherit[3];
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    SIZE_T attr_size = 0;

    memset(p, 0, sizeof *p);
    e2e_win_path(exe_unix, exe, sizeof exe);
    (void)snprintf(line, sizeof line, "\"%s\" %s", exe, args);
    wline = apc_utf8_to_wide(line);
    assert_non_null(wline);
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    assert_true(GetTempFileNameW(tmp, L"e2o", 0, p->outp) != 0);
    assert_true(GetTempFileNameW(tmp, L"e2e", 0, p->errp) != 0);
    out = inheritable_out(p->outp);
    err = inheritable_out(p->errp);
    in = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                     0, NULL);
    assert_true(in != INVALID_HANDLE_VALUE);
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = in;
    si.StartupInfo.hStdOutput = out;
    si.StartupInfo.hStdError = err;
    /*
     * Only these three handles are inherited: a service left running by a failed test must not
     * hold the test runner's own stdout pipe open (ctest would wait for it until its timeout).
     */
    inherit[0] = in;
    inherit[1] = out;
    inherit[2] = err;
    (void)InitializeProcThreadAttributeList(NULL, 1, 0, &attr_size);
    si.lpAttributeList = malloc(attr_size);
    assert_non_null(si.lpAttributeList);
    assert_true(InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &attr_size));
    assert_true(UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                          inherit, sizeof inherit, NULL, NULL));
    /*
     * Under a loaded Wine, CreateProcessW of several children at once has been seen to fail
     * now and then (one case in a CI run of 8 parallel apcctl starts): retry a few times, and
     * say why if it keeps failing.
     */
    for (int attempt = 1;; attempt++) {
        DWORD why;
        if (CreateProcessW(NULL, wline, NULL, NULL, TRUE,
                           CREATE_NO_WINDOW | EXTENDED_STARTUPINFO_PRESENT, NULL, NULL,
                           &si.StartupInfo, &pi))
            break;
        why = GetLastError();
        print_message("CreateProcessW(%ls) failed (attempt %d): error %lu\n", wline, attempt,
                      (unsigned long)why);
        if (attempt == 5)
            fail_msg("CreateProcessW failed 5 times, last error %lu", (unsigned long)why);
        Sleep(200);
    }
    DeleteProcThreadAttributeList(si.lpAttributeList);
    free(si.lpAttributeList);
    CloseHandle(pi.hThread);
    CloseHandle(out);
    CloseHandle(err);
    CloseHandle(in);
    free(wline);
    p->process = pi.hProcess;
    p->pid = pi.dwProcessId;
}

/* Waits up to ms for the process to end; returns 1 and fills code/out/err if it did. */
static E2E_UNUSED int e2e_proc_wait(e2e_proc_t *p, DWORD ms)
{
    if (p->exited)
        return 1;
    if (p->process == NULL || WaitForSingleObject(p->process, ms) != WAIT_OBJECT_0)
        return 0;
    assert_true(GetExitCodeProcess(p->process, &p->code));
    p->exited = 1;
    p->out = e2e_lf(slurp_w(p->outp));
    p->err = e2e_lf(slurp_w(p->errp));
    return 1;
}

/* The stderr written so far (for diagnostics while the process still runs). */
static E2E_UNUSED char *e2e_proc_err_now(const e2e_proc_t *p)
{
    return e2e_lf(slurp_w(p->errp));
}

/* Ends the process if it still runs, closes its handle and deletes the output files. */
static E2E_UNUSED void e2e_proc_free(e2e_proc_t *p)
{
    if (p->process != NULL) {
        if (!p->exited && WaitForSingleObject(p->process, 0) == WAIT_TIMEOUT) {
            (void)TerminateProcess(p->process, 99);
            (void)WaitForSingleObject(p->process, 10000);
        }
        CloseHandle(p->process);
    }
    if (p->outp[0] != L'\0')
        (void)DeleteFileW(p->outp);
    if (p->errp[0] != L'\0')
        (void)DeleteFileW(p->errp);
    free(p->out);
    free(p->err);
    memset(p, 0, sizeof *p);
}

typedef struct e2e_result {
    DWORD code;
    char *out, *err;
} e2e_result_t;

/* Runs a program to its end (at most E2E_CMD_MS) and returns its exit code and output. */
static E2E_UNUSED e2e_result_t e2e_run(const char *exe_unix, const char *args)
{
    e2e_proc_t p;
    e2e_result_t r;

    e2e_proc_start(&p, exe_unix, args);
    if (!e2e_proc_wait(&p, E2E_CMD_MS)) {
        e2e_proc_free(&p);
        fail_msg("%s %s did not end within %u ms", exe_unix, args, E2E_CMD_MS);
    }
    r.code = p.code;
    r.out = p.out;
    r.err = p.err;
    p.out = p.err = NULL;
    e2e_proc_free(&p);
    return r;
}

static E2E_UNUSED void e2e_result_free(e2e_result_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* ---- A console-mode service instance -------------------------------------------------------- */

typedef struct e2e_svc {
    char name[64];
    char dir[MAX_PATH];    /* the test's private folder (config, history, logs, runs) */
    char config[MAX_PATH]; /* dir\apcsvc.json */
    char db[MAX_PATH];     /* dir\history.db */
    char log[MAX_PATH];    /* dir\logs\apcsvc.log */
    char child[MAX_PATH];  /* the helper child, as a JSON-escaped Windows path */
    const char *grace;     /* service.shutdown_grace; "2s" unless a test sets it */
    e2e_proc_t proc;
} e2e_svc_t;

/*
 * Prepares a service with a unique name and a private folder; nothing runs yet. The name is
 * unique per process and call, so instances of different test files never collide.
 */
static E2E_UNUSED void e2e_svc_init(e2e_svc_t *s, const char *tag)
{
    static unsigned counter;
    char child[MAX_PATH];

    memset(s, 0, sizeof *s);
    (void)snprintf(s->name, sizeof s->name, "e2e-%s-%lu-%u", tag,
                   (unsigned long)GetCurrentProcessId(), ++counter);
    e2e_make_dir(tag, s->dir, sizeof s->dir);
    (void)snprintf(s->config, sizeof s->config, "%s\\apcsvc.json", s->dir);
    (void)snprintf(s->db, sizeof s->db, "%s\\history.db", s->dir);
    (void)snprintf(s->log, sizeof s->log, "%s\\logs\\apcsvc.log", s->dir);
    e2e_win_path(E2E_CHILD, child, sizeof child);
    e2e_json_escape(child, s->child, sizeof s->child);
    s->grace = "2s";
}

/*
 * Writes the config: the service block (this instance's name, `workers` workers, s->grace as
 * shutdown grace, history/output/logs in the private folder) and the given jobs, which is the
 * text between the brackets of "jobs": [...]. "%CHILD%" in jobs is replaced by the helper
 * child's path.
 */
static E2E_UNUSED void e2e_svc_config(e2e_svc_t *s, int workers, const char *jobs)
{
    apc_buf_t b = {0};
    const char *p = jobs, *hit;

    apc_buf_printf(&b,
                   "{\"service\": {\"name\": \"%s\", \"workers\": %d, \"shutdown_grace\": "
                   "\"%s\", \"history\": \"history.db\", \"output_dir\": \"runs\", "
                   "\"log_dir\": \"logs\"},\n \"jobs\": [\n",
                   s->name, workers, s->grace);
    while ((hit = strstr(p, "%CHILD%")) != NULL) {
        apc_buf_printf(&b, "%.*s%s", (int)(hit - p), p, s->child);
        p = hit + 7;
    }
    apc_buf_printf(&b, "%s\n]}\n", p);
    assert_false(apc_buf_failed(&b));
    e2e_write_file(s->config, b.data);
    apc_buf_free(&b);
}

/* Does the pipe \\.\pipe\<name> exist? (WaitNamedPipe: busy counts as existing.) */
static E2E_UNUSED int e2e_pipe_exists(const char *name)
{
    wchar_t *path = e2e_wide("\\\\.\\pipe\\%s", name);
    BOOL ok = WaitNamedPipeW(path, 1);
    DWORD e = GetLastError();

    free(path);
    return ok || e == ERROR_SEM_TIMEOUT;
}

/*
 * Starts `apcsvc run --config <config>` and waits until its control pipe exists, which the
 * service creates only after the engine runs (recovery done, workers up, timer armed). Fails
 * the test, showing the service's stderr, if it exits first or the deadline passes.
 */
static E2E_UNUSED void e2e_svc_start(e2e_svc_t *s)
{
    char args[MAX_PATH + 32];
    DWORD start = GetTickCount();

    (void)snprintf(args, sizeof args, "run --config \"%s\"", s->config);
    e2e_proc_start(&s->proc, E2E_APCSVC, args);
    for (;;) {
        if (e2e_pipe_exists(s->name))
            return;
        if (e2e_proc_wait(&s->proc, 0))
            fail_msg("apcsvc exited with %lu before its pipe existed; stderr:\n%s",
                     (unsigned long)s->proc.code, s->proc.err);
        if (GetTickCount() - start > E2E_START_MS) {
            char *err = e2e_proc_err_now(&s->proc);
            print_error("stderr so far:\n%s\n", err);
            free(err);
            fail_msg("apcsvc %s: no control pipe within %u ms", s->name, E2E_START_MS);
        }
        Sleep(20);
    }
}

/*
 * Stops the instance through its documented stop event (Local\ApcSched-<name>-stop) and
 * waits for the process to end; returns its exit code. Fails if it does not end in time.
 */
static E2E_UNUSED DWORD e2e_svc_stop(e2e_svc_t *s)
{
    if (s->proc.process == NULL)
        return 0;
    if (!s->proc.exited) {
        HANDLE ev;
        wchar_t *evname = e2e_wide("Local\\ApcSched-%s-stop", s->name);
        ev = OpenEventW(EVENT_MODIFY_STATE, FALSE, evname);
        free(evname);
        assert_non_null(ev);
        assert_true(SetEvent(ev));
        CloseHandle(ev);
        if (!e2e_proc_wait(&s->proc, E2E_STOP_MS))
            fail_msg("apcsvc %s did not stop within %u ms", s->name, E2E_STOP_MS);
    }
    return s->proc.code;
}

/* Kills the instance hard (like `taskkill /f` or a crash) and waits until it is gone. */
static E2E_UNUSED void e2e_svc_kill(e2e_svc_t *s)
{
    assert_true(TerminateProcess(s->proc.process, 137));
    assert_true(e2e_proc_wait(&s->proc, E2E_STOP_MS));
}

/*
 * Frees the instance; a still-running process is stopped (or, failing that, killed). Accepts
 * a zeroed e2e_svc_t, so a test's teardown can call it whatever the test got to.
 */
static E2E_UNUSED void e2e_svc_free(e2e_svc_t *s)
{
    if (s->proc.process != NULL && !s->proc.exited) {
        HANDLE ev;
        wchar_t *evname = e2e_wide("Local\\ApcSched-%s-stop", s->name);
        ev = OpenEventW(EVENT_MODIFY_STATE, FALSE, evname);
        free(evname);
        if (ev != NULL) {
            (void)SetEvent(ev);
            CloseHandle(ev);
            (void)e2e_proc_wait(&s->proc, E2E_STOP_MS);
        }
    }
    e2e_proc_free(&s->proc);
}

/* cmocka fixtures: *state is a zeroed e2e_svc_t that the teardown stops and frees, so a test
   that fails half-way leaves no service running behind it. */
static E2E_UNUSED int e2e_svc_setup(void **state)
{
    *state = calloc(1, sizeof(e2e_svc_t));
    return *state == NULL ? -1 : 0;
}

static E2E_UNUSED int e2e_svc_teardown(void **state)
{
    e2e_svc_free(*state);
    free(*state);
    return 0;
}

/* ---- The history database, read as an operator would ----------------------------------------- */

#define E2E_MAX_ROWS 512

typedef struct e2e_rows {
    apc_run_record_t *r[E2E_MAX_ROWS];
    size_t n;
} e2e_rows_t;

static E2E_UNUSED int collect_row(const apc_run_record_t *run, void *ctx)
{
    e2e_rows_t *rows = ctx;

    if (rows->n >= E2E_MAX_ROWS)
        return 1;
    rows->r[rows->n] = apc_run_record_dup(run);
    assert_non_null(rows->r[rows->n]);
    rows->n++;
    return 0;
}

static E2E_UNUSED void e2e_rows_free(e2e_rows_t *rows)
{
    size_t i;

    for (i = 0; i < rows->n; i++)
        apc_run_record_free(rows->r[i]);
    rows->n = 0;
}

/*
 * Loads the runs of job (NULL: all), newest first, through a READONLY connection. Returns 0,
 * or the error (the database may not exist yet, or be mid-creation) with rows left empty.
 */
static E2E_UNUSED int e2e_rows_load(const char *db, const char *job, e2e_rows_t *rows)
{
    apc_history_t *h = NULL;
    apc_history_filter_t f;
    char err[512];
    int rc;

    e2e_rows_free(rows);
    rc = apc_history_open(db, APC_HISTORY_READONLY, &h, err, sizeof err);
    if (rc != 0)
        return rc;
    memset(&f, 0, sizeof f);
    f.job = job;
    rc = apc_history_query(h, &f, collect_row, rows, err, sizeof err);
    apc_history_close(h);
    if (rc != 0)
        e2e_rows_free(rows);
    return rc;
}

/* Counts rows with the given status. */
static E2E_UNUSED size_t e2e_rows_count(const e2e_rows_t *rows, apc_run_status_t st)
{
    size_t i, n = 0;

    for (i = 0; i < rows->n; i++)
        if (rows->r[i]->status == st)
            n++;
    return n;
}

/*
 * Polls run id until it has status st (or any final status when st is APC_RUN_STATUS_COUNT),
 * at most ms; returns a copy of the row (free with apc_run_record_free), failing the test with
 * the last status seen when the deadline passes.
 */
static E2E_UNUSED apc_run_record_t *e2e_wait_run(const char *db, int64_t id, apc_run_status_t st,
                                                 DWORD ms)
{
    DWORD start = GetTickCount();
    const char *last = "(no row)";

    for (;;) {
        apc_history_t *h = NULL;
        apc_run_record_t *r = NULL;
        char err[512];

        if (apc_history_open(db, APC_HISTORY_READONLY, &h, err, sizeof err) == 0) {
            if (apc_history_get_run(h, id, &r, err, sizeof err) == 0) {
                last = apc_run_status_name(r->status);
                if (r->status == st ||
                    (st == APC_RUN_STATUS_COUNT && apc_run_status_is_final(r->status))) {
                    apc_history_close(h);
                    return r;
                }
                apc_run_record_free(r);
            }
            apc_history_close(h);
        }
        if (GetTickCount() - start > ms)
            fail_msg("run %lld: wanted status %s within %lu ms, last seen %s", (long long)id,
                     st == APC_RUN_STATUS_COUNT ? "final" : apc_run_status_name(st),
                     (unsigned long)ms, last);
        Sleep(50);
    }
}

#endif /* APC_E2E_HARNESS_H */
