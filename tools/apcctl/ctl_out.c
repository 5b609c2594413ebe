/*
 * ctl_out.c - apcctl's output: UTF-8 text to a console or to a file/pipe, aligned tables,
 * colours, a live progress line, and times written for people (local time, "in 4m").
 *
 * Why this way: a Windows console shows UTF-8 bytes written with WriteFile only if its code
 * page happens to be 65001, so text for a console is converted to UTF-16 and written with
 * WriteConsoleW; redirected output stays UTF-8 bytes, which is what scripts and files want.
 * Colours and the progress line are console-only (and NO_COLOR turns colours off), so
 * redirected output is plain and stable. Every write is checked and a failure is reported
 * before exit, the way git does, so `apcctl history > full-disk` does not exit 0.
 *
 * Threads: the main thread only (module state is plain statics).
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_time.h"
#include "win_util.h"

static HANDLE out_h = INVALID_HANDLE_VALUE;
static HANDLE err_h = INVALID_HANDLE_VALUE;
static int out_console;
static int err_console;
static int use_color;
static int progress_shown;
static int write_failed;
static DWORD write_error;
static apc_buf_t outbuf;

static int is_console(HANDLE h)
{
    DWORD mode;

    return h != NULL && h != INVALID_HANDLE_VALUE && GetConsoleMode(h, &mode) != 0;
}

void ctl_out_init(void)
{
    DWORD mode = 0;

    out_h = GetStdHandle(STD_OUTPUT_HANDLE);
    err_h = GetStdHandle(STD_ERROR_HANDLE);
    out_console = is_console(out_h);
    err_console = is_console(err_h);
    /* NO_COLOR (https://no-color.org): any value, even empty, turns colours off. */
    if (out_console && GetEnvironmentVariableW(L"NO_COLOR", NULL, 0) == 0 &&
        GetLastError() == ERROR_ENVVAR_NOT_FOUND && GetConsoleMode(out_h, &mode)) {
        /* Colours are ANSI sequences; they need virtual-terminal processing (Windows 10+). */
        if (SetConsoleMode(out_h, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING))
            use_color = 1;
    }
}

int ctl_out_is_console(void)
{
    return out_console;
}

/* Writes UTF-8 bytes to h: converted to UTF-16 for a console, as is otherwise. */
static int write_utf8(HANDLE h, int console, const char *s, size_t n)
{
    if (h == NULL || h == INVALID_HANDLE_VALUE)
        return -1;
    if (console) {
        /* No MB_ERR_INVALID_CHARS: a stray byte shows as U+FFFD instead of losing the text. */
        while (n > 0) {
            int chunk = n > 8192 ? 8192 : (int)n;
            int wn;
            wchar_t *w;
            DWORD done = 0;

            /* Never split a UTF-8 sequence between chunks. */
            while (chunk < (int)n && chunk > 0 && ((unsigned char)s[chunk] & 0xC0u) == 0x80u)
                chunk--;
            if (chunk == 0)
                chunk = n > 8192 ? 8192 : (int)n;
            wn = MultiByteToWideChar(CP_UTF8, 0, s, chunk, NULL, 0);
            if (wn <= 0)
                return -1;
            w = malloc((size_t)wn * sizeof *w);
            if (w == NULL)
                return -1;
            if (MultiByteToWideChar(CP_UTF8, 0, s, chunk, w, wn) != wn ||
                !WriteConsoleW(h, w, (DWORD)wn, &done, NULL)) {
                free(w);
                return -1;
            }
            free(w);
            s += chunk;
            n -= (size_t)chunk;
        }
        return 0;
    }
    while (n > 0) {
        DWORD done = 0;
        DWORD want = n > 65536 ? 65536 : (DWORD)n;

        if (!WriteFile(h, s, want, &done, NULL) || done == 0)
            return -1;
        s += done;
        n -= done;
    }
    return 0;
}

void ctl_outn(const char *s, size_t n)
{
    apc_buf_append(&outbuf, s, n);
}

void ctl_out(const char *s)
{
    apc_buf_puts(&outbuf, s);
}

void ctl_outf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apc_buf_vprintf(&outbuf, fmt, ap);
    va_end(ap);
}

int ctl_out_flush(void)
{
    if (apc_buf_failed(&outbuf)) {
        write_failed = 1;
        write_error = ERROR_NOT_ENOUGH_MEMORY;
        apc_buf_free(&outbuf);
        return -1;
    }
    if (outbuf.len > 0) {
        ctl_progress_clear();
        if (!write_failed && write_utf8(out_h, out_console, outbuf.data, outbuf.len) != 0) {
            write_failed = 1;
            write_error = GetLastError();
        }
    }
    apc_buf_reset(&outbuf);
    return write_failed ? -1 : 0;
}

void ctl_err_raw(const char *s)
{
    ctl_progress_clear();
    /* A failing stderr has nowhere to be reported; the exit code still tells. */
    (void)write_utf8(err_h, err_console, s, strlen(s));
}

void ctl_errf(const char *fmt, ...)
{
    apc_buf_t b = {0};
    va_list ap;

    ctl_out_flush(); /* keep stdout and stderr in order on a shared console */
    apc_buf_puts(&b, "apcctl: ");
    va_start(ap, fmt);
    apc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    apc_buf_puts(&b, "\n");
    if (!apc_buf_failed(&b))
        ctl_err_raw(b.data);
    apc_buf_free(&b);
}

void ctl_progress(const char *text)
{
    apc_buf_t b = {0};

    if (!out_console)
        return;
    /* \r and erase-line: the new text replaces the old one in place. */
    apc_buf_puts(&b, "\r");
    apc_buf_puts(&b, text);
    apc_buf_puts(&b, use_color ? "\x1b[K" : "   ");
    if (!apc_buf_failed(&b) && write_utf8(out_h, 1, b.data, b.len) == 0)
        progress_shown = 1;
    apc_buf_free(&b);
}

void ctl_progress_clear(void)
{
    static const char blank[] = "\r                                                  "
                                "                            \r";

    if (!progress_shown)
        return;
    progress_shown = 0;
    if (use_color)
        (void)write_utf8(out_h, 1, "\r\x1b[K", 4);
    else
        (void)write_utf8(out_h, 1, blank, sizeof blank - 1);
}

const char *ctl_color_status(const char *status)
{
    if (!use_color || status == NULL)
        return "";
    if (strcmp(status, "succeeded") == 0)
        return "\x1b[32m";
    if (strcmp(status, "failed") == 0 || strcmp(status, "timed_out") == 0)
        return "\x1b[31m";
    if (strcmp(status, "running") == 0 || strcmp(status, "queued") == 0)
        return "\x1b[36m";
    return "\x1b[33m"; /* cancelled, interrupted, skipped: someone should look */
}

const char *ctl_color_reset(void)
{
    return use_color ? "\x1b[0m" : "";
}

int ctl_out_finish(int code)
{
    ctl_out_flush();
    apc_buf_free(&outbuf);
    if (write_failed) {
        char msg[256];
        apc_win_seterr(msg, sizeof msg, write_error, "error writing to standard output");
        ctl_errf("%s", msg);
        return code == 0 ? CTL_EXIT_ERROR : code;
    }
    return code;
}

/* ---- Tables --------------------------------------------------------------------------------- */

void ctl_table_init(ctl_table_t *t, size_t ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

void ctl_table_add(ctl_table_t *t, const char *text, const char *color)
{
    char *copy;

    if (t->failed)
        return;
    if (t->ncells + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **cells = realloc(t->cells, cap * sizeof *cells);
        const char **colors;
        if (cells == NULL) {
            t->failed = 1;
            return;
        }
        t->cells = cells;
        colors = realloc((void *)t->colors, cap * sizeof *colors);
        if (colors == NULL) {
            t->failed = 1;
            return;
        }
        t->colors = colors;
        t->cap = cap;
    }
    copy = apc_strdup(text != NULL ? text : "-");
    if (copy == NULL) {
        t->failed = 1;
        return;
    }
    t->cells[t->ncells] = copy;
    t->colors[t->ncells] = color != NULL ? color : "";
    t->ncells++;
    /* A row exists once its first cell is added. */
    t->nrows = (t->ncells + t->ncols - 1) / t->ncols;
}

/* Display width of UTF-8 text: one column per code point (enough for our tables). */
static size_t width_of(const char *s)
{
    size_t w = 0;

    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0u) != 0x80u)
            w++;
    return w;
}

void ctl_table_print(ctl_table_t *t)
{
    size_t *widths = NULL;
    size_t r, c;

    if (t->failed) {
        outbuf.failed = 1;
        goto cleanup;
    }
    widths = calloc(t->ncols, sizeof *widths);
    if (widths == NULL) {
        outbuf.failed = 1;
        goto cleanup;
    }
    for (r = 0; r < t->nrows; r++)
        for (c = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            if (i < t->ncells && width_of(t->cells[i]) > widths[c])
                widths[c] = width_of(t->cells[i]);
        }
    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            const char *cell, *color;
            if (i >= t->ncells)
                break;
            cell = t->cells[i];
            color = t->colors[i];
            if (color[0] != '\0')
                ctl_outf("%s%s%s", color, cell, ctl_color_reset());
            else
                ctl_out(cell);
            /* Two spaces between columns; no trailing blanks after the last one. */
            if (c + 1 < t->ncols && i + 1 < t->ncells)
                for (size_t pad = width_of(cell); pad < widths[c] + 2; pad++)
                    ctl_out(" ");
        }
        ctl_out("\n");
    }
cleanup:
    free(widths);
    ctl_table_free(t);
}

void ctl_table_free(ctl_table_t *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free((void *)t->colors);
    memset(t, 0, sizeof *t);
}

/* ---- Time ----------------------------------------------------------------------------------- */

int32_t ctl_local_offset(int64_t ms)
{
    LONGLONG ticks = apc_win_filetime_from_ms(ms);
    FILETIME ft, lft;
    SYSTEMTIME utc, local;
    ULONGLONG u, l;

    ft.dwLowDateTime = (DWORD)((ULONGLONG)ticks & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)((ULONGLONG)ticks >> 32);
    /* SystemTimeToTzSpecificLocalTime applies the DST rule of the year of that instant,
       unlike FileTimeToLocalFileTime, which applies today's offset to every date. */
    if (!FileTimeToSystemTime(&ft, &utc) || !SystemTimeToTzSpecificLocalTime(NULL, &utc, &local) ||
        !SystemTimeToFileTime(&local, &lft))
        return 0;
    u = ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
    l = ((ULONGLONG)lft.dwHighDateTime << 32) | lft.dwLowDateTime;
    return (int32_t)(((LONGLONG)l - (LONGLONG)u) / 10000000);
}

void ctl_fmt_local(int64_t ms, char *buf, size_t size)
{
    int64_t local, days, secs, y;
    int m, d;

    if (ms == APC_TIME_NONE) {
        snprintf(buf, size, "-");
        return;
    }
    local = ms + (int64_t)ctl_local_offset(ms) * 1000;
    days = apc_floor_div(local, APC_MS_PER_DAY);
    secs = apc_floor_mod(local, APC_MS_PER_DAY) / 1000;
    apc_civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)y, m, d, (int)(secs / 3600),
             (int)(secs / 60 % 60), (int)(secs % 60));
}

/* The largest unit only ("4m", "3h", "2d"): enough to read a table at a glance. */
static void coarse(int64_t ms, char *buf, size_t size)
{
    if (ms < APC_MS_PER_MIN)
        snprintf(buf, size, "%llds", (long long)(ms / APC_MS_PER_S));
    else if (ms < APC_MS_PER_HOUR)
        snprintf(buf, size, "%lldm", (long long)(ms / APC_MS_PER_MIN));
    else if (ms < 2 * APC_MS_PER_DAY)
        snprintf(buf, size, "%lldh", (long long)(ms / APC_MS_PER_HOUR));
    else
        snprintf(buf, size, "%lldd", (long long)(ms / APC_MS_PER_DAY));
}

void ctl_fmt_relative(int64_t ms, int64_t now_ms, char *buf, size_t size)
{
    char part[32];

    if (ms == APC_TIME_NONE) {
        snprintf(buf, size, "-");
        return;
    }
    if (ms - now_ms >= -999 && ms - now_ms <= 999) {
        snprintf(buf, size, "now");
        return;
    }
    if (ms > now_ms) {
        coarse(ms - now_ms, part, sizeof part);
        snprintf(buf, size, "in %s", part);
    } else {
        coarse(now_ms - ms, part, sizeof part);
        snprintf(buf, size, "%s ago", part);
    }
}

void ctl_fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (ms == APC_TIME_NONE || ms < 0 || apc_duration_format(ms, buf, size) != 0)
        snprintf(buf, size, "-");
}
