/*
 * engine.c - the scheduler engine thread (engine.h): owns the config, the jobs' runtime state,
 * the min-heap of due times behind ONE waitable timer, the live runs, the idle workers and
 * the FIFO of runs waiting for a worker; talks to everybody else only by APC.
 *
 * Why this way (DESIGN.md section 1): the engine thread's only wait is
 * WaitForMultipleObjectsEx({timer}, alertable, INFINITE). Everything else arrives as an APC
 * that runs on this thread inside that wait: requests (apc_engine_post), the stop request,
 * "started" and "done" from the workers, "committed" from the history thread. So no lock
 * guards scheduler state; the one lock in this file guards only whether the engine still
 * accepts APCs (the mailbox), so that a request posted while the engine ends is answered.
 * The timer is set with an ABSOLUTE due time for the earliest heap entry, so nothing drifts
 * and an idle engine with 10,000 jobs sleeps until something is due.
 *
 * The life of a run (each arrow is what the engine does; rows in the history follow it):
 *
 *    fire / submit / retry / catch-up / @startup
 *         |
 *         v                     due later (retry backoff, --at, --in)
 *     [new run] --------------------------------------> DELAYED (in the heap)
 *         |  due now                                        |  due time reached
 *         v                                                 v
 *     overlap decision (apc_overlap_decide) <---------------+
 *      | skip        | queue                | start / parallel      | replace
 *      v             v                      |                       v
 *   `skipped`     HELD (job's FIFO) --------+        cancel the job's runs ("replaced by
 *   row           until the job's           |        run N"), then HELD until they end
 *                 runs ended                v
 *                                 READY (FIFO for a worker)   row: queued
 *                                           |  an idle worker: job APC
 *                                           v
 *                                 RUNNING  -- "started" APC -->  row: running (pid, worker)
 *                                           |  "done" APC
 *                                           v
 *                  row: succeeded | failed | timed_out | cancelled
 *                  retry (apc_retry_decide): a NEW run, trigger retry, attempt + 1, DELAYED
 *                  the worker returns to the idle set; the job's next HELD run becomes READY
 *
 *  A cancel (request, replace, stop) finishes a DELAYED/HELD/READY run at once as
 *  `cancelled`; a RUNNING one gets a cancel APC on its worker and ends through "done".
 *
 * The engine's own lifecycle:
 *
 *   start: load config -> history thread (recover, read state) -> workers -> engine thread
 *          (catch-up, @startup, arm timer) -> RUNNING
 *   stop APC: STOPPING: waiting runs cancelled ("service stopping"), no more fires;
 *          running runs get shutdown_grace, then a cancel APC
 *   no run left: workers quit, history flushed and its thread ends, mailbox closed,
 *          the engine thread ends (apc_engine_join returns 0)
 *
 * Threads: apc_engine_start / _join / _free run on the owning thread; apc_engine_stop and
 * apc_engine_post on any thread; every other function in this file runs on the ENGINE
 * thread unless its comment says otherwise.
 */
#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_config.h"
#include "apc_heap.h"
#include "apc_history.h"
#include "apc_policy.h"
#include "apc_schedule.h"
#include "apc_time.h"
#include "cfgacl.h"
#include "elog.h"
#include "histthread.h"
#include "paths.h"
#include "win_util.h"
#include "worker.h"

#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

#define ENGINE_VERSION "0.1.0"
#define ERRSZ 512

/* How many heap entries one wake handles before it re-arms the timer and lets APCs in. */
#define PUMP_BATCH 10000

/* The answer to a request whose records the history thread dropped unwritten. */
#define HIST_LOST_MSG "the history database could not record the request"

/* What a heap node belongs to: the first member of job_t and run_t. */
enum { TIMED_JOB = 1, TIMED_RUN = 2 };

/* Where a live run is (see the diagram above). */
typedef enum run_place {
    RUN_NEW = 0, /* created or just due, not yet placed (not counted in nwaiting) */
    RUN_DELAYED,
    RUN_HELD,
    RUN_READY,
    RUN_RUNNING
} run_place_t;

typedef struct job job_t;
typedef struct run run_t;

struct job {
    int kind;                    /* TIMED_JOB */
    const apc_job_config_t *cfg; /* NULL once a reload removed the job */
    char *name;
    apc_heap_node_t node; /* the next fire (due = fire + jitter) */
    int64_t next_fire;    /* the fire time the node is for */
    int64_t last_fire;    /* the last fire time handled (job_state.last_fire_at) */
    int paused;
    int64_t paused_until;
    int active;  /* runs READY or RUNNING */
    int running; /* runs RUNNING */
    run_t *hold_head, *hold_tail;
    int refs;                /* live runs that point here */
    const char *last_status; /* static name, or NULL */
    int64_t last_finished;
};

struct run {
    int kind;           /* TIMED_RUN */
    run_t *prev, *next; /* every live run */
    run_t *qnext;       /* the READY FIFO or the job's HELD FIFO */
    int64_t id;
    job_t *job;
    apc_trigger_t trigger;
    int attempt;
    int retries;
    int64_t backoff_ms;
    uint8_t overlap;
    int64_t scheduled_for, queued_at;
    run_place_t place;
    int recorded; /* the INSERT has been queued to the history */
    apc_heap_node_t node;
    char *submitted_by;
    char *args_json;
    char *cancel_reason; /* set when a cancel was sent to the worker */
    apc_worker_t *worker;
    apc_work_t *work; /* built at creation: the run needs no config afterwards */
};

/* A request waiting for its records to be committed before it is answered. */
typedef struct reply {
    struct reply *next;
    apc_engine_req_t *req;
    uint64_t first; /* its records: first..seq (the lowest it wrote, the one it waits for) */
    uint64_t seq;
} reply_t;

/* What apc_engine_post queues: the request and the engine it is for. */
typedef struct envelope {
    apc_engine_t *e;
    apc_engine_req_t *req;
} envelope_t;

struct apc_engine {
    /* Set before the engine thread runs, then read-only. */
    apc_elog_t log;
    const apc_tz_t *local_tz;
    char *config_path;
    int config_acl; /* APC_CFGACL_*: the config file's ACL check at every reload */
    uint64_t jitter_seed;
    apc_engine_run_hook_t hook;
    void *hook_ctx;
    HANDLE thread;
    HANDLE ready;
    HANDLE timer;
    int timer_hires;
    int abort_start; /* the start failed before the thread was resumed */
    int start_rc;
    char start_err[ERRSZ];

    /* The mailbox: whether APCs to the engine thread are still accepted. */
    SRWLOCK mbox;
    int mbox_closed;
    volatile LONG stop_sent;

    /* Engine-thread state. */
    apc_config_t *cfg;
    job_t **jobs; /* in config order */
    size_t njobs;
    apc_heap_t heap;
    run_t *runs;
    run_t *ready_head, *ready_tail;
    size_t nwaiting; /* DELAYED + HELD + READY */
    size_t nrunning;
    apc_worker_t **workers;
    int nworkers;
    apc_worker_t **idle; /* a stack */
    int nidle;
    int64_t next_id;
    int64_t started_at;
    int64_t armed_due;
    int stopping;
    int64_t grace_deadline;
    int grace_over;
    int finished;
    reply_t *replies_head, *replies_tail;
    apc_engine_req_t *answers_head, *answers_tail; /* answered this turn, not yet sent */
    apc_histthread_t *hist; /* NULL when the benchmark option no_history is set */
    uint64_t hist_done;     /* every record up to it is written or lost (set by ack_apc only) */
    uint64_t req_first;     /* the lowest seq recorded by the request being handled (0: none) */
    uint64_t nohist_seq;    /* record()'s numbers without a history thread */
    apc_hist_boot_t boot;
};

/* ---- Small helpers ------------------------------------------------------------------ */

static void strv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* Copies a NULL-terminated array and appends extra[0..nextra). NULL src and no extra: NULL. */
static int strv_dup(char *const *src, const char *const *extra, size_t nextra, char ***out)
{
    size_t n = 0, i;
    char **v;

    *out = NULL;
    if (src == NULL && nextra == 0)
        return 0;
    while (src != NULL && src[n] != NULL)
        n++;
    v = calloc(n + nextra + 1, sizeof *v);
    if (v == NULL)
        return APC_ENOMEM;
    for (i = 0; i < n; i++)
        if ((v[i] = apc_strdup(src[i])) == NULL)
            goto oom;
    for (i = 0; i < nextra; i++)
        if ((v[n + i] = apc_strdup(extra[i])) == NULL)
            goto oom;
    *out = v;
    return 0;
oom:
    strv_free(v);
    return APC_ENOMEM;
}

static void work_free(apc_work_t *w)
{
    if (w == NULL)
        return;
    strv_free(w->argv);
    strv_free(w->env);
    free(w->cwd);
    free(w->output_dir);
    free(w->output_path);
    free(w->output_tail);
    free(w);
}

/* Appends s as a JSON string (for runs.args_json). */
static void json_str(apc_buf_t *b, const char *s)
{
    apc_buf_puts(b, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            apc_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            apc_buf_printf(b, "\\u%04x", c);
        else
            apc_buf_append(b, s, 1);
    }
    apc_buf_puts(b, "\"");
}

/* ---- History records ----------------------------------------------------------------- */

/* Hands a record to the history thread's outbox; returns its sequence number (0 if lost). */
static uint64_t record(apc_engine_t *e, const apc_history_op_t *op)
{
    uint64_t seq = 0;

    if (e->hist == NULL)
        return ++e->nohist_seq; /* no_history (benchmarks): nothing to write, nothing lost */
    if (apc_histthread_add(e->hist, op, &seq) != 0) {
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                 "engine: out of memory: a history record of run %lld is lost",
                 (long long)op->run.id);
        return 0;
    }
    if (e->req_first == 0)
        e->req_first = seq;
    return seq;
}

static void run_row(const run_t *r, apc_run_record_t *row)
{
    memset(row, 0, sizeof *row);
    row->id = r->id;
    row->job = r->job->name;
    row->trigger = r->trigger;
    row->status = APC_RUN_QUEUED;
    row->attempt = r->attempt;
    row->queued_at = r->queued_at;
    row->started_at = APC_TIME_NONE;
    row->finished_at = APC_TIME_NONE;
    row->scheduled_for = r->scheduled_for;
    row->submitted_by = r->submitted_by;
    row->args_json = r->args_json;
}

static uint64_t record_insert(apc_engine_t *e, run_t *r, apc_run_status_t status, int64_t now,
                              const char *error)
{
    apc_history_op_t op;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    run_row(r, &op.run);
    op.run.status = status;
    if (status != APC_RUN_QUEUED) {
        op.run.finished_at = now;
        op.run.error = error;
    }
    r->recorded = 1;
    return record(e, &op);
}

static uint64_t record_job_state(apc_engine_t *e, const job_t *j, unsigned fields, const char *by)
{
    apc_history_op_t op;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_JOB_STATE;
    op.state.job = j->name;
    op.state.fields = fields;
    op.state.last_fire_at = j->last_fire;
    op.state.paused = j->paused;
    op.state.paused_until = j->paused_until;
    op.state.paused_by = by;
    op.state.updated_at = apc_win_now_ms();
    return record(e, &op);
}

/* ---- Jobs and the timer heap ----------------------------------------------------------- */

static const apc_tz_t *job_tz(const apc_engine_t *e, const job_t *j)
{
    const apc_tz_t *tz = apc_config_job_tz(e->cfg, j->cfg, e->local_tz);
    return tz != NULL ? tz : apc_tz_utc();
}

/* Returns 1 if the job fires by its schedule at all (enabled, a timed schedule). */
static int job_is_timed(const job_t *j)
{
    return j->cfg != NULL && j->cfg->enabled && j->cfg->schedule_expr != NULL &&
           j->cfg->schedule.kind != APC_SCHED_STARTUP;
}

/*
 * Puts the job's next fire after `after` into the heap (or takes it out when there is none).
 * For @every the grid is kept: after a late wake the next fire is the first grid point after
 * now, not now + interval.
 */
static void arm_job(apc_engine_t *e, job_t *j, int64_t after, int64_t now)
{
    int64_t next;
    int rc;

    if (!job_is_timed(j) || e->stopping) {
        apc_heap_remove(&e->heap, &j->node);
        j->next_fire = APC_TIME_NONE;
        return;
    }
    if (j->cfg->schedule.kind == APC_SCHED_EVERY && after < now) {
        int64_t iv = j->cfg->schedule.u.every_ms;
        after += ((now - after) / iv) * iv;
    }
    rc = apc_schedule_next(&j->cfg->schedule, after, job_tz(e, j), &next);
    if (rc == 0 && next < now - APC_MS_PER_S && j->cfg->schedule.kind == APC_SCHED_CRON) {
        /* Far behind (the machine slept, the clock jumped): fire times passed while we were
           not running are not made up at runtime; go on from now. */
        rc = apc_schedule_next(&j->cfg->schedule, now, job_tz(e, j), &next);
    }
    if (rc != 0) {
        if (rc != APC_ENOTFOUND)
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                     "engine: job %s: cannot compute its next fire time (%s)", j->name,
                     apc_strerror(rc));
        apc_heap_remove(&e->heap, &j->node);
        j->next_fire = APC_TIME_NONE;
        return;
    }
    j->next_fire = next;
    if (apc_heap_push(&e->heap, &j->node,
                      next + apc_jitter_ms(e->jitter_seed, j->name, next, j->cfg->jitter_ms)) != 0)
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: out of memory: job %s will not fire",
                 j->name);
}

static job_t *job_new(const apc_job_config_t *cfg)
{
    job_t *j = calloc(1, sizeof *j);

    if (j == NULL)
        return NULL;
    j->kind = TIMED_JOB;
    j->cfg = cfg;
    j->name = apc_strdup(cfg->name);
    if (j->name == NULL) {
        free(j);
        return NULL;
    }
    apc_heap_node_init(&j->node, j);
    j->next_fire = APC_TIME_NONE;
    j->last_fire = APC_TIME_NONE;
    j->paused_until = APC_TIME_NONE;
    j->last_finished = APC_TIME_NONE;
    return j;
}

static void job_free(job_t *j)
{
    if (j == NULL)
        return;
    free(j->name);
    free(j);
}

/* A job removed by a reload is freed when its last run ends. */
static void job_release(apc_engine_t *e, job_t *j)
{
    j->refs--;
    if (j->cfg == NULL && j->refs == 0) {
        apc_heap_remove(&e->heap, &j->node);
        job_free(j);
    }
}

static job_t *find_job(const apc_engine_t *e, const char *name)
{
    const apc_job_config_t *c = apc_config_find_job(e->cfg, name);
    return c == NULL ? NULL : e->jobs[c - e->cfg->jobs];
}

/* Returns 1 if the job is paused now; a pause whose time ran out is lifted (and recorded). */
static int job_paused(apc_engine_t *e, job_t *j, int64_t now)
{
    if (!j->paused)
        return 0;
    if (j->paused_until != APC_TIME_NONE && now >= j->paused_until) {
        j->paused = 0;
        j->paused_until = APC_TIME_NONE;
        record_job_state(e, j, APC_JS_PAUSE, NULL);
        apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: job %s: pause ended", j->name);
        return 0;
    }
    return 1;
}

/* ---- Runs ------------------------------------------------------------------------------ */

static void run_free(apc_engine_t *e, run_t *r)
{
    if (r == NULL)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (e->runs == r)
        e->runs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    apc_heap_remove(&e->heap, &r->node);
    work_free(r->work);
    free(r->submitted_by);
    free(r->args_json);
    free(r->cancel_reason);
    if (r->job != NULL)
        job_release(e, r->job);
    free(r);
}

/*
 * Creates a run of job j (not yet recorded or placed) with everything the worker needs
 * copied out of the config, so that a reload may free the config while it is live.
 */
static run_t *run_new(apc_engine_t *e, job_t *j, apc_trigger_t trigger, int attempt,
                      int64_t scheduled_for, const char *submitted_by, const char *const *args,
                      size_t nargs)
{
    const apc_job_config_t *c = j->cfg;
    run_t *r = calloc(1, sizeof *r);
    apc_work_t *w = calloc(1, sizeof *w);
    apc_buf_t b = {0};
    size_t i;

    if (r == NULL || w == NULL)
        goto oom;
    r->kind = TIMED_RUN;
    r->work = w;
    r->id = e->next_id++;
    r->job = j;
    j->refs++;
    r->trigger = trigger;
    r->attempt = attempt;
    r->retries = c->retries;
    r->backoff_ms = c->retry_backoff_ms;
    r->overlap = c->overlap;
    r->scheduled_for = scheduled_for;
    r->queued_at = apc_win_now_ms();
    apc_heap_node_init(&r->node, r);
    if (submitted_by != NULL && (r->submitted_by = apc_strdup(submitted_by)) == NULL)
        goto oom;
    if (nargs > 0) {
        apc_buf_puts(&b, "[");
        for (i = 0; i < nargs; i++) {
            if (i > 0)
                apc_buf_puts(&b, ",");
            json_str(&b, args[i]);
        }
        apc_buf_puts(&b, "]");
        if ((r->args_json = apc_buf_take(&b)) == NULL)
            goto oom;
    }
    w->run_id = r->id;
    w->engine_ = e;
    w->job = j->name;
    w->builtin = c->builtin;
    w->sleep_ms = c->sleep_ms;
    w->timeout_ms = c->timeout_ms;
    w->output_limit = c->output_limit;
    w->started_at = APC_TIME_NONE;
    w->finished_at = APC_TIME_NONE;
    if (c->builtin == APC_BUILTIN_NONE) {
        const char *od = e->cfg->service.output_dir;
        if (strv_dup(c->argv, args, nargs, &w->argv) != 0 ||
            strv_dup(c->env, NULL, 0, &w->env) != 0)
            goto oom;
        if (c->cwd != NULL && (w->cwd = apc_strdup(c->cwd)) == NULL)
            goto oom;
        if (od != NULL) {
            apc_buf_printf(&b, "%s\\%s", od, j->name);
            w->output_dir = apc_buf_take(&b);
            apc_buf_printf(&b, "%s\\%lld.log", w->output_dir != NULL ? w->output_dir : "",
                           (long long)r->id);
            w->output_path = apc_buf_take(&b);
            if (w->output_dir == NULL || w->output_path == NULL)
                goto oom;
        }
    }
    r->next = e->runs;
    if (e->runs != NULL)
        e->runs->prev = r;
    e->runs = r;
    return r;

oom:
    apc_buf_free(&b);
    if (r != NULL) {
        if (r->job != NULL)
            j->refs--;
        r->job = NULL;
        work_free(r->work);
        free(r->submitted_by);
        free(r->args_json);
        free(r);
    } else {
        free(w);
    }
    apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
             "engine: out of memory: a run of job %s was not created", j->name);
    return NULL;
}

static run_t *find_run(const apc_engine_t *e, int64_t id)
{
    run_t *r;

    for (r = e->runs; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void fifo_remove(run_t **head, run_t **tail, run_t *r)
{
    run_t *p = NULL, *q = *head;

    while (q != NULL && q != r) {
        p = q;
        q = q->qnext;
    }
    if (q == NULL)
        return;
    if (p != NULL)
        p->qnext = r->qnext;
    else
        *head = r->qnext;
    if (*tail == r)
        *tail = p;
    r->qnext = NULL;
}

static void fifo_push(run_t **head, run_t **tail, run_t *r, int front)
{
    r->qnext = NULL;
    if (*head == NULL) {
        *head = *tail = r;
    } else if (front) {
        r->qnext = *head;
        *head = r;
    } else {
        (*tail)->qnext = r;
        *tail = r;
    }
}

static void make_ready(apc_engine_t *e, run_t *r)
{
    r->place = RUN_READY;
    r->job->active++;
    fifo_push(&e->ready_head, &e->ready_tail, r, 0);
}

/*
 * Finishes a run that never reached a worker (DELAYED, HELD or READY) as `status` with
 * `error`, records it and frees it.
 */
static uint64_t finish_waiting(apc_engine_t *e, run_t *r, apc_run_status_t status,
                               const char *error)
{
    int64_t now = apc_win_now_ms();
    uint64_t seq;

    switch (r->place) {
    case RUN_DELAYED:
        apc_heap_remove(&e->heap, &r->node);
        break;
    case RUN_HELD:
        fifo_remove(&r->job->hold_head, &r->job->hold_tail, r);
        break;
    case RUN_READY:
        fifo_remove(&e->ready_head, &e->ready_tail, r);
        r->job->active--;
        break;
    case RUN_NEW:
        break;
    case RUN_RUNNING:
    default:
        return 0; /* not for running runs */
    }
    if (r->place != RUN_NEW)
        e->nwaiting--;
    if (r->recorded) {
        apc_history_op_t op;
        memset(&op, 0, sizeof op);
        op.kind = APC_HOP_FINISH;
        run_row(r, &op.run);
        op.run.status = status;
        op.run.finished_at = now;
        op.run.error = error;
        seq = record(e, &op);
    } else {
        seq = record_insert(e, r, status, now, error);
    }
    r->job->last_status = apc_run_status_name(status);
    r->job->last_finished = now;
    run_free(e, r);
    return seq;
}

/* Sends a cancel to a RUNNING run's worker; the run ends through its "done" APC. */
static void cancel_running(apc_engine_t *e, run_t *r, const char *reason)
{
    if (r->cancel_reason == NULL)
        r->cancel_reason = apc_strdup(reason);
    if (apc_worker_cancel(r->worker, r->work) != 0)
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                 "engine: cannot cancel run %lld (QueueUserAPC error %lu)", (long long)r->id,
                 (unsigned long)GetLastError());
}

/*
 * A run is due now: applies the job's overlap policy and records the run. Returns the
 * sequence number of its record.
 */
static uint64_t run_due(apc_engine_t *e, run_t *r)
{
    job_t *j = r->job;
    apc_overlap_action_t act = APC_OVERLAP_ACT_START;
    int64_t now = apc_win_now_ms();
    char why[128];
    uint64_t seq = 0;

    /* Runs waiting in the job's HELD queue count as in progress too: they are ahead. */
    apc_overlap_decide((apc_overlap_t)r->overlap, j->active + (j->hold_head != NULL), &act);
    if (act == APC_OVERLAP_ACT_SKIP) {
        run_t *q;
        int64_t other = 0;
        for (q = e->runs; q != NULL; q = q->next)
            if (q != r && q->job == j && (q->place == RUN_RUNNING || q->place == RUN_READY))
                other = q->id;
        snprintf(why, sizeof why, "skipped: run %lld of the job is still running",
                 (long long)other);
        return finish_waiting(e, r, APC_RUN_SKIPPED, why);
    }
    if (!r->recorded)
        seq = record_insert(e, r, APC_RUN_QUEUED, now, NULL);
    e->nwaiting++; /* HELD or READY below */
    if (act == APC_OVERLAP_ACT_REPLACE) {
        run_t *q, *qn;
        snprintf(why, sizeof why, "replaced by run %lld", (long long)r->id);
        for (q = e->runs; q != NULL; q = qn) {
            qn = q->next;
            if (q == r || q->job != j)
                continue;
            if (q->place == RUN_RUNNING)
                cancel_running(e, q, why);
            else if (q->place == RUN_READY || q->place == RUN_HELD)
                finish_waiting(e, q, APC_RUN_CANCELLED, why);
        }
        act = j->active > 0 ? APC_OVERLAP_ACT_QUEUE : APC_OVERLAP_ACT_START;
    }
    if (act == APC_OVERLAP_ACT_QUEUE) {
        r->place = RUN_HELD;
        fifo_push(&j->hold_head, &j->hold_tail, r, 0);
    } else {
        make_ready(e, r);
    }
    return seq;
}

/*
 * Creates and places a run: due now (overlap decision) or later (DELAYED in the heap, its
 * queued row written now). Returns the run's record sequence number, 0 on failure.
 */
static uint64_t new_run(apc_engine_t *e, job_t *j, apc_trigger_t trigger, int attempt,
                        int64_t scheduled_for, int64_t due, const char *by, const char *const *args,
                        size_t nargs, int64_t *id)
{
    run_t *r = run_new(e, j, trigger, attempt, scheduled_for, by, args, nargs);
    int64_t now;

    if (r == NULL)
        return 0;
    if (id != NULL)
        *id = r->id;
    now = r->queued_at;
    if (due != APC_TIME_NONE && due > now) {
        r->place = RUN_DELAYED;
        e->nwaiting++;
        if (apc_heap_push(&e->heap, &r->node, due) != 0) {
            e->nwaiting--;
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: out of memory: run %lld of %s dropped",
                     (long long)r->id, j->name);
            run_free(e, r);
            return 0;
        }
        return record_insert(e, r, APC_RUN_QUEUED, now, NULL);
    }
    return run_due(e, r); /* RUN_NEW: run_due places it */
}

/* Hands READY runs to idle workers, oldest first. */
static void dispatch(apc_engine_t *e)
{
    while (e->nidle > 0 && e->ready_head != NULL && !e->stopping) {
        run_t *r = e->ready_head;
        apc_worker_t *w = e->idle[--e->nidle];
        fifo_remove(&e->ready_head, &e->ready_tail, r);
        r->worker = w;
        r->place = RUN_RUNNING;
        e->nwaiting--;
        e->nrunning++;
        r->job->running++;
        if (apc_worker_run(w, r->work) != 0) {
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: cannot reach worker %d (error %lu)",
                     apc_worker_index(w), (unsigned long)GetLastError());
            /* Put things back: the run waits for another worker; this one is lost. */
            r->place = RUN_READY;
            r->worker = NULL;
            e->nwaiting++;
            e->nrunning--;
            r->job->running--;
            fifo_push(&e->ready_head, &e->ready_tail, r, 1);
            break;
        }
    }
}

/* ---- Requests and replies ------------------------------------------------------------- */

/*
 * The reply APC: runs on the requester's thread and calls the done callback of every request
 * in the batch, in order. Reads each link before calling done, which may free the request.
 */
static void CALLBACK reply_apc(ULONG_PTR arg)
{
    apc_engine_req_t *req = (apc_engine_req_t *)arg;

    while (req != NULL) {
        apc_engine_req_t *next = req->next_;
        req->next_ = NULL;
        req->done(req);
        req = next;
    }
}

/* Adds req (its response set) to this turn's answers; send_answers queues them. */
static void answer(apc_engine_t *e, apc_engine_req_t *req)
{
    req->next_ = NULL;
    if (e->answers_tail != NULL)
        e->answers_tail->next_ = req;
    else
        e->answers_head = req;
    e->answers_tail = req;
}

/*
 * Sends this turn's answers: one reply APC per reply thread (the same handle), carrying that
 * thread's answers in the order given. Called at the end of every turn of the engine loop and
 * wherever the engine waits otherwise, so no answer waits for an unrelated event.
 */
static void send_answers(apc_engine_t *e)
{
    while (e->answers_head != NULL) {
        apc_engine_req_t *first = e->answers_head, *last = first, **pp = &first->next_, *r;

        /* Move every later answer for the same thread up behind `first`, keeping the order;
           what remains (other threads) starts after `last`. */
        while ((r = *pp) != NULL) {
            if (r->reply_thread == first->reply_thread) {
                *pp = r->next_;
                r->next_ = last->next_;
                last->next_ = r;
                last = r;
                pp = &last->next_;
            } else {
                pp = &r->next_;
            }
        }
        e->answers_head = last->next_;
        last->next_ = NULL;
        if (!QueueUserAPC(reply_apc, first->reply_thread, (ULONG_PTR)first)) {
            DWORD code = GetLastError();
            for (r = first; r != NULL; r = r->next_)
                apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                         "engine: cannot answer a %s request (QueueUserAPC error %lu)",
                         apc_proto_op_name(r->in.op), (unsigned long)code);
        }
    }
    e->answers_tail = NULL;
}

static void answer_error(apc_engine_t *e, apc_engine_req_t *req, int code, const char *msg)
{
    apc_buf_reset(&req->response);
    req->result = code;
    apc_proto_encode_error(code, msg, &req->response);
    answer(e, req);
}

static void answer_resp(apc_engine_t *e, apc_engine_req_t *req, const apc_proto_response_t *resp)
{
    char err[ERRSZ];
    int rc;

    apc_buf_reset(&req->response);
    rc = apc_proto_response_encode(resp, &req->response, err, sizeof err);
    if (rc != 0) {
        answer_error(e, req, rc, err);
        return;
    }
    req->result = 0;
    answer(e, req);
}

static void answer_ack(apc_engine_t *e, apc_engine_req_t *req, const char *msg)
{
    apc_proto_response_t resp;

    apc_proto_response_init(&resp, APC_RESP_ACK);
    resp.message = msg;
    answer_resp(e, req, &resp);
}

/*
 * Answers req once the history thread has finished with every record up to seq (durable
 * acknowledgement); at once if seq is 0. The response must already be in req->response; it is
 * replaced by the error if a record of the request (first recorded while handling it, up to
 * seq) was lost (answer_acked). Runs on the engine thread, inside request_apc.
 */
static void answer_after(apc_engine_t *e, apc_engine_req_t *req, uint64_t seq)
{
    reply_t *p;

    /* A new seq is always above hist_done (every seq acknowledged was handed over before), so
       a request never finds its records already acknowledged, lost or not. */
    if (seq == 0 || e->hist == NULL) {
        answer(e, req);
        return;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        answer(e, req); /* cannot wait: answer now rather than never */
        return;
    }
    p->req = req;
    p->first = e->req_first != 0 && e->req_first < seq ? e->req_first : seq;
    p->seq = seq;
    if (e->replies_tail != NULL)
        e->replies_tail->next = p;
    else
        e->replies_head = p;
    e->replies_tail = p;
}

/*
 * Answers every waiting reply whose records the history thread has finished with (seq <=
 * e->hist_done): "ok" (the response prepared) if none of its records first..seq is in a lost
 * range of ack, else the error. ack holds every range lost since the previous acknowledgement,
 * and those all lie above the previous `done`, so every reply they concern is answered here:
 * no range needs keeping afterwards. Replies wait in seq order (seqs are handed out in the
 * order requests are handled).
 */
static void answer_acked(apc_engine_t *e, const apc_hist_ack_t *ack)
{
    while (e->replies_head != NULL && e->replies_head->seq <= e->hist_done) {
        reply_t *p = e->replies_head;
        e->replies_head = p->next;
        if (e->replies_head == NULL)
            e->replies_tail = NULL;
        if (apc_hist_ack_lost(ack, p->first, p->seq))
            answer_error(e, p->req, APC_EDB, HIST_LOST_MSG);
        else
            answer(e, p->req);
        free(p);
    }
}

/*
 * The history thread's acknowledgement (apc_hist_ack_t: progress and losses in one message, so
 * the engine never sees the one without the other). Runs on the engine thread.
 */
static void CALLBACK ack_apc(ULONG_PTR arg)
{
    const apc_hist_ack_t *ack = (const apc_hist_ack_t *)arg;
    apc_engine_t *e = (apc_engine_t *)ack->arg;

    if (ack->done > e->hist_done)
        e->hist_done = ack->done;
    answer_acked(e, ack);
}

/* Encodes a response into req->response without answering yet; returns 0 or the error. */
static int encode_only(apc_engine_req_t *req, const apc_proto_response_t *resp)
{
    char err[ERRSZ];
    int rc;

    apc_buf_reset(&req->response);
    rc = apc_proto_response_encode(resp, &req->response, err, sizeof err);
    if (rc != 0) {
        apc_buf_reset(&req->response);
        apc_proto_encode_error(rc, err, &req->response);
    }
    req->result = rc;
    return rc;
}

static void op_status(apc_engine_t *e, apc_engine_req_t *req)
{
    apc_proto_response_t resp;

    apc_proto_response_init(&resp, APC_RESP_STATUS);
    resp.status.version = ENGINE_VERSION;
    resp.status.pid = (int64_t)GetCurrentProcessId();
    resp.status.started_at = e->started_at;
    resp.status.now = apc_win_now_ms();
    resp.status.workers = e->nworkers;
    resp.status.workers_busy = e->nworkers - e->nidle;
    resp.status.jobs = (int64_t)e->njobs;
    resp.status.queued = (int64_t)e->nwaiting;
    resp.status.running = (int64_t)e->nrunning;
    answer_resp(e, req, &resp);
}

static void op_list(apc_engine_t *e, apc_engine_req_t *req)
{
    apc_proto_response_t resp;
    apc_proto_job_info_t *info = calloc(e->njobs + 1, sizeof *info);
    size_t i;

    if (info == NULL) {
        answer_error(e, req, APC_ENOMEM, "out of memory");
        return;
    }
    for (i = 0; i < e->njobs; i++) {
        const job_t *j = e->jobs[i];
        info[i].name = j->name;
        info[i].schedule = j->cfg->schedule_expr;
        info[i].enabled = j->cfg->enabled;
        info[i].paused = j->paused;
        info[i].paused_until = j->paused ? j->paused_until : APC_PROTO_NONE;
        info[i].next_run = apc_heap_node_queued(&j->node) ? j->node.due : APC_PROTO_NONE;
        info[i].running = j->running;
        info[i].last_status = j->last_status;
        info[i].last_finished_at = j->last_finished;
    }
    apc_proto_response_init(&resp, APC_RESP_LIST);
    resp.jobs = info;
    resp.njobs = e->njobs;
    answer_resp(e, req, &resp);
    free(info);
}

static void op_submit(apc_engine_t *e, apc_engine_req_t *req)
{
    const apc_proto_request_t *in = &req->in;
    char msg[ERRSZ];
    job_t *j;
    int64_t now = apc_win_now_ms();
    int64_t due = now;
    int64_t id = 0;
    uint64_t seq;
    apc_proto_response_t resp;

    if (e->stopping) {
        answer_error(e, req, APC_ESTATE, "the service is stopping");
        return;
    }
    j = in->job != NULL ? find_job(e, in->job) : NULL;
    if (j == NULL) {
        snprintf(msg, sizeof msg, "no job named \"%s\"", in->job != NULL ? in->job : "");
        answer_error(e, req, APC_ENOTFOUND, msg);
        return;
    }
    if (!j->cfg->enabled) {
        snprintf(msg, sizeof msg, "job \"%s\" is disabled (enable it in the config and reload)",
                 j->name);
        answer_error(e, req, APC_ESTATE, msg);
        return;
    }
    if (in->nargs > 0 && (!j->cfg->allow_args || j->cfg->builtin != APC_BUILTIN_NONE)) {
        snprintf(msg, sizeof msg, "job \"%s\" does not take arguments (allow_args is false)",
                 j->name);
        answer_error(e, req, APC_EINVAL, msg);
        return;
    }
    if (in->at_ms != APC_PROTO_NONE)
        due = in->at_ms;
    else if (in->in_ms != APC_PROTO_NONE)
        due = now + in->in_ms;
    seq = new_run(e, j, APC_TRIGGER_MANUAL, 1, due > now ? due : APC_TIME_NONE, due,
                  req->submitted_by, in->args, in->nargs, &id);
    if (seq == 0) {
        answer_error(e, req, APC_ENOMEM, "out of memory");
        return;
    }
    req->run_id = id;
    apc_proto_response_init(&resp, APC_RESP_SUBMITTED);
    resp.id = id;
    resp.job = j->name;
    resp.due_at = due;
    /* "wait" in the answer says whether run events follow on this connection. This version
       streams none: a waiting client polls "show" (apcctl run --wait does). */
    resp.wait = 0;
    if (encode_only(req, &resp) != 0) {
        answer(e, req);
        return;
    }
    apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: run %lld of %s submitted by %s", (long long)id,
             j->name, req->submitted_by != NULL ? req->submitted_by : "(unknown)");
    answer_after(e, req, seq);
}

static void op_cancel(apc_engine_t *e, apc_engine_req_t *req)
{
    char msg[ERRSZ];
    char why[ERRSZ];
    run_t *r = find_run(e, req->in.id);
    apc_proto_response_t resp;
    uint64_t seq = 0;

    if (r == NULL) {
        snprintf(msg, sizeof msg, "run %lld is not queued or running", (long long)req->in.id);
        answer_error(e, req, APC_ENOTFOUND, msg);
        return;
    }
    snprintf(why, sizeof why, "cancelled by %s",
             req->submitted_by != NULL ? req->submitted_by : "request");
    if (r->place == RUN_RUNNING) {
        cancel_running(e, r, why);
        snprintf(msg, sizeof msg, "cancelling run %lld", (long long)req->in.id);
    } else {
        seq = finish_waiting(e, r, APC_RUN_CANCELLED, why);
        snprintf(msg, sizeof msg, "run %lld cancelled", (long long)req->in.id);
    }
    apc_proto_response_init(&resp, APC_RESP_ACK);
    resp.message = msg;
    encode_only(req, &resp);
    answer_after(e, req, seq);
}

static void op_pause(apc_engine_t *e, apc_engine_req_t *req, int pause)
{
    char msg[ERRSZ];
    apc_proto_response_t resp;
    job_t *j = req->in.job != NULL ? find_job(e, req->in.job) : NULL;
    uint64_t seq;

    if (j == NULL) {
        snprintf(msg, sizeof msg, "no job named \"%s\"", req->in.job != NULL ? req->in.job : "");
        answer_error(e, req, APC_ENOTFOUND, msg);
        return;
    }
    j->paused = pause;
    j->paused_until = (pause && req->in.for_ms != APC_PROTO_NONE)
                          ? apc_win_now_ms() + req->in.for_ms
                          : APC_TIME_NONE;
    seq = record_job_state(e, j, APC_JS_PAUSE, pause ? req->submitted_by : NULL);
    if (pause && j->paused_until != APC_TIME_NONE) {
        char at[APC_ISO8601_BUFSZ];
        apc_time_format_iso8601(j->paused_until, 0, at, sizeof at);
        snprintf(msg, sizeof msg, "job %s paused until %s", j->name, at);
    } else {
        snprintf(msg, sizeof msg, pause ? "job %s paused" : "job %s resumed", j->name);
    }
    apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: %s", msg);
    apc_proto_response_init(&resp, APC_RESP_ACK);
    resp.message = msg;
    encode_only(req, &resp);
    answer_after(e, req, seq);
}

/* Returns 1 if a kept job's schedule settings are unchanged, so its armed fire stays. */
static int same_timing(const apc_config_t *oc, const apc_job_config_t *o, const apc_config_t *nc,
                       const apc_job_config_t *n)
{
    if ((o->schedule_expr == NULL) != (n->schedule_expr == NULL))
        return 0;
    if (o->schedule_expr != NULL && strcmp(o->schedule_expr, n->schedule_expr) != 0)
        return 0;
    return o->enabled == n->enabled && o->jitter_ms == n->jitter_ms &&
           strcmp(oc->zones[o->zone].name, nc->zones[n->zone].name) == 0;
}

static void op_reload(apc_engine_t *e, apc_engine_req_t *req)
{
    apc_diags_t diags = {0};
    apc_buf_t text = {0};
    apc_config_t *nc = NULL;
    apc_config_t *oc = e->cfg;
    job_t **njobs = NULL;
    char msg[ERRSZ];
    size_t i, added = 0, removed = 0;
    int64_t now = apc_win_now_ms();
    int rc;

    /* Who may change the file is checked first, as at start (cfgacl.h). */
    if (e->config_acl != APC_CFGACL_OFF) {
        char acl[2048];

        rc = apc_cfgacl_check_file(e->config_path, acl, sizeof acl);
        if (rc == APC_EDENIED && e->config_acl == APC_CFGACL_WARN) {
            apc_elog(&e->log, APC_ENGINE_LOG_WARNING,
                     "engine: reload: the configuration file is not protected; used anyway "
                     "because of --allow-insecure-config: %s",
                     acl);
        } else if (rc != 0) {
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                     "engine: reload refused, the old config stays: %s", acl);
            answer_error(e, req, rc == APC_EDENIED ? APC_EINVAL : rc, acl);
            goto cleanup;
        }
    }
    rc = apc_config_load(e->config_path, &nc, &diags);
    if (rc != 0) {
        apc_diags_format(&diags, &text);
        if (text.len > 0 && text.data[text.len - 1] == '\n')
            text.data[--text.len] = '\0';
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: reload refused, the old config stays: %s",
                 text.data != NULL ? text.data : apc_strerror(rc));
        answer_error(e, req, rc == APC_ESYNTAX ? APC_EINVAL : rc,
                     text.data != NULL ? text.data : apc_strerror(rc));
        goto cleanup;
    }
    njobs = calloc(nc->njobs + 1, sizeof *njobs);
    if (njobs == NULL) {
        answer_error(e, req, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < nc->njobs; i++) {
        const apc_job_config_t *old = apc_config_find_job(oc, nc->jobs[i].name);
        if (old != NULL) {
            njobs[i] = e->jobs[old - oc->jobs];
        } else {
            njobs[i] = job_new(&nc->jobs[i]);
            if (njobs[i] == NULL) {
                size_t k;
                for (k = 0; k < i; k++)
                    if (apc_config_find_job(oc, nc->jobs[k].name) == NULL)
                        job_free(njobs[k]);
                free(njobs);
                njobs = NULL;
                answer_error(e, req, APC_ENOMEM, "out of memory");
                goto cleanup;
            }
            added++;
        }
    }
    /* The swap: from here on nothing can fail. */
    for (i = 0; i < e->njobs; i++) {
        job_t *j = e->jobs[i];
        if (apc_config_find_job(nc, j->name) == NULL) {
            removed++;
            apc_heap_remove(&e->heap, &j->node);
            j->cfg = NULL;
            j->refs++; /* so that job_release can free it when its last run ends */
            job_release(e, j);
        }
    }
    for (i = 0; i < nc->njobs; i++) {
        job_t *j = njobs[i];
        const apc_job_config_t *old = j->cfg;
        int keep =
            old != NULL && apc_heap_node_queued(&j->node) && same_timing(oc, old, nc, &nc->jobs[i]);
        j->cfg = &nc->jobs[i];
        if (!keep) {
            e->cfg = nc; /* arm_job reads zones from the new config */
            arm_job(e, j,
                    j->cfg->schedule_expr != NULL && j->cfg->schedule.kind == APC_SCHED_EVERY &&
                            j->last_fire != APC_TIME_NONE
                        ? j->last_fire
                        : now,
                    now);
        }
    }
    if (oc->service.workers != nc->service.workers ||
        strcmp(oc->service.history, nc->service.history) != 0)
        apc_elog(&e->log, APC_ENGINE_LOG_WARNING,
                 "engine: service.workers and service.history take effect at the next start");
    free(e->jobs);
    e->jobs = njobs;
    e->njobs = nc->njobs;
    e->cfg = nc;
    nc = oc; /* freed below */
    snprintf(msg, sizeof msg, "reloaded: %zu job(s), %zu added, %zu removed", e->njobs, added,
             removed);
    apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: %s", msg);
    answer_ack(e, req, msg);

cleanup:
    apc_config_free(nc);
    apc_diags_free(&diags);
    apc_buf_free(&text);
}

/* A request from another thread: runs on the engine thread. */
static void CALLBACK request_apc(ULONG_PTR arg)
{
    envelope_t *env = (envelope_t *)arg;
    apc_engine_t *e = env->e;
    apc_engine_req_t *req = env->req;

    free(env);
    e->req_first = 0; /* record() notes the request's first record */
    if (e->finished) {
        answer_error(e, req, APC_ESTATE, "the service has stopped");
        return;
    }
    switch (req->in.op) {
    case APC_OP_STATUS:
        op_status(e, req);
        break;
    case APC_OP_LIST:
        op_list(e, req);
        break;
    case APC_OP_SUBMIT:
        op_submit(e, req);
        break;
    case APC_OP_CANCEL:
        op_cancel(e, req);
        break;
    case APC_OP_RELOAD:
        op_reload(e, req);
        break;
    case APC_OP_PAUSE:
        op_pause(e, req, 1);
        break;
    case APC_OP_RESUME:
        op_pause(e, req, 0);
        break;
    default:
        answer_error(e, req, APC_EINVAL, "this request is answered from the history database");
        break;
    }
}

/* ---- Worker messages ------------------------------------------------------------------- */

/* Records that the worker began the run (its "running" row: start time, worker, pid). */
static void record_started(apc_engine_t *e, const apc_work_t *w)
{
    apc_history_op_t op;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_START;
    op.run.id = w->run_id;
    op.run.job = w->job;
    op.run.status = APC_RUN_RUNNING;
    op.run.started_at = w->started_at;
    op.run.finished_at = APC_TIME_NONE;
    op.run.queued_at = APC_TIME_NONE;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.worker = w->worker;
    op.run.pid = (int64_t)w->pid;
    record(e, &op);
}

/* "started": the worker began the run (pid known). Runs on the engine thread. */
static void CALLBACK started_apc(ULONG_PTR arg)
{
    apc_work_t *w = (apc_work_t *)arg;

    record_started((apc_engine_t *)w->engine_, w);
}

/* "done": the worker finished the run (for a run that ended inside its job APC, such as noop,
   it also reports the start: started_with_done). Runs on the engine thread. */
static void CALLBACK done_apc(ULONG_PTR arg)
{
    apc_work_t *w = (apc_work_t *)arg;
    apc_engine_t *e = (apc_engine_t *)w->engine_;
    run_t *r = find_run(e, w->run_id);
    job_t *j;
    apc_history_op_t op;
    apc_retry_decision_t dec;
    char err[ERRSZ];
    const char *error = w->error[0] != '\0' ? w->error : NULL;

    if (r == NULL || r->work != w) {
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: a worker finished unknown run %lld",
                 (long long)w->run_id);
        return;
    }
    j = r->job;
    if (w->status == APC_RUN_CANCELLED && r->cancel_reason != NULL)
        error = r->cancel_reason;
    if (w->started_with_done) {
        /* No "started" APC came: record the start first, so the rows go queued -> running ->
           final exactly as for every other run. */
        record_started(e, w);
    } else if (!w->started_sent && w->status != APC_RUN_CANCELLED) {
        /* The start itself failed (no such program, ...): the store takes a run to failed
           only from running, so record the attempt as a start at the moment it failed. */
        memset(&op, 0, sizeof op);
        op.kind = APC_HOP_START;
        op.run.id = r->id;
        op.run.job = j->name;
        op.run.status = APC_RUN_RUNNING;
        op.run.started_at = w->finished_at;
        op.run.finished_at = APC_TIME_NONE;
        op.run.queued_at = APC_TIME_NONE;
        op.run.scheduled_for = APC_TIME_NONE;
        op.run.worker = w->worker;
        record(e, &op);
    }
    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_FINISH;
    run_row(r, &op.run);
    op.run.status = w->status;
    op.run.started_at = w->started_at;
    op.run.finished_at = w->finished_at;
    op.run.has_exit_code = w->has_exit_code;
    op.run.exit_code = w->exit_code;
    op.run.worker = w->worker;
    op.run.pid = (int64_t)w->pid;
    op.run.output_path = w->started_at != APC_TIME_NONE ? w->output_path : NULL;
    op.run.output_tail = w->output_tail;
    op.run.error = error;
    record(e, &op);
    if (w->status == APC_RUN_FAILED || w->status == APC_RUN_TIMED_OUT)
        apc_elog(&e->log, APC_ENGINE_LOG_WARNING, "engine: run %lld of %s %s%s%s", (long long)r->id,
                 j->name, apc_run_status_name(w->status), error != NULL ? ": " : "",
                 error != NULL ? error : "");

    j->last_status = apc_run_status_name(w->status);
    j->last_finished = w->finished_at;
    e->idle[e->nidle++] = r->worker;
    e->nrunning--;
    j->running--;
    j->active--;

    /* Retry: a new run, attempt + 1, after the backoff (a DELAYED run in the heap). */
    if (!e->stopping && j->cfg != NULL && r->retries > 0 &&
        apc_retry_decide(apc_run_status_name(w->status), r->attempt, r->retries, r->backoff_ms,
                         w->finished_at, &dec, err, sizeof err) == 0 &&
        dec.retry) {
        int64_t id = 0;
        new_run(e, j, APC_TRIGGER_RETRY, dec.next_attempt, dec.due_ms, dec.due_ms, r->submitted_by,
                NULL, 0, &id);
        apc_elog(&e->log, APC_ENGINE_LOG_INFO,
                 "engine: run %lld of %s will be retried as run %lld at %+lld ms", (long long)r->id,
                 j->name, (long long)id, (long long)dec.delay_ms);
    }
    /* Overlap queue: the job's next HELD run goes once nothing of the job is active. */
    if (!e->stopping && j->active == 0 && j->hold_head != NULL) {
        run_t *next = j->hold_head;
        fifo_remove(&j->hold_head, &j->hold_tail, next);
        make_ready(e, next);
    }
    run_free(e, r); /* last: it may free a job a reload removed */
}

/* ---- Timer, fires, stop ------------------------------------------------------------------ */

/* A job's fire time came (plus its jitter). */
static void fire_job(apc_engine_t *e, job_t *j, int64_t now)
{
    int64_t fire = j->next_fire;

    j->last_fire = fire;
    record_job_state(e, j, APC_JS_LAST_FIRE, NULL);
    if (!job_paused(e, j, now))
        new_run(e, j, APC_TRIGGER_SCHEDULE, 1, fire, APC_TIME_NONE, NULL, NULL, 0, NULL);
    arm_job(e, j, fire, now);
}

/* Handles every heap entry that is due. Returns 1 if more are due than one batch took. */
static int run_heap(apc_engine_t *e)
{
    int64_t now = apc_win_now_ms();
    int n = 0;
    apc_heap_node_t *top;

    while ((top = apc_heap_top(&e->heap)) != NULL && top->due <= now) {
        if (++n > PUMP_BATCH)
            return 1;
        apc_heap_pop(&e->heap);
        if (*(int *)top->owner == TIMED_JOB) {
            fire_job(e, (job_t *)top->owner, now);
        } else {
            run_t *r = (run_t *)top->owner;
            e->nwaiting--; /* run_due counts it in again */
            r->place = RUN_NEW;
            run_due(e, r);
        }
    }
    return 0;
}

static void CALLBACK stop_apc(ULONG_PTR arg)
{
    apc_engine_t *e = (apc_engine_t *)arg;
    run_t *r, *rn;
    size_t i;

    if (e->stopping)
        return;
    e->stopping = 1;
    e->grace_deadline = apc_win_now_ms() + e->cfg->service.shutdown_grace_ms;
    apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: stopping (%zu run(s) running, grace %lld ms)",
             e->nrunning, (long long)e->cfg->service.shutdown_grace_ms);
    for (i = 0; i < e->njobs; i++)
        apc_heap_remove(&e->heap, &e->jobs[i]->node);
    for (r = e->runs; r != NULL; r = rn) {
        rn = r->next;
        if (r->place != RUN_RUNNING)
            finish_waiting(e, r, APC_RUN_CANCELLED, "service stopping");
    }
}

/* While stopping: once the grace is over, cancel what still runs. */
static void stop_progress(apc_engine_t *e)
{
    run_t *r;

    if (!e->grace_over && e->nrunning > 0 && apc_win_now_ms() >= e->grace_deadline) {
        e->grace_over = 1;
        apc_elog(&e->log, APC_ENGINE_LOG_WARNING, "engine: grace over: cancelling %zu run(s)",
                 e->nrunning);
        for (r = e->runs; r != NULL; r = r->next)
            if (r->place == RUN_RUNNING)
                cancel_running(e, r, "service stopping");
    }
    if (e->nrunning == 0)
        e->finished = 1;
}

/* Sets the one timer to the earliest due time (absolute, so it cannot drift). */
static void arm_timer(apc_engine_t *e, int more)
{
    apc_heap_node_t *top = apc_heap_top(&e->heap);
    int64_t due = top != NULL ? top->due : APC_TIME_NONE;
    LARGE_INTEGER li;

    if (e->stopping && !e->grace_over && e->nrunning > 0)
        due = e->grace_deadline;
    if (more)
        due = apc_win_now_ms();
    if (due == e->armed_due)
        return;
    if (due == APC_TIME_NONE) {
        CancelWaitableTimer(e->timer);
        e->armed_due = due;
        return;
    }
    li.QuadPart = apc_win_filetime_from_ms(due);
    if (li.QuadPart <= 0)
        li.QuadPart = 1; /* a time before 1601: due at once */
    if (!SetWaitableTimer(e->timer, &li, 0, NULL, NULL, FALSE)) {
        DWORD code = GetLastError();
        HANDLE t = e->timer_hires ? CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS) : NULL;
        /* Should a high-resolution timer refuse an absolute due time, fall back to a normal
           timer once: an absolute time (no drift) matters more than resolution. */
        if (t == NULL || !SetWaitableTimer(t, &li, 0, NULL, NULL, FALSE)) {
            apc_win_close(t);
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: cannot set the timer (error %lu)",
                     (unsigned long)code);
            return;
        }
        apc_elog(&e->log, APC_ENGINE_LOG_WARNING,
                 "engine: the high-resolution timer refused an absolute time (error %lu); "
                 "using a normal timer",
                 (unsigned long)code);
        apc_win_close(e->timer);
        e->timer = t;
        e->timer_hires = 0;
    }
    e->armed_due = due;
}

/*
 * After every wake (which ran every APC that was pending: Windows delivers them all before
 * the wait returns, and so does Wine): due entries, stop progress, dispatch, then ONE parcel
 * of this turn's records to the history thread, the timer, and one reply APC per requester.
 */
static void pump(apc_engine_t *e)
{
    int more = e->stopping ? 0 : run_heap(e);

    if (e->stopping)
        stop_progress(e);
    dispatch(e);
    if (e->hist != NULL && apc_histthread_flush(e->hist) != 0)
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR,
                 "engine: cannot hand records to the history thread yet");
    if (!e->finished)
        arm_timer(e, more);
    send_answers(e);
}

/* ---- Start-up on the engine thread: catch-up and @startup ------------------------------ */

/* The latest fire time in [first, now] (first is a fire time <= now). */
static int64_t latest_fire(apc_engine_t *e, const job_t *j, int64_t first, int64_t now)
{
    static const int64_t windows[] = {APC_MS_PER_MIN,       APC_MS_PER_HOUR,
                                      APC_MS_PER_DAY,       32 * APC_MS_PER_DAY,
                                      400 * APC_MS_PER_DAY, 4000 * APC_MS_PER_DAY};
    const apc_tz_t *tz = job_tz(e, j);
    size_t k;

    if (j->cfg->schedule.kind == APC_SCHED_EVERY) {
        int64_t iv = j->cfg->schedule.u.every_ms;
        return first + ((now - first) / iv) * iv;
    }
    for (k = 0; k <= sizeof windows / sizeof windows[0]; k++) {
        int64_t from = k < sizeof windows / sizeof windows[0] ? now - windows[k] : first - 1;
        int64_t t, n;
        if (from < first - 1)
            from = first - 1;
        if (apc_schedule_next(&j->cfg->schedule, from, tz, &t) != 0 || t > now)
            continue;
        while (apc_schedule_next(&j->cfg->schedule, t, tz, &n) == 0 && n <= now)
            t = n;
        return t;
    }
    return first;
}

/* Catch-up for one job after downtime (apc_missed_decide), then its first arming. */
static void catch_up(apc_engine_t *e, job_t *j, int64_t now)
{
    apc_missed_input_t in;
    apc_missed_decision_t dec;
    char err[ERRSZ];
    int64_t first = APC_TIME_NONE;

    in.policy = (apc_missed_t)j->cfg->missed;
    in.last_fire_ms = j->last_fire;
    in.now_ms = now;
    in.missed_within_ms = j->cfg->missed_within_ms;
    in.first_missed_ms = APC_TIME_NONE;
    in.latest_missed_ms = APC_TIME_NONE;
    if (j->last_fire != APC_TIME_NONE &&
        apc_schedule_next(&j->cfg->schedule, j->last_fire, job_tz(e, j), &first) == 0 &&
        first <= now) {
        in.first_missed_ms = first;
        in.latest_missed_ms = latest_fire(e, j, first, now);
    }
    if (j->paused)
        in.policy = APC_MISSED_SKIP; /* a paused job does not fire by schedule */
    if (apc_missed_decide(&in, &dec, err, sizeof err) != 0) {
        apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: job %s: catch-up: %s", j->name, err);
    } else if (in.latest_missed_ms != APC_TIME_NONE) {
        char at[APC_ISO8601_BUFSZ];
        apc_time_format_iso8601(in.latest_missed_ms, 0, at, sizeof at);
        if (dec.action == APC_MISSED_ACT_RUN)
            new_run(e, j, APC_TRIGGER_CATCHUP, 1, dec.fire_ms, APC_TIME_NONE, NULL, NULL, 0, NULL);
        apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: job %s missed fire time(s) up to %s: %s",
                 j->name, at,
                 dec.action == APC_MISSED_ACT_RUN ? "one catch-up run"
                                                  : apc_missed_reason_text(dec.reason));
        j->last_fire = in.latest_missed_ms;
        record_job_state(e, j, APC_JS_LAST_FIRE, NULL);
    }
    arm_job(e, j,
            j->cfg->schedule.kind == APC_SCHED_EVERY && j->last_fire != APC_TIME_NONE ? j->last_fire
                                                                                      : now,
            now);
}

static void engine_init(apc_engine_t *e)
{
    int64_t now = apc_win_now_ms();
    size_t i;

    e->started_at = now;
    for (i = 0; i < e->njobs; i++) {
        job_t *j = e->jobs[i];
        if (job_is_timed(j))
            catch_up(e, j, now);
        else if (j->cfg->enabled && j->cfg->schedule_expr != NULL &&
                 j->cfg->schedule.kind == APC_SCHED_STARTUP)
            new_run(e, j, APC_TRIGGER_STARTUP, 1, now, APC_TIME_NONE, NULL, NULL, 0, NULL);
    }
    apc_elog(&e->log, APC_ENGINE_LOG_INFO,
             "engine: started: %zu job(s), %d worker(s), next run id %lld", e->njobs, e->nworkers,
             (long long)e->next_id);
}

/* Waits alertably for a thread to end (APCs to the engine keep running meanwhile, and what
   they answer is sent after each wake). */
static void wait_thread(apc_engine_t *e, HANDLE h)
{
    while (h != NULL && WaitForSingleObjectEx(h, INFINITE, TRUE) == WAIT_IO_COMPLETION)
        send_answers(e);
}

/* The engine thread. */
static DWORD WINAPI engine_main(LPVOID arg)
{
    apc_engine_t *e = arg;
    reply_t *p;
    int i;

    if (e->abort_start)
        return 0;
    engine_init(e);
    pump(e);
    SetEvent(e->ready);

    while (!e->finished) {
        DWORD w = WaitForMultipleObjectsEx(1, &e->timer, FALSE, INFINITE, TRUE);
        if (w == WAIT_OBJECT_0)
            e->armed_due = APC_TIME_NONE; /* the timer fired: it is no longer armed */
        else if (w == WAIT_FAILED)
            Sleep(10); /* cannot happen with a valid timer; never spin */
        pump(e);
    }

    /* Every run has ended: workers quit, the history is flushed, then the mailbox closes. */
    for (i = 0; i < e->nworkers; i++)
        apc_worker_quit(e->workers[i]);
    for (i = 0; i < e->nworkers; i++)
        wait_thread(e, apc_worker_handle(e->workers[i]));
    if (e->hist != NULL) { /* NULL: the no_history benchmark option, nothing to flush */
        if (apc_histthread_stop(e->hist) != 0)
            apc_elog(&e->log, APC_ENGINE_LOG_ERROR, "engine: cannot stop the history thread");
        else
            wait_thread(e, apc_histthread_handle(e->hist));
    }
    /* The history thread's last acknowledgement may still be queued: run it (and anything
       else queued; requests see `finished`) so that written records are answered "ok". */
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        send_answers(e);
    while ((p = e->replies_head) != NULL) {
        /* Records the history could not write: the caller must not believe they are safe. */
        e->replies_head = p->next;
        answer_error(e, p->req, APC_EDB, HIST_LOST_MSG);
        free(p);
    }
    e->replies_tail = NULL;
    send_answers(e);
    AcquireSRWLockExclusive(&e->mbox);
    e->mbox_closed = 1;
    ReleaseSRWLockExclusive(&e->mbox);
    /* Requests queued before the mailbox closed: answer them (request_apc sees finished). */
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        send_answers(e);
    send_answers(e);
    apc_elog(&e->log, APC_ENGINE_LOG_INFO, "engine: stopped");
    return 0;
}

/* ---- Owning thread: start, join, free; any thread: stop, post ------------------------- */

static void free_state(apc_engine_t *e)
{
    size_t i;
    int k;

    while (e->runs != NULL)
        run_free(e, e->runs);
    for (k = 0; k < e->nworkers; k++)
        apc_worker_free(e->workers[k]);
    free(e->workers);
    free(e->idle);
    apc_histthread_free(e->hist);
    for (i = 0; i < e->njobs; i++) {
        apc_heap_remove(&e->heap, &e->jobs[i]->node);
        job_free(e->jobs[i]);
    }
    free(e->jobs);
    apc_heap_free(&e->heap);
    apc_hist_boot_free(&e->boot);
    apc_config_free(e->cfg);
    e->timer = apc_win_close(e->timer);
    e->ready = apc_win_close(e->ready);
    e->thread = apc_win_close(e->thread);
    free(e->config_path);
    free(e);
}

/* Owning thread, before the engine thread runs: jobs with their state from the database. */
static int build_jobs(apc_engine_t *e)
{
    size_t i;

    e->jobs = calloc(e->cfg->njobs + 1, sizeof *e->jobs);
    if (e->jobs == NULL)
        return APC_ENOMEM;
    for (i = 0; i < e->cfg->njobs; i++) {
        if ((e->jobs[i] = job_new(&e->cfg->jobs[i])) == NULL)
            return APC_ENOMEM;
        e->njobs++;
    }
    for (i = 0; i < e->boot.nstates; i++) {
        const apc_job_state_t *s = e->boot.states[i];
        job_t *j = find_job(e, s->job);
        if (j == NULL)
            continue;
        j->last_fire = s->last_fire_at;
        j->paused = s->paused;
        j->paused_until = s->paused_until;
    }
    for (i = 0; i < e->boot.nlast; i++) {
        const apc_run_record_t *r = e->boot.last_runs[i];
        job_t *j = find_job(e, r->job);
        if (j == NULL)
            continue;
        j->last_status = apc_run_status_name(r->status);
        j->last_finished = r->finished_at;
    }
    return 0;
}

static int cpu_count(void)
{
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (n == 0) {
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        n = si.dwNumberOfProcessors;
    }
    return n == 0 ? 1 : (int)(n > 64 ? 64 : n);
}

/* Creates the one timer: high resolution where the system has it. */
static int make_timer(apc_engine_t *e, char *err, size_t errsz)
{
    e->timer =
        CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
    e->timer_hires = e->timer != NULL;
    if (e->timer == NULL) /* older Windows: ERROR_INVALID_PARAMETER */
        e->timer = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);
    if (e->timer == NULL)
        return apc_win_seterr(err, errsz, GetLastError(), "cannot create the engine timer");
    e->armed_due = APC_TIME_NONE;
    return 0;
}

static void put_errors(apc_buf_t *errors, const char *text)
{
    if (errors == NULL)
        return;
    apc_buf_puts(errors, text);
    if (text[0] != '\0' && text[strlen(text) - 1] != '\n')
        apc_buf_puts(errors, "\n");
}

int apc_engine_start(const apc_engine_opts_t *opts, apc_engine_t **out, apc_buf_t *errors)
{
    apc_engine_t *e = NULL;
    apc_diags_t diags = {0};
    apc_histthread_opts_t ho;
    char err[ERRSZ];
    HANDLE both[2];
    int rc, i;
    DWORD w;

    if (out != NULL)
        *out = NULL;
    if (opts == NULL || opts->config_path == NULL || out == NULL) {
        put_errors(errors, "engine: bad arguments");
        return APC_EINVAL;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        put_errors(errors, "out of memory");
        return APC_ENOMEM;
    }
    InitializeSRWLock(&e->mbox);
    e->log.fn = opts->log;
    e->log.ctx = opts->log_ctx;
    e->local_tz = opts->local_tz;
    e->hook = opts->run_hook;
    e->hook_ctx = opts->run_hook_ctx;
    e->config_path = apc_strdup(opts->config_path);
    e->config_acl = opts->config_acl;
    if (e->config_path == NULL) {
        rc = APC_ENOMEM;
        put_errors(errors, "out of memory");
        goto fail;
    }
    e->jitter_seed =
        opts->jitter_seed != 0 ? opts->jitter_seed : apc_policy_fnv1a64(opts->config_path);

    /* 1. The config: every diagnostic, one per line. */
    rc = apc_config_load(e->config_path, &e->cfg, &diags);
    if (diags.count > 0 && rc == 0) {
        size_t k;
        for (k = 0; k < diags.count; k++) {
            apc_buf_t line = {0};
            apc_diag_format(&diags.items[k], &line);
            apc_elog(&e->log, APC_ENGINE_LOG_WARNING, "config: %s",
                     line.data != NULL ? line.data : "");
            apc_buf_free(&line);
        }
    }
    if (rc != 0) {
        if (errors != NULL)
            apc_diags_format(&diags, errors);
        if (diags.count == 0)
            put_errors(errors, apc_strerror(rc));
        if (rc == APC_ESYNTAX || rc == APC_ETOOBIG)
            rc = APC_EINVAL;
        goto fail;
    }

    /* 2. The engine thread, suspended: the history thread acknowledges to it. */
    e->ready = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (e->ready == NULL) {
        rc = apc_win_seterr(err, sizeof err, GetLastError(), "cannot create an event");
        put_errors(errors, err);
        goto fail;
    }
    e->thread = CreateThread(NULL, 0, engine_main, e, CREATE_SUSPENDED, NULL);
    if (e->thread == NULL) {
        rc = apc_win_seterr(err, sizeof err, GetLastError(), "cannot start the engine thread");
        put_errors(errors, err);
        goto fail;
    }

    /* 3. The history: folder, thread, recovery, state (none for the benchmark option). */
    if (opts->no_history)
        goto history_done;
    rc = apc_paths_make_parent_dir(e->cfg->service.history, err, sizeof err);
    if (rc != 0) {
        put_errors(errors, err);
        goto fail;
    }
    memset(&ho, 0, sizeof ho);
    ho.db_path = e->cfg->service.history;
    ho.retention_days = e->cfg->service.retention_days;
    ho.output_dir = e->cfg->service.output_dir;
    ho.now_ms = apc_win_now_ms();
    ho.log = e->log;
    ho.ack_thread = e->thread;
    ho.ack_fn = ack_apc;
    ho.ack_arg = (ULONG_PTR)e;
    ho.max_pending = opts->hist_max_pending;
    rc = apc_histthread_start(&ho, &e->hist, &e->boot, err, sizeof err);
    if (rc != 0) {
        char line[ERRSZ + 64];
        snprintf(line, sizeof line, "history %s: %s", e->cfg->service.history, err);
        put_errors(errors, line);
        goto fail;
    }
    if (e->boot.recovered > 0)
        apc_elog(&e->log, APC_ENGINE_LOG_WARNING,
                 "engine: %lld run(s) left queued or running by the last stop are now interrupted",
                 (long long)e->boot.recovered);
history_done:
    e->next_id = e->boot.max_id + 1;
    rc = build_jobs(e);
    if (rc != 0) {
        put_errors(errors, "out of memory");
        goto fail;
    }

    /* 4. The timer and the workers. */
    rc = make_timer(e, err, sizeof err);
    if (rc != 0) {
        put_errors(errors, err);
        goto fail;
    }
    e->nworkers = e->cfg->service.workers > 0 ? e->cfg->service.workers : cpu_count();
    if (e->nworkers > APC_CONFIG_MAX_WORKERS)
        e->nworkers = APC_CONFIG_MAX_WORKERS;
    e->workers = calloc((size_t)e->nworkers, sizeof *e->workers);
    e->idle = calloc((size_t)e->nworkers, sizeof *e->idle);
    if (e->workers == NULL || e->idle == NULL) {
        rc = APC_ENOMEM;
        e->nworkers = 0;
        put_errors(errors, "out of memory");
        goto fail;
    }
    for (i = 0; i < e->nworkers; i++) {
        apc_worker_opts_t wo;
        memset(&wo, 0, sizeof wo);
        wo.index = i + 1;
        wo.engine_thread = e->thread;
        wo.on_started = started_apc;
        wo.on_done = done_apc;
        wo.log = e->log;
        wo.hook = e->hook;
        wo.hook_ctx = e->hook_ctx;
        rc = apc_worker_start(&wo, &e->workers[i], err, sizeof err);
        if (rc != 0) {
            e->nworkers = i;
            put_errors(errors, err);
            goto fail;
        }
    }
    /* The idle stack pops from the end: worker 1 first. */
    for (i = 0; i < e->nworkers; i++)
        e->idle[i] = e->workers[e->nworkers - 1 - i];
    e->nidle = e->nworkers;

    /* 5. Go: catch-up, @startup and the timer happen on the engine thread. */
    if (ResumeThread(e->thread) == (DWORD)-1) {
        rc = apc_win_seterr(err, sizeof err, GetLastError(), "cannot resume the engine thread");
        put_errors(errors, err);
        goto fail;
    }
    both[0] = e->ready;
    both[1] = e->thread;
    w = WaitForMultipleObjects(2, both, FALSE, INFINITE);
    if (w != WAIT_OBJECT_0) {
        rc = APC_ESYS;
        put_errors(errors, "the engine thread ended during start-up");
        goto fail_running;
    }
    apc_diags_free(&diags);
    *out = e;
    return 0;

fail:
    if (e->thread != NULL) {
        e->abort_start = 1;
        ResumeThread(e->thread);
    }
fail_running:
    if (e->thread != NULL)
        WaitForSingleObject(e->thread, INFINITE);
    for (i = 0; i < e->nworkers; i++)
        apc_worker_quit(e->workers[i]);
    apc_diags_free(&diags);
    free_state(e);
    return rc;
}

void apc_engine_stop(apc_engine_t *e)
{
    if (e == NULL)
        return;
    AcquireSRWLockShared(&e->mbox);
    if (!e->mbox_closed && InterlockedExchange(&e->stop_sent, 1) == 0 &&
        !QueueUserAPC(stop_apc, e->thread, (ULONG_PTR)e))
        InterlockedExchange(&e->stop_sent, 0); /* let a later call try again */
    ReleaseSRWLockShared(&e->mbox);
}

int apc_engine_post(apc_engine_t *e, apc_engine_req_t *req)
{
    envelope_t *env;
    int rc = 0;

    if (e == NULL || req == NULL || req->done == NULL || req->reply_thread == NULL)
        return APC_EINVAL;
    env = malloc(sizeof *env);
    if (env == NULL)
        return APC_ENOMEM;
    env->e = e;
    env->req = req;
    req->result = 0;
    req->run_id = 0;
    AcquireSRWLockShared(&e->mbox);
    if (e->mbox_closed)
        rc = APC_ESTATE;
    else if (!QueueUserAPC(request_apc, e->thread, (ULONG_PTR)env))
        rc = APC_ESYS;
    ReleaseSRWLockShared(&e->mbox);
    if (rc != 0)
        free(env);
    return rc;
}

HANDLE apc_engine_done_event(const apc_engine_t *e)
{
    return e == NULL ? NULL : e->thread;
}

int apc_engine_join(apc_engine_t *e, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();

    if (e == NULL)
        return APC_EINVAL;
    for (;;) {
        DWORD left = timeout_ms;
        DWORD w;
        if (timeout_ms != INFINITE) {
            ULONGLONG spent = GetTickCount64() - start;
            left = spent >= timeout_ms ? 0 : (DWORD)(timeout_ms - spent);
        }
        w = WaitForSingleObjectEx(e->thread, left, TRUE);
        if (w == WAIT_OBJECT_0)
            return 0;
        if (w != WAIT_IO_COMPLETION)
            return APC_ETIMEDOUT;
    }
}

void apc_engine_free(apc_engine_t *e)
{
    if (e == NULL)
        return;
    if (WaitForSingleObject(e->thread, 0) != WAIT_OBJECT_0) {
        apc_engine_stop(e);
        apc_engine_join(e, INFINITE);
    }
    free_state(e);
}
