/*
 * test_rel_crash.c - crash consistency of the REAL apcsvc.exe, in the way SQLite tests crash
 * safety: do real work, kill the process hard at random moments, recover, and prove from the
 * database that nothing acknowledged was lost and nothing was made twice.
 *
 * The run: N client threads submit manual runs through the control pipe without pause (a
 * no-op job and a 300 ms sleep job), while scheduled jobs fire every second (a builtin no-op,
 * a 6-field cron job that sleeps 1.5 s, and a real child process every 2 s). At random
 * moments the service is ended with TerminateProcess (no cleanup at all: what a crash, a
 * `taskkill /f` or a power cut leaves behind) and started again. Every fifth kill lands
 * during start-up itself, 0-600 ms after the process started (before the control pipe
 * exists: possibly in the middle of recovery).
 *
 * What is proved, after every kill point and at the end:
 *   - PRAGMA integrity_check of the file the crash left is "ok";
 *   - every restart reaches a running service (its control pipe exists);
 *   - after a restart, no row from before the kill is still queued or running: rows that were
 *     in flight are `interrupted`;
 *   - every ACKNOWLEDGED submit (the client read an id) has exactly its row: same id, same job,
 *     trigger manual; no id was acknowledged twice;
 *   - no extra rows: manual rows - acknowledged <= submits whose answer was lost in a crash
 *     (those may or may not have been committed before the kill: both are correct);
 *   - the last instance stops cleanly (exit 0).
 *
 * Sizes: APC_REL_KILLS kill points (CTest 5, campaign >= 30), APC_REL_CLIENTS client threads
 * (CTest 3, campaign 8), APC_REL_SEED the random seed (printed, so a failure can be replayed).
 *
 * Thread: the cmocka test thread drives the service; the clients are threads of this test
 * process that only count and record ids (no cmocka asserts off the test thread).
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

typedef struct acked {
    int64_t id;
    int job; /* 0 = work, 1 = nap */
} acked_t;

typedef struct client {
    const char *name;
    volatile LONG *stop;
    unsigned seed;
    acked_t *acked;
    size_t nacked, cap;
    long sent, in_doubt, refused, connects;
    int oom;
} client_t;

static const char *const job_names[2] = {"work", "nap"};

/* Runs on a client thread: submit, record the acknowledged id, reconnect after a crash. */
static DWORD WINAPI client_main(void *arg)
{
    client_t *c = arg;
    rel_pipe_t p;
    int connected = 0;
    char *buf = malloc(REL_RESP_CAP);

    if (buf == NULL) {
        c->oom = 1;
        return 1;
    }
    while (InterlockedCompareExchange(c->stop, 0, 0) == 0) {
        int job, rc, errcode;
        int64_t id;
        char req[128];

        if (!connected) {
            if (rel_pipe_open(&p, c->name, 300) != 0)
                continue;
            connected = 1;
            c->connects++;
        }
        job = rel_rand(&c->seed) % 3 == 0 ? 1 : 0;
        (void)snprintf(req, sizeof req, "{\"v\":1,\"op\":\"submit\",\"job\":\"%s\"}",
                       job_names[job]);
        c->sent++;
        rc = rel_submit(&p, req, &id, &errcode, buf, 60000);
        if (rc == 1) {
            if (c->nacked == c->cap) {
                size_t cap = c->cap != 0 ? c->cap * 2 : 1024;
                acked_t *a = realloc(c->acked, cap * sizeof *a);
                if (a == NULL) {
                    c->oom = 1;
                    break;
                }
                c->acked = a;
                c->cap = cap;
            }
            c->acked[c->nacked].id = id;
            c->acked[c->nacked].job = job;
            c->nacked++;
        } else if (rc == 0) {
            c->refused++; /* an error answer (a stopping service says EBUSY): nothing made */
        } else {
            c->in_doubt++; /* no answer: the service died with the request in hand */
            rel_pipe_close(&p);
            connected = 0;
        }
    }
    if (connected)
        rel_pipe_close(&p);
    free(buf);
    return 0;
}

static int cmp_acked(const void *a, const void *b)
{
    int64_t x = ((const acked_t *)a)->id, y = ((const acked_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* Rows from before the last kill (id <= max_id) that are still queued or running. */
static int64_t stale_rows(const char *db, int64_t max_id)
{
    char where[128];

    (void)snprintf(where, sizeof where, "id <= %lld AND status IN ('queued','running')",
                   (long long)max_id);
    return rel_count(db, where);
}

static void start_and_check_recovery(e2e_svc_t *s, int64_t max_id)
{
    e2e_svc_start(s);
    /* The pipe exists only after recovery: every row from before the kill is final now. */
    if (max_id > 0 && stale_rows(s->db, max_id) != 0)
        fail_msg("after a restart %lld row(s) with id <= %lld are still queued or running",
                 (long long)stale_rows(s->db, max_id), (long long)max_id);
}

static void every_acknowledged_submit_survives_hard_kills_exactly_once(void **state)
{
    e2e_svc_t *s = *state;
    long kills = rel_param("APC_REL_KILLS", 5);
    long nclients = rel_param("APC_REL_CLIENTS", 3);
    unsigned seed = (unsigned)rel_param("APC_REL_SEED", (long)(GetTickCount() | 1u));
    const unsigned seed0 = seed; /* printed, so that a failure can be replayed */
    volatile LONG stop = 0;
    client_t *clients = calloc((size_t)nclients, sizeof *clients);
    HANDLE *threads = calloc((size_t)nclients, sizeof *threads);
    acked_t *all = NULL;
    size_t nall = 0, i, j;
    long k, startup_kills = 0, sent = 0, in_doubt = 0, refused = 0;
    int64_t max_id = 0, inflight_at_kills = 0, manual, total, interrupted, scheduled,
            acked_lost = 0;
    char jobs[2048], integrity[256], args[MAX_PATH + 32];
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    DWORD t0 = GetTickCount();

    assert_non_null(clients);
    assert_non_null(threads);
    print_message("crash campaign: %ld kill points, %ld clients, seed %u\n", kills, nclients,
                  seed0);

    e2e_svc_init(s, "crash");
    (void)snprintf(
        jobs, sizeof jobs, "%s",
        "{\"name\": \"work\", \"builtin\": \"noop\", \"overlap\": \"parallel\"},\n"
        "{\"name\": \"nap\", \"builtin\": \"sleep\", \"args\": [\"300ms\"], \"overlap\": "
        "\"parallel\"},\n"
        "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"},\n"
        "{\"name\": \"sec\", \"builtin\": \"sleep\", \"args\": [\"1500ms\"], \"schedule\": "
        "\"* * * * * *\", \"timezone\": \"UTC\", \"overlap\": \"parallel\"},\n"
        "{\"name\": \"proc\", \"command\": [\"%CHILD%\", \"sleep\", \"400\"], \"schedule\": "
        "\"@every 2s\"}");
    e2e_svc_config(s, 4, jobs);
    (void)snprintf(args, sizeof args, "run --config \"%s\"", s->config);

    for (i = 0; i < (size_t)nclients; i++) {
        clients[i].name = s->name;
        clients[i].stop = &stop;
        clients[i].seed = seed + 7919u * (unsigned)(i + 1);
        threads[i] = CreateThread(NULL, 0, client_main, &clients[i], 0, NULL);
        assert_non_null(threads[i]);
    }

    for (k = 0; k < kills; k++) {
        DWORD delay;
        if (k % 5 == 4) {
            /* Every fifth kill point is during start-up: the process runs, the pipe does not
               exist yet (recovery may be half done). */
            e2e_proc_start(&s->proc, E2E_APCSVC, args);
            delay = rel_rand(&seed) % 600;
            startup_kills++;
        } else {
            start_and_check_recovery(s, max_id);
            delay = 200 + rel_rand(&seed) % 2000;
        }
        Sleep(delay);
        if (!TerminateProcess(s->proc.process, 137))
            fail_msg("TerminateProcess: error %lu", (unsigned long)GetLastError());
        assert_true(e2e_proc_wait(&s->proc, E2E_STOP_MS));
        e2e_proc_free(&s->proc);

        rel_db_integrity(s->db, integrity, sizeof integrity);
        if (strcmp(integrity, "ok") != 0)
            fail_msg("kill point %ld (after %lu ms): integrity_check says %s", k + 1,
                     (unsigned long)delay, integrity);
        db = rel_db_open(s->db);
        assert_non_null(db);
        max_id = rel_db_int(db, "SELECT coalesce(max(id), 0) FROM runs");
        inflight_at_kills +=
            rel_db_int(db, "SELECT count(*) FROM runs WHERE status IN ('queued','running')");
        sqlite3_close(db);
    }

    /* The last instance: recovery checked, a little more work, then the clients stop. */
    start_and_check_recovery(s, max_id);
    Sleep(1000);
    InterlockedExchange(&stop, 1);
    for (i = 0; i < (size_t)nclients; i++) {
        assert_int_equal(WaitForSingleObject(threads[i], 120000), WAIT_OBJECT_0);
        CloseHandle(threads[i]);
        assert_false(clients[i].oom);
        sent += clients[i].sent;
        in_doubt += clients[i].in_doubt;
        refused += clients[i].refused;
        nall += clients[i].nacked;
    }
    assert_int_equal(e2e_svc_stop(s), 0);
    e2e_proc_free(&s->proc);
    /* Once more, so that what the clean stop left queued is settled by recovery too. */
    db = rel_db_open(s->db);
    assert_non_null(db);
    max_id = rel_db_int(db, "SELECT coalesce(max(id), 0) FROM runs");
    sqlite3_close(db);
    start_and_check_recovery(s, max_id);
    assert_int_equal(e2e_svc_stop(s), 0);

    /* Every acknowledged id once, and each has its row with its job. */
    all = malloc((nall + 1) * sizeof *all);
    assert_non_null(all);
    for (i = 0, nall = 0; i < (size_t)nclients; i++)
        for (j = 0; j < clients[i].nacked; j++)
            all[nall++] = clients[i].acked[j];
    qsort(all, nall, sizeof *all, cmp_acked);
    for (i = 1; i < nall; i++)
        if (all[i].id == all[i - 1].id)
            fail_msg("run id %lld was acknowledged to two submits", (long long)all[i].id);

    db = rel_db_open(s->db);
    assert_non_null(db);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id, job, \"trigger\" FROM runs WHERE \"trigger\" "
                                        "= 'manual' ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    i = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *job = (const char *)sqlite3_column_text(st, 1);
        while (i < nall && all[i].id < id) {
            print_error("acknowledged run %lld (%s) has no manual row\n", (long long)all[i].id,
                        job_names[all[i].job]);
            acked_lost++;
            i++;
        }
        if (i < nall && all[i].id == id) {
            if (strcmp(job, job_names[all[i].job]) != 0)
                fail_msg("acknowledged run %lld was a submit of %s, its row says %s", (long long)id,
                         job_names[all[i].job], job);
            i++;
        }
    }
    acked_lost += (int64_t)(nall - i);
    sqlite3_finalize(st);
    manual = rel_db_int(db, "SELECT count(*) FROM runs WHERE \"trigger\" = 'manual'");
    total = rel_db_int(db, "SELECT count(*) FROM runs");
    interrupted = rel_db_int(db, "SELECT count(*) FROM runs WHERE status = 'interrupted'");
    scheduled = rel_db_int(db, "SELECT count(*) FROM runs WHERE \"trigger\" <> 'manual'");
    assert_int_equal(rel_db_int(db, "SELECT count(*) FROM runs WHERE status IN "
                                    "('queued','running')"),
                     0);
    sqlite3_close(db);
    rel_db_integrity(s->db, integrity, sizeof integrity);

    rel_figure("crash",
               "kill_points=%ld startup_kills=%ld clients=%ld seed=%u submits_sent=%ld "
               "acknowledged=%zu in_doubt=%ld refused=%ld rows=%lld manual_rows=%lld "
               "scheduled_rows=%lld in_flight_at_kills=%lld interrupted=%lld "
               "acknowledged_lost=%lld unacknowledged_committed=%lld integrity=%s seconds=%lu",
               kills, startup_kills, nclients, seed0, sent, nall, in_doubt, refused,
               (long long)total, (long long)manual, (long long)scheduled,
               (long long)inflight_at_kills, (long long)interrupted, (long long)acked_lost,
               (long long)(manual - (int64_t)nall), integrity,
               (unsigned long)((GetTickCount() - t0) / 1000));

    assert_int_equal(acked_lost, 0);
    assert_string_equal(integrity, "ok");
    /* Submits in doubt may or may not have been committed; nothing beyond them exists. */
    assert_true(manual >= (int64_t)nall);
    assert_true(manual - (int64_t)nall <= in_doubt);
    /* The campaign did real work: acknowledged submits and scheduled runs on every side. */
    assert_true(nall > 0);
    assert_true(scheduled > 0);

    for (i = 0; i < (size_t)nclients; i++)
        free(clients[i].acked);
    free(all);
    free(clients);
    free(threads);
    e2e_svc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_acknowledged_submit_survives_hard_kills_exactly_once,
                                        e2e_svc_setup, e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
