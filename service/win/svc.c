/*
 * svc.c - the service lifecycle shared by service mode and console mode, the SCM control
 * handler and the console control handler (see svc.h for the state diagram).
 *
 * Kept apart from the work, as in PostgreSQL's pg_ctl and Microsoft's service sample: this
 * file starts the engine, reports status and forwards stop and reload requests; it never
 * touches scheduler state. report_status() is the only code that writes SERVICE_STATUS.
 *
 * Threads: apc_svc_run and everything it calls run on the service main thread;
 * apc_svc_handle_control runs on the SCM handler thread or the console control thread. They
 * share `lock`, which guards the status, the engine pointer and the reload slot, and is only
 * ever held for a SetServiceStatus call or for queuing an APC.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#include "apc_config.h"
#include "cfgacl.h"
#include "pipesrv.h"
#include "apc_str.h"
#include "paths.h"
#include "tz_win.h"
#include "win_util.h"

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib")
#endif

/* The engine's log levels and ours must agree, because the engine logs straight into svclog. */
typedef char
    levels_agree[(APC_LOG_ERROR == APC_ENGINE_LOG_ERROR &&
                  APC_LOG_WARNING == APC_ENGINE_LOG_WARNING &&
                  APC_LOG_INFO == APC_ENGINE_LOG_INFO && APC_LOG_DEBUG == APC_ENGINE_LOG_DEBUG)
                     ? 1
                     : -1];

struct apc_svc {
    apc_svc_opts_t opts; /* strings below are our own copies */
    char *config_path;
    char *name;
    apc_svclog_hooks_t log_hooks;

    SRWLOCK lock; /* guards status, checkpoint, engine, stopping, reload_busy */
    SERVICE_STATUS_HANDLE status_handle;
    SERVICE_STATUS status;
    DWORD wait_hint_stop;
    int final_sent; /* STOPPED was reported: nothing is reported after it */
    apc_engine_t *engine;
    int stopping;    /* a stop was requested (also before the engine runs) */
    int reload_busy; /* reload_req is with the engine */
    apc_engine_req_t reload_req;

    HANDLE main_thread; /* real handle of the service main thread (reload replies) */
    HANDLE finished;    /* manual-reset, set when apc_svc_run is about to return */
    apc_svclog_t *log;
    apc_tz_win_t tz;
};

/* ---- Status: the one writer of SERVICE_STATUS -------------------------------------------- */

/*
 * Reports state to the SCM (and the test hook). Pending states get a rising checkpoint;
 * RUNNING and STOPPED get 0. Once STOPPED has been reported nothing else is, so a late
 * control can never make a stopped service look alive. Caller holds the lock.
 */
static void report_locked(apc_svc_t *svc, DWORD state, DWORD specific, DWORD wait_hint)
{
    SERVICE_STATUS *st = &svc->status;

    if (svc->final_sent)
        return;
    st->dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    st->dwCurrentState = state;
    st->dwControlsAccepted = state == SERVICE_RUNNING
                                 ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN |
                                       SERVICE_ACCEPT_PRESHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
                                 : 0;
    st->dwWin32ExitCode = specific != 0 ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
    st->dwServiceSpecificExitCode = specific;
    st->dwWaitHint = wait_hint;
    if (state == SERVICE_RUNNING || state == SERVICE_STOPPED)
        st->dwCheckPoint = 0;
    else
        st->dwCheckPoint++;
    if (svc->status_handle != NULL && !SetServiceStatus(svc->status_handle, st)) {
        char err[256];
        (void)apc_win_seterr(err, sizeof err, GetLastError(), "SetServiceStatus");
        apc_svclog_write(svc->log, APC_LOG_ERROR, "service", "%s", err);
    }
    if (svc->opts.status_hook != NULL)
        svc->opts.status_hook(svc->opts.status_hook_ctx, st);
    if (state == SERVICE_STOPPED)
        svc->final_sent = 1;
}

static void report_status(apc_svc_t *svc, DWORD state, DWORD specific, DWORD wait_hint)
{
    AcquireSRWLockExclusive(&svc->lock);
    report_locked(svc, state, specific, wait_hint);
    ReleaseSRWLockExclusive(&svc->lock);
}

void apc_svc_status(apc_svc_t *svc, SERVICE_STATUS *out)
{
    AcquireSRWLockShared(&svc->lock);
    *out = svc->status;
    ReleaseSRWLockShared(&svc->lock);
}

/* ---- Controls: any thread ---------------------------------------------------------------- */

/* Runs on the service main thread, as an APC the engine queues when the reload is done. */
static void reload_done(apc_engine_req_t *req)
{
    apc_svc_t *svc = req->ctx;

    if (req->result == 0) {
        apc_svclog_event(svc->log, APC_LOG_INFO, APC_EVENT_RELOADED, "service",
                         "configuration reloaded from %s", svc->config_path);
    } else {
        /* The engine's answer is the protocol message; the operator wants its text: the
           config findings, one per line. */
        apc_proto_response_t resp;
        char derr[256];
        const char *why = "";

        if (req->response.data != NULL &&
            apc_proto_response_decode(req->response.data, req->response.len, APC_OP_RELOAD, &resp,
                                      derr, sizeof derr) == 0) {
            if (resp.error_message != NULL)
                why = resp.error_message;
        } else {
            apc_proto_response_init(&resp, APC_RESP_ERROR);
        }
        apc_svclog_event(svc->log, APC_LOG_ERROR, APC_EVENT_RELOADED, "service",
                         "reload refused (%s), the previous configuration stays in force: %s",
                         apc_strerror(req->result), why);
        apc_proto_response_free(&resp);
    }
    apc_buf_free(&req->response);
    AcquireSRWLockExclusive(&svc->lock);
    svc->reload_busy = 0;
    ReleaseSRWLockExclusive(&svc->lock);
}

static apc_svc_action_t request_stop(apc_svc_t *svc)
{
    apc_svc_action_t act;

    AcquireSRWLockExclusive(&svc->lock);
    if (svc->final_sent) {
        act = APC_SVC_ACT_IGNORED;
    } else if (svc->stopping) {
        act = APC_SVC_ACT_STOP_AGAIN;
        if (svc->status.dwCurrentState == SERVICE_STOP_PENDING)
            report_locked(svc, SERVICE_STOP_PENDING, 0, svc->wait_hint_stop);
    } else {
        svc->stopping = 1;
        if (svc->engine != NULL) {
            act = APC_SVC_ACT_STOP;
            report_locked(svc, SERVICE_STOP_PENDING, 0, svc->wait_hint_stop);
            svc->opts.engine->stop(svc->engine); /* queues an APC and returns */
        } else {
            act = APC_SVC_ACT_STOP_EARLY; /* apc_svc_run sees `stopping` once started */
        }
    }
    ReleaseSRWLockExclusive(&svc->lock);
    return act;
}

static apc_svc_action_t request_reload(apc_svc_t *svc)
{
    apc_svc_action_t act = APC_SVC_ACT_RELOAD;
    int rc = 0;

    AcquireSRWLockExclusive(&svc->lock);
    if (svc->engine == NULL || svc->stopping) {
        act = APC_SVC_ACT_IGNORED;
    } else if (svc->reload_busy) {
        act = APC_SVC_ACT_RELOAD_BUSY;
    } else {
        memset(&svc->reload_req, 0, sizeof svc->reload_req);
        apc_proto_request_init(&svc->reload_req.in, APC_OP_RELOAD);
        svc->reload_req.submitted_by = "SCM";
        svc->reload_req.reply_thread = svc->main_thread;
        svc->reload_req.done = reload_done;
        svc->reload_req.ctx = svc;
        rc = svc->opts.engine->post(svc->engine, &svc->reload_req);
        if (rc == 0)
            svc->reload_busy = 1;
    }
    ReleaseSRWLockExclusive(&svc->lock);
    if (act == APC_SVC_ACT_RELOAD_BUSY)
        apc_svclog_write(svc->log, APC_LOG_WARNING, "service",
                         "reload requested while the previous one is still running: ignored");
    else if (act == APC_SVC_ACT_RELOAD && rc != 0)
        apc_svclog_write(svc->log, APC_LOG_ERROR, "service", "cannot post the reload: %s",
                         apc_strerror(rc));
    return act;
}

apc_svc_action_t apc_svc_handle_control(apc_svc_t *svc, DWORD control)
{
    if (svc == NULL)
        return APC_SVC_ACT_IGNORED;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_PRESHUTDOWN:
    case SERVICE_CONTROL_SHUTDOWN:
        return request_stop(svc);
    case SERVICE_CONTROL_PARAMCHANGE:
        /* Logged before posting: the reply may be logged by the main thread before we return. */
        apc_svclog_write(svc->log, APC_LOG_INFO, "service", "reload requested (PARAMCHANGE)");
        return request_reload(svc);
    case SERVICE_CONTROL_INTERROGATE:
        AcquireSRWLockExclusive(&svc->lock);
        if (svc->status_handle != NULL && svc->status.dwCurrentState != SERVICE_STOPPED)
            (void)SetServiceStatus(svc->status_handle, &svc->status);
        ReleaseSRWLockExclusive(&svc->lock);
        return APC_SVC_ACT_INTERROGATE;
    default:
        return APC_SVC_ACT_NOT_IMPLEMENTED;
    }
}

/* ---- Console control handler ------------------------------------------------------------- */

/* The console instance the handler forwards to: one per process, guarded by console_lock. */
static SRWLOCK console_lock = SRWLOCK_INIT;
static apc_svc_t *console_svc;

BOOL WINAPI apc_svc_console_handler(DWORD type)
{
    BOOL handled = TRUE;

    AcquireSRWLockShared(&console_lock);
    if (console_svc == NULL) {
        handled = FALSE; /* not running: let the default handler end the process */
    } else {
        (void)apc_svc_handle_control(console_svc, SERVICE_CONTROL_STOP);
        if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT)
            /* Windows ends the process when we return: give the stop its time first. */
            (void)WaitForSingleObject(console_svc->finished, console_svc->wait_hint_stop);
    }
    ReleaseSRWLockShared(&console_lock);
    return handled;
}

/* ---- Lifecycle: the service main thread --------------------------------------------------- */

int apc_svc_create(const apc_svc_opts_t *opts, apc_svc_t **out, char *err, size_t errsz)
{
    int rc = 0;
    apc_svc_t *svc = NULL;

    if (out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no output");
    *out = NULL;
    if (opts == NULL || opts->config_path == NULL || opts->engine == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "service options need a config and an engine");
    svc = calloc(1, sizeof *svc);
    if (svc == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    InitializeSRWLock(&svc->lock);
    svc->opts = *opts;
    svc->status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    svc->status.dwCurrentState = SERVICE_START_PENDING;
    svc->wait_hint_stop = 30000u + APC_SVC_STOP_MARGIN_MS;
    svc->config_path = apc_strdup(opts->config_path);
    svc->name = opts->name != NULL ? apc_strdup(opts->name) : NULL;
    if (svc->config_path == NULL || (opts->name != NULL && svc->name == NULL)) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (opts->log_hooks != NULL) {
        svc->log_hooks = *opts->log_hooks;
        svc->opts.log_hooks = &svc->log_hooks;
    }
    svc->opts.config_path = svc->config_path;
    svc->opts.name = svc->name;
    svc->finished = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (svc->finished == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "CreateEvent");
        goto cleanup;
    }
    *out = svc;
    svc = NULL;
cleanup:
    apc_svc_free(svc);
    return rc;
}

void apc_svc_set_status_handle(apc_svc_t *svc, SERVICE_STATUS_HANDLE h)
{
    AcquireSRWLockExclusive(&svc->lock);
    svc->status_handle = h;
    ReleaseSRWLockExclusive(&svc->lock);
}

apc_svclog_t *apc_svc_log(apc_svc_t *svc)
{
    return svc != NULL ? svc->log : NULL;
}

/* Prints a message for the console user (console mode only), one line. */
static void say(apc_svc_t *svc, const char *line)
{
    if (svc->opts.console && svc->opts.out != NULL) {
        (void)fprintf(svc->opts.out, "%s\n", line);
        (void)fflush(svc->opts.out);
    }
}

/*
 * Reports a start failure everywhere it must be seen: the console, the log file if open, the
 * event log (one entry with every line) and finally nothing else: the caller reports STOPPED.
 */
static void start_failed(apc_svc_t *svc, apc_svclog_t *log, DWORD event_id, const char *what,
                         const char *lines)
{
    if (svc->opts.console && svc->opts.out != NULL) {
        (void)fprintf(svc->opts.out, "%s", lines);
        if (lines[0] != '\0' && lines[strlen(lines) - 1] != '\n')
            (void)fputc('\n', svc->opts.out);
        (void)fprintf(svc->opts.out, "apcsvc: %s\n", what);
        (void)fflush(svc->opts.out);
    }
    apc_svclog_event(log, APC_LOG_ERROR, event_id, "service", "%s%s%s", what,
                     lines[0] != '\0' ? ":\n" : "", lines);
}

/* Creates the folders the service writes to: the history database's, output and logs. */
static int make_folders(const apc_config_t *cfg, char *err, size_t errsz)
{
    int rc = apc_paths_make_parent_dir(cfg->service.history, err, errsz);
    if (rc == 0)
        rc = apc_paths_make_data_dir(cfg->service.output_dir, NULL, err, errsz);
    if (rc == 0)
        rc = apc_paths_make_data_dir(cfg->service.log_dir, NULL, err, errsz);
    return rc;
}

/* Creates the console stop event "Local\ApcSched-<name>-stop"; *code is set on failure. */
static HANDLE make_stop_event(apc_svc_t *svc, const char *name, int *code)
{
    apc_buf_t b = {0};
    wchar_t *w = NULL;
    HANDLE h = NULL;
    char err[512];

    apc_buf_printf(&b, "Local\\ApcSched-%s-stop", name);
    w = b.data != NULL && !apc_buf_failed(&b) ? apc_utf8_to_wide(b.data) : NULL;
    if (w == NULL) {
        *code = APC_SVC_EXIT_FAILED;
        say(svc, "apcsvc: out of memory");
        goto cleanup;
    }
    /* Auto-reset: one SetEvent is one stop request. */
    h = CreateEventW(NULL, FALSE, FALSE, w);
    if (h == NULL) {
        *code = APC_SVC_EXIT_FAILED;
        (void)apc_win_seterr(err, sizeof err, GetLastError(), "creating the stop event %s", b.data);
        say(svc, err);
    } else if (GetLastError() == ERROR_ALREADY_EXISTS) {
        h = apc_win_close(h);
        *code = APC_SVC_EXIT_RUNNING;
        (void)snprintf(err, sizeof err,
                       "apcsvc: an instance named \"%s\" is already running (its stop event %s "
                       "exists); stop it first or use --name",
                       name, b.data);
        say(svc, err);
    }
cleanup:
    free(w);
    apc_buf_free(&b);
    return h;
}

int apc_svc_run(apc_svc_t *svc)
{
    int code = APC_SVC_EXIT_OK;
    apc_config_t *cfg = NULL;
    apc_diags_t diags = {0};
    apc_buf_t text = {0};
    apc_svclog_t *early = NULL;
    HANDLE stop_event = NULL;
    apc_engine_t *engine = NULL;
    apc_pipesrv_t *pipe = NULL;
    apc_engine_opts_t eopts;
    apc_svclog_opts_t lopts;
    char err[1024];
    char acl[2048]; /* the config file's ACL finding, logged once the log is open */
    const char *name;
    int rc, asked = 0, console_set = 0;

    acl[0] = '\0';
    report_status(svc, SERVICE_START_PENDING, 0, APC_SVC_START_HINT_MS);
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(),
                         &svc->main_thread, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
        svc->main_thread = NULL;
        (void)apc_win_seterr(err, sizeof err, GetLastError(), "DuplicateHandle");
        start_failed(svc, NULL, APC_EVENT_START_FAILED, err, "");
        code = APC_SVC_EXIT_FAILED;
        goto cleanup;
    }

    /* Until the log folder is known, errors go to the console and the event log only. */
    memset(&lopts, 0, sizeof lopts);
    lopts.event_source = svc->opts.event_source;
    lopts.hooks = svc->opts.log_hooks;
    if (apc_svclog_open(&lopts, &early, err, sizeof err) != 0)
        early = NULL;

    /*
     * Step 1: who may change the configuration file (cfgacl.h: only SYSTEM, Administrators,
     * TrustedInstaller and our own account), before a byte of it is used; then its content,
     * validated here so that errors name file:line:col.
     */
    if (svc->opts.config_acl != APC_CFGACL_OFF) {
        rc = apc_cfgacl_check_file(svc->config_path, acl, sizeof acl);
        if (rc != 0 && !(rc == APC_EDENIED && svc->opts.config_acl == APC_CFGACL_WARN)) {
            start_failed(svc, early, APC_EVENT_CONFIG_ERROR,
                         rc == APC_EDENIED ? "the configuration file is not protected"
                                           : "cannot read the configuration file's permissions",
                         acl);
            code = APC_SVC_EXIT_CONFIG;
            goto cleanup;
        }
        if (rc == 0)
            acl[0] = '\0';
    }
    rc = apc_config_load(svc->config_path, &cfg, &diags);
    if (rc != 0) {
        apc_diags_format(&diags, &text);
        start_failed(svc, early, APC_EVENT_CONFIG_ERROR,
                     rc == APC_ENOTFOUND || rc == APC_EIO ? "cannot read the configuration"
                                                          : "the configuration is invalid",
                     text.data != NULL ? text.data : "");
        code = APC_SVC_EXIT_CONFIG;
        goto cleanup;
    }
    name = svc->name != NULL ? svc->name : cfg->service.name;
    svc->wait_hint_stop = (DWORD)cfg->service.shutdown_grace_ms + APC_SVC_STOP_MARGIN_MS;
    report_status(svc, SERVICE_START_PENDING, 0, APC_SVC_START_HINT_MS);

    /* Step 2: data folders with their DACL, then the log file in its folder. */
    if (make_folders(cfg, err, sizeof err) != 0) {
        start_failed(svc, early, APC_EVENT_START_FAILED, err, "");
        code = APC_SVC_EXIT_DATA;
        goto cleanup;
    }
    lopts.dir = cfg->service.log_dir;
    lopts.echo = svc->opts.console ? svc->opts.out : NULL;
    if (apc_svclog_open(&lopts, &svc->log, err, sizeof err) != 0) {
        start_failed(svc, early, APC_EVENT_START_FAILED, err, "");
        code = APC_SVC_EXIT_DATA;
        goto cleanup;
    }
    apc_svclog_close(early);
    early = NULL;
    if (acl[0] != '\0')
        apc_svclog_write(svc->log, APC_LOG_WARNING, "service",
                         "the configuration file is not protected; used anyway because of "
                         "--allow-insecure-config: %s",
                         acl);
    if (diags.warnings > 0) {
        apc_diags_format(&diags, &text);
        apc_svclog_write(svc->log, APC_LOG_WARNING, "config", "%s", text.data ? text.data : "");
        apc_buf_reset(&text);
    }
    if (svc->opts.console) {
        stop_event = make_stop_event(svc, name, &code);
        if (stop_event == NULL)
            goto cleanup;
        AcquireSRWLockExclusive(&console_lock);
        console_svc = svc;
        ReleaseSRWLockExclusive(&console_lock);
        console_set = 1;
        if (!SetConsoleCtrlHandler(apc_svc_console_handler, TRUE)) {
            (void)apc_win_seterr(err, sizeof err, GetLastError(), "SetConsoleCtrlHandler");
            apc_svclog_write(svc->log, APC_LOG_WARNING, "service", "%s (use the stop event)", err);
        }
    }
    if (apc_tz_win_local(&svc->tz, err, sizeof err) != 0) {
        start_failed(svc, svc->log, APC_EVENT_START_FAILED, err, "");
        code = APC_SVC_EXIT_FAILED;
        goto cleanup;
    }
    report_status(svc, SERVICE_START_PENDING, 0, APC_SVC_START_HINT_MS);

    /* Step 3: the engine. RUNNING only once it says it really runs. */
    memset(&eopts, 0, sizeof eopts);
    eopts.config_path = svc->config_path;
    eopts.config_acl = svc->opts.config_acl;
    eopts.local_tz = &svc->tz.tz;
    eopts.log = apc_svclog_engine_sink;
    eopts.log_ctx = svc->log;
    rc = svc->opts.engine->start(&eopts, &engine, &text);
    if (rc != 0) {
        (void)snprintf(err, sizeof err, "the engine could not start (%s)", apc_strerror(rc));
        start_failed(svc, svc->log, APC_EVENT_START_FAILED, err,
                     text.data != NULL ? text.data : "");
        code = rc == APC_EINVAL ? APC_SVC_EXIT_CONFIG : APC_SVC_EXIT_START;
        engine = NULL;
        goto cleanup;
    }
    /*
     * Step 4: the control pipe, once the engine can answer it. If the name is taken, someone
     * else would receive our operators' requests (a squatter, or a second instance): refuse
     * to run rather than serve beside it.
     */
    if (svc->opts.control_pipe) {
        apc_pipesrv_opts_t popts;

        memset(&popts, 0, sizeof popts);
        popts.name =
            cfg->service
                .name; /* README.md (section Running apcsvc.exe): the pipe is named by the config */
        popts.engine = engine;
        popts.post = svc->opts.engine->post;
        popts.history_path = cfg->service.history;
        popts.control_allow = (const char *const *)cfg->service.control_allow;
        popts.log = apc_svclog_pipe_sink;
        popts.log_ctx = svc->log;
        rc = apc_pipesrv_start(&popts, &pipe, err, sizeof err);
        if (rc != 0) {
            start_failed(svc, svc->log, APC_EVENT_START_FAILED, err, "");
            code = APC_SVC_EXIT_START;
            goto cleanup;
        }
    }

    /* Logged before RUNNING, so the log reads in the order things happened. */
    apc_svclog_event(svc->log, APC_LOG_INFO, APC_EVENT_STARTED, "service",
                     "apcsvc %s started as \"%s\" (%s mode): %s, %zu job(s), time zone %s",
                     APC_VERSION_STRING, name, svc->opts.console ? "console" : "service",
                     svc->config_path, cfg->njobs, svc->tz.name);
    AcquireSRWLockExclusive(&svc->lock);
    svc->engine = engine;
    asked = svc->stopping;
    if (!asked)
        report_locked(svc, SERVICE_RUNNING, 0, 0);
    ReleaseSRWLockExclusive(&svc->lock);
    if (asked) {
        /* A stop arrived while starting (Ctrl+C): it takes effect now. */
        AcquireSRWLockExclusive(&svc->lock);
        report_locked(svc, SERVICE_STOP_PENDING, 0, svc->wait_hint_stop);
        svc->opts.engine->stop(engine);
        ReleaseSRWLockExclusive(&svc->lock);
    }

    /* Running: wait alertably (reload replies are APCs) for the engine to end. */
    for (;;) {
        HANDLE hs[2];
        DWORD n = 0, w, timeout;
        int stopping;

        hs[n++] = svc->opts.engine->done_event(engine);
        if (stop_event != NULL)
            hs[n++] = stop_event;
        AcquireSRWLockShared(&svc->lock);
        stopping = svc->stopping;
        ReleaseSRWLockShared(&svc->lock);
        timeout = stopping ? APC_SVC_CHECKPOINT_MS : INFINITE;
        w = WaitForMultipleObjectsEx(n, hs, FALSE, timeout, TRUE);
        if (w == WAIT_IO_COMPLETION)
            continue;
        if (w == WAIT_OBJECT_0)
            break;
        if (w == WAIT_OBJECT_0 + 1) {
            apc_svclog_write(svc->log, APC_LOG_INFO, "service", "stop event signalled");
            (void)apc_svc_handle_control(svc, SERVICE_CONTROL_STOP);
            continue;
        }
        if (w == WAIT_TIMEOUT) {
            /* Still finishing runs: a rising checkpoint tells the SCM we make progress. */
            AcquireSRWLockExclusive(&svc->lock);
            report_locked(svc, SERVICE_STOP_PENDING, 0, svc->wait_hint_stop);
            ReleaseSRWLockExclusive(&svc->lock);
            continue;
        }
        (void)apc_win_seterr(err, sizeof err, GetLastError(), "waiting for the engine");
        apc_svclog_write(svc->log, APC_LOG_ERROR, "service", "%s; stopping", err);
        (void)apc_svc_handle_control(svc, SERVICE_CONTROL_STOP);
        break;
    }

    AcquireSRWLockExclusive(&svc->lock);
    asked = svc->stopping;
    svc->stopping = 1;
    if (svc->status.dwCurrentState != SERVICE_STOP_PENDING)
        report_locked(svc, SERVICE_STOP_PENDING, 0, svc->wait_hint_stop);
    ReleaseSRWLockExclusive(&svc->lock);
    /* The pipe thread posts to the engine: it ends first, then the engine is joined. */
    apc_pipesrv_stop(pipe);
    (void)apc_pipesrv_join(pipe, INFINITE);
    apc_pipesrv_free(pipe);
    pipe = NULL;
    (void)svc->opts.engine->join(engine, INFINITE);
    /* The engine is gone: no handler may use it any more, and late replies run now. */
    AcquireSRWLockExclusive(&svc->lock);
    svc->engine = NULL;
    ReleaseSRWLockExclusive(&svc->lock);
    (void)SleepEx(0, TRUE);
    svc->opts.engine->free(engine);
    engine = NULL;
    if (asked) {
        apc_svclog_event(svc->log, APC_LOG_INFO, APC_EVENT_STOPPED, "service", "stopped");
    } else {
        code = APC_SVC_EXIT_FAILED;
        apc_svclog_event(svc->log, APC_LOG_ERROR, APC_EVENT_STOPPED, "service",
                         "the engine ended without a stop request");
    }

cleanup:
    if (pipe != NULL) {
        apc_pipesrv_stop(pipe);
        (void)apc_pipesrv_join(pipe, INFINITE);
        apc_pipesrv_free(pipe);
    }
    if (engine != NULL) {
        svc->opts.engine->stop(engine);
        (void)svc->opts.engine->join(engine, INFINITE);
        svc->opts.engine->free(engine);
    }
    if (console_set) {
        (void)SetConsoleCtrlHandler(apc_svc_console_handler, FALSE);
        /* A close-event handler may be waiting for `finished`: set it before taking the lock. */
        (void)SetEvent(svc->finished);
        AcquireSRWLockExclusive(&console_lock);
        console_svc = NULL;
        ReleaseSRWLockExclusive(&console_lock);
    }
    (void)apc_win_close(stop_event);
    apc_svclog_close(svc->log);
    svc->log = NULL;
    apc_svclog_close(early);
    apc_config_free(cfg);
    apc_diags_free(&diags);
    apc_buf_free(&text);
    (void)SetEvent(svc->finished);
    /* Last: the SCM may end the process as soon as it sees STOPPED. */
    report_status(svc, SERVICE_STOPPED, (DWORD)code, 0);
    return code;
}

void apc_svc_free(apc_svc_t *svc)
{
    if (svc == NULL)
        return;
    svc->main_thread = apc_win_close(svc->main_thread);
    svc->finished = apc_win_close(svc->finished);
    free(svc->config_path);
    free(svc->name);
    free(svc);
}

/* ---- Service mode: the SCM dispatcher ------------------------------------------------------ */

/* ServiceMain has no context argument: the options and the result travel through these. */
static const apc_svc_opts_t *dispatch_opts;
static apc_svc_t *dispatch_svc;
static int dispatch_code = APC_SVC_EXIT_FAILED;

/* The SCM's control handler: runs on the dispatcher thread (the process' main thread). */
static DWORD WINAPI handler_ex(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
    (void)type;
    (void)data;
    switch (apc_svc_handle_control(ctx, control)) {
    case APC_SVC_ACT_NOT_IMPLEMENTED:
        return ERROR_CALL_NOT_IMPLEMENTED;
    default:
        return NO_ERROR;
    }
}

/* Runs on the service main thread the SCM creates. */
static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
    apc_svc_opts_t opts = *dispatch_opts;
    apc_svc_t *svc = NULL;
    SERVICE_STATUS_HANDLE h;
    char *scm_name = NULL;
    char err[512];

    /* The name the SCM started us under wins, unless --name said otherwise. */
    if (opts.name == NULL && argc > 0 && argv != NULL && argv[0] != NULL) {
        scm_name = apc_wide_to_utf8(argv[0]);
        opts.name = scm_name;
    }
    if (apc_svc_create(&opts, &svc, err, sizeof err) != 0)
        goto cleanup;
    h = RegisterServiceCtrlHandlerExW(argc > 0 && argv != NULL ? argv[0] : L"", handler_ex, svc);
    if (h == NULL) {
        /* Without a status handle nothing can be reported; the SCM sees the process end. */
        apc_svc_free(svc);
        svc = NULL;
        goto cleanup;
    }
    apc_svc_set_status_handle(svc, h);
    dispatch_svc = svc; /* freed by apc_svc_dispatch, after the dispatcher returned */
    dispatch_code = apc_svc_run(svc);
cleanup:
    free(scm_name);
}

int apc_svc_dispatch(const apc_svc_opts_t *opts, char *err, size_t errsz)
{
    static wchar_t empty[] = L"";
    SERVICE_TABLE_ENTRYW table[2];
    int code;

    if (opts == NULL || opts->engine == NULL) {
        (void)apc_seterr(err, errsz, APC_EINVAL, "no service options");
        return APC_SVC_EXIT_FAILED;
    }
    dispatch_opts = opts;
    /* For SERVICE_WIN32_OWN_PROCESS the table's name is ignored; ServiceMain gets the real one. */
    table[0].lpServiceName = empty;
    table[0].lpServiceProc = service_main;
    table[1].lpServiceName = NULL;
    table[1].lpServiceProc = NULL;
    if (!StartServiceCtrlDispatcherW(table)) {
        DWORD e = GetLastError();
        if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            (void)apc_seterr(err, errsz, APC_ESTATE,
                             "apcsvc.exe is a Windows service and was not started by the service "
                             "control manager.\nTo run it in this console: apcsvc run --config "
                             "PATH\nFor help: apcsvc --help");
            return APC_SVC_EXIT_NOT_SERVICE;
        }
        (void)apc_win_seterr(err, errsz, e, "StartServiceCtrlDispatcher");
        return APC_SVC_EXIT_FAILED;
    }
    code = dispatch_code;
    apc_svc_free(dispatch_svc);
    dispatch_svc = NULL;
    return code;
}
