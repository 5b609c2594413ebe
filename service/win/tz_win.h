/*
 * tz_win.h - the Windows local time zone as an apc_tz_t, for jobs whose "timezone" is "local".
 *
 * Why this way: the core asks one question of a zone, "what is the UTC offset at instant t"
 * (apc_tz.h). Windows answers it with the zone's year-specific rules (dynamic DST: a country
 * that moved its DST dates in 2007 has different rules for 2006 and 2008), so the zone is read
 * once with GetDynamicTimeZoneInformation and every query takes that year's rules
 * (GetTimeZoneInformationForYear) and converts with them: offset = local wall time - UTC.
 *
 * The zone is fixed when apc_tz_win_local() runs: a change of the machine's zone while the
 * service runs takes effect at the next start (or reload that re-reads it), never halfway
 * through a schedule computation.
 *
 * Thread safety: apc_tz_win_local() fills caller storage on one thread; afterwards the zone is
 * immutable and any number of threads may query it.
 */
#ifndef APC_TZ_WIN_H
#define APC_TZ_WIN_H

#include <windows.h>

#include <stddef.h>

#include "apc_tz.h"

/*
 * Storage for the local zone. Use &z.tz wherever an apc_tz_t is wanted; z must stay in place
 * (tz.ctx points at z) and unchanged while the zone is in use.
 */
typedef struct apc_tz_win {
    apc_tz_t tz;
    DYNAMIC_TIME_ZONE_INFORMATION dtzi;
    char name[APC_TZ_NAME_MAX]; /* "local (Eastern Standard Time)" */
} apc_tz_win_t;

/*
 * Reads the machine's current time zone into *z. Returns 0, APC_EINVAL (z NULL), or the
 * translated Win32 error with "reading the local time zone: ..." in err.
 *
 * The zone's offset_at returns 0 and the offset, APC_EINVAL for NULL arguments, or
 * APC_ERANGE for instants outside what SYSTEMTIME can hold with any offset
 * (before 1601-01-02T00:00:00Z or after 30827-12-30T23:59:59Z), or the translated Win32
 * error if Windows refuses the conversion.
 */
int apc_tz_win_local(apc_tz_win_t *z, char *err, size_t errsz);

/* The first and last instants (Unix seconds UTC) the Windows zone answers for. */
#define APC_TZ_WIN_MIN_S INT64_C(-11644387200) /* 1601-01-02T00:00:00Z */
#define APC_TZ_WIN_MAX_S INT64_C(910670428799) /* 30827-12-30T23:59:59Z */

#endif /* APC_TZ_WIN_H */
