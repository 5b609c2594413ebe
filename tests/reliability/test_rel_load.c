/*
 * test_rel_load.c - load on the REAL apcsvc.exe, each check with its figure:
 *
 *   - a burst: 1,000 manual runs submitted through the pipe from 4 client threads, all due
 *     at the same instant (at_ms), with 4 workers: every acknowledged run ends `succeeded`,
 *     none is lost, and at no moment do more than 4 run (computed from the rows' started/
 *     finished times, and per worker no two runs overlap);
 *   - a job printing 100 MiB: the output file holds exactly output_limit bytes plus the
 *     documented truncation line, and the service's private bytes (GetProcessMemoryInfo of
 *     the apcsvc process, sampled during the run) stay flat;
 *   - a job that spawns 50 grandchildren is cancelled: every one of the 51 processes ends;
 *   - the handle count of the service after load rounds does not grow. Wine's
 *     GetProcessHandleCount answers 0, so handles are counted by probing every handle value
 *     with DuplicateHandle (rel_handle_count); both numbers are printed.
 *
 * Sizes: APC_REL_BURST (default 1000), APC_REL_FLOOD_MIB (default 100), APC_REL_ROUNDS
 * (handle rounds, default 2).
 *
 * Thread: the cmocka test thread drives; submit threads only submit and record ids.
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

#include "rel_common.h"

typedef struct submitter {
    const char *name;
    const char *req;
    long count;
    int64_t *ids;
    long acked, failed;
} submitter_t;

/* Runs on a submit thread: count submits of req on one connection, recording each id. */
static DWORD WINAPI submit_main(void *arg)
{
    submitter_t *t = arg;
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP);
    long i;

    if (buf == NULL || rel_pipe_open(&p, t->name, 60000) != 0) {
        free(buf);
        t->failed = t->count;
        return 1;
    }
    for (i = 0; i < t->count; i++) {
        int64_t id = 0;
        int code = 0;
        if (rel_submit(&p, t->req, &id, &code, buf, 60000) == 1)
            t->ids[t->acked++] = id;
        else
            t->failed++;
    }
    rel_pipe_close(&p);
    free(buf);
    return 0;
}

/* Submits total runs with req from nthreads connections; returns the acknowledged ids. */
static int64_t *submit_many(const char *name, const char *req, long total, int nthreads,
                            long *acked)
{
    submitter_t t[8];
    HANDLE th[8];
    int64_t *ids = malloc((size_t)total * sizeof *ids);
    int i;

    assert_non_null(ids);
    assert_true(nthreads >= 1 && nthreads <= 8);
    *acked = 0;
    for (i = 0; i < nthreads; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = name;
        t[i].req = req;
        t[i].count = total / nthreads + (i < total % nthreads ? 1 : 0);
        t[i].ids = malloc((size_t)(t[i].count + 1) * sizeof(int64_t));
        assert_non_null(t[i].ids);
        th[i] = CreateThread(NULL, 0, submit_main, &t[i], 0, NULL);
        assert_non_null(th[i]);
    }
    for (i = 0; i < nthreads; i++) {
        assert_int_equal(WaitForSingleObject(th[i], 300000), WAIT_OBJECT_0);
        CloseHandle(th[i]);
        assert_int_equal(t[i].failed, 0);
        memcpy(ids + *acked, t[i].ids, (size_t)t[i].acked * sizeof *ids);
        *acked += t[i].acked;
        free(t[i].ids);
    }
    return ids;
}

typedef struct span {
    int64_t t;
    int delta; /* +1 start, -1 finish */
} span_t;

static int cmp_span(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->delta - y->delta; /* a finish at t before a start at t */
}

static void a_burst_of_queued_runs_is_all_recorded_with_at_most_4_running(void **state)
{
    e2e_svc_t *s = *state;
    long total = rel_param("APC_REL_BURST", 1000), acked = 0, i;
    int64_t *ids, due, max_run = 0, run = 0, first_start = 0, last_finish = 0;
    int64_t succeeded, distinct_workers, overlaps;
    char req[256], where[128];
    span_t *spans = malloc((size_t)total * 2 * sizeof *spans);
    size_t n = 0;
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    DWORD t0;

    assert_non_null(spans);
    e2e_svc_init(s, "burst");
    e2e_svc_config(s, 4,
                   "{\"name\": \"burst\", \"builtin\": \"sleep\", \"args\": [\"10ms\"], "
                   "\"overlap\": \"parallel\"}");
    e2e_svc_start(s);
    /* All due at one instant, far enough ahead that (normally) every submit lands first. */
    due = apc_win_now_ms() + 1500 + total * 7;
    (void)snprintf(req, sizeof req, "{\"v\":1,\"op\":\"submit\",\"job\":\"burst\",\"at_ms\":%lld}",
                   (long long)due);
    t0 = GetTickCount();
    ids = submit_many(s->name, req, total, 4, &acked);
    assert_int_equal(acked, total);
    print_message("%ld submits acknowledged in %lu ms; due in %lld ms\n", acked,
                  (unsigned long)(GetTickCount() - t0), (long long)(due - apc_win_now_ms()));

    (void)snprintf(where, sizeof where, "job = 'burst' AND status NOT IN ('queued','running')");
    if (rel_wait_count(s->db, where, total, 300000) != total)
        fail_msg("only %lld of %ld runs finished within 300 s", (long long)rel_count(s->db, where),
                 total);

    db = rel_db_open(s->db);
    assert_non_null(db);
    succeeded = rel_db_int(db, "SELECT count(*) FROM runs WHERE job = 'burst' AND status = "
                               "'succeeded'");
    distinct_workers = rel_db_int(db, "SELECT count(DISTINCT worker) FROM runs WHERE job = "
                                      "'burst'");
    assert_int_equal(rel_db_int(db, "SELECT count(*) FROM runs WHERE job = 'burst' AND (worker "
                                    "< 1 OR worker > 4 OR worker IS NULL)"),
                     0);
    /* Per worker, one run at a time: no two runs of a worker overlap. */
    overlaps = rel_db_int(db, "SELECT count(*) FROM runs a JOIN runs b ON a.worker = b.worker "
                              "AND a.id < b.id AND a.job = 'burst' AND b.job = 'burst' AND "
                              "a.started_at < b.finished_at AND b.started_at < a.finished_at");
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT started_at, finished_at FROM runs WHERE job = "
                                        "'burst'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && n + 2 <= (size_t)total * 2) {
        spans[n].t = sqlite3_column_int64(st, 0);
        spans[n++].delta = 1;
        spans[n].t = sqlite3_column_int64(st, 1);
        spans[n++].delta = -1;
    }
    sqlite3_finalize(st);
    /* Every acknowledged id is a burst row. */
    for (i = 0; i < acked; i++) {
        char sql[128];
        if (i % 97 != 0 && i != acked - 1)
            continue; /* a sample keeps this fast; the count below covers the rest */
        (void)snprintf(sql, sizeof sql,
                       "SELECT count(*) FROM runs WHERE id = %lld AND job = "
                       "'burst' AND \"trigger\" = 'manual'",
                       (long long)ids[i]);
        assert_int_equal(rel_db_int(db, sql), 1);
    }
    assert_int_equal(rel_db_int(db, "SELECT count(*) FROM runs WHERE job = 'burst'"), total);
    sqlite3_close(db);

    qsort(spans, n, sizeof *spans, cmp_span);
    for (i = 0; i < (long)n; i++) {
        run += spans[i].delta;
        if (run > max_run)
            max_run = run;
    }
    if (n > 0) {
        first_start = spans[0].t;
        last_finish = spans[n - 1].t;
    }
    rel_figure(
        "load.burst",
        "submitted=%ld acknowledged=%ld succeeded=%lld lost=%lld workers=4 "
        "max_running_at_once=%lld distinct_workers=%lld worker_overlaps=%lld "
        "drain_ms=%lld runs_per_s=%.0f",
        total, acked, (long long)succeeded, (long long)(acked - succeeded), (long long)max_run,
        (long long)distinct_workers, (long long)overlaps, (long long)(last_finish - first_start),
        last_finish > first_start ? (double)total * 1000.0 / (double)(last_finish - first_start)
                                  : 0.0);
    assert_int_equal(succeeded, total);
    assert_true(max_run <= 4);
    assert_true(max_run >= 2); /* the burst really ran in parallel */
    assert_int_equal(overlaps, 0);
    free(ids);
    free(spans);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void a_job_printing_100_MiB_is_capped_and_the_service_memory_stays_flat(void **state)
{
    e2e_svc_t *s = *state;
    long mib = rel_param("APC_REL_FLOOD_MIB", 100);
    int64_t bytes = (int64_t)mib * 1024 * 1024;
    char jobs[512], want_tail[160];
    apc_run_record_t *r;
    SIZE_T base_priv, base_ws, priv, ws, peak_priv = 0, peak_ws = 0;
    char *text;
    size_t len, samples = 0;
    DWORD start;

    e2e_svc_init(s, "flood");
    (void)snprintf(jobs, sizeof jobs,
                   "{\"name\": \"flood\", \"command\": [\"%%CHILD%%\", \"bytes\", \"%lld\"], "
                   "\"output_limit\": \"1MiB\", \"schedule\": \"@startup\"}",
                   (long long)bytes);
    e2e_svc_config(s, 2, jobs);
    e2e_svc_start(s);
    rel_proc_memory(s->proc.process, &base_priv, &base_ws);
    start = GetTickCount();
    for (;;) {
        apc_history_t *h = NULL;
        apc_run_record_t *row = NULL;
        char err[256];
        int done = 0;
        rel_proc_memory(s->proc.process, &priv, &ws);
        samples++;
        if (priv > peak_priv)
            peak_priv = priv;
        if (ws > peak_ws)
            peak_ws = ws;
        if (apc_history_open(s->db, APC_HISTORY_READONLY, &h, err, sizeof err) == 0) {
            if (apc_history_get_run(h, 1, &row, err, sizeof err) == 0) {
                done = apc_run_status_is_final(row->status);
                apc_run_record_free(row);
            }
            apc_history_close(h);
        }
        if (done)
            break;
        if (GetTickCount() - start > 240000)
            fail_msg("the flood run did not end within 240 s");
        Sleep(50);
    }
    r = e2e_wait_run(s->db, 1, APC_RUN_SUCCEEDED, 1000);
    text = e2e_slurp(r->output_path);
    assert_non_null(text);
    len = strlen(text);
    (void)snprintf(want_tail, sizeof want_tail,
                   "\n[apcsched: output truncated after 1048576 bytes; %lld bytes dropped]\n",
                   (long long)(bytes - 1048576));
    rel_figure("load.output_flood",
               "written=%lld file_bytes=%lu output_limit=1048576 base_private=%lu "
               "peak_private=%lu base_ws=%lu peak_ws=%lu samples=%lu seconds=%lu",
               (long long)bytes, (unsigned long)len, (unsigned long)base_priv,
               (unsigned long)peak_priv, (unsigned long)base_ws, (unsigned long)peak_ws,
               (unsigned long)samples, (unsigned long)((GetTickCount() - start) / 1000));
    assert_int_equal(len, 1048576 + strlen(want_tail));
    assert_string_equal(text + 1048576, want_tail);
    assert_memory_equal(text, "0123456789", 10);
    /* Flat: the service streams the output; it never holds more than a few buffers of it. */
    assert_true(peak_priv < base_priv + 16u * 1024u * 1024u);
    free(text);
    apc_run_record_free(r);
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void cancelling_a_job_with_50_grandchildren_ends_all_51_processes(void **state)
{
    e2e_svc_t *s = *state;
    apc_buf_t jobs = {0};
    char pidfile[MAX_PATH], pidjson[MAX_PATH * 2], req[128], *buf = malloc(REL_RESP_CAP);
    DWORD pids[51], start;
    apc_run_record_t *r;
    rel_pipe_t p;
    size_t len = 0;
    int i, alive = 0;

    assert_non_null(buf);
    e2e_svc_init(s, "tree50");
    apc_buf_printf(&jobs, "{\"name\": \"tree\", \"schedule\": \"@startup\", \"command\": "
                          "[\"%%CHILD%%\"");
    for (i = 1; i <= 50; i++) {
        (void)snprintf(pidfile, sizeof pidfile, "%s\\g%d.pid", s->dir, i);
        e2e_json_escape(pidfile, pidjson, sizeof pidjson);
        apc_buf_printf(&jobs, ", \"spawn\", \"%s\"", pidjson);
    }
    apc_buf_printf(&jobs, ", \"sleep\", \"120000\"]}");
    assert_false(apc_buf_failed(&jobs));
    e2e_svc_config(s, 1, jobs.data);
    apc_buf_free(&jobs);
    e2e_svc_start(s);

    /* All 50 grandchildren are up once the last pid file exists (they start one by one). */
    (void)snprintf(pidfile, sizeof pidfile, "%s\\g50.pid", s->dir);
    start = GetTickCount();
    for (;;) {
        char *t = e2e_slurp(pidfile);
        if (t != NULL) {
            free(t);
            break;
        }
        if (GetTickCount() - start > 180000)
            fail_msg("the 50th grandchild did not start within 180 s");
        Sleep(100);
    }
    r = e2e_wait_run(s->db, 1, APC_RUN_RUNNING, 10000);
    pids[0] = (DWORD)r->pid;
    apc_run_record_free(r);
    for (i = 1; i <= 50; i++) {
        char *t;
        (void)snprintf(pidfile, sizeof pidfile, "%s\\g%d.pid", s->dir, i);
        t = e2e_slurp(pidfile);
        assert_non_null(t);
        pids[i] = (DWORD)strtoul(t, NULL, 10);
        assert_true(pids[i] != 0);
        free(t);
    }
    for (i = 0; i <= 50; i++)
        alive += e2e_pid_alive(pids[i]);
    assert_int_equal(alive, 51);

    assert_int_equal(rel_pipe_open(&p, s->name, 30000), 0);
    (void)snprintf(req, sizeof req, "{\"v\":1,\"op\":\"cancel\",\"id\":1}");
    assert_int_equal(rel_pipe_call(&p, req, buf, REL_RESP_CAP, &len, 30000), 0);
    rel_pipe_close(&p);
    assert_non_null(strstr(buf, "\"ok\":true"));
    r = e2e_wait_run(s->db, 1, APC_RUN_CANCELLED, 60000);
    apc_run_record_free(r);
    start = GetTickCount();
    for (i = 0; i <= 50; i++)
        (void)e2e_pid_wait_gone(pids[i], 20000);
    alive = 0;
    for (i = 0; i <= 50; i++)
        alive += e2e_pid_alive(pids[i]);
    rel_figure("load.cancel_tree", "processes=51 alive_before=51 alive_after=%d gone_within_ms=%lu",
               alive, (unsigned long)(GetTickCount() - start));
    assert_int_equal(alive, 0);
    free(buf);
    assert_int_equal(e2e_svc_stop(s), 0);
}

/* One load round: 200 builtin runs and 10 process runs, all waited for. */
static void load_round(e2e_svc_t *s, int64_t *expect)
{
    long acked = 0;
    int64_t *ids;
    char where[64];

    ids = submit_many(s->name, "{\"v\":1,\"op\":\"submit\",\"job\":\"quick\"}", 200, 4, &acked);
    free(ids);
    ids = submit_many(s->name, "{\"v\":1,\"op\":\"submit\",\"job\":\"proc\"}", 10, 2, &acked);
    free(ids);
    *expect += 210;
    (void)snprintf(where, sizeof where, "status NOT IN ('queued','running')");
    if (rel_wait_count(s->db, where, *expect, 180000) < *expect)
        fail_msg("a load round did not finish within 180 s");
}

static void the_service_handle_count_does_not_grow_over_load_rounds(void **state)
{
    e2e_svc_t *s = *state;
    long rounds = rel_param("APC_REL_ROUNDS", 2), k;
    int64_t expect = 0;
    unsigned first = 0, last = 0, counts[64];
    DWORD api = 0;
    apc_buf_t list = {0};

    e2e_svc_init(s, "handles");
    e2e_svc_config(s, 4,
                   "{\"name\": \"quick\", \"builtin\": \"noop\", \"overlap\": \"parallel\"},\n"
                   "{\"name\": \"proc\", \"command\": [\"%CHILD%\", \"out\", \"hi\"], "
                   "\"overlap\": \"parallel\"}");
    e2e_svc_start(s);
    if (rounds > 60)
        rounds = 60;
    /* A warm-up round: first use allocates for good (worker stacks, SQLite caches, ...). */
    load_round(s, &expect);
    Sleep(500);
    first = rel_handle_count(s->proc.process, 0x8000);
    for (k = 0; k < rounds; k++) {
        load_round(s, &expect);
        Sleep(500);
        counts[k] = rel_handle_count(s->proc.process, 0x8000);
        apc_buf_printf(&list, "%s%u", k == 0 ? "" : ",", counts[k]);
        last = counts[k];
    }
    (void)GetProcessHandleCount(s->proc.process, &api);
    assert_false(apc_buf_failed(&list));
    rel_figure("load.handles",
               "after_warmup=%u after_rounds=[%s] growth=%d runs=%lld "
               "GetProcessHandleCount=%lu%s",
               first, list.data, (int)last - (int)first, (long long)expect, (unsigned long)api,
               rel_under_wine() ? " (Wine answers 0: counted by DuplicateHandle probing)" : "");
    apc_buf_free(&list);
    assert_true(first > 0);
    /* A leak of one handle per run would add 210 per round; allow a little slack for
       lazily created system objects. */
    assert_true(last <= first + 8);
    assert_int_equal(e2e_svc_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_burst_of_queued_runs_is_all_recorded_with_at_most_4_running, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_job_printing_100_MiB_is_capped_and_the_service_memory_stays_flat, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            cancelling_a_job_with_50_grandchildren_ends_all_51_processes, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(the_service_handle_count_does_not_grow_over_load_rounds,
                                        e2e_svc_setup, e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
