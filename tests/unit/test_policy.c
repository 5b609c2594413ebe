/*
 * test_policy.c - retry backoff, overlap, missed-run and jitter decisions.
 *
 * The policies are pure, so every rule and every boundary is pinned here
 * with exact values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "apc_error.h"
#include "apc_policy.h"

#define NONE APC_POLICY_NONE

static void retry_delay_doubles_from_the_backoff(void **state)
{
    (void)state;
    assert_int_equal(apc_retry_delay_ms(1000, 1), 1000);
    assert_int_equal(apc_retry_delay_ms(1000, 2), 2000);
    assert_int_equal(apc_retry_delay_ms(1000, 3), 4000);
    assert_int_equal(apc_retry_delay_ms(1000, 10), 512000);
}

static void retry_delay_is_capped_at_one_hour(void **state)
{
    (void)state;
    assert_int_equal(apc_retry_delay_ms(1000, 12), 2048000);
    assert_int_equal(apc_retry_delay_ms(1000, 13), 3600000); /* 4096000 > cap */
    assert_int_equal(apc_retry_delay_ms(3600000, 1), 3600000);
    assert_int_equal(apc_retry_delay_ms(3600001, 1), 3600000);
    assert_int_equal(apc_retry_delay_ms(1800000, 2), 3600000); /* exactly the cap */
    assert_int_equal(apc_retry_delay_ms(1800001, 2), 3600000);
}

static void retry_delay_never_overflows(void **state)
{
    (void)state;
    assert_int_equal(apc_retry_delay_ms(1, 41), 3600000);
    assert_int_equal(apc_retry_delay_ms(1, 63), 3600000);
    assert_int_equal(apc_retry_delay_ms(1, 64), 3600000);
    assert_int_equal(apc_retry_delay_ms(1, 2147483647), 3600000);
    assert_int_equal(apc_retry_delay_ms(INT64_MAX, 2147483647), 3600000);
    assert_int_equal(apc_retry_delay_ms(1, 22), 2097152);
    assert_int_equal(apc_retry_delay_ms(1, 23), 3600000);
}

static void retry_delay_is_zero_without_backoff_or_retry(void **state)
{
    (void)state;
    assert_int_equal(apc_retry_delay_ms(0, 1), 0);
    assert_int_equal(apc_retry_delay_ms(-5, 3), 0);
    assert_int_equal(apc_retry_delay_ms(1000, 0), 0);
    assert_int_equal(apc_retry_delay_ms(1000, -1), 0);
}

static void only_failed_and_timed_out_are_retried(void **state)
{
    (void)state;
    assert_int_equal(apc_retry_status_is_retryable("failed"), 1);
    assert_int_equal(apc_retry_status_is_retryable("timed_out"), 1);
    assert_int_equal(apc_retry_status_is_retryable("succeeded"), 0);
    assert_int_equal(apc_retry_status_is_retryable("cancelled"), 0);
    assert_int_equal(apc_retry_status_is_retryable("skipped"), 0);
    assert_int_equal(apc_retry_status_is_retryable("interrupted"), 0);
    assert_int_equal(apc_retry_status_is_retryable("queued"), APC_EINVAL);
    assert_int_equal(apc_retry_status_is_retryable("running"), APC_EINVAL);
    assert_int_equal(apc_retry_status_is_retryable("FAILED"), APC_EINVAL);
    assert_int_equal(apc_retry_status_is_retryable(NULL), APC_EINVAL);
}

static void failed_first_attempt_is_retried_after_the_backoff(void **state)
{
    apc_retry_decision_t d;
    (void)state;
    assert_int_equal(apc_retry_decide("failed", 1, 3, 30000, 1700000000000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 1);
    assert_int_equal(d.next_attempt, 2);
    assert_int_equal(d.delay_ms, 30000);
    assert_int_equal(d.due_ms, 1700000030000);
}

static void third_retry_waits_four_backoffs(void **state)
{
    apc_retry_decision_t d;
    (void)state;
    assert_int_equal(apc_retry_decide("timed_out", 3, 3, 30000, 1000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 1);
    assert_int_equal(d.next_attempt, 4);
    assert_int_equal(d.delay_ms, 120000);
    assert_int_equal(d.due_ms, 121000);
}

static void last_attempt_is_final(void **state)
{
    apc_retry_decision_t d;
    (void)state;
    /* retries = 3 allows attempts 1..4; attempt 4 failing is the end. */
    assert_int_equal(apc_retry_decide("failed", 4, 3, 30000, 1000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 0);
    assert_int_equal(d.next_attempt, 0);
    assert_int_equal(d.delay_ms, 0);
    assert_true(d.due_ms == NONE);
    assert_int_equal(apc_retry_decide("failed", 1, 0, 30000, 1000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 0);
}

static void cancelled_run_is_not_retried(void **state)
{
    apc_retry_decision_t d;
    (void)state;
    assert_int_equal(apc_retry_decide("cancelled", 1, 5, 1000, 1000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 0);
    assert_int_equal(apc_retry_decide("interrupted", 1, 5, 1000, 1000, &d, NULL, 0), 0);
    assert_int_equal(d.retry, 0);
}

static void retry_due_time_saturates(void **state)
{
    apc_retry_decision_t d;
    (void)state;
    assert_int_equal(apc_retry_decide("failed", 1, 1, 1000, INT64_MAX - 10, &d, NULL, 0), 0);
    assert_true(d.due_ms == INT64_MAX);
}

static void retry_rejects_bad_input_with_a_message(void **state)
{
    apc_retry_decision_t d;
    char err[128];
    (void)state;
    assert_int_equal(apc_retry_decide("running", 1, 1, 1000, 0, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "status \"running\" is not a final run status");
    assert_int_equal(apc_retry_decide("failed", 0, 1, 1000, 0, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "attempt 0: attempts count from 1");
    assert_int_equal(apc_retry_decide("failed", 1, -1, 1000, 0, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "retries -1 is negative");
    assert_int_equal(apc_retry_decide("failed", 1, 1, 1000, NONE, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "the run has no finish time");
}

static void overlap_table_is_exact(void **state)
{
    static const struct {
        apc_overlap_t policy;
        int running;
        apc_overlap_action_t want;
    } rows[] = {
        {APC_OVERLAP_SKIP, 0, APC_OVERLAP_ACT_START},
        {APC_OVERLAP_SKIP, 1, APC_OVERLAP_ACT_SKIP},
        {APC_OVERLAP_SKIP, 7, APC_OVERLAP_ACT_SKIP},
        {APC_OVERLAP_QUEUE, 0, APC_OVERLAP_ACT_START},
        {APC_OVERLAP_QUEUE, 1, APC_OVERLAP_ACT_QUEUE},
        {APC_OVERLAP_PARALLEL, 0, APC_OVERLAP_ACT_START},
        {APC_OVERLAP_PARALLEL, 3, APC_OVERLAP_ACT_START},
        {APC_OVERLAP_REPLACE, 0, APC_OVERLAP_ACT_START},
        {APC_OVERLAP_REPLACE, 2, APC_OVERLAP_ACT_REPLACE},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        apc_overlap_action_t got = (apc_overlap_action_t)-1;
        assert_int_equal(apc_overlap_decide(rows[i].policy, rows[i].running, &got), 0);
        assert_int_equal(got, rows[i].want);
    }
}

static void overlap_rejects_unknown_policy_and_negative_count(void **state)
{
    apc_overlap_action_t got;
    (void)state;
    assert_int_equal(apc_overlap_decide((apc_overlap_t)9, 0, &got), APC_EINVAL);
    assert_int_equal(apc_overlap_decide(APC_OVERLAP_SKIP, -1, &got), APC_EINVAL);
}

static void overlap_action_names(void **state)
{
    (void)state;
    assert_string_equal(apc_overlap_action_name(APC_OVERLAP_ACT_START), "start");
    assert_string_equal(apc_overlap_action_name(APC_OVERLAP_ACT_SKIP), "skip");
    assert_string_equal(apc_overlap_action_name(APC_OVERLAP_ACT_QUEUE), "queue");
    assert_string_equal(apc_overlap_action_name(APC_OVERLAP_ACT_REPLACE), "replace");
    assert_string_equal(apc_overlap_action_name((apc_overlap_action_t)42), "?");
}

/* A daily job at 02:00 UTC; the service was down from day 1 12:00 to day 4 10:00. */
#define DAY INT64_C(86400000)
#define H INT64_C(3600000)
static apc_missed_input_t downtime(apc_missed_t policy, int64_t within)
{
    apc_missed_input_t in;
    in.policy = policy;
    in.last_fire_ms = 1 * DAY + 2 * H;
    in.now_ms = 4 * DAY + 10 * H;
    in.missed_within_ms = within;
    in.first_missed_ms = 2 * DAY + 2 * H;
    in.latest_missed_ms = 4 * DAY + 2 * H;
    return in;
}

static void missed_runs_give_one_catch_up_for_the_latest(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, NONE);
    apc_missed_decision_t d;
    (void)state;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_RUN);
    assert_int_equal(d.reason, APC_MISSED_WHY_CATCH_UP);
    assert_true(d.fire_ms == 4 * DAY + 2 * H);
    assert_true(d.late_ms == 8 * H);
    assert_string_equal(apc_missed_reason_text(d.reason), "one catch-up run");
}

static void missed_runs_are_skipped_by_policy(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_SKIP, NONE);
    apc_missed_decision_t d;
    (void)state;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_NONE);
    assert_int_equal(d.reason, APC_MISSED_WHY_POLICY_SKIP);
    assert_true(d.fire_ms == NONE);
    assert_true(d.late_ms == 8 * H);
}

static void catch_up_exactly_at_missed_within_still_runs(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, 8 * H);
    apc_missed_decision_t d;
    (void)state;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_RUN);
    assert_true(d.fire_ms == 4 * DAY + 2 * H);
}

static void catch_up_one_ms_past_missed_within_is_dropped(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, 8 * H - 1);
    apc_missed_decision_t d;
    (void)state;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_NONE);
    assert_int_equal(d.reason, APC_MISSED_WHY_TOO_LATE);
    assert_true(d.late_ms == 8 * H);
    assert_string_equal(apc_missed_reason_text(d.reason), "later than missed_within");
}

static void new_job_does_not_catch_up(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, NONE);
    apc_missed_decision_t d;
    (void)state;
    in.last_fire_ms = NONE;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_NONE);
    assert_int_equal(d.reason, APC_MISSED_WHY_NEVER_HANDLED);
}

static void nothing_missed_means_nothing_to_do(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, NONE);
    apc_missed_decision_t d;
    (void)state;
    in.first_missed_ms = in.latest_missed_ms = NONE;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_NONE);
    assert_int_equal(d.reason, APC_MISSED_WHY_NOTHING_MISSED);
    assert_true(d.late_ms == 0);
    /* A "missed" time still in the future is not missed. */
    in = downtime(APC_MISSED_RUN_ONCE, NONE);
    in.latest_missed_ms = in.now_ms + 1;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.reason, APC_MISSED_WHY_NOTHING_MISSED);
}

static void a_fire_time_equal_to_now_is_missed_with_zero_lateness(void **state)
{
    apc_missed_input_t in = downtime(APC_MISSED_RUN_ONCE, 0);
    apc_missed_decision_t d;
    (void)state;
    in.latest_missed_ms = in.now_ms;
    assert_int_equal(apc_missed_decide(&in, &d, NULL, 0), 0);
    assert_int_equal(d.action, APC_MISSED_ACT_RUN);
    assert_true(d.fire_ms == in.now_ms);
    assert_true(d.late_ms == 0);
}

static void missed_rejects_inconsistent_input(void **state)
{
    apc_missed_input_t in;
    apc_missed_decision_t d;
    char err[128];
    (void)state;
    in = downtime(APC_MISSED_RUN_ONCE, NONE);
    in.latest_missed_ms = NONE;
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "first and latest missed fire times must both be set or both be NONE");
    in = downtime(APC_MISSED_RUN_ONCE, NONE);
    in.first_missed_ms = in.latest_missed_ms + 1;
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "first missed fire time is after the latest missed fire time");
    in = downtime(APC_MISSED_RUN_ONCE, NONE);
    in.first_missed_ms = in.last_fire_ms;
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "first missed fire time is not after the last fire time handled");
    in = downtime(APC_MISSED_RUN_ONCE, -1);
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "missed_within is negative");
    in = downtime((apc_missed_t)5, NONE);
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "unknown missed-run policy 5");
    in = downtime(APC_MISSED_RUN_ONCE, NONE);
    in.now_ms = NONE;
    assert_int_equal(apc_missed_decide(&in, &d, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "now is not set");
}

static void hash_functions_match_reference_values(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values; splitmix64 of 0 is the first output of the reference
       generator seeded with 0. */
    assert_true(apc_policy_fnv1a64("") == UINT64_C(0xcbf29ce484222325));
    assert_true(apc_policy_fnv1a64("a") == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(apc_policy_fnv1a64("foobar") == UINT64_C(0x85944171f73967e8));
    assert_true(apc_policy_splitmix64(0) == UINT64_C(0xe220a8397b1dcdaf));
}

static void jitter_values_are_pinned(void **state)
{
    (void)state;
    assert_int_equal(apc_jitter_ms(0, "backup", 1700000000000, 60000), 42251);
    assert_int_equal(apc_jitter_ms(42, "backup", 1700000000000, 60000), 25189);
    assert_int_equal(apc_jitter_ms(42, "report", 1700000000000, 60000), 52971);
    assert_int_equal(apc_jitter_ms(42, "backup", 1700000060000, 60000), 51583);
}

static void jitter_is_within_range_and_deterministic(void **state)
{
    int64_t t;
    int seen_zero_half = 0, seen_high_half = 0;
    (void)state;
    for (t = 0; t < 2000; t++) {
        int64_t j = apc_jitter_ms(7, "job", t * 60000, 999);
        assert_true(j >= 0 && j <= 999);
        assert_int_equal(j, apc_jitter_ms(7, "job", t * 60000, 999));
        seen_zero_half |= j < 500;
        seen_high_half |= j >= 500;
    }
    assert_true(seen_zero_half && seen_high_half);
    assert_int_equal(apc_jitter_ms(7, "job", 0, 0), 0);
    assert_int_equal(apc_jitter_ms(7, "job", 0, -5), 0);
    assert_true(apc_jitter_ms(7, NULL, 0, INT64_MAX) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_delay_doubles_from_the_backoff),
        cmocka_unit_test(retry_delay_is_capped_at_one_hour),
        cmocka_unit_test(retry_delay_never_overflows),
        cmocka_unit_test(retry_delay_is_zero_without_backoff_or_retry),
        cmocka_unit_test(only_failed_and_timed_out_are_retried),
        cmocka_unit_test(failed_first_attempt_is_retried_after_the_backoff),
        cmocka_unit_test(third_retry_waits_four_backoffs),
        cmocka_unit_test(last_attempt_is_final),
        cmocka_unit_test(cancelled_run_is_not_retried),
        cmocka_unit_test(retry_due_time_saturates),
        cmocka_unit_test(retry_rejects_bad_input_with_a_message),
        cmocka_unit_test(overlap_table_is_exact),
        cmocka_unit_test(overlap_rejects_unknown_policy_and_negative_count),
        cmocka_unit_test(overlap_action_names),
        cmocka_unit_test(missed_runs_give_one_catch_up_for_the_latest),
        cmocka_unit_test(missed_runs_are_skipped_by_policy),
        cmocka_unit_test(catch_up_exactly_at_missed_within_still_runs),
        cmocka_unit_test(catch_up_one_ms_past_missed_within_is_dropped),
        cmocka_unit_test(new_job_does_not_catch_up),
        cmocka_unit_test(nothing_missed_means_nothing_to_do),
        cmocka_unit_test(a_fire_time_equal_to_now_is_missed_with_zero_lateness),
        cmocka_unit_test(missed_rejects_inconsistent_input),
        cmocka_unit_test(hash_functions_match_reference_values),
        cmocka_unit_test(jitter_values_are_pinned),
        cmocka_unit_test(jitter_is_within_range_and_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
