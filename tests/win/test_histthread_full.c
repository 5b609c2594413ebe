/*
 * test_histthread_full.c - the REAL history thread (apc_histthread_start) on a full disk.
 * The disk-full shim of tests/unit/full_vfs.h is the default VFS of this process, so the
 * thread's own apc_history_open uses it: while the flag is set every write of the database
 * files fails with SQLITE_FULL.
 *
 * What is specified here: records that arrive while the disk is full stay pending and are not
 * acknowledged (no acknowledgement moves `done`, so no submit could be answered); the
 * failure is logged (through the apc_elog_t sink, the line the service also sends to the event
 * log) with SQLite's text; once the disk has room the thread writes every record once within
 * its retry backoff and logs "writing works again"; beyond the pending bound (max_pending,
 * made small here) the excess is dropped AND counted in the log AND reported lost in the
 * acknowledgement that covers it (regression: the records used to be acknowledged as written,
 * so a submit whose row was dropped was answered "ok"); records written after an overflow are
 * acknowledged (regression: after the first drop nothing was ever acknowledged again until a
 * restart); the records given up at stop are reported lost too. A failure streak is one
 * ERROR, then at most one reminder per interval, then one INFO - arriving records trigger no
 * attempt of their own (regression: one ERROR and one doomed transaction per record); a stop
 * tries at once and then keeps trying for APC_HIST_STOP_GIVE_UP_MS. Then the same through the
 * real engine: after an overflow, submits whose rows were dropped get the error, the others
 * (before, during and after) "ok".
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
#include "apc_protocol.h"
#include "apc_str.h"
#include "engine.h"
#include "histthread.h"
#include "test_fs.h"
#include "win_util.h"

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

/* What the acknowledgements said (the ack APC runs on this thread, so no lock). */
#define MAX_LOST 16
static volatile LONG acks;
static uint64_t acked_done;             /* the highest `done` so far */
static int done_went_back;              /* 1: an acknowledgement had a lower `done` */
static apc_hist_range_t lost[MAX_LOST]; /* every lost range of every acknowledgement, in order */
static size_t nlost;

static void CALLBACK ack(ULONG_PTR arg)
{
    const apc_hist_ack_t *a = (const apc_hist_ack_t *)arg;
    size_t i;

    InterlockedIncrement(&acks);
    if (a->done < acked_done)
        done_went_back = 1;
    acked_done = a->done;
    for (i = 0; i < a->nlost && nlost < MAX_LOST; i++)
        lost[nlost++] = a->lost[i];
}

static void acks_reset(void)
{
    acks = 0;
    acked_done = 0;
    done_went_back = 0;
    nlost = 0;
}

/* Exactly one lost range so far: first..last. */
static void assert_lost_once(uint64_t first, uint64_t last)
{
    assert_int_equal(nlost, 1);
    assert_int_equal(lost[0].first, first);
    assert_int_equal(lost[0].last, last);
}

typedef struct fixture {
    char path[MAX_PATH];
    HANDLE me; /* this thread, for the ack APC */
    apc_histthread_t *h;
    apc_hist_boot_t boot;
} fixture_t;

/* Waits alertably (so acks run) for at most ms, or until `done` reaches want. */
static DWORD wait_committed(fixture_t *f, uint64_t want, DWORD ms)
{
    DWORD start = GetTickCount();

    (void)f;
    while (acked_done < want && GetTickCount() - start < ms)
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
/* The pending bound the next setup gives the thread (0: the default, APC_HIST_MAX_PENDING). */
static size_t next_max_pending;

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
    acks_reset();
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
    o.max_pending = next_max_pending;
    next_max_pending = 0;
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

#define SMALL_BOUND 5u

static int setup_small_bound(void **state)
{
    next_max_pending = SMALL_BOUND;
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
    /* Run the last acknowledgements now, not inside the next test. */
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        ;
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
    assert_int_equal(acked_done, 0);
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
    assert_int_equal(acked_done, 0);
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
    assert_int_equal(acked_done, 0);
    full_vfs_set_full(0);
    (void)wait_committed(f, last, 10000);
    assert_int_equal(acked_done, last);
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
    assert_int_equal(acked_done, 0);
    full_vfs_set_full(0);
    start = GetTickCount();
    assert_int_equal(apc_histthread_stop(f->h), 0);
    w = WaitForSingleObject(apc_histthread_handle(f->h), 5000);
    assert_int_equal(w, WAIT_OBJECT_0);
    print_message("ended %lu ms after the stop\n", (unsigned long)(GetTickCount() - start));
    assert_true(GetTickCount() - start < 800);
    pump(50);
    assert_int_equal(acked_done, 3);
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
    assert_int_equal(acked_done, 0);
    full_vfs_set_full(0);
    /* The next retry is at most the current backoff (1.6 s here, 30 s at most) away. */
    ms = wait_committed(f, last, 5000);
    print_message("written %lu ms after the disk had room\n", (unsigned long)ms);
    assert_int_equal(acked_done, last);
    assert_true(ms <= 3500);
    assert_true(acks >= 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 20);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT id) FROM runs"), 20);
    assert_int_equal(db_int(f, "SELECT min(id) FROM runs"), 1);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), 20);
    assert_int_equal(log_lines_starting("history: writing works again", NULL, 0), 1);
    assert_int_equal(nlost, 0);

    /* And the thread is back to normal: a new record is written and acknowledged at once. */
    last = add_runs(f, 21, 1);
    (void)wait_committed(f, last, 5000);
    assert_int_equal(acked_done, last);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 21);
}

/*
 * Fills the pending list while the disk is full: SMALL_BOUND records are kept, `over` more
 * are dropped; then gives the disk room and waits for the acknowledgement. Returns the last seq.
 */
static uint64_t overflow_then_room(fixture_t *f, size_t over)
{
    uint64_t last;

    full_vfs_set_full(1);
    last = add_runs(f, 1, SMALL_BOUND + over);
    assert_int_equal(last, SMALL_BOUND + over);
    pump(500);
    /* Nothing is acknowledged while the kept records wait: neither written nor lost yet. */
    assert_int_equal(acked_done, 0);
    assert_int_equal(nlost, 0);
    full_vfs_set_full(0);
    (void)wait_committed(f, last, 5000);
    return last;
}

static void test_records_beyond_the_bound_are_dropped_counted_and_reported_lost(void **state)
{
    fixture_t *f = *state;
    const size_t over = 3;
    uint64_t last;
    char want[300];

    last = overflow_then_room(f, over);

    /* The first SMALL_BOUND records are written; the 3 newest are dropped, counted in the log,
       and the acknowledgement that covers them says exactly which were lost. */
    assert_int_equal(acked_done, last);
    assert_lost_once(SMALL_BOUND + 1, last);
    assert_false(done_went_back);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), SMALL_BOUND);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), SMALL_BOUND);
    (void)snprintf(want, sizeof want,
                   "history: %zu record(s) dropped: more than %u waiting for the database", over,
                   SMALL_BOUND);
    assert_int_equal(log_lines_starting(want, NULL, 0), 1);
    (void)snprintf(want, sizeof want,
                   "history: record %u dropped: %u record(s) already wait for the database; it "
                   "and the next ones without room are reported lost (their requests get an "
                   "error)",
                   SMALL_BOUND + 1, SMALL_BOUND);
    if (log_lines_starting(want, NULL, 0) != 1)
        log_dump();
    assert_int_equal(log_lines_starting(want, NULL, 0), 1);
    assert_int_equal(log_lines_starting("history: record ", NULL, 0), 1);
}

/* Liveness (issue #9): one overflow must not stop every later acknowledgement. */
static void test_records_written_after_an_overflow_are_acknowledged(void **state)
{
    fixture_t *f = *state;
    uint64_t last, later;

    last = overflow_then_room(f, 2);
    assert_int_equal(acked_done, last);

    later = add_runs(f, (int64_t)last + 1, 1);
    (void)wait_committed(f, later, 5000);
    if (acked_done != later) {
        log_dump();
        print_message("acks %ld, rows %lld, nlost %u\n", (long)acks,
                      (long long)db_int(f, "SELECT count(*) FROM runs"), (unsigned)nlost);
    }
    assert_int_equal(acked_done, later);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), SMALL_BOUND + 1);
    assert_int_equal(db_int(f, "SELECT max(id) FROM runs"), (int64_t)later);
    /* The dropped records were reported once; the written one is not among the lost. */
    assert_lost_once(SMALL_BOUND + 1, last);
    assert_false(done_went_back);
}

/* A second overflow is a new streak: it reports only its own records, not the first ones. */
static void test_each_acknowledgement_reports_only_the_records_lost_since_the_last(void **state)
{
    fixture_t *f = *state;
    uint64_t last, second;

    last = overflow_then_room(f, 2);
    assert_lost_once(SMALL_BOUND + 1, last);
    full_vfs_set_full(1);
    second = add_runs(f, (int64_t)last + 1, SMALL_BOUND + 1);
    pump(300);
    full_vfs_set_full(0);
    (void)wait_committed(f, second, 5000);
    assert_int_equal(acked_done, second);
    assert_int_equal(nlost, 2);
    assert_int_equal(lost[1].first, second);
    assert_int_equal(lost[1].last, second);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 2 * SMALL_BOUND);
    assert_int_equal(log_lines_starting("history: record ", NULL, 0), 2);
}

static void test_records_given_up_at_stop_are_reported_lost(void **state)
{
    fixture_t *f = *state;
    uint64_t last;
    DWORD w, start;

    last = add_runs(f, 1, 2);
    (void)wait_committed(f, last, 5000);
    assert_int_equal(acked_done, 2);
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
    /* The last acknowledgement covers the given-up records AND names them lost. */
    assert_int_equal(acked_done, 4);
    assert_lost_once(3, 4);
    assert_int_equal(
        log_lines_starting("history: stopping: 2 record(s) could not be written and are lost", NULL,
                           0),
        1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 2);
}

/* ---- The same through the real engine ----------------------------------------------------- */

typedef struct call {
    apc_engine_req_t req;
    volatile LONG done;
} call_t;

static void on_done(apc_engine_req_t *req)
{
    ((call_t *)req->ctx)->done = 1;
}

/* Posts a submit of job "later", due in an hour (so its one record is the queued row). */
static void post_submit(apc_engine_t *e, call_t *c)
{
    memset(c, 0, sizeof *c);
    apc_proto_request_init(&c->req.in, APC_OP_SUBMIT);
    c->req.in.job = "later";
    c->req.in.in_ms = 3600000;
    c->req.submitted_by = "tester";
    c->req.done = on_done;
    c->req.ctx = c;
    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(),
                                &c->req.reply_thread, 0, FALSE, DUPLICATE_SAME_ACCESS));
    assert_int_equal(apc_engine_post(e, &c->req), 0);
}

/* Waits alertably until every call of n is answered, at most ms. */
static void wait_calls(call_t *c, size_t n, DWORD ms)
{
    DWORD start = GetTickCount();
    size_t i, k;

    for (;;) {
        for (i = k = 0; i < n; i++)
            k += c[i].done != 0;
        if (k == n || GetTickCount() - start >= ms)
            break;
        (void)SleepEx(20, TRUE);
    }
    for (i = 0; i < n; i++)
        if (!c[i].done)
            fail_msg("submit %u was not answered within %lu ms", (unsigned)i, (unsigned long)ms);
}

static void call_done(call_t *c)
{
    CloseHandle(c->req.reply_thread);
    apc_buf_free(&c->req.response);
}

static void assert_ok(const call_t *c)
{
    if (c->req.result != 0)
        fail_msg("run %lld: %s", (long long)c->req.run_id,
                 c->req.response.data != NULL ? c->req.response.data : "?");
}

static void assert_lost_answer(const call_t *c)
{
    assert_int_equal(c->req.result, APC_EDB);
    assert_non_null(c->req.response.data);
    assert_non_null(
        strstr(c->req.response.data, "the history database could not record the request"));
}

static void engine_log(void *ctx, int level, const char *msg)
{
    sink(ctx, level, msg);
}

/*
 * The engine keeps 3 records while the disk is full; 5 submits arrive: the rows of the first
 * 3 wait, those of the last 2 are dropped. With room again the 3 get "ok", the 2 the error,
 * and a submit after the recovery is answered "ok" at once (on the code before the fix it
 * waited forever: clients timed out after 30 s). A submit before the overflow got "ok" too.
 */
static void
test_after_an_overflow_the_engine_answers_lost_submits_with_an_error_and_the_rest_ok(void **state)
{
    char dir[MAX_PATH], cfg[MAX_PATH + 32], db[MAX_PATH + 32], sql[128];
    wchar_t *wdir;
    FILE *fp;
    apc_engine_opts_t o;
    apc_engine_t *e = NULL;
    apc_buf_t errors = {0};
    call_t before, during[5], after;
    fixture_t dbf;
    size_t i;
    int rc;

    (void)state;
    log_reset();
    full_vfs_set_full(0);
    (void)snprintf(dir, sizeof dir, "histfull-engine-%lu", (unsigned long)GetCurrentProcessId());
    wdir = apc_utf8_to_wide(dir);
    assert_non_null(wdir);
    test_remove_tree(wdir);
    assert_true(CreateDirectoryW(wdir, NULL));
    (void)snprintf(cfg, sizeof cfg, "%s\\apcsvc.json", dir);
    (void)snprintf(db, sizeof db, "%s\\history.db", dir);
    fp = fopen(cfg, "wb");
    assert_non_null(fp);
    assert_true(fputs("{\"service\": {\"history\": \"history.db\", \"output_dir\": \"runs\", "
                      "\"log_dir\": \"logs\", \"workers\": 1},\n"
                      "\"jobs\": [{\"name\": \"later\", \"builtin\": \"noop\"}]}\n",
                      fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    memset(&o, 0, sizeof o);
    o.config_path = cfg;
    o.log = engine_log;
    o.hist_max_pending = 3;
    rc = apc_engine_start(&o, &e, &errors);
    if (rc != 0)
        print_error("engine start: %s\n", errors.data != NULL ? errors.data : "?");
    apc_buf_free(&errors);
    assert_int_equal(rc, 0);

    post_submit(e, &before);
    wait_calls(&before, 1, 5000);
    assert_ok(&before);

    full_vfs_set_full(1);
    for (i = 0; i < 5; i++)
        post_submit(e, &during[i]);
    pump(1000);
    for (i = 0; i < 5; i++)
        assert_false(during[i].done); /* nothing written, nothing lost yet */
    full_vfs_set_full(0);
    wait_calls(during, 5, 5000);
    for (i = 0; i < 3; i++)
        assert_ok(&during[i]);
    for (i = 3; i < 5; i++)
        assert_lost_answer(&during[i]);

    post_submit(e, &after);
    wait_calls(&after, 1, 5000);
    assert_ok(&after);

    /* The rows: every "ok" is in the database, neither of the 2 answered with the error. */
    memset(&dbf, 0, sizeof dbf);
    (void)snprintf(dbf.path, sizeof dbf.path, "%s", db);
    assert_int_equal(db_int(&dbf, "SELECT count(*) FROM runs"), 5);
    for (i = 0; i < 5; i++) {
        (void)snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id = %lld",
                       (long long)during[i].req.run_id);
        assert_int_equal(db_int(&dbf, sql), i < 3 ? 1 : 0);
    }
    (void)snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id IN (%lld, %lld)",
                   (long long)before.req.run_id, (long long)after.req.run_id);
    assert_int_equal(db_int(&dbf, sql), 2);

    apc_engine_stop(e);
    assert_int_equal(apc_engine_join(e, 30000), 0);
    apc_engine_free(e);
    call_done(&before);
    call_done(&after);
    for (i = 0; i < 5; i++)
        call_done(&during[i]);
    test_remove_tree(wdir);
    free(wdir);
    log_reset();
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
            test_records_beyond_the_bound_are_dropped_counted_and_reported_lost, setup_small_bound,
            teardown),
        cmocka_unit_test_setup_teardown(test_records_written_after_an_overflow_are_acknowledged,
                                        setup_small_bound, teardown),
        cmocka_unit_test_setup_teardown(
            test_each_acknowledgement_reports_only_the_records_lost_since_the_last,
            setup_small_bound, teardown),
        cmocka_unit_test_setup_teardown(test_records_given_up_at_stop_are_reported_lost, setup,
                                        teardown),
        cmocka_unit_test(
            test_after_an_overflow_the_engine_answers_lost_submits_with_an_error_and_the_rest_ok),
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
