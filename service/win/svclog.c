/*
 * svclog.c - the service log file with rotation, and the event log (see svclog.h for the
 * format and why a lock serialises writers).
 *
 * Rotation, done under the lock before a line that would grow the file past max_bytes:
 *
 *   delete apcsvc.log.<keep>;  apcsvc.log.<n> -> apcsvc.log.<n+1> for n = keep-1 .. 1;
 *   apcsvc.log -> apcsvc.log.1;  open a new, empty apcsvc.log
 *
 * The file is opened with FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE so an
 * operator can follow it while the service writes, and rotation can rename it even then. If a
 * rename fails anyway (a reader without FILE_SHARE_DELETE), the service keeps appending to the
 * file it has: losing lines would be worse than a file a little over its size.
 *
 * Thread safety: open/close on the owning thread; writes from any thread, serialised by an
 * SRW lock that guards only this log's file handle and size.
 */
#include "svclog.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "apc_str.h"
#include "apc_time.h"
#include "win_util.h"

struct apc_svclog {
    SRWLOCK lock;  /* guards file, size, lost */
    HANDLE file;   /* INVALID_HANDLE_VALUE when there is no file */
    uint64_t size; /* bytes in the current file */
    uint64_t lost; /* lines that failed to reach the file */
    wchar_t *path; /* <dir>\apcsvc.log, NULL without a file */
    HANDLE source; /* RegisterEventSourceW handle, or NULL */
    uint64_t max_bytes;
    int keep;
    int debug;
    FILE *echo;
    apc_svclog_hooks_t hooks;
};

static const char *level_name(int level)
{
    switch (level) {
    case APC_LOG_ERROR:
        return "ERROR";
    case APC_LOG_WARNING:
        return "WARNING";
    case APC_LOG_INFO:
        return "INFO";
    default:
        return "DEBUG";
    }
}

static HANDLE open_file(const wchar_t *path, uint64_t *size, DWORD *error)
{
    HANDLE h;
    LARGE_INTEGER sz;

    /* FILE_APPEND_DATA without FILE_WRITE_DATA: every WriteFile goes to the end of the file. */
    h = CreateFileW(path, FILE_APPEND_DATA | SYNCHRONIZE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_ALWAYS,
                    FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        *error = GetLastError();
        return h;
    }
    if (!GetFileSizeEx(h, &sz)) {
        *error = GetLastError();
        CloseHandle(h);
        return INVALID_HANDLE_VALUE;
    }
    *size = (uint64_t)sz.QuadPart;
    return h;
}

int apc_svclog_open(const apc_svclog_opts_t *opts, apc_svclog_t **out, char *err, size_t errsz)
{
    int rc = 0;
    apc_svclog_t *log = NULL;
    wchar_t *wsrc = NULL;
    char *path = NULL;
    apc_buf_t b = {0};
    DWORD e = 0;

    if (out == NULL || opts == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no log options");
    *out = NULL;
    if (opts->keep < 0 || opts->keep > APC_SVCLOG_MAX_KEEP)
        return apc_seterr(err, errsz, APC_EINVAL, "log keep count %d is outside 0-%d", opts->keep,
                          APC_SVCLOG_MAX_KEEP);
    log = calloc(1, sizeof *log);
    if (log == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    InitializeSRWLock(&log->lock);
    log->file = INVALID_HANDLE_VALUE;
    log->max_bytes = opts->max_bytes != 0 ? opts->max_bytes : APC_SVCLOG_DEFAULT_MAX_BYTES;
    log->keep = opts->keep != 0 ? opts->keep : APC_SVCLOG_DEFAULT_KEEP;
    log->debug = opts->debug;
    log->echo = opts->echo;
    if (opts->hooks != NULL)
        log->hooks = *opts->hooks;

    if (opts->dir != NULL) {
        apc_buf_puts(&b, opts->dir);
        if (b.len > 0 && b.data[b.len - 1] != '\\' && b.data[b.len - 1] != '/')
            apc_buf_puts(&b, "\\");
        apc_buf_puts(&b, APC_SVCLOG_FILE);
        path = apc_buf_take(&b);
        if (path == NULL) {
            rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
            goto cleanup;
        }
        log->path = apc_utf8_to_wide(path);
        if (log->path == NULL) {
            rc = apc_seterr(err, errsz, APC_EINVAL, "log folder is not valid UTF-8");
            goto cleanup;
        }
        log->file = open_file(log->path, &log->size, &e);
        if (log->file == INVALID_HANDLE_VALUE) {
            rc = apc_win_seterr(err, errsz, e, "opening log file \"%s\"", path);
            goto cleanup;
        }
    }
    if (opts->event_source != NULL && log->hooks.report_event == NULL) {
        wsrc = apc_utf8_to_wide(opts->event_source);
        if (wsrc == NULL) {
            rc = apc_seterr(err, errsz, APC_EINVAL, "event source is not valid UTF-8");
            goto cleanup;
        }
        /* NULL on failure: the service then runs without the event log, by design. */
        log->source = RegisterEventSourceW(NULL, wsrc);
    }
    *out = log;
    log = NULL;
cleanup:
    apc_svclog_close(log);
    apc_buf_free(&b);
    free(path);
    free(wsrc);
    return rc;
}

/* Renames the files one step older and reopens an empty log. Runs under the lock. */
static void rotate(apc_svclog_t *log)
{
    size_t n = wcslen(log->path) + 4;
    wchar_t *from = NULL, *to = NULL;
    DWORD e = 0;
    int i;

    from = malloc(n * sizeof *from);
    to = malloc(n * sizeof *to);
    if (from == NULL || to == NULL)
        goto cleanup;
    log->file = apc_win_close(log->file);
    (void)_snwprintf(to, n, L"%ls.%d", log->path, log->keep);
    to[n - 1] = L'\0';
    if (!DeleteFileW(to) && GetLastError() != ERROR_FILE_NOT_FOUND)
        goto reopen;
    for (i = log->keep - 1; i >= 1; i--) {
        (void)_snwprintf(from, n, L"%ls.%d", log->path, i);
        from[n - 1] = L'\0';
        (void)_snwprintf(to, n, L"%ls.%d", log->path, i + 1);
        to[n - 1] = L'\0';
        if (!MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING) &&
            GetLastError() != ERROR_FILE_NOT_FOUND)
            goto reopen;
    }
    (void)_snwprintf(to, n, L"%ls.1", log->path);
    to[n - 1] = L'\0';
    (void)MoveFileExW(log->path, to, MOVEFILE_REPLACE_EXISTING);
reopen:
    /* Whatever happened above, keep a file to write to (the old one if it was not renamed). */
    log->file = open_file(log->path, &log->size, &e);
cleanup:
    free(from);
    free(to);
}

/* Writes bytes to the file under the lock, rotating first when they would not fit. */
static void file_append(apc_svclog_t *log, const char *data, size_t len)
{
    DWORD done = 0;

    if (log->path == NULL)
        return;
    AcquireSRWLockExclusive(&log->lock);
    if (log->file != INVALID_HANDLE_VALUE && log->size > 0 && log->size + len > log->max_bytes)
        rotate(log);
    if (log->file == INVALID_HANDLE_VALUE || len > MAXDWORD ||
        !WriteFile(log->file, data, (DWORD)len, &done, NULL) || done != len)
        log->lost++;
    else
        log->size += done;
    ReleaseSRWLockExclusive(&log->lock);
}

static void report(apc_svclog_t *log, int level, DWORD event_id, const char *text)
{
    WORD type = level == APC_LOG_ERROR     ? EVENTLOG_ERROR_TYPE
                : level == APC_LOG_WARNING ? EVENTLOG_WARNING_TYPE
                                           : EVENTLOG_INFORMATION_TYPE;
    wchar_t *w;
    LPCWSTR strings[1];

    if (log->hooks.report_event != NULL) {
        log->hooks.report_event(log->hooks.ctx, type, event_id, text);
        return;
    }
    if (log->source == NULL)
        return;
    w = apc_utf8_to_wide(text);
    if (w == NULL)
        return;
    strings[0] = w;
    /* Best effort: a full or unavailable event log must never stop the service. */
    (void)ReportEventW(log->source, type, 0, event_id, NULL, 1, 0, strings, NULL);
    free(w);
}

/* Formats the UTC time prefix "2026-11-26T07:15:02.123Z" (always 24 characters). */
static void format_time(int64_t ms, char *buf, size_t size)
{
    int64_t days = apc_floor_div(ms, APC_MS_PER_DAY);
    int64_t rest = ms - days * APC_MS_PER_DAY;
    int64_t y;
    int m, d;

    apc_civil_from_days(days, &y, &m, &d);
    (void)snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
                   (int)(rest / APC_MS_PER_HOUR), (int)(rest / APC_MS_PER_MIN % 60),
                   (int)(rest / 1000 % 60), (int)(rest % 1000));
}

static void vwrite(apc_svclog_t *log, int level, DWORD event_id, const char *component,
                   const char *fmt, va_list ap)
{
    apc_buf_t msg = {0}, lines = {0};
    char when[64];
    const char *p;
    int64_t now;

    if (log == NULL || fmt == NULL)
        return;
    if (level < APC_LOG_ERROR)
        level = APC_LOG_ERROR;
    if (level > APC_LOG_DEBUG)
        level = APC_LOG_DEBUG;
    if (level == APC_LOG_DEBUG && !log->debug)
        return;
    if (component == NULL || component[0] == '\0')
        component = "service";
    apc_buf_vprintf(&msg, fmt, ap);
    if (apc_buf_failed(&msg)) {
        apc_buf_free(&msg);
        return;
    }
    now = log->hooks.now_ms != NULL ? log->hooks.now_ms(log->hooks.ctx) : apc_win_now_ms();
    format_time(now, when, sizeof when);

    /* One file line per message line; carriage returns would break the line structure. */
    p = msg.data != NULL ? msg.data : "";
    do {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        size_t start;
        apc_buf_printf(&lines, "%s %s %s: ", when, level_name(level), component);
        start = lines.len;
        apc_buf_append(&lines, p, n);
        for (size_t i = start; i < lines.len && lines.data != NULL; i++)
            if (lines.data[i] == '\r')
                lines.data[i] = ' ';
        apc_buf_puts(&lines, "\r\n");
        p = nl != NULL ? nl + 1 : p + n;
    } while (*p != '\0');

    if (!apc_buf_failed(&lines) && lines.data != NULL) {
        file_append(log, lines.data, lines.len);
        if (log->echo != NULL) {
            /* The console shows the same lines with C line ends; stderr is unbuffered. */
            for (const char *q = lines.data; *q != '\0'; q++)
                if (*q != '\r')
                    (void)fputc(*q, log->echo);
            (void)fflush(log->echo);
        }
    } else {
        AcquireSRWLockExclusive(&log->lock);
        log->lost++;
        ReleaseSRWLockExclusive(&log->lock);
    }

    if (event_id == 0 && level == APC_LOG_ERROR)
        event_id = APC_EVENT_ERROR;
    else if (event_id == 0 && level == APC_LOG_WARNING)
        event_id = APC_EVENT_WARNING;
    if (event_id != 0) {
        apc_buf_t text = {0};
        apc_buf_printf(&text, "%s: %s", component, msg.data != NULL ? msg.data : "");
        if (!apc_buf_failed(&text) && text.data != NULL)
            report(log, level, event_id, text.data);
        apc_buf_free(&text);
    }
    apc_buf_free(&lines);
    apc_buf_free(&msg);
}

void apc_svclog_write(apc_svclog_t *log, int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(log, level, 0, component, fmt, ap);
    va_end(ap);
}

void apc_svclog_event(apc_svclog_t *log, int level, DWORD event_id, const char *component,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(log, level, event_id, component, fmt, ap);
    va_end(ap);
}

void apc_svclog_engine_sink(void *ctx, int level, const char *msg)
{
    char component[17];
    size_t n = 0;

    if (msg == NULL) {
        apc_svclog_write(ctx, level, "engine", "%s", "");
        return;
    }
    /* The engine's messages name their part themselves ("engine: ...", "history: ..."): use
       that as the component instead of writing it twice. */
    while (n < sizeof component - 1 && msg[n] >= 'a' && msg[n] <= 'z')
        n++;
    if (n > 0 && msg[n] == ':' && msg[n + 1] == ' ') {
        memcpy(component, msg, n);
        component[n] = '\0';
        apc_svclog_write(ctx, level, component, "%s", msg + n + 2);
    } else {
        apc_svclog_write(ctx, level, "engine", "%s", msg);
    }
}

void apc_svclog_pipe_sink(void *ctx, int level, const char *msg)
{
    apc_svclog_write(ctx, level, "pipe", "%s", msg != NULL ? msg : "");
}

uint64_t apc_svclog_lost(apc_svclog_t *log)
{
    uint64_t n;
    if (log == NULL)
        return 0;
    AcquireSRWLockShared(&log->lock);
    n = log->lost;
    ReleaseSRWLockShared(&log->lock);
    return n;
}

void apc_svclog_close(apc_svclog_t *log)
{
    if (log == NULL)
        return;
    log->file = apc_win_close(log->file);
    if (log->source != NULL)
        (void)DeregisterEventSource(log->source);
    free(log->path);
    free(log);
}
