/*
 * ctl.h - the internal interfaces of apcctl.exe: the console/redirect-aware output layer
 * (ctl_out.c), the named-pipe client (ctl_pipe.c) and the command implementations (apcctl.c).
 *
 * Why split this way: the output layer is the one place that knows whether stdout is a
 * console (UTF-16 WriteConsoleW, colours, live progress) or a file/pipe (UTF-8 bytes, no
 * decoration), so commands only ever append UTF-8 text. The pipe client is the one place
 * that touches the control pipe, so its security flags and size cap cannot be forgotten by
 * a command.
 *
 * Threads: apcctl is single-threaded; everything here runs on its main thread.
 */
#ifndef APC_CTL_H
#define APC_CTL_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "apc_str.h"

/* Exit codes (documented in `apcctl --help` and README.md (section apcctl)). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR 1       /* the service answered with an error; invalid config */
#define CTL_EXIT_USAGE 2       /* bad command line */
#define CTL_EXIT_UNREACHABLE 3 /* cannot reach the service: not running, access denied, busy */
/* run --wait: the job's own exit code, except for runs that did not produce one. */
#define CTL_EXIT_TIMED_OUT 124
#define CTL_EXIT_SKIPPED 125
#define CTL_EXIT_FAILED_TO_START 126
#define CTL_EXIT_INTERRUPTED 128
#define CTL_EXIT_CANCELLED 130

/* ---- Output (ctl_out.c) --------------------------------------------------------------------- */

/* Detects whether stdout/stderr are consoles and whether colours are wanted. Call once. */
void ctl_out_init(void);

/* 1 if stdout is a console (progress lines are shown only then). */
int ctl_out_is_console(void);

/* Appends UTF-8 text to the stdout buffer (written by ctl_out_flush). */
void ctl_out(const char *s);
void ctl_outn(const char *s, size_t n);
void ctl_outf(const char *fmt, ...) APC_PRINTF(1, 2);

/* Writes one line to stderr at once: "apcctl: <text>\n". */
void ctl_errf(const char *fmt, ...) APC_PRINTF(1, 2);

/* Writes stderr text as is (usage texts), at once. */
void ctl_err_raw(const char *s);

/*
 * Writes the buffered stdout text. Returns 0, or -1 after a write error (the error is
 * remembered and reported by ctl_out_finish).
 */
int ctl_out_flush(void);

/*
 * Shows a transient progress line on the console (no-op when stdout is redirected); the
 * next call replaces it, ctl_progress_clear removes it.
 */
void ctl_progress(const char *text);
void ctl_progress_clear(void);

/* Returns the SGR colour sequence for a run status ("" when colours are off). */
const char *ctl_color_status(const char *status);
const char *ctl_color_reset(void);

/*
 * Flushes stdout and checks that every write succeeded (as git does): on a write error it
 * reports it on stderr and returns CTL_EXIT_ERROR if code was 0, otherwise code.
 */
int ctl_out_finish(int code);

/* A text table: cells are copied; printed with columns aligned to display width. */
typedef struct ctl_table {
    char **cells;
    size_t ncols, nrows, ncells, cap;
    const char **colors; /* per cell, "" or an SGR sequence (not copied: static strings) */
    int failed;
} ctl_table_t;

void ctl_table_init(ctl_table_t *t, size_t ncols);
/* Adds a cell to the current row (rows fill left to right); color may be NULL. */
void ctl_table_add(ctl_table_t *t, const char *text, const char *color);
/* Prints the table to the stdout buffer and frees it. */
void ctl_table_print(ctl_table_t *t);
void ctl_table_free(ctl_table_t *t);

/* ---- Time for people (ctl_out.c) ------------------------------------------------------------ */

/* UTC offset in seconds of the system's local time at ms (0 if Windows cannot tell). */
int32_t ctl_local_offset(int64_t ms);

/* "2026-03-08 03:00:00" in local time, or "-" for APC_TIME_NONE. buf >= 32 bytes. */
void ctl_fmt_local(int64_t ms, char *buf, size_t size);

/* "in 4m", "3h ago", "now"; "-" for APC_TIME_NONE. buf >= 32 bytes. */
void ctl_fmt_relative(int64_t ms, int64_t now_ms, char *buf, size_t size);

/* "1h2m", "850ms" for a non-negative duration; "-" if negative/NONE. buf >= 40 bytes. */
void ctl_fmt_duration(int64_t ms, char *buf, size_t size);

/* ---- Pipe client (ctl_pipe.c) --------------------------------------------------------------- */

typedef struct ctl_conn {
    HANDLE pipe;
    HANDLE event;
    char *buf; /* one message: APC_PROTO_MAX_MESSAGE bytes + NUL */
} ctl_conn_t;

/* Why a connection failed, for the exit-3 message. */
typedef enum ctl_reach {
    CTL_REACH_OK = 0,
    CTL_REACH_NOT_RUNNING, /* the pipe does not exist */
    CTL_REACH_DENIED,      /* the pipe's DACL refused us */
    CTL_REACH_BUSY,        /* every instance stayed busy for the whole wait */
    CTL_REACH_BROKEN,      /* the service closed the pipe or another I/O error */
    CTL_REACH_TIMEOUT      /* no answer in time */
} ctl_reach_t;

/*
 * Connects to \\.\pipe\<service> as an identification-only client in message mode.
 * On failure returns an APC_E* code, sets *reach and writes the reason into err.
 */
int ctl_connect(const char *service, ctl_conn_t *c, ctl_reach_t *reach, char *err, size_t errsz);

/* Sends one message (len <= APC_PROTO_MAX_MESSAGE) within timeout_ms. */
int ctl_send(ctl_conn_t *c, const char *msg, size_t len, DWORD timeout_ms, char *err, size_t errsz);

/*
 * Receives one message into c->buf (NUL-terminated), *len its length. Returns 0,
 * APC_ETIMEDOUT when nothing arrived within timeout_ms (the connection stays usable),
 * APC_ETOOBIG for a message over the cap, or another code when the pipe broke.
 */
int ctl_recv(ctl_conn_t *c, DWORD timeout_ms, size_t *len, char *err, size_t errsz);

/* Closes the connection. Accepts a zeroed struct. */
void ctl_close(ctl_conn_t *c);

#endif /* APC_CTL_H */
