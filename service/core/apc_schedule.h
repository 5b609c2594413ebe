/*
 * apc_schedule.h - job schedules: cron expressions (5 or 6 fields), the
 * @macros, @every <duration>, @at <instant> and @startup; the next fire time
 * in a time zone; and a lint that lists fire times touched by DST changes.
 *
 * Why this way: a schedule is a small value type of bitsets (no heap, 48
 * bytes) because the service may hold 100,000 of them. next() jumps field by
 * field (month, day, hour, minute, second) with bitset searches and carries,
 * so its cost does not depend on how far away the next fire time is. Local
 * time comes only through apc_tz_t.
 *
 * DST rule (see README.md (section Schedules)): a local fire time inside a spring-forward
 * gap fires once, at the first valid instant after the gap (02:30 on
 * 2026-03-08 in New York runs at 03:00 EDT = 07:00Z); in a repeated fall-back
 * hour each local wall-clock time fires once, at its first occurrence.
 *
 * Thread safety: pure functions over caller-owned values; any thread. The
 * time zone passed in must be safe to call from that thread.
 */
#ifndef APC_SCHEDULE_H
#define APC_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "apc_str.h"
#include "apc_tz.h"

typedef enum {
    APC_SCHED_CRON,
    APC_SCHED_EVERY,
    APC_SCHED_AT,
    APC_SCHED_STARTUP
} apc_schedule_kind_t;

/* Flags of apc_cron_t.flags. */
#define APC_CRON_DOM_STAR 0x01u /* day-of-month field began with '*' */
#define APC_CRON_DOW_STAR 0x02u /* day-of-week field began with '*' */
#define APC_CRON_DOM_LAST 0x04u /* day-of-month list holds L (last day) */
#define APC_CRON_SECONDS 0x08u  /* written with 6 fields */

/* Bits of apc_cron_t.nth[weekday]: bit n (1-5) = "#n", APC_CRON_NTH_LAST = "L". */
#define APC_CRON_NTH_LAST 0x40u

typedef struct apc_cron {
    uint64_t sec;   /* bits 0-59 */
    uint64_t min;   /* bits 0-59 */
    uint32_t hour;  /* bits 0-23 */
    uint32_t dom;   /* bits 1-31 */
    uint16_t mon;   /* bits 1-12 */
    uint8_t dow;    /* bits 0-6, Sunday = 0 (7 is folded into 0) */
    uint8_t flags;  /* APC_CRON_* */
    uint8_t nth[7]; /* per weekday: #n bits and the L bit */
} apc_cron_t;

typedef struct apc_schedule {
    apc_schedule_kind_t kind;
    union {
        apc_cron_t cron;  /* APC_SCHED_CRON */
        int64_t every_ms; /* APC_SCHED_EVERY: interval, >= 1000 */
        int64_t at_ms;    /* APC_SCHED_AT: the instant, Unix ms UTC */
    } u;
} apc_schedule_t;

/*
 * Parses a schedule expression into *out (written only on success). Error
 * texts carry no location (the config loader prefixes
 * "file:line:col: jobs[3].schedule: "), e.g.
 *   minute field "61" is out of range 0-59          (APC_ERANGE)
 *   expected 5 or 6 fields, got 4                   (APC_ESYNTAX)
 *   schedule "0 0 30 2 *" can never fire            (APC_ENEVER)
 * The full list is in README.md (section Schedules) and is tested verbatim.
 */
int apc_schedule_parse(const char *expr, apc_schedule_t *out, char *err, size_t errsz);

/*
 * The first fire time strictly after after_ms, in Unix ms UTC, with cron
 * fields read as local wall-clock time in tz (NULL means UTC). Returns 0,
 * APC_ENOTFOUND when there is none (@startup, an @at in the past, a cron
 * time beyond year 9999), APC_EINVAL for bad arguments, or the zone's error.
 * @every: after_ms + interval (the engine passes the last fire, so runs do
 * not drift).
 */
int apc_schedule_next(const apc_schedule_t *s, int64_t after_ms, const apc_tz_t *tz,
                      int64_t *next_ms);

/*
 * Lints a cron schedule against the DST changes of tz in the 12 months after
 * from_ms: appends to out one line per fire time that lands in a skipped or
 * repeated local hour, naming the date and the rule that will apply, e.g.
 *   2026-03-08: 02:30 does not exist (clocks go forward 02:00->03:00); runs at 03:00
 *   2026-11-01: 01:30 occurs twice (clocks go back 02:00->01:00); runs once, at the first
 *   (UTC-04:00)
 * At most 8 lines are written per transition, then one "... and N more"
 * line. *count receives the number of affected fire times (0 for non-cron
 * schedules). "12 months" ends at the same UTC date and time one year later.
 * Returns 0, APC_ENOMEM if out failed, APC_ERANGE if from_ms is not within
 * years 0000-9998, or the zone's error.
 */
int apc_schedule_dst_lint(const apc_schedule_t *s, int64_t from_ms, const apc_tz_t *tz,
                          apc_buf_t *out, int *count);

#endif /* APC_SCHEDULE_H */
