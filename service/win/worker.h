/*
 * worker.h - the worker threads: each one an alertable loop (SleepEx(INFINITE, TRUE)) that
 * runs exactly one run per job APC the engine queues to it.
 *
 * Why this way: the engine owns the set of idle workers and queues a job APC only to an idle
 * one, so a job APC never runs nested inside another job's alertable wait. While a run is
 * going, the worker waits alertably (the `sleep` builtin in SleepEx, a command in
 * apc_proc_wait), so a cancel from the engine (apc_worker_cancel) and the output-pipe read
 * completions of the process runner reach it as APCs on this very thread. A timeout is the
 * deadline of that same wait: the worker enforces it itself, so no third thread is involved.
 *
 * Ownership of an apc_work_t moves with the APCs:
 *
 *   engine thread                     worker thread
 *   fills work ----APC(job)---------> runs it; sets started_at, pid, thread_id
 *   on_started <---APC(started)------   (the engine only reads those fields)
 *   [apc_worker_cancel --APC-------->   sets the flag the wait watches]
 *   on_done    <---APC(done)---------  sets the result fields, never touches work again
 *   frees work
 *
 * A run that ends inside the job APC itself (the `noop` builtin) sends no "started" APC: it
 * is over before the engine could act on one, so "done" carries both (started_with_done = 1)
 * and the engine records the start and then the end, in that order. Under Wine every APC is
 * a wineserver round trip, so this saves two of them per such run (the queue and the wake).
 *
 * Threads: apc_worker_start / _free on the owning thread; apc_worker_run / _cancel / _quit on
 * the ENGINE thread; everything else in worker.c runs on the WORKER thread.
 */
#ifndef APC_WORKER_H
#define APC_WORKER_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "apc_history.h"
#include "elog.h"
#include "engine.h"

/* How many bytes of the end of a command's output a run record keeps. */
#define APC_WORK_TAIL_BYTES 4096u

typedef struct apc_worker apc_worker_t;

/* One run, as the engine hands it to a worker. */
typedef struct apc_work {
    /* In: set by the engine before apc_worker_run, read-only for the worker. */
    int64_t run_id;
    const char *job;   /* the job's name */
    int builtin;       /* an apc_builtin_t; APC_BUILTIN_NONE runs argv */
    int64_t sleep_ms;  /* the sleep builtin */
    char **argv;       /* NULL-terminated (command jobs) */
    char **env;        /* NULL-terminated "NAME=value", or NULL */
    char *cwd;         /* or NULL */
    char *output_dir;  /* the run's output folder (<output_dir>\<job>), or NULL */
    char *output_path; /* <output_dir>\<job>\<run id>.log, or NULL (builtins) */
    uint64_t output_limit;
    int64_t timeout_ms; /* APC_TIME_NONE: none */
    /* Out, set before the "started" APC. */
    int64_t started_at;    /* APC_TIME_NONE when the run never started (start failed) */
    DWORD pid;             /* 0 for builtins */
    DWORD thread_id;       /* the worker thread that ran it */
    int started_sent;      /* 1 once the "started" APC was queued */
    int started_with_done; /* 1: no "started" APC; the "done" APC reports the start too */
    int worker;            /* the worker's number (1-based) */
    /* Out, set before the "done" APC. */
    apc_run_status_t status; /* succeeded | failed | timed_out | cancelled */
    int has_exit_code;
    int64_t exit_code;
    int64_t finished_at;
    char *output_tail; /* malloc'd or NULL; the engine frees it */
    char error[512];   /* "" = none */
    /* Shared: set by apc_worker_cancel on the engine thread (interlocked). */
    volatile LONG cancel_requested;
    apc_worker_t *owner_; /* private: set by apc_worker_run */
    void *engine_;        /* the engine's own pointer, for its started/done APCs */
} apc_work_t;

typedef struct apc_worker_opts {
    int index;            /* the worker's number, 1-based, recorded in runs.worker */
    HANDLE engine_thread; /* where the started/done APCs go */
    PAPCFUNC on_started;  /* queued with (ULONG_PTR)work once the run has started */
    PAPCFUNC on_done;     /* queued with (ULONG_PTR)work once the run has ended */
    apc_elog_t log;
    apc_engine_run_hook_t hook; /* may be NULL */
    void *hook_ctx;
} apc_worker_opts_t;

/*
 * Starts a worker thread that waits, idle, for job APCs. Returns 0 and *out, or an error
 * (err says why; nothing is left running). Owning thread.
 */
int apc_worker_start(const apc_worker_opts_t *opts, apc_worker_t **out, char *err, size_t errsz);

/*
 * Queues the job APC that runs work on w. The caller (the engine) guarantees w is idle: it
 * has sent no job since the last "done" it processed. Returns 0 or APC_ESYS (QueueUserAPC
 * failed; work was not handed over). Engine thread.
 */
int apc_worker_run(apc_worker_t *w, apc_work_t *work);

/*
 * Asks the run `work` (which the engine has handed to w and not yet got back) to end: it is
 * cancelled at the next wake of its alertable wait, i.e. at once. A cancel that arrives after
 * the run ended is ignored. Returns 0 or APC_ESYS. Engine thread.
 */
int apc_worker_cancel(apc_worker_t *w, apc_work_t *work);

/*
 * Asks the worker thread to end once it is idle. Returns 0 or APC_ESYS. Engine thread (or
 * the owning thread during clean-up).
 */
int apc_worker_quit(apc_worker_t *w);

/* The worker's thread handle (owned by w). Any thread. */
HANDLE apc_worker_handle(const apc_worker_t *w);

/* The worker's number. Any thread. */
int apc_worker_index(const apc_worker_t *w);

/*
 * Frees w after its thread ended (if it still runs: asks it to quit and waits). Accepts NULL.
 * Owning thread.
 */
void apc_worker_free(apc_worker_t *w);

#endif /* APC_WORKER_H */
