/*
 * test_svclog.c - the service log: exact line format, one line per message line, DEBUG
 * filtering, which lines reach the event log, rotation, concurrent writers, open errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svclog.h"
#include "win_util.h"

static char dir[MAX_PATH * 3];
static char events[4096];
static SRWLOCK events_lock = SRWLOCK_INIT;

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return INT64_C(1795677302123); /* 2026-11-26T07:15:02.123Z */
}

static void event_hook(void *ctx, WORD type, DWORD id, const char *text)
{
    size_t n;
    (void)ctx;
    AcquireSRWLockExclusive(&events_lock);
    n = strlen(events);
    (void)snprintf(events + n, sizeof events - n, "[%u %lu] %s\n", (unsigned)type,
                   (unsigned long)id, text);
    ReleaseSRWLockExclusive(&events_lock);
}

static const apc_svclog_hooks_t hooks = {fixed_now, event_hook, NULL};

static int setup(void **state)
{
    wchar_t tmp[MAX_PATH];
    char *t;
    static int seq;
    (void)state;
    events[0] = '\0';
    assert_true(GetTempPathW(MAX_PATH, tmp) > 0);
    t = apc_wide_to_utf8(tmp);
    (void)snprintf(dir, sizeof dir, "%sapc-test-svclog-%lu-%llu-%d", t, GetCurrentProcessId(),
                   (unsigned long long)GetTickCount64(), ++seq);
    free(t);
    assert_true(CreateDirectoryA(dir, NULL));
    return 0;
}

static apc_svclog_t *open_log(uint64_t max_bytes, int keep, int debug)
{
    apc_svclog_opts_t o;
    apc_svclog_t *log = NULL;
    char err[512];
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.max_bytes = max_bytes;
    o.keep = keep;
    o.debug = debug;
    o.hooks = &hooks;
    assert_int_equal(apc_svclog_open(&o, &log, err, sizeof err), 0);
    return log;
}

static char *read_log(const char *suffix)
{
    char path[MAX_PATH * 3];
    FILE *f;
    char *s;
    long n;
    (void)snprintf(path, sizeof path, "%s\\apcsvc.log%s", dir, suffix);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static void line_is_utc_time_level_component_message(void **state)
{
    apc_svclog_t *log = open_log(0, 0, 0);
    char *s;
    (void)state;
    apc_svclog_engine_sink(log, APC_LOG_INFO, "started 4 workers");
    apc_svclog_close(log);
    s = read_log("");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z INFO engine: started 4 workers\r\n");
    free(s);
    assert_string_equal(events, "");
}

static void each_message_line_is_its_own_log_line(void **state)
{
    apc_svclog_t *log = open_log(0, 0, 0);
    char *s;
    (void)state;
    apc_svclog_write(log, APC_LOG_WARNING, "config", "a.json:1:2: first\na.json:3:4: second\r\n");
    apc_svclog_close(log);
    s = read_log("");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z WARNING config: a.json:1:2: first\r\n"
                           "2026-11-26T07:15:02.123Z WARNING config: a.json:3:4: second \r\n");
    free(s);
    /* One event log entry with the whole text. */
    assert_string_equal(events, "[2 101] config: a.json:1:2: first\na.json:3:4: second\r\n\n");
}

static void debug_lines_need_debug(void **state)
{
    apc_svclog_t *log = open_log(0, 0, 0);
    char *s;
    (void)state;
    apc_svclog_write(log, APC_LOG_DEBUG, "engine", "hidden");
    apc_svclog_close(log);
    log = open_log(0, 0, 1);
    apc_svclog_write(log, APC_LOG_DEBUG, "engine", "shown %d", 1);
    apc_svclog_close(log);
    s = read_log("");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z DEBUG engine: shown 1\r\n");
    free(s);
}

static void errors_warnings_and_milestones_reach_the_event_log(void **state)
{
    apc_svclog_t *log = open_log(0, 0, 0);
    (void)state;
    apc_svclog_write(log, APC_LOG_ERROR, "engine", "run 7 of job \"x\" failed: exit code 3");
    apc_svclog_write(log, APC_LOG_WARNING, "engine", "worker slow");
    apc_svclog_write(log, APC_LOG_INFO, "engine", "not in the event log");
    apc_svclog_event(log, APC_LOG_INFO, APC_EVENT_STARTED, "service", "started");
    apc_svclog_close(log);
    assert_string_equal(events, "[1 100] engine: run 7 of job \"x\" failed: exit code 3\n"
                                "[2 101] engine: worker slow\n"
                                "[4 1] service: started\n");
}

static void rotation_keeps_the_newest_files(void **state)
{
    /* Each line is 24 + 1 + 4 + 1 + 6 + 2 + 2 + 2 = 42 bytes; 100 bytes hold two lines. */
    apc_svclog_t *log = open_log(100, 2, 0);
    char *s;
    (void)state;
    for (int i = 0; i < 8; i++)
        apc_svclog_write(log, APC_LOG_INFO, "engine", "n%d", i);
    apc_svclog_close(log);
    s = read_log("");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z INFO engine: n6\r\n"
                           "2026-11-26T07:15:02.123Z INFO engine: n7\r\n");
    free(s);
    s = read_log(".1");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z INFO engine: n4\r\n"
                           "2026-11-26T07:15:02.123Z INFO engine: n5\r\n");
    free(s);
    s = read_log(".2");
    assert_string_equal(s, "2026-11-26T07:15:02.123Z INFO engine: n2\r\n"
                           "2026-11-26T07:15:02.123Z INFO engine: n3\r\n");
    free(s);
    assert_null(read_log(".3"));
}

static apc_svclog_t *shared_log;

static DWORD WINAPI writer(LPVOID p)
{
    for (int i = 0; i < 500; i++)
        apc_svclog_write(shared_log, APC_LOG_INFO, "t", "thread %d line %03d", (int)(INT_PTR)p, i);
    return 0;
}

static void concurrent_writers_lose_no_line(void **state)
{
    HANDLE t[4];
    char *s, *line, *next;
    int count = 0;
    (void)state;
    shared_log = open_log(0, 0, 0);
    for (int i = 0; i < 4; i++) {
        t[i] = CreateThread(NULL, 0, writer, (LPVOID)(INT_PTR)i, 0, NULL);
        assert_non_null(t[i]);
    }
    assert_int_equal(WaitForMultipleObjects(4, t, TRUE, 60000), WAIT_OBJECT_0);
    for (int i = 0; i < 4; i++)
        CloseHandle(t[i]);
    assert_int_equal(apc_svclog_lost(shared_log), 0);
    apc_svclog_close(shared_log);
    s = read_log("");
    for (line = s; *line != '\0'; line = next + 2) {
        next = strstr(line, "\r\n");
        assert_non_null(next);
        assert_int_equal(next - line, 50); /* every line whole, none interleaved */
        assert_memory_equal(line, "2026-11-26T07:15:02.123Z INFO t: thread ", 40);
        count++;
    }
    assert_int_equal(count, 2000);
    free(s);
}

static void missing_folder_is_an_open_error(void **state)
{
    apc_svclog_opts_t o;
    apc_svclog_t *log = (apc_svclog_t *)&o;
    char err[512], want[MAX_PATH * 3 + 64], p[MAX_PATH * 3];
    (void)state;
    memset(&o, 0, sizeof o);
    (void)snprintf(p, sizeof p, "%s\\nope", dir);
    o.dir = p;
    assert_int_equal(apc_svclog_open(&o, &log, err, sizeof err), APC_ENOTFOUND);
    assert_null(log);
    (void)snprintf(want, sizeof want, "opening log file \"%s\\apcsvc.log\": ", p);
    assert_memory_equal(err, want, strlen(want));
    assert_non_null(strstr(err, " (error 3)"));
}

static void real_event_source_is_optional(void **state)
{
    apc_svclog_opts_t o;
    apc_svclog_t *log = NULL;
    char err[256];
    (void)state;
    memset(&o, 0, sizeof o);
    o.event_source = APC_SVCLOG_SOURCE; /* not registered in the test prefix */
    assert_int_equal(apc_svclog_open(&o, &log, err, sizeof err), 0);
    /* Wine's ReportEventW is a stub; this checks only that nothing fails (text: WINEDEBUG=+eventlog). */
    apc_svclog_write(log, APC_LOG_ERROR, "test", "event log entry from test_svclog");
    apc_svclog_close(log);
    apc_svclog_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(line_is_utc_time_level_component_message, setup),
        cmocka_unit_test_setup(each_message_line_is_its_own_log_line, setup),
        cmocka_unit_test_setup(debug_lines_need_debug, setup),
        cmocka_unit_test_setup(errors_warnings_and_milestones_reach_the_event_log, setup),
        cmocka_unit_test_setup(rotation_keeps_the_newest_files, setup),
        cmocka_unit_test_setup(concurrent_writers_lose_no_line, setup),
        cmocka_unit_test_setup(missing_folder_is_an_open_error, setup),
        cmocka_unit_test(real_event_source_is_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
