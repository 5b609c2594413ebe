/*
 * test_retention.c - the REAL history thread at start: retention deletes the output files
 * of exactly the runs it prunes, and only inside the output folder; a file it cannot delete
 * is counted in one log line and pruning goes on; a corrupt database is set aside with an
 * ERROR line naming both files and a new one is started.
 *
 * Real parts only: a real SQLite file with rows written with old timestamps, real files in
 * a folder under the build tree, the real thread started with apc_histthread_start (which
 * returns once the start-up prune is over). Thread: the cmocka test thread, plus the
 * history thread under test (it calls the log sink, hence the lock).
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

#include <sqlite3.h>

#include "apc_history.h"
#include "apc_time.h"
#include "engine.h"
#include "histthread.h"
#include "test_fs.h"
#include "win_util.h"

#define DIR "retention_t"
#define T0 INT64_C(1700000000000) /* 2023-11-14 22:13:20 UTC */

/* ---- a log sink that keeps every line ---------------------------------------------------- */

static SRWLOCK log_lock = SRWLOCK_INIT;
static char log_text[16384];

static void sink(void *ctx, int level, const char *msg)
{
    size_t len;

    (void)ctx;
    AcquireSRWLockExclusive(&log_lock);
    len = strlen(log_text);
    (void)snprintf(log_text + len, sizeof log_text - len, "%d %s\n", level, msg);
    ReleaseSRWLockExclusive(&log_lock);
}

static void assert_logged(const char *line)
{
    int found;

    AcquireSRWLockExclusive(&log_lock);
    found = strstr(log_text, line) != NULL;
    ReleaseSRWLockExclusive(&log_lock);
    if (!found)
        fail_msg("the log lacks \"%s\"; it holds:\n%s", line, log_text);
}

static void assert_not_logged(const char *part)
{
    int found;

    AcquireSRWLockExclusive(&log_lock);
    found = strstr(log_text, part) != NULL;
    ReleaseSRWLockExclusive(&log_lock);
    if (found)
        fail_msg("the log should not hold \"%s\"; it holds:\n%s", part, log_text);
}

static void CALLBACK no_ack(ULONG_PTR arg)
{
    (void)arg;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    test_remove_tree(L"" DIR);
    if (!CreateDirectoryW(L"" DIR, NULL) || !CreateDirectoryW(L"" DIR "\\out", NULL) ||
        !CreateDirectoryW(L"" DIR "\\out\\job", NULL))
        return -1;
    log_text[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_remove_tree(L"" DIR);
    return 0;
}

static void make_file(const char *path)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fputs("output\n", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int file_exists(const char *path)
{
    wchar_t *w = apc_utf8_to_wide(path);
    DWORD a;

    assert_non_null(w);
    a = GetFileAttributesW(w);
    free(w);
    return a != INVALID_FILE_ATTRIBUTES;
}

/* Writes finished run id of job "job", finished at `at`, with output file `out` (or NULL). */
static void add_run(apc_history_t *h, int64_t id, int64_t at, const char *out)
{
    apc_history_op_t op;
    char err[512];

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    op.run.id = id;
    op.run.job = "job";
    op.run.trigger = APC_TRIGGER_SCHEDULE;
    op.run.status = APC_RUN_SUCCEEDED;
    op.run.attempt = 1;
    op.run.queued_at = at - 2000;
    op.run.started_at = at - 1000;
    op.run.finished_at = at;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.output_path = out;
    if (apc_history_write(h, &op, 1, err, sizeof err) != 0)
        fail_msg("write: %s", err);
}

/* The ids left in the database, "1,2,3". */
static const char *ids_left(const char *db)
{
    static char ids[256];
    apc_history_t *h = NULL;
    sqlite3_stmt *st = NULL;
    char err[512];

    ids[0] = '\0';
    if (apc_history_open(db, APC_HISTORY_READONLY, &h, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    assert_int_equal(sqlite3_prepare_v2(apc_history_sqlite(h),
                                        "SELECT coalesce(group_concat(id, ','), '') FROM "
                                        "(SELECT id FROM runs ORDER BY id)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    (void)snprintf(ids, sizeof ids, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    apc_history_close(h);
    return ids;
}

/*
 * Starts the real history thread on db (retention in days, output folder), then stops it.
 * Returns the highest run id it reported to the engine (boot.max_id).
 */
static int64_t run_history_thread(const char *db, int retention_days, const char *output_dir,
                                  int64_t now_ms)
{
    int64_t max_id;
    apc_histthread_opts_t o;
    apc_histthread_t *t = NULL;
    apc_hist_boot_t boot;
    HANDLE self = NULL;
    char err[512];
    int rc;

    assert_true(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                                0, FALSE, DUPLICATE_SAME_ACCESS));
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.retention_days = retention_days;
    o.output_dir = output_dir;
    o.now_ms = now_ms;
    o.log.fn = sink;
    o.ack_thread = self;
    o.ack_fn = no_ack;
    rc = apc_histthread_start(&o, &t, &boot, err, sizeof err);
    if (rc != 0)
        fail_msg("start: %s", err);
    max_id = boot.max_id;
    apc_hist_boot_free(&boot);
    apc_histthread_free(t); /* stops it and waits */
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        ;
    CloseHandle(self);
    return max_id;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void retention_deletes_the_files_of_pruned_runs_only_inside_the_output_folder(void **state)
{
    const char *db = DIR "\\history.db";
    int64_t old = apc_win_now_ms() - 40 * APC_MS_PER_DAY;
    int64_t recent = apc_win_now_ms() - 1 * APC_MS_PER_DAY;
    apc_history_t *h = NULL;
    char err[512];

    (void)state;
    make_file(DIR "\\out\\job\\1.log");
    make_file(DIR "\\out\\job\\2.log");
    make_file(DIR "\\outside.log");
    make_file(DIR "\\escape.log");
    if (apc_history_open(db, APC_HISTORY_READWRITE, &h, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    add_run(h, 1, old, DIR "\\out\\job\\1.log");    /* old: row and file go */
    add_run(h, 2, recent, DIR "\\out\\job\\2.log"); /* recent: both stay */
    add_run(h, 3, old, DIR "\\outside.log");        /* old, outside: row goes, file stays */
    add_run(h, 4, old, DIR "\\out\\job\\..\\..\\escape.log"); /* ".." out of the folder */
    add_run(h, 5, old, DIR "\\out\\job\\5.log");              /* old, file already gone: fine */
    add_run(h, 6, old, NULL);                                 /* old, never had a file */
    apc_history_close(h);

    run_history_thread(db, 30, DIR "\\out", apc_win_now_ms());

    assert_string_equal(ids_left(db), "2");
    assert_false(file_exists(DIR "\\out\\job\\1.log"));
    assert_true(file_exists(DIR "\\out\\job\\2.log"));
    assert_true(file_exists(DIR "\\outside.log"));
    assert_true(file_exists(DIR "\\escape.log"));
    assert_logged("2 history: pruned 5 run(s) older than 30 day(s) and 1 output file(s)\n");
    assert_logged("1 history: 2 output file(s) of pruned runs were left alone: outside the "
                  "output folder; the first: " DIR "\\outside.log\n");
    assert_not_logged("could not be deleted");
}

static void a_file_that_cannot_be_deleted_is_counted_in_one_line_and_pruning_goes_on(void **state)
{
    const char *db = DIR "\\history.db";
    int64_t old = apc_win_now_ms() - 40 * APC_MS_PER_DAY;
    apc_history_t *h = NULL;
    HANDLE held[2];
    char err[512];
    int i;

    (void)state;
    make_file(DIR "\\out\\job\\1.log");
    make_file(DIR "\\out\\job\\2.log");
    make_file(DIR "\\out\\job\\3.log");
    /* Opened without FILE_SHARE_DELETE: DeleteFileW fails with a sharing violation. */
    held[0] = CreateFileW(L"" DIR "\\out\\job\\1.log", GENERIC_READ, FILE_SHARE_READ, NULL,
                          OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    held[1] = CreateFileW(L"" DIR "\\out\\job\\2.log", GENERIC_READ, FILE_SHARE_READ, NULL,
                          OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    assert_true(held[0] != INVALID_HANDLE_VALUE && held[1] != INVALID_HANDLE_VALUE);
    if (apc_history_open(db, APC_HISTORY_READWRITE, &h, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    add_run(h, 1, old, DIR "\\out\\job\\1.log");
    add_run(h, 2, old, DIR "\\out\\job\\2.log");
    add_run(h, 3, old, DIR "\\out\\job\\3.log");
    apc_history_close(h);

    run_history_thread(db, 30, DIR "\\out", apc_win_now_ms());
    for (i = 0; i < 2; i++)
        CloseHandle(held[i]);

    assert_string_equal(ids_left(db), ""); /* every row went */
    assert_false(file_exists(DIR "\\out\\job\\3.log"));
    assert_true(file_exists(DIR "\\out\\job\\1.log"));
    assert_logged("2 history: pruned 3 run(s) older than 30 day(s) and 1 output file(s)\n");
    assert_logged("0 history: 2 output file(s) of pruned runs could not be deleted; the first: " DIR
                  "\\out\\job\\1.log: ");
    assert_logged("(error 32)\n"); /* ERROR_SHARING_VIOLATION */
}

static void a_corrupt_database_at_start_is_set_aside_logged_and_replaced(void **state)
{
    const char *db = DIR "\\history.db";
    const char *aside = DIR "\\history.db.corrupt-20231114T221320Z";
    char line[1024];

    (void)state;
    make_file(db); /* "output\n": not a database */
    assert_int_equal(run_history_thread(db, 0, DIR "\\out", T0), 0);
    (void)snprintf(line, sizeof line,
                   "0 history: %s is corrupt (SQLite: file is not a database (SQLITE_NOTADB, 26) "
                   "while reading the schema version); set aside as %s; a new history database "
                   "was started (run ids go on after 0)\n",
                   db, aside);
    assert_logged(line);
    assert_true(file_exists(aside));
    assert_string_equal(ids_left(db), ""); /* a new, valid, empty database */
}

static void after_a_set_aside_run_ids_go_on_after_the_highest_output_file(void **state)
{
    const char *db = DIR "\\history.db";
    char line[1024];

    (void)state;
    assert_true(CreateDirectoryW(L"" DIR "\\out\\other", NULL));
    make_file(DIR "\\out\\job\\41.log");
    make_file(DIR "\\out\\job\\9.log");
    make_file(DIR "\\out\\other\\7.log");
    make_file(DIR "\\out\\other\\99x.log"); /* not a run's file */
    make_file(db);                          /* not a database */
    /* The garbage file tells no id; 41.log exists, so the engine's next run is 42, not 1. */
    assert_int_equal(run_history_thread(db, 0, DIR "\\out", T0), 41);
    assert_logged("2 history: the database holds no run; run ids go on after 41, the highest in "
                  "the output folder\n");
    (void)snprintf(line, sizeof line,
                   "a new history database was started (run ids go on after 41)\n");
    assert_logged(line);
    assert_true(file_exists(DIR "\\out\\job\\41.log"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            retention_deletes_the_files_of_pruned_runs_only_inside_the_output_folder, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_file_that_cannot_be_deleted_is_counted_in_one_line_and_pruning_goes_on, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_corrupt_database_at_start_is_set_aside_logged_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(
            after_a_set_aside_run_ids_go_on_after_the_highest_output_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
