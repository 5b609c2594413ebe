/*
 * apcbench.c - benchmarks of the Windows runtime: dispatch latency, throughput, timer accuracy,
 * idle cost, control-pipe round trips and process jobs, each through the REAL engine (its
 * threads, APCs, SQLite history) beside a raw Win32 baseline measured in the same run.
 *
 * Why this way: absolute figures under Wine are ~30x those of Windows, and the machine is
 * shared, so every figure is a ratio against a baseline taken in the same process, with the
 * samples of both sides interleaved (rotating the order each round) and reported as
 * percentiles. The engine is observed only through its public seams: opts.run_hook (called on
 * the worker thread when a run starts) and opts.log (the "engine: run N of J submitted by U"
 * line is logged on the engine thread right after the run was placed, which is the moment the
 * scheduler has decided; dispatch latency is measured from there to the hook).
 *
 * Usage: apcbench dispatch|throughput|timer|idle|pipe|proc|profile|smoke [--quick]
 * Output: the result lines of bench_stats.h on stdout; diagnostics on stderr.
 *
 * Threads: main() runs on the bench's main thread, which posts engine requests and is their
 * reply thread (it waits alertably). Baseline receivers run on their own threads (said at
 * each); the hook runs on the engine's worker threads and the log sink on any engine thread,
 * so both only write their own slot of an array and signal an event.
 */
#include <windows.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "apc_error.h"
#include "apc_history.h"
#include "apc_protocol.h"
#include "apc_str.h"
#include "apc_time.h"
#include "bench_stats.h"
#include "engine.h"
#include "pipesrv.h"
#include "win_util.h"

/* Older mingw-w64 headers lack it (Windows 10 1803+); the engine asks for it too. */
#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

#define MAX_RUNS 20000 /* run ids one engine may reach during a benchmark */

static int quick;
static HANDLE self_thread; /* a real handle of the main thread: the reply thread */

/* A benchmark that loses its engine or a baseline is void: say why and end the program. */
#if defined(_MSC_VER) && !defined(__clang__)
#define BENCH_NORETURN __declspec(noreturn)
#else
#define BENCH_NORETURN _Noreturn
#endif
static BENCH_NORETURN void die(const char *what);
static void die(const char *what)
{
    fprintf(stderr, "apcbench: %s (error %lu)\n", what, (unsigned long)GetLastError());
    fflush(stdout);
    ExitProcess(1);
}

/* calloc that ends the program when memory runs out. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* Wall clock in Unix microseconds (the engine's apc_win_now_ms clock, finer). */
static double wall_us(void)
{
    FILETIME ft;
    uint64_t t;
    GetSystemTimePreciseAsFileTime(&ft);
    t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    return (double)(t - UINT64_C(116444736000000000)) / 10.0;
}

/* Waits alertably (so replies keep arriving) until *v >= target. Returns 0 or -1 on timeout. */
static int wait_count(const volatile LONG *v, LONG target, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    while (*v < target) {
        if (GetTickCount64() - start > timeout_ms)
            return -1;
        SleepEx(1, TRUE);
    }
    return 0;
}

/* Waits alertably for an auto-reset event. Returns 0 or -1 on timeout. */
static int wait_event(HANDLE ev, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    for (;;) {
        DWORD w = WaitForSingleObjectEx(ev, timeout_ms, TRUE);
        if (w == WAIT_OBJECT_0)
            return 0;
        if (w != WAIT_IO_COMPLETION || GetTickCount64() - start > timeout_ms)
            return -1;
    }
}

/* ---- Temporary folders ------------------------------------------------------------------ */

static volatile LONG dir_counter;

/* Makes <base or %TEMP%>\apcbench-<pid>-<n> and stores its UTF-8 path in out. */
static int make_dir(char *out, size_t outsz, const char *base)
{
    wchar_t *w;
    char *t = NULL;
    int ok;

    if (base == NULL) {
        wchar_t tmp[MAX_PATH];
        DWORD n = GetTempPathW(MAX_PATH, tmp);
        if (n == 0 || n >= MAX_PATH)
            return -1;
        t = apc_wide_to_utf8(tmp);
        if (t == NULL)
            return -1;
    }
    snprintf(out, outsz, "%s%sapcbench-%lu-%ld", base != NULL ? base : t, base != NULL ? "\\" : "",
             (unsigned long)GetCurrentProcessId(), (long)InterlockedIncrement(&dir_counter));
    free(t);
    w = apc_utf8_to_wide(out);
    ok = w != NULL && CreateDirectoryW(w, NULL);
    free(w);
    return ok ? 0 : -1;
}

/* Deletes a folder this program made, with everything in it. */
static void remove_tree(const wchar_t *dir)
{
    wchar_t pat[MAX_PATH + 4];
    WIN32_FIND_DATAW fd;
    HANDLE h;

    swprintf(pat, MAX_PATH + 4, L"%ls\\*", dir);
    h = FindFirstFileW(pat, &fd);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            wchar_t sub[MAX_PATH * 2];
            if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
                continue;
            swprintf(sub, MAX_PATH * 2, L"%ls\\%ls", dir, fd.cFileName);
            if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                remove_tree(sub);
            else
                DeleteFileW(sub);
        } while (FindNextFileW(h, &fd));
        FindClose(h);
    }
    RemoveDirectoryW(dir);
}

/* ---- The engine under test -------------------------------------------------------------- */

typedef struct eng {
    char dir[MAX_PATH];
    char config[MAX_PATH + 16];
    char history[MAX_PATH + 16];
    apc_engine_t *e;
    double decided[MAX_RUNS]; /* monotonic us at the "submitted" log line, by run id */
    double started[MAX_RUNS]; /* monotonic us at the run hook, by run id */
    double started_wall[MAX_RUNS];
    volatile LONG nstarted;
    volatile LONG last_id;
    volatile LONG signal_at;     /* 0: the hook sets started_ev for every run; else at this count */
    volatile LONG engine_tid;    /* the engine thread's id (seen by the log sink) */
    volatile LONG worker_tid[9]; /* by worker number (1-based), seen by the hook */
    HANDLE started_ev;           /* auto-reset: set by the hook (see signal_at) */
} eng_t;

/* The service log sink: runs on any engine thread. Notes when a submit was decided. */
static void eng_log(void *ctx, int level, const char *msg)
{
    eng_t *g = ctx;
    static const char prefix[] = "engine: run ";
    if (strncmp(msg, prefix, sizeof prefix - 1) == 0 && strstr(msg, " submitted by ") != NULL) {
        long long id = strtoll(msg + sizeof prefix - 1, NULL, 10);
        if (id > 0 && id < MAX_RUNS)
            g->decided[id] = bench_now_us();
        InterlockedExchange(&g->engine_tid, (LONG)GetCurrentThreadId());
        return;
    }
    if (level <= APC_ENGINE_LOG_WARNING)
        fprintf(stderr, "engine log [%d]: %s\n", level, msg);
}

/* The run hook: runs on the worker thread that starts the run. */
static void eng_hook(void *ctx, int64_t run_id, int worker, DWORD thread_id)
{
    eng_t *g = ctx;
    double now = bench_now_us();
    LONG n, at;
    if (worker > 0 && worker < 9)
        InterlockedExchange(&g->worker_tid[worker], (LONG)thread_id);
    if (run_id > 0 && run_id < MAX_RUNS) {
        g->started[run_id] = now;
        g->started_wall[run_id] = wall_us();
    }
    InterlockedExchange(&g->last_id, (LONG)run_id);
    n = InterlockedIncrement(&g->nstarted);
    /* A SetEvent is a wineserver request: a throughput burst asks for one at its end only,
       so the benchmark's own signalling does not weigh on the engine's side. */
    at = g->signal_at;
    if (at == 0 || n == at)
        SetEvent(g->started_ev);
}

/* Starts an engine on a fresh folder (under base, or %TEMP%) with the service options and the
   jobs (JSON array members) given. Exits on failure: a benchmark without its engine is void. */
static eng_t *eng_start_opts(const char *base, int workers, const char *jobs, int no_history)
{
    eng_t *g = xcalloc(1, sizeof *g);
    apc_engine_opts_t o;
    apc_buf_t errors = {0}, text = {0};
    FILE *fp;

    if (make_dir(g->dir, sizeof g->dir, base) != 0)
        die("cannot make the engine's folder");
    snprintf(g->config, sizeof g->config, "%s\\apcsvc.json", g->dir);
    snprintf(g->history, sizeof g->history, "%s\\history.db", g->dir);
    apc_buf_printf(&text,
                   "{\"service\": {\"history\": \"history.db\", \"output_dir\": \"runs\", "
                   "\"log_dir\": \"logs\", \"workers\": %d, \"shutdown_grace\": \"5s\"},\n"
                   "\"jobs\": [\n%s\n]}\n",
                   workers, jobs);
    fp = fopen(g->config, "wb");
    if (fp == NULL || apc_buf_failed(&text) || fwrite(text.data, 1, text.len, fp) != text.len ||
        fclose(fp) != 0)
        die("cannot write the config");
    apc_buf_free(&text);
    g->started_ev = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (g->started_ev == NULL)
        die("CreateEventW");
    memset(&o, 0, sizeof o);
    o.config_path = g->config;
    o.log = eng_log;
    o.log_ctx = g;
    o.run_hook = eng_hook;
    o.run_hook_ctx = g;
    o.no_history = no_history;
    if (apc_engine_start(&o, &g->e, &errors) != 0) {
        fprintf(stderr, "engine start: %s\n", errors.data != NULL ? errors.data : "?");
        die("apc_engine_start");
    }
    apc_buf_free(&errors);
    return g;
}

static eng_t *eng_start(const char *base, int workers, const char *jobs)
{
    return eng_start_opts(base, workers, jobs, 0);
}

static void eng_stop(eng_t *g)
{
    wchar_t *w;
    apc_engine_stop(g->e);
    if (apc_engine_join(g->e, 60000) != 0)
        die("the engine did not stop within 60 s");
    apc_engine_free(g->e);
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        ; /* answers still queued to this thread */
    CloseHandle(g->started_ev);
    w = apc_utf8_to_wide(g->dir);
    if (w != NULL)
        remove_tree(w);
    free(w);
    free(g);
}

/* One request to the engine, answered by an APC to the main thread. */
typedef struct call {
    apc_engine_req_t req;
    double posted;
    volatile LONG done;
} call_t;

static volatile LONG answers; /* how many engine answers arrived (main thread only writes) */

/* Runs on the main thread (the reply thread), as a user APC. */
static void on_done(apc_engine_req_t *req)
{
    call_t *c = req->ctx;
    if (req->result != 0)
        fprintf(stderr, "engine answered %s\n", apc_strerror(req->result));
    c->done = 1;
    answers++;
    apc_buf_free(&req->response);
}

static void post(eng_t *g, call_t *c, apc_proto_op_t op, const char *job)
{
    memset(c, 0, sizeof *c);
    apc_proto_request_init(&c->req.in, op);
    c->req.in.job = job;
    c->req.submitted_by = "bench";
    c->req.reply_thread = self_thread;
    c->req.done = on_done;
    c->req.ctx = c;
    c->posted = bench_now_us();
    if (apc_engine_post(g->e, &c->req) != 0)
        die("apc_engine_post");
}

/* ---- Raw baselines ------------------------------------------------------------------------ */

/* What every baseline receiver records: when it ran, then it signals the main thread. */
static volatile double recv_us;
static HANDLE recv_ev;         /* auto-reset, set by every receiver */
static volatile LONG quitting; /* the baseline threads end */

/* An alertable thread that only sleeps: APCs run here. Runs on the APC baseline thread. */
static DWORD WINAPI apc_thread(LPVOID arg)
{
    (void)arg;
    while (!quitting)
        SleepEx(INFINITE, TRUE);
    return 0;
}

static void CALLBACK apc_recv(ULONG_PTR arg)
{
    (void)arg;
    recv_us = bench_now_us();
    SetEvent(recv_ev);
}

static void CALLBACK apc_quit(ULONG_PTR arg)
{
    (void)arg;
    quitting = 1;
}

/* Waits in GetQueuedCompletionStatus. Runs on the IOCP baseline thread. */
static DWORD WINAPI iocp_thread(LPVOID arg)
{
    HANDLE port = arg;
    for (;;) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        OVERLAPPED *ov = NULL;
        if (!GetQueuedCompletionStatus(port, &bytes, &key, &ov, INFINITE) || key == 0)
            return 0;
        recv_us = bench_now_us();
        SetEvent(recv_ev);
    }
}

static HANDLE go_ev; /* auto-reset: the SetEvent baseline */

/* Waits on go_ev. Runs on the event baseline thread. */
static DWORD WINAPI event_thread(LPVOID arg)
{
    (void)arg;
    for (;;) {
        if (WaitForSingleObject(go_ev, INFINITE) != WAIT_OBJECT_0 || quitting)
            return 0;
        recv_us = bench_now_us();
        SetEvent(recv_ev);
    }
}

/* Runs on a thread-pool thread. */
static VOID CALLBACK tp_recv(PTP_CALLBACK_INSTANCE inst, PVOID ctx, PTP_WORK work)
{
    (void)inst;
    (void)ctx;
    (void)work;
    recv_us = bench_now_us();
    SetEvent(recv_ev);
}

static HANDLE start_thread(LPTHREAD_START_ROUTINE fn, void *arg)
{
    HANDLE h = CreateThread(NULL, 0, fn, arg, 0, NULL);
    if (h == NULL)
        die("CreateThread");
    return h;
}

/* ---- 1. Dispatch latency ------------------------------------------------------------------ */

static const char noop_job[] =
    "{\"name\": \"noop\", \"builtin\": \"noop\", \"overlap\": \"parallel\"}";

static int bench_dispatch(void)
{
    enum { M_ENGINE, M_APC, M_IOCP, M_TP, M_EVENT, M_COUNT };
    static const char *const names[M_COUNT] = {"engine", "queueuserapc", "iocp", "threadpool",
                                               "setevent"};
    bench_samples_t s[M_COUNT], e2e = {0}, call = {0};
    int n = quick ? 30 : 1000, i, k;
    eng_t *g = eng_start(NULL, 2, noop_job);
    call_t *calls = calloc((size_t)n, sizeof *calls);
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    HANDLE th_apc, th_iocp, th_ev;
    PTP_WORK work = CreateThreadpoolWork(tp_recv, NULL, NULL);
    char text[160];

    memset(s, 0, sizeof s);
    if (calls == NULL || port == NULL || work == NULL)
        die("dispatch set-up");
    th_apc = start_thread(apc_thread, NULL);
    th_iocp = start_thread(iocp_thread, port);
    th_ev = start_thread(event_thread, NULL);
    Sleep(100); /* let every receiver reach its wait */

    for (i = 0; i < n; i++) {
        for (k = 0; k < M_COUNT; k++) {
            int m = (i + k) % M_COUNT;
            double t0 = 0, lat = 0;
            SleepEx(1, TRUE); /* the same idle gap before every sample */
            ResetEvent(recv_ev);
            ResetEvent(g->started_ev);
            switch (m) {
            case M_ENGINE: {
                LONG id;
                post(g, &calls[i], APC_OP_SUBMIT, "noop");
                if (wait_event(g->started_ev, 10000) != 0)
                    die("the engine did not start a run within 10 s");
                id = g->last_id;
                if (id > 0 && id < MAX_RUNS && g->decided[id] != 0) {
                    lat = g->started[id] - g->decided[id];
                    if (bench_samples_add(&e2e, g->started[id] - calls[i].posted) != 0)
                        die("out of memory");
                } else {
                    die("no decision time for the run started");
                }
                break;
            }
            case M_APC:
                t0 = bench_now_us();
                if (!QueueUserAPC(apc_recv, th_apc, 0))
                    die("QueueUserAPC");
                if (bench_samples_add(&call, bench_now_us() - t0) != 0)
                    die("out of memory");
                break;
            case M_IOCP:
                t0 = bench_now_us();
                if (!PostQueuedCompletionStatus(port, 0, 1, NULL))
                    die("PostQueuedCompletionStatus");
                break;
            case M_TP:
                t0 = bench_now_us();
                SubmitThreadpoolWork(work);
                break;
            default:
                t0 = bench_now_us();
                if (!SetEvent(go_ev))
                    die("SetEvent");
                break;
            }
            if (m != M_ENGINE) {
                if (wait_event(recv_ev, 10000) != 0)
                    die("a baseline receiver did not run within 10 s");
                lat = recv_us - t0;
            }
            if (bench_samples_add(&s[m], lat) != 0)
                die("out of memory");
        }
    }
    if (wait_count(&answers, n, 30000) != 0)
        die("submits were not answered");

    for (k = 0; k < M_COUNT; k++)
        bench_summary("dispatch", names[k], &s[k], "us");
    bench_summary("dispatch", "engine_post_to_start", &e2e, "us");
    bench_summary("dispatch", "queueuserapc_call", &call, "us");
    bench_result("dispatch", "engine_vs_apc.p50_ratio",
                 bench_quantile(&s[M_ENGINE], 0.5) / bench_quantile(&s[M_APC], 0.5), "x");
    snprintf(text, sizeof text, "%d samples per mechanism, interleaved, 1 ms idle gap", n);
    bench_info("dispatch", text);

    quitting = 1;
    QueueUserAPC(apc_quit, th_apc, 0);
    PostQueuedCompletionStatus(port, 0, 0, NULL);
    SetEvent(go_ev);
    WaitForSingleObject(th_apc, INFINITE);
    WaitForSingleObject(th_iocp, INFINITE);
    WaitForSingleObject(th_ev, INFINITE);
    quitting = 0;
    CloseHandle(th_apc);
    CloseHandle(th_iocp);
    CloseHandle(th_ev);
    CloseHandle(port);
    WaitForThreadpoolWorkCallbacks(work, FALSE);
    CloseThreadpoolWork(work);
    eng_stop(g);
    free(calls);
    for (k = 0; k < M_COUNT; k++)
        bench_samples_free(&s[k]);
    bench_samples_free(&e2e);
    bench_samples_free(&call);
    return 0;
}

/* ---- 2. Throughput ------------------------------------------------------------------------ */

static volatile LONG raw_count, raw_target;

/* Runs on the APC baseline thread. */
static void CALLBACK count_apc(ULONG_PTR arg)
{
    (void)arg;
    if (++raw_count == raw_target)
        SetEvent(recv_ev);
}

/* The engine-shaped raw pipeline: request -> dispatcher -> worker -> dispatcher, all APCs. */
static HANDLE pipe_dispatcher, pipe_worker;

static void CALLBACK pipe_done(ULONG_PTR arg) /* runs on the dispatcher thread */
{
    (void)arg;
    if (++raw_count == raw_target)
        SetEvent(recv_ev);
}

static void CALLBACK pipe_job(ULONG_PTR arg) /* runs on the worker thread */
{
    if (!QueueUserAPC(pipe_done, pipe_dispatcher, arg))
        die("QueueUserAPC");
}

static void CALLBACK pipe_request(ULONG_PTR arg) /* runs on the dispatcher thread */
{
    if (!QueueUserAPC(pipe_job, pipe_worker, arg))
        die("QueueUserAPC");
}

/* Sends n items through the raw APC path; returns items per second. */
static double raw_rate(int n, int shaped, HANDLE th)
{
    double t0;
    int i;
    raw_count = 0;
    raw_target = n;
    ResetEvent(recv_ev);
    t0 = bench_now_us();
    for (i = 0; i < n; i++)
        if (!QueueUserAPC(shaped ? pipe_request : count_apc, th, (ULONG_PTR)i))
            die("QueueUserAPC");
    if (wait_event(recv_ev, 60000) != 0)
        die("raw APC loop did not finish");
    return (double)n * 1e6 / (bench_now_us() - t0);
}

/* Waits alertably (answers keep arriving) until the hook has seen `target` runs start; the
   hook signals started_ev once, at that count. Returns 0 or -1 on timeout. */
static int wait_started(eng_t *g, LONG target, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    while (g->nstarted < target) {
        DWORD w = WaitForSingleObjectEx(g->started_ev, 1000, TRUE);
        if (w == WAIT_FAILED || GetTickCount64() - start > timeout_ms)
            return -1;
    }
    return 0;
}

/* Waits alertably until `target` answers arrived: every answer is an APC that ends the wait. */
static int wait_answers(LONG target, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    while (answers < target) {
        if (GetTickCount64() - start > timeout_ms)
            return -1;
        SleepEx(1000, TRUE);
    }
    return 0;
}

/* Submits n noop runs at once; returns runs per second, first post to last start. */
static double engine_rate(eng_t *g, call_t *calls, int n)
{
    LONG base = g->nstarted, a0 = answers;
    double t0, rate;
    int i;
    ResetEvent(g->started_ev);
    InterlockedExchange(&g->signal_at, base + n);
    t0 = bench_now_us();
    for (i = 0; i < n; i++)
        post(g, &calls[i], APC_OP_SUBMIT, "noop");
    if (wait_started(g, base + n, 60000) != 0)
        die("the engine did not start every run within 60 s");
    rate = (double)n * 1e6 / (bench_now_us() - t0);
    if (wait_answers(a0 + n, 60000) != 0)
        die("submits were not answered");
    InterlockedExchange(&g->signal_at, 0);
    return rate;
}

static int bench_throughput(void)
{
    int n_raw = quick ? 200 : 5000, n_eng = quick ? 60 : 2000, rounds = quick ? 1 : 3, r;
    bench_samples_t raw = {0}, shaped = {0}, disk = {0}, nohist = {0};
    call_t *calls = calloc((size_t)n_eng, sizeof *calls);
    /* With history (group commit, synchronous=FULL, on disk), and exactly without: the
       engine's no_history benchmark option runs no history thread at all. */
    eng_t *gd = eng_start(NULL, 2, noop_job), *gn = eng_start_opts(NULL, 2, noop_job, 1);
    HANDLE th_raw = start_thread(apc_thread, NULL);

    if (calls == NULL)
        die("out of memory");
    pipe_dispatcher = start_thread(apc_thread, NULL);
    pipe_worker = start_thread(apc_thread, NULL);
    Sleep(200);
    for (r = 0; r < rounds; r++) {
        /* Rotate the order each round so no side always runs first. */
        int k;
        for (k = 0; k < 4; k++) {
            switch ((r + k) % 4) {
            case 0:
                bench_samples_add(&raw, raw_rate(n_raw, 0, th_raw));
                break;
            case 1:
                bench_samples_add(&shaped, raw_rate(n_raw, 1, pipe_dispatcher));
                break;
            case 2:
                bench_samples_add(&disk, engine_rate(gd, calls, n_eng));
                break;
            default:
                bench_samples_add(&nohist, engine_rate(gn, calls, n_eng));
                break;
            }
        }
    }
    bench_result("throughput", "raw_apc.rate", bench_quantile(&raw, 0.5), "items/s");
    bench_result("throughput", "raw_apc_3hop.rate", bench_quantile(&shaped, 0.5), "items/s");
    bench_result("throughput", "engine_history_disk.rate", bench_quantile(&disk, 0.5), "runs/s");
    bench_result("throughput", "engine_vs_raw_disk",
                 bench_quantile(&disk, 0.5) / bench_quantile(&raw, 0.5), "x");
    bench_result("throughput", "engine_no_history.rate", bench_quantile(&nohist, 0.5), "runs/s");
    bench_result("throughput", "engine_vs_raw_no_history",
                 bench_quantile(&nohist, 0.5) / bench_quantile(&raw, 0.5), "x");
    {
        char text[160];
        snprintf(text, sizeof text,
                 "%d rounds; raw %d APCs per round, engine %d submits per round; medians", rounds,
                 n_raw, n_eng);
        bench_info("throughput", text);
    }
    quitting = 1;
    QueueUserAPC(apc_quit, th_raw, 0);
    QueueUserAPC(apc_quit, pipe_dispatcher, 0);
    QueueUserAPC(apc_quit, pipe_worker, 0);
    WaitForSingleObject(th_raw, INFINITE);
    WaitForSingleObject(pipe_dispatcher, INFINITE);
    WaitForSingleObject(pipe_worker, INFINITE);
    quitting = 0;
    CloseHandle(th_raw);
    CloseHandle(pipe_dispatcher);
    CloseHandle(pipe_worker);
    eng_stop(gd);
    eng_stop(gn);
    free(calls);
    bench_samples_free(&raw);
    bench_samples_free(&shaped);
    bench_samples_free(&disk);
    bench_samples_free(&nohist);
    return 0;
}

/* ---- 3. Timer accuracy -------------------------------------------------------------------- */

static void iso_utc(char *out, size_t outsz, int64_t ms)
{
    FILETIME ft;
    SYSTEMTIME st;
    LONGLONG t = apc_win_filetime_from_ms(ms);
    ft.dwLowDateTime = (DWORD)((ULONGLONG)t & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)((ULONGLONG)t >> 32);
    if (!FileTimeToSystemTime(&ft, &st))
        die("FileTimeToSystemTime");
    snprintf(out, outsz, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", st.wYear, st.wMonth, st.wDay,
             st.wHour, st.wMinute, st.wSecond, st.wMilliseconds);
}

typedef struct rawtimer {
    int64_t first_ms, step_ms;
    int n;
    bench_samples_t late;
} rawtimer_t;

/* The raw baseline: one absolute waitable timer, re-armed per instant. Runs on its own thread. */
static DWORD WINAPI rawtimer_thread(LPVOID arg)
{
    rawtimer_t *t = arg;
    HANDLE tm =
        CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
    int k;
    if (tm == NULL)
        tm = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);
    if (tm == NULL)
        die("CreateWaitableTimerExW");
    for (k = 0; k < t->n; k++) {
        LARGE_INTEGER li;
        int64_t due = t->first_ms + k * t->step_ms;
        li.QuadPart = apc_win_filetime_from_ms(due);
        if (!SetWaitableTimer(tm, &li, 0, NULL, NULL, FALSE))
            die("SetWaitableTimer");
        if (WaitForSingleObject(tm, INFINITE) != WAIT_OBJECT_0)
            die("WaitForSingleObject(timer)");
        bench_samples_add(&t->late, wall_us() - (double)due * 1000.0);
    }
    CloseHandle(tm);
    return 0;
}

typedef struct sched_ctx {
    eng_t *g;
    bench_samples_t *late;
    int bad;
} sched_ctx_t;

static int collect_late(const apc_run_record_t *r, void *ctx)
{
    sched_ctx_t *c = ctx;
    if (r->id <= 0 || r->id >= MAX_RUNS || c->g->started_wall[r->id] == 0 ||
        r->scheduled_for == APC_TIME_NONE) {
        c->bad++;
        return 0;
    }
    return bench_samples_add(c->late, c->g->started_wall[r->id] - (double)r->scheduled_for * 1000.0)
               ? APC_ENOMEM
               : 0;
}

static int bench_timer(void)
{
    int n = quick ? 6 : 200, k;
    const int64_t step = 50;
    int64_t first = apc_win_now_ms() + (quick ? 1500 : 3000);
    apc_buf_t jobs = {0};
    rawtimer_t raw;
    bench_samples_t late = {0};
    sched_ctx_t sc;
    HANDLE th;
    eng_t *g;
    apc_history_t *h = NULL;
    char err[512], iso[40], text[200];

    for (k = 0; k < n; k++) {
        iso_utc(iso, sizeof iso, first + k * step);
        apc_buf_printf(&jobs,
                       "%s{\"name\": \"t%03d\", \"builtin\": \"noop\", \"schedule\": \"@at %s\"}",
                       k > 0 ? ",\n" : "", k, iso);
    }
    if (apc_buf_failed(&jobs))
        die("out of memory");
    g = eng_start(NULL, 2, jobs.data);
    apc_buf_free(&jobs);
    memset(&raw, 0, sizeof raw);
    raw.first_ms = first + step / 2; /* between the engine's instants: they never coincide */
    raw.step_ms = step;
    raw.n = n;
    th = start_thread(rawtimer_thread, &raw);
    if (wait_count(&g->nstarted, n, (DWORD)(3000 + n * step + 10000)) != 0)
        die("not every scheduled run started");
    WaitForSingleObject(th, INFINITE);
    CloseHandle(th);
    apc_engine_stop(g->e);
    if (apc_engine_join(g->e, 60000) != 0)
        die("engine join");
    if (apc_history_open(g->history, APC_HISTORY_READONLY, &h, err, sizeof err) != 0)
        die(err);
    sc.g = g;
    sc.late = &late;
    sc.bad = 0;
    if (apc_history_query(h, NULL, collect_late, &sc, err, sizeof err) != 0 || sc.bad != 0 ||
        late.n != (size_t)n)
        die("the history does not hold every scheduled run");
    apc_history_close(h);
    bench_summary("timer", "engine_late", &late, "us");
    bench_summary("timer", "raw_timer_late", &raw.late, "us");
    bench_result("timer", "engine_min_late", bench_quantile(&late, 0.0), "us");
    snprintf(text, sizeof text,
             "%d @at jobs %lld ms apart; a raw absolute waitable timer fires between them; "
             "lateness = run hook (wall clock) - scheduled_for",
             n, (long long)step);
    bench_info("timer", text);
    eng_stop(g);
    bench_samples_free(&late);
    bench_samples_free(&raw.late);
    return 0;
}

/* ---- 4. Idle cost ------------------------------------------------------------------------- */

typedef struct tstat {
    long tid;
    double switches; /* voluntary + involuntary context switches */
    double cpu_ns;   /* schedstat: time on a CPU */
} tstat_t;

#define MAX_THREADS 256

/*
 * The Linux process id of this (Wine) process, or -1 (Windows itself, or not found). Wine
 * resolves Z:\proc\self in the wineserver, so the process is found by its command name (the
 * program's file name, cut to 15 characters as Linux does) and, when the caller exported
 * APCBENCH_TAG (tools/bench/run does), by that variable in its Unix environment: without a
 * tag, only a single candidate is trusted.
 */
static long unix_pid(void)
{
    WIN32_FIND_DATAW fd;
    HANDLE h;
    wchar_t exe[MAX_PATH], *base;
    char comm[40], tag[128], path[128];
    static char buf[65536];
    long found = -1;
    int matches = 0;
    DWORD tl = GetEnvironmentVariableA("APCBENCH_TAG", tag, sizeof tag);

    if (tl == 0 || tl >= sizeof tag)
        tag[0] = '\0';
    exe[0] = L'\0';
    if (GetModuleFileNameW(NULL, exe, MAX_PATH) == 0)
        return -1;
    base = wcsrchr(exe, L'\\');
    snprintf(comm, sizeof comm, "(%.15ls)", base != NULL ? base + 1 : exe);
    h = FindFirstFileW(L"Z:\\proc\\*", &fd);
    if (h == INVALID_HANDLE_VALUE)
        return -1;
    do {
        long pid = wcstol(fd.cFileName, NULL, 10);
        FILE *fp;
        size_t n;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "Z:\\proc\\%ld\\stat", pid);
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, 255, fp);
        fclose(fp);
        buf[n] = '\0';
        if (strstr(buf, comm) == NULL)
            continue;
        if (tag[0] != '\0') {
            snprintf(path, sizeof path, "Z:\\proc\\%ld\\environ", pid);
            if ((fp = fopen(path, "rb")) == NULL)
                continue;
            size_t k;
            n = fread(buf, 1, sizeof buf - 1, fp);
            fclose(fp);
            buf[n] = '\0';
            for (k = 0; k < n; k++)
                if (buf[k] == '\0')
                    buf[k] = '\n';
            if (strstr(buf, "APCBENCH_TAG=") == NULL || strstr(buf, tag) == NULL)
                continue;
        }
        found = pid;
        matches++;
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return matches == 1 ? found : -1;
}

/* Reads the Linux per-thread counters of process pid through Z:\proc. Returns the number of
   threads, or -1 where there is no /proc. */
static int read_threads(long pid, tstat_t *out, int max)
{
    WIN32_FIND_DATAW fd;
    wchar_t pat[64];
    HANDLE h;
    int n = 0;

    swprintf(pat, 64, L"Z:\\proc\\%ld\\task\\*", pid);
    h = FindFirstFileW(pat, &fd);
    if (h == INVALID_HANDLE_VALUE)
        return -1;
    do {
        char path[128], line[256];
        FILE *fp;
        long tid = wcstol(fd.cFileName, NULL, 10);
        if (tid <= 0 || n >= max)
            continue;
        out[n].tid = tid;
        out[n].switches = 0;
        out[n].cpu_ns = 0;
        snprintf(path, sizeof path, "Z:\\proc\\%ld\\task\\%ld\\status", pid, tid);
        if ((fp = fopen(path, "r")) != NULL) {
            while (fgets(line, sizeof line, fp) != NULL)
                if (strstr(line, "ctxt_switches:") != NULL)
                    out[n].switches += strtod(strchr(line, ':') + 1, NULL);
            fclose(fp);
        }
        snprintf(path, sizeof path, "Z:\\proc\\%ld\\task\\%ld\\schedstat", pid, tid);
        if ((fp = fopen(path, "r")) != NULL) {
            if (fgets(line, sizeof line, fp) != NULL)
                out[n].cpu_ns = strtod(line, NULL);
            fclose(fp);
        }
        n++;
    } while (FindNextFileW(h, &fd));
    FindClose(h);
    return n;
}

static double process_cpu_ms(void)
{
    FILETIME c, x, k, u;
    if (!GetProcessTimes(GetCurrentProcess(), &c, &x, &k, &u))
        die("GetProcessTimes");
    return (double)((((uint64_t)k.dwHighDateTime << 32) | k.dwLowDateTime) +
                    (((uint64_t)u.dwHighDateTime << 32) | u.dwLowDateTime)) /
           10000.0;
}

static int bench_idle(void)
{
    int njobs = quick ? 200 : 10000, i, n0, n1;
    DWORD idle_ms = quick ? 1000 : 60000;
    apc_buf_t jobs = {0};
    eng_t *g;
    SYSTEMTIME now;
    static tstat_t before[MAX_THREADS], after[MAX_THREADS];
    double cpu0, cpu1;
    long pid = unix_pid();
    char text[200];

    /* A yearly schedule that cannot fall due within the idle minute. */
    GetSystemTime(&now);
    for (i = 0; i < njobs; i++)
        apc_buf_printf(
            &jobs,
            "%s{\"name\": \"idle%05d\", \"builtin\": \"noop\", \"schedule\": \"%d %d 1 %d *\", "
            "\"timezone\": \"UTC\"}",
            i > 0 ? ",\n" : "", i, i % 60, i % 24, now.wMonth == 1 ? 7 : 1);
    if (apc_buf_failed(&jobs))
        die("out of memory");
    g = eng_start(NULL, 0, jobs.data);
    apc_buf_free(&jobs);
    Sleep(quick ? 300 : 3000); /* start-up work (prune, first records) settles */

    n0 = pid > 0 ? read_threads(pid, before, MAX_THREADS) : -1;
    cpu0 = process_cpu_ms();
    Sleep(idle_ms);
    cpu1 = process_cpu_ms();
    n1 = pid > 0 ? read_threads(pid, after, MAX_THREADS) : -1;

    bench_result("idle", "jobs", njobs, "jobs");
    bench_result("idle", "seconds", idle_ms / 1000.0, "s");
    bench_result("idle", "process_cpu_ms", cpu1 - cpu0, "ms");
    if (n0 < 0 || n1 < 0) {
        bench_info("idle", "no Linux process found through Z:\\proc (Windows, or no unique "
                           "APCBENCH_TAG match): per-thread wakeups not measured");
    } else {
        double wakes = 0, other_cpu_ns = 0, worst = 0;
        for (i = 0; i < n1; i++) {
            int j;
            double sw = after[i].switches, ns = after[i].cpu_ns;
            if (after[i].tid == pid)
                continue; /* the main (measuring) thread: Wine runs it on the initial thread */
            for (j = 0; j < n0; j++)
                if (before[j].tid == after[i].tid) {
                    sw -= before[j].switches;
                    ns -= before[j].cpu_ns;
                }
            wakes += sw;
            other_cpu_ns += ns;
            if (sw > worst)
                worst = sw;
        }
        bench_result("idle", "threads", n1, "threads");
        bench_result("idle", "wakeups", wakes, "context-switches");
        bench_result("idle", "wakeups_worst_thread", worst, "context-switches");
        bench_result("idle", "engine_threads_cpu_ms", other_cpu_ns / 1e6, "ms");
    }
    snprintf(text, sizeof text,
             "%d cron jobs due months away; counters over %lu ms after a settle; wakeups = Linux "
             "context switches of every thread but the measuring one",
             njobs, (unsigned long)idle_ms);
    bench_info("idle", text);
    eng_stop(g);
    return 0;
}

/* ---- 6. Control pipe ---------------------------------------------------------------------- */

typedef struct client {
    const wchar_t *pipe;
    const char *msg;
    DWORD msglen;
    int trips;
    HANDLE go; /* manual-reset: every client starts together */
    HANDLE ready_sem;
    bench_samples_t rtt;
    int failed;
    char first[256]; /* the first response, for the smoke check */
} client_t;

/* A pipe client doing `trips` round trips. Runs on its own thread. */
static DWORD WINAPI client_thread(LPVOID arg)
{
    client_t *c = arg;
    HANDLE p = INVALID_HANDLE_VALUE;
    DWORD mode = PIPE_READMODE_MESSAGE;
    static char buf[MAX_THREADS][APC_PROTO_MAX_MESSAGE];
    static volatile LONG slot;
    char *in = buf[InterlockedIncrement(&slot) % MAX_THREADS];
    int k, tries;

    for (tries = 0; tries < 200 && p == INVALID_HANDLE_VALUE; tries++) {
        p = CreateFileW(c->pipe, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (p == INVALID_HANDLE_VALUE)
            WaitNamedPipeW(c->pipe, 100);
    }
    ReleaseSemaphore(c->ready_sem, 1, NULL);
    if (p == INVALID_HANDLE_VALUE || !SetNamedPipeHandleState(p, &mode, NULL, NULL)) {
        c->failed = 1;
        return 0;
    }
    WaitForSingleObject(c->go, INFINITE);
    for (k = 0; k < c->trips; k++) {
        DWORD n = 0;
        double t0 = bench_now_us();
        if (!WriteFile(p, c->msg, c->msglen, &n, NULL) || n != c->msglen ||
            !ReadFile(p, in, APC_PROTO_MAX_MESSAGE, &n, NULL) || n == 0) {
            c->failed = 1;
            break;
        }
        bench_samples_add(&c->rtt, bench_now_us() - t0);
        if (k == 0) {
            size_t m = n < sizeof c->first - 1 ? n : sizeof c->first - 1;
            memcpy(c->first, in, m);
            c->first[m] = '\0';
        }
    }
    CloseHandle(p);
    return 0;
}

/* One raw echo server instance: blocking connect, then read/write until the client leaves.
   Runs on its own thread. */
static DWORD WINAPI echo_thread(LPVOID arg)
{
    HANDLE p = arg;
    static char buf[MAX_THREADS][APC_PROTO_MAX_MESSAGE];
    static volatile LONG slot;
    char *in = buf[InterlockedIncrement(&slot) % MAX_THREADS];
    if (!ConnectNamedPipe(p, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) {
        CloseHandle(p);
        return 0;
    }
    for (;;) {
        DWORD n = 0, w = 0;
        if (!ReadFile(p, in, APC_PROTO_MAX_MESSAGE, &n, NULL) || !WriteFile(p, in, n, &w, NULL))
            break;
    }
    DisconnectNamedPipe(p);
    CloseHandle(p);
    return 0;
}

/* Runs nclients clients against pipe; returns round trips per second, adds latencies to rtt. */
static double pipe_round(const wchar_t *pipe, const char *msg, int nclients, int trips,
                         bench_samples_t *rtt, char *first, size_t firstsz)
{
    client_t c[16];
    HANDLE th[16];
    HANDLE go = CreateEventW(NULL, TRUE, FALSE, NULL);
    HANDLE sem = CreateSemaphoreW(NULL, 0, 64, NULL);
    double t0, t1;
    int i;
    size_t k;

    if (go == NULL || sem == NULL)
        die("pipe set-up");
    for (i = 0; i < nclients; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].pipe = pipe;
        c[i].msg = msg;
        c[i].msglen = (DWORD)strlen(msg);
        c[i].trips = trips;
        c[i].go = go;
        c[i].ready_sem = sem;
        th[i] = start_thread(client_thread, &c[i]);
    }
    for (i = 0; i < nclients; i++)
        WaitForSingleObject(sem, INFINITE);
    t0 = bench_now_us();
    SetEvent(go);
    /* The main thread waits alertably: it is not the pipe thread, but stays a good citizen. */
    for (i = 0; i < nclients; i++)
        while (WaitForSingleObjectEx(th[i], INFINITE, TRUE) != WAIT_OBJECT_0)
            ;
    t1 = bench_now_us();
    for (i = 0; i < nclients; i++) {
        if (c[i].failed)
            die("a pipe client failed");
        for (k = 0; k < c[i].rtt.n; k++)
            bench_samples_add(rtt, c[i].rtt.v[k]);
        if (i == 0 && first != NULL)
            snprintf(first, firstsz, "%s", c[i].first);
        bench_samples_free(&c[i].rtt);
        CloseHandle(th[i]);
    }
    CloseHandle(go);
    CloseHandle(sem);
    return (double)nclients * trips * 1e6 / (t1 - t0);
}

/*
 * The service's pipe server on g's engine (named apcbench-<tag>-<pid>), the name of a raw echo
 * pipe beside it, and the encoded submit of noop that both benchmarks send. Dies on failure.
 */
typedef struct pipe_pair {
    apc_pipesrv_t *srv;
    wchar_t *wpipe, *wecho;
    apc_buf_t submit;
} pipe_pair_t;

static void pipe_pair_start(eng_t *g, const char *tag, pipe_pair_t *pp)
{
    apc_pipesrv_opts_t po;
    apc_proto_request_t rq;
    char name[64], echo_name[64], err[512];

    memset(pp, 0, sizeof *pp);
    snprintf(name, sizeof name, "apcbench-%s-%lu", tag, (unsigned long)GetCurrentProcessId());
    snprintf(echo_name, sizeof echo_name, "\\\\.\\pipe\\apcbench-%s-echo-%lu", tag,
             (unsigned long)GetCurrentProcessId());
    memset(&po, 0, sizeof po);
    po.name = name;
    po.engine = g->e;
    po.post = apc_engine_post;
    po.history_path = g->history;
    InterlockedExchange(&g->signal_at, MAXLONG); /* nothing waits for runs: no SetEvent */
    if (apc_pipesrv_start(&po, &pp->srv, err, sizeof err) != 0)
        die(err);
    pp->wpipe = apc_utf8_to_wide(apc_pipesrv_path(pp->srv));
    pp->wecho = apc_utf8_to_wide(echo_name);
    apc_proto_request_init(&rq, APC_OP_SUBMIT);
    rq.job = "noop";
    if (pp->wpipe == NULL || pp->wecho == NULL ||
        apc_proto_request_encode(&rq, &pp->submit, err, sizeof err) != 0)
        die("pipe set-up");
}

static void pipe_pair_stop(pipe_pair_t *pp)
{
    apc_pipesrv_stop(pp->srv);
    if (apc_pipesrv_join(pp->srv, 30000) != 0)
        die("pipe server join");
    apc_pipesrv_free(pp->srv);
    free(pp->wpipe);
    free(pp->wecho);
    apc_buf_free(&pp->submit);
}

/* Starts n raw echo instances of pp's echo pipe, each served by its own blocking thread. */
static void echo_start(const pipe_pair_t *pp, int n, HANDLE *th)
{
    int i;

    for (i = 0; i < n; i++) {
        HANDLE p = CreateNamedPipeW(
            pp->wecho, PIPE_ACCESS_DUPLEX,
            PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES, APC_PIPESRV_BUFFER, APC_PIPESRV_BUFFER, 0, NULL);
        if (p == INVALID_HANDLE_VALUE)
            die("CreateNamedPipeW");
        th[i] = start_thread(echo_thread, p);
    }
}

/* Waits for the echo threads echo_start made (each ends when its client has gone). */
static void echo_join(int n, HANDLE *th)
{
    int i;

    for (i = 0; i < n; i++) {
        WaitForSingleObject(th[i], INFINITE);
        CloseHandle(th[i]);
    }
}

static int bench_pipe(void)
{
    int nclients = quick ? 2 : 4, trips = quick ? 3 : 150, rounds = quick ? 1 : 3, r, k;
    eng_t *g = eng_start(NULL, 2, noop_job);
    pipe_pair_t pp;
    char err[512], first[256];
    apc_buf_t status = {0};
    apc_proto_request_t rq;
    bench_samples_t raw = {0}, sub = {0}, st = {0}, raw_rtt = {0}, sub_rtt = {0}, st_rtt = {0};

    pipe_pair_start(g, "pipe", &pp);
    apc_proto_request_init(&rq, APC_OP_STATUS);
    if (apc_proto_request_encode(&rq, &status, err, sizeof err) != 0)
        die(err);

    for (r = 0; r < rounds; r++) {
        for (k = 0; k < 3; k++) {
            switch ((r + k) % 3) {
            case 0: {
                HANDLE eth[16];
                echo_start(&pp, nclients, eth);
                bench_samples_add(
                    &raw, pipe_round(pp.wecho, pp.submit.data, nclients, trips, &raw_rtt, NULL, 0));
                echo_join(nclients, eth);
                break;
            }
            case 1:
                bench_samples_add(&sub, pipe_round(pp.wpipe, pp.submit.data, nclients, trips,
                                                   &sub_rtt, first, sizeof first));
                if (strstr(first, "\"ok\":true") == NULL)
                    die("a submit over the pipe was not answered ok");
                break;
            default:
                bench_samples_add(&st, pipe_round(pp.wpipe, status.data, nclients, trips, &st_rtt,
                                                  first, sizeof first));
                if (strstr(first, "\"ok\":true") == NULL)
                    die("a status over the pipe was not answered ok");
                break;
            }
        }
    }
    bench_result("pipe", "clients", nclients, "clients");
    bench_result("pipe", "raw_echo.rate", bench_quantile(&raw, 0.5), "trips/s");
    bench_result("pipe", "submit.rate", bench_quantile(&sub, 0.5), "trips/s");
    bench_result("pipe", "status.rate", bench_quantile(&st, 0.5), "trips/s");
    bench_result("pipe", "submit_vs_raw", bench_quantile(&sub, 0.5) / bench_quantile(&raw, 0.5),
                 "x");
    bench_result("pipe", "status_vs_raw", bench_quantile(&st, 0.5) / bench_quantile(&raw, 0.5),
                 "x");
    bench_summary("pipe", "raw_echo_rtt", &raw_rtt, "us");
    bench_summary("pipe", "submit_rtt", &sub_rtt, "us");
    bench_summary("pipe", "status_rtt", &st_rtt, "us");
    pipe_pair_stop(&pp);
    apc_buf_free(&status);
    eng_stop(g);
    bench_samples_free(&raw);
    bench_samples_free(&sub);
    bench_samples_free(&st);
    bench_samples_free(&raw_rtt);
    bench_samples_free(&sub_rtt);
    bench_samples_free(&st_rtt);
    return 0;
}

/* ---- 7. Process jobs ---------------------------------------------------------------------- */

/* One raw run of the child: a Job Object, CreateProcessW with the engine's creation flags,
   assign, resume, wait. Returns the elapsed microseconds. */
static double raw_spawn(const wchar_t *exe)
{
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION lim;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    wchar_t cmd[MAX_PATH + 4];
    HANDLE job;
    DWORD code = 1;
    double t0 = bench_now_us();

    job = CreateJobObjectW(NULL, NULL);
    if (job == NULL)
        die("CreateJobObjectW");
    memset(&lim, 0, sizeof lim);
    lim.BasicLimitInformation.LimitFlags =
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &lim, sizeof lim))
        die("SetInformationJobObject");
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    swprintf(cmd, MAX_PATH + 4, L"\"%ls\"", exe);
    if (!CreateProcessW(exe, cmd, NULL, NULL, FALSE,
                        CREATE_SUSPENDED | CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT |
                            CREATE_NEW_PROCESS_GROUP,
                        NULL, NULL, &si, &pi))
        die("CreateProcessW");
    if (!AssignProcessToJobObject(job, pi.hProcess))
        die("AssignProcessToJobObject");
    if (ResumeThread(pi.hThread) == (DWORD)-1)
        die("ResumeThread");
    if (WaitForSingleObject(pi.hProcess, INFINITE) != WAIT_OBJECT_0 ||
        !GetExitCodeProcess(pi.hProcess, &code) || code != 0)
        die("the child did not exit with 0");
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    CloseHandle(job);
    return bench_now_us() - t0;
}

static int bench_proc(void)
{
    int block = quick ? 2 : 10, rounds = quick ? 1 : 4, r, k, i;
    wchar_t exe[MAX_PATH], *slash;
    size_t dirlen;
    char *exe8, *p;
    apc_buf_t job = {0};
    bench_samples_t eng = {0}, raw = {0};
    call_t *calls = calloc((size_t)(block + 1), sizeof *calls);
    eng_t *g;

    if (calls == NULL)
        die("out of memory");
    exe[0] = L'\0';
    if (GetModuleFileNameW(NULL, exe, MAX_PATH) == 0 || GetLastError() == ERROR_INSUFFICIENT_BUFFER)
        die("GetModuleFileNameW");
    slash = wcsrchr(exe, L'\\');
    dirlen = slash != NULL ? (size_t)(slash - exe) + 1 : 0;
    if (dirlen == 0 || dirlen + 13 >= MAX_PATH)
        die("odd program path");
    wcscpy(exe + dirlen, L"benchnop.exe");
    exe8 = apc_wide_to_utf8(exe);
    if (exe8 == NULL)
        die("out of memory");
    apc_buf_puts(&job, "{\"name\": \"nop\", \"overlap\": \"parallel\", \"command\": [\"");
    for (p = exe8; p != NULL && *p != '\0'; p++)
        apc_buf_append(&job, *p == '\\' ? "\\\\" : p, 1 + (*p == '\\'));
    apc_buf_puts(&job, "\"]}");
    if (apc_buf_failed(&job))
        die("out of memory");
    g = eng_start(NULL, 1, job.data);
    raw_spawn(exe); /* warm the file cache for both sides */

    for (r = 0; r < rounds; r++) {
        for (k = 0; k < 2; k++) {
            if ((r + k) % 2 == 0) {
                for (i = 0; i < block; i++)
                    bench_samples_add(&raw, raw_spawn(exe) / 1000.0);
            } else {
                /* One worker: run i+1 starts when run i has ended, so the start-to-start
                   interval is the engine's whole cost of one process run. */
                LONG base = g->nstarted, a0 = answers;
                int first_id;
                for (i = 0; i <= block; i++)
                    post(g, &calls[i], APC_OP_SUBMIT, "nop");
                if (wait_count(&g->nstarted, base + block + 1, 60000) != 0 ||
                    wait_count(&answers, a0 + block + 1, 60000) != 0)
                    die("the engine did not run every process");
                first_id = (int)calls[0].req.run_id;
                for (i = 0; i < block; i++)
                    bench_samples_add(
                        &eng, (g->started[first_id + i + 1] - g->started[first_id + i]) / 1000.0);
                SleepEx(300, TRUE); /* the last run ends */
            }
        }
    }
    bench_summary("proc", "raw_spawn_ms", &raw, "ms");
    bench_summary("proc", "engine_run_ms", &eng, "ms");
    bench_result("proc", "raw.rate", 1000.0 / bench_quantile(&raw, 0.5), "runs/s");
    bench_result("proc", "engine.rate", 1000.0 / bench_quantile(&eng, 0.5), "runs/s");
    bench_result("proc", "engine_vs_raw", bench_quantile(&raw, 0.5) / bench_quantile(&eng, 0.5),
                 "x");
    eng_stop(g);
    free(exe8);
    apc_buf_free(&job);
    free(calls);
    bench_samples_free(&eng);
    bench_samples_free(&raw);
    return 0;
}

/* ---- Profile (sections 2 and 6): wineserver requests per run ----------------------------- */

/*
 * A marker in a WINEDEBUG=+server trace: creating a named event is one request that carries
 * the name, so tools/bench/run can cut the trace between two markers and count the requests
 * of every thread in between. Runs on the main thread.
 */
static void mark(const wchar_t *name)
{
    HANDLE h = CreateEventW(NULL, FALSE, FALSE, name);
    if (h == NULL)
        die("CreateEventW (marker)");
    CloseHandle(h);
}

/* Prints which thread is which, for the trace's thread ids. Runs on the main thread. */
static void name_threads(const eng_t *g, const char *phase)
{
    int k;
    printf("PROFILE %s thread %04lx main\n", phase, (unsigned long)GetCurrentThreadId());
    printf("PROFILE %s thread %04lx engine\n", phase, (unsigned long)g->engine_tid);
    for (k = 1; k < 9; k++)
        if (g->worker_tid[k] != 0)
            printf("PROFILE %s thread %04lx worker\n", phase, (unsigned long)g->worker_tid[k]);
}

/*
 * The load-independent profile of sections 2 and 6, meant to run under WINEDEBUG=+server
 * (tools/bench/profile cuts the trace at the markers and counts): the same burst of noop
 * submits as the throughput benchmark through the engine with and without history, the raw
 * QueueUserAPC loop, then `submit` round trips over the service's pipe against the raw echo
 * server (section 6's shapes: nclients clients, one request at a time each). This only does
 * the work and names the threads. Each engine phase waits until the engine is quiet again
 * (the last "done" APCs and the history commit) before its end marker.
 */
static int bench_profile(void)
{
    int n = quick ? 20 : 100;
    call_t *calls = xcalloc((size_t)n, sizeof *calls);
    eng_t *gd = eng_start(NULL, 2, noop_job);
    eng_t *gn = eng_start_opts(NULL, 2, noop_job, 1);
    HANDLE th_raw = start_thread(apc_thread, NULL);

    engine_rate(gd, calls, 10); /* warm-up: every thread has run once */
    engine_rate(gn, calls, 10);
    SleepEx(300, TRUE);
    printf("PROFILE runs %d\n", n);
    printf("PROFILE raw thread %04lx main\n", (unsigned long)GetCurrentThreadId());
    printf("PROFILE raw thread %04lx receiver\n", (unsigned long)GetThreadId(th_raw));
    name_threads(gd, "engine");
    name_threads(gn, "engine_nohist");

    mark(L"apcbench-profile-raw-begin");
    raw_rate(n, 0, th_raw);
    mark(L"apcbench-profile-raw-end");

    mark(L"apcbench-profile-engine-begin");
    engine_rate(gd, calls, n);
    SleepEx(300, TRUE); /* the last runs' "done" APCs and their commit */
    mark(L"apcbench-profile-engine-end");

    mark(L"apcbench-profile-engine_nohist-begin");
    engine_rate(gn, calls, n);
    SleepEx(300, TRUE);
    mark(L"apcbench-profile-engine_nohist-end");

    {
        int nclients = 4, trips = quick ? 5 : 25;
        pipe_pair_t pp;
        bench_samples_t rtt = {0};
        char first[256];
        HANDLE eth[4];

        pipe_pair_start(gd, "prof", &pp);
        /* Warm-up: the pipe thread and the clients' first connections. */
        pipe_round(pp.wpipe, pp.submit.data, nclients, 2, &rtt, first, sizeof first);
        SleepEx(300, TRUE);
        printf("PROFILE pipe_runs %d\n", nclients * trips);
        name_threads(gd, "pipe_submit");
        mark(L"apcbench-profile-pipe_submit-begin");
        pipe_round(pp.wpipe, pp.submit.data, nclients, trips, &rtt, first, sizeof first);
        SleepEx(300, TRUE);
        mark(L"apcbench-profile-pipe_submit-end");
        if (strstr(first, "\"ok\":true") == NULL)
            die("a submit over the pipe was not answered ok");

        echo_start(&pp, nclients, eth);
        mark(L"apcbench-profile-pipe_echo-begin");
        pipe_round(pp.wecho, pp.submit.data, nclients, trips, &rtt, NULL, 0);
        mark(L"apcbench-profile-pipe_echo-end");
        echo_join(nclients, eth);
        pipe_pair_stop(&pp);
        bench_samples_free(&rtt);
    }
    fflush(stdout);

    quitting = 1;
    QueueUserAPC(apc_quit, th_raw, 0);
    WaitForSingleObject(th_raw, INFINITE);
    quitting = 0;
    CloseHandle(th_raw);
    eng_stop(gd);
    eng_stop(gn);
    free(calls);
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(void);
} benches[] = {
    {"dispatch", bench_dispatch}, {"throughput", bench_throughput},
    {"timer", bench_timer},       {"idle", bench_idle},
    {"pipe", bench_pipe},         {"proc", bench_proc},
    {"profile", bench_profile},
};

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    size_t i;
    int rc = 0, found = 0;

    for (i = 2; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else
            what = "";
    }
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self_thread,
                         0, FALSE, DUPLICATE_SAME_ACCESS))
        die("DuplicateHandle");
    recv_ev = CreateEventW(NULL, FALSE, FALSE, NULL);
    go_ev = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (recv_ev == NULL || go_ev == NULL)
        die("CreateEventW");
    if (strcmp(what, "smoke") == 0)
        quick = 1;
    for (i = 0; i < sizeof benches / sizeof benches[0]; i++) {
        /* The profile is meant for a +server trace (tools/bench/run), not for the smoke. */
        if ((strcmp(what, "smoke") == 0 && strcmp(benches[i].name, "profile") != 0) ||
            strcmp(what, benches[i].name) == 0) {
            found = 1;
            if (benches[i].fn() != 0)
                rc = 1;
        }
    }
    if (!found) {
        fprintf(
            stderr,
            "usage: apcbench dispatch|throughput|timer|idle|pipe|proc|profile|smoke [--quick]\n");
        return 2;
    }
    CloseHandle(recv_ev);
    CloseHandle(go_ev);
    CloseHandle(self_thread);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
