/*
 * test_rel_history.c - history database faults under the REAL apcsvc.exe:
 *
 *   - another writer holds BEGIN EXCLUSIVE on the database for 10 s: meanwhile the service
 *     keeps scheduling (an @every 1s job fires each second) and answers the pipe; it keeps
 *     the records in memory and writes them once the lock goes. Every fire time of the lock
 *     window is in the database afterwards, and a submit made during the lock is acknowledged
 *     (only after its row could be committed) and recorded;
 *   - the database file is read-only: the service starts anyway from what the file holds,
 *     logs an ERROR naming it, and acknowledges no submit until the file is writable again
 *     (Windows; under Wine as root the attribute does not stop writes);
 *   - the database file is corrupt at start: the service sets it aside byte for byte as
 *     <name>.corrupt-<UTC time>, starts a new database and keeps scheduling (a submit is
 *     acknowledged and recorded in the new file); the service log has the ERROR naming both
 *     files and SQLite's diagnosis.
 *
 * Sizes: APC_REL_LOCK_S (seconds of exclusive lock, default 10).
 *
 * Thread: the cmocka test thread, plus one submit thread in the lock test.
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

static void an_exclusive_lock_by_another_writer_delays_records_but_loses_none(void **state)
{
    e2e_svc_t *s = *state;
    long lock_s = rel_param("APC_REL_LOCK_S", 10);
    sqlite3 *w = NULL;
    char *errmsg = NULL, where[256];
    int64_t lock_from, lock_to, before, in_window, fires_expected;
    DWORD t_lock, t_unlock, max_status_ms = 0;
    rel_held_submit_t late = {0};
    HANDLE th;
    int rc, statuses = 0;

    e2e_svc_init(s, "locked");
    e2e_svc_config(s, 2,
                   "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"},\n"
                   "{\"name\": \"work\", \"builtin\": \"noop\"}");
    e2e_svc_start(s);
    if (rel_wait_count(s->db, "job = 'tick' AND status = 'succeeded'", 2, 60000) < 2)
        fail_msg("no tick ran within 60 s");

    assert_int_equal(sqlite3_open_v2(s->db, &w, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    (void)sqlite3_busy_timeout(w, 30000);
    rc = sqlite3_exec(w, "BEGIN EXCLUSIVE", NULL, NULL, &errmsg);
    if (rc != SQLITE_OK)
        fail_msg("BEGIN EXCLUSIVE: %s", errmsg != NULL ? errmsg : "?");
    t_lock = GetTickCount();
    lock_from = apc_win_now_ms();
    before = rel_count(s->db, "job = 'tick'");

    th = rel_held_submit_start(&late, s->name);
    /* While the lock holds: the service answers and its engine keeps going. */
    statuses = rel_status_poll(s->name, t_lock, (DWORD)lock_s * 1000, &max_status_ms);
    /* Nothing could be written meanwhile (the readers see the last committed state). */
    assert_int_equal(rel_count(s->db, "job = 'tick'"), before);
    /* The submit made during the lock is still waiting for its answer. */
    assert_int_equal(WaitForSingleObject(th, 0), WAIT_TIMEOUT);
    lock_to = apc_win_now_ms();
    assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    t_unlock = GetTickCount();
    sqlite3_close(w);

    assert_int_equal(WaitForSingleObject(th, 120000), WAIT_OBJECT_0);
    CloseHandle(th);
    assert_int_equal(late.rc, 1);
    /* The ack came only after the row could be committed, i.e. after the lock went. */
    assert_true((int)(late.answered_at - t_unlock) >= -50);

    /* Every fire time of the window is recorded once the backlog is written. */
    fires_expected = (lock_to - lock_from) / 1000 - 1;
    (void)snprintf(where, sizeof where,
                   "job = 'tick' AND scheduled_for >= %lld AND scheduled_for <= %lld",
                   (long long)lock_from, (long long)lock_to);
    in_window = rel_wait_count(s->db, where, fires_expected, 90000);
    (void)snprintf(where, sizeof where, "id = %lld AND job = 'work'", (long long)late.id);
    assert_int_equal(rel_count(s->db, where), 1);
    (void)snprintf(where, sizeof where,
                   "job = 'tick' AND scheduled_for >= %lld AND scheduled_for <= %lld",
                   (long long)lock_from, (long long)lock_to);
    rel_figure(
        "history.exclusive_lock",
        "lock_ms=%lld tick_fires_in_window=%lld expected_at_least=%lld "
        "status_answers_during_lock=%d max_status_ms=%lu late_submit_acked_after_unlock_ms=%ld "
        "lost=0",
        (long long)(lock_to - lock_from), (long long)in_window, (long long)fires_expected, statuses,
        (unsigned long)max_status_ms, (long)(late.answered_at - t_unlock));
    assert_true(in_window >= fires_expected);
    /* No fire time twice. */
    (void)snprintf(where, sizeof where,
                   "SELECT count(*) - count(DISTINCT scheduled_for) FROM runs WHERE job = 'tick'");
    {
        sqlite3 *db = rel_db_open(s->db);
        assert_non_null(db);
        assert_int_equal(rel_db_int(db, where), 0);
        sqlite3_close(db);
    }
    assert_int_equal(e2e_svc_stop(s), 0);
}

static void a_read_only_database_file_delays_records_until_it_is_writable(void **state)
{
    e2e_svc_t *s = *state;
    static rel_held_submit_t held; /* static: a failed check must not pull it away */
    wchar_t *w;
    char want[1024], where[64], *log;
    HANDLE th;
    DWORD t_writable;

    e2e_svc_init(s, "rodb");
    e2e_svc_config(s, 1, "{\"name\": \"work\", \"builtin\": \"noop\"}");
    e2e_svc_start(s); /* creates the database */
    assert_int_equal(e2e_svc_stop(s), 0);
    e2e_proc_free(&s->proc);
    w = apc_utf8_to_wide(s->db);
    assert_non_null(w);
    assert_true(SetFileAttributesW(w, FILE_ATTRIBUTE_READONLY));
    (void)snprintf(want, sizeof want,
                   "ERROR history: %s cannot be written (the file is read-only, but the service "
                   "must write to it)",
                   s->db);
    if (!rel_start_or_exit(s))
        fail_msg("the service did not start on a read-only database file: exit %lu, stderr:\n%s",
                 (unsigned long)s->proc.code, s->proc.err);
    th = rel_held_submit_start(&held, s->name);
    Sleep(3000);
    assert_true(rel_status_ok(s->name, 30000, NULL));
    if (rel_under_wine()) {
        /* Wine maps the attribute to Unix permissions, and the test runs as root, who may
           write anyway: SQLite opens the file read-write, and the submit is recorded at once.
           The read-only start below is verified on Windows only (test_rel_disk checks it
           here with a read-only filesystem). */
        assert_int_equal(WaitForSingleObject(th, 30000), WAIT_OBJECT_0);
        t_writable = 0;
        print_message("under Wine as root the read-only attribute does not stop writes: the "
                      "read-only start (\"%s\", no submit acknowledged until the attribute "
                      "goes) is verified on Windows only\n",
                      want);
    } else {
        /* Windows: the service runs, but acknowledges nothing until the file is writable. */
        assert_int_equal(WaitForSingleObject(th, 0), WAIT_TIMEOUT);
        assert_true(SetFileAttributesW(w, FILE_ATTRIBUTE_NORMAL));
        t_writable = GetTickCount();
        assert_int_equal(WaitForSingleObject(th, 120000), WAIT_OBJECT_0);
        assert_true((int)(held.answered_at - t_writable) >= 0);
    }
    CloseHandle(th);
    assert_int_equal(held.rc, 1);
    (void)snprintf(where, sizeof where, "id = %lld", (long long)held.id);
    assert_int_equal(rel_wait_count(s->db, where, 1, 30000), 1);
    assert_int_equal(e2e_svc_stop(s), 0);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    if (rel_under_wine()) {
        rel_figure("history.read_only",
                   "wine_as_root=started_and_recorded (attribute not enforced; Windows: starts, "
                   "\"<path> cannot be written (the file is read-only, ...)\", acknowledges after "
                   "the attribute goes)");
    } else {
        if (strstr(log, want) == NULL)
            fail_msg("the service log lacks \"%s\":\n%s", want, log);
        rel_figure("history.read_only", "started=1 submit_acked_after_writable_ms=%lu",
                   (unsigned long)(held.answered_at - t_writable));
    }
    free(log);
    assert_true(SetFileAttributesW(w, FILE_ATTRIBUTE_NORMAL));
    free(w);
}

/* Finds the one "<db>.corrupt-*" file next to db; its full path into out. Returns how many. */
static int find_set_aside(const char *db, char *out, size_t outsz)
{
    char pattern[MAX_PATH + 16], dir[MAX_PATH];
    const char *slash = strrchr(db, '\\');
    WIN32_FIND_DATAW fd;
    wchar_t *w;
    HANDLE f;
    int n = 0;

    (void)snprintf(pattern, sizeof pattern, "%s.corrupt-*", db);
    (void)snprintf(dir, sizeof dir, "%.*s", slash != NULL ? (int)(slash - db) : 0, db);
    w = apc_utf8_to_wide(pattern);
    assert_non_null(w);
    f = FindFirstFileW(w, &fd);
    free(w);
    if (f == INVALID_HANDLE_VALUE)
        return 0;
    do {
        char *name = apc_wide_to_utf8(fd.cFileName);
        assert_non_null(name);
        /* The -wal / -shm companions go along; the database itself has no suffix. */
        if (strstr(name, "-wal") == NULL && strstr(name, "-shm") == NULL) {
            (void)snprintf(out, outsz, "%s\\%s", dir, name);
            n++;
        }
        free(name);
    } while (FindNextFileW(f, &fd));
    FindClose(f);
    return n;
}

static void a_corrupt_database_file_is_set_aside_and_the_service_keeps_scheduling(void **state)
{
    e2e_svc_t *s = *state;
    char *garbage = malloc(8193), *aside_bytes = NULL, *log = NULL;
    char aside[MAX_PATH + 64], want[2048], where[64];
    DWORD t0, start_ms;
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP);
    int64_t id = 0;
    int code = 0;
    size_t i;

    assert_non_null(garbage);
    assert_non_null(buf);
    for (i = 0; i < 8192; i++)
        garbage[i] = (char)('A' + (i * 7) % 26);
    garbage[8192] = '\0';
    e2e_svc_init(s, "corrupt");
    e2e_svc_config(s, 1, "{\"name\": \"work\", \"builtin\": \"noop\"}");
    e2e_write_file(s->db, garbage);
    t0 = GetTickCount();
    e2e_svc_start(s); /* fails the test if the service exits instead */
    start_ms = GetTickCount() - t0;

    /* It schedules: a submit is acknowledged and recorded in the NEW database. */
    assert_int_equal(rel_pipe_open(&p, s->name, 30000), 0);
    assert_int_equal(
        rel_submit(&p, "{\"v\":1,\"op\":\"submit\",\"job\":\"work\"}", &id, &code, buf, 30000), 1);
    rel_pipe_close(&p);
    (void)snprintf(where, sizeof where, "id = %lld AND job = 'work'", (long long)id);
    assert_int_equal(rel_count(s->db, where), 1);

    /* The corrupt file is set aside, byte for byte, under the documented name. */
    assert_int_equal(find_set_aside(s->db, aside, sizeof aside), 1);
    aside_bytes = e2e_slurp(aside);
    assert_non_null(aside_bytes);
    assert_string_equal(aside_bytes, garbage);
    assert_int_equal(strlen(aside) - strlen(s->db), strlen(".corrupt-20261126T091400Z"));

    assert_int_equal(e2e_svc_stop(s), 0);
    /* The service log (and the event log: the same text) names both files and SQLite. */
    (void)snprintf(want, sizeof want,
                   "ERROR history: %s is corrupt (SQLite: file is not a database "
                   "(SQLITE_NOTADB, 26) while reading the schema version); set aside as %s; a "
                   "new history database was started",
                   s->db, aside);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    if (strstr(log, want) == NULL)
        fail_msg("the service log lacks \"%s\":\n%s", want, log);
    rel_figure("history.corrupt",
               "started=yes start_ms=%lu set_aside=%s byte_identical=yes submit_recorded=yes "
               "log_names_both_files=yes",
               (unsigned long)start_ms, strrchr(aside, '\\') + 1);
    free(log);
    free(aside_bytes);
    free(buf);
    free(garbage);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            an_exclusive_lock_by_another_writer_delays_records_but_loses_none, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_read_only_database_file_delays_records_until_it_is_writable, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_corrupt_database_file_is_set_aside_and_the_service_keeps_scheduling, e2e_svc_setup,
            e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
