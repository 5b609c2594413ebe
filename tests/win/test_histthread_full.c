/*
 * test_histthread_full.c - the REAL history thread (apc_histthread_start) on a full disk.
 * The disk-full shim of tests/unit/full_vfs.h is the default VFS of this process, so the
 * thread's own apc_history_open uses it: while the flag is set every write of the database
 * files fails with SQLITE_FULL.
 *
 * What is specified here: records that arrive while the disk is full stay pending and are not
 * acknowledged (the committed counter does not move, so no submit could be answered); the
 * failure is logged (through the apc_elog_t sink, the line the service also sends to the event
 * log) with SQLite's text; once the disk has room the thread writes every record once within
 * its retry backoff and logs "writing works again"; beyond APC_HIST_MAX_PENDING records the
 * excess is dropped AND counted in the log AND never acknowledged (regression: the committed
 * counter used to jump over dropped records, so a submit whose row was dropped was answered
 * "ok"); the records given up at stop are never acknowledged either. A failure streak is one
 * ERROR, then at most one reminder per interval, then one INFO - arriving records trigger no
 * attempt of their own (regression: one ERROR and one doomed transaction per record); a stop
 * tries at once and then keeps trying for APC_HIST_STOP_GIVE_UP_MS.
 *
 * This test process plays the engine: it calls add / flush / stop, and the thread's ack APC
 * is queued to it (it waits alertably). SQLite's cache spill is turned off for every
 * connection (an auto extension): a full disk during a spill is blamed on one record by
 * apc_history_write (reported separately); this file is about the history thread.
 *
 * Thread: the cmocka main thread is the "engine"; the sink runs on the history thread.
 */
#include <windows.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../unit/full_vfs.h"
#include "apc_error.h"
#include "apc_history.h"
#include "histthread.h"

#define T0 INT64_C(1700000000000)
#define MAX_LINES 64

/* ---- The log sink (called on the history thread) ------------------------------------------ */

static CRITICAL_SECTION log_lock;
static char *log_lines[MAX_LINES];
static int log_count;

static void sink(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    EnterCriticalSection(&log_lock);
    if (log_count < MAX_LINES)
        log_lines[log_count++] = _strdup(msg);
    LeaveCriticalSection(&log_lock);
}

static void log_reset(void)
{
    int i;

    EnterCriticalSection(&log_lock);
    for (i = 0; i < log_count; i++)
        free(log_lines[i]);
    log_count = 0;
    LeaveCriticalSection(&log_lock);
}

/* How many lines start with prefix; *first (may be NULL) gets a copy of the first one. */
static int log_lines_starting(const char *prefix, char *first, size_t firstsz)
{
    int i, n = 0;

    EnterCriticalSection(&log_lock);
    for (i = 0; i < log_count; i++) {
        if (log_lines[i] != NULL && strncmp(log_lines[i], prefix, strlen(prefix)) == 0) {
            if (n == 0 && first != NULL)
                (void)snprintf(first, firstsz, "%s", log_lines[i]);
            n++;
        }
    }
    LeaveCriticalSection(&log_lock);
    return n;
}

static void log_dump(void)
{
    int i;

    EnterCriticalSection(&log_lock);
    for (i = 0; i < log_count; i++)
        print_message("log: %s\n", log_lines[i] != NULL ? log_lines[i] : "(no memory)");
    LeaveCriticalSection(&log_lock);
}

/* ---- The "engine" side ---------------------------------------------------------------------- */

static volatile LONG acks;

static void CALLBACK ack(ULONG_PTR arg)
{
    (void)arg;
    InterlockedIncrement(&acks);
}

typedef struct fixture {
    char path[MAX_PATH];
    HANDLE me; /* this thread, for the ack APC */
    apc_histthread_t *h;
    apc_hist_boot_t boot;
} fixture_t;

/* Waits alertably (so acks run) for at most ms, or until committed reaches want. */
static DWORD wait_committed(fixture_t *f, uint64_t want, DWORD ms)
{
    DWORD start = GetTickCount();

    while (apc_histthread_committed(f->h) < want && GetTickCount() - start < ms)
        (void)SleepEx(10, TRUE);
    return GetTickCount() - start;
}

static void pump(DWORD ms)
{
    DWORD start = GetTickCount();

    while (GetTickCount() - start < ms)
        (void)SleepEx(10, TRUE);
}

/* The reminder interval the next setup gives the thread (0: the default, 10 minutes). */
static DWORD next_reminder_ms;

static int setup(void **state)
{
    static int n;
    fixture_t *f = calloc(1, sizeof *f);
    apc_histthread_opts_t o;
    char err[512];
    int rc;

    assert_non_null(f);
    (void)snprintf(f->path, sizeof f->path, "histthread_full_%d.db", ++n);
    (void)DeleteFileA(f->path);
    (void)snprintf(err, sizeof err, "%s-wal", f->path);
    (void)DeleteFileA(err);
    full_vfs_set_full(0);
    log_reset();
    acks = 0;
    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(),
                                &f->me, 0, FALSE, DUPLICATE_SAME_ACCESS));
    memset(&o, 0, sizeof o);
    o.db_path = f->path;
    o.now_ms = T0;
    o.log.fn = sink;
    o.ack_thread = f->me;
    o.ack_fn = ack;
    o.reminder_ms = next_reminder_ms;
    next_reminder_ms = 0;
    rc = apc_histthread_start(&o, &f->h, &f->boot, err, sizeof err);
    if (rc != 0)
        print_error("start: %s\n", err);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int setup_reminder_every_second(void **state)
{
    next_reminder_ms = 1000;
    return setup(state);
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    full_vfs_set_full(0);
    if (f->h != NULL) {
        (void)apc_histthread_stop(f->h);
        (void)WaitForSingleObject(apc_histthread_handle(f->h), 30000);
    }
    apc_histthread_free(f->h);
    apc_hist_boot_free(&f->boot);
    CloseHandle(f->me);
    (void)DeleteFileA(f->path);
    free(f);
    log_reset();
    return 0;
}

/* Adds queued inserts for run ids first..first+n-1; returns the last sequence number. */
static uint64_t add_runs(fixture_t *f, int64_t first, size_t n)
{
    apc_history_op_t op;
    uint64_t seq = 0;
    size_t i;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    op.run.job = "j";
    op.run.trigger = APC_TRIGGER_MANUAL;
    op.run.status = APC_RUN_QUEUED;
    op.run.started_at = APC_TIME_NONE;
    op.run.finished_at = APC_TIME_NONE;
    op.run.scheduled_for = APC_TIME_NONE;
    for (i = 0; i < n; i++) {
        op.run.id = first + (int64_t)i;
        op.run.queued_at = T0 + op.run.id;
        assert_int_equal(apc_histthread_add(f->h, &op, &seq), 0);
    }
    assert_int_equal(apc_histthread_flush(f->h), 0);
    return seq;
}

static int64_t db_int(const fixture_t *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The failure line, exactly: the count, the path, SQLite's text and code, the step. */
static void assert_failure_logged(const fixture_t *f, size_t n)
{
    char want[400], got[1024];

    (void)snprintf(want, sizeof want,
                   "history: write of %zu record(s) failed: %s: database or disk is full "
                   "(SQLITE_FULL, 13) while committing a batch",
                   n, f->path);
    got[0] = '\0';
    if (log_lines_starting("history: write of ", got, sizeof got) < 1 || strcmp(got, want) != 0)
        log_dump();
    assert_string_equal(got, want);
}

/* ---- Tests ------------------------------------------------------------------------------------ */

static void test_records_stay_pending_and_unacknowledged_while_the_disk_is_full(void **state)
{
    fixture_t *f = *state;
    long refused = full_vfs_refusals();
    uint64_t last;

    full_vfs_set_full(1);
    last = add_runs(f, 1, 5);
    assert_int_equal(last, 5);
    pump(1000);
    /* Nothing may be claimed as written: no submit could be answered. */
    assert_int_equal(apc_histthread_committed(f->h), 0);
    assert_true(full_vfs_refusals() > refused);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 0);
    assert_failure_logged(f, 5);
    /* Retried with a backoff of 100, 200, 400 ms...: within 1 s up to 5 attempts, but only the
       first failure of the streak is logged (one event-log entry, not one per attempt). */
    assert_int_equal(log_lines_starting("history: write of ", NULL, 0), 1);
    assert_int_equal(log_lines_starting("history: writing works again", NULL, 0), 0);

    /* More records keep arriving and join the pending ones, without a line of their own. */
    last = add_runs(f, 6, 2);
    pump(300);
    assert_int_equal(apc_histthread_committed(f->h), 0);
    assert_int_equal(log_lines_starting("history: write of ", NULL, 0), 1);
}

/* How many of the log lines contain needle. */
static int log_lines_containing(const char *needle)
{
    int i, n = 0;

    EnterCriticalSection(&log_lock);
    for (i = 0; i < log_count; i++)
        n += log_lines[i] != NULL && strstr(log_lines[i], needle) != NULL;
    LeaveCriticalSection(&log_lock);
    return n;
}

/*
 * A streak of about 4 s with a record arriving every 20 ms: arrivals trigger no attempt (the
 * retry timer does: attempts at about 0, 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s), the first failure
 * is one ERROR, the reminders (every 1 s here) name the attempt count, and the recovery is one
 * INFO counting every record, each written once.
 */
static void
test_a_failure_streak_logs_its_start_reminders_and_its_end_not_every_attempt(void **state)
{
    fixture_t *f = *state;
    char want[200], got[1024];
    DWORD start;
    int64_t n = 0;
    uint64_t last = 0;

    full_vfs_set_full(1);
    start = GetTickCount();
    while (GetTickCount() - start < 4000) {
        last = add_runs(f, ++n, 1);
        (void)SleepEx(20, TRUE);
    }
    assert_true(n >= 100);
    assert_int_equal(apc_histthread_committed(f->h), 0);
    full_vfs_set_full(0);
    (void)wait_committed(f, last, 10000);
    assert_int_equal(apc_histthread_committed(f->h), last);
    print_message("%lld records in %lu ms\n", (long long)n,
                  (unsigned long)(GetTickCount() - start));
    if (log_lines_starting("history: ", NULL, 0) != 4)
        log_dump();
    assert_int_equal(log_lines_starting("history: write of ", NULL, 0), 1);
    assert_int_equal(log_lines_starting("history: still failing after ", NULL, 0), 2);
    got[0] = '\0';
    (void)log_lines_starting("history: still failing after ", got, sizeof got);
    assert_true(strncmp(got, "history: still failing after 5 attempts over ", 45) == 0);
    (void)snprintf(want, sizeof want,
                   ": %s: database or disk is full (SQLITE_FULL, 13) while committing a batch; ",
                   f->path);
    assert_int_equal(log_lines_containing(want), 2);
    assert_int_equal(log_lines_starting("history: still failing after 6 attempts over ", NULL, 0),
                     1);
    (void)snprintf(want, sizeof want, "; %lld record(s) written", (long long)n);
    assert_int_equal(log_lines_starting("history: writing works again after ", NULL, 0), 1);
    assert_int_equal(log_lines_containing(want), 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), n);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT id) FROM runs"), n);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), n);
}

/* A stop does not wait for the retry timer: it tries at once, so a disk that has room again
   is written before the backoff's next attempt (here 1.5 s away) would come. */
static void test_a_stop_while_failing_tries_at_once(void **state)
{
    fixture_t *f = *state;
    DWORD start, w;

    full_vfs_set_full(1);
    (void)add_runs(f, 1, 3);
    pump(1600); /* attempts at about 0, 0.1, 0.3, 0.7 and 1.5 s: the next at 3.1 s */
    assert_int_equal(apc_histthread_committed(f->h), 0);
    full_vfs_set_full(0);
    start = GetTickCount();
    assert_int_equal(apc_histthread_stop(f->h), 0);
    w = WaitForSingleObject(apc_histthread_handle(f->h), 5000);
    assert_int_equal(w, WAIT_OBJECT_0);
    print_message("ended %lu ms after the stop\n", (unsigned long)(GetTickCount() - start));
    assert_true(GetTickCount() - start < 800);
    pump(50);
    assert_int_equal(apc_histthread_committed(f->h), 3);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 3);
}

static void test_every_record_is_written_once_when_the_disk_has_room_again(void **state)
{
    fixture_t *f = *state;
    uint64_t last;
    DWORD ms;

    full_vfs_set_full(1);
    last = add_runs(f, 1, 20);
    pump(1600); /* attempts at about 0, 100, 300, 700, 1500 ms: the next is 1.6 s later */
    assert_int_equal(apc_histthread_committed(f->h), 0);
    full_vfs_set_full(0);
    /* The next retry is at most the current backoff (1.6 s here, 30 s at most) away. */
    ms = wait_committed(f, last, 5000);
    print_message("written %lu ms after the disk had room\n", (unsigned long)ms);
    assert_int_equal(apc_histthread_committed(f->h), last);
    assert_true(ms <= 3500);
    assert_true(acks >= 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 20);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT id) FROM runs"), 20);
    assert_int_equal(db_int(f, "SELECT min(id) FROM runs"), 1);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), 20);
    assert_int_equal(log_lines_starting("history: writing works again", NULL, 0), 1);

    /* And the thread is back to normal: a new record is written and acknowledged at once. */
    last = add_runs(f, 21, 1);
    (void)wait_committed(f, last, 5000);
    assert_int_equal(apc_histthread_committed(f->h), last);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 21);
}

static void test_records_beyond_the_bound_are_dropped_counted_and_never_acknowledged(void **state)
{
    fixture_t *f = *state;
    const size_t over = 3;
    uint64_t last, later;
    char want[200];

    full_vfs_set_full(1);
    last = add_runs(f, 1, APC_HIST_MAX_PENDING + over);
    assert_int_equal(last, APC_HIST_MAX_PENDING + over);
    pump(500);
    assert_int_equal(apc_histthread_committed(f->h), 0);
    full_vfs_set_full(0);
    (void)wait_committed(f, APC_HIST_MAX_PENDING, 20000);
    pump(500); /* room for a wrong jump past the dropped records */

    /* The first APC_HIST_MAX_PENDING records are written; the 3 newest are dropped, counted
       in the log, and not acknowledged: committed stops just below the first dropped one. */
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), APC_HIST_MAX_PENDING);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), APC_HIST_MAX_PENDING);
    assert_int_equal(apc_histthread_committed(f->h), APC_HIST_MAX_PENDING);
    (void)snprintf(want, sizeof want,
                   "history: %zu record(s) dropped: more than %u waiting for the database", over,
                   APC_HIST_MAX_PENDING);
    assert_int_equal(log_lines_starting(want, NULL, 0), 1);
    (void)snprintf(want, sizeof want, "history: record %u and later ones are not acknowledged",
                   APC_HIST_MAX_PENDING + 1);
    assert_int_equal(log_lines_starting(want, NULL, 0), 1);

    /* A later record is written, yet the counter never jumps over the dropped ones. */
    later = add_runs(f, (int64_t)last + 1, 1);
    pump(500);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), APC_HIST_MAX_PENDING + 1);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), (int64_t)later);
    assert_int_equal(apc_histthread_committed(f->h), APC_HIST_MAX_PENDING);
}

static void test_records_given_up_at_stop_are_never_acknowledged(void **state)
{
    fixture_t *f = *state;
    uint64_t last;
    DWORD w, start;

    last = add_runs(f, 1, 2);
    (void)wait_committed(f, last, 5000);
    assert_int_equal(apc_histthread_committed(f->h), 2);
    full_vfs_set_full(1);
    (void)add_runs(f, 3, 2);
    start = GetTickCount();
    assert_int_equal(apc_histthread_stop(f->h), 0);
    w = WaitForSingleObject(apc_histthread_handle(f->h), APC_HIST_STOP_GIVE_UP_MS + 35000);
    assert_int_equal(w, WAIT_OBJECT_0);
    /* It kept trying for the whole give-up time, and not (much) longer. */
    print_message("gave up %lu ms after the stop\n", (unsigned long)(GetTickCount() - start));
    assert_in_range(GetTickCount() - start, APC_HIST_STOP_GIVE_UP_MS - 50,
                    APC_HIST_STOP_GIVE_UP_MS + 2000);
    pump(50);
    assert_int_equal(apc_histthread_committed(f->h), 2);
    assert_int_equal(
        log_lines_starting("history: stopping: 2 record(s) could not be written and are lost", NULL,
                           0),
        1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 2);
}

/* Every connection of this process: no cache spill, so a full disk fails at COMMIT. */
static int no_spill(sqlite3 *db, const char **msg, const struct sqlite3_api_routines *api)
{
    (void)msg;
    (void)api;
    return sqlite3_exec(db, "PRAGMA cache_spill = OFF", NULL, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_records_stay_pending_and_unacknowledged_while_the_disk_is_full, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_every_record_is_written_once_when_the_disk_has_room_again, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_records_beyond_the_bound_are_dropped_counted_and_never_acknowledged, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_records_given_up_at_stop_are_never_acknowledged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_failure_streak_logs_its_start_reminders_and_its_end_not_every_attempt,
            setup_reminder_every_second, teardown),
        cmocka_unit_test_setup_teardown(test_a_stop_while_failing_tries_at_once, setup, teardown),
    };
    int rc;

    InitializeCriticalSection(&log_lock);
    if (full_vfs_install() != SQLITE_OK ||
        sqlite3_auto_extension((void (*)(void))no_spill) != SQLITE_OK) {
        fprintf(stderr, "cannot install the disk-full VFS shim\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    DeleteCriticalSection(&log_lock);
    return rc;
}
