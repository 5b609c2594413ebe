/*
 * test_apcctl_svc.c - the REAL apcctl.exe against a REAL `apcsvc.exe run --config <temp>`:
 * both are child processes, apcctl talks to the service over its real control pipe, and the
 * service writes a real SQLite file that the test reads back read-only. Each test checks what
 * README.md (section apcctl) promises an operator: the exact output, the exit code, and the row in the
 * history database.
 *
 * Every test gets its own service instance (a unique name, so a unique pipe and stop event,
 * and a private folder); the fixture's teardown stops it even when the test failed half-way.
 * Waits poll with deadlines; nothing assumes how fast Wine is under load.
 *
 * Thread: the cmocka test thread; the service, apcctl and the jobs are separate processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_history.h"
#include "apc_str.h"
#include "e2e_harness.h"
#include "win_util.h"

/*
 * The jobs most tests use. "seven" prints "hello" and exits 7; "slow" would sleep a minute but
 * has a 1 s timeout; "nap" is a 30 s builtin sleep; "ok" succeeds at once; "echo" prints its
 * arguments and accepts extra ones. None is scheduled, so nothing runs unless a test asks.
 */
static const char base_jobs[] =
    "{\"name\": \"seven\", \"command\": [\"%CHILD%\", \"out\", \"hello\", \"exit\", \"7\"]},\n"
    "{\"name\": \"slow\", \"command\": [\"%CHILD%\", \"sleep\", \"60000\"], \"timeout\": \"1s\"},\n"
    "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"30s\"]},\n"
    "{\"name\": \"ok\", \"builtin\": \"noop\", \"overlap\": \"parallel\"},\n"
    "{\"name\": \"echo\", \"command\": [\"%CHILD%\", \"argv\"], \"allow_args\": true}";

/* Starts a service with base_jobs plus extra (NULL for none) and 2 workers. */
static void start_with(e2e_svc_t *s, const char *extra)
{
    apc_buf_t jobs = {0};

    e2e_svc_init(s, "ctl");
    apc_buf_printf(&jobs, "%s%s%s", base_jobs, extra != NULL ? ",\n" : "",
                   extra != NULL ? extra : "");
    assert_false(apc_buf_failed(&jobs));
    e2e_svc_config(s, 2, jobs.data);
    apc_buf_free(&jobs);
    e2e_svc_start(s);
}

/* Runs `apcctl --service <name> <args>` (printf-style) to its end. */
static e2e_result_t ctl(const e2e_svc_t *s, const char *fmt, ...)
{
    char args[4096];
    char line[4200];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    (void)snprintf(line, sizeof line, "--service %s %s", s->name, args);
    return e2e_run(E2E_APCCTL, line);
}

/* Parses apcctl's one-line JSON output and checks the envelope {"v":1,"ok":true,...}. */
static cJSON *parse_ok(const char *text)
{
    cJSON *j = cJSON_Parse(text);

    if (j == NULL)
        fail_msg("not JSON: %s", text);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "v")->valueint, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    return j;
}

static double num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!cJSON_IsNumber(v))
        fail_msg("\"%s\" is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!cJSON_IsString(v))
        fail_msg("\"%s\" is not a string", key);
    return v->valuestring;
}

/* Submits a run of job and returns its id (stdout is exactly the id and a newline). */
static int64_t submit(const e2e_svc_t *s, const char *job_and_opts)
{
    e2e_result_t r = ctl(s, "run %s", job_and_opts);
    char want[32];
    long long id;

    if (r.code != 0)
        fail_msg("apcctl run %s exited %lu: %s", job_and_opts, (unsigned long)r.code, r.err);
    id = strtoll(r.out, NULL, 10);
    (void)snprintf(want, sizeof want, "%lld\n", id);
    assert_true(id > 0);
    assert_string_equal(r.out, want);
    e2e_result_free(&r);
    return (int64_t)id;
}

/* ---- status and list -------------------------------------------------------------------------- */

static void status_shows_the_running_service_and_exits_0(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    char want[256];

    start_with(s, NULL);
    r = ctl(s, "status");
    assert_int_equal(r.code, 0);
    (void)snprintf(want, sizeof want, "service  %s: running, pid %lu, version 0.1.0\n", s->name,
                   (unsigned long)s->proc.pid);
    assert_memory_equal(r.out, want, strlen(want));
    assert_non_null(strstr(r.out, "\nworkers  0 busy, 2 idle, 2 in all\n"));
    assert_non_null(strstr(r.out, "\njobs     5\n"));
    assert_non_null(strstr(r.out, "\nruns     0 running, 0 queued\n"));
    assert_string_equal(r.err, "");
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void status_json_has_the_documented_shape(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    cJSON *j;
    const cJSON *st;
    int64_t before = apc_win_now_ms();

    start_with(s, NULL);
    r = ctl(s, "status --json");
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    st = cJSON_GetObjectItemCaseSensitive(j, "status");
    assert_true(cJSON_IsObject(st));
    assert_string_equal(str(st, "version"), "0.1.0");
    assert_true(num(st, "pid") == (double)s->proc.pid);
    assert_true(num(st, "started_at") >= (double)(before - 1000));
    assert_true(num(st, "now") >= num(st, "started_at"));
    assert_true(num(st, "workers") == 2);
    assert_true(num(st, "workers_busy") == 0);
    assert_true(num(st, "jobs") == 5);
    assert_true(num(st, "queued") == 0);
    assert_true(num(st, "running") == 0);
    /* One line: the service's answer unchanged. */
    assert_true(strchr(r.out, '\n') == r.out + strlen(r.out) - 1);
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void list_json_gives_every_job_with_its_next_run(void **state)
{
    e2e_svc_t *s = *state;
    static const char *const names[] = {"seven", "slow", "nap", "ok", "echo", "daily"};
    e2e_result_t r;
    cJSON *j;
    const cJSON *jobs, *job;
    int i = 0;
    int64_t now = apc_win_now_ms();

    start_with(s, "{\"name\": \"daily\", \"builtin\": \"noop\", \"schedule\": \"0 3 * * *\", "
                  "\"timezone\": \"UTC\"}");
    r = ctl(s, "list --json");
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    jobs = cJSON_GetObjectItemCaseSensitive(j, "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 6);
    cJSON_ArrayForEach(job, jobs)
    {
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(job, "next_run");
        assert_string_equal(str(job, "name"), names[i]);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "enabled")));
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(job, "paused")));
        assert_true(num(job, "running") == 0);
        if (i == 5) {
            /* The next 03:00 UTC: a whole hour of the day, within the next 24 h. */
            assert_string_equal(str(job, "schedule"), "0 3 * * *");
            assert_true(cJSON_IsNumber(next));
            assert_true(next->valuedouble > (double)now);
            assert_true(next->valuedouble <= (double)(now + 86400000));
            assert_true((int64_t)next->valuedouble % 86400000 == 3 * 3600000);
        } else {
            /* Manual-only jobs have no schedule and no next run. */
            assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(job, "schedule")));
            assert_true(cJSON_IsNull(next));
        }
        i++;
    }
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- run ----------------------------------------------------------------------------------- */

static void run_prints_the_run_id_and_the_row_is_a_manual_run(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;
    char want[128];

    start_with(s, NULL);
    r = ctl(s, "run ok");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "1\n");
    (void)snprintf(want, sizeof want, "apcctl: run 1 of job ok queued, due ");
    assert_memory_equal(r.err, want, strlen(want));
    e2e_result_free(&r);

    row = e2e_wait_run(s->db, 1, APC_RUN_SUCCEEDED, 30000);
    assert_string_equal(row->job, "ok");
    assert_int_equal(row->trigger, APC_TRIGGER_MANUAL);
    assert_non_null(row->submitted_by);
    assert_true(row->scheduled_for == APC_TIME_NONE);
    apc_run_record_free(row);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void run_json_answers_with_the_id(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    cJSON *j;
    int64_t before = apc_win_now_ms();

    start_with(s, NULL);
    r = ctl(s, "run ok --json");
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    assert_true(num(j, "id") == 1);
    assert_string_equal(str(j, "job"), "ok");
    assert_true(num(j, "due_at") >= (double)(before - 1000));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "wait")));
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void run_wait_exits_with_the_jobs_code_7_and_prints_its_output(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;
    char want[128];

    start_with(s, NULL);
    r = ctl(s, "run seven --wait");
    assert_int_equal(r.code, 7);
    assert_string_equal(r.out, "1\nhello\n");
    (void)snprintf(want, sizeof want, "\napcctl: run 1 failed (exit code 7) after ");
    assert_non_null(strstr(r.err, want));
    e2e_result_free(&r);

    row = e2e_wait_run(s->db, 1, APC_RUN_FAILED, 1000);
    assert_true(row->has_exit_code);
    assert_int_equal(row->exit_code, 7);
    assert_string_equal(row->output_tail, "hello\n");
    apc_run_record_free(row);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void run_wait_for_a_timed_out_run_exits_124(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;

    start_with(s, NULL);
    r = ctl(s, "run slow --wait");
    assert_int_equal(r.code, 124);
    assert_string_equal(r.out, "1\n");
    assert_non_null(strstr(r.err, "\napcctl: run 1 timed_out "));
    assert_non_null(strstr(r.err, ": timed out after 1000 ms\n"));
    e2e_result_free(&r);
    row = e2e_wait_run(s->db, 1, APC_RUN_TIMED_OUT, 1000);
    assert_string_equal(row->error, "timed out after 1000 ms");
    apc_run_record_free(row);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void run_with_args_is_refused_for_a_job_without_allow_args(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    e2e_rows_t rows = {{0}, 0};

    start_with(s, NULL);
    r = ctl(s, "run seven -- extra");
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "apcctl: job \"seven\" does not take arguments (allow_args is "
                               "false) (EINVAL)\n");
    e2e_result_free(&r);
    /* Refused before anything was recorded. */
    assert_int_equal(e2e_rows_load(s->db, NULL, &rows), 0);
    assert_int_equal(rows.n, 0);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void run_with_args_appends_them_for_a_job_with_allow_args(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;

    start_with(s, NULL);
    r = ctl(s, "run echo --wait -- \"two words\" last");
    assert_int_equal(r.code, 0);
    /* argv[0] is the program's path as Windows gives it; the extra ones come after. */
    assert_memory_equal(r.out, "1\n", 2);
    assert_non_null(strstr(r.out, "apchelper_child.exe\nargv\ntwo words\nlast\n"));
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- cancel ---------------------------------------------------------------------------------- */

static void cancel_of_a_queued_run_records_it_cancelled_by_the_caller(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;
    char want[256];
    int64_t id;

    start_with(s, NULL);
    id = submit(s, "ok --in 1h");
    row = e2e_wait_run(s->db, id, APC_RUN_QUEUED, 1000);
    apc_run_record_free(row);
    r = ctl(s, "cancel %lld", (long long)id);
    assert_int_equal(r.code, 0);
    e2e_result_free(&r);
    row = e2e_wait_run(s->db, id, APC_RUN_CANCELLED, 30000);
    assert_non_null(row->submitted_by);
    (void)snprintf(want, sizeof want, "cancelled by %s", row->submitted_by);
    assert_string_equal(row->error, want);
    assert_true(row->started_at == APC_TIME_NONE);
    apc_run_record_free(row);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void cancel_of_a_running_run_ends_it(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;
    char want[64];
    int64_t id;

    start_with(s, NULL);
    id = submit(s, "nap");
    row = e2e_wait_run(s->db, id, APC_RUN_RUNNING, 30000);
    apc_run_record_free(row);
    r = ctl(s, "cancel %lld", (long long)id);
    assert_int_equal(r.code, 0);
    (void)snprintf(want, sizeof want, "cancelling run %lld\n", (long long)id);
    assert_string_equal(r.out, want);
    e2e_result_free(&r);
    /* Far sooner than the 30 s the nap would take. */
    row = e2e_wait_run(s->db, id, APC_RUN_CANCELLED, 20000);
    assert_true(row->finished_at - row->started_at < 20000);
    apc_run_record_free(row);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void cancel_of_a_finished_run_exits_1(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_run_record_t *row;
    char want[128];
    int64_t id;

    start_with(s, NULL);
    id = submit(s, "ok");
    row = e2e_wait_run(s->db, id, APC_RUN_SUCCEEDED, 30000);
    apc_run_record_free(row);
    r = ctl(s, "cancel %lld", (long long)id);
    assert_int_equal(r.code, 1);
    (void)snprintf(want, sizeof want, "apcctl: run %lld is not queued or running (ENOTFOUND)\n",
                   (long long)id);
    assert_string_equal(r.err, want);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- history, show, logs ------------------------------------------------------------------- */

/* Runs "seven" to its end (exit 7, output "hello") and returns its id. */
static int64_t seven_done(e2e_svc_t *s)
{
    e2e_result_t r;

    start_with(s, NULL);
    r = ctl(s, "run seven --wait");
    assert_int_equal(r.code, 7);
    e2e_result_free(&r);
    return 1;
}

static void history_lists_the_run_as_a_table_and_as_json(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    cJSON *j;
    const cJSON *runs, *run;
    int64_t id = seven_done(s);

    r = ctl(s, "history seven");
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.out, "ID  JOB    STATUS  TRIGGER  QUEUED", 34);
    assert_non_null(strstr(r.out, "\n1   seven  failed  manual   "));
    assert_memory_equal(r.out + strlen(r.out) - 3, " 7\n", 3);
    e2e_result_free(&r);

    r = ctl(s, "history seven --json");
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    runs = cJSON_GetObjectItemCaseSensitive(j, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 1);
    run = cJSON_GetArrayItem(runs, 0);
    assert_true(num(run, "id") == (double)id);
    assert_string_equal(str(run, "job"), "seven");
    assert_string_equal(str(run, "status"), "failed");
    assert_string_equal(str(run, "trigger"), "manual");
    assert_true(num(run, "exit_code") == 7);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "more")));
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void show_gives_the_whole_run_as_text_and_as_json(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    cJSON *j;
    const cJSON *run;
    int64_t id = seven_done(s);

    r = ctl(s, "show %lld", (long long)id);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.out,
                        "run           1\njob           seven\nstatus        failed\n"
                        "trigger       manual (attempt 1)\n",
                        strlen("run           1\njob           seven\nstatus        failed\n"
                               "trigger       manual (attempt 1)\n"));
    assert_non_null(strstr(r.out, "\nexit code     7 (0x00000007)\n"));
    assert_non_null(strstr(r.out, "\n--- output (end) ---\nhello\n"));
    e2e_result_free(&r);

    r = ctl(s, "show %lld --json", (long long)id);
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    run = cJSON_GetObjectItemCaseSensitive(j, "run");
    assert_true(num(run, "id") == (double)id);
    assert_string_equal(str(run, "output_tail"), "hello\n");
    assert_true(num(run, "exit_code") == 7);
    assert_true(num(run, "worker") >= 1);
    assert_true(num(run, "pid") > 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(run, "error")));
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void logs_prints_the_captured_output_as_text_and_as_json(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    cJSON *j;
    int64_t id = seven_done(s);

    r = ctl(s, "logs %lld", (long long)id);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "hello\n");
    assert_string_equal(r.err, "");
    e2e_result_free(&r);

    r = ctl(s, "logs %lld --json", (long long)id);
    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    assert_true(num(j, "id") == (double)id);
    assert_string_equal(str(j, "data"), "hello\n");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
    cJSON_Delete(j);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- reload ---------------------------------------------------------------------------------- */

static int list_has_job(const e2e_svc_t *s, const char *name)
{
    e2e_result_t r = ctl(s, "list --json");
    cJSON *j;
    const cJSON *job;
    int found = 0;

    assert_int_equal(r.code, 0);
    j = parse_ok(r.out);
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(j, "jobs"))
    {
        if (strcmp(str(job, "name"), name) == 0)
            found = 1;
    }
    cJSON_Delete(j);
    e2e_result_free(&r);
    return found;
}

static void reload_after_editing_the_config_lists_the_new_job(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    apc_buf_t jobs = {0};

    start_with(s, NULL);
    assert_false(list_has_job(s, "fresh"));
    apc_buf_printf(&jobs, "%s,\n{\"name\": \"fresh\", \"builtin\": \"noop\"}", base_jobs);
    e2e_svc_config(s, 2, jobs.data);
    apc_buf_free(&jobs);

    r = ctl(s, "reload");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "reloaded: 6 job(s), 1 added, 0 removed\n");
    e2e_result_free(&r);
    assert_true(list_has_job(s, "fresh"));
    assert_int_equal(submit(s, "fresh"), 1);
    apc_run_record_free(e2e_wait_run(s->db, 1, APC_RUN_SUCCEEDED, 30000));
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void reload_of_a_broken_config_exits_1_and_the_old_config_keeps_running(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    char want[1024];

    start_with(s, NULL);
    e2e_write_file(s->config, "{\"service\": {\"name\": \"x\"},\n"
                              " \"jobs\": [{\"name\": \"fresh\", \"builtin\": \"noop\", "
                              "\"retries\": 101}]}\n");
    r = ctl(s, "reload");
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    (void)snprintf(want, sizeof want,
                   "apcctl: %s:2:59: jobs[0].retries: expected an integer 0-100, got 101 "
                   "(EINVAL)\n",
                   s->config);
    assert_string_equal(r.err, want);
    e2e_result_free(&r);

    /* Still the old jobs, and they still run. */
    assert_false(list_has_job(s, "fresh"));
    assert_true(list_has_job(s, "seven"));
    r = ctl(s, "run ok --wait");
    assert_int_equal(r.code, 0);
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- pause and resume ---------------------------------------------------------------------- */

static void pause_for_2s_holds_scheduled_runs_until_it_ends(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;
    e2e_rows_t rows = {{0}, 0};
    int64_t paused_at, until = 0;
    DWORD start;
    size_t i;
    int after = 0;

    start_with(s, "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"}");
    paused_at = apc_win_now_ms();
    r = ctl(s, "pause tick --for 2s --json");
    assert_int_equal(r.code, 0);
    {
        cJSON *j = parse_ok(r.out);
        assert_memory_equal(str(j, "message"), "job tick paused until ",
                            strlen("job tick paused until "));
        cJSON_Delete(j);
    }
    e2e_result_free(&r);

    /* list shows the pause and its end. */
    r = ctl(s, "list --json");
    {
        cJSON *j = parse_ok(r.out);
        const cJSON *job;
        cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(j, "jobs"))
        {
            if (strcmp(str(job, "name"), "tick") != 0)
                continue;
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "paused")));
            until = (int64_t)num(job, "paused_until");
        }
        cJSON_Delete(j);
    }
    e2e_result_free(&r);
    assert_true(until >= paused_at + 2000 && until <= apc_win_now_ms() + 2000);

    /* No scheduled run for a fire time inside the pause; after it ends, runs resume. */
    start = GetTickCount();
    while (!after) {
        if (e2e_rows_load(s->db, "tick", &rows) == 0)
            for (i = 0; i < rows.n; i++) {
                const apc_run_record_t *row = rows.r[i];
                if (row->scheduled_for > until && row->status == APC_RUN_SUCCEEDED)
                    after = 1;
                if (row->scheduled_for > paused_at + 500 && row->scheduled_for < until - 100)
                    fail_msg("run %lld fired at %lld, inside the pause %lld..%lld",
                             (long long)row->id, (long long)row->scheduled_for,
                             (long long)paused_at, (long long)until);
            }
        if (GetTickCount() - start > 60000)
            fail_msg("tick did not run again within 60 s of pausing it for 2 s");
        if (!after)
            Sleep(100);
    }
    e2e_rows_free(&rows);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void resume_ends_a_pause(void **state)
{
    e2e_svc_t *s = *state;
    e2e_result_t r;

    start_with(s, NULL);
    r = ctl(s, "pause nap");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "job nap paused\n");
    e2e_result_free(&r);
    r = ctl(s, "resume nap");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "job nap resumed\n");
    e2e_result_free(&r);
    r = ctl(s, "list --json");
    {
        cJSON *j = parse_ok(r.out);
        const cJSON *job;
        cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(j, "jobs"))
        {
            assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(job, "paused")));
        }
        cJSON_Delete(j);
    }
    e2e_result_free(&r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* ---- Many clients at once ----------------------------------------------------------------- */

#define LANES 8
#define ROUNDS 10

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void eight_concurrent_clients_submit_80_runs_each_recorded_once(void **state)
{
    e2e_svc_t *s = *state;
    e2e_proc_t procs[LANES];
    int64_t ids[LANES * ROUNDS], db_ids[LANES * ROUNDS];
    e2e_rows_t rows = {{0}, 0};
    char args[128];
    size_t n = 0, i, k, round, lane;
    DWORD start;

    start_with(s, NULL);
    (void)snprintf(args, sizeof args, "--service %s run ok", s->name);
    /* 8 apcctl processes at a time, 10 times: 80 submits racing over the pipe. */
    for (round = 0; round < ROUNDS; round++) {
        for (lane = 0; lane < LANES; lane++)
            e2e_proc_start(&procs[lane], E2E_APCCTL, args);
        for (lane = 0; lane < LANES; lane++) {
            if (!e2e_proc_wait(&procs[lane], E2E_CMD_MS))
                fail_msg("apcctl run did not end within %u ms", E2E_CMD_MS);
            if (procs[lane].code != 0)
                fail_msg("apcctl run exited %lu: %s", (unsigned long)procs[lane].code,
                         procs[lane].err);
            ids[n++] = strtoll(procs[lane].out, NULL, 10);
            e2e_proc_free(&procs[lane]);
        }
    }
    qsort(ids, n, sizeof ids[0], cmp_id);
    for (i = 0; i < n; i++) {
        assert_true(ids[i] > 0);
        if (i > 0 && ids[i] == ids[i - 1])
            fail_msg("run id %lld was given twice", (long long)ids[i]);
    }

    /* Every acknowledged run is in the database exactly once, and all of them finish. */
    start = GetTickCount();
    for (;;) {
        assert_int_equal(e2e_rows_load(s->db, "ok", &rows), 0);
        if (rows.n == n && e2e_rows_count(&rows, APC_RUN_SUCCEEDED) == n)
            break;
        if (rows.n > n)
            fail_msg("%zu rows for %zu submits", rows.n, n);
        if (GetTickCount() - start > 60000)
            fail_msg("after 60 s: %zu rows, %zu succeeded, of %zu", rows.n,
                     e2e_rows_count(&rows, APC_RUN_SUCCEEDED), n);
        Sleep(100);
    }
    for (k = 0; k < rows.n; k++) {
        db_ids[k] = rows.r[k]->id;
        assert_int_equal(rows.r[k]->trigger, APC_TRIGGER_MANUAL);
    }
    qsort(db_ids, rows.n, sizeof db_ids[0], cmp_id);
    for (k = 0; k < n; k++)
        assert_int_equal(db_ids[k], ids[k]);
    e2e_rows_free(&rows);
    assert_int_equal(e2e_svc_stop(s), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, e2e_svc_setup, e2e_svc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(status_shows_the_running_service_and_exits_0),
        T(status_json_has_the_documented_shape),
        T(list_json_gives_every_job_with_its_next_run),
        T(run_prints_the_run_id_and_the_row_is_a_manual_run),
        T(run_json_answers_with_the_id),
        T(run_wait_exits_with_the_jobs_code_7_and_prints_its_output),
        T(run_wait_for_a_timed_out_run_exits_124),
        T(run_with_args_is_refused_for_a_job_without_allow_args),
        T(run_with_args_appends_them_for_a_job_with_allow_args),
        T(cancel_of_a_queued_run_records_it_cancelled_by_the_caller),
        T(cancel_of_a_running_run_ends_it),
        T(cancel_of_a_finished_run_exits_1),
        T(history_lists_the_run_as_a_table_and_as_json),
        T(show_gives_the_whole_run_as_text_and_as_json),
        T(logs_prints_the_captured_output_as_text_and_as_json),
        T(reload_after_editing_the_config_lists_the_new_job),
        T(reload_of_a_broken_config_exits_1_and_the_old_config_keeps_running),
        T(pause_for_2s_holds_scheduled_runs_until_it_ends),
        T(resume_ends_a_pause),
        T(eight_concurrent_clients_submit_80_runs_each_recorded_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
