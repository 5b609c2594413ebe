/*
 * bench_core.c - benchmarks of the portable core: history writes (group commit against one
 * transaction per record) and the scale of a 10k/50k/100k-job config (load + validate time,
 * heap per job, resident memory, next() cost).
 *
 * Why a separate program: these figures matter natively (the core's own speed) AND under Wine
 * (the service's file I/O goes through Wine there), so the same source is built both ways:
 * by tools/bench/CMakeLists.txt as apcbench_core.exe and by tools/bench/run with the native
 * compiler. It prints bench_stats.h result lines only.
 *
 * Usage: apcbench_core history|scale|smoke [--quick]
 * Threads: single-threaded.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#include <process.h>
#include <psapi.h>
#else
#include <unistd.h>
#endif

#include "apc_config.h"
#include "apc_error.h"
#include "apc_history.h"
#include "apc_schedule.h"
#include "apc_str.h"
#include "apc_tz.h"
#include "bench_stats.h"

/* 2026-01-15T10:00:00Z: a fixed "now" so next() does the same work on every run. */
#define FIXED_NOW_MS INT64_C(1768471200000)

static int quick;

/* A file name in the temporary folder, unique to this process. */
static void temp_path(char *out, size_t outsz, const char *name)
{
#ifdef _WIN32
    char dir[MAX_PATH];
    DWORD n = GetTempPathA(MAX_PATH, dir);
    if (n == 0 || n >= MAX_PATH)
        snprintf(dir, sizeof dir, ".\\");
    snprintf(out, outsz, "%sapcbench-%d-%s", dir, _getpid(), name);
#else
    const char *dir = getenv("TMPDIR");
    snprintf(out, outsz, "%s/apcbench-%d-%s", dir != NULL && dir[0] != '\0' ? dir : "/tmp",
             (int)getpid(), name);
#endif
}

/* Resident memory of this process in bytes (working set on Windows, VmRSS elsewhere). */
static double resident_bytes(void)
{
#ifdef _WIN32
    PROCESS_MEMORY_COUNTERS pmc;
    if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc))
        return -1.0;
    return (double)pmc.WorkingSetSize;
#else
    char line[256];
    double kb = -1.0;
    FILE *fp = fopen("/proc/self/status", "r");
    if (fp == NULL)
        return -1.0;
    while (fgets(line, sizeof line, fp) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtod(line + 6, NULL);
    fclose(fp);
    return kb * 1024.0;
#endif
}

static void remove_db(const char *path)
{
    char side[600];
    remove(path);
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
}

/* ---- History writes -------------------------------------------------------------------- */

static apc_history_op_t make_op(int64_t id)
{
    apc_history_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    op.run.id = id;
    op.run.job = "bench";
    op.run.trigger = APC_TRIGGER_MANUAL;
    op.run.status = APC_RUN_SUCCEEDED;
    op.run.attempt = 1;
    op.run.queued_at = FIXED_NOW_MS + id;
    op.run.started_at = FIXED_NOW_MS + id + 1;
    op.run.finished_at = FIXED_NOW_MS + id + 2;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.has_exit_code = 1;
    op.run.exit_code = 0;
    op.run.submitted_by = "BENCH\\user";
    op.run.worker = 1;
    op.run.pid = 4242;
    op.run.output_tail = "ok\n";
    return op;
}

/*
 * Group commit against one transaction per record, both with the store's own settings (WAL,
 * synchronous=FULL), interleaved A/B in rounds so that noise hits both alike.
 */
static int bench_history(void)
{
    enum { BATCH = 256 };
    char path[512], err[512];
    apc_history_t *h = NULL;
    apc_history_op_t *ops = NULL;
    bench_samples_t single = {0}, group = {0};
    int64_t next_id = 1;
    int rounds = quick ? 2 : 5, per_round_single = quick ? 10 : 60,
        per_round_batches = quick ? 2 : 20;
    int r, i, k, rc = 1;
    double t0, s_rate, g_rate;

    temp_path(path, sizeof path, "history.db");
    remove_db(path);
    if (apc_history_open(path, APC_HISTORY_READWRITE, &h, err, sizeof err) != 0) {
        fprintf(stderr, "history: %s\n", err);
        goto cleanup;
    }
    ops = calloc(BATCH, sizeof *ops);
    if (ops == NULL)
        goto cleanup;
    for (r = 0; r < rounds; r++) {
        /* A: one transaction (one fsync) per record; samples are microseconds per record. */
        for (i = 0; i < per_round_single; i++) {
            apc_history_op_t op = make_op(next_id++);
            t0 = bench_now_us();
            if (apc_history_write(h, &op, 1, err, sizeof err) != 0) {
                fprintf(stderr, "history: %s\n", err);
                goto cleanup;
            }
            if (bench_samples_add(&single, bench_now_us() - t0) != 0)
                goto cleanup;
        }
        /* B: BATCH records per transaction; samples are microseconds per record. */
        for (i = 0; i < per_round_batches; i++) {
            for (k = 0; k < BATCH; k++)
                ops[k] = make_op(next_id++);
            t0 = bench_now_us();
            if (apc_history_write(h, ops, BATCH, err, sizeof err) != 0) {
                fprintf(stderr, "history: %s\n", err);
                goto cleanup;
            }
            if (bench_samples_add(&group, (bench_now_us() - t0) / BATCH) != 0)
                goto cleanup;
        }
    }
    bench_result("history", "batch_size", BATCH, "records");
    bench_summary("history", "per_record_txn_us", &single, "us");
    bench_summary("history", "group_commit_us_per_record", &group, "us");
    s_rate = 1e6 / bench_quantile(&single, 0.5);
    g_rate = 1e6 / bench_quantile(&group, 0.5);
    bench_result("history", "per_record.rate", s_rate, "records/s");
    bench_result("history", "group.rate", g_rate, "records/s");
    bench_result("history", "group_vs_per_record", g_rate / s_rate, "x");
    rc = 0;
cleanup:
    apc_history_close(h);
    remove_db(path);
    free(ops);
    bench_samples_free(&single);
    bench_samples_free(&group);
    return rc;
}

/* ---- Scale ------------------------------------------------------------------------------- */

static const char *const schedules[] = {
    "*/5 * * * *", "0 3 * * *", "15,45 8-18 * * MON-FRI", "@hourly",
    "@every 15m",  "0 0 1 * *", "30 2 * * SUN",           "0 */2 * * *",
};

/* Writes a config with n jobs to path. Returns 0 or -1. */
static int write_config(const char *path, size_t n)
{
    size_t i;
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        return -1;
    fprintf(fp, "{\"service\": {\"history\": \"history.db\"},\n\"jobs\": [\n");
    for (i = 0; i < n; i++)
        fprintf(fp,
                "{\"name\": \"job%06zu\", \"command\": [\"C:\\\\apps\\\\tool.exe\", \"--task\", "
                "\"%zu\"], \"schedule\": \"%s\", \"timezone\": \"UTC\"}%s\n",
                i, i, schedules[i % (sizeof schedules / sizeof schedules[0])],
                i + 1 < n ? "," : "");
    fprintf(fp, "]}\n");
    return fclose(fp) == 0 ? 0 : -1;
}

static int scale_one(size_t n, const char *tag)
{
    char path[512], metric[128];
    apc_config_t *cfg = NULL;
    apc_diags_t diags;
    bench_samples_t load = {0}, next = {0}, rss = {0};
    size_t total = 0, strings = 0, i;
    int rep, reps = quick ? 1 : 3, rc = 1;

    memset(&diags, 0, sizeof diags);
    temp_path(path, sizeof path, "scale.json");
    if (write_config(path, n) != 0) {
        fprintf(stderr, "scale: cannot write %s\n", path);
        goto cleanup;
    }
    for (rep = 0; rep < reps; rep++) {
        double r0 = resident_bytes(), t0 = bench_now_us(), t1;
        int lrc = apc_config_load(path, &cfg, &diags);
        t1 = bench_now_us();
        if (lrc != 0) {
            apc_buf_t b = {0};
            apc_diags_format(&diags, &b);
            fprintf(stderr, "scale: %s\n", b.data != NULL ? b.data : apc_strerror(lrc));
            apc_buf_free(&b);
            goto cleanup;
        }
        /* Resident growth of the first load only: later loads reuse the pages the allocator
           kept from the one before. */
        if (bench_samples_add(&load, (t1 - t0) / 1000.0) != 0 ||
            (rep == 0 && bench_samples_add(&rss, resident_bytes() - r0) != 0))
            goto cleanup;
        if (rep + 1 < reps) {
            apc_config_free(cfg);
            cfg = NULL;
        }
        apc_diags_free(&diags);
    }
    apc_config_memory(cfg, &total, &strings);
    for (rep = 0; rep < (quick ? 1 : 5); rep++) {
        double t0 = bench_now_us();
        for (i = 0; i < cfg->njobs; i++) {
            const apc_job_config_t *j = &cfg->jobs[i];
            int64_t at = 0;
            if (apc_schedule_next(&j->schedule, FIXED_NOW_MS, apc_config_job_tz(cfg, j, NULL),
                                  &at) != 0) {
                fprintf(stderr, "scale: next() failed for %s\n", j->name);
                goto cleanup;
            }
        }
        if (bench_samples_add(&next, (bench_now_us() - t0) * 1000.0 / (double)cfg->njobs) != 0)
            goto cleanup;
    }
    snprintf(metric, sizeof metric, "%s.jobs", tag);
    bench_result("scale", metric, (double)n, "jobs");
    snprintf(metric, sizeof metric, "%s.load_ms", tag);
    bench_result("scale", metric, bench_quantile(&load, 0.5), "ms");
    snprintf(metric, sizeof metric, "%s.heap_bytes", tag);
    bench_result("scale", metric, (double)total, "bytes");
    snprintf(metric, sizeof metric, "%s.string_bytes", tag);
    bench_result("scale", metric, (double)strings, "bytes");
    snprintf(metric, sizeof metric, "%s.heap_per_job_beyond_strings", tag);
    bench_result("scale", metric, (double)(total - strings) / (double)n, "bytes");
    snprintf(metric, sizeof metric, "%s.rss_growth_bytes", tag);
    bench_result("scale", metric, bench_quantile(&rss, 0.5), "bytes");
    snprintf(metric, sizeof metric, "%s.rss_per_job", tag);
    bench_result("scale", metric, bench_quantile(&rss, 0.5) / (double)n, "bytes");
    snprintf(metric, sizeof metric, "%s.next_ns_per_job", tag);
    bench_result("scale", metric, bench_quantile(&next, 0.5), "ns");
    rc = 0;
cleanup:
    apc_config_free(cfg);
    apc_diags_free(&diags);
    remove(path);
    bench_samples_free(&load);
    bench_samples_free(&next);
    bench_samples_free(&rss);
    return rc;
}

static int bench_scale(void)
{
    if (quick)
        return scale_one(1000, "jobs1k") != 0 || scale_one(2000, "jobs2k") != 0;
    return scale_one(10000, "jobs10k") != 0 || scale_one(50000, "jobs50k") != 0 ||
           scale_one(100000, "jobs100k") != 0;
}

int main(int argc, char **argv)
{
    int i, rc = 0;
    const char *what = argc > 1 ? argv[1] : "";

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: apcbench_core history|scale|smoke [--quick]\n");
            return 2;
        }
    }
    if (strcmp(what, "smoke") == 0) {
        quick = 1;
        rc = bench_history() != 0 || bench_scale() != 0;
    } else if (strcmp(what, "history") == 0) {
        rc = bench_history();
    } else if (strcmp(what, "scale") == 0) {
        rc = bench_scale();
    } else {
        fprintf(stderr, "usage: apcbench_core history|scale|smoke [--quick]\n");
        return 2;
    }
    if (fflush(stdout) != 0)
        rc = 1;
    return rc != 0 ? 1 : 0;
}
