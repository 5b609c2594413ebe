/*
 * test_rel_clients.c - many concurrent apcctl.exe clients against the REAL apcsvc.exe:
 *
 *   N client threads (APC_REL_CTL_CLIENTS, campaign 64) each start apcctl.exe again and again
 *   for APC_REL_CTL_SECONDS (campaign 60), cycling through `run quick --json`, `status`,
 *   `list` and `history quick --limit 5`. Proved: every command exits 0 (none refused as
 *   busy, none timed out), every run id apcctl printed has exactly one row in the history
 *   database and it ends `succeeded`, the database holds no run of the job beyond those ids,
 *   and the service's private bytes and handle count after the load are what they were
 *   after a warm-up (no growth).
 *
 * The clients are real processes (a process start under Wine costs tens of milliseconds, so
 * the service sees a steady stream of connections rather than a tight loop); each client
 * thread starts its own apcctl with stdout redirected to its own file.
 *
 * Thread: the cmocka test thread drives and asserts; client threads only start apcctl,
 * record exit codes and the ids printed, and never call cmocka.
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

#define MAX_CLIENTS 128
#define MAX_IDS_PER_CLIENT 4096

typedef struct client {
    int index;
    wchar_t *lines[4]; /* the command line of each kind, made on the test thread */
    wchar_t *out;      /* this client's stdout file */
    DWORD deadline;    /* GetTickCount at which to stop starting commands */
    long commands, failed, by_kind[4];
    DWORD first_fail_code;
    DWORD last_error; /* of the last CreateFileW / CreateProcessW that failed */
    char first_fail_cmd[64];
    int64_t *ids;
    long nids;
} client_t;

static const char *const kinds[4] = {"run quick --json", "status", "list",
                                     "history quick --limit 5"};

/* Runs on the test thread: makes a client's command lines and output file name. */
static void client_init(client_t *c, long index, const e2e_svc_t *s, const char *apcctl)
{
    int k;

    memset(c, 0, sizeof *c);
    c->index = (int)index;
    for (k = 0; k < 4; k++)
        c->lines[k] = e2e_wide("\"%s\" --service %s %s", apcctl, s->name, kinds[k]);
    c->out = e2e_wide("%s\\client-%ld.txt", s->dir, index);
}

static void client_free(client_t *c)
{
    int k;

    for (k = 0; k < 4; k++)
        free(c->lines[k]);
    free(c->out);
    free(c->ids);
}

/*
 * Runs on a client thread (or the test thread): one apcctl command of the given kind to its
 * end, stdout and stderr into the client's file, read back into out; returns the exit code,
 * or -1 if the program could not be started.
 */
static long run_ctl(client_t *c, int kind, char *out, size_t cap)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    HANDLE file;
    DWORD code = (DWORD)-1, n = 0;
    BOOL ok;

    out[0] = '\0';
    /* Full sharing: the previous child's inherited handle may outlive its exit by a moment
       (seen under Wine: ERROR_SHARING_VIOLATION without it). */
    file = CreateFileW(c->out, GENERIC_READ | GENERIC_WRITE,
                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, &sa, CREATE_ALWAYS,
                       FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        c->last_error = GetLastError();
        return -1;
    }
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = NULL;
    si.hStdOutput = file;
    si.hStdError = file;
    /* CreateProcessW may write into the command line: each client owns its copies. */
    ok = CreateProcessW(NULL, c->lines[kind], NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &si,
                        &pi);
    if (ok) {
        if (WaitForSingleObject(pi.hProcess, E2E_CMD_MS) != WAIT_OBJECT_0) {
            (void)TerminateProcess(pi.hProcess, 99);
            (void)WaitForSingleObject(pi.hProcess, 5000);
        } else if (!GetExitCodeProcess(pi.hProcess, &code)) {
            code = (DWORD)-1;
        }
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        if (SetFilePointer(file, 0, NULL, FILE_BEGIN) != INVALID_SET_FILE_POINTER &&
            ReadFile(file, out, (DWORD)cap - 1, &n, NULL))
            out[n] = '\0';
    }
    CloseHandle(file);
    return ok ? (long)code : -1;
}

/* Runs on a client thread: cycles through the commands until the deadline. */
static DWORD WINAPI client_main(void *arg)
{
    client_t *c = arg;
    char out[4096];
    long k = c->index; /* clients start at different commands */

    while ((LONG)(GetTickCount() - c->deadline) < 0) {
        int kind = (int)(k++ % 4);
        long code = run_ctl(c, kind, out, sizeof out);

        c->commands++;
        c->by_kind[kind]++;
        if (code != 0) {
            if (c->failed++ == 0) {
                c->first_fail_code = (DWORD)code;
                (void)snprintf(c->first_fail_cmd, sizeof c->first_fail_cmd, "%s", kinds[kind]);
            }
            continue;
        }
        if (kind == 0) {
            const char *id = strstr(out, "\"id\":");
            if (id == NULL || c->nids >= MAX_IDS_PER_CLIENT) {
                c->failed++;
                continue;
            }
            c->ids[c->nids++] = _strtoi64(id + 5, NULL, 10);
        }
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void many_apcctl_clients_for_a_minute_lose_nothing_and_leave_no_growth(void **state)
{
    e2e_svc_t *s = *state;
    long nclients = rel_param("APC_REL_CTL_CLIENTS", 8);
    long seconds = rel_param("APC_REL_CTL_SECONDS", 5);
    client_t *c = calloc(MAX_CLIENTS, sizeof *c);
    HANDLE th[MAX_CLIENTS];
    char apcctl[MAX_PATH], where[64], out[4096];
    long i, commands = 0, failed = 0, kind_total[4] = {0, 0, 0, 0}, nids = 0, dups = 0;
    int64_t *all, rows, succeeded;
    SIZE_T priv_before = 0, ws_before = 0, priv_after = 0, ws_after = 0;
    unsigned handles_before, handles_after;
    DWORD start;

    assert_non_null(c);
    assert_true(nclients >= 1 && nclients <= MAX_CLIENTS);
    e2e_svc_init(s, "clients");
    e2e_svc_config(s, 4, "{\"name\": \"quick\", \"builtin\": \"noop\", \"overlap\": \"parallel\"}");
    e2e_svc_start(s);
    e2e_win_path(E2E_APCCTL, apcctl, sizeof apcctl);

    /* Warm-up: every command once, so that first-use allocations are behind us. */
    client_init(&c[0], 0, s, apcctl);
    for (i = 0; i < 4; i++) {
        long code = run_ctl(&c[0], (int)i, out, sizeof out);
        if (code != 0)
            fail_msg("warm-up `apcctl %s` exited %ld (error %lu): %s", kinds[i], code,
                     (unsigned long)c[0].last_error, out);
    }
    client_free(&c[0]);
    if (rel_wait_count(s->db, "status = 'succeeded'", 1, 30000) < 1)
        fail_msg("the warm-up run did not succeed within 30 s");
    Sleep(500);
    rel_proc_memory(s->proc.process, &priv_before, &ws_before);
    handles_before = rel_handle_count(s->proc.process, 0x8000);

    start = GetTickCount();
    for (i = 0; i < nclients; i++) {
        client_init(&c[i], i, s, apcctl);
        c[i].deadline = start + (DWORD)seconds * 1000u;
        c[i].ids = malloc(MAX_IDS_PER_CLIENT * sizeof(int64_t));
        assert_non_null(c[i].ids);
        th[i] = CreateThread(NULL, 0, client_main, &c[i], 0, NULL);
        assert_non_null(th[i]);
    }
    for (i = 0; i < nclients; i++) {
        assert_int_equal(WaitForSingleObject(th[i], (DWORD)seconds * 1000u + 120000u),
                         WAIT_OBJECT_0);
        CloseHandle(th[i]);
    }
    all = malloc((size_t)nclients * MAX_IDS_PER_CLIENT * sizeof *all);
    assert_non_null(all);
    for (i = 0; i < nclients; i++) {
        int k;
        commands += c[i].commands;
        failed += c[i].failed;
        for (k = 0; k < 4; k++)
            kind_total[k] += c[i].by_kind[k];
        if (c[i].failed > 0)
            print_error("client %ld: %ld failed, first `apcctl %s` exit %lu\n", i, c[i].failed,
                        c[i].first_fail_cmd, (unsigned long)c[i].first_fail_code);
        memcpy(all + nids, c[i].ids, (size_t)c[i].nids * sizeof *all);
        nids += c[i].nids;
        client_free(&c[i]);
    }

    /* Every printed id: one row, succeeded; no other row of the job beyond the warm-up. */
    qsort(all, (size_t)nids, sizeof *all, cmp_id);
    for (i = 1; i < nids; i++)
        dups += all[i] == all[i - 1];
    (void)snprintf(where, sizeof where, "job = 'quick' AND status = 'succeeded'");
    succeeded = rel_wait_count(s->db, where, nids + 1, 120000);
    rows = rel_count(s->db, "job = 'quick'");
    {
        sqlite3 *db = rel_db_open(s->db);
        sqlite3_stmt *st = NULL;
        long missing = 0;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM runs WHERE id = ? AND "
                                            "status = 'succeeded'",
                                            -1, &st, NULL),
                         SQLITE_OK);
        for (i = 0; i < nids; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, all[i]);
            assert_int_equal(sqlite3_step(st), SQLITE_ROW);
            missing += sqlite3_column_int64(st, 0) != 1;
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        Sleep(1000);
        rel_proc_memory(s->proc.process, &priv_after, &ws_after);
        handles_after = rel_handle_count(s->proc.process, 0x8000);
        rel_figure("load.clients",
                   "clients=%ld seconds=%ld commands=%ld run=%ld status=%ld list=%ld "
                   "history=%ld failed=%ld ids=%ld duplicate_ids=%ld rows=%lld "
                   "succeeded=%lld lost=%ld private_before=%lu after=%lu handles_before=%u "
                   "after=%u elapsed_ms=%lu",
                   nclients, seconds, commands, kind_total[0], kind_total[1], kind_total[2],
                   kind_total[3], failed, nids, dups, (long long)rows, (long long)succeeded,
                   missing, (unsigned long)priv_before, (unsigned long)priv_after, handles_before,
                   handles_after, (unsigned long)(GetTickCount() - start));
        assert_int_equal(missing, 0);
    }
    assert_int_equal(failed, 0);
    assert_int_equal(dups, 0);
    assert_true(kind_total[0] >= nclients / 4);
    /* The warm-up run plus one per printed id, and nothing else. */
    assert_int_equal(rows, nids + 1);
    assert_int_equal(succeeded, nids + 1);
    /* A leak of one handle per command would add hundreds; allow lazily made objects. */
    assert_true(handles_after <= handles_before + 8);
    /* Slack for SQLite's page caches, which grow with the database up to their 2 MiB
       default; a leak of 1 KiB per command would exceed it within a campaign's minute. */
    assert_true(priv_after <= priv_before + 2 * 1024 * 1024);
    free(all);
    free(c);
    assert_int_equal(e2e_svc_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            many_apcctl_clients_for_a_minute_lose_nothing_and_leave_no_growth, e2e_svc_setup,
            e2e_svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
