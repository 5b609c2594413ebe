/*
 * tz_win.c - the Windows local time zone as an apc_tz_t (see tz_win.h).
 *
 * Each query converts the UTC instant to SYSTEMTIME, gets that year's rules of the zone read
 * at set-up (GetTimeZoneInformationForYear), converts with them
 * (SystemTimeToTzSpecificLocalTime) and returns local - UTC. Nothing is cached between queries, so the zone object stays immutable and
 * needs no lock.
 *
 * Thread safety: set-up on one thread; queries from any thread.
 */
#include "tz_win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "win_util.h"

/* Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01 (Unix epoch). */
#define EPOCH_DIFF_S INT64_C(11644473600)
#define TICKS_PER_S INT64_C(10000000)

static int win_offset_at(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s)
{
    const apc_tz_win_t *z;
    ULONGLONG u;
    FILETIME ft, lft;
    SYSTEMTIME st, lst;
    DYNAMIC_TIME_ZONE_INFORMATION dtzi;
    TIME_ZONE_INFORMATION tzi;
    int64_t local_ticks, utc_ticks;

    if (tz == NULL || tz->ctx == NULL || offset_s == NULL)
        return APC_EINVAL;
    if (utc_s < APC_TZ_WIN_MIN_S || utc_s > APC_TZ_WIN_MAX_S)
        return APC_ERANGE;
    z = tz->ctx;
    dtzi = z->dtzi; /* the API takes a non-const pointer */
    utc_ticks = (utc_s + EPOCH_DIFF_S) * TICKS_PER_S;
    u = (ULONGLONG)utc_ticks;
    ft.dwLowDateTime = (DWORD)(u & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)(u >> 32);
    if (!FileTimeToSystemTime(&ft, &st))
        return apc_win_errno(GetLastError());
    /* The year's own rules, then the conversion with them. This is what
       SystemTimeToTzSpecificLocalTimeEx does in one call; two calls because Wine 8 lacks the
       Ex function (it aborts the process), and the result is the same on Windows. */
    if (!GetTimeZoneInformationForYear(st.wYear, &dtzi, &tzi))
        return apc_win_errno(GetLastError());
    if (!SystemTimeToTzSpecificLocalTime(&tzi, &st, &lst))
        return apc_win_errno(GetLastError());
    if (!SystemTimeToFileTime(&lst, &lft))
        return apc_win_errno(GetLastError());
    local_ticks = (int64_t)(((ULONGLONG)lft.dwHighDateTime << 32) | lft.dwLowDateTime);
    *offset_s = (int32_t)((local_ticks - utc_ticks) / TICKS_PER_S);
    return 0;
}

int apc_tz_win_local(apc_tz_win_t *z, char *err, size_t errsz)
{
    char *key;

    if (z == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no time zone storage");
    memset(z, 0, sizeof *z);
    if (GetDynamicTimeZoneInformation(&z->dtzi) == TIME_ZONE_ID_INVALID)
        return apc_win_seterr(err, errsz, GetLastError(), "reading the local time zone");
    /* The key name ("Eastern Standard Time") is stable across display languages. */
    key = apc_wide_to_utf8(z->dtzi.TimeZoneKeyName[0] != L'\0' ? z->dtzi.TimeZoneKeyName
                                                               : z->dtzi.StandardName);
    (void)snprintf(z->name, sizeof z->name, "local (%s)", key != NULL ? key : "?");
    free(key);
    z->tz.offset_at = win_offset_at;
    z->tz.ctx = z;
    z->tz.name = z->name;
    return 0;
}
