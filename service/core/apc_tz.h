/*
 * apc_tz.h - the one seam for local time: a time zone is a function from a
 * UTC instant to the UTC offset in force then (local = utc + offset).
 *
 * Why this way: the scheduler only ever needs "what is the offset at instant
 * t"; everything else (local wall clock, DST gaps and overlaps) follows from
 * that. Keeping the seam one function pointer lets the Windows runtime plug
 * in the system's rules, lets tests plug in exact POSIX rules that behave the
 * same natively and under Wine, and keeps <windows.h> out of the core.
 *
 * Three providers live here: UTC, POSIX TZ rules ("EST5EDT,M3.2.0,M11.1.0",
 * which is also what a Windows TIME_ZONE_INFORMATION expresses), and, on
 * POSIX systems only, the C library's local zone.
 *
 * Thread safety: apc_tz_t objects are immutable after set-up and may be
 * shared by any number of threads. apc_tz_libc_local() reads the process'
 * TZ setting, so do not change TZ while other threads use it.
 */
#ifndef APC_TZ_H
#define APC_TZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * Contract for every provider, relied on by apc_schedule.c to find the one
 * change near a local time by sampling: |offset| < 26 hours, and two changes
 * of offset are at least APC_TZ_MIN_CHANGE_GAP_S apart (true of the current
 * rules of every real zone; apc_tz_rules_parse enforces it).
 */
#define APC_TZ_MIN_CHANGE_GAP_S (7 * 86400)

typedef struct apc_tz apc_tz_t;
struct apc_tz {
    /* Returns 0 and the UTC offset in seconds in force at the instant utc_s. */
    int (*offset_at)(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s);
    const void *ctx;
    const char *name;
};

/* The UTC zone (offset 0 always). Never NULL; static storage. */
const apc_tz_t *apc_tz_utc(void);

/* How one transition date of a POSIX TZ rule is written. */
typedef enum {
    APC_TZ_DATE_JULIAN1 = 1, /* Jn: day 1-365, February 29 never counted */
    APC_TZ_DATE_JULIAN0 = 2, /* n: day 0-365, February 29 counted */
    APC_TZ_DATE_MWD = 3      /* Mm.w.d: weekday d (0 = Sunday) of week w (5 = last) of month m */
} apc_tz_date_kind_t;

typedef struct apc_tz_date {
    uint8_t kind;   /* apc_tz_date_kind_t */
    uint8_t month;  /* MWD: 1-12 */
    uint8_t week;   /* MWD: 1-5 */
    uint8_t wday;   /* MWD: 0-6 */
    int16_t day;    /* J1: 1-365, J0: 0-365 */
    int32_t time_s; /* local wall time of the change, seconds after midnight; may be <0 or >24h */
} apc_tz_date_t;

#define APC_TZ_NAME_MAX 80

/*
 * A zone described by POSIX TZ rules. Offsets are stored the ISO way (east
 * of Greenwich positive, local = utc + offset), the opposite of how the TZ
 * string writes them. A Windows runtime may fill this struct directly from
 * TIME_ZONE_INFORMATION instead of going through a string.
 */
typedef struct apc_tz_rules apc_tz_rules_t;
struct apc_tz_rules {
    int32_t std_offset_s; /* UTC offset in standard time */
    int32_t dst_offset_s; /* UTC offset in daylight time (only if has_dst) */
    int has_dst;
    apc_tz_date_t start;        /* change to daylight time, in standard wall time */
    apc_tz_date_t end;          /* change back to standard time, in daylight wall time */
    char name[APC_TZ_NAME_MAX]; /* the spec as given, for messages */
};

/*
 * Parses a POSIX TZ string (IEEE 1003.1 section 8.3, with the RFC 8536
 * extension of transition hours -167..167): "UTC0", "EST5EDT,M3.2.0,M11.1.0",
 * "CET-1CEST,M3.5.0,M10.5.0/3", "<+0330>-3:30". A zone with a daylight name
 * must give its rule (there is no implicit US default). Returns 0, or
 * APC_ESYNTAX / APC_ERANGE with the reason in err; *out is written only on
 * success. Specs longer than APC_TZ_NAME_MAX-1 bytes are rejected.
 */
int apc_tz_rules_parse(const char *spec, apc_tz_rules_t *out, char *err, size_t errsz);

/*
 * Makes tz a zone that evaluates rules. tz keeps a pointer to rules, so rules
 * must outlive tz and must not change while tz is in use. Both may live in
 * the caller's job record; nothing is allocated.
 */
void apc_tz_from_rules(apc_tz_t *tz, const apc_tz_rules_t *rules);

/*
 * Convenience: the UTC offset of tz at instant utc_ms (floor to seconds).
 * Returns 0 or the provider's error.
 */
int apc_tz_offset_at_ms(const apc_tz_t *tz, int64_t utc_ms, int32_t *offset_s);

#ifndef _WIN32
/*
 * The C library's local zone (honours TZ; call tzset() after changing it).
 * Native only: used to cross-check the rules zone against the system's tz
 * database in tests. Returns APC_ERANGE for instants time_t or localtime_r
 * cannot represent.
 */
const apc_tz_t *apc_tz_libc_local(void);
#endif

#endif /* APC_TZ_H */
