/*
 * worker.c - one worker thread: an alertable loop that runs one run per job APC (worker.h).
 *
 * Threads: worker_main and the APC routines job_apc, cancel_apc and quit_apc run on the
 * WORKER thread; apc_worker_run / _cancel / _quit run on the ENGINE thread and only queue
 * APCs; start and free run on the owning thread.
 */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "apc_config.h"
#include "apc_error.h"
#include "apc_time.h"
#include "paths.h"
#include "proc.h"
#include "win_util.h"

struct apc_worker {
    /* Set before the thread starts, then read-only. */
    apc_worker_opts_t opts;
    HANDLE thread;
    /* Worker-thread state. */
    apc_work_t *current;  /* the run in progress, NULL when idle */
    volatile LONG cancel; /* the flag the current run's wait watches; set only by cancel_apc */
    int quit;
};

/* Runs on the worker thread: the `sleep` builtin, an alertable sleep that a cancel ends. */
static void run_sleep(apc_worker_t *w, apc_work_t *work)
{
    int64_t end = work->started_at + work->sleep_ms;
    int64_t deadline =
        work->timeout_ms == APC_TIME_NONE ? APC_TIME_NONE : work->started_at + work->timeout_ms;

    for (;;) {
        int64_t now = apc_win_now_ms();
        int64_t until = end;
        if (w->cancel) {
            work->status = APC_RUN_CANCELLED;
            return;
        }
        if (deadline != APC_TIME_NONE && deadline < until)
            until = deadline;
        if (now >= until)
            break;
        /* Alertable: the cancel APC (or any other) ends this wait early; then loop. */
        SleepEx((DWORD)(until - now > 0x7ffffffe ? 0x7ffffffe : until - now), TRUE);
    }
    if (deadline != APC_TIME_NONE && deadline < end) {
        work->status = APC_RUN_TIMED_OUT;
        apc_seterr(work->error, sizeof work->error, APC_ETIMEDOUT, "timed out after %lld ms",
                   (long long)work->timeout_ms);
        return;
    }
    work->status = APC_RUN_SUCCEEDED;
}

/* Runs on the worker thread: a command, through the process runner. */
static void run_command(apc_worker_t *w, apc_work_t *work)
{
    apc_proc_spec_t spec;
    apc_proc_t *p = NULL;
    apc_proc_result_t res;
    char err[512];
    int rc;

    memset(&spec, 0, sizeof spec);
    memset(&res, 0, sizeof res);
    spec.argv = (const char *const *)work->argv;
    spec.env = (const char *const *)work->env;
    spec.cwd = work->cwd;
    spec.output_path = work->output_path;
    spec.output_limit = work->output_limit;
    spec.tail_bytes = APC_WORK_TAIL_BYTES;
    if (work->output_dir != NULL) {
        rc = apc_paths_make_data_dir(work->output_dir, NULL, err, sizeof err);
        if (rc != 0) {
            work->status = APC_RUN_FAILED;
            apc_seterr(work->error, sizeof work->error, rc, "%s", err);
            work->started_at = APC_TIME_NONE; /* it never ran */
            return;
        }
    }
    rc = apc_proc_start(&spec, &p, err, sizeof err);
    if (rc != 0) {
        work->status = APC_RUN_FAILED;
        apc_seterr(work->error, sizeof work->error, rc, "%s", err);
        work->started_at = APC_TIME_NONE; /* it never ran */
        return;
    }
    work->pid = apc_proc_pid(p);
    /* From here on the run is "running": tell the engine (it records the pid). */
    work->started_sent = 1;
    if (!QueueUserAPC(w->opts.on_started, w->opts.engine_thread, (ULONG_PTR)work))
        apc_elog(&w->opts.log, APC_ENGINE_LOG_ERROR, "worker %d: cannot reach the engine (%lu)",
                 w->opts.index, (unsigned long)GetLastError());
    rc = apc_proc_wait(
        p, work->timeout_ms == APC_TIME_NONE ? APC_TIME_NONE : work->started_at + work->timeout_ms,
        &w->cancel, &res, err, sizeof err);
    if (rc != 0 && rc != APC_EIO) {
        work->status = APC_RUN_FAILED;
        apc_seterr(work->error, sizeof work->error, rc, "%s", err);
        goto cleanup;
    }
    switch (res.end) {
    case APC_PROC_TIMED_OUT:
        work->status = APC_RUN_TIMED_OUT;
        apc_seterr(work->error, sizeof work->error, APC_ETIMEDOUT, "timed out after %lld ms",
                   (long long)work->timeout_ms);
        break;
    case APC_PROC_CANCELLED:
        work->status = APC_RUN_CANCELLED;
        break;
    case APC_PROC_EXITED:
    default:
        work->status = res.exit_code == 0 ? APC_RUN_SUCCEEDED : APC_RUN_FAILED;
        break;
    }
    work->has_exit_code = 1;
    work->exit_code = (int64_t)res.exit_code;
    work->output_tail = res.output_tail;
    res.output_tail = NULL;
    if (rc == APC_EIO)
        apc_seterr(work->error, sizeof work->error, rc, "%s", err);

cleanup:
    apc_proc_result_free(&res);
    apc_proc_free(p);
}

/*
 * The job APC: runs exactly one run on the worker thread, then hands it back with the "done"
 * APC. Runs on the worker thread, inside its idle SleepEx (never inside another run's wait:
 * the engine queues a job only to an idle worker).
 */
static void CALLBACK job_apc(ULONG_PTR arg)
{
    apc_work_t *work = (apc_work_t *)arg;
    apc_worker_t *w = work->owner_;

    if (w->current != NULL) {
        /* The engine broke its own rule; refuse rather than nest two runs on one thread. */
        work->status = APC_RUN_FAILED;
        apc_seterr(work->error, sizeof work->error, APC_ESTATE, "worker %d is busy", w->opts.index);
        work->finished_at = apc_win_now_ms();
        QueueUserAPC(w->opts.on_done, w->opts.engine_thread, (ULONG_PTR)work);
        return;
    }
    w->current = work;
    InterlockedExchange(&w->cancel, InterlockedCompareExchange(&work->cancel_requested, 0, 0));
    work->worker = w->opts.index;
    work->thread_id = GetCurrentThreadId();
    work->started_at = apc_win_now_ms();
    work->pid = 0;
    work->started_sent = 0;
    work->started_with_done = 0;
    work->error[0] = '\0';
    if (w->opts.hook != NULL)
        w->opts.hook(w->opts.hook_ctx, work->run_id, w->opts.index, work->thread_id);

    if (work->builtin == APC_BUILTIN_NONE) {
        run_command(w, work);
    } else if (work->builtin == APC_BUILTIN_SLEEP) {
        work->started_sent = 1;
        if (!QueueUserAPC(w->opts.on_started, w->opts.engine_thread, (ULONG_PTR)work))
            apc_elog(&w->opts.log, APC_ENGINE_LOG_ERROR, "worker %d: cannot reach the engine (%lu)",
                     w->opts.index, (unsigned long)GetLastError());
        run_sleep(w, work);
    } else {
        /* noop ends right here, before the engine could act on a "started" APC: the "done"
           APC below reports the start too (one APC instead of two; see worker.h). */
        work->started_with_done = 1;
        work->status = w->cancel ? APC_RUN_CANCELLED : APC_RUN_SUCCEEDED;
    }
    work->finished_at = apc_win_now_ms();
    w->current = NULL;
    InterlockedExchange(&w->cancel, 0);
    /* After this call the engine owns work again: do not touch it. */
    if (!QueueUserAPC(w->opts.on_done, w->opts.engine_thread, (ULONG_PTR)work))
        apc_elog(&w->opts.log, APC_ENGINE_LOG_ERROR,
                 "worker %d: cannot hand run %lld back to the engine (%lu)", w->opts.index,
                 (long long)work->run_id, (unsigned long)GetLastError());
}

/*
 * The cancel APC: runs on the worker thread, usually inside the current run's alertable
 * wait, which then sees the flag and ends the run. A cancel for a run that already ended
 * finds no current run (or another one, whose own request flag is clear) and does nothing.
 */
static void CALLBACK cancel_apc(ULONG_PTR arg)
{
    apc_worker_t *w = (apc_worker_t *)arg;

    if (w->current != NULL && InterlockedCompareExchange(&w->current->cancel_requested, 0, 0))
        InterlockedExchange(&w->cancel, 1);
}

/* The quit APC: runs on the worker thread; the loop ends when it is idle. */
static void CALLBACK quit_apc(ULONG_PTR arg)
{
    apc_worker_t *w = (apc_worker_t *)arg;

    w->quit = 1;
}

/* The worker thread: idle in an alertable sleep; every job, cancel and quit is an APC. */
static DWORD WINAPI worker_main(LPVOID arg)
{
    apc_worker_t *w = arg;

    while (!w->quit)
        SleepEx(INFINITE, TRUE);
    return 0;
}

int apc_worker_start(const apc_worker_opts_t *opts, apc_worker_t **out, char *err, size_t errsz)
{
    apc_worker_t *w;

    if (out != NULL)
        *out = NULL;
    if (opts == NULL || out == NULL || opts->on_started == NULL || opts->on_done == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "worker: bad arguments");
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    w->opts = *opts;
    w->thread = CreateThread(NULL, 0, worker_main, w, 0, NULL);
    if (w->thread == NULL) {
        int rc = apc_win_seterr(err, errsz, GetLastError(), "cannot start worker %d", opts->index);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int apc_worker_run(apc_worker_t *w, apc_work_t *work)
{
    if (w == NULL || work == NULL)
        return APC_EINVAL;
    work->owner_ = w;
    return QueueUserAPC(job_apc, w->thread, (ULONG_PTR)work) ? 0 : APC_ESYS;
}

int apc_worker_cancel(apc_worker_t *w, apc_work_t *work)
{
    if (w == NULL || work == NULL)
        return APC_EINVAL;
    InterlockedExchange(&work->cancel_requested, 1);
    return QueueUserAPC(cancel_apc, w->thread, (ULONG_PTR)w) ? 0 : APC_ESYS;
}

int apc_worker_quit(apc_worker_t *w)
{
    if (w == NULL)
        return APC_EINVAL;
    return QueueUserAPC(quit_apc, w->thread, (ULONG_PTR)w) ? 0 : APC_ESYS;
}

HANDLE apc_worker_handle(const apc_worker_t *w)
{
    return w == NULL ? NULL : w->thread;
}

int apc_worker_index(const apc_worker_t *w)
{
    return w == NULL ? 0 : w->opts.index;
}

void apc_worker_free(apc_worker_t *w)
{
    if (w == NULL)
        return;
    if (w->thread != NULL && WaitForSingleObject(w->thread, 0) != WAIT_OBJECT_0) {
        if (apc_worker_quit(w) == 0)
            WaitForSingleObject(w->thread, INFINITE);
    }
    w->thread = apc_win_close(w->thread);
    free(w);
}
