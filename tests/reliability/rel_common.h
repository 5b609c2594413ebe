/*
 * rel_common.h - what the reliability tests share on top of tests/win/e2e_harness.h: a raw
 * control-pipe client with deadlines (overlapped I/O, so a hung or killed service can never
 * hang a test), campaign parameters from the environment, FIGURE lines for the campaign
 * report, and direct SQLite reads of the history database (counts, integrity_check).
 *
 * Why a raw pipe client and not apcctl.exe: the crash and hostile-input checks must know
 * exactly which bytes were sent and whether an answer arrived before the service died (an
 * acknowledged submit is one whose answer we read), and they must send bytes no well-behaved
 * client ever would. Starting apcctl.exe (~50 ms under Wine) per request would also make the
 * load figures about process creation, not about the service.
 *
 * Figures: every check prints lines "FIGURE <check>: <key>=<value> ..." on stdout. The
 * campaign script (tests/reliability/campaign) collects them into RESULTS.md; in CTest they
 * are simply part of the log.
 *
 * Sizes: each test reads its size from an environment variable (APC_REL_KILLS, ...) with a
 * small default for CTest, so the campaign runs the same code with campaign sizes.
 *
 * Thread: rel_pipe_* may be called from any thread (each connection belongs to one thread);
 * the rest runs on the cmocka test thread.
 */
#ifndef APC_REL_COMMON_H
#define APC_REL_COMMON_H

#include <windows.h>

#include <psapi.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_protocol.h"
#include "e2e_harness.h"

#define REL_RESP_CAP (APC_PROTO_MAX_MESSAGE + 16)

/* ---- Parameters and figures -------------------------------------------------------------- */

/* An integer campaign parameter from the environment, or def when unset or not a number. */
static E2E_UNUSED long rel_param(const char *name, long def)
{
    const char *v = getenv(name);
    char *end = NULL;
    long n;

    if (v == NULL || *v == '\0')
        return def;
    n = strtol(v, &end, 10);
    return (end != NULL && *end == '\0' && n > 0) ? n : def;
}

/* Prints one FIGURE line (the campaign greps them) and flushes it at once. */
static E2E_UNUSED void rel_figure(const char *check, const char *fmt, ...)
{
    va_list ap;

    printf("FIGURE %s: ", check);
    va_start(ap, fmt);
    (void)vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    (void)fflush(stdout);
}

/* A small deterministic generator (xorshift32), so a failing campaign can be replayed with
   the seed it printed. */
static E2E_UNUSED unsigned rel_rand(unsigned *state)
{
    unsigned x = *state != 0 ? *state : 0x9e3779b9u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* Is this process running under Wine? (ntdll exports wine_get_version only there.) */
static E2E_UNUSED int rel_under_wine(void)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

    return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

/* ---- A raw control-pipe client ------------------------------------------------------------- */

typedef struct rel_pipe {
    HANDLE h;
    HANDLE ev;
} rel_pipe_t;

/*
 * Connects to \\.\pipe\<name> in message mode, retrying while the pipe is busy or absent for
 * at most ms. Returns 0, or the last Win32 error (ERROR_FILE_NOT_FOUND: no service).
 */
static E2E_UNUSED DWORD rel_pipe_open(rel_pipe_t *p, const char *name, DWORD ms)
{
    wchar_t *path = e2e_wide("\\\\.\\pipe\\%s", name);
    DWORD start = GetTickCount(), mode = PIPE_READMODE_MESSAGE, code = 0;

    p->h = INVALID_HANDLE_VALUE;
    p->ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (p->ev == NULL) {
        free(path);
        return GetLastError();
    }
    for (;;) {
        p->h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                           NULL);
        if (p->h != INVALID_HANDLE_VALUE)
            break;
        code = GetLastError();
        if (GetTickCount() - start >= ms)
            break;
        if (code == ERROR_PIPE_BUSY)
            (void)WaitNamedPipeW(path, 200);
        else
            Sleep(20);
    }
    free(path);
    if (p->h == INVALID_HANDLE_VALUE) {
        CloseHandle(p->ev);
        p->ev = NULL;
        return code != 0 ? code : ERROR_TIMEOUT;
    }
    if (!SetNamedPipeHandleState(p->h, &mode, NULL, NULL)) {
        code = GetLastError();
        CloseHandle(p->h);
        CloseHandle(p->ev);
        p->h = INVALID_HANDLE_VALUE;
        p->ev = NULL;
        return code;
    }
    return 0;
}

static E2E_UNUSED void rel_pipe_close(rel_pipe_t *p)
{
    if (p->h != INVALID_HANDLE_VALUE)
        CloseHandle(p->h);
    if (p->ev != NULL)
        CloseHandle(p->ev);
    p->h = INVALID_HANDLE_VALUE;
    p->ev = NULL;
}

/* Waits for one overlapped operation for at most ms; cancels it on timeout. Returns 0 and the
   byte count, or the Win32 error (ERROR_TIMEOUT after a cancel). */
static E2E_UNUSED DWORD rel_wait_io(rel_pipe_t *p, OVERLAPPED *ov, BOOL started, DWORD ms, DWORD *n)
{
    DWORD code = started ? 0 : GetLastError();

    *n = 0;
    if (!started && code != ERROR_IO_PENDING)
        return code;
    if (WaitForSingleObject(p->ev, ms) != WAIT_OBJECT_0) {
        (void)CancelIoEx(p->h, ov);
        (void)GetOverlappedResult(p->h, ov, n, TRUE);
        return ERROR_TIMEOUT;
    }
    if (!GetOverlappedResult(p->h, ov, n, FALSE))
        return GetLastError();
    return 0;
}

/* Writes one message (all len bytes) within ms. Returns 0 or the Win32 error. */
static E2E_UNUSED DWORD rel_pipe_write(rel_pipe_t *p, const void *msg, size_t len, DWORD ms)
{
    OVERLAPPED ov;
    DWORD n = 0, code;

    memset(&ov, 0, sizeof ov);
    ov.hEvent = p->ev;
    (void)ResetEvent(p->ev);
    code = rel_wait_io(p, &ov, WriteFile(p->h, msg, (DWORD)len, NULL, &ov), ms, &n);
    if (code == 0 && n != (DWORD)len)
        code = ERROR_WRITE_FAULT;
    return code;
}

/*
 * Reads one message into buf (NUL-terminated; a longer message is cut) within ms. Returns 0
 * and its length in *len, or the Win32 error (ERROR_BROKEN_PIPE: the server hung up).
 */
static E2E_UNUSED DWORD rel_pipe_read(rel_pipe_t *p, char *buf, size_t cap, size_t *len, DWORD ms)
{
    OVERLAPPED ov;
    DWORD n = 0, code;

    memset(&ov, 0, sizeof ov);
    ov.hEvent = p->ev;
    (void)ResetEvent(p->ev);
    code = rel_wait_io(p, &ov, ReadFile(p->h, buf, (DWORD)(cap - 1), NULL, &ov), ms, &n);
    if (code == ERROR_MORE_DATA)
        code = 0;
    buf[code == 0 ? n : 0] = '\0';
    *len = code == 0 ? n : 0;
    return code;
}

/* One request, one answer: returns 0 with the answer in buf, or the Win32 error. */
static E2E_UNUSED DWORD rel_pipe_call(rel_pipe_t *p, const char *req, char *buf, size_t cap,
                                      size_t *len, DWORD ms)
{
    DWORD code = rel_pipe_write(p, req, strlen(req), ms);

    if (code != 0)
        return code;
    return rel_pipe_read(p, buf, cap, len, ms);
}

/* Opens, asks {"v":1,"op":"status"} and decodes it; returns 1 if a STATUS answer came. */
static E2E_UNUSED int rel_status_ok(const char *name, DWORD ms, int64_t *pid)
{
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP);
    size_t len = 0;
    int ok = 0;

    assert_non_null(buf);
    if (rel_pipe_open(&p, name, ms) == 0) {
        char err[256];
        apc_proto_response_t r;
        if (rel_pipe_call(&p, "{\"v\":1,\"op\":\"status\"}", buf, REL_RESP_CAP, &len, ms) == 0 &&
            apc_proto_response_decode(buf, len, APC_OP_STATUS, &r, err, sizeof err) == 0) {
            ok = r.kind == APC_RESP_STATUS;
            if (pid != NULL)
                *pid = r.status.pid;
            apc_proto_response_free(&r);
        }
        rel_pipe_close(&p);
    }
    free(buf);
    return ok;
}

/*
 * Submits a run of job on an open connection. Returns 1 and the id if the service
 * acknowledged it, 0 if it answered with an error (*errcode set), -1 if no answer arrived
 * (the request may or may not have been committed: the caller counts it as "in doubt").
 */
static E2E_UNUSED int rel_submit(rel_pipe_t *p, const char *req, int64_t *id, int *errcode,
                                 char *buf, DWORD ms)
{
    char err[256];
    size_t len = 0;
    apc_proto_response_t r;
    int rc;

    *id = 0;
    *errcode = 0;
    if (rel_pipe_call(p, req, buf, REL_RESP_CAP, &len, ms) != 0)
        return -1;
    if (apc_proto_response_decode(buf, len, APC_OP_SUBMIT, &r, err, sizeof err) != 0) {
        *errcode = APC_EPROTO;
        return 0;
    }
    if (r.kind == APC_RESP_SUBMITTED) {
        *id = r.id;
        rc = 1;
    } else {
        *errcode = r.error_code;
        rc = 0;
    }
    apc_proto_response_free(&r);
    return rc;
}

/*
 * A submit of job "work" whose answer is expected to be held back (a locked, full or
 * read-only database): run rel_held_submit_main on its own thread; the test reads
 * `answered` while it waits, and rc/id/answered_at once the thread has ended. rc is -2 if
 * no connection could be made; otherwise as rel_submit. Waits up to 180 s for the answer.
 */
typedef struct rel_held_submit {
    const char *name; /* the service (pipe) name, set by the test */
    int64_t id;
    int rc;
    volatile LONG answered;
    DWORD answered_at; /* GetTickCount when the answer arrived */
} rel_held_submit_t;

static E2E_UNUSED DWORD WINAPI rel_held_submit_main(void *arg)
{
    rel_held_submit_t *t = arg;
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP);
    int code = 0;

    t->rc = -2;
    if (buf != NULL && rel_pipe_open(&p, t->name, 30000) == 0) {
        t->rc = rel_submit(&p, "{\"v\":1,\"op\":\"submit\",\"job\":\"work\"}", &t->id, &code, buf,
                           180000);
        t->answered_at = GetTickCount();
        InterlockedExchange(&t->answered, 1);
        rel_pipe_close(&p);
    }
    free(buf);
    return 0;
}

/* Starts a held submit of job "work" to the service name on its own thread (t is reset). */
static E2E_UNUSED HANDLE rel_held_submit_start(rel_held_submit_t *t, const char *name)
{
    HANDLE th;

    memset(t, 0, sizeof *t);
    t->name = name;
    th = CreateThread(NULL, 0, rel_held_submit_main, t, 0, NULL);
    assert_non_null(th);
    return th;
}

/*
 * Asks for the service's status every 500 ms until ms milliseconds have passed since the
 * tick count `since`, each answer within 30 s (the test fails otherwise): proof that the
 * service keeps answering while its database is locked, full or read-only. Returns the number
 * of answers; *max_ms gets the slowest.
 */
static E2E_UNUSED int rel_status_poll(const char *name, DWORD since, DWORD ms, DWORD *max_ms)
{
    int n = 0;

    *max_ms = 0;
    while (GetTickCount() - since < ms) {
        DWORD t = GetTickCount();
        assert_true(rel_status_ok(name, 30000, NULL));
        t = GetTickCount() - t;
        if (t > *max_ms)
            *max_ms = t;
        n++;
        Sleep(500);
    }
    return n;
}

/*
 * Starts `apcsvc run` on s's config; returns 1 once its pipe exists (it runs), 0 once it
 * exited (code in s->proc.code). Fails the test if neither happens in time.
 */
static E2E_UNUSED int rel_start_or_exit(e2e_svc_t *s)
{
    char args[MAX_PATH + 32];
    DWORD start = GetTickCount();

    (void)snprintf(args, sizeof args, "run --config \"%s\"", s->config);
    e2e_proc_start(&s->proc, E2E_APCSVC, args);
    for (;;) {
        if (e2e_proc_wait(&s->proc, 0))
            return 0;
        if (e2e_pipe_exists(s->name))
            return 1;
        if (GetTickCount() - start > E2E_START_MS)
            fail_msg("apcsvc neither exited nor served its pipe within %u ms", E2E_START_MS);
        Sleep(20);
    }
}

/* ---- The history database through SQLite itself -------------------------------------------- */

/* Opens the database read-only (as an operator's sqlite3 -readonly would); NULL on failure. */
static E2E_UNUSED sqlite3 *rel_db_open(const char *path)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    (void)sqlite3_busy_timeout(db, 10000);
    return db;
}

/* The first column of the first row of sql as an integer; fails the test on an error. */
static E2E_UNUSED int64_t rel_db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

/* PRAGMA integrity_check's first line into out ("ok" when the file is sound). */
static E2E_UNUSED void rel_db_integrity(const char *path, char *out, size_t size)
{
    sqlite3 *db = rel_db_open(path);
    sqlite3_stmt *st = NULL;

    (void)snprintf(out, size, "(cannot open)");
    if (db == NULL)
        return;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            (void)snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
        else
            (void)snprintf(out, size, "%s", sqlite3_errmsg(db));
    } else {
        (void)snprintf(out, size, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Counts rows matching an SQL condition on runs (opens and closes the database). */
static E2E_UNUSED int64_t rel_count(const char *path, const char *where)
{
    char sql[1024];
    sqlite3 *db = rel_db_open(path);
    int64_t n;

    assert_non_null(db);
    (void)snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE %s", where);
    n = rel_db_int(db, sql);
    sqlite3_close(db);
    return n;
}

/* Polls until count(where) >= want or ms passes; returns the last count. */
static E2E_UNUSED int64_t rel_wait_count(const char *path, const char *where, int64_t want,
                                         DWORD ms)
{
    DWORD start = GetTickCount();
    int64_t n = 0;

    for (;;) {
        sqlite3 *db = rel_db_open(path);
        if (db != NULL) {
            char sql[1024];
            (void)snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE %s", where);
            n = rel_db_int(db, sql);
            sqlite3_close(db);
        }
        if (n >= want || GetTickCount() - start > ms)
            return n;
        Sleep(100);
    }
}

/* ---- The service process ----------------------------------------------------------------- */

/* Private bytes (PagefileUsage) and working set of a process; 0 if they cannot be read. */
static E2E_UNUSED void rel_proc_memory(HANDLE process, SIZE_T *priv, SIZE_T *ws)
{
    PROCESS_MEMORY_COUNTERS pmc;

    memset(&pmc, 0, sizeof pmc);
    pmc.cb = sizeof pmc;
    *priv = *ws = 0;
    if (GetProcessMemoryInfo(process, &pmc, sizeof pmc)) {
        *priv = pmc.PagefileUsage;
        *ws = pmc.WorkingSetSize;
    }
}

/*
 * Counts the handles open in another process by probing: DuplicateHandle succeeds exactly for
 * the values that name an open handle there. Why: Wine's GetProcessHandleCount answers 0, and
 * NtQuerySystemInformation(SystemHandleInformation) is not reliable there; the probe works
 * the same on Windows. Handle values are multiples of 4; the probe stops at limit.
 */
static E2E_UNUSED unsigned rel_handle_count(HANDLE process, uintptr_t limit)
{
    uintptr_t v;
    unsigned n = 0;

    for (v = 4; v < limit; v += 4) {
        HANDLE dup = NULL;
        if (DuplicateHandle(process, (HANDLE)v, GetCurrentProcess(), &dup, 0, FALSE,
                            DUPLICATE_SAME_ACCESS)) {
            n++;
            CloseHandle(dup);
        }
    }
    return n;
}

#endif /* APC_REL_COMMON_H */
