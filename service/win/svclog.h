/*
 * svclog.h - the service log: a UTF-8 text file apcsvc.log in service.log_dir with size-based
 * rotation, one line per event, plus the Windows event log (source "ApcSched") for what an
 * administrator must see: start, stop, configuration errors, failed runs, every ERROR and
 * WARNING line.
 *
 *   2026-11-26T07:15:02.123Z INFO engine: started 4 workers
 *
 * Why a lock and not a logging thread fed by APCs: lines come from every thread (the SCM
 * handler thread, the console control thread, the engine, workers, the history thread) and
 * from the last moments of a stop. With a lock a line is written (in the system cache, not
 * just queued) when the call returns, so nothing is lost when the process ends, the lines of
 * each thread stay in order, and the log needs no place in the shutdown order of the
 * threads. A line costs one WriteFile; at a few lines per run the lock is never contended
 * in any way that matters. The lock guards only the log's own file state, never scheduler
 * state.
 *
 * If the event source is not registered (the installer does that) or the log folder cannot
 * be written, the service still runs: the event log and the file are each best effort after
 * a successful apc_svclog_open().
 *
 * Thread safety: apc_svclog_open/close on the owning thread (service main / console main);
 * apc_svclog_write, apc_svclog_event and apc_svclog_engine_sink from any thread in between.
 */
#ifndef APC_SVCLOG_H
#define APC_SVCLOG_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apc_error.h"

/* Levels, lower is more severe; the same values as APC_ENGINE_LOG_* (engine.h). */
#define APC_LOG_ERROR 0
#define APC_LOG_WARNING 1
#define APC_LOG_INFO 2
#define APC_LOG_DEBUG 3

/* The event source name the installer registers, and the log file's name. */
#define APC_SVCLOG_SOURCE "ApcSched"
#define APC_SVCLOG_FILE "apcsvc.log"
#define APC_SVCLOG_DEFAULT_MAX_BYTES (10u * 1024u * 1024u)
#define APC_SVCLOG_DEFAULT_KEEP 5
#define APC_SVCLOG_MAX_KEEP 99

/* Event IDs written to the event log (documented in README.md (section Running apcsvc.exe)). */
#define APC_EVENT_STARTED 1      /* information: the service is running */
#define APC_EVENT_STOPPED 2      /* information: the service stopped cleanly */
#define APC_EVENT_CONFIG_ERROR 3 /* error: the configuration was rejected (all findings) */
#define APC_EVENT_START_FAILED 4 /* error: the service could not start (the reason) */
#define APC_EVENT_RELOADED 5     /* information or error: result of a PARAMCHANGE reload */
#define APC_EVENT_ERROR 100      /* error: any other ERROR line (failed runs, engine errors) */
#define APC_EVENT_WARNING 101    /* warning: any other WARNING line */

typedef struct apc_svclog apc_svclog_t;

/*
 * Test seams: the clock and the event log writer. A NULL member means the real one
 * (apc_win_now_ms; ReportEventW on the registered source).
 */
typedef struct apc_svclog_hooks {
    int64_t (*now_ms)(void *ctx);
    /* Called instead of ReportEventW, with the event log type (EVENTLOG_ERROR_TYPE ...). */
    void (*report_event)(void *ctx, WORD type, DWORD event_id, const char *text);
    void *ctx;
} apc_svclog_hooks_t;

typedef struct apc_svclog_opts {
    const char *dir;          /* log folder (UTF-8, must exist); NULL = no log file */
    const char *event_source; /* APC_SVCLOG_SOURCE, or NULL for no event log */
    uint64_t max_bytes;       /* rotate before a line would grow the file past this; 0 = 10 MiB */
    int keep;                 /* rotated files kept (apcsvc.log.1 newest); 0 = 5, max 99 */
    int debug;                /* 1: also write DEBUG lines */
    FILE *echo;               /* console mode: each line also goes here (stderr); NULL = none */
    const apc_svclog_hooks_t *hooks; /* NULL = the real clock and event log */
} apc_svclog_opts_t;

/*
 * Opens (creating or appending to) <dir>\apcsvc.log and registers the event source.
 * Returns 0 and the log in *out; APC_EINVAL for bad options; APC_ENOMEM; or the translated
 * Win32 error when the file cannot be opened (`opening log file "X": <text> (error N)`): the
 * caller decides whether to run without a file (it may open again with dir = NULL).
 * A missing event source is not an error (RegisterEventSourceW succeeds on Windows even for
 * an unregistered source; the entries then lack their message text). Owning thread.
 */
int apc_svclog_open(const apc_svclog_opts_t *opts, apc_svclog_t **out, char *err, size_t errsz);

/*
 * Writes one event: "<UTC time> <LEVEL> <component>: <message>" to the file (and echo), one
 * line per line of the formatted message, all with the same time. ERROR and WARNING also go
 * to the event log (APC_EVENT_ERROR / APC_EVENT_WARNING), as one entry. DEBUG is dropped
 * unless opts.debug. log may be NULL (nothing happens). Any thread.
 */
void apc_svclog_write(apc_svclog_t *log, int level, const char *component, const char *fmt, ...)
    APC_PRINTF(4, 5);

/*
 * Like apc_svclog_write, but always also writes an event log entry with event_id (the
 * service's own milestones: APC_EVENT_STARTED, ..._STOPPED, ..._CONFIG_ERROR, ...).
 * Any thread.
 */
void apc_svclog_event(apc_svclog_t *log, int level, DWORD event_id, const char *component,
                      const char *fmt, ...) APC_PRINTF(5, 6);

/*
 * The engine's log callback (apc_engine_opts_t.log with log_ctx = the apc_svclog_t *). A
 * message that begins with its own component ("history: ...", lower-case letters then ": ")
 * is written under that component; any other under "engine". Any thread.
 */
void apc_svclog_engine_sink(void *ctx, int level, const char *msg);

/* The same for the control pipe server's messages, written with the component "pipe". */
void apc_svclog_pipe_sink(void *ctx, int level, const char *msg);

/* Number of lines that could not be written to the file (disk full, ...). Any thread. */
uint64_t apc_svclog_lost(apc_svclog_t *log);

/* Closes the file and the event source and frees the log. Accepts NULL. Owning thread, after
   every other thread that writes has stopped. */
void apc_svclog_close(apc_svclog_t *log);

#endif /* APC_SVCLOG_H */
