/*
 * win_util.h - the boundary between the UTF-8 core and the wide Win32 API, and the ONE
 * place where Win32 error codes become APC_E* codes with a readable message.
 *
 * Inside ApcSched every string is UTF-8 char *; Win32 is called with wide (W) APIs only and
 * strings are converted here, at the call site's boundary.
 *
 * Thread safety: no shared state; any thread.
 */
#ifndef APC_WIN_UTIL_H
#define APC_WIN_UTIL_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "apc_error.h"
#include "apc_str.h"

/* Returns a malloc'd UTF-16 copy of a UTF-8 string, or NULL (s NULL, invalid UTF-8, OOM). */
wchar_t *apc_utf8_to_wide(const char *s);

/* Returns a malloc'd UTF-8 copy of a UTF-16 string, or NULL (s NULL, OOM). */
char *apc_wide_to_utf8(const wchar_t *s);

/* Maps a Win32 error code to the closest APC_E* code (APC_ESYS when nothing is closer). */
int apc_win_errno(DWORD code);

/*
 * Formats "<what>: <system message> (error <code>)" into err, where what is printf-style,
 * and returns apc_win_errno(code). The system's own text is kept so an operator can search
 * for it; the numeric code is kept so a script can match it.
 */
int apc_win_seterr(char *err, size_t errsz, DWORD code, const char *what_fmt, ...) APC_PRINTF(4, 5);

/* The current time as Unix milliseconds UTC (GetSystemTimePreciseAsFileTime). */
int64_t apc_win_now_ms(void);

/* Converts between Unix milliseconds and FILETIME (100 ns ticks since 1601, as LARGE_INTEGER). */
LONGLONG apc_win_filetime_from_ms(int64_t unix_ms);
int64_t apc_win_ms_from_filetime(LONGLONG ft);

/*
 * Reads the last `tail` bytes of the file at path into *data (NUL-terminated), starting at a
 * UTF-8 character boundary and with NUL bytes (which a C string cannot carry) shown as U+FFFD.
 * The file is opened sharing read, write and delete, because the worker may still be writing
 * it and retention may delete it. Sets *truncated when the file is longer than what was read.
 * Used for a run's output by the pipe server (op logs) and by apcctl (read from the
 * database when the service is not running). Returns 0, APC_ENOMEM or the translated Win32
 * error. Any thread.
 */
int apc_win_read_tail(const char *path, int64_t tail, apc_buf_t *data, int *truncated, char *err,
                      size_t errsz);

/* Closes h if it is neither NULL nor INVALID_HANDLE_VALUE. Always returns NULL. */
HANDLE apc_win_close(HANDLE h);

#endif /* APC_WIN_UTIL_H */
