/*
 * apc_policy.c - retry backoff, overlap, missed-run and jitter decisions
 * (see apc_policy.h for the rules).
 *
 * Why this way: each rule is a small pure function of plain integers, so
 * the engine thread can apply it without locks and the tests can pin every
 * branch and every boundary. All arithmetic on instants saturates instead
 * of overflowing, because the inputs come from configuration and the
 * history database and must never cause undefined behaviour.
 *
 * Thread safety: no state; any thread.
 */
#include "apc_policy.h"

#include <string.h>

#include "apc_error.h"

int64_t apc_retry_delay_ms(int64_t backoff_ms, int retry)
{
    int shift;

    if (backoff_ms <= 0 || retry < 1)
        return 0;
    if (backoff_ms >= APC_RETRY_MAX_DELAY_MS)
        return APC_RETRY_MAX_DELAY_MS;
    shift = retry - 1;
    /* backoff < 2^22, so any shift of 41 or more is past the cap anyway. */
    if (shift >= 41)
        return APC_RETRY_MAX_DELAY_MS;
    if (backoff_ms > (APC_RETRY_MAX_DELAY_MS >> shift))
        return APC_RETRY_MAX_DELAY_MS;
    return backoff_ms << shift;
}

int apc_retry_status_is_retryable(const char *status)
{
    static const char *const retryable[] = {"failed", "timed_out"};
    static const char *const final_only[] = {"succeeded", "cancelled", "interrupted", "skipped"};
    size_t i;

    if (status == NULL)
        return APC_EINVAL;
    for (i = 0; i < sizeof retryable / sizeof retryable[0]; i++)
        if (strcmp(status, retryable[i]) == 0)
            return 1;
    for (i = 0; i < sizeof final_only / sizeof final_only[0]; i++)
        if (strcmp(status, final_only[i]) == 0)
            return 0;
    return APC_EINVAL;
}

/* Adds two instants/durations, saturating at the int64 range instead of overflowing. */
static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN + 1 - b)
        return INT64_MIN + 1;
    return a + b;
}

int apc_retry_decide(const char *status, int attempt, int retries, int64_t backoff_ms,
                     int64_t finished_ms, apc_retry_decision_t *out, char *err, size_t errsz)
{
    int r;

    out->retry = 0;
    out->next_attempt = 0;
    out->delay_ms = 0;
    out->due_ms = APC_POLICY_NONE;
    r = apc_retry_status_is_retryable(status);
    if (r < 0)
        return apc_seterr(err, errsz, APC_EINVAL, "status \"%s\" is not a final run status",
                          status ? status : "(null)");
    if (attempt < 1)
        return apc_seterr(err, errsz, APC_EINVAL, "attempt %d: attempts count from 1", attempt);
    if (retries < 0)
        return apc_seterr(err, errsz, APC_EINVAL, "retries %d is negative", retries);
    if (finished_ms == APC_POLICY_NONE)
        return apc_seterr(err, errsz, APC_EINVAL, "the run has no finish time");
    /* attempt k failed; it is followed by retry number k, if k <= retries. */
    if (r == 0 || attempt > retries)
        return 0;
    out->retry = 1;
    out->next_attempt = attempt + 1;
    out->delay_ms = apc_retry_delay_ms(backoff_ms, attempt);
    out->due_ms = sat_add(finished_ms, out->delay_ms);
    return 0;
}

int apc_overlap_decide(apc_overlap_t policy, int running, apc_overlap_action_t *out)
{
    if (running < 0)
        return APC_EINVAL;
    switch (policy) {
    case APC_OVERLAP_SKIP:
        *out = running > 0 ? APC_OVERLAP_ACT_SKIP : APC_OVERLAP_ACT_START;
        return 0;
    case APC_OVERLAP_QUEUE:
        *out = running > 0 ? APC_OVERLAP_ACT_QUEUE : APC_OVERLAP_ACT_START;
        return 0;
    case APC_OVERLAP_PARALLEL:
        *out = APC_OVERLAP_ACT_START;
        return 0;
    case APC_OVERLAP_REPLACE:
        *out = running > 0 ? APC_OVERLAP_ACT_REPLACE : APC_OVERLAP_ACT_START;
        return 0;
    default:
        return APC_EINVAL;
    }
}

const char *apc_overlap_action_name(apc_overlap_action_t action)
{
    switch (action) {
    case APC_OVERLAP_ACT_START:
        return "start";
    case APC_OVERLAP_ACT_SKIP:
        return "skip";
    case APC_OVERLAP_ACT_QUEUE:
        return "queue";
    case APC_OVERLAP_ACT_REPLACE:
        return "replace";
    default:
        return "?";
    }
}

/* Fills a "nothing to do" decision with the given reason. */
static void no_run(apc_missed_decision_t *out, apc_missed_reason_t why, int64_t late_ms)
{
    out->action = APC_MISSED_ACT_NONE;
    out->reason = why;
    out->fire_ms = APC_POLICY_NONE;
    out->late_ms = late_ms;
}

int apc_missed_decide(const apc_missed_input_t *in, apc_missed_decision_t *out, char *err,
                      size_t errsz)
{
    int64_t late;

    no_run(out, APC_MISSED_WHY_NOTHING_MISSED, 0);
    if (in->policy != APC_MISSED_RUN_ONCE && in->policy != APC_MISSED_SKIP)
        return apc_seterr(err, errsz, APC_EINVAL, "unknown missed-run policy %d", (int)in->policy);
    if (in->now_ms == APC_POLICY_NONE)
        return apc_seterr(err, errsz, APC_EINVAL, "now is not set");
    if (in->missed_within_ms != APC_POLICY_NONE && in->missed_within_ms < 0)
        return apc_seterr(err, errsz, APC_EINVAL, "missed_within is negative");
    if ((in->first_missed_ms == APC_POLICY_NONE) != (in->latest_missed_ms == APC_POLICY_NONE))
        return apc_seterr(err, errsz, APC_EINVAL,
                          "first and latest missed fire times must both be set or both be NONE");
    if (in->first_missed_ms == APC_POLICY_NONE)
        return 0;
    if (in->first_missed_ms > in->latest_missed_ms)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "first missed fire time is after the latest missed fire time");
    if (in->last_fire_ms != APC_POLICY_NONE && in->first_missed_ms <= in->last_fire_ms)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "first missed fire time is not after the last fire time handled");
    if (in->latest_missed_ms > in->now_ms)
        return 0;
    /* Both are real instants and latest <= now, so this cannot overflow. */
    late = in->now_ms - in->latest_missed_ms;
    if (in->last_fire_ms == APC_POLICY_NONE) {
        no_run(out, APC_MISSED_WHY_NEVER_HANDLED, late);
        return 0;
    }
    if (in->policy == APC_MISSED_SKIP) {
        no_run(out, APC_MISSED_WHY_POLICY_SKIP, late);
        return 0;
    }
    if (in->missed_within_ms != APC_POLICY_NONE && late > in->missed_within_ms) {
        no_run(out, APC_MISSED_WHY_TOO_LATE, late);
        return 0;
    }
    out->action = APC_MISSED_ACT_RUN;
    out->reason = APC_MISSED_WHY_CATCH_UP;
    out->fire_ms = in->latest_missed_ms;
    out->late_ms = late;
    return 0;
}

const char *apc_missed_reason_text(apc_missed_reason_t reason)
{
    switch (reason) {
    case APC_MISSED_WHY_NOTHING_MISSED:
        return "no fire time was missed";
    case APC_MISSED_WHY_NEVER_HANDLED:
        return "the job has no last fire time yet";
    case APC_MISSED_WHY_POLICY_SKIP:
        return "missed runs are skipped by policy";
    case APC_MISSED_WHY_TOO_LATE:
        return "later than missed_within";
    case APC_MISSED_WHY_CATCH_UP:
        return "one catch-up run";
    default:
        return "?";
    }
}

uint64_t apc_policy_fnv1a64(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    if (s == NULL)
        return h;
    for (; *s != '\0'; s++) {
        h ^= (uint64_t)(unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t apc_policy_splitmix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

int64_t apc_jitter_ms(uint64_t seed, const char *job, int64_t fire_ms, int64_t jitter_ms)
{
    uint64_t h;

    if (jitter_ms <= 0)
        return 0;
    h = apc_policy_splitmix64(seed ^ apc_policy_fnv1a64(job));
    h = apc_policy_splitmix64(h ^ (uint64_t)fire_ms);
    /* jitter_ms + 1 cannot overflow in uint64_t; the modulo bias is below 2^-20 for any
       jitter under 2^43 ms (278 years). */
    return (int64_t)(h % ((uint64_t)jitter_ms + 1));
}
