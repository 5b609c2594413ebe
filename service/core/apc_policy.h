/*
 * apc_policy.h - the scheduling policies as pure functions: overlap, missed
 * runs, retries with backoff, jitter.
 *
 * Why pure: the engine thread applies them, but every rule is decided here
 * from plain values so that it can be unit-tested exhaustively without a
 * clock, a thread or Windows.
 *
 * Thread safety: no state; any thread.
 */
#ifndef APC_POLICY_H
#define APC_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* What to do when a run is due while an earlier run of the same job is still going. */
typedef enum apc_overlap {
    APC_OVERLAP_SKIP = 0, /* record the new run as skipped */
    APC_OVERLAP_QUEUE,    /* start it when the running one ends */
    APC_OVERLAP_PARALLEL, /* start it now, beside the running one */
    APC_OVERLAP_REPLACE   /* cancel the running one, then start the new one */
} apc_overlap_t;

/* What to do with runs that fell due while the service was not running. */
typedef enum apc_missed {
    APC_MISSED_RUN_ONCE = 0, /* one catch-up run, however many were missed */
    APC_MISSED_SKIP          /* none: wait for the next fire time */
} apc_missed_t;

/*
 * "No instant": the same value as APC_TIME_NONE in apc_time.h. It is
 * repeated here so that this header stands alone; the two must never differ.
 */
#define APC_POLICY_NONE INT64_MIN

/* ---- Retries ------------------------------------------------------------ */

/* The longest wait between two attempts, whatever the backoff and attempt: one hour. */
#define APC_RETRY_MAX_DELAY_MS INT64_C(3600000)

/*
 * Returns the wait in ms before retry number `retry` (1 = the first retry,
 * i.e. the second attempt): backoff_ms * 2^(retry-1), capped at
 * APC_RETRY_MAX_DELAY_MS. Never overflows. A backoff <= 0 or a retry < 1
 * gives 0.
 */
int64_t apc_retry_delay_ms(int64_t backoff_ms, int retry);

/*
 * Returns 1 if a run that ended with this status (a name from the runs
 * table: "failed", "timed_out", ...) may be retried, 0 if it may not, and
 * APC_EINVAL if the name is not a final status ("queued", "running") or is
 * unknown. Only "failed" and "timed_out" are retried: "cancelled" was a
 * person's decision, "skipped" never ran, "interrupted" is the service's own
 * fault and handled by start-up recovery, and "succeeded" needs nothing.
 */
int apc_retry_status_is_retryable(const char *status);

/* The outcome of apc_retry_decide(). */
typedef struct apc_retry_decision {
    int retry;        /* 1: queue another attempt; 0: the run is final */
    int next_attempt; /* attempt number of the retry (attempt + 1), 0 if none */
    int64_t delay_ms; /* wait before it, 0 if none */
    int64_t due_ms;   /* finished_ms + delay_ms (saturating), APC_POLICY_NONE if none */
} apc_retry_decision_t;

/*
 * Decides whether attempt number `attempt` (1 = the first run), which ended
 * at finished_ms with `status`, gets another attempt. `retries` is how many
 * retries follow the first attempt (0 = none), so a job runs at most
 * retries + 1 times. The wait before the k-th retry is
 * apc_retry_delay_ms(backoff_ms, k).
 *
 * Returns 0 and fills *out, or APC_EINVAL (with a message in err) for an
 * unknown or non-final status, attempt < 1, retries < 0 or a NONE
 * finished_ms.
 */
int apc_retry_decide(const char *status, int attempt, int retries, int64_t backoff_ms,
                     int64_t finished_ms, apc_retry_decision_t *out, char *err, size_t errsz);

/* ---- Overlap ------------------------------------------------------------ */

/* What the engine does with a run that is due now. */
typedef enum apc_overlap_action {
    APC_OVERLAP_ACT_START = 0, /* start it now */
    APC_OVERLAP_ACT_SKIP,      /* do not run it; record it as skipped */
    APC_OVERLAP_ACT_QUEUE,     /* keep it queued until the running run(s) end */
    APC_OVERLAP_ACT_REPLACE    /* cancel the running run(s), then start it */
} apc_overlap_action_t;

/*
 * Decides what to do with a due run of a job that has `running` runs in
 * progress. With nothing running every policy starts the run; otherwise
 * skip -> SKIP, queue -> QUEUE, parallel -> START, replace -> REPLACE.
 *
 * Returns 0 and sets *out, or APC_EINVAL for an unknown policy or running < 0.
 */
int apc_overlap_decide(apc_overlap_t policy, int running, apc_overlap_action_t *out);

/* Returns "start", "skip", "queue" or "replace" ("?" for an unknown value). */
const char *apc_overlap_action_name(apc_overlap_action_t action);

/* ---- Missed runs -------------------------------------------------------- */

/*
 * The facts the missed-run decision needs, all in Unix ms UTC. The caller
 * (the engine, at start-up or after a clock jump) computes the fire times
 * from the schedule so that this decision stays pure.
 */
typedef struct apc_missed_input {
    apc_missed_t policy;
    int64_t last_fire_ms; /* last fire time handled (job_state.last_fire_at), or NONE */
    int64_t now_ms;
    int64_t missed_within_ms; /* the longest lateness still caught up, or NONE = no limit */
    int64_t first_missed_ms;  /* first fire time after last_fire_ms, or NONE if none */
    int64_t latest_missed_ms; /* last fire time <= now_ms, or NONE if none */
} apc_missed_input_t;

typedef enum apc_missed_action {
    APC_MISSED_ACT_NONE = 0, /* nothing to catch up; wait for the next fire time */
    APC_MISSED_ACT_RUN       /* queue one catch-up run for fire_ms */
} apc_missed_action_t;

/* Why the decision came out as it did; apc_missed_reason_text() gives a log text. */
typedef enum apc_missed_reason {
    APC_MISSED_WHY_NOTHING_MISSED = 0, /* no fire time fell in (last_fire, now] */
    APC_MISSED_WHY_NEVER_HANDLED,      /* the job has no last fire time: a new job */
    APC_MISSED_WHY_POLICY_SKIP,        /* missed runs exist, policy is skip */
    APC_MISSED_WHY_TOO_LATE,           /* later than missed_within */
    APC_MISSED_WHY_CATCH_UP            /* one catch-up run */
} apc_missed_reason_t;

typedef struct apc_missed_decision {
    apc_missed_action_t action;
    apc_missed_reason_t reason;
    int64_t fire_ms; /* the fire time the catch-up run is for (the latest missed), or NONE */
    int64_t late_ms; /* now - latest missed fire time, or 0 when nothing was missed */
} apc_missed_decision_t;

/*
 * Decides whether a job catches up after downtime. Rules, in order:
 *   1. no missed fire time (first/latest NONE, or latest <= last_fire, or
 *      latest > now)                                  -> NONE, NOTHING_MISSED
 *   2. last_fire_ms is NONE (the job was never handled: a new job or a new
 *      database), because there is no baseline to say what was missed
 *                                                     -> NONE, NEVER_HANDLED
 *   3. policy skip                                    -> NONE, POLICY_SKIP
 *   4. now - latest > missed_within (when not NONE)   -> NONE, TOO_LATE
 *   5. otherwise one run for the latest missed time   -> RUN, CATCH_UP
 * However many fire times were missed, at most one run is made, and it is
 * for the latest of them (the most useful one to run late).
 *
 * Returns 0 and fills *out, or APC_EINVAL (message in err) for inconsistent
 * input: an unknown policy, now NONE, a negative missed_within, only one of
 * first/latest given, first > latest, or first <= last_fire.
 */
int apc_missed_decide(const apc_missed_input_t *in, apc_missed_decision_t *out, char *err,
                      size_t errsz);

/* Returns a static English text for a reason, for logs ("later than missed_within"). */
const char *apc_missed_reason_text(apc_missed_reason_t reason);

/* ---- Jitter ------------------------------------------------------------- */

/*
 * Returns a deterministic delay in [0, jitter_ms] for the run of `job` that
 * fires at fire_ms: the same inputs always give the same offset (so a
 * restart does not reshuffle runs), different jobs or fire times spread out.
 * The value is splitmix64(splitmix64(seed ^ fnv1a64(job)) ^ fire_ms) modulo
 * (jitter_ms + 1). Returns 0 when jitter_ms <= 0. job may be NULL (hashed as "").
 */
int64_t apc_jitter_ms(uint64_t seed, const char *job, int64_t fire_ms, int64_t jitter_ms);

/* The 64-bit FNV-1a hash of a NUL-terminated string (exposed for tests and tools). */
uint64_t apc_policy_fnv1a64(const char *s);

/* One step of the splitmix64 mixer (exposed for tests and tools). */
uint64_t apc_policy_splitmix64(uint64_t x);

#endif /* APC_POLICY_H */
