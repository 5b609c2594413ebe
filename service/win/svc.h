/*
 * svc.h - apcsvc.exe's two ways of running the engine: as a Windows service under the SCM,
 * and in the console (`apcsvc run`). Both run the same lifecycle, apc_svc_run(), and stop the
 * same way, apc_svc_handle_control(); only how the stop request arrives differs.
 *
 * Service lifecycle (what the SCM sees; one helper alone writes SERVICE_STATUS):
 *
 *   START_PENDING cp1 --config loaded--> cp2 --folders, log--> cp3 --engine started--> RUNNING
 *        |  (any step fails)                                                            |
 *        v                                                     STOP / PRESHUTDOWN /     |
 *   STOPPED, ERROR_SERVICE_SPECIFIC_ERROR + APC_SVC_EXIT_* code   SHUTDOWN (handler)    v
 *                                                             STOP_PENDING cp1, cp2 ... (rising
 *                                                             while the engine finishes runs)
 *                                                                     |  engine fully ended
 *                                                                     v
 *                                                   STOPPED (exit 0; 1 if the engine ended
 *                                                            without being asked to)
 *
 * STOPPED is always reported last, after the engine, its threads and the log are closed: the
 * SCM may end the process as soon as it sees STOPPED.
 *
 * Threads:
 *   - the "service main thread" runs apc_svc_run(): ServiceMain's thread in service mode, the
 *     process' main thread in console mode. It owns the engine and waits alertably, so the
 *     engine's replies (reload results) arrive there as APCs;
 *   - the SCM handler thread (the dispatcher, i.e. the process' main thread in service mode)
 *     and the console control thread call apc_svc_handle_control(), which only records the
 *     request, reports STOP_PENDING and queues the stop or reload to the engine (APCs), then
 *     returns at once.
 * The few fields both sides touch (the status, the engine pointer) are guarded by one lock
 * in apc_svc_t; scheduler state is never touched here.
 */
#ifndef APC_SVC_H
#define APC_SVC_H

#include <windows.h>

#include <stdio.h>

#include "engine.h"
#include "svclog.h"

#ifndef APC_VERSION_STRING
#define APC_VERSION_STRING "0.1.0"
#endif

/*
 * Exit codes of apcsvc.exe, which are also the service-specific exit codes reported with
 * ERROR_SERVICE_SPECIFIC_ERROR when the service stops because of a failure (README.md (section Running apcsvc.exe)).
 */
#define APC_SVC_EXIT_OK 0          /* stopped cleanly on request */
#define APC_SVC_EXIT_FAILED 1      /* unexpected failure, or the engine ended by itself */
#define APC_SVC_EXIT_CONFIG 2      /* bad command line, or the configuration is invalid */
#define APC_SVC_EXIT_DATA 3        /* a data or log folder cannot be created or opened */
#define APC_SVC_EXIT_START 4       /* the engine could not start (history database, ...) */
#define APC_SVC_EXIT_NOT_SERVICE 5 /* service mode, but not started by the SCM */
#define APC_SVC_EXIT_RUNNING 6     /* console mode: an instance with this name already runs */

/* Extra time the SCM is told to allow beyond service.shutdown_grace when stopping. */
#define APC_SVC_STOP_MARGIN_MS 30000u
/* Wait hint while starting, and the interval of STOP_PENDING checkpoints. */
#define APC_SVC_START_HINT_MS 30000u
#define APC_SVC_CHECKPOINT_MS 2000u

/*
 * The engine as the service uses it: apcsvc.exe passes the real apc_engine_* functions; the
 * tests pass a fake so every branch of the lifecycle runs without an SCM or a real engine.
 */
typedef struct apc_svc_engine_ops {
    int (*start)(const apc_engine_opts_t *opts, apc_engine_t **out, apc_buf_t *errors);
    void (*stop)(apc_engine_t *e);
    int (*join)(apc_engine_t *e, DWORD timeout_ms);
    HANDLE (*done_event)(const apc_engine_t *e);
    void (*free)(apc_engine_t *e);
    int (*post)(apc_engine_t *e, apc_engine_req_t *req);
} apc_svc_engine_ops_t;

typedef struct apc_svc_opts {
    const char *config_path;            /* UTF-8, absolute (apc_paths_absolute) */
    const char *name;                   /* service name; NULL = the config's service.name */
    int console;                        /* 1: console mode (stop event, messages to out) */
    const apc_svc_engine_ops_t *engine; /* required */
    FILE *out;                          /* console messages and log echo; NULL = none */
    const char *event_source;           /* APC_SVCLOG_SOURCE, or NULL for none */
    int control_pipe;                   /* 1: serve \\.\pipe\<name> (apcsvc.exe); 0 in tests
                                           that drive a fake engine */
    int config_acl;                     /* APC_CFGACL_* (cfgacl.h): ENFORCE in apcsvc.exe, WARN
                                           with --allow-insecure-config; 0 = OFF (tests) */
    /* Test seams, NULL in the product: every status report, and the log's clock/event log. */
    void (*status_hook)(void *ctx, const SERVICE_STATUS *st);
    void *status_hook_ctx;
    const apc_svclog_hooks_t *log_hooks;
} apc_svc_opts_t;

typedef struct apc_svc apc_svc_t;

/* What apc_svc_handle_control() did, for the handler's return value and for the tests. */
typedef enum apc_svc_action {
    APC_SVC_ACT_STOP = 1,       /* reported STOP_PENDING and asked the engine to stop */
    APC_SVC_ACT_STOP_AGAIN,     /* already stopping: re-reported STOP_PENDING */
    APC_SVC_ACT_STOP_EARLY,     /* not running yet: the stop happens as soon as it is */
    APC_SVC_ACT_RELOAD,         /* posted a reload request to the engine */
    APC_SVC_ACT_RELOAD_BUSY,    /* a reload is still in progress: this one was dropped */
    APC_SVC_ACT_INTERROGATE,    /* re-reported the current status */
    APC_SVC_ACT_IGNORED,        /* valid control, but nothing to do in this state */
    APC_SVC_ACT_NOT_IMPLEMENTED /* a control this service does not accept */
} apc_svc_action_t;

/*
 * Creates the service state. opts is copied (its strings too). Returns 0, APC_EINVAL (no
 * config path or engine ops), APC_ENOMEM. Service main thread.
 */
int apc_svc_create(const apc_svc_opts_t *opts, apc_svc_t **out, char *err, size_t errsz);

/*
 * Gives the state the SCM status handle (service mode; from RegisterServiceCtrlHandlerExW).
 * Without it, status changes are only recorded (console mode, tests). Before apc_svc_run.
 */
void apc_svc_set_status_handle(apc_svc_t *svc, SERVICE_STATUS_HANDLE h);

/*
 * Runs the whole lifecycle drawn above on the calling thread (the service main thread) and
 * returns the exit code (APC_SVC_EXIT_*) once everything has stopped and STOPPED has been
 * reported. In console mode it also waits on the named event "Local\ApcSched-<name>-stop"
 * (a documented stop path for tools and tests) and installs the console control handler.
 * Call it once per apc_svc_t.
 */
int apc_svc_run(apc_svc_t *svc);

/*
 * Handles one SCM control code (SERVICE_CONTROL_*) and returns what it did; never blocks on
 * the engine. STOP, PRESHUTDOWN and SHUTDOWN take the one stop path; PARAMCHANGE posts a
 * reload whose result the service main thread logs; INTERROGATE re-reports the status.
 * Any thread (the SCM handler thread, the console control thread, tests).
 */
apc_svc_action_t apc_svc_handle_control(apc_svc_t *svc, DWORD control);

/*
 * The console control handler apc_svc_run installs in console mode: Ctrl+C, Ctrl+Break,
 * closing the console, logoff and shutdown all become SERVICE_CONTROL_STOP for the running
 * console instance. For close/logoff/shutdown it then waits (up to the stop hint) for the stop
 * to finish, because Windows ends the process when the handler returns. Returns TRUE if it
 * handled the event. Runs on the thread Windows creates for the event (tests call it directly).
 */
BOOL WINAPI apc_svc_console_handler(DWORD type);

/* A copy of the last status reported (or recorded). Any thread. */
void apc_svc_status(apc_svc_t *svc, SERVICE_STATUS *out);

/* The log of a running service, for other parts of the service main thread; NULL before the
   log is open and after it is closed. */
apc_svclog_t *apc_svc_log(apc_svc_t *svc);

/* Frees the state. Accepts NULL. After apc_svc_run returned and no handler can run. */
void apc_svc_free(apc_svc_t *svc);

/*
 * Service mode: connects to the SCM with StartServiceCtrlDispatcherW; ServiceMain creates the
 * state from opts, registers the control handler under the name the SCM started it with, and
 * runs apc_svc_run. Returns the exit code for the process: the service's code, or
 * APC_SVC_EXIT_NOT_SERVICE (message in err: this program is a service; `apcsvc run --config
 * PATH` runs it in the console) when the program was not started by the SCM, or
 * APC_SVC_EXIT_FAILED with the reason in err. Process main thread, once.
 */
int apc_svc_dispatch(const apc_svc_opts_t *opts, char *err, size_t errsz);

#endif /* APC_SVC_H */
