/*
 * test_history_full.c - the run history on a full disk: a batch written while every write,
 * truncate and sync of the database files fails with SQLITE_FULL (the shim in full_vfs.h,
 * installed as the default VFS, so apc_history_open uses it unchanged) fails as a whole with
 * an error naming the condition, leaves the earlier batches and nothing of itself, keeps the
 * file intact, and is written in full - every row once - when the disk has room again.
 *
 * Each test works on its own real database file in the current directory (the build tree),
 * so the tests run the same natively and under Wine. Thread: the cmocka main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "apc_error.h"
#include "apc_history.h"
#include "full_vfs.h"

#define T0 INT64_C(1700000000000) /* 2023-11-14 22:13:20 UTC */

static char err[512];

static void remove_db(const char *path)
{
    char side[300];

    (void)remove(path);
    (void)snprintf(side, sizeof side, "%s-wal", path);
    (void)remove(side);
    (void)snprintf(side, sizeof side, "%s-shm", path);
    (void)remove(side);
    (void)snprintf(side, sizeof side, "%s-journal", path);
    (void)remove(side);
}

static const char *fresh(const char *name)
{
    static char path[256];

    full_vfs_set_full(0);
    (void)snprintf(path, sizeof path, "histfull_%s.db", name);
    remove_db(path);
    err[0] = '\0';
    return path;
}

static apc_history_t *open_rw(const char *path)
{
    apc_history_t *h = NULL;
    int rc = apc_history_open(path, APC_HISTORY_READWRITE, &h, err, sizeof err);

    if (rc != 0)
        print_error("open %s: %s\n", path, err);
    assert_int_equal(rc, 0);
    assert_non_null(h);
    return h;
}

/* A queued scheduled run with id, queued at T0 + id seconds; the error text makes rows big
   enough that a large batch spills out of SQLite's page cache before COMMIT. */
static apc_history_op_t insert(int64_t id, const char *error)
{
    apc_history_op_t op;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    op.run.id = id;
    op.run.job = "backup";
    op.run.trigger = APC_TRIGGER_SCHEDULE;
    op.run.status = APC_RUN_QUEUED;
    op.run.attempt = 1;
    op.run.queued_at = T0 + id * 1000;
    op.run.started_at = APC_TIME_NONE;
    op.run.finished_at = APC_TIME_NONE;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.error = error;
    return op;
}

/* ops[i] = insert(first + i) for i in [0, n). */
static apc_history_op_t *batch(int64_t first, size_t n, const char *error)
{
    apc_history_op_t *ops = calloc(n, sizeof *ops);
    size_t i;

    assert_non_null(ops);
    for (i = 0; i < n; i++)
        ops[i] = insert(first + (int64_t)i, error);
    return ops;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void assert_integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* The expected error text: "<path>: database or disk is full (SQLITE_FULL, 13) while <...>". */
static void assert_full_error(const char *path, const char *text)
{
    char want[300];

    (void)snprintf(want, sizeof want, "%s: database or disk is full (SQLITE_FULL, 13) while ",
                   path);
    if (strncmp(text, want, strlen(want)) != 0)
        print_error("error text: %s\n", text);
    assert_int_equal(strncmp(text, want, strlen(want)), 0);
}

/*
 * Writes batch 1 (ids 1..n1), fills the disk, fails batch 2 (ids n1+1..n1+n2), then frees the
 * disk and writes batch 2 again. Row text `pad` sets how big each row is.
 */
static void full_then_room(const char *name, size_t n1, size_t n2, const char *pad)
{
    const char *path = fresh(name);
    apc_history_t *h = open_rw(path);
    apc_history_op_t *b1 = batch(1, n1, pad);
    apc_history_op_t *b2 = batch((int64_t)n1 + 1, n2, pad);
    sqlite3 *db = apc_history_sqlite(h);
    long refused = full_vfs_refusals();
    char sql[200];
    int rc;

    assert_int_equal(apc_history_write(h, b1, n1, err, sizeof err), 0);

    full_vfs_set_full(1);
    rc = apc_history_write(h, b2, n2, err, sizeof err);
    assert_int_equal(rc, APC_EDB);
    assert_full_error(path, err);
    /* The transaction failed as a whole: no op is "at fault", so a caller retries it all
       rather than dropping a record that did nothing wrong. */
    assert_true(apc_history_failed_op(h) == (size_t)-1);
    assert_true(full_vfs_refusals() > refused);
    /* Reads still work while the disk is full: only batch 1 is there, nothing of batch 2. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM runs"), (int64_t)n1);
    assert_int_equal(raw_int(db, "SELECT max(id) FROM runs"), (int64_t)n1);

    full_vfs_set_full(0);
    assert_integrity_ok(db);
    rc = apc_history_write(h, b2, n2, err, sizeof err);
    if (rc != 0)
        print_error("retry: %s\n", err);
    assert_int_equal(rc, 0);
    apc_history_close(h);

    /* A fresh connection sees what is on disk: every row once, and a sound file. */
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    (void)snprintf(sql, sizeof sql,
                   "SELECT count(DISTINCT id) FROM runs WHERE id BETWEEN 1 AND %zu", n1 + n2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM runs"), (int64_t)(n1 + n2));
    assert_int_equal(raw_int(db, sql), (int64_t)(n1 + n2));
    assert_integrity_ok(db);
    sqlite3_close(db);
    free(b1);
    free(b2);
    remove_db(path);
}

/* A small batch: SQLite first writes at COMMIT (the WAL frames), which fails. */
static void test_full_disk_fails_the_commit_and_keeps_earlier_batches(void **state)
{
    (void)state;
    full_then_room("commit", 3, 5, NULL);
}

/* A batch larger than the page cache: SQLite spills pages to the WAL in the middle of an
   INSERT, so the failure comes from a statement, not from COMMIT. It must still be a failure
   of the transaction (no op at fault) and leave nothing of the batch. */
static void test_full_disk_during_a_cache_spill_blames_no_record(void **state)
{
    static char pad[1001];

    (void)state;
    memset(pad, 'x', sizeof pad - 1);
    full_then_room("spill", 10, 4000, pad);
}

/* A failed batch leaves the connection usable: a second failure, then success. */
static void test_full_disk_twice_then_room_writes_each_row_once(void **state)
{
    const char *path = fresh("twice");
    apc_history_t *h = open_rw(path);
    apc_history_op_t *b = batch(1, 4, NULL);
    sqlite3 *db = apc_history_sqlite(h);

    (void)state;
    full_vfs_set_full(1);
    assert_int_equal(apc_history_write(h, b, 4, err, sizeof err), APC_EDB);
    assert_full_error(path, err);
    assert_int_equal(apc_history_write(h, b, 4, err, sizeof err), APC_EDB);
    assert_full_error(path, err);
    full_vfs_set_full(0);
    assert_int_equal(apc_history_write(h, b, 4, err, sizeof err), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM runs"), 4);
    assert_int_equal(raw_int(db, "SELECT count(DISTINCT id) FROM runs"), 4);
    assert_integrity_ok(db);
    apc_history_close(h);
    free(b);
    remove_db(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_fails_the_commit_and_keeps_earlier_batches),
        cmocka_unit_test(test_full_disk_during_a_cache_spill_blames_no_record),
        cmocka_unit_test(test_full_disk_twice_then_room_writes_each_row_once),
    };

    if (full_vfs_install() != SQLITE_OK) {
        fprintf(stderr, "cannot install the disk-full VFS shim\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
