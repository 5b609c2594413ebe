/*
 * engine.h - the scheduler engine: the one thread that owns the configuration, every job's
 * runtime state, the timer heap, the active runs and the idle workers, plus the worker
 * threads and the history thread it starts (DESIGN.md section 1).
 *
 * Why this way: every long-lived thread of the service is an alertable loop that owns its
 * state, and other threads talk to it only with QueueUserAPC. So there is no lock on
 * scheduler state anywhere: the functions below that "any thread" may call do nothing but
 * queue an APC to the engine thread (or wait for it to end). A caller that wants an answer
 * passes a request whose `done` callback the engine queues back, as a user APC, to a thread
 * the caller names; that thread must wait alertably (SleepEx / WaitFor...Ex with TRUE).
 *
 * Threads: apc_engine_start, apc_engine_join and apc_engine_free run on the thread that owns
 * the engine (the service main thread, the console main thread, a test); apc_engine_stop and
 * apc_engine_post may be called from any thread while the engine exists.
 */
#ifndef APC_ENGINE_H
#define APC_ENGINE_H

#include <windows.h>

#include <stdint.h>

#include "apc_protocol.h"
#include "apc_str.h"
#include "apc_tz.h"

/* Levels passed to apc_engine_opts_t.log (lower is more severe). */
#define APC_ENGINE_LOG_ERROR 0
#define APC_ENGINE_LOG_WARNING 1
#define APC_ENGINE_LOG_INFO 2
#define APC_ENGINE_LOG_DEBUG 3

typedef struct apc_engine apc_engine_t;

/*
 * What the engine reports about every run it starts, for tests and diagnostics: called on the
 * WORKER thread that runs the run, just before the run's work begins. Keep it short and
 * thread-safe; it must not call back into the engine.
 */
typedef void (*apc_engine_run_hook_t)(void *ctx, int64_t run_id, int worker, DWORD thread_id);

typedef struct apc_engine_opts {
    const char *config_path;  /* UTF-8 path of the JSON config */
    const apc_tz_t *local_tz; /* the system's local zone (tz_win.c provides it); NULL = UTC */
    /* The service log sink, called from any of the engine's threads (so it must be
       thread-safe); may be NULL. level is an APC_ENGINE_LOG_* value; msg has no newline. */
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;
    /* Optional, zero = default. Tests set these; the service leaves them zero. */
    apc_engine_run_hook_t run_hook; /* see apc_engine_run_hook_t */
    void *run_hook_ctx;
    uint64_t jitter_seed;    /* 0 = derived from the config path (stable across restarts) */
    int config_acl;          /* APC_CFGACL_* (cfgacl.h) applied at every reload; 0 = no check */
    size_t hist_max_pending; /* records the history keeps while it cannot write; 0 = 100,000 */
    /* BENCHMARKS ONLY (tools/bench), never reachable from the config or the command line:
       nonzero runs the engine without a history thread or database, so "engine without
       history" is measured exactly. Nothing is recorded, nothing is recovered, run ids
       start at 1, and a submit is answered at once (there is no commit to wait for). */
    int no_history;
} apc_engine_opts_t;

/*
 * Loads and validates the config (on errors: APC_EINVAL and every diagnostic, one per line,
 * in *errors), opens the history DB (creating its folders), recovers runs left queued or
 * running as interrupted, starts the history thread, the workers and the engine thread,
 * applies catch-up and @startup, arms the timer. Returns 0 and the engine in *out only once
 * the engine is really running (the SCM reports RUNNING after this). On failure nothing is
 * left running, *out is NULL and *errors (may be NULL) holds the reason(s), one per line.
 * Runs on the owning thread.
 */
int apc_engine_start(const apc_engine_opts_t *opts, apc_engine_t **out, apc_buf_t *errors);

/*
 * Asks the engine to stop: no new runs; running runs get service.shutdown_grace, then are
 * cancelled (recorded `cancelled`, error "service stopping"); runs queued but never started
 * are recorded `cancelled` too; the history is flushed; every thread ends. Queues the stop
 * APC and returns at once; calling it again (or after the engine ended) is harmless.
 * Any thread. Accepts NULL.
 */
void apc_engine_stop(apc_engine_t *e);

/*
 * Waits ALERTABLY (so the caller's own APCs keep running) up to timeout_ms (INFINITE
 * allowed) for every engine thread to end. Returns 0 once the engine, the workers and the
 * history thread have all ended and the history is flushed, APC_ETIMEDOUT if they are still
 * running, APC_EINVAL for NULL. Runs on the owning thread.
 */
int apc_engine_join(apc_engine_t *e, DWORD timeout_ms);

/*
 * A handle that becomes signalled when the engine has fully ended (the same condition that
 * makes apc_engine_join return 0), for callers that wait on several objects at once. Owned
 * by the engine: do not close it. NULL for NULL.
 */
HANDLE apc_engine_done_event(const apc_engine_t *e);

/*
 * Frees the engine. Call it after apc_engine_join returned 0 (or after a failed start left
 * *out NULL: accepts NULL). If the threads are somehow still running it stops and joins
 * them first, waiting without limit. Runs on the owning thread.
 */
void apc_engine_free(apc_engine_t *e);

/*
 * A request from another thread (console, pipe server, SCM handler, tests). The engine
 * answers by queuing req->done as a user APC to req->reply_thread (a thread that waits
 * alertably); the request is owned by the caller and must stay alive, unchanged, until done
 * ran. Zero the struct, fill `in` (apc_proto_request_init + fields), reply_thread and done.
 * Answers the engine gives in one turn of its loop to the same reply_thread handle travel in
 * ONE APC, whose routine calls their done callbacks in the order the engine answered (each
 * done may free its own request). Under Wine every APC is a wineserver round trip, so a
 * burst of requests from one thread (the pipe server's) costs one reply APC, not one each.
 */
typedef struct apc_engine_req apc_engine_req_t;
struct apc_engine_req {
    apc_proto_request_t in;   /* op + fields, exactly as decoded from the pipe (apc_protocol.h) */
    const char *submitted_by; /* account name to record (NULL = none) */
    int result;               /* 0 or APC_E*, set by the engine */
    apc_buf_t response;       /* the encoded JSON response (apc_proto_response_encode), set by the
                           engine; the caller frees it with apc_buf_free */
    int64_t run_id;           /* submit: the id of the queued run */
    HANDLE reply_thread;      /* a real thread handle (DuplicateHandle of GetCurrentThread) */
    void (*done)(apc_engine_req_t *req); /* runs on reply_thread */
    void *ctx;
    apc_engine_req_t *next_; /* private to the engine: its batch of answers to reply_thread */
};

/*
 * Queues req to the engine thread. Ops answered: status, list, submit, cancel, reload, pause,
 * resume (history, show and logs are read by the pipe server from its own read-only
 * connection: the engine answers them with APC_EINVAL). A submit is answered only after its
 * queued row is committed to the history database (durable acknowledgement); should the
 * history thread drop the row unwritten (its memory bound reached while the database cannot
 * be written, or given up at stop), the answer is the error APC_EDB "the history database
 * could not record the request" instead - never "ok" - and later requests are answered as
 * usual once their own rows are written.
 * Returns 0 if queued (done WILL run exactly once), APC_EINVAL for a bad argument, APC_ESTATE
 * if the engine has stopped taking requests (done will NOT run), or APC_ESYS if QueueUserAPC
 * failed. Any thread.
 */
int apc_engine_post(apc_engine_t *e, apc_engine_req_t *req);

#endif /* APC_ENGINE_H */
