/*
 * test_apc_semantics.c - the experiment ApcSched grew from, as an executable specification.
 *
 * A user-mode APC queued with QueueUserAPC runs only when its target thread enters an
 * alertable wait. The whole design rests on these three facts, so they are the first row of
 * our feature table and must hold on every platform we run on (Windows, and Wine in CI):
 *   1. an APC queued to a thread in a NON-alertable Sleep() does not run during that sleep;
 *   2. an APC queued to a thread in SleepEx(INFINITE-ish, TRUE) runs at once, on that very
 *      thread, and SleepEx returns WAIT_IO_COMPLETION long before its timeout;
 *   3. an APC still pending when a thread enters an alertable wait runs at that moment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <windows.h>

/* What an APC saw when it ran; written by the APC, read by the thread that queued it. */
typedef struct apc_probe {
    volatile LONG ran;
    DWORD thread_id;
    ULONGLONG ran_at_ms;
} apc_probe_t;

/* What the target thread saw; written by the target, read after it has been joined. */
typedef struct target {
    HANDLE ready; /* set just before the thread starts its wait */
    DWORD thread_id;
    DWORD sleep_ms;            /* length of the non-alertable Sleep (test 1) */
    LONG ran_during_sleep;     /* probe state right after Sleep returned */
    DWORD alertable_result;    /* what SleepEx returned */
    ULONGLONG alertable_start; /* tick count when SleepEx was entered */
    ULONGLONG alertable_end;   /* ... and when it returned */
    apc_probe_t *probe;
} target_t;

static void CALLBACK record_apc(ULONG_PTR param)
{
    apc_probe_t *probe = (apc_probe_t *)param;
    probe->thread_id = GetCurrentThreadId();
    probe->ran_at_ms = GetTickCount64();
    InterlockedExchange(&probe->ran, 1);
}

static DWORD WINAPI sleep_then_alertable(LPVOID arg)
{
    target_t *t = arg;
    t->thread_id = GetCurrentThreadId();
    SetEvent(t->ready);
    Sleep(t->sleep_ms); /* non-alertable: a queued APC must stay pending */
    t->ran_during_sleep = InterlockedCompareExchange(&t->probe->ran, 0, 0);
    t->alertable_start = GetTickCount64();
    t->alertable_result = SleepEx(30000, TRUE);
    t->alertable_end = GetTickCount64();
    return 0;
}

static DWORD WINAPI alertable_only(LPVOID arg)
{
    target_t *t = arg;
    t->thread_id = GetCurrentThreadId();
    t->alertable_start = GetTickCount64();
    SetEvent(t->ready);
    t->alertable_result = SleepEx(30000, TRUE);
    t->alertable_end = GetTickCount64();
    return 0;
}

/*
 * Starts fn on a new thread, waits until it is about to wait, queues the probe APC and
 * stores in *queued_at the tick count taken just BEFORE QueueUserAPC (the APC may run on
 * the other CPU before QueueUserAPC even returns).
 */
static HANDLE start_and_queue(LPTHREAD_START_ROUTINE fn, target_t *t, DWORD settle_ms,
                              ULONGLONG *queued_at)
{
    HANDLE thread;

    t->ready = CreateEventW(NULL, TRUE, FALSE, NULL);
    assert_non_null(t->ready);
    thread = CreateThread(NULL, 0, fn, t, 0, NULL);
    assert_non_null(thread);
    assert_int_equal(WaitForSingleObject(t->ready, 10000), WAIT_OBJECT_0);
    Sleep(settle_ms); /* let the target enter its wait */
    *queued_at = GetTickCount64();
    assert_int_not_equal(QueueUserAPC(record_apc, thread, (ULONG_PTR)t->probe), 0);
    return thread;
}

static void finish(HANDLE thread, target_t *t)
{
    assert_int_equal(WaitForSingleObject(thread, 60000), WAIT_OBJECT_0);
    assert_true(CloseHandle(thread));
    assert_true(CloseHandle(t->ready));
}

static void apc_does_not_run_during_a_non_alertable_sleep(void **state)
{
    apc_probe_t probe = {0};
    target_t t = {0};
    HANDLE thread;
    ULONGLONG queued_at;
    (void)state;

    t.probe = &probe;
    t.sleep_ms = 500;
    thread = start_and_queue(sleep_then_alertable, &t, 100, &queued_at);
    finish(thread, &t);

    assert_int_equal(t.ran_during_sleep, 0);
}

static void pending_apc_runs_when_the_thread_becomes_alertable(void **state)
{
    apc_probe_t probe = {0};
    target_t t = {0};
    HANDLE thread;
    ULONGLONG queued_at;
    (void)state;

    t.probe = &probe;
    t.sleep_ms = 500;
    thread = start_and_queue(sleep_then_alertable, &t, 100, &queued_at);
    finish(thread, &t);

    assert_int_equal(probe.ran, 1);
    assert_int_equal(probe.thread_id, t.thread_id);
    assert_int_equal(t.alertable_result, WAIT_IO_COMPLETION);
    /* It ran on entry to the alertable wait, not at its 30 s timeout. */
    assert_true(probe.ran_at_ms >= t.alertable_start);
    assert_true(t.alertable_end - t.alertable_start < 5000);
}

static void apc_runs_at_once_on_the_thread_in_an_alertable_wait(void **state)
{
    apc_probe_t probe = {0};
    target_t t = {0};
    HANDLE thread;
    ULONGLONG queued_at;
    (void)state;

    t.probe = &probe;
    thread = start_and_queue(alertable_only, &t, 200, &queued_at);
    finish(thread, &t);

    assert_int_equal(probe.ran, 1);
    assert_int_equal(probe.thread_id, t.thread_id);
    assert_int_not_equal(probe.thread_id, GetCurrentThreadId());
    assert_int_equal(t.alertable_result, WAIT_IO_COMPLETION);
    /* Woken by the APC (well under a second), far from the 30 s timeout. */
    assert_true(probe.ran_at_ms >= queued_at);
    assert_true(probe.ran_at_ms - queued_at < 1000);
    assert_true(t.alertable_end - t.alertable_start < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(apc_does_not_run_during_a_non_alertable_sleep),
        cmocka_unit_test(pending_apc_runs_when_the_thread_becomes_alertable),
        cmocka_unit_test(apc_runs_at_once_on_the_thread_in_an_alertable_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
