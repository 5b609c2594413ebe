/*
 * test_service_scm.c - apcsvc.exe in service mode, driven through the service control manager
 * from inside Wine exactly as an installer and an operator would: OpenSCManagerW,
 * CreateServiceW with the quoted image path and --config, StartServiceW, QueryServiceStatusEx
 * until RUNNING, ControlService(PARAMCHANGE) to reload, ControlService(STOP) until STOPPED,
 * DeleteService. Results are read from the places an operator looks: the SCM status, the
 * service's log file and the history database (read-only).
 *
 * Every test installs a service with a unique name (and so a unique control pipe and private
 * folder); the fixture's teardown stops and deletes it and closes every SC_HANDLE, whether
 * the test passed or failed half-way.
 *
 * Wine notes (DESIGN.md section 5): `sc control NAME paramchange` is not implemented in Wine,
 * hence ControlService from this program; the SCM never restarts a crashed service there, so
 * nothing here depends on failure actions.
 *
 * Thread: the cmocka test thread; the service runs in its own process under services.exe.
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

#include "apc_history.h"
#include "apc_str.h"
#include "e2e_harness.h"
#include "win_util.h"

typedef struct scm_fix {
    e2e_svc_t s; /* name, private folder, config; its process is the SCM's, not ours */
    SC_HANDLE scm;
    SC_HANDLE svc;
} scm_fix_t;

static int setup(void **state)
{
    *state = calloc(1, sizeof(scm_fix_t));
    return *state == NULL ? -1 : 0;
}

/* Polls the service until it reports want (or STOPPED), at most ms; returns the last status. */
static SERVICE_STATUS_PROCESS wait_state(SC_HANDLE svc, DWORD want, DWORD ms)
{
    SERVICE_STATUS_PROCESS st;
    DWORD need = 0, start = GetTickCount();

    for (;;) {
        if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof st, &need))
            fail_msg("QueryServiceStatusEx failed: error %lu", (unsigned long)GetLastError());
        if (st.dwCurrentState == want || st.dwCurrentState == SERVICE_STOPPED ||
            GetTickCount() - start > ms)
            return st;
        Sleep(50);
    }
}

/* Stops (if needed) and deletes the service, then closes every handle. Any path. */
static int teardown(void **state)
{
    scm_fix_t *f = *state;
    SERVICE_STATUS st;

    if (f->svc != NULL) {
        SERVICE_STATUS_PROCESS sp = wait_state(f->svc, SERVICE_STOPPED, 0);
        if (sp.dwCurrentState != SERVICE_STOPPED) {
            (void)ControlService(f->svc, SERVICE_CONTROL_STOP, &st);
            (void)wait_state(f->svc, SERVICE_STOPPED, E2E_STOP_MS);
        }
        (void)DeleteService(f->svc);
        (void)CloseServiceHandle(f->svc);
    }
    if (f->scm != NULL)
        (void)CloseServiceHandle(f->scm);
    e2e_svc_free(&f->s);
    free(f);
    return 0;
}

/*
 * Writes a config with jobs, installs the service under the instance's unique name with the
 * documented quoted image path, starts it and waits for RUNNING. Returns the status.
 */
static SERVICE_STATUS_PROCESS install_and_start(scm_fix_t *f, const char *jobs)
{
    char exe[MAX_PATH], image[3 * MAX_PATH];
    wchar_t *wname, *wimage;
    SERVICE_STATUS_PROCESS st;

    e2e_svc_init(&f->s, "scm");
    e2e_svc_config(&f->s, 2, jobs);
    e2e_win_path(E2E_APCSVC, exe, sizeof exe);
    (void)snprintf(image, sizeof image, "\"%s\" --config \"%s\"", exe, f->s.config);
    wname = e2e_wide("%s", f->s.name);
    wimage = e2e_wide("%s", image);

    f->scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
    assert_non_null(f->scm);
    f->svc = CreateServiceW(f->scm, wname, wname, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                            SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL, wimage, NULL, NULL, NULL,
                            NULL, NULL);
    free(wname);
    free(wimage);
    if (f->svc == NULL)
        fail_msg("CreateServiceW failed: error %lu", (unsigned long)GetLastError());
    if (!StartServiceW(f->svc, 0, NULL))
        fail_msg("StartServiceW failed: error %lu", (unsigned long)GetLastError());
    st = wait_state(f->svc, SERVICE_RUNNING, E2E_START_MS);
    if (st.dwCurrentState != SERVICE_RUNNING) {
        char *log = e2e_slurp(f->s.log);
        print_error("service log:\n%s\n", log != NULL ? log : "(none)");
        free(log);
        fail_msg("service %s: state %lu, exit %lu/%lu, not RUNNING", f->s.name,
                 (unsigned long)st.dwCurrentState, (unsigned long)st.dwWin32ExitCode,
                 (unsigned long)st.dwServiceSpecificExitCode);
    }
    return st;
}

/* Waits until the service log contains text; fails with the log after ms. */
static void wait_log(const scm_fix_t *f, const char *text, DWORD ms)
{
    DWORD start = GetTickCount();

    for (;;) {
        char *log = e2e_lf(e2e_slurp(f->s.log));
        int found = log != NULL && strstr(log, text) != NULL;
        if (found) {
            free(log);
            return;
        }
        if (GetTickCount() - start > ms) {
            print_error("service log:\n%s\n", log != NULL ? log : "(none)");
            free(log);
            fail_msg("the service log has no \"%s\" after %lu ms", text, (unsigned long)ms);
        }
        free(log);
        Sleep(100);
    }
}

/* Waits until job has at least n succeeded scheduled runs in the history. */
static void wait_runs(const scm_fix_t *f, const char *job, size_t n, DWORD ms)
{
    e2e_rows_t rows = {{0}, 0};
    DWORD start = GetTickCount();
    size_t got = 0;

    for (;;) {
        if (e2e_rows_load(f->s.db, job, &rows) == 0) {
            size_t i;
            got = 0;
            for (i = 0; i < rows.n; i++)
                if (rows.r[i]->status == APC_RUN_SUCCEEDED &&
                    rows.r[i]->trigger == APC_TRIGGER_SCHEDULE)
                    got++;
        }
        e2e_rows_free(&rows);
        if (got >= n)
            return;
        if (GetTickCount() - start > ms)
            fail_msg("job %s: %zu scheduled runs succeeded after %lu ms, wanted %zu", job, got,
                     (unsigned long)ms, n);
        Sleep(100);
    }
}

static const char tick_job[] =
    "{\"name\": \"tick\", \"builtin\": \"noop\", \"schedule\": \"@every 1s\"}";

static void start_reports_running_and_scheduled_jobs_fire(void **state)
{
    scm_fix_t *f = *state;
    SERVICE_STATUS_PROCESS st = install_and_start(f, tick_job);
    char want[512];

    assert_int_equal(st.dwServiceType, SERVICE_WIN32_OWN_PROCESS);
    assert_true(st.dwProcessId != 0);
    assert_true(e2e_pid_alive(st.dwProcessId));
    assert_true((st.dwControlsAccepted & SERVICE_ACCEPT_STOP) != 0);
    (void)snprintf(want, sizeof want,
                   " INFO service: apcsvc 0.1.0 started as \"%s\" (service mode): %s, 1 job(s)",
                   f->s.name, f->s.config);
    wait_log(f, want, 10000);
    wait_runs(f, "tick", 2, 60000);
}

static void paramchange_reloads_the_configuration(void **state)
{
    scm_fix_t *f = *state;
    SERVICE_STATUS st;
    char want[512];
    apc_buf_t jobs = {0};

    (void)install_and_start(f, tick_job);
    apc_buf_printf(&jobs,
                   "%s,\n{\"name\": \"added\", \"builtin\": \"noop\", "
                   "\"schedule\": \"@every 1s\"}",
                   tick_job);
    assert_false(apc_buf_failed(&jobs));
    e2e_svc_config(&f->s, 2, jobs.data);
    apc_buf_free(&jobs);

    if (!ControlService(f->svc, SERVICE_CONTROL_PARAMCHANGE, &st))
        fail_msg("ControlService(PARAMCHANGE) failed: error %lu", (unsigned long)GetLastError());
    assert_int_equal(st.dwCurrentState, SERVICE_RUNNING);
    wait_log(f, " INFO service: reload requested (PARAMCHANGE)\n", 10000);
    (void)snprintf(want, sizeof want, " INFO service: configuration reloaded from %s\n",
                   f->s.config);
    wait_log(f, want, 30000);
    /* The job that only the new file has now runs on its schedule. */
    wait_runs(f, "added", 1, 60000);
}

static void paramchange_with_a_broken_config_keeps_the_old_one(void **state)
{
    scm_fix_t *f = *state;
    SERVICE_STATUS st;
    char want[1024];
    e2e_rows_t rows = {{0}, 0};
    size_t before;

    (void)install_and_start(f, tick_job);
    wait_runs(f, "tick", 1, 60000);
    e2e_write_file(f->s.config, "{\"jobs\": [{\"name\": \"tick\", \"builtin\": \"noop\", "
                                "\"retries\": 101}]}\n");
    assert_true(ControlService(f->svc, SERVICE_CONTROL_PARAMCHANGE, &st));
    /* The operator reads the findings themselves in the log (and event 5), not the protocol
       answer they came in. */
    (void)snprintf(
        want, sizeof want,
        " ERROR service: reload refused (invalid argument), the previous configuration stays "
        "in force: %s:1:58: jobs[0].retries: expected an integer 0-100, got 101\n",
        f->s.config);
    wait_log(f, want, 30000);
    /* Still running, still scheduling. */
    assert_int_equal(wait_state(f->svc, SERVICE_RUNNING, 0).dwCurrentState, SERVICE_RUNNING);
    assert_int_equal(e2e_rows_load(f->s.db, "tick", &rows), 0);
    before = rows.n;
    e2e_rows_free(&rows);
    wait_runs(f, "tick", before + 1, 60000);
}

static void stop_reports_stopped_with_exit_code_0_and_the_process_ends(void **state)
{
    scm_fix_t *f = *state;
    SERVICE_STATUS st;
    SERVICE_STATUS_PROCESS sp = install_and_start(f, tick_job);
    DWORD pid = sp.dwProcessId;

    if (!ControlService(f->svc, SERVICE_CONTROL_STOP, &st))
        fail_msg("ControlService(STOP) failed: error %lu", (unsigned long)GetLastError());
    assert_true(st.dwCurrentState == SERVICE_STOP_PENDING || st.dwCurrentState == SERVICE_STOPPED);
    sp = wait_state(f->svc, SERVICE_STOPPED, E2E_STOP_MS);
    assert_int_equal(sp.dwCurrentState, SERVICE_STOPPED);
    assert_int_equal(sp.dwWin32ExitCode, NO_ERROR);
    assert_int_equal(sp.dwServiceSpecificExitCode, 0);
    assert_true(e2e_pid_wait_gone(pid, 30000));
    wait_log(f, " INFO service: stopped\n", 1000);

    assert_true(DeleteService(f->svc));
    assert_true(CloseServiceHandle(f->svc));
    f->svc = NULL;
}

static void a_broken_config_stops_the_service_with_specific_code_2(void **state)
{
    scm_fix_t *f = *state;
    char exe[MAX_PATH], image[3 * MAX_PATH];
    wchar_t *wname, *wimage;
    SERVICE_STATUS_PROCESS sp;

    e2e_svc_init(&f->s, "scmbad");
    e2e_write_file(f->s.config, "{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", "
                                "\"schedule\": \"61 * * * *\"}]}\n");
    e2e_win_path(E2E_APCSVC, exe, sizeof exe);
    (void)snprintf(image, sizeof image, "\"%s\" --config \"%s\"", exe, f->s.config);
    wname = e2e_wide("%s", f->s.name);
    wimage = e2e_wide("%s", image);
    f->scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
    assert_non_null(f->scm);
    f->svc = CreateServiceW(f->scm, wname, wname, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                            SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL, wimage, NULL, NULL, NULL,
                            NULL, NULL);
    free(wname);
    free(wimage);
    assert_non_null(f->svc);
    /* StartService may succeed (the process started) or report the failure itself. */
    (void)StartServiceW(f->svc, 0, NULL);
    sp = wait_state(f->svc, SERVICE_STOPPED, E2E_START_MS);
    assert_int_equal(sp.dwCurrentState, SERVICE_STOPPED);
    assert_int_equal(sp.dwWin32ExitCode, ERROR_SERVICE_SPECIFIC_ERROR);
    assert_int_equal(sp.dwServiceSpecificExitCode, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(start_reports_running_and_scheduled_jobs_fire),
        T(paramchange_reloads_the_configuration),
        T(paramchange_with_a_broken_config_keeps_the_old_one),
        T(stop_reports_stopped_with_exit_code_0_and_the_process_ends),
        T(a_broken_config_stops_the_service_with_specific_code_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
