/*
 * test_engine.c - the engine, its workers and its history thread, in process: a real config
 * file and a real SQLite history in a temporary folder, real threads and APCs, real child
 * processes. Requests are posted from the test thread, which is the reply thread and waits
 * alertably for the answer; results are read back with a second, read-only history
 * connection, as apcctl would.
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
#include <wchar.h>

#include "apc_history.h"
#include "apc_protocol.h"
#include "apc_str.h"
#include "apc_time.h"
#include "engine.h"
#include "win_util.h"
#include "test_fs.h"

#define MAX_ROWS 64

/* ---- Fixture ------------------------------------------------------------------------- */

typedef struct hook_log {
    volatile LONG n;
    int64_t run_id[MAX_ROWS];
    DWORD thread_id[MAX_ROWS];
} hook_log_t;

typedef struct fx {
    char dir[MAX_PATH];
    char config[MAX_PATH];
    char history[MAX_PATH];
    apc_engine_t *e;
    hook_log_t hooks;
    apc_run_record_t *rows[MAX_ROWS];
    size_t nrows;
} fx_t;

static volatile LONG dir_counter;

static void test_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (getenv("APC_TEST_VERBOSE") != NULL)
        fprintf(stderr, "[%d] %s\n", level, msg);
}

/* Called on the worker thread that runs each run (engine.h); records which thread it was. */
static void hook(void *ctx, int64_t run_id, int worker, DWORD thread_id)
{
    hook_log_t *h = ctx;
    LONG i = InterlockedIncrement(&h->n) - 1;
    (void)worker;
    if (i < MAX_ROWS) {
        h->run_id[i] = run_id;
        h->thread_id[i] = thread_id;
    }
}

static void make_dir(fx_t *f)
{
    wchar_t tmp[MAX_PATH];
    char *t;
    DWORD n = GetTempPathW(MAX_PATH, tmp);
    assert_true(n > 0 && n < MAX_PATH);
    t = apc_wide_to_utf8(tmp);
    assert_non_null(t);
    snprintf(f->dir, sizeof f->dir, "%sapceng-%lu-%llu-%ld", t,
             (unsigned long)GetCurrentProcessId(), (unsigned long long)GetTickCount64(),
             (long)InterlockedIncrement(&dir_counter));
    free(t);
    {
        wchar_t *w = apc_utf8_to_wide(f->dir);
        assert_non_null(w);
        assert_true(CreateDirectoryW(w, NULL));
        free(w);
    }
    snprintf(f->config, sizeof f->config, "%s\\apcsvc.json", f->dir);
    snprintf(f->history, sizeof f->history, "%s\\history.db", f->dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* Writes the config: a service block with `service` inside it, then the jobs given. */
static void write_config(fx_t *f, const char *service, const char *jobs)
{
    char text[8192];
    snprintf(text, sizeof text,
             "{\n\"service\": {\"history\": \"history.db\", \"output_dir\": \"runs\", "
             "\"log_dir\": \"logs\"%s%s},\n\"jobs\": [\n%s\n]\n}\n",
             service[0] != '\0' ? ", " : "", service, jobs);
    write_file(f->config, text);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    make_dir(f);
    *state = f;
    return 0;
}

static void free_rows(fx_t *f)
{
    size_t i;
    for (i = 0; i < f->nrows; i++)
        apc_run_record_free(f->rows[i]);
    f->nrows = 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->e != NULL) {
        apc_engine_stop(f->e);
        apc_engine_join(f->e, INFINITE);
        apc_engine_free(f->e);
    }
    free_rows(f);
    {
        wchar_t *w = apc_utf8_to_wide(f->dir);
        if (w != NULL)
            test_remove_tree(w);
        free(w);
    }
    free(f);
    return 0;
}

static void start_engine(fx_t *f)
{
    apc_engine_opts_t o;
    apc_buf_t errors = {0};
    int rc;

    memset(&o, 0, sizeof o);
    o.config_path = f->config;
    o.log = test_log;
    o.run_hook = hook;
    o.run_hook_ctx = &f->hooks;
    rc = apc_engine_start(&o, &f->e, &errors);
    if (rc != 0)
        fprintf(stderr, "engine start: %s\n", errors.data != NULL ? errors.data : "?");
    apc_buf_free(&errors);
    assert_int_equal(rc, 0);
}

static void stop_engine(fx_t *f)
{
    apc_engine_stop(f->e);
    assert_int_equal(apc_engine_join(f->e, 30000), 0);
    apc_engine_free(f->e);
    f->e = NULL;
}

/* ---- Requests ------------------------------------------------------------------------ */

typedef struct call {
    apc_engine_req_t req;
    volatile LONG done;
    DWORD done_thread;
} call_t;

static void on_done(apc_engine_req_t *req)
{
    call_t *c = req->ctx;
    c->done_thread = GetCurrentThreadId();
    c->done = 1;
}

static void call_init(call_t *c, apc_proto_op_t op)
{
    memset(c, 0, sizeof *c);
    apc_proto_request_init(&c->req.in, op);
    c->req.submitted_by = "tester";
    c->req.done = on_done;
    c->req.ctx = c;
}

/* Posts the request and waits alertably (the answer is an APC to this thread). */
static int call_run(fx_t *f, call_t *c)
{
    ULONGLONG start = GetTickCount64();
    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(),
                                &c->req.reply_thread, 0, FALSE, DUPLICATE_SAME_ACCESS));
    assert_int_equal(apc_engine_post(f->e, &c->req), 0);
    while (!c->done && GetTickCount64() - start < 20000)
        SleepEx(100, TRUE);
    assert_true(c->done);
    assert_int_equal(c->done_thread, GetCurrentThreadId());
    CloseHandle(c->req.reply_thread);
    return c->req.result;
}

static void call_free(call_t *c)
{
    apc_buf_free(&c->req.response);
}

/* Submits a manual run of job and returns its id. */
static int64_t submit(fx_t *f, const char *job)
{
    call_t c;
    int64_t id;
    call_init(&c, APC_OP_SUBMIT);
    c.req.in.job = job;
    assert_int_equal(call_run(f, &c), 0);
    id = c.req.run_id;
    assert_true(id > 0);
    call_free(&c);
    return id;
}

/* ---- Reading the history ------------------------------------------------------------- */

static int collect(const apc_run_record_t *r, void *ctx)
{
    fx_t *f = ctx;
    if (f->nrows >= MAX_ROWS)
        return 1;
    f->rows[f->nrows] = apc_run_record_dup(r);
    if (f->rows[f->nrows] == NULL)
        return APC_ENOMEM;
    f->nrows++;
    return 0;
}

/* Loads every run into f->rows, oldest (lowest id) first. */
static void load_rows(fx_t *f)
{
    apc_history_t *h = NULL;
    char err[512];
    size_t i;

    free_rows(f);
    assert_int_equal(apc_history_open(f->history, APC_HISTORY_READONLY, &h, err, sizeof err), 0);
    assert_int_equal(apc_history_query(h, NULL, collect, f, err, sizeof err), 0);
    apc_history_close(h);
    for (i = 0; i < f->nrows / 2; i++) {
        apc_run_record_t *t = f->rows[i];
        f->rows[i] = f->rows[f->nrows - 1 - i];
        f->rows[f->nrows - 1 - i] = t;
    }
}

static const apc_run_record_t *row(fx_t *f, int64_t id)
{
    size_t i;
    for (i = 0; i < f->nrows; i++)
        if (f->rows[i]->id == id)
            return f->rows[i];
    fail_msg("run %lld not in the history", (long long)id);
    return NULL;
}

/* Waits until at least n runs are in a final status (polling the history, alertably). */
static void wait_final(fx_t *f, size_t n, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    for (;;) {
        size_t i, k = 0;
        load_rows(f);
        for (i = 0; i < f->nrows; i++)
            k += apc_run_status_is_final(f->rows[i]->status) ? 1u : 0u;
        if (k >= n)
            return;
        if (GetTickCount64() - start > timeout_ms)
            fail_msg("only %zu of %zu runs ended within %lu ms", k, n, (unsigned long)timeout_ms);
        SleepEx(50, TRUE);
    }
}

/* Waits until run id has the given status. */
static void wait_status(fx_t *f, int64_t id, apc_run_status_t st, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    for (;;) {
        load_rows(f);
        if (f->nrows > 0) {
            size_t i;
            for (i = 0; i < f->nrows; i++)
                if (f->rows[i]->id == id && f->rows[i]->status == st)
                    return;
        }
        if (GetTickCount64() - start > timeout_ms)
            fail_msg("run %lld did not become %s", (long long)id, apc_run_status_name(st));
        SleepEx(50, TRUE);
    }
}

/* Writes ops straight into the history, as a previous service life would have. */
static void prepare_history(fx_t *f, const apc_history_op_t *ops, size_t n)
{
    apc_history_t *h = NULL;
    char err[512];
    assert_int_equal(apc_history_open(f->history, APC_HISTORY_READWRITE, &h, err, sizeof err), 0);
    assert_int_equal(apc_history_write(h, ops, n, err, sizeof err), 0);
    apc_history_close(h);
}

/* ---- Tests --------------------------------------------------------------------------- */

static void manual_noop_run_succeeds_on_a_worker_thread(void **state)
{
    fx_t *f = *state;
    const apc_run_record_t *r;
    int64_t id;

    write_config(f, "\"workers\": 2", "{\"name\": \"ping\", \"builtin\": \"noop\"}");
    start_engine(f);
    id = submit(f, "ping");
    assert_int_equal(id, 1);
    wait_status(f, id, APC_RUN_SUCCEEDED, 10000);
    r = row(f, id);
    assert_string_equal(r->job, "ping");
    assert_int_equal(r->trigger, APC_TRIGGER_MANUAL);
    assert_int_equal(r->attempt, 1);
    assert_string_equal(r->submitted_by, "tester");
    assert_true(r->worker == 1 || r->worker == 2);
    assert_true(r->started_at != APC_TIME_NONE && r->finished_at >= r->started_at);
    assert_true(r->started_at >= r->queued_at);
    assert_null(r->error);
    /* It ran on a worker thread: not the engine thread, not this one. */
    assert_int_equal(f->hooks.n, 1);
    assert_int_equal(f->hooks.run_id[0], id);
    assert_int_not_equal(f->hooks.thread_id[0], GetThreadId(apc_engine_done_event(f->e)));
    assert_int_not_equal(f->hooks.thread_id[0], GetCurrentThreadId());
}

static void every_second_schedule_fires_by_itself_on_time(void **state)
{
    fx_t *f = *state;
    size_t i;

    write_config(f, "",
                 "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\", "
                 "\"timezone\": \"UTC\"}");
    start_engine(f);
    wait_final(f, 2, 6000);
    stop_engine(f);
    load_rows(f);
    assert_true(f->nrows >= 2);
    for (i = 0; i < f->nrows; i++) {
        const apc_run_record_t *r = f->rows[i];
        assert_int_equal(r->trigger, APC_TRIGGER_SCHEDULE);
        assert_int_equal(r->status, APC_RUN_SUCCEEDED);
        assert_true(r->scheduled_for != APC_TIME_NONE);
        /* Timers are never early; under Wine they are ~1 ms late, allow a loaded machine. */
        assert_true(r->started_at >= r->scheduled_for);
        assert_true(r->started_at - r->scheduled_for < 500);
        if (i > 0)
            assert_int_equal(r->scheduled_for - f->rows[i - 1]->scheduled_for, 1000);
    }
}

static void six_field_cron_fires_on_whole_seconds(void **state)
{
    fx_t *f = *state;

    write_config(f, "",
                 "{\"name\": \"sec\", \"builtin\": \"noop\", \"schedule\": \"* * * * * *\", "
                 "\"timezone\": \"UTC\"}");
    start_engine(f);
    wait_final(f, 1, 5000);
    stop_engine(f);
    load_rows(f);
    assert_int_equal(f->rows[0]->trigger, APC_TRIGGER_SCHEDULE);
    assert_int_equal(f->rows[0]->scheduled_for % 1000, 0);
    assert_true(f->rows[0]->started_at - f->rows[0]->scheduled_for < 500);
}

static void overlap_skip_records_the_second_run_as_skipped(void **state)
{
    fx_t *f = *state;
    int64_t a, b;
    char why[128];

    write_config(f, "\"workers\": 2",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"1s\"], "
                 "\"overlap\": \"skip\"}");
    start_engine(f);
    a = submit(f, "nap");
    b = submit(f, "nap");
    wait_final(f, 2, 10000);
    load_rows(f);
    assert_int_equal(f->nrows, 2);
    assert_int_equal(row(f, a)->status, APC_RUN_SUCCEEDED);
    assert_int_equal(row(f, b)->status, APC_RUN_SKIPPED);
    snprintf(why, sizeof why, "skipped: run %lld of the job is still running", (long long)a);
    assert_string_equal(row(f, b)->error, why);
    assert_true(row(f, b)->started_at == APC_TIME_NONE);
}

static void overlap_queue_runs_the_second_after_the_first(void **state)
{
    fx_t *f = *state;
    int64_t a, b;

    write_config(f, "\"workers\": 2",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"500ms\"], "
                 "\"overlap\": \"queue\"}");
    start_engine(f);
    a = submit(f, "nap");
    b = submit(f, "nap");
    wait_final(f, 2, 10000);
    assert_int_equal(row(f, a)->status, APC_RUN_SUCCEEDED);
    assert_int_equal(row(f, b)->status, APC_RUN_SUCCEEDED);
    assert_true(row(f, b)->started_at >= row(f, a)->finished_at);
}

static void overlap_parallel_runs_both_at_once(void **state)
{
    fx_t *f = *state;
    int64_t a, b;

    write_config(f, "\"workers\": 2",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"1s\"], "
                 "\"overlap\": \"parallel\"}");
    start_engine(f);
    a = submit(f, "nap");
    b = submit(f, "nap");
    wait_final(f, 2, 10000);
    assert_int_equal(row(f, a)->status, APC_RUN_SUCCEEDED);
    assert_int_equal(row(f, b)->status, APC_RUN_SUCCEEDED);
    assert_true(row(f, b)->started_at < row(f, a)->finished_at);
    assert_int_not_equal(row(f, a)->worker, row(f, b)->worker);
}

static void overlap_replace_cancels_the_running_one(void **state)
{
    fx_t *f = *state;
    int64_t a, b;
    char why[64];

    write_config(f, "\"workers\": 2",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"3s\"], "
                 "\"overlap\": \"replace\"}");
    start_engine(f);
    a = submit(f, "nap");
    wait_status(f, a, APC_RUN_RUNNING, 5000);
    b = submit(f, "nap");
    wait_status(f, a, APC_RUN_CANCELLED, 5000);
    snprintf(why, sizeof why, "replaced by run %lld", (long long)b);
    assert_string_equal(row(f, a)->error, why);
    assert_true(row(f, a)->finished_at - row(f, a)->started_at < 2500);
    wait_status(f, b, APC_RUN_SUCCEEDED, 10000);
    assert_true(row(f, b)->started_at >= row(f, a)->finished_at);
}

static void missing_command_fails_with_the_system_message(void **state)
{
    fx_t *f = *state;
    int64_t id;
    char expect[512];

    write_config(f, "", "{\"name\": \"ghost\", \"command\": [\"apc-no-such-program.exe\"]}");
    start_engine(f);
    id = submit(f, "ghost");
    wait_status(f, id, APC_RUN_FAILED, 10000);
    apc_win_seterr(expect, sizeof expect, ERROR_FILE_NOT_FOUND, "cannot start \"%s\"",
                   "apc-no-such-program.exe");
    assert_string_equal(row(f, id)->error, expect);
    assert_int_equal(row(f, id)->has_exit_code, 0);
    /* The attempt is recorded as starting and failing at the same instant, without a pid. */
    assert_int_equal(row(f, id)->started_at, row(f, id)->finished_at);
    assert_int_equal(row(f, id)->pid, 0);
    assert_null(row(f, id)->output_path);
}

static void failing_command_is_retried_with_doubling_backoff(void **state)
{
    fx_t *f = *state;
    size_t i;

    write_config(f, "",
                 "{\"name\": \"flaky\", \"command\": [\"cmd.exe\", \"/c\", \"exit\", \"3\"], "
                 "\"retries\": 2, \"retry_backoff\": \"500ms\"}");
    start_engine(f);
    submit(f, "flaky");
    wait_final(f, 3, 20000);
    SleepEx(300, TRUE); /* a fourth attempt would be queued by now */
    load_rows(f);
    assert_int_equal(f->nrows, 3);
    for (i = 0; i < 3; i++) {
        const apc_run_record_t *r = f->rows[i];
        assert_int_equal(r->attempt, (int)i + 1);
        assert_int_equal(r->trigger, i == 0 ? APC_TRIGGER_MANUAL : APC_TRIGGER_RETRY);
        assert_int_equal(r->status, APC_RUN_FAILED);
        assert_int_equal(r->has_exit_code, 1);
        assert_int_equal(r->exit_code, 3);
        if (i > 0) {
            /* The retry is due exactly backoff * 2^(k-1) after the previous attempt ended. */
            int64_t delay = 500 << (i - 1);
            assert_int_equal(r->scheduled_for - f->rows[i - 1]->finished_at, delay);
            assert_true(r->started_at >= r->scheduled_for);
        }
    }
}

/* Stores job_state.last_fire_at for job as a previous life of the service would have. */
static void set_last_fire(fx_t *f, const char *job, int64_t last_fire)
{
    apc_history_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_JOB_STATE;
    op.state.job = job;
    op.state.fields = APC_JS_LAST_FIRE;
    op.state.last_fire_at = last_fire;
    op.state.paused_until = APC_TIME_NONE;
    op.state.updated_at = last_fire;
    prepare_history(f, &op, 1);
}

static void missed_runs_after_downtime_give_exactly_one_catchup(void **state)
{
    fx_t *f = *state;
    int64_t last = apc_win_now_ms() - 3 * APC_MS_PER_HOUR - 30 * APC_MS_PER_MIN;

    write_config(f, "",
                 "{\"name\": \"hourly\", \"builtin\": \"noop\", \"schedule\": \"@every 1h\"}");
    set_last_fire(f, "hourly", last);
    start_engine(f);
    wait_final(f, 1, 10000);
    SleepEx(300, TRUE);
    load_rows(f);
    assert_int_equal(f->nrows, 1);
    assert_int_equal(f->rows[0]->trigger, APC_TRIGGER_CATCHUP);
    assert_int_equal(f->rows[0]->status, APC_RUN_SUCCEEDED);
    assert_int_equal(f->rows[0]->scheduled_for, last + 3 * APC_MS_PER_HOUR);
}

static void missed_policy_skip_makes_no_catchup(void **state)
{
    fx_t *f = *state;

    write_config(f, "",
                 "{\"name\": \"hourly\", \"builtin\": \"noop\", \"schedule\": \"@every 1h\", "
                 "\"missed\": \"skip\"}");
    set_last_fire(f, "hourly", apc_win_now_ms() - 3 * APC_MS_PER_HOUR - 30 * APC_MS_PER_MIN);
    start_engine(f);
    SleepEx(1000, TRUE);
    load_rows(f);
    assert_int_equal(f->nrows, 0);
}

static void missed_fire_older_than_missed_within_makes_no_catchup(void **state)
{
    fx_t *f = *state;

    write_config(f, "",
                 "{\"name\": \"hourly\", \"builtin\": \"noop\", \"schedule\": \"@every 1h\", "
                 "\"missed_within\": \"10m\"}");
    /* The latest missed fire is 30 minutes old: later than 10m. */
    set_last_fire(f, "hourly", apc_win_now_ms() - 3 * APC_MS_PER_HOUR - 30 * APC_MS_PER_MIN);
    start_engine(f);
    SleepEx(1000, TRUE);
    load_rows(f);
    assert_int_equal(f->nrows, 0);
}

static void reload_with_a_broken_config_keeps_the_old_one(void **state)
{
    fx_t *f = *state;
    call_t c;
    apc_proto_response_t resp;
    char err[256];
    char expect[1024];
    int64_t id;

    write_config(f, "", "{\"name\": \"ping\", \"builtin\": \"noop\"}");
    start_engine(f);
    write_file(f->config, "{\"jobs\": [{\"name\": \"ping\", \"builtin\": \"noop\", "
                          "\"schedule\": \"61 * * * *\"}]}\n");
    call_init(&c, APC_OP_RELOAD);
    assert_int_equal(call_run(f, &c), APC_EINVAL);
    assert_int_equal(apc_proto_response_decode(c.req.response.data, c.req.response.len,
                                               APC_OP_RELOAD, &resp, err, sizeof err),
                     0);
    assert_int_equal(resp.kind, APC_RESP_ERROR);
    snprintf(expect, sizeof expect,
             "%s:1:59: jobs[0].schedule: minute field \"61\" is out of range 0-59", f->config);
    assert_string_equal(resp.error_message, expect);
    apc_proto_response_free(&resp);
    call_free(&c);
    /* The old config still runs. */
    id = submit(f, "ping");
    wait_status(f, id, APC_RUN_SUCCEEDED, 10000);
}

static void reload_adds_and_removes_jobs(void **state)
{
    fx_t *f = *state;
    call_t c;
    apc_proto_response_t resp;
    char err[256];

    write_config(f, "", "{\"name\": \"old\", \"builtin\": \"noop\"}");
    start_engine(f);
    write_config(f, "", "{\"name\": \"new\", \"builtin\": \"noop\"}");
    call_init(&c, APC_OP_RELOAD);
    assert_int_equal(call_run(f, &c), 0);
    assert_int_equal(apc_proto_response_decode(c.req.response.data, c.req.response.len,
                                               APC_OP_RELOAD, &resp, err, sizeof err),
                     0);
    assert_string_equal(resp.message, "reloaded: 1 job(s), 1 added, 1 removed");
    apc_proto_response_free(&resp);
    call_free(&c);
    call_init(&c, APC_OP_SUBMIT);
    c.req.in.job = "old";
    assert_int_equal(call_run(f, &c), APC_ENOTFOUND);
    call_free(&c);
    wait_status(f, submit(f, "new"), APC_RUN_SUCCEEDED, 10000);
}

static void submit_of_a_disabled_job_is_refused(void **state)
{
    fx_t *f = *state;
    call_t c;
    apc_proto_response_t resp;
    char err[256];

    write_config(f, "", "{\"name\": \"off\", \"builtin\": \"noop\", \"enabled\": false}");
    start_engine(f);
    call_init(&c, APC_OP_SUBMIT);
    c.req.in.job = "off";
    assert_int_equal(call_run(f, &c), APC_ESTATE);
    assert_int_equal(apc_proto_response_decode(c.req.response.data, c.req.response.len,
                                               APC_OP_SUBMIT, &resp, err, sizeof err),
                     0);
    assert_string_equal(resp.error_message,
                        "job \"off\" is disabled (enable it in the config and reload)");
    apc_proto_response_free(&resp);
    call_free(&c);
}

static void cancel_request_ends_a_running_sleep(void **state)
{
    fx_t *f = *state;
    call_t c;
    int64_t id;

    write_config(f, "", "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"60s\"]}");
    start_engine(f);
    id = submit(f, "nap");
    wait_status(f, id, APC_RUN_RUNNING, 5000);
    call_init(&c, APC_OP_CANCEL);
    c.req.in.id = id;
    assert_int_equal(call_run(f, &c), 0);
    call_free(&c);
    wait_status(f, id, APC_RUN_CANCELLED, 5000);
    assert_string_equal(row(f, id)->error, "cancelled by tester");
}

static void graceful_stop_cancels_a_long_sleep_after_the_grace(void **state)
{
    fx_t *f = *state;
    int64_t id, stop_at;

    write_config(f, "\"shutdown_grace\": \"1s\"",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"60s\"]}");
    start_engine(f);
    id = submit(f, "nap");
    wait_status(f, id, APC_RUN_RUNNING, 5000);
    stop_at = apc_win_now_ms();
    apc_engine_stop(f->e);
    assert_int_equal(apc_engine_join(f->e, 10000), 0);
    apc_engine_free(f->e);
    f->e = NULL;
    load_rows(f);
    assert_int_equal(row(f, id)->status, APC_RUN_CANCELLED);
    assert_string_equal(row(f, id)->error, "service stopping");
    assert_true(row(f, id)->finished_at - stop_at >= 1000);
    assert_true(row(f, id)->finished_at - stop_at < 4000);
}

static void stop_cancels_runs_that_never_started(void **state)
{
    fx_t *f = *state;
    int64_t a, b;

    write_config(f, "\"workers\": 1, \"shutdown_grace\": \"0s\"",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"60s\"], "
                 "\"overlap\": \"parallel\"}");
    start_engine(f);
    a = submit(f, "nap");
    b = submit(f, "nap");
    wait_status(f, a, APC_RUN_RUNNING, 5000);
    stop_engine(f);
    load_rows(f);
    assert_int_equal(row(f, a)->status, APC_RUN_CANCELLED);
    assert_int_equal(row(f, b)->status, APC_RUN_CANCELLED);
    assert_string_equal(row(f, b)->error, "service stopping");
    assert_true(row(f, b)->started_at == APC_TIME_NONE);
}

static void runs_left_by_a_crash_become_interrupted(void **state)
{
    fx_t *f = *state;
    apc_history_op_t ops[2];
    int64_t now = apc_win_now_ms() - 60000;
    int i;

    memset(ops, 0, sizeof ops);
    for (i = 0; i < 2; i++) {
        ops[i].kind = APC_HOP_INSERT;
        ops[i].run.id = 41 + i;
        ops[i].run.job = "ping";
        ops[i].run.trigger = APC_TRIGGER_MANUAL;
        ops[i].run.status = i == 0 ? APC_RUN_QUEUED : APC_RUN_RUNNING;
        ops[i].run.queued_at = now;
        ops[i].run.started_at = i == 0 ? APC_TIME_NONE : now;
        ops[i].run.finished_at = APC_TIME_NONE;
        ops[i].run.scheduled_for = APC_TIME_NONE;
    }
    write_config(f, "", "{\"name\": \"ping\", \"builtin\": \"noop\"}");
    prepare_history(f, ops, 2);
    start_engine(f);
    load_rows(f);
    assert_int_equal(row(f, 41)->status, APC_RUN_INTERRUPTED);
    assert_string_equal(row(f, 41)->error, "service stopped while the run was queued");
    assert_int_equal(row(f, 42)->status, APC_RUN_INTERRUPTED);
    assert_string_equal(row(f, 42)->error, "service stopped while the run was running");
    /* New runs continue after the highest id. */
    assert_int_equal(submit(f, "ping"), 43);
}

static void job_apcs_never_land_on_a_busy_worker(void **state)
{
    fx_t *f = *state;
    size_t i, k;
    int max_conc = 0;

    write_config(f, "\"workers\": 4",
                 "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"200ms\"], "
                 "\"overlap\": \"parallel\"}");
    start_engine(f);
    for (i = 0; i < 20; i++)
        submit(f, "nap");
    wait_final(f, 20, 30000);
    assert_int_equal(f->nrows, 20);
    for (i = 0; i < 20; i++) {
        const apc_run_record_t *a = f->rows[i];
        int conc = 0;
        assert_int_equal(a->status, APC_RUN_SUCCEEDED);
        assert_true(a->worker >= 1 && a->worker <= 4);
        for (k = 0; k < 20; k++) {
            const apc_run_record_t *b = f->rows[k];
            int overlap = b->started_at < a->finished_at && a->started_at < b->finished_at;
            if (k != i && b->worker == a->worker)
                assert_false(overlap); /* one run at a time per worker */
            if (b->started_at <= a->started_at && a->started_at < b->finished_at)
                conc++;
        }
        if (conc > max_conc)
            max_conc = conc;
    }
    assert_true(max_conc <= 4);
}

static void status_counts_workers_and_jobs(void **state)
{
    fx_t *f = *state;
    call_t c;
    apc_proto_response_t resp;
    char err[256];

    write_config(f, "\"workers\": 3",
                 "{\"name\": \"a\", \"builtin\": \"noop\"}, {\"name\": \"b\", \"builtin\": "
                 "\"noop\"}");
    start_engine(f);
    call_init(&c, APC_OP_STATUS);
    assert_int_equal(call_run(f, &c), 0);
    assert_int_equal(apc_proto_response_decode(c.req.response.data, c.req.response.len,
                                               APC_OP_STATUS, &resp, err, sizeof err),
                     0);
    assert_int_equal(resp.status.workers, 3);
    assert_int_equal(resp.status.workers_busy, 0);
    assert_int_equal(resp.status.jobs, 2);
    assert_int_equal(resp.status.pid, (int64_t)GetCurrentProcessId());
    apc_proto_response_free(&resp);
    call_free(&c);
}

/* ---- Batched answers, noop's single report, the no_history benchmark option ------------ */

#define BURST 20

/* Posts every request without waiting, then waits alertably until all are answered. */
static void post_all_and_wait(fx_t *f, call_t *calls, int n)
{
    ULONGLONG start = GetTickCount64();
    int i, left;
    HANDLE self = NULL;

    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                                0, FALSE, DUPLICATE_SAME_ACCESS));
    for (i = 0; i < n; i++) {
        calls[i].req.reply_thread = self;
        assert_int_equal(apc_engine_post(f->e, &calls[i].req), 0);
    }
    do {
        SleepEx(100, TRUE);
        for (i = 0, left = 0; i < n; i++)
            left += calls[i].done ? 0 : 1;
    } while (left > 0 && GetTickCount64() - start < 20000);
    assert_int_equal(left, 0);
    CloseHandle(self);
}

static void a_burst_of_noop_submits_is_answered_in_order_and_every_run_recorded_whole(void **state)
{
    fx_t *f = *state;
    call_t calls[BURST];
    int i;

    write_config(f, "\"workers\": 2",
                 "{\"name\": \"ping\", \"builtin\": \"noop\", \"overlap\": \"parallel\"}");
    start_engine(f);
    for (i = 0; i < BURST; i++) {
        call_init(&calls[i], APC_OP_SUBMIT);
        calls[i].req.in.job = "ping";
    }
    post_all_and_wait(f, calls, BURST);
    /* Answered on this thread, each with its own run, ids in the order posted. */
    for (i = 0; i < BURST; i++) {
        assert_int_equal(calls[i].req.result, 0);
        assert_int_equal(calls[i].done_thread, GetCurrentThreadId());
        assert_int_equal(calls[i].req.run_id, i + 1);
        call_free(&calls[i]);
    }
    /* noop reports its start and its end in one APC: every row still went queued -> running
       -> succeeded (the store refuses a final status for a run that never ran). */
    wait_final(f, BURST, 20000);
    assert_int_equal(f->nrows, BURST);
    for (i = 0; i < BURST; i++) {
        const apc_run_record_t *r = row(f, i + 1);
        assert_int_equal(r->status, APC_RUN_SUCCEEDED);
        assert_true(r->worker == 1 || r->worker == 2);
        assert_true(r->started_at != APC_TIME_NONE);
        assert_true(r->queued_at <= r->started_at && r->started_at <= r->finished_at);
        assert_int_equal(r->pid, 0);
        assert_null(r->error);
    }
    assert_int_equal(f->hooks.n, BURST);
}

/* A second reply thread: waits alertably until told to quit (an APC). */
static volatile LONG other_quit;

static DWORD WINAPI other_reply_thread(LPVOID arg)
{
    (void)arg;
    while (!other_quit)
        SleepEx(INFINITE, TRUE);
    return 0;
}

static void CALLBACK other_quit_apc(ULONG_PTR arg)
{
    (void)arg;
    other_quit = 1;
}

/* An answer that notes, on the thread it runs on, its place among that thread's answers. */
typedef struct ocall {
    call_t c; /* first: on_done's ctx is the call_t */
    int index;
    int side; /* 0: the test thread, 1: the other reply thread */
} ocall_t;

static int order_seq[2][BURST];
static volatile LONG order_n[2];

static void on_done_ordered(apc_engine_req_t *req)
{
    ocall_t *o = req->ctx;
    LONG k = order_n[o->side];
    if (k < BURST)
        order_seq[o->side][k] = o->index;
    InterlockedExchange(&order_n[o->side], k + 1);
    o->c.done_thread = GetCurrentThreadId();
    o->c.done = 1;
}

static void answers_reach_each_reply_thread_in_the_order_posted(void **state)
{
    fx_t *f = *state;
    ocall_t calls[BURST];
    HANDLE other, self = NULL;
    DWORD other_id;
    ULONGLONG start;
    int i, k, left;

    write_config(f, "\"workers\": 1", "{\"name\": \"ping\", \"builtin\": \"noop\"}");
    start_engine(f);
    other_quit = 0;
    order_n[0] = order_n[1] = 0;
    other = CreateThread(NULL, 0, other_reply_thread, NULL, 0, &other_id);
    assert_non_null(other);
    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                                0, FALSE, DUPLICATE_SAME_ACCESS));
    /* Interleaved: even requests answer to this thread, odd ones to the other; status and
       list alternate so the answers differ. Posted back to back, they meet in few engine
       turns, where the engine groups each thread's answers into one APC. */
    for (i = 0; i < BURST; i++) {
        call_init(&calls[i].c, i % 4 < 2 ? APC_OP_STATUS : APC_OP_LIST);
        calls[i].c.req.done = on_done_ordered;
        calls[i].c.req.ctx = &calls[i];
        calls[i].index = i;
        calls[i].side = i % 2;
        calls[i].c.req.reply_thread = i % 2 == 0 ? self : other;
    }
    for (i = 0; i < BURST; i++)
        assert_int_equal(apc_engine_post(f->e, &calls[i].c.req), 0);
    start = GetTickCount64();
    do {
        SleepEx(100, TRUE);
        for (i = 0, left = 0; i < BURST; i++)
            left += calls[i].c.done ? 0 : 1;
    } while (left > 0 && GetTickCount64() - start < 20000);
    assert_int_equal(left, 0);
    for (i = 0; i < BURST; i++) {
        assert_int_equal(calls[i].c.req.result, 0);
        assert_int_equal(calls[i].c.done_thread, i % 2 == 0 ? GetCurrentThreadId() : other_id);
        assert_non_null(strstr(calls[i].c.req.response.data,
                               i % 4 < 2 ? "\"workers\":1" : "\"name\":\"ping\""));
        call_free(&calls[i].c);
    }
    for (k = 0; k < 2; k++) {
        assert_int_equal(order_n[k], BURST / 2);
        for (i = 0; i < BURST / 2; i++)
            assert_int_equal(order_seq[k][i], 2 * i + k);
    }
    assert_true(QueueUserAPC(other_quit_apc, other, 0));
    assert_int_equal(WaitForSingleObject(other, 10000), WAIT_OBJECT_0);
    CloseHandle(other);
    CloseHandle(self);
}

static void engine_without_history_runs_a_submit_and_writes_no_database(void **state)
{
    fx_t *f = *state;
    apc_engine_opts_t o;
    apc_buf_t errors = {0};
    wchar_t *w;
    int64_t id;

    write_config(f, "\"workers\": 1", "{\"name\": \"ping\", \"builtin\": \"noop\"}");
    memset(&o, 0, sizeof o);
    o.config_path = f->config;
    o.log = test_log;
    o.run_hook = hook;
    o.run_hook_ctx = &f->hooks;
    o.no_history = 1;
    assert_int_equal(apc_engine_start(&o, &f->e, &errors), 0);
    apc_buf_free(&errors);
    id = submit(f, "ping");
    assert_int_equal(id, 1);
    {
        ULONGLONG start = GetTickCount64();
        while (f->hooks.n < 1 && GetTickCount64() - start < 10000)
            SleepEx(20, TRUE);
    }
    assert_int_equal(f->hooks.n, 1);
    assert_int_equal(f->hooks.run_id[0], 1);
    stop_engine(f);
    /* Nothing was written: no history database, not even its folder's file. */
    w = apc_utf8_to_wide(f->history);
    assert_non_null(w);
    assert_int_equal(GetFileAttributesW(w), INVALID_FILE_ATTRIBUTES);
    free(w);
}

static void start_with_an_invalid_config_returns_every_error(void **state)
{
    fx_t *f = *state;
    apc_engine_opts_t o;
    apc_buf_t errors = {0};
    char expect[1024];

    write_file(f->config, "{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"schedule\": "
                          "\"61 * * * *\"},\n{\"name\": \"b\", \"builtin\": \"nope\"}]}\n");
    memset(&o, 0, sizeof o);
    o.config_path = f->config;
    assert_int_equal(apc_engine_start(&o, &f->e, &errors), APC_EINVAL);
    assert_null(f->e);
    snprintf(expect, sizeof expect,
             "%s:1:56: jobs[0].schedule: minute field \"61\" is out of range 0-59\n", f->config);
    assert_non_null(errors.data);
    assert_memory_equal(errors.data, expect, strlen(expect));
    assert_non_null(strstr(errors.data + strlen(expect), "jobs[1].builtin"));
    apc_buf_free(&errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(manual_noop_run_succeeds_on_a_worker_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_second_schedule_fires_by_itself_on_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(six_field_cron_fires_on_whole_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(overlap_skip_records_the_second_run_as_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overlap_queue_runs_the_second_after_the_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overlap_parallel_runs_both_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(overlap_replace_cancels_the_running_one, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_command_fails_with_the_system_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failing_command_is_retried_with_doubling_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missed_runs_after_downtime_give_exactly_one_catchup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missed_policy_skip_makes_no_catchup, setup, teardown),
        cmocka_unit_test_setup_teardown(missed_fire_older_than_missed_within_makes_no_catchup,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reload_with_a_broken_config_keeps_the_old_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_adds_and_removes_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(submit_of_a_disabled_job_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_request_ends_a_running_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(graceful_stop_cancels_a_long_sleep_after_the_grace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stop_cancels_runs_that_never_started, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_left_by_a_crash_become_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(job_apcs_never_land_on_a_busy_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(status_counts_workers_and_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(start_with_an_invalid_config_returns_every_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_burst_of_noop_submits_is_answered_in_order_and_every_run_recorded_whole, setup,
            teardown),
        cmocka_unit_test_setup_teardown(answers_reach_each_reply_thread_in_the_order_posted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(engine_without_history_runs_a_submit_and_writes_no_database,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
