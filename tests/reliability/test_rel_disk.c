/*
 * test_rel_disk.c - a REALLY full disk under the REAL apcsvc.exe. The service's data folder
 * (history database and run output) lives on a small tmpfs that tests/reliability/with-tmpfs
 * mounts and names in APC_REL_TMPFS (its Wine path, Z:\...); the config and the service log
 * stay on the ordinary disk, so the log can tell what happened.
 *
 * The check: with an @every 1s job firing and the history writing, a filler file takes every
 * free byte (written until WriteFile fails; its error is what Wine makes of ENOSPC). For
 * APC_REL_FULL_S seconds (default 10) the service must keep answering status and keep
 * scheduling, while submits made meanwhile stay unanswered (their rows cannot be committed,
 * so they must not be acknowledged). Then the filler goes, and: every fire time of the full
 * window is in the database once, every submit is answered and its row is there once,
 * integrity_check is ok, and the service log named the full disk ("database or disk is full")
 * and that writing works again. The runs submitted while the disk was full wrote their output
 * to the full disk: their rows are printed (status, error) for the report, and each must be
 * final - a run never vanishes.
 *
 * Second check, a read-only filesystem at start: with-tmpfs remounts the tmpfs read-only
 * through its control channel (APC_REL_TMPFS_CTL) after a crash left a run "running"; the
 * service must start anyway, schedule, answer status and acknowledge no submit for
 * APC_REL_RO_S seconds (default 10); after the remount read-write the crashed run is
 * interrupted, every fire and submit is recorded once, integrity ok, the log names the file.
 * (Linux refuses a read-only remount while the service holds the database open for writing,
 * which the check measures: "read-only while running" cannot happen on this platform.)
 *
 * Thread: the cmocka test thread, plus one thread per submit made while the disk is full.
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

#define SUBMITS 3

/*
 * Fills the filesystem of dir with dir\filler: big writes, then smaller ones, down to one byte,
 * until WriteFile refuses. Returns the bytes written; *code gets the first refusal's error.
 */
static int64_t fill(const char *dir, DWORD *code)
{
    static char chunk[65536];
    wchar_t *path = e2e_wide("%s\\filler", dir);
    HANDLE f;
    DWORD size = sizeof chunk, n;
    int64_t total = 0;

    *code = 0;
    memset(chunk, 'F', sizeof chunk);
    f = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    free(path);
    if (f == INVALID_HANDLE_VALUE)
        fail_msg("cannot create %s\\filler: error %lu", dir, (unsigned long)GetLastError());
    while (size > 0) {
        if (WriteFile(f, chunk, size, &n, NULL) && n == size) {
            total += n;
            continue;
        }
        if (*code == 0)
            *code = GetLastError();
        total += n;
        size /= 2;
    }
    CloseHandle(f);
    return total;
}

/*
 * Writes the config: history and output on the tmpfs (data), config and log on the ordinary
 * disk; jobs is the text between the brackets of "jobs": [...], where %CHILD% is the helper
 * child's path (at most once).
 */
static void config_jobs(e2e_svc_t *s, const char *data, const char *jobs)
{
    char esc[MAX_PATH * 2];
    const char *hit = strstr(jobs, "%CHILD%");
    apc_buf_t b = {0};

    e2e_json_escape(data, esc, sizeof esc);
    apc_buf_printf(&b,
                   "{\"service\": {\"name\": \"%s\", \"workers\": 2, \"shutdown_grace\": \"2s\", "
                   "\"history\": \"%s\\\\history.db\", \"output_dir\": \"%s\\\\runs\", "
                   "\"log_dir\": \"logs\"},\n \"jobs\": [\n",
                   s->name, esc, esc);
    if (hit != NULL)
        apc_buf_printf(&b, "%.*s%s%s", (int)(hit - jobs), jobs, s->child, hit + 7);
    else
        apc_buf_printf(&b, "%s", jobs);
    apc_buf_printf(&b, "\n]}\n");
    assert_false(apc_buf_failed(&b));
    e2e_write_file(s->config, b.data);
    apc_buf_free(&b);
}

/* The full-disk check's config: a tick every second and a command job that prints. */
static void config(e2e_svc_t *s, const char *data)
{
    config_jobs(
        s, data,
        "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"},\n"
        "{\"name\": \"work\", \"command\": [\"%CHILD%\", \"out\", \"written while full\"]}");
}

/*
 * Asks tests/reliability/with-tmpfs to remount the tmpfs "ro" or "rw" (its control channel,
 * APC_REL_TMPFS_CTL) and waits up to 20 s for the answer, which goes into answer: "done ro",
 * "done rw" or "error ro: <mount's message>".
 */
static void remount(const char *what, char *answer, size_t answersz)
{
    const char *ctl = getenv("APC_REL_TMPFS_CTL");
    wchar_t *req_tmp, *req, *ans;
    HANDLE f;
    DWORD n, start;
    char buf[512];

    if (ctl == NULL || *ctl == '\0')
        fail_msg(
            "APC_REL_TMPFS_CTL is not set: run this test through tests/reliability/with-tmpfs");
    req_tmp = e2e_wide("%s\\request.tmp", ctl);
    req = e2e_wide("%s\\request", ctl);
    ans = e2e_wide("%s\\answer", ctl);
    (void)DeleteFileW(ans);
    f = CreateFileW(req_tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE)
        fail_msg("cannot create %s\\request.tmp: error %lu", ctl, (unsigned long)GetLastError());
    assert_true(WriteFile(f, what, (DWORD)strlen(what), &n, NULL));
    CloseHandle(f);
    assert_true(MoveFileExW(req_tmp, req, MOVEFILE_REPLACE_EXISTING));
    answer[0] = '\0';
    for (start = GetTickCount(); GetTickCount() - start < 20000; Sleep(50)) {
        f = CreateFileW(ans, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                        FILE_ATTRIBUTE_NORMAL, NULL);
        if (f == INVALID_HANDLE_VALUE)
            continue;
        n = 0;
        (void)ReadFile(f, buf, sizeof buf - 1, &n, NULL);
        CloseHandle(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        buf[n] = '\0';
        (void)snprintf(answer, answersz, "%s", buf);
        break;
    }
    free(req_tmp);
    free(req);
    free(ans);
    if (answer[0] == '\0')
        fail_msg("with-tmpfs did not answer the remount request \"%s\" within 20 s", what);
}

/* The read-only check's config: like config(), plus a long job to leave running at a crash. */
static void ro_config(e2e_svc_t *s, const char *data)
{
    config_jobs(s, data,
                "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"},\n"
                "{\"name\": \"work\", \"builtin\": \"noop\"},\n"
                "{\"name\": \"long\", \"command\": [\"%CHILD%\", \"sleep\", \"120000\"]}");
}

/*
 * Starts the service for a read-only check with ro_config's jobs, its history and output in
 * the folder tag on the tmpfs (its path into data), and waits for two ticks to have run.
 */
static void ro_service_start(e2e_svc_t *s, const char *tag, char *data, size_t size)
{
    const char *tmpfs = getenv("APC_REL_TMPFS");
    wchar_t *w;

    if (tmpfs == NULL || *tmpfs == '\0')
        fail_msg("APC_REL_TMPFS is not set: run this test through tests/reliability/with-tmpfs");
    (void)snprintf(data, size, "%s\\%s", tmpfs, tag);
    w = e2e_wide("%s", data);
    assert_true(CreateDirectoryW(w, NULL));
    free(w);
    e2e_svc_init(s, tag);
    (void)snprintf(s->db, sizeof s->db, "%s\\history.db", data);
    ro_config(s, data);
    e2e_svc_start(s);
    if (rel_wait_count(s->db, "job = 'tick' AND status = 'succeeded'", 2, 60000) < 2)
        fail_msg("no tick ran within 60 s");
}

/*
 * A read-only filesystem (the tmpfs remounted ro by with-tmpfs) under the history database
 * when the service starts, after a crash left a run "running": the service starts anyway,
 * logs why it cannot write, keeps scheduling and answering status, acknowledges no submit;
 * once the filesystem is read-write again, the crashed run is marked interrupted, every fire
 * time and submit of the read-only window is recorded once, integrity ok.
 * Also measured: Linux refuses the read-only remount while the service runs (the database is
 * open for writing), so "read-only while running" cannot happen here; what a Win32 program
 * gets for EROFS; what SQLite said.
 */
static void a_read_only_filesystem_at_start_delays_records_but_loses_none(void **state)
{
    e2e_svc_t *s = *state;
    long ro_s = rel_param("APC_REL_RO_S", 10);
    static rel_held_submit_t held[SUBMITS]; /* static: a failed check must not pull it away */
    HANDLE th[SUBMITS];
    char data[MAX_PATH], answer[512], busy[512], where[300], integrity[256], *log;
    int64_t long_id = 0, ro_from, ro_to, expected, in_window, crashed_status;
    DWORD t_rw, t_start, write_code, max_status_ms = 0, start;
    wchar_t *w;
    HANDLE f;
    rel_pipe_t p;
    char *buf = malloc(REL_RESP_CAP);
    int i, code = 0, statuses = 0, acked_during_ro = 0, lost = 0;

    assert_non_null(buf);
    ro_service_start(s, "rofs", data, sizeof data);
    /* Read-only while running: Linux refuses while the database is open for writing. */
    remount("ro", busy, sizeof busy);
    if (strstr(busy, "busy") == NULL)
        fail_msg("a read-only remount under the running service was not refused as busy (\"%s\"): "
                 "this test assumes it is; extend it to check the service on a filesystem "
                 "that became read-only while it ran",
                 busy);
    assert_int_equal(rel_pipe_open(&p, s->name, 30000), 0);
    assert_int_equal(
        rel_submit(&p, "{\"v\":1,\"op\":\"submit\",\"job\":\"long\"}", &long_id, &code, buf, 30000),
        1);
    rel_pipe_close(&p);
    (void)snprintf(where, sizeof where, "id = %lld AND status = 'running'", (long long)long_id);
    assert_int_equal(rel_wait_count(s->db, where, 1, 30000), 1);
    e2e_svc_kill(s); /* a crash: run long_id stays "running" in the database */
    e2e_proc_free(&s->proc);

    /* The killed run's process goes with the service's job object; until then the remount
       may still be busy. */
    for (start = GetTickCount();; Sleep(200)) {
        remount("ro", answer, sizeof answer);
        if (strcmp(answer, "done ro") == 0 || GetTickCount() - start > 20000)
            break;
    }
    assert_string_equal(answer, "done ro");
    w = e2e_wide("%s\\probe", data);
    f = CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    write_code = f == INVALID_HANDLE_VALUE ? GetLastError() : 0;
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    free(w);

    ro_from = apc_win_now_ms();
    t_start = GetTickCount();
    if (!rel_start_or_exit(s))
        fail_msg("the service did not start on a read-only filesystem: exit %lu, stderr:\n%s",
                 (unsigned long)s->proc.code, s->proc.err);
    for (i = 0; i < SUBMITS; i++)
        th[i] = rel_held_submit_start(&held[i], s->name);
    statuses = rel_status_poll(s->name, GetTickCount() - (DWORD)(apc_win_now_ms() - ro_from),
                               (DWORD)ro_s * 1000, &max_status_ms);
    ro_to = apc_win_now_ms();
    for (i = 0; i < SUBMITS; i++)
        acked_during_ro += held[i].answered != 0 && held[i].rc == 1;
    (void)snprintf(where, sizeof where, "id > %lld", (long long)long_id);
    assert_int_equal(rel_count(s->db, where), 0); /* nothing new could be written */

    remount("rw", answer, sizeof answer);
    assert_string_equal(answer, "done rw");
    t_rw = GetTickCount();
    for (i = 0; i < SUBMITS; i++) {
        assert_int_equal(WaitForSingleObject(th[i], 180000), WAIT_OBJECT_0);
        CloseHandle(th[i]);
        if (held[i].rc != 1) {
            log = e2e_slurp(s->log);
            print_error("service log:\n%s\n", log != NULL ? log : "(none)");
            if (e2e_proc_wait(&s->proc, 5000))
                print_error("apcsvc exited with %lu (0x%lx); stderr:\n%s\n",
                            (unsigned long)s->proc.code, (unsigned long)s->proc.code, s->proc.err);
            fail_msg("submit %d made while read-only: rc %d, no acknowledgement (answered %ld ms "
                     "after rw, %lu ms after start)",
                     i, held[i].rc, (long)(held[i].answered_at - t_rw),
                     (unsigned long)(held[i].answered_at - t_start));
        }
        assert_true((int)(held[i].answered_at - t_rw) >= -50);
        (void)snprintf(where, sizeof where, "id = %lld AND job = 'work'", (long long)held[i].id);
        if (rel_wait_count(s->db, where, 1, 30000) != 1)
            lost++;
    }
    /* The first fire after the start may be a catch-up; every 1 s fire of the window counts. */
    expected = (ro_to - ro_from) / 1000 - 2;
    (void)snprintf(where, sizeof where,
                   "job = 'tick' AND scheduled_for >= %lld AND scheduled_for <= %lld",
                   (long long)ro_from, (long long)ro_to);
    in_window = rel_wait_count(s->db, where, expected, 90000);
    {
        sqlite3 *db = rel_db_open(s->db);
        char q[128];
        assert_non_null(db);
        (void)snprintf(q, sizeof q, "SELECT status = 'interrupted' FROM runs WHERE id = %lld",
                       (long long)long_id);
        crashed_status = rel_db_int(db, q);
        assert_int_equal(rel_db_int(db, "SELECT count(*) - count(DISTINCT scheduled_for) FROM "
                                        "runs WHERE job = 'tick'"),
                         0);
        sqlite3_close(db);
    }
    rel_db_integrity(s->db, integrity, sizeof integrity);
    assert_int_equal(e2e_svc_stop(s), 0);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    rel_figure("history.read_only_fs",
               "ro_remount_while_running=\"%s\" create_file_error_on_ro=%lu ro_ms=%lld "
               "fires_in_window=%lld expected_at_least=%lld status_answers_during_ro=%d "
               "max_status_ms=%lu acknowledged_during_ro=%d submits=%d lost=%d "
               "crashed_run_interrupted=%lld integrity=%s",
               busy, (unsigned long)write_code, (long long)(ro_to - ro_from), (long long)in_window,
               (long long)expected, statuses, (unsigned long)max_status_ms, acked_during_ro,
               SUBMITS, lost, (long long)crashed_status, integrity);
    assert_int_equal(acked_during_ro, 0);
    assert_int_equal(lost, 0);
    assert_true(in_window >= expected);
    assert_int_equal(crashed_status, 1);
    assert_string_equal(integrity, "ok");
    {
        char want[MAX_PATH + 64];
        (void)snprintf(want, sizeof want, "ERROR history: %s cannot be written (", s->db);
        if (strstr(log, want) == NULL ||
            strstr(log, "can be written again; 1 unfinished run(s)") == NULL ||
            strstr(log, "history: writing works again after ") == NULL)
            fail_msg("the service log does not name the read-only file and the recovery");
    }
    free(log);
    free(buf);
}

/*
 * The common case of a read-only filesystem at start: the last stop was clean, so no -wal file
 * exists and SQLite cannot read the WAL database read-only the normal way (SQLITE_CANTOPEN:
 * it would have to create -wal / -shm); the history opens it immutable=1. The service starts,
 * a submit made meanwhile is acknowledged only after the remount read-write, and recorded once.
 */
static void a_read_only_filesystem_after_a_clean_stop_is_read_immutable(void **state)
{
    e2e_svc_t *s = *state;
    static rel_held_submit_t held; /* static: a failed check must not pull it away */
    char data[MAX_PATH], answer[512], where[128], integrity[256], *log;
    int64_t ro_from;
    DWORD t_rw;
    HANDLE th;
    wchar_t *w;

    ro_service_start(s, "roclean", data, sizeof data);
    assert_int_equal(e2e_svc_stop(s), 0);
    e2e_proc_free(&s->proc);
    /* The clean stop removed the WAL (no reader may open the file after it: a reader would
       leave an empty -wal behind). */
    w = e2e_wide("%s-wal", s->db);
    assert_int_equal(GetFileAttributesW(w), INVALID_FILE_ATTRIBUTES);
    free(w);
    remount("ro", answer, sizeof answer);
    assert_string_equal(answer, "done ro");
    ro_from = apc_win_now_ms();
    if (!rel_start_or_exit(s))
        fail_msg("the service did not start on a read-only filesystem: exit %lu, stderr:\n%s",
                 (unsigned long)s->proc.code, s->proc.err);
    th = rel_held_submit_start(&held, s->name);
    Sleep(3000);
    assert_true(rel_status_ok(s->name, 30000, NULL));
    assert_int_equal(held.answered, 0);
    remount("rw", answer, sizeof answer);
    assert_string_equal(answer, "done rw");
    t_rw = GetTickCount();
    assert_int_equal(WaitForSingleObject(th, 180000), WAIT_OBJECT_0);
    CloseHandle(th);
    assert_int_equal(held.rc, 1);
    assert_true((int)(held.answered_at - t_rw) >= -50);
    (void)snprintf(where, sizeof where, "id = %lld AND job = 'work'", (long long)held.id);
    assert_int_equal(rel_wait_count(s->db, where, 1, 30000), 1);
    (void)snprintf(where, sizeof where, "job = 'tick' AND scheduled_for >= %lld",
                   (long long)ro_from);
    assert_true(rel_count(s->db, where) >= 2); /* the fires of the read-only window too */
    rel_db_integrity(s->db, integrity, sizeof integrity);
    assert_string_equal(integrity, "ok");
    assert_int_equal(e2e_svc_stop(s), 0);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    {
        char want[MAX_PATH + 200];
        (void)snprintf(want, sizeof want,
                       "ERROR history: %s cannot be written (unable to open database file "
                       "(SQLITE_CANTOPEN, 14) while reading the schema version)",
                       s->db);
        if (strstr(log, want) == NULL ||
            strstr(log, "can be written again; 0 unfinished run(s)") == NULL)
            fail_msg("the service log lacks \"%s\" or the recovery line:\n%s", want,
                     strstr(log, "history: ") != NULL ? strstr(log, "history: ") : log);
    }
    rel_figure("history.read_only_fs_clean_stop",
               "started=1 submit_acked_after_rw_ms=%ld integrity=%s",
               (long)(held.answered_at - t_rw), integrity);
    free(log);
}

static void a_full_disk_delays_records_but_loses_none(void **state)
{
    e2e_svc_t *s = *state;
    const char *data = getenv("APC_REL_TMPFS");
    long full_s = rel_param("APC_REL_FULL_S", 10);
    rel_held_submit_t held[SUBMITS];
    HANDLE th[SUBMITS];
    char where[300], integrity[256], filler[MAX_PATH];
    int64_t fs_bytes, full_from, full_to, before, in_window, expected, during;
    DWORD t_full, t_free, fill_code, max_status_ms = 0;
    wchar_t *wfiller;
    char *log;
    sqlite3 *db;
    int i, statuses = 0, acked_during_full = 0, lost = 0, error_lines = 0;
    const char *hit;

    if (data == NULL || *data == '\0')
        fail_msg("APC_REL_TMPFS is not set: run this test through tests/reliability/with-tmpfs, "
                 "which mounts the small tmpfs it fills (CTest does; see "
                 "tests/reliability/CMakeLists.txt)");
    e2e_svc_init(s, "disk");
    (void)snprintf(s->db, sizeof s->db, "%s\\history.db", data);
    config(s, data);
    e2e_svc_start(s);
    if (rel_wait_count(s->db, "job = 'tick' AND status = 'succeeded'", 2, 60000) < 2)
        fail_msg("no tick ran within 60 s");

    fs_bytes = fill(data, &fill_code);
    t_full = GetTickCount();
    full_from = apc_win_now_ms();
    before = rel_count(s->db, "job = 'tick'");
    print_message("filler: %lld bytes, then WriteFile error %lu\n", (long long)fs_bytes,
                  (unsigned long)fill_code);

    for (i = 0; i < SUBMITS; i++)
        th[i] = rel_held_submit_start(&held[i], s->name);
    /* While the disk is full: the service answers and its engine keeps going. */
    statuses = rel_status_poll(s->name, t_full, (DWORD)full_s * 1000, &max_status_ms);
    full_to = apc_win_now_ms();
    during = rel_count(s->db, "job = 'tick'");
    for (i = 0; i < SUBMITS; i++)
        acked_during_full += held[i].answered != 0 && held[i].rc == 1;

    (void)snprintf(filler, sizeof filler, "%s\\filler", data);
    wfiller = e2e_wide("%s", filler);
    assert_true(DeleteFileW(wfiller));
    free(wfiller);
    t_free = GetTickCount();

    for (i = 0; i < SUBMITS; i++) {
        assert_int_equal(WaitForSingleObject(th[i], 180000), WAIT_OBJECT_0);
        CloseHandle(th[i]);
        if (held[i].rc != 1)
            fail_msg("submit %d made while the disk was full: rc %d, no acknowledgement", i,
                     held[i].rc);
        /* Answered only once the row could be committed, i.e. after the filler went. */
        assert_true((int)(held[i].answered_at - t_free) >= -50);
    }

    /* Every fire time of the window is recorded once the backlog is written. */
    expected = (full_to - full_from) / 1000 - 1;
    (void)snprintf(where, sizeof where,
                   "job = 'tick' AND scheduled_for >= %lld AND scheduled_for <= %lld",
                   (long long)full_from, (long long)full_to);
    in_window = rel_wait_count(s->db, where, expected, 90000);
    for (i = 0; i < SUBMITS; i++) {
        (void)snprintf(where, sizeof where, "id = %lld AND job = 'work'", (long long)held[i].id);
        if (rel_count(s->db, where) != 1)
            lost++;
        /* The run itself wrote its output to the full disk: it must still end in a final row. */
        (void)snprintf(where, sizeof where, "id = %lld AND status NOT IN ('queued', 'running')",
                       (long long)held[i].id);
        assert_int_equal(rel_wait_count(s->db, where, 1, 60000), 1);
    }
    db = rel_db_open(s->db);
    assert_non_null(db);
    {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT id, status, coalesce(error, ''), "
                                            "coalesce(output_tail, '') FROM runs WHERE job = "
                                            "'work' ORDER BY id",
                                            -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            print_message(
                "work run %lld: %s, error \"%s\", output tail \"%s\"\n",
                (long long)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
    }
    assert_int_equal(rel_db_int(db, "SELECT count(*) - count(DISTINCT scheduled_for) FROM runs "
                                    "WHERE job = 'tick'"),
                     0);
    /* The run that ran while the disk was full could not write its output file: its row
       says so, naming the file and the Win32 error. */
    assert_int_equal(rel_db_int(db, "SELECT count(*) FROM runs WHERE job = 'work' AND error "
                                    "LIKE 'writing output file %Disk full (error 112)'"),
                     1);
    sqlite3_close(db);
    rel_db_integrity(s->db, integrity, sizeof integrity);
    assert_int_equal(e2e_svc_stop(s), 0);
    log = e2e_slurp(s->log);
    assert_non_null(log);
    /* A failure streak is one ERROR line (one event-log entry), not one per attempt: the
       reminders come every 10 minutes, the recovery is one INFO. */
    for (hit = strstr(log, "history: write of "); hit != NULL;
         hit = strstr(hit + 1, "history: write of "))
        error_lines++;

    rel_figure("history.full_disk",
               "fs_bytes=%lld filler_error=%lu full_ms=%lld fires_in_window=%lld "
               "expected_at_least=%lld recorded_during_full=%lld recorded_after=%lld "
               "status_answers_during_full=%d max_status_ms=%lu acknowledged_during_full=%d "
               "submits=%d history_error_lines=%d lost=%d",
               (long long)fs_bytes, (unsigned long)fill_code, (long long)(full_to - full_from),
               (long long)in_window, (long long)expected, (long long)(during - before),
               (long long)in_window, statuses, (unsigned long)max_status_ms, acked_during_full,
               SUBMITS, error_lines, lost);
    /* The kernel's ENOSPC reaches a Win32 program as ERROR_DISK_FULL. */
    assert_int_equal(fill_code, ERROR_DISK_FULL);
    assert_int_equal(acked_during_full, 0);
    assert_int_equal(during, before); /* nothing could be committed while the disk was full */
    assert_true(in_window >= expected);
    assert_int_equal(lost, 0);
    assert_string_equal(integrity, "ok");
    assert_int_equal(error_lines, 1);
    if (strstr(log, "database or disk is full (SQLITE_FULL, 13)") == NULL ||
        strstr(log, "history: writing works again") == NULL)
        fail_msg("the service log does not name the full disk and the recovery:\n%s", log);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_full_disk_delays_records_but_loses_none, e2e_svc_setup,
                                        e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(
            a_read_only_filesystem_at_start_delays_records_but_loses_none, e2e_svc_setup,
            e2e_svc_teardown),
        cmocka_unit_test_setup_teardown(a_read_only_filesystem_after_a_clean_stop_is_read_immutable,
                                        e2e_svc_setup, e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
