/*
 * win_util.c - UTF-8/UTF-16 conversion, Win32 error translation and time (see win_util.h).
 */
#include "win_util.h"

#include "apc_str.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Unix epoch (1970-01-01) in FILETIME ticks (100 ns since 1601-01-01). */
#define EPOCH_DIFF_TICKS 116444736000000000LL

wchar_t *apc_utf8_to_wide(const char *s)
{
    int n;
    wchar_t *w;

    if (s == NULL)
        return NULL;
    n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0)
        return NULL;
    w = malloc((size_t)n * sizeof *w);
    if (w == NULL)
        return NULL;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    return w;
}

char *apc_wide_to_utf8(const wchar_t *s)
{
    int n;
    char *u;

    if (s == NULL)
        return NULL;
    n = WideCharToMultiByte(CP_UTF8, 0, s, -1, NULL, 0, NULL, NULL);
    if (n <= 0)
        return NULL;
    u = malloc((size_t)n);
    if (u == NULL)
        return NULL;
    if (WideCharToMultiByte(CP_UTF8, 0, s, -1, u, n, NULL, NULL) != n) {
        free(u);
        return NULL;
    }
    return u;
}

int apc_win_errno(DWORD code)
{
    switch (code) {
    case ERROR_SUCCESS:
        return APC_OK;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_SERVICE_DOES_NOT_EXIST:
        return APC_ENOTFOUND;
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
        return APC_EDENIED;
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
        return APC_EBUSY;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return APC_ENOMEM;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
    case ERROR_SERVICE_EXISTS:
        return APC_EEXISTS;
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_EXE_FORMAT:
        return APC_EINVAL;
    case ERROR_PIPE_BUSY:
    case ERROR_BUSY:
        return APC_EBUSY;
    case ERROR_TIMEOUT:
    case WAIT_TIMEOUT:
    case ERROR_SEM_TIMEOUT:
        return APC_ETIMEDOUT;
    case ERROR_OPERATION_ABORTED:
    case ERROR_CANCELLED:
        return APC_ECANCELLED;
    case ERROR_HANDLE_DISK_FULL:
    case ERROR_DISK_FULL:
    case ERROR_WRITE_FAULT:
    case ERROR_READ_FAULT:
    case ERROR_BROKEN_PIPE:
        return APC_EIO;
    default:
        return APC_ESYS;
    }
}

int apc_win_seterr(char *err, size_t errsz, DWORD code, const char *what_fmt, ...)
{
    char what[512];
    wchar_t *wmsg = NULL;
    char *msg = NULL;
    DWORD n;
    va_list ap;

    va_start(ap, what_fmt);
    (void)vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);

    n = FormatMessageW(
        FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
        NULL, code, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), (LPWSTR)&wmsg, 0, NULL);
    if (n > 0 && wmsg != NULL) {
        /* System messages end in ".\r\n"; an operator's log line should not. */
        while (n > 0 && (wmsg[n - 1] == L'\r' || wmsg[n - 1] == L'\n' || wmsg[n - 1] == L' ' ||
                         wmsg[n - 1] == L'.'))
            wmsg[--n] = L'\0';
        msg = apc_wide_to_utf8(wmsg);
    }
    if (wmsg != NULL)
        LocalFree(wmsg);
    (void)apc_seterr(err, errsz, 0, "%s: %s (error %lu)", what, msg ? msg : "unknown error",
                     (unsigned long)code);
    free(msg);
    return apc_win_errno(code);
}

int64_t apc_win_now_ms(void)
{
    FILETIME ft;

    GetSystemTimePreciseAsFileTime(&ft);
    return apc_win_ms_from_filetime(
        (LONGLONG)(((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime));
}

LONGLONG apc_win_filetime_from_ms(int64_t unix_ms)
{
    return (LONGLONG)unix_ms * 10000 + EPOCH_DIFF_TICKS;
}

int64_t apc_win_ms_from_filetime(LONGLONG ft)
{
    return (int64_t)((ft - EPOCH_DIFF_TICKS) / 10000);
}

HANDLE apc_win_close(HANDLE h)
{
    if (h != NULL && h != INVALID_HANDLE_VALUE)
        (void)CloseHandle(h);
    return NULL;
}

/* The contract is in win_util.h. */
int apc_win_read_tail(const char *path, int64_t tail, apc_buf_t *data, int *truncated, char *err,
                      size_t errsz)
{
    wchar_t *wpath = NULL;
    HANDLE f = INVALID_HANDLE_VALUE;
    LARGE_INTEGER size, pos;
    char *raw = NULL;
    DWORD want = 0, got = 0, i, skip = 0;
    int rc = 0;

    *truncated = 0;
    if ((wpath = apc_utf8_to_wide(path)) == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    f = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "opening the output file \"%s\"", path);
        goto cleanup;
    }
    if (!GetFileSizeEx(f, &size)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "reading the size of \"%s\"", path);
        goto cleanup;
    }
    want = (DWORD)(size.QuadPart > tail ? tail : size.QuadPart);
    *truncated = size.QuadPart > tail;
    pos.QuadPart = size.QuadPart - (LONGLONG)want;
    if (!SetFilePointerEx(f, pos, NULL, FILE_BEGIN)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "seeking in \"%s\"", path);
        goto cleanup;
    }
    raw = malloc(want > 0 ? want : 1);
    if (raw == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    /* The file may shrink meanwhile (a new run is not reusing it, but be safe): read what is
       there; ReadFile on a synchronous handle returns fewer bytes only at the end. */
    if (want > 0 && !ReadFile(f, raw, want, &got, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "reading \"%s\"", path);
        goto cleanup;
    }
    /* Start at a character boundary: skip at most 3 continuation bytes of a cut character. */
    while (*truncated && skip < got && skip < 3 && ((unsigned char)raw[skip] & 0xC0u) == 0x80u)
        skip++;
    for (i = skip; i < got; i++) {
        if (raw[i] == '\0')
            apc_buf_puts(data, "\xEF\xBF\xBD");
        else
            apc_buf_append(data, raw + i, 1);
    }
    if (data->data == NULL)
        apc_buf_puts(data, "");
    if (apc_buf_failed(data))
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
cleanup:
    free(raw);
    apc_win_close(f);
    free(wpath);
    return rc;
}
