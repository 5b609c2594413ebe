/*
 * test_history_setaside.c - the history store's answers to a corrupt file at start (set it
 * aside byte for byte under a name that never overwrites anything, start a new database,
 * keep run ids from repeating) and the output paths that retention reports for the files
 * to delete.
 *
 * Every test works on real files in the current directory (the build tree), named after
 * the test and removed before and after, so the tests run the same natively and under Wine.
 * Thread: the cmocka test thread.
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

#define T0 INT64_C(1700000000000) /* 2023-11-14 22:13:20 UTC */
#define T0_STAMP "20231114T221320Z"

static char err[512];

/* ---- helpers ------------------------------------------------------------------------------- */

static void remove_set(const char *base)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[600];
    size_t i;

    for (i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        (void)snprintf(p, sizeof p, "%s%s", base, sfx[i]);
        (void)remove(p);
    }
}

/* Removes path, its companions and the set-aside names a test may have made from it. */
static void remove_all(const char *path)
{
    char p[600];
    int i;

    remove_set(path);
    for (i = 1; i <= 3; i++) {
        if (i == 1)
            (void)snprintf(p, sizeof p, "%s.corrupt-" T0_STAMP, path);
        else
            (void)snprintf(p, sizeof p, "%s.corrupt-" T0_STAMP "-%d", path, i);
        remove_set(p);
    }
}

static const char *fresh(const char *name)
{
    static char path[256];

    (void)snprintf(path, sizeof path, "aside_%s.db", name);
    remove_all(path);
    err[0] = '\0';
    return path;
}

static void write_bytes(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Reads a whole file into a malloc'd buffer; *n its size. NULL if it does not exist. */
static char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    *n = 0;
    if (f == NULL)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    (void)fclose(f);
    *n = (size_t)len;
    return buf;
}

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return 0;
    (void)fclose(f);
    return 1;
}

static void assert_file_is(const char *path, const char *data, size_t n)
{
    size_t got = 0;
    char *buf = read_bytes(path, &got);

    if (buf == NULL)
        fail_msg("%s does not exist", path);
    assert_int_equal(got, n);
    assert_memory_equal(buf, data, n);
    free(buf);
}

/* 8 KiB of letters: not a database. */
static char *garbage(size_t *n)
{
    char *g = malloc(8192);
    size_t i;

    assert_non_null(g);
    for (i = 0; i < 8192; i++)
        g[i] = (char)('A' + (i * 7) % 26);
    *n = 8192;
    return g;
}

/* A finished run id of job, with an output path when out is not NULL. */
static apc_history_op_t finished(int64_t id, const char *job, int64_t finished_at, const char *out)
{
    apc_history_op_t op;

    memset(&op, 0, sizeof op);
    op.kind = APC_HOP_INSERT;
    op.run.id = id;
    op.run.job = job;
    op.run.trigger = APC_TRIGGER_SCHEDULE;
    op.run.status = APC_RUN_SUCCEEDED;
    op.run.attempt = 1;
    op.run.queued_at = finished_at - 10;
    op.run.started_at = finished_at - 5;
    op.run.finished_at = finished_at;
    op.run.scheduled_for = APC_TIME_NONE;
    op.run.output_path = out;
    return op;
}

/* Creates a database at path holding finished runs 1..n of job "j" (closed again). */
static void make_db(const char *path, int n)
{
    apc_history_t *h = NULL;
    apc_history_op_t *ops = calloc((size_t)n, sizeof *ops);
    int i;

    assert_non_null(ops);
    assert_int_equal(apc_history_open(path, APC_HISTORY_READWRITE, &h, err, sizeof err), 0);
    for (i = 0; i < n; i++)
        ops[i] = finished(i + 1, "j", T0 + i, NULL);
    assert_int_equal(apc_history_write(h, ops, (size_t)n, err, sizeof err), 0);
    apc_history_close(h); /* checkpoints: everything is in the main file, no -wal left */
    free(ops);
}

/* The root page of index name in the database at path (read with a plain connection). */
static int root_page(const char *path, const char *name)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int page = -1;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = ?1", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    page = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return page;
}

/* Overwrites page `page` (1-based, 4096-byte pages) of the file with 0x5A bytes. */
static void smash_page(const char *path, int page)
{
    char buf[4096];
    FILE *f = fopen(path, "r+b");

    assert_non_null(f);
    memset(buf, 0x5A, sizeof buf);
    assert_int_equal(fseek(f, (long)(page - 1) * 4096, SEEK_SET), 0);
    assert_int_equal(fwrite(buf, 1, sizeof buf, f), sizeof buf);
    assert_int_equal(fclose(f), 0);
}

static apc_history_t *start_ok(const char *path, apc_history_start_t *info)
{
    apc_history_t *h = NULL;
    int rc =
        apc_history_open_writer(path, T0, APC_HISTORY_SET_ASIDE_CORRUPT, &h, info, err, sizeof err);

    if (rc != 0)
        print_error("open_writer %s: %s\n", path, err);
    assert_int_equal(rc, 0);
    assert_non_null(h);
    return h;
}

static int64_t count_runs(apc_history_t *h)
{
    int64_t id = -1;

    assert_int_equal(apc_history_max_id(h, &id, err, sizeof err), 0);
    return id;
}

/* ---- a corrupt file at start --------------------------------------------------------------- */

static void a_garbage_file_is_set_aside_byte_for_byte_and_a_new_database_starts(void **state)
{
    const char *path = fresh("garbage");
    apc_history_start_t info;
    apc_history_t *h;
    apc_history_op_t op;
    char want[600];
    size_t n = 0;
    char *g = garbage(&n);

    (void)state;
    write_bytes(path, g, n);
    h = start_ok(path, &info);
    assert_int_equal(info.set_aside, 1);
    (void)snprintf(want, sizeof want, "%s.corrupt-" T0_STAMP, path);
    assert_string_equal(info.aside_path, want);
    assert_string_equal(info.diagnosis, "file is not a database (SQLITE_NOTADB, 26) while reading "
                                        "the schema version");
    assert_int_equal(info.salvaged_max_id, 0);
    assert_int_equal(info.max_id, 0);
    assert_file_is(want, g, n);
    /* The new database works. */
    op = finished(1, "after", T0, NULL);
    assert_int_equal(apc_history_write(h, &op, 1, err, sizeof err), 0);
    assert_int_equal(count_runs(h), 1);
    apc_history_close(h);
    free(g);
    remove_all(path);
}

static void the_wal_and_shm_of_a_corrupt_file_go_with_it_under_the_sqlite_names(void **state)
{
    const char *path = fresh("walshm");
    apc_history_start_t info;
    apc_history_t *h;
    char p[700], want[600];
    size_t n = 0;
    char *g = garbage(&n);

    (void)state;
    write_bytes(path, g, n);
    (void)snprintf(p, sizeof p, "%s-wal", path);
    write_bytes(p, "the old wal", 11);
    (void)snprintf(p, sizeof p, "%s-shm", path);
    write_bytes(p, "the old shm", 11);
    h = start_ok(path, &info);
    assert_int_equal(info.set_aside, 1);
    (void)snprintf(want, sizeof want, "%s.corrupt-" T0_STAMP, path);
    assert_file_is(want, g, n);
    (void)snprintf(p, sizeof p, "%s-wal", want);
    assert_file_is(p, "the old wal", 11);
    /* The -shm is only SQLite's index of the WAL, rebuilt by every first connection (the
       failed open already rewrote it): it goes along, but its bytes carry no data. */
    (void)snprintf(p, sizeof p, "%s-shm", want);
    assert_true(exists(p));
    apc_history_close(h);
    free(g);
    remove_all(path);
}

static void
a_database_with_a_smashed_index_page_is_set_aside_and_its_ids_are_not_reused(void **state)
{
    const char *path = fresh("smashed");
    apc_history_start_t info;
    apc_history_t *h;
    char want[600];
    char *before;
    size_t n = 0;

    (void)state;
    make_db(path, 300);
    /* Recovery walks runs_status; the table (and so max(id)) stays readable. */
    smash_page(path, root_page(path, "runs_status"));
    before = read_bytes(path, &n);
    assert_non_null(before);
    h = start_ok(path, &info);
    assert_int_equal(info.set_aside, 1);
    if (strstr(info.diagnosis, "(SQLITE_CORRUPT, 11") == NULL)
        fail_msg("diagnosis: %s", info.diagnosis);
    assert_int_equal(info.salvaged_max_id, 300);
    assert_int_equal(info.max_id, 300); /* the engine goes on with 301 */
    (void)snprintf(want, sizeof want, "%s.corrupt-" T0_STAMP, path);
    assert_file_is(want, before, n);
    assert_int_equal(count_runs(h), 0); /* the new file itself starts empty */
    apc_history_close(h);
    free(before);
    remove_all(path);
}

static void an_existing_set_aside_name_is_never_overwritten(void **state)
{
    const char *path = fresh("taken");
    char taken[300], taken_wal[300], aside[300], want[600];

    (void)state;
    (void)snprintf(taken, sizeof taken, "%s.corrupt-" T0_STAMP, path);
    write_bytes(taken, "earlier", 7);
    (void)snprintf(taken_wal, sizeof taken_wal, "%s.corrupt-" T0_STAMP "-2-wal", path);
    write_bytes(taken_wal, "earlier wal", 11); /* a companion alone also takes the name */
    write_bytes(path, "now", 3);
    assert_int_equal(apc_history_set_aside(path, T0, aside, sizeof aside, err, sizeof err), 0);
    (void)snprintf(want, sizeof want, "%s.corrupt-" T0_STAMP "-3", path);
    assert_string_equal(aside, want);
    assert_file_is(taken, "earlier", 7);
    assert_file_is(taken_wal, "earlier wal", 11);
    assert_file_is(want, "now", 3);
    assert_false(exists(path));
    remove_all(path);
}

static void a_set_aside_of_a_missing_file_fails_naming_it_and_renames_nothing(void **state)
{
    const char *path = fresh("missing");
    char aside[300], want[600];

    (void)state;
    assert_int_equal(apc_history_set_aside(path, T0, aside, sizeof aside, err, sizeof err),
                     APC_EIO);
    (void)snprintf(want, sizeof want, "%s: cannot rename it to %s.corrupt-" T0_STAMP ": ", path,
                   path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("err: %s", err);
    assert_string_equal(aside, "");
}

static void a_locked_database_is_not_set_aside(void **state)
{
    const char *path = fresh("locked");
    apc_history_start_t info;
    apc_history_t *h = NULL;
    sqlite3 *other = NULL;
    char aside[300];

    (void)state;
    make_db(path, 3);
    /* A rollback-journal connection holding EXCLUSIVE: nobody may even read. */
    assert_int_equal(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(apc_history_open_writer(path, T0, APC_HISTORY_SET_ASIDE_CORRUPT, &h, &info,
                                             err, sizeof err),
                     APC_EDB);
    assert_null(h);
    if (strstr(err, "database is locked (SQLITE_BUSY, 5)") == NULL)
        fail_msg("err: %s", err);
    assert_int_equal(info.set_aside, 0);
    (void)snprintf(aside, sizeof aside, "%s.corrupt-" T0_STAMP, path);
    assert_false(exists(aside));
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* The same file still opens with its rows. */
    h = start_ok(path, &info);
    assert_int_equal(info.set_aside, 0);
    assert_int_equal(info.max_id, 3);
    apc_history_close(h);
    remove_all(path);
}

static void a_valid_database_of_another_program_is_not_set_aside(void **state)
{
    const char *path = fresh("foreign");
    apc_history_start_t info;
    apc_history_t *h = NULL;
    sqlite3 *db = NULL;
    char want[600];

    (void)state;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(apc_history_open_writer(path, T0, APC_HISTORY_SET_ASIDE_CORRUPT, &h, &info,
                                             err, sizeof err),
                     APC_EDB);
    (void)snprintf(want, sizeof want, "%s: not an ApcSched history database (schema version 0)",
                   path);
    assert_string_equal(err, want);
    (void)snprintf(want, sizeof want, "%s.corrupt-" T0_STAMP, path);
    assert_false(exists(want));
    assert_true(exists(path));
    remove_all(path);
}

static void without_the_flag_a_corrupt_file_stops_the_open_and_stays(void **state)
{
    const char *path = fresh("noflag");
    apc_history_start_t info;
    apc_history_t *h = NULL;
    size_t n = 0;
    char *g = garbage(&n);
    char want[600];

    (void)state;
    write_bytes(path, g, n);
    assert_int_equal(apc_history_open_writer(path, T0, 0, &h, &info, err, sizeof err), APC_EDB);
    (void)snprintf(want, sizeof want,
                   "%s: file is not a database (SQLITE_NOTADB, 26) while reading the schema "
                   "version",
                   path);
    assert_string_equal(err, want);
    assert_file_is(path, g, n);
    free(g);
    remove_all(path);
}

/* ---- retention reports the deleted runs' output files -------------------------------------- */

typedef struct seen {
    char list[1024];
    int calls;
    apc_history_t *h; /* to check the row is already gone when its path is reported */
} seen_t;

static void note_path(const char *output_path, void *ctx)
{
    seen_t *s = ctx;
    size_t len = strlen(s->list);
    int64_t left = -1;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = apc_history_sqlite(s->h);

    (void)snprintf(s->list + len, sizeof s->list - len, "%s%s", len ? "," : "", output_path);
    s->calls++;
    /* Reported after the COMMIT: no row with this path exists any more. */
    assert_int_equal(sqlite3_get_autocommit(db), 1);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM runs WHERE output_path = ?1", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(st, 1, output_path, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    left = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(left, 0);
}

static void prune_reports_the_output_paths_of_exactly_the_deleted_runs(void **state)
{
    const char *path = fresh("prunefiles");
    apc_history_t *h = NULL;
    apc_history_op_t ops[5];
    seen_t seen;
    int64_t deleted = -1;

    (void)state;
    memset(&seen, 0, sizeof seen);
    assert_int_equal(apc_history_open(path, APC_HISTORY_READWRITE, &h, err, sizeof err), 0);
    seen.h = h;
    ops[0] = finished(1, "a", T0 + 1, "out\\a\\1.log");
    ops[1] = finished(2, "a", T0 + 2, NULL); /* old, no file: nothing to report */
    ops[2] = finished(3, "b", T0 + 3, "out\\b\\3.log");
    ops[3] = finished(4, "a", T0 + 500, "out\\a\\4.log"); /* recent: kept */
    ops[4] = finished(5, "b", T0 + 4, "");                /* empty path: nothing to report */
    assert_int_equal(apc_history_write(h, ops, 5, err, sizeof err), 0);
    assert_int_equal(
        apc_history_prune_files(h, T0 + 100, &deleted, note_path, &seen, err, sizeof err), 0);
    assert_int_equal(deleted, 4);
    assert_int_equal(seen.calls, 2);
    assert_string_equal(seen.list, "out\\a\\1.log,out\\b\\3.log");
    assert_int_equal(count_runs(h), 4);
    apc_history_close(h);
    remove_all(path);
}

static void prune_reports_every_path_across_chunks(void **state)
{
    const char *path = fresh("prunechunks");
    apc_history_t *h = NULL;
    apc_history_op_t *ops = calloc(1200, sizeof *ops);
    char(*names)[32] = calloc(1200, sizeof *names);
    seen_t seen;
    int64_t deleted = -1;
    int i;

    (void)state;
    assert_non_null(ops);
    assert_non_null(names);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(apc_history_open(path, APC_HISTORY_READWRITE, &h, err, sizeof err), 0);
    seen.h = h;
    for (i = 0; i < 1200; i++) {
        (void)snprintf(names[i], sizeof names[i], "%d", i + 1);
        ops[i] = finished(i + 1, "j", T0 + i, names[i]);
    }
    assert_int_equal(apc_history_write(h, ops, 1200, err, sizeof err), 0);
    assert_int_equal(
        apc_history_prune_files(h, T0 + 10000, &deleted, note_path, &seen, err, sizeof err), 0);
    assert_int_equal(deleted, 1200);
    assert_int_equal(seen.calls, 1200);
    apc_history_close(h);
    free(ops);
    free(names);
    remove_all(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_garbage_file_is_set_aside_byte_for_byte_and_a_new_database_starts),
        cmocka_unit_test(the_wal_and_shm_of_a_corrupt_file_go_with_it_under_the_sqlite_names),
        cmocka_unit_test(
            a_database_with_a_smashed_index_page_is_set_aside_and_its_ids_are_not_reused),
        cmocka_unit_test(an_existing_set_aside_name_is_never_overwritten),
        cmocka_unit_test(a_set_aside_of_a_missing_file_fails_naming_it_and_renames_nothing),
        cmocka_unit_test(a_locked_database_is_not_set_aside),
        cmocka_unit_test(a_valid_database_of_another_program_is_not_set_aside),
        cmocka_unit_test(without_the_flag_a_corrupt_file_stops_the_open_and_stays),
        cmocka_unit_test(prune_reports_the_output_paths_of_exactly_the_deleted_runs),
        cmocka_unit_test(prune_reports_every_path_across_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
