/*
 * pipesrv.h - the control pipe server: the pipe thread that serves \\.\pipe\<service name>.
 *
 * Why this shape (DESIGN.md section 1): the pipe thread is an alertable loop like every other
 * long-lived thread of the service. It waits in WaitForMultipleObjectsEx(..., TRUE) on the
 * events of its pending overlapped ConnectNamedPipe calls; everything else arrives as an APC on
 * that same thread: ReadFileEx / WriteFileEx completion routines, the engine's answers
 * (apc_engine_req_t.done, queued to the pipe thread) and the stop request. So the thread owns
 * every connection without a single lock, and a slow or silent client never blocks another.
 *
 * Requests the engine answers (status, list, submit, cancel, reload, pause, resume) are posted
 * to it; history, show and logs are answered by the pipe thread itself from its own read-only
 * history connection and the runs' output files, so reading history never waits on the
 * scheduler. docs/security.md says who may connect and how that is enforced.
 *
 * Threads: apc_pipesrv_start, apc_pipesrv_join and apc_pipesrv_free run on the thread that
 * owns the server (the service main thread, a test); apc_pipesrv_stop may be called from any
 * thread while the server exists.
 */
#ifndef APC_PIPESRV_H
#define APC_PIPESRV_H

#include <windows.h>

#include <stddef.h>

#include "engine.h"

#define APC_PIPESRV_BUFFER 65536           /* pipe in/out buffer sizes, bytes */
#define APC_PIPESRV_DEFAULT_IDLE_MS 10000u /* a client that sends nothing is dropped */
/* Connected clients at most, listening instances included: with 256 connected no instance
   listens, and further clients get ERROR_PIPE_BUSY (WaitNamedPipe waits for a free one). */
#define APC_PIPESRV_MAX_CONNECTIONS 256
#define APC_PIPESRV_LISTENERS 4 /* instances kept waiting for a client */

typedef struct apc_pipesrv apc_pipesrv_t;

/* How the pipe thread hands a request to the engine: apc_engine_post or a test's stand-in. */
typedef int (*apc_pipesrv_post_fn)(apc_engine_t *engine, apc_engine_req_t *req);

typedef struct apc_pipesrv_opts {
    const char *name; /* service.name: the pipe is \\.\pipe\<name>; 1-200 characters */
    /* Where status/list/submit/cancel/reload/pause/resume go: post(engine, req). The service
       passes apc_engine_post and its engine, which must outlive the server. (A pointer rather
       than a direct call keeps the pipe server testable against a stand-in engine thread.) */
    apc_engine_t *engine;
    apc_pipesrv_post_fn post;         /* required */
    const char *history_path;         /* service.history, opened read-only; NULL = history/show/logs
                                 are answered with ESTATE */
    const char *const *control_allow; /* service.control_allow, NULL-terminated; may be NULL */
    DWORD idle_timeout_ms;            /* 0 = APC_PIPESRV_DEFAULT_IDLE_MS */
    /* The service log sink (APC_ENGINE_LOG_* levels, no newline), called on the pipe thread
       and on the starting thread; may be NULL. */
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;
} apc_pipesrv_opts_t;

/*
 * Builds the pipe's security descriptor (apc_pipesec_build: SYSTEM, Administrators and
 * control_allow), creates the first pipe instance with FILE_FLAG_FIRST_PIPE_INSTANCE and starts
 * the pipe thread. Returns 0 and the server in *out once the pipe accepts clients. On failure
 * nothing is left running, *out is NULL and err says why:
 *   - the name is taken: APC_EEXISTS, `pipe \\.\pipe\apcsvc already exists: another instance
 *     or a squatter` (the service must refuse to start: someone else would get our clients);
 *   - an unknown control_allow account: APC_EINVAL naming it (see apc_pipesec_build);
 *   - APC_EINVAL for bad options, APC_ENOMEM, or the translated Win32 error.
 * The security descriptor's SDDL is available from apc_pipesrv_sddl. Runs on the owning thread.
 */
int apc_pipesrv_start(const apc_pipesrv_opts_t *opts, apc_pipesrv_t **out, char *err, size_t errsz);

/*
 * Asks the pipe thread to stop: it closes every listening instance and connection (a request
 * already posted to the engine is waited for, so its answer has somewhere to land, then
 * dropped) and ends. Queues an APC and returns at once; calling it again, or after the thread
 * ended, is harmless. Any thread. Accepts NULL.
 */
void apc_pipesrv_stop(apc_pipesrv_t *srv);

/*
 * Waits ALERTABLY up to timeout_ms (INFINITE allowed) for the pipe thread to end. Returns 0 once
 * it ended (every pipe handle closed), APC_ETIMEDOUT if it still runs, APC_EINVAL for NULL.
 * Runs on the owning thread.
 */
int apc_pipesrv_join(apc_pipesrv_t *srv, DWORD timeout_ms);

/*
 * Frees the server. Call after apc_pipesrv_join returned 0; if the thread still runs, stops it
 * and waits without limit first. Accepts NULL. Runs on the owning thread.
 */
void apc_pipesrv_free(apc_pipesrv_t *srv);

/* The canonical SDDL of the pipe's owner and DACL (see apc_pipesec_build). NULL for NULL. */
const char *apc_pipesrv_sddl(const apc_pipesrv_t *srv);

/* The full pipe path as UTF-8, "\\.\pipe\<name>". NULL for NULL. */
const char *apc_pipesrv_path(const apc_pipesrv_t *srv);

#endif /* APC_PIPESRV_H */
