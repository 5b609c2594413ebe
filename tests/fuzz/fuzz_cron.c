/*
 * fuzz_cron.c - libFuzzer target for schedule parsing and next().
 *
 * Parses arbitrary bytes (as a NUL-terminated copy) as a schedule. When it
 * parses, next() is called a few times from a few instants, in UTC and in a
 * POSIX-rules zone with DST, and two properties are checked:
 *   - monotonicity: every fire time is strictly after the instant asked about;
 *   - consistency: asking again from 1 ms before a fire time gives the same
 *     fire time (so no fire time is skipped or invented between them).
 * An input starting with "TZ=" instead selects the zone: the text up to the
 * first newline is a POSIX TZ string and the rest is the schedule, so the
 * rules parser and odd zones are fuzzed too. Crashes, leaks, UB and hangs are
 * caught by the sanitizers and libFuzzer's timeout.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_schedule.h"
#include "apc_time.h"
#include "apc_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-01-01, the 2026-03-08 and 2026-11-01 New York changes, 1969, and year 9999. */
static const int64_t starts[] = {
    INT64_C(1767225600000), INT64_C(1772953199999),   INT64_C(1793509200500),
    INT64_C(-86400000),     INT64_C(253402200000000),
};

static void walk(const apc_schedule_t *s, const apc_tz_t *tz)
{
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        int64_t t = starts[i];
        for (int k = 0; k < 4; k++) {
            int64_t next = 0, again = 0;
            int rc = apc_schedule_next(s, t, tz, &next);
            if (rc == APC_ENOTFOUND || rc == APC_ERANGE)
                break;
            if (rc != 0)
                abort();
            if (next <= t)
                abort();
            /* @every counts from the instant given, so only the other kinds are consistent. */
            if (s->kind != APC_SCHED_EVERY &&
                (apc_schedule_next(s, next - 1, tz, &again) != 0 || again != next))
                abort();
            t = next;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    const char *expr;
    char err[256];
    apc_schedule_t s;
    apc_tz_rules_t rules;
    apc_tz_t zone;

    if (size > 4096)
        return 0;
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    expr = text;
    if (apc_tz_rules_parse("EST5EDT,M3.2.0,M11.1.0", &rules, err, sizeof err) != 0)
        abort();
    if (strncmp(text, "TZ=", 3) == 0) {
        char *nl = strchr(text, '\n');
        if (nl == NULL)
            goto done;
        *nl = '\0';
        if (apc_tz_rules_parse(text + 3, &rules, err, sizeof err) != 0)
            goto done;
        expr = nl + 1;
    }
    apc_tz_from_rules(&zone, &rules);
    if (apc_schedule_parse(expr, &s, err, sizeof err) != 0)
        goto done;
    walk(&s, apc_tz_utc());
    walk(&s, &zone);
done:
    free(text);
    return 0;
}
