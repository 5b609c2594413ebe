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

#endif /* APC_POLICY_H */
