/*
 * apcctl.c - the operator's command-line tool: the subcommand table, argument parsing,
 * and every command (status, list, run, cancel, history, show, logs, reload, pause,
 * resume, validate, next).
 *
 * Why this way:
 * - One table {name, fn, usage, options} drives parsing, `--help` and usage errors, so every
 *   command handles `-h/--help`, unknown options and missing arguments the same way (git's
 *   builtin table is the model).
 * - Requests and responses go through the same codec as the service (apc_protocol.h), so
 *   apcctl refuses exactly what the service would refuse, with the same message, before
 *   anything is sent. `--json` prints the service's own response object unchanged (one
 *   line), and the database fallback encodes its rows with the same encoder, so scripts
 *   see one shape whichever way the data came.
 * - validate and next are offline: they use the core's config loader and schedule code and
 *   need no service. Their --json shapes are apcctl's own, built with cJSON so every string
 *   is escaped correctly.
 * - When the service is not running, history/show/logs/list can read the history database
 *   directly (read-only, `--db` or `--config`) and say so.
 *
 * Exit codes: 0 ok, 1 error from the service / invalid config, 2 usage, 3 cannot reach the
 * service; `run --wait` exits with the job's exit code or 124/125/126/128/130 (ctl.h).
 *
 * Threads: single-threaded; everything runs on the main thread.
 */
#include <windows.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "apc_config.h"
#include "apc_error.h"
#include "apc_history.h"
#include "apc_protocol.h"
#include "apc_schedule.h"
#include "apc_str.h"
#include "apc_time.h"
#include "apc_tz.h"
#include "ctl.h"
#include "paths.h"
#include "win_util.h"

#define DEFAULT_SERVICE "apcsvc"
#define REPLY_TIMEOUT_MS 30000u /* a healthy service answers in milliseconds */
#define POLL_MS 250u            /* run --wait: progress refresh and show-polling period */

/* ---- Options -------------------------------------------------------------------------------- */

enum opt_id {
    O_HELP = 0,
    O_SERVICE,
    O_JSON,
    O_DB,
    O_CONFIG,
    O_AT,
    O_IN,
    O_WAIT,
    O_SINCE,
    O_STATUS,
    O_LIMIT,
    O_BEFORE,
    O_TAIL,
    O_FOR,
    O_FROM,
    O_COUNT,
    O_UTC,
    O_N_
};

static const struct option {
    const char *name;
    int has_arg;
} options[O_N_] = {
    {"--help", 0},  {"--service", 1}, {"--json", 0}, {"--db", 1},    {"--config", 1},
    {"--at", 1},    {"--in", 1},      {"--wait", 0}, {"--since", 1}, {"--status", 1},
    {"--limit", 1}, {"--before", 1},  {"--tail", 1}, {"--for", 1},   {"--from", 1},
    {"--count", 1}, {"--utc", 0},
};

#define BIT(o) (1u << (o))
#define GLOBAL_OPTS (BIT(O_HELP) | BIT(O_SERVICE))
#define OFFLINE_READ (BIT(O_DB) | BIT(O_CONFIG))

typedef struct ctx ctx_t;

typedef struct command {
    const char *name;
    int (*fn)(ctx_t *x);
    const char *usage;   /* the synopsis after "apcctl " */
    const char *summary; /* one line for the overview */
    const char *help;    /* the rest of `apcctl CMD --help` */
    unsigned opts;       /* BIT(O_*) accepted besides the global ones */
    size_t min_pos, max_pos;
    int takes_rest;      /* accepts `-- ARGS...` */
    const char *argname; /* the first positional argument, for "missing JOB" */
} command_t;

struct ctx {
    const command_t *cmd;
    const char *val[O_N_]; /* option values ("" for flags that were given) */
    const char **pos;      /* positional arguments */
    size_t npos;
    const char **rest; /* after "--" */
    size_t nrest;
    const char *service;
    int json;
    int64_t now;
    apc_tz_t local; /* the machine's zone, for next and validate */
};

static const char exit_codes_help[] =
    "Exit codes:\n"
    "  0    success\n"
    "  1    the service answered with an error; validate: the config is invalid\n"
    "  2    usage error (unknown command or option, missing or bad argument)\n"
    "  3    cannot reach the service (not running, access denied, busy)\n"
    "  run --wait: the job's exit code, or\n"
    "  124  the run timed out          125  the run was skipped (overlap policy)\n"
    "  126  the run failed to start    128  the run was interrupted (service stopped)\n"
    "  130  the run was cancelled\n";

/* ---- Small helpers -------------------------------------------------------------------------- */

static int usage_error(const ctx_t *x, const char *fmt, ...) APC_PRINTF(2, 3);

/* Reports a command-line error naming the argument, with the synopsis; returns 2. */
static int usage_error(const ctx_t *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x != NULL && x->cmd != NULL) {
        ctl_errf("%s: %s", x->cmd->name, msg);
        ctl_errf("usage: apcctl %s (see apcctl %s --help)", x->cmd->usage, x->cmd->name);
    } else {
        ctl_errf("%s", msg);
        ctl_errf("usage: apcctl COMMAND [ARGS] (see apcctl --help)");
    }
    return CTL_EXIT_USAGE;
}

/* Parses a decimal integer in [lo, hi]; the whole string must be digits. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v = 0;

    if (s == NULL || *s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_run_id(ctx_t *x, const char *s, int64_t *id)
{
    if (parse_int(s, 1, APC_PROTO_MAX_ID, id) != 0)
        return usage_error(x, "RUN_ID: \"%s\" is not a run id (a number from 1)", s);
    return 0;
}

/*
 * The machine's zone for schedules and the DST lint: the same Windows conversion that
 * shows local times (SystemTimeToTzSpecificLocalTime with the current zone's rules).
 * Why not service/win/tz_win.c: it uses SystemTimeToTzSpecificLocalTimeEx, which Wine 8
 * does not implement (apcctl would abort under Wine); switch once it has a fallback.
 */
static int local_offset_at(const apc_tz_t *tz, int64_t utc_s, int32_t *offset_s)
{
    (void)tz;
    /* SYSTEMTIME holds years 1601-30827; our instants stop at 9999. */
    if (utc_s < INT64_C(-11644387200) || utc_s > INT64_C(253402300799))
        return APC_ERANGE;
    *offset_s = ctl_local_offset(utc_s * 1000);
    return 0;
}

static void out_time_cell(ctx_t *x, int64_t ms, char *buf, size_t size)
{
    char local[40], rel[40];

    if (ms == APC_PROTO_NONE) {
        snprintf(buf, size, "-");
        return;
    }
    ctl_fmt_local(ms, local, sizeof local);
    ctl_fmt_relative(ms, x->now, rel, sizeof rel);
    snprintf(buf, size, "%s (%s)", local, rel);
}

/* ---- Talking to the service ----------------------------------------------------------------- */

typedef struct call {
    ctl_conn_t conn;
    apc_proto_response_t resp;
    size_t rawlen;
    ctl_reach_t reach;
    char err[1024];
} call_t;

static void call_free(call_t *cl)
{
    apc_proto_response_free(&cl->resp);
    ctl_close(&cl->conn);
}

/* Decodes the message in cl->conn.buf as a response to op. Returns an exit code. */
static int call_decode(call_t *cl, apc_proto_op_t op)
{
    int rc;

    apc_proto_response_free(&cl->resp);
    rc =
        apc_proto_response_decode(cl->conn.buf, cl->rawlen, op, &cl->resp, cl->err, sizeof cl->err);
    if (rc != 0) {
        ctl_errf("the service sent an answer apcctl cannot read: %s", cl->err);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/*
 * Connects, sends req and decodes the first answer into cl->resp. Returns CTL_EXIT_OK (the
 * answer may still be an ERROR response), CTL_EXIT_UNREACHABLE with cl->reach and cl->err
 * set (nothing printed, so a caller can fall back to the database), CTL_EXIT_USAGE when the
 * request itself breaks a rule, or CTL_EXIT_ERROR (printed).
 */
static int call_start(ctx_t *x, const apc_proto_request_t *req, call_t *cl)
{
    apc_buf_t msg = {0};
    int rc, code;

    memset(cl, 0, sizeof *cl);
    apc_proto_response_init(&cl->resp, APC_RESP_ERROR);
    rc = apc_proto_request_encode(req, &msg, cl->err, sizeof cl->err);
    if (rc != 0) {
        apc_buf_free(&msg);
        if (rc == APC_ENOMEM) {
            ctl_errf("out of memory");
            return CTL_EXIT_ERROR;
        }
        return usage_error(x, "%s", cl->err);
    }
    rc = ctl_connect(x->service, &cl->conn, &cl->reach, cl->err, sizeof cl->err);
    if (rc == 0)
        rc = ctl_send(&cl->conn, msg.data, msg.len, REPLY_TIMEOUT_MS, cl->err, sizeof cl->err);
    if (rc == 0)
        rc = ctl_recv(&cl->conn, REPLY_TIMEOUT_MS, &cl->rawlen, cl->err, sizeof cl->err);
    apc_buf_free(&msg);
    if (rc != 0) {
        if (cl->reach == CTL_REACH_OK)
            cl->reach = rc == APC_ETIMEDOUT ? CTL_REACH_TIMEOUT : CTL_REACH_BROKEN;
        return CTL_EXIT_UNREACHABLE;
    }
    code = call_decode(cl, req->op);
    return code;
}

static int report_unreachable(ctx_t *x, const call_t *cl)
{
    ctl_errf("cannot reach service \"%s\": %s", x->service, cl->err);
    return CTL_EXIT_UNREACHABLE;
}

/* Prints the raw answer for --json (one line). */
static void print_raw(const call_t *cl)
{
    ctl_outn(cl->conn.buf, cl->rawlen);
    ctl_out("\n");
}

/* Handles an ERROR response: prints it (and the JSON with --json). Returns 1. */
static int report_error(ctx_t *x, const call_t *cl)
{
    if (x->json)
        print_raw(cl);
    ctl_errf("%s (%s)", cl->resp.error_message != NULL ? cl->resp.error_message : "error",
             cl->resp.error_name != NULL ? cl->resp.error_name : "EPROTO");
    return CTL_EXIT_ERROR;
}

/* ---- Reading the history database directly -------------------------------------------------- */

/* Finds the database for the fallback: --db, or the history path of --config. */
static int fallback_db_path(ctx_t *x, char **path, apc_config_t **cfg_out)
{
    apc_diags_t diags = {0};
    apc_config_t *cfg = NULL;
    apc_buf_t text = {0};
    int rc;

    *path = NULL;
    *cfg_out = NULL;
    if (x->val[O_DB] != NULL) {
        *path = apc_strdup(x->val[O_DB]);
    } else if (x->val[O_CONFIG] != NULL) {
        rc = apc_config_load(x->val[O_CONFIG], &cfg, &diags);
        if (rc != 0) {
            apc_diags_format(&diags, &text);
            ctl_errf("cannot read the config to find the history database:\n%s",
                     text.data != NULL ? text.data : apc_strerror(rc));
            apc_buf_free(&text);
            apc_diags_free(&diags);
            return CTL_EXIT_ERROR;
        }
        apc_diags_free(&diags);
        *path = apc_strdup(cfg->service.history);
        *cfg_out = cfg;
    } else {
        return CTL_EXIT_UNREACHABLE;
    }
    if (*path == NULL) {
        apc_config_free(cfg);
        *cfg_out = NULL;
        ctl_errf("out of memory");
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* Opens the database read-only and tells the user where the answer comes from. */
static int fallback_open(ctx_t *x, const call_t *cl, apc_history_t **h, apc_config_t **cfg)
{
    char *path = NULL;
    char err[512];
    int code;

    *h = NULL;
    *cfg = NULL;
    if (cl->reach != CTL_REACH_NOT_RUNNING || (x->val[O_DB] == NULL && x->val[O_CONFIG] == NULL))
        return report_unreachable(x, cl);
    code = fallback_db_path(x, &path, cfg);
    if (code != CTL_EXIT_OK)
        return code;
    if (apc_history_open(path, APC_HISTORY_READONLY, h, err, sizeof err) != 0) {
        ctl_errf("service \"%s\" not running, and its history database cannot be read: %s",
                 x->service, err);
        free(path);
        apc_config_free(*cfg);
        *cfg = NULL;
        return CTL_EXIT_ERROR;
    }
    ctl_errf("service not running; read from %s", path);
    free(path);
    return CTL_EXIT_OK;
}

/*
 * fallback_open, then run id read from the database. On failure it prints why (a missing run
 * in the service's own words), releases what it opened and returns the exit code; on success
 * the caller owns *h, *cfg and *rec.
 */
static int fallback_run(ctx_t *x, const call_t *cl, int64_t id, apc_history_t **h,
                        apc_config_t **cfg, apc_run_record_t **rec)
{
    char err[512];
    int rc, code = fallback_open(x, cl, h, cfg);

    *rec = NULL;
    if (code != CTL_EXIT_OK)
        return code;
    rc = apc_history_get_run(*h, id, rec, err, sizeof err);
    if (rc == 0)
        return CTL_EXIT_OK;
    if (rc == APC_ENOTFOUND)
        ctl_errf("run %" PRId64 " not found", id); /* the service's words */
    else
        ctl_errf("%s", err);
    apc_history_close(*h);
    apc_config_free(*cfg);
    *h = NULL;
    *cfg = NULL;
    return CTL_EXIT_ERROR;
}

static void run_from_record(const apc_run_record_t *r, apc_proto_run_t *p)
{
    memset(p, 0, sizeof *p);
    p->id = r->id;
    p->job = r->job;
    p->trigger = apc_trigger_name(r->trigger);
    p->status = apc_run_status_name(r->status);
    p->attempt = r->attempt;
    p->queued_at = r->queued_at;
    p->started_at = r->started_at;
    p->finished_at = r->finished_at;
    p->has_exit_code = r->has_exit_code;
    p->exit_code = r->exit_code;
    p->submitted_by = r->submitted_by;
    p->worker = r->worker > 0 ? r->worker : APC_PROTO_NONE;
    p->pid = r->pid > 0 ? r->pid : APC_PROTO_NONE;
    p->output_path = r->output_path;
    p->output_tail = r->output_tail;
    p->error = r->error;
}

/* Encodes a response built from the database as --json output (same shape as the service). */
static int print_encoded(const apc_proto_response_t *resp)
{
    apc_buf_t b = {0};
    char err[256];
    int rc = apc_proto_response_encode(resp, &b, err, sizeof err);

    if (rc != 0) {
        apc_buf_free(&b);
        ctl_errf("encoding the answer: %s", err);
        return CTL_EXIT_ERROR;
    }
    ctl_outn(b.data, b.len);
    ctl_out("\n");
    apc_buf_free(&b);
    return CTL_EXIT_OK;
}

/* ---- status --------------------------------------------------------------------------------- */

static int cmd_status(ctx_t *x)
{
    apc_proto_request_t req;
    call_t cl;
    const apc_proto_status_t *s;
    char since[80], up[40];
    int code;

    apc_proto_request_init(&req, APC_OP_STATUS);
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE)
        code = report_unreachable(x, &cl);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK) {
        s = &cl.resp.status;
        ctl_fmt_duration(s->now - s->started_at, up, sizeof up);
        ctl_fmt_local(s->started_at, since, sizeof since);
        ctl_outf("service  %s: running, pid %" PRId64 ", version %s\n", x->service, s->pid,
                 s->version != NULL ? s->version : "?");
        ctl_outf("uptime   %s (since %s)\n", up, since);
        ctl_outf("workers  %" PRId64 " busy, %" PRId64 " idle, %" PRId64 " in all\n",
                 s->workers_busy, s->workers - s->workers_busy, s->workers);
        ctl_outf("jobs     %" PRId64 "\n", s->jobs);
        ctl_outf("runs     %" PRId64 " running, %" PRId64 " queued\n", s->running, s->queued);
    }
    call_free(&cl);
    return code;
}

/* ---- list ----------------------------------------------------------------------------------- */

static void print_jobs(ctx_t *x, const apc_proto_job_info_t *jobs, size_t n)
{
    ctl_table_t t;
    char cell[160], rel[40], when[40];
    size_t i;

    ctl_table_init(&t, 5);
    ctl_table_add(&t, "JOB", NULL);
    ctl_table_add(&t, "SCHEDULE", NULL);
    ctl_table_add(&t, "NEXT RUN", NULL);
    ctl_table_add(&t, "LAST", NULL);
    ctl_table_add(&t, "STATE", NULL);
    for (i = 0; i < n; i++) {
        const apc_proto_job_info_t *j = &jobs[i];
        ctl_table_add(&t, j->name, NULL);
        /* "" when unknown (read from the database alone) or for a manual-only job. */
        ctl_table_add(&t, j->schedule != NULL && j->schedule[0] != '\0' ? j->schedule : "-", NULL);
        out_time_cell(x, j->next_run, cell, sizeof cell);
        ctl_table_add(&t, cell, NULL);
        if (j->last_status == NULL) {
            ctl_table_add(&t, "never ran", NULL);
        } else {
            ctl_fmt_relative(j->last_finished_at, x->now, rel, sizeof rel);
            if (j->last_finished_at == APC_PROTO_NONE)
                snprintf(cell, sizeof cell, "%s", j->last_status);
            else
                snprintf(cell, sizeof cell, "%s (%s)", j->last_status, rel);
            ctl_table_add(&t, cell, ctl_color_status(j->last_status));
        }
        if (!j->enabled) {
            snprintf(cell, sizeof cell, "disabled");
        } else if (j->paused && j->paused_until != APC_PROTO_NONE) {
            ctl_fmt_local(j->paused_until, when, sizeof when);
            snprintf(cell, sizeof cell, "paused until %s", when);
        } else if (j->paused) {
            snprintf(cell, sizeof cell, "paused");
        } else if (j->running > 1) {
            snprintf(cell, sizeof cell, "running (%" PRId64 ")", j->running);
        } else if (j->running == 1) {
            snprintf(cell, sizeof cell, "running");
        } else {
            snprintf(cell, sizeof cell, "idle");
        }
        ctl_table_add(&t, cell, NULL);
    }
    ctl_table_print(&t);
}

/* What list gathers from the database for one job. */
typedef struct dbjob {
    char *name, *schedule, *last_status;
    int enabled, paused;
    int64_t paused_until, last_finished_at;
} dbjob_t;

typedef struct dbjobs {
    dbjob_t *items;
    size_t n, cap;
    int oom;
    int only_known; /* with a config: list only its jobs, not every name in the database */
} dbjobs_t;

static dbjob_t *dbjobs_get(dbjobs_t *d, const char *name, int add)
{
    size_t i;

    for (i = 0; i < d->n; i++)
        if (_stricmp(d->items[i].name, name) == 0)
            return &d->items[i];
    if (!add)
        return NULL;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        dbjob_t *items = realloc(d->items, cap * sizeof *items);
        if (items == NULL) {
            d->oom = 1;
            return NULL;
        }
        d->items = items;
        d->cap = cap;
    }
    memset(&d->items[d->n], 0, sizeof d->items[d->n]);
    d->items[d->n].name = apc_strdup(name);
    d->items[d->n].enabled = 1;
    d->items[d->n].paused_until = APC_PROTO_NONE;
    d->items[d->n].last_finished_at = APC_PROTO_NONE;
    if (d->items[d->n].name == NULL) {
        d->oom = 1;
        return NULL;
    }
    return &d->items[d->n++];
}

static int on_last_run(const apc_run_record_t *r, void *ctx)
{
    dbjobs_t *d = ctx;
    dbjob_t *j = dbjobs_get(d, r->job, !d->only_known);

    if (j == NULL)
        return d->oom ? APC_ENOMEM : 0;
    free(j->last_status);
    j->last_status = apc_strdup(apc_run_status_name(r->status));
    j->last_finished_at = r->finished_at;
    return 0;
}

static int on_state(const apc_job_state_t *s, void *ctx)
{
    dbjobs_t *d = ctx;
    dbjob_t *j = dbjobs_get(d, s->job, !d->only_known);

    if (j == NULL)
        return d->oom ? APC_ENOMEM : 0;
    j->paused = s->paused;
    j->paused_until = s->paused_until;
    return 0;
}

static int list_from_db(ctx_t *x, const call_t *cl)
{
    apc_history_t *h = NULL;
    apc_config_t *cfg = NULL;
    dbjobs_t d = {0};
    apc_proto_job_info_t *infos = NULL;
    apc_proto_response_t resp;
    char err[512];
    size_t i;
    int code = fallback_open(x, cl, &h, &cfg);

    if (code != CTL_EXIT_OK)
        return code;
    d.only_known = cfg != NULL;
    for (i = 0; cfg != NULL && i < cfg->njobs; i++) {
        dbjob_t *j = dbjobs_get(&d, cfg->jobs[i].name, 1);
        if (j != NULL) {
            j->enabled = cfg->jobs[i].enabled;
            j->schedule = apc_strdup(cfg->jobs[i].schedule_expr);
        }
    }
    if (apc_history_last_runs(h, on_last_run, &d, err, sizeof err) != 0 ||
        apc_history_job_state_list(h, on_state, &d, err, sizeof err) != 0) {
        ctl_errf("reading the history database: %s", d.oom ? "out of memory" : err);
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    infos = calloc(d.n + 1, sizeof *infos);
    if (infos == NULL || d.oom) {
        ctl_errf("out of memory");
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    for (i = 0; i < d.n; i++) {
        infos[i].name = d.items[i].name;
        infos[i].schedule = d.items[i].schedule != NULL ? d.items[i].schedule : "";
        infos[i].enabled = d.items[i].enabled;
        infos[i].paused = d.items[i].paused;
        infos[i].paused_until = d.items[i].paused ? d.items[i].paused_until : APC_PROTO_NONE;
        infos[i].next_run = APC_PROTO_NONE; /* only the running service knows it */
        infos[i].running = 0;
        infos[i].last_status = d.items[i].last_status;
        infos[i].last_finished_at = d.items[i].last_finished_at;
    }
    if (x->json) {
        apc_proto_response_init(&resp, APC_RESP_LIST);
        resp.jobs = infos;
        resp.njobs = d.n;
        code = print_encoded(&resp);
    } else {
        print_jobs(x, infos, d.n);
    }
cleanup:
    for (i = 0; i < d.n; i++) {
        free(d.items[i].name);
        free(d.items[i].schedule);
        free(d.items[i].last_status);
    }
    free(d.items);
    free(infos);
    apc_history_close(h);
    apc_config_free(cfg);
    return code;
}

static int cmd_list(ctx_t *x)
{
    apc_proto_request_t req;
    call_t cl;
    int code;

    apc_proto_request_init(&req, APC_OP_LIST);
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE)
        code = list_from_db(x, &cl);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK)
        print_jobs(x, cl.resp.jobs, cl.resp.njobs);
    call_free(&cl);
    return code;
}

/* ---- show / logs / history ------------------------------------------------------------------ */

static void print_run(ctx_t *x, const apc_proto_run_t *r)
{
    char cell[160];

    ctl_outf("run           %" PRId64 "\n", r->id);
    ctl_outf("job           %s\n", r->job);
    ctl_outf("status        %s%s%s\n", ctl_color_status(r->status), r->status, ctl_color_reset());
    ctl_outf("trigger       %s (attempt %" PRId64 ")\n", r->trigger, r->attempt);
    if (r->submitted_by != NULL)
        ctl_outf("submitted by  %s\n", r->submitted_by);
    out_time_cell(x, r->queued_at, cell, sizeof cell);
    ctl_outf("queued        %s\n", cell);
    out_time_cell(x, r->started_at, cell, sizeof cell);
    ctl_outf("started       %s\n", cell);
    out_time_cell(x, r->finished_at, cell, sizeof cell);
    ctl_outf("finished      %s\n", cell);
    if (r->started_at != APC_PROTO_NONE) {
        char dur[40];
        ctl_fmt_duration((r->finished_at != APC_PROTO_NONE ? r->finished_at : x->now) -
                             r->started_at,
                         dur, sizeof dur);
        ctl_outf("duration      %s%s\n", dur, r->finished_at == APC_PROTO_NONE ? " so far" : "");
    }
    if (r->has_exit_code)
        ctl_outf("exit code     %" PRId64 " (0x%08" PRIX64 ")\n", r->exit_code,
                 (uint64_t)r->exit_code & 0xFFFFFFFFu);
    if (r->worker != APC_PROTO_NONE)
        ctl_outf("worker        %" PRId64 "\n", r->worker);
    if (r->pid != APC_PROTO_NONE)
        ctl_outf("pid           %" PRId64 "\n", r->pid);
    if (r->output_path != NULL)
        ctl_outf("output file   %s\n", r->output_path);
    if (r->error != NULL)
        ctl_outf("error         %s\n", r->error);
    if (r->output_tail != NULL && r->output_tail[0] != '\0') {
        size_t n = strlen(r->output_tail);
        ctl_out("--- output (end) ---\n");
        ctl_out(r->output_tail);
        if (r->output_tail[n - 1] != '\n')
            ctl_out("\n");
    }
}

static int show_from_db(ctx_t *x, const call_t *cl, int64_t id)
{
    apc_history_t *h = NULL;
    apc_config_t *cfg = NULL;
    apc_run_record_t *rec = NULL;
    apc_proto_response_t resp;
    int code = fallback_run(x, cl, id, &h, &cfg, &rec);

    if (code != CTL_EXIT_OK)
        return code;
    apc_proto_response_init(&resp, APC_RESP_RUN);
    run_from_record(rec, &resp.run);
    if (x->json)
        code = print_encoded(&resp);
    else
        print_run(x, &resp.run);
    apc_run_record_free(rec);
    apc_history_close(h);
    apc_config_free(cfg);
    return code;
}

static int cmd_show(ctx_t *x)
{
    apc_proto_request_t req;
    call_t cl;
    int64_t id;
    int code = parse_run_id(x, x->pos[0], &id);

    if (code != 0)
        return code;
    apc_proto_request_init(&req, APC_OP_SHOW);
    req.id = id;
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE)
        code = show_from_db(x, &cl, id);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK)
        print_run(x, &cl.resp.run);
    call_free(&cl);
    return code;
}

static void print_logs(const char *data, int truncated, int64_t id)
{
    size_t n = data != NULL ? strlen(data) : 0;

    if (truncated)
        ctl_errf("run %" PRId64 ": output truncated, showing its end (use --tail to see more)", id);
    if (n > 0) {
        ctl_outn(data, n);
        if (data[n - 1] != '\n')
            ctl_out("\n");
    }
}

static int logs_from_db(ctx_t *x, const call_t *cl, int64_t id, int64_t tail)
{
    apc_history_t *h = NULL;
    apc_config_t *cfg = NULL;
    apc_run_record_t *rec = NULL;
    apc_proto_response_t resp;
    apc_buf_t data = {0};
    char err[512];
    int truncated = 0;
    int code = fallback_run(x, cl, id, &h, &cfg, &rec);

    if (code != CTL_EXIT_OK)
        return code;
    /* The output file has everything kept; the row's tail is what is left without it. */
    if (rec->output_path == NULL ||
        apc_win_read_tail(rec->output_path, tail, &data, &truncated, err, sizeof err) != 0) {
        if (rec->output_path != NULL)
            ctl_errf("%s; showing the tail stored in the database", err);
        apc_buf_reset(&data);
        apc_buf_puts(&data, rec->output_tail != NULL ? rec->output_tail : "");
        truncated = 0;
    }
    if (apc_buf_failed(&data)) {
        ctl_errf("out of memory");
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    if (x->json) {
        apc_proto_response_init(&resp, APC_RESP_LOGS);
        resp.id = id;
        resp.data = data.data != NULL ? data.data : "";
        resp.truncated = truncated;
        code = print_encoded(&resp);
    } else {
        print_logs(data.data, truncated, id);
    }
cleanup:
    apc_buf_free(&data);
    apc_run_record_free(rec);
    apc_history_close(h);
    apc_config_free(cfg);
    return code;
}

static int parse_tail(ctx_t *x, int64_t *tail)
{
    uint64_t bytes = 0;
    char err[256];

    *tail = APC_PROTO_LOGS_DEFAULT_TAIL;
    if (x->val[O_TAIL] == NULL)
        return 0;
    if (apc_size_parse(x->val[O_TAIL], &bytes, err, sizeof err) != 0 || bytes < 1 ||
        bytes > APC_PROTO_LOGS_MAX_TAIL)
        return usage_error(x, "--tail: \"%s\" is not a size from 1 to 1MiB (e.g. 4096, 64KiB)",
                           x->val[O_TAIL]);
    *tail = (int64_t)bytes;
    return 0;
}

static int cmd_logs(ctx_t *x)
{
    apc_proto_request_t req;
    call_t cl;
    int64_t id, tail;
    int code = parse_run_id(x, x->pos[0], &id);

    if (code == 0)
        code = parse_tail(x, &tail);
    if (code != 0)
        return code;
    apc_proto_request_init(&req, APC_OP_LOGS);
    req.id = id;
    if (x->val[O_TAIL] != NULL)
        req.tail_bytes = tail;
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE)
        code = logs_from_db(x, &cl, id, tail);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK)
        print_logs(cl.resp.data, cl.resp.truncated, id);
    call_free(&cl);
    return code;
}

static void history_rows(ctx_t *x, ctl_table_t *t, const apc_proto_run_t *runs, size_t n)
{
    char cell[80], dur[40];
    size_t i;

    for (i = 0; i < n; i++) {
        const apc_proto_run_t *r = &runs[i];
        snprintf(cell, sizeof cell, "%" PRId64, r->id);
        ctl_table_add(t, cell, NULL);
        ctl_table_add(t, r->job, NULL);
        ctl_table_add(t, r->status, ctl_color_status(r->status));
        ctl_table_add(t, r->trigger, NULL);
        ctl_fmt_local(r->queued_at, cell, sizeof cell);
        ctl_table_add(t, cell, NULL);
        if (r->started_at == APC_PROTO_NONE)
            snprintf(dur, sizeof dur, "-");
        else
            ctl_fmt_duration((r->finished_at != APC_PROTO_NONE ? r->finished_at : x->now) -
                                 r->started_at,
                             dur, sizeof dur);
        ctl_table_add(t, dur, NULL);
        if (r->has_exit_code)
            snprintf(cell, sizeof cell, "%" PRId64, r->exit_code);
        else
            snprintf(cell, sizeof cell, "-");
        ctl_table_add(t, cell, NULL);
    }
}

static void history_header(ctl_table_t *t)
{
    static const char *const head[] = {"ID",     "JOB",      "STATUS", "TRIGGER",
                                       "QUEUED", "DURATION", "EXIT"};
    size_t i;

    ctl_table_init(t, 7);
    for (i = 0; i < 7; i++)
        ctl_table_add(t, head[i], NULL);
}

/* Collects database rows as protocol runs (copies: the callback's strings are temporary). */
typedef struct dbruns {
    apc_run_record_t **recs;
    size_t n;
} dbruns_t;

static int on_run(const apc_run_record_t *r, void *ctx)
{
    dbruns_t *d = ctx;
    apc_run_record_t *copy = apc_run_record_dup(r);

    if (copy == NULL)
        return APC_ENOMEM;
    d->recs[d->n++] = copy;
    return 0;
}

static int history_from_db(ctx_t *x, const call_t *cl, const apc_proto_request_t *req)
{
    apc_history_t *h = NULL;
    apc_config_t *cfg = NULL;
    apc_history_filter_t f;
    apc_run_status_t st;
    apc_proto_run_t *runs = NULL;
    apc_proto_response_t resp;
    dbruns_t d = {0};
    ctl_table_t t;
    char err[512];
    size_t i;
    int rc, code = fallback_open(x, cl, &h, &cfg);

    if (code != CTL_EXIT_OK)
        return code;
    memset(&f, 0, sizeof f);
    f.job = req->job;
    if (req->status != NULL && apc_run_status_parse(req->status, &st) == 0)
        f.status_mask = 1u << st;
    f.since_ms = req->since_ms == APC_PROTO_NONE ? 0 : req->since_ms;
    f.before_id = req->before_id == APC_PROTO_NONE ? 0 : req->before_id;
    f.limit = req->limit + 1; /* one more tells whether there are more */
    d.recs = calloc((size_t)f.limit, sizeof *d.recs);
    runs = calloc((size_t)f.limit, sizeof *runs);
    if (d.recs == NULL || runs == NULL) {
        ctl_errf("out of memory");
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    rc = apc_history_query(h, &f, on_run, &d, err, sizeof err);
    if (rc != 0) {
        ctl_errf("reading the history database: %s", rc == APC_ENOMEM ? "out of memory" : err);
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    for (i = 0; i < d.n; i++)
        run_from_record(d.recs[i], &runs[i]);
    apc_proto_response_init(&resp, APC_RESP_RUNS);
    resp.runs = runs;
    resp.nruns = d.n > (size_t)req->limit ? (size_t)req->limit : d.n;
    resp.more = d.n > (size_t)req->limit;
    if (x->json) {
        code = print_encoded(&resp);
    } else {
        history_header(&t);
        history_rows(x, &t, resp.runs, resp.nruns);
        ctl_table_print(&t);
        if (resp.more)
            ctl_outf("(older runs exist: apcctl history --before %" PRId64 ")\n",
                     resp.runs[resp.nruns - 1].id);
    }
cleanup:
    for (i = 0; i < d.n; i++)
        apc_run_record_free(d.recs[i]);
    free((void *)d.recs);
    free(runs);
    apc_history_close(h);
    apc_config_free(cfg);
    return code;
}

static int cmd_history(ctx_t *x)
{
    apc_proto_request_t req;
    apc_run_status_t st;
    call_t cl;
    ctl_table_t t;
    int64_t v;
    size_t shown = 0;
    int code;

    apc_proto_request_init(&req, APC_OP_HISTORY);
    if (x->npos > 0)
        req.job = x->pos[0];
    if (x->val[O_SINCE] != NULL) {
        char err[256];
        if (apc_duration_parse(x->val[O_SINCE], &v, err, sizeof err) == 0)
            req.since_ms = x->now - v;
        else if (apc_time_parse_iso8601(x->val[O_SINCE], &v, err, sizeof err) == 0)
            req.since_ms = v;
        else
            return usage_error(x,
                               "--since: \"%s\" is neither a duration (24h) nor an "
                               "ISO-8601 time (2026-03-08T00:00:00Z)",
                               x->val[O_SINCE]);
        if (req.since_ms < 0)
            req.since_ms = 0;
    }
    if (x->val[O_STATUS] != NULL) {
        if (apc_run_status_parse(x->val[O_STATUS], &st) != 0)
            return usage_error(x,
                               "--status: \"%s\" is not one of queued running succeeded "
                               "failed timed_out cancelled interrupted skipped",
                               x->val[O_STATUS]);
        req.status = x->val[O_STATUS];
    }
    if (x->val[O_LIMIT] != NULL) {
        if (parse_int(x->val[O_LIMIT], 1, APC_PROTO_HISTORY_MAX_LIMIT, &v) != 0)
            return usage_error(x, "--limit: \"%s\" is not a number from 1 to 1000",
                               x->val[O_LIMIT]);
        req.limit = (int)v;
    }
    if (x->val[O_BEFORE] != NULL) {
        if (parse_int(x->val[O_BEFORE], 1, APC_PROTO_MAX_ID, &v) != 0)
            return usage_error(x, "--before: \"%s\" is not a run id", x->val[O_BEFORE]);
        req.before_id = v;
    }
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE) {
        code = history_from_db(x, &cl, &req);
        call_free(&cl);
        return code;
    }
    if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK) {
        /* One answer holds what fits in 64 KiB; page with before_id up to --limit rows. */
        history_header(&t);
        for (;;) {
            history_rows(x, &t, cl.resp.runs, cl.resp.nruns);
            shown += cl.resp.nruns;
            if (!cl.resp.more || cl.resp.nruns == 0 || shown >= (size_t)req.limit)
                break;
            req.before_id = cl.resp.runs[cl.resp.nruns - 1].id;
            req.limit -= (int)cl.resp.nruns;
            call_free(&cl);
            code = call_start(x, &req, &cl);
            if (code == CTL_EXIT_UNREACHABLE)
                code = report_unreachable(x, &cl);
            else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
                code = report_error(x, &cl);
            if (code != CTL_EXIT_OK)
                break;
        }
        if (code == CTL_EXIT_OK) {
            ctl_table_print(&t);
            if (cl.resp.more && cl.resp.nruns > 0)
                ctl_outf("(older runs exist: apcctl history --before %" PRId64 ")\n",
                         cl.resp.runs[cl.resp.nruns - 1].id);
        } else {
            ctl_table_free(&t);
        }
    }
    call_free(&cl);
    return code;
}

/* ---- run ------------------------------------------------------------------------------------ */

/* The exit code of `run --wait` for a finished run (table in ctl.h and the docs). */
static int wait_exit_code(const apc_proto_run_t *r)
{
    const char *s = r->status != NULL ? r->status : "";

    if (strcmp(s, "timed_out") == 0)
        return CTL_EXIT_TIMED_OUT;
    if (strcmp(s, "cancelled") == 0)
        return CTL_EXIT_CANCELLED;
    if (strcmp(s, "interrupted") == 0)
        return CTL_EXIT_INTERRUPTED;
    if (strcmp(s, "skipped") == 0)
        return CTL_EXIT_SKIPPED;
    if (strcmp(s, "failed") == 0 && !r->has_exit_code)
        return CTL_EXIT_FAILED_TO_START;
    if (strcmp(s, "failed") == 0 && r->exit_code == 0)
        return CTL_EXIT_ERROR; /* a failure must never look like success */
    if (r->has_exit_code)
        return (int)(uint32_t)(uint64_t)r->exit_code; /* the whole 32-bit Windows code */
    return CTL_EXIT_OK;
}

static void show_progress(ctx_t *x, int64_t id, const char *job, const apc_proto_run_t *r,
                          int64_t since)
{
    char text[200], dur[40];
    const char *state = r != NULL && r->status != NULL ? r->status : "queued";
    int64_t from = r != NULL && r->started_at != APC_PROTO_NONE ? r->started_at : since;

    ctl_fmt_duration((apc_win_now_ms() - from) / 1000 * 1000, dur, sizeof dur);
    snprintf(text, sizeof text, "run %" PRId64 " (%s): %s %s", id, job, state, dur);
    (void)x;
    ctl_progress(text);
}

/* Prints the end of a finished run: its output (logs) on stdout, a summary on stderr. */
static int finish_wait(ctx_t *x, const call_t *final_cl, const apc_proto_run_t *r)
{
    apc_proto_request_t req;
    call_t cl;
    char dur[40];
    int code;

    ctl_progress_clear();
    if (x->json) {
        print_raw(final_cl);
        return wait_exit_code(r);
    }
    apc_proto_request_init(&req, APC_OP_LOGS);
    req.id = r->id;
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_LOGS)
        print_logs(cl.resp.data, cl.resp.truncated, r->id);
    else
        print_logs(r->output_tail, 0, r->id); /* the run record's tail is the next best */
    call_free(&cl);
    if (r->started_at != APC_PROTO_NONE && r->finished_at != APC_PROTO_NONE)
        ctl_fmt_duration(r->finished_at - r->started_at, dur, sizeof dur);
    else
        snprintf(dur, sizeof dur, "-");
    if (r->has_exit_code)
        ctl_errf("run %" PRId64 " %s (exit code %" PRId64 ") after %s%s%s", r->id, r->status,
                 r->exit_code, dur, r->error != NULL ? ": " : "", r->error != NULL ? r->error : "");
    else
        ctl_errf("run %" PRId64 " %s after %s%s%s", r->id, r->status, dur,
                 r->error != NULL ? ": " : "", r->error != NULL ? r->error : "");
    return wait_exit_code(r);
}

/* The service streams events on the submit connection: read them until "finished". */
static int wait_stream(ctx_t *x, call_t *cl, int64_t id, const char *job)
{
    int64_t since = apc_win_now_ms();
    apc_proto_run_t last;
    int have = 0, code;

    memset(&last, 0, sizeof last);
    for (;;) {
        int rc;
        show_progress(x, id, job, have ? &last : NULL, since);
        rc = ctl_recv(&cl->conn, POLL_MS, &cl->rawlen, cl->err, sizeof cl->err);
        if (rc == APC_ETIMEDOUT)
            continue;
        if (rc != 0) {
            ctl_progress_clear();
            ctl_errf("lost the connection while waiting for run %" PRId64 ": %s (the run "
                     "goes on; see apcctl show %" PRId64 ")",
                     id, cl->err, id);
            return CTL_EXIT_UNREACHABLE;
        }
        code = call_decode(cl, APC_OP_SUBMIT);
        if (code != CTL_EXIT_OK)
            return code;
        if (cl->resp.kind == APC_RESP_ERROR)
            return report_error(x, cl);
        if (cl->resp.kind != APC_RESP_RUN)
            continue;
        last = cl->resp.run; /* borrows from cl->resp until the next decode */
        have = 1;
        if (cl->resp.event != NULL && strcmp(cl->resp.event, "finished") == 0)
            return finish_wait(x, cl, &cl->resp.run);
    }
}

/* The service does not stream: ask `show` every POLL_MS until the run is final. */
static int wait_poll(ctx_t *x, int64_t id, const char *job)
{
    apc_proto_request_t req;
    apc_run_status_t st;
    int64_t since = apc_win_now_ms();
    call_t cl;
    int code;

    apc_proto_request_init(&req, APC_OP_SHOW);
    req.id = id;
    for (;;) {
        code = call_start(x, &req, &cl);
        if (code == CTL_EXIT_UNREACHABLE) {
            ctl_progress_clear();
            code = report_unreachable(x, &cl);
            break;
        }
        if (code != CTL_EXIT_OK)
            break;
        if (cl.resp.kind == APC_RESP_ERROR) {
            code = report_error(x, &cl);
            break;
        }
        if (apc_run_status_parse(cl.resp.run.status, &st) == 0 && apc_run_status_is_final(st)) {
            code = finish_wait(x, &cl, &cl.resp.run);
            break;
        }
        show_progress(x, id, job, &cl.resp.run, since);
        call_free(&cl);
        Sleep(POLL_MS);
    }
    call_free(&cl);
    return code;
}

static int cmd_run(ctx_t *x)
{
    apc_proto_request_t req;
    call_t cl;
    char err[256], when[80];
    int64_t v;
    int code;

    apc_proto_request_init(&req, APC_OP_SUBMIT);
    req.job = x->pos[0];
    req.args = x->rest;
    req.nargs = x->nrest;
    req.wait = x->val[O_WAIT] != NULL;
    if (x->val[O_AT] != NULL && x->val[O_IN] != NULL)
        return usage_error(x, "--at and --in are exclusive");
    if (x->val[O_AT] != NULL) {
        if (apc_time_parse_iso8601(x->val[O_AT], &v, err, sizeof err) != 0)
            return usage_error(x, "--at: %s", err);
        req.at_ms = v;
    }
    if (x->val[O_IN] != NULL) {
        if (apc_duration_parse(x->val[O_IN], &v, err, sizeof err) != 0)
            return usage_error(x, "--in: %s", err);
        req.in_ms = v;
    }
    code = call_start(x, &req, &cl);
    if (code == CTL_EXIT_UNREACHABLE)
        code = report_unreachable(x, &cl);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK) {
        int64_t id = cl.resp.id;
        int streaming = cl.resp.kind == APC_RESP_SUBMITTED && cl.resp.wait;
        if (x->json) {
            print_raw(&cl);
        } else {
            out_time_cell(x, cl.resp.due_at, when, sizeof when);
            ctl_outf("%" PRId64 "\n", id);
            ctl_errf("run %" PRId64 " of job %s queued, due %s", id, req.job, when);
        }
        if (req.wait) {
            ctl_out_flush();
            if (streaming) {
                code = wait_stream(x, &cl, id, req.job);
            } else {
                call_free(&cl);
                code = wait_poll(x, id, req.job);
            }
        }
    }
    call_free(&cl);
    return code;
}

/* ---- cancel / reload / pause / resume ------------------------------------------------------- */

static int ack_call(ctx_t *x, const apc_proto_request_t *req, const char *done_text)
{
    call_t cl;
    int code = call_start(x, req, &cl);

    if (code == CTL_EXIT_UNREACHABLE)
        code = report_unreachable(x, &cl);
    else if (code == CTL_EXIT_OK && cl.resp.kind == APC_RESP_ERROR)
        code = report_error(x, &cl);
    else if (code == CTL_EXIT_OK && x->json)
        print_raw(&cl);
    else if (code == CTL_EXIT_OK)
        ctl_outf("%s\n", cl.resp.message != NULL ? cl.resp.message : done_text);
    call_free(&cl);
    return code;
}

static int cmd_cancel(ctx_t *x)
{
    apc_proto_request_t req;
    char text[80];
    int64_t id;
    int code = parse_run_id(x, x->pos[0], &id);

    if (code != 0)
        return code;
    apc_proto_request_init(&req, APC_OP_CANCEL);
    req.id = id;
    snprintf(text, sizeof text, "run %" PRId64 " cancelled", id);
    return ack_call(x, &req, text);
}

static int cmd_reload(ctx_t *x)
{
    apc_proto_request_t req;

    apc_proto_request_init(&req, APC_OP_RELOAD);
    return ack_call(x, &req, "configuration reloaded");
}

static int cmd_pause(ctx_t *x)
{
    apc_proto_request_t req;
    char text[200];

    apc_proto_request_init(&req, APC_OP_PAUSE);
    req.job = x->pos[0];
    if (x->val[O_FOR] != NULL) {
        char err[256];
        int64_t v;
        if (apc_duration_parse(x->val[O_FOR], &v, err, sizeof err) != 0)
            return usage_error(x, "--for: %s", err);
        req.for_ms = v;
    }
    snprintf(text, sizeof text, "job %s paused", req.job);
    return ack_call(x, &req, text);
}

static int cmd_resume(ctx_t *x)
{
    apc_proto_request_t req;
    char text[200];

    apc_proto_request_init(&req, APC_OP_RESUME);
    req.job = x->pos[0];
    snprintf(text, sizeof text, "job %s resumed", req.job);
    return ack_call(x, &req, text);
}

/* ---- validate / next (offline) -------------------------------------------------------------- */

/*
 * --json for the offline commands is built with cJSON rather than by hand, so every string
 * (a Windows path full of backslashes, a message quoting the user's text) is escaped by the
 * same code that parses the config. The service's answers are not involved: these shapes
 * are apcctl's own and documented in README.md (apcctl validate / apcctl next).
 */

/* Adds s as a string, or null when s is NULL or "" (no such part). Returns 0 or -1. */
static int json_add_text_or_null(cJSON *obj, const char *key, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return cJSON_AddNullToObject(obj, key) != NULL ? 0 : -1;
    return cJSON_AddStringToObject(obj, key, s) != NULL ? 0 : -1;
}

/* Adds a 1-based position, or null for 0 (the finding has no position). Returns 0 or -1. */
static int json_add_pos_or_null(cJSON *obj, const char *key, unsigned v)
{
    if (v == 0)
        return cJSON_AddNullToObject(obj, key) != NULL ? 0 : -1;
    return cJSON_AddNumberToObject(obj, key, (double)v) != NULL ? 0 : -1;
}

/* Appends one finding to the diagnostics array. Returns 0 or -1 when memory runs out. */
static int json_add_diag(cJSON *arr, int error, const char *file, unsigned line, unsigned col,
                         const char *path, const char *message)
{
    cJSON *d = cJSON_CreateObject();

    if (d == NULL)
        return -1;
    /* Attach first, so the array owns d and frees it with everything else on failure. */
    if (!cJSON_AddItemToArray(arr, d)) {
        cJSON_Delete(d);
        return -1;
    }
    if (cJSON_AddStringToObject(d, "severity", error ? "error" : "warning") == NULL ||
        json_add_text_or_null(d, "file", file) != 0 || json_add_pos_or_null(d, "line", line) != 0 ||
        json_add_pos_or_null(d, "col", col) != 0 || json_add_text_or_null(d, "path", path) != 0 ||
        cJSON_AddStringToObject(d, "message", message) == NULL)
        return -1;
    return 0;
}

/* Prints j as one line of compact JSON. Returns 0, or -1 (reported) when memory runs out. */
static int print_json_line(const cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j);

    if (text == NULL) {
        ctl_errf("out of memory");
        return -1;
    }
    ctl_out(text);
    ctl_out("\n");
    cJSON_free(text);
    return 0;
}

/*
 * Prints the outcome of validate as one JSON object:
 *   {"ok":false,"file":"...","errors":2,"warnings":0,"diagnostics":[{"severity":"error",
 *    "file":"...","line":4,"col":18,"path":"jobs[0].schedule","message":"..."}]}
 * rc is the loader's (or linter's) result; when it failed without a finding (out of memory)
 * its text becomes the one finding, so "ok":false never comes without a reason. Returns 0 or
 * -1 when memory runs out (reported).
 */
static int print_validate_json(const char *path, int ok, int rc, const apc_diags_t *diags)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    size_t i;
    /* A failure without a finding (out of memory) gets one, so "ok":false has a reason. */
    int synthesize = !ok && rc != 0 && diags->count == 0;
    int res = -1, printed = 0;

    if (root == NULL)
        goto cleanup;
    if (cJSON_AddBoolToObject(root, "ok", ok ? 1 : 0) == NULL ||
        cJSON_AddStringToObject(root, "file", path) == NULL ||
        cJSON_AddNumberToObject(root, "errors", (double)(diags->errors + (synthesize ? 1u : 0u))) ==
            NULL ||
        cJSON_AddNumberToObject(root, "warnings", (double)diags->warnings) == NULL)
        goto cleanup;
    arr = cJSON_AddArrayToObject(root, "diagnostics");
    if (arr == NULL)
        goto cleanup;
    for (i = 0; i < diags->count; i++) {
        const apc_diag_t *d = &diags->items[i];
        if (json_add_diag(arr, d->severity == APC_DIAG_ERROR, d->file, d->line, d->col, d->path,
                          d->message) != 0)
            goto cleanup;
    }
    if (synthesize && json_add_diag(arr, 1, path, 0, 0, NULL, apc_strerror(rc)) != 0)
        goto cleanup;
    res = print_json_line(root);
    printed = 1; /* print_json_line reports its own failure */
cleanup:
    if (!printed)
        ctl_errf("out of memory");
    cJSON_Delete(root);
    return res;
}

static int cmd_validate(ctx_t *x)
{
    apc_diags_t diags = {0};
    apc_config_t *cfg = NULL;
    apc_buf_t text = {0};
    char err[256];
    char *path = NULL;
    int rc, code;

    if (x->npos > 0) {
        path = apc_strdup(x->pos[0]);
    } else if (apc_paths_default_config(&path, err, sizeof err) != 0) {
        ctl_errf("no CONFIG given and no default: %s", err);
        return CTL_EXIT_ERROR;
    }
    if (path == NULL) {
        ctl_errf("out of memory");
        return CTL_EXIT_ERROR;
    }
    rc = apc_config_load(path, &cfg, &diags);
    if (rc == 0)
        rc = apc_config_lint(cfg, &x->local, x->now, &diags);
    code = rc == 0 ? CTL_EXIT_OK : CTL_EXIT_ERROR;
    if (x->json) {
        if (diags.failed) {
            /* An incomplete list must not pass for a clean bill of health. */
            ctl_errf("out of memory: some findings are missing");
            code = CTL_EXIT_ERROR;
        }
        if (print_validate_json(path, code == CTL_EXIT_OK, rc, &diags) != 0)
            code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    apc_diags_format(&diags, &text);
    if (text.len > 0)
        ctl_outn(text.data, text.len);
    if (rc == 0) {
        ctl_outf("%s: valid (%zu job%s, %zu warning%s)\n", path, cfg->njobs,
                 cfg->njobs == 1 ? "" : "s", diags.warnings, diags.warnings == 1 ? "" : "s");
    } else {
        if (diags.count == 0)
            ctl_outf("%s: %s\n", path, apc_strerror(rc));
        ctl_outf("%s: invalid (%zu error%s, %zu warning%s)\n", path, diags.errors,
                 diags.errors == 1 ? "" : "s", diags.warnings, diags.warnings == 1 ? "" : "s");
    }
    if (apc_buf_failed(&text) || diags.failed) {
        ctl_errf("out of memory: some findings are missing");
        code = CTL_EXIT_ERROR;
    }
cleanup:
    apc_buf_free(&text);
    apc_diags_free(&diags);
    apc_config_free(cfg);
    free(path);
    return code;
}

/* Appends {"at":"<ISO-8601>","ms":<Unix ms>} to arr. Returns 0 or -1 when memory runs out. */
static int json_add_time(cJSON *arr, const char *iso, int64_t ms)
{
    cJSON *t = cJSON_CreateObject();

    if (t == NULL)
        return -1;
    if (!cJSON_AddItemToArray(arr, t)) {
        cJSON_Delete(t);
        return -1;
    }
    /* A double holds every millisecond of years 0000-9999 exactly (|ms| < 2^53). */
    if (cJSON_AddStringToObject(t, "at", iso) == NULL ||
        cJSON_AddNumberToObject(t, "ms", (double)ms) == NULL)
        return -1;
    return 0;
}

static int cmd_next(ctx_t *x)
{
    apc_schedule_t s;
    char err[256], buf[APC_ISO8601_BUFSZ];
    int64_t t = x->now, count = 5, i;
    int32_t off = 0;
    const apc_tz_t *tz;
    cJSON *root = NULL, *times = NULL;
    int code = CTL_EXIT_ERROR;

    if (x->val[O_FROM] != NULL && apc_time_parse_iso8601(x->val[O_FROM], &t, err, sizeof err) != 0)
        return usage_error(x, "--from: %s", err);
    if (x->val[O_COUNT] != NULL && parse_int(x->val[O_COUNT], 1, 1000, &count) != 0)
        return usage_error(x, "--count: \"%s\" is not a number from 1 to 1000", x->val[O_COUNT]);
    tz = x->val[O_UTC] != NULL ? apc_tz_utc() : &x->local;
    if (apc_schedule_parse(x->pos[0], &s, err, sizeof err) != 0) {
        ctl_errf("next: schedule \"%s\": %s", x->pos[0], err);
        return CTL_EXIT_ERROR;
    }
    if (x->json) {
        /* Built whole and printed at the end: an error half way prints no partial JSON. */
        root = cJSON_CreateObject();
        if (root == NULL || cJSON_AddStringToObject(root, "schedule", x->pos[0]) == NULL ||
            cJSON_AddStringToObject(root, "zone", x->val[O_UTC] != NULL ? "UTC" : "local") ==
                NULL ||
            (times = cJSON_AddArrayToObject(root, "times")) == NULL) {
            ctl_errf("out of memory");
            goto cleanup;
        }
    }
    for (i = 0; i < count; i++) {
        int rc = apc_schedule_next(&s, t, tz, &t);
        if (rc == APC_ENOTFOUND) {
            if (i == 0)
                ctl_errf("next: schedule \"%s\" has no fire time after the start%s", x->pos[0],
                         s.kind == APC_SCHED_STARTUP ? " (it fires when the service starts)" : "");
            break;
        }
        if (rc == 0)
            rc = apc_tz_offset_at_ms(tz, t, &off);
        if (rc == 0)
            rc = apc_time_format_iso8601(t, off, buf, sizeof buf);
        if (rc != 0) {
            ctl_errf("next: %s", apc_strerror(rc));
            goto cleanup;
        }
        if (!x->json) {
            ctl_outf("%s\n", buf);
        } else if (json_add_time(times, buf, t) != 0) {
            ctl_errf("out of memory");
            goto cleanup;
        }
    }
    if (root != NULL && print_json_line(root) != 0)
        goto cleanup;
    code = CTL_EXIT_OK;
cleanup:
    cJSON_Delete(root);
    return code;
}

/* ---- The command table ---------------------------------------------------------------------- */

static int cmd_help(ctx_t *x);

static const command_t commands[] = {
    {"status", cmd_status, "status [--json]", "service state, version, uptime, workers, queue",
     "Shows whether the service runs, its version and uptime, busy and idle workers, and the\n"
     "number of jobs, running and queued runs.\n",
     BIT(O_JSON), 0, 0, 0, NULL},
    {"list", cmd_list, "list [--json] [--db PATH | --config PATH]",
     "every job: schedule, next run, last status, paused",
     "Lists every job with its schedule, next run (local time and relative), last status and\n"
     "state (idle, running, paused, disabled). With --db or --config, a service that is not\n"
     "running is answered from the history database (no next run then).\n",
     BIT(O_JSON) | OFFLINE_READ, 0, 0, 0, NULL},
    {"run", cmd_run, "run JOB [--at ISO | --in DURATION] [--wait] [--json] [-- ARGS...]",
     "queue a run now or later; --wait for it to end",
     "Queues a manual run of JOB and prints its run id. --at 2026-03-08T02:30:00Z or --in 10m\n"
     "delays it. --wait shows live progress on a console, prints the run's output when it\n"
     "ends and exits with the job's exit code (see the exit codes). ARGS after -- are\n"
     "appended to the job's command (only for jobs with allow_args; the service checks).\n"
     "Ctrl+C stops waiting; the run goes on (apcctl cancel RUN_ID stops it).\n",
     BIT(O_JSON) | BIT(O_AT) | BIT(O_IN) | BIT(O_WAIT), 1, 1, 1, "JOB"},
    {"cancel", cmd_cancel, "cancel RUN_ID [--json]", "cancel a queued or running run",
     "Cancels a queued run, or ends a running one (its process tree is terminated).\n", BIT(O_JSON),
     1, 1, 0, "RUN_ID"},
    {"history", cmd_history,
     "history [JOB] [--since 24h|ISO] [--status S] [--limit N] [--before ID] [--json]\n"
     "               [--db PATH | --config PATH]",
     "past and current runs, newest first",
     "Lists runs, newest first (default 20, at most 1000 with --limit). --status takes one of\n"
     "queued running succeeded failed timed_out cancelled interrupted skipped. --before ID\n"
     "pages back. With --db or --config, reads the history database when the service is\n"
     "not running.\n",
     BIT(O_JSON) | BIT(O_SINCE) | BIT(O_STATUS) | BIT(O_LIMIT) | BIT(O_BEFORE) | OFFLINE_READ, 0, 1,
     0, NULL},
    {"show", cmd_show, "show RUN_ID [--json] [--db PATH | --config PATH]",
     "one run in full, with the end of its output",
     "Shows every field of one run and the end of its output.\n", BIT(O_JSON) | OFFLINE_READ, 1, 1,
     0, "RUN_ID"},
    {"logs", cmd_logs, "logs RUN_ID [--tail SIZE] [--json] [--db PATH | --config PATH]",
     "the captured output of a run",
     "Prints the end of a run's captured output: 16KiB by default, --tail 4096 or --tail 1MiB\n"
     "for more or less.\n",
     BIT(O_JSON) | BIT(O_TAIL) | OFFLINE_READ, 1, 1, 0, "RUN_ID"},
    {"reload", cmd_reload, "reload [--json]", "re-read the configuration",
     "Makes the service re-read its configuration (like a PARAMCHANGE control). A config\n"
     "with errors is refused and the service keeps the old one; the errors are printed.\n",
     BIT(O_JSON), 0, 0, 0, NULL},
    {"pause", cmd_pause, "pause JOB [--for DURATION] [--json]", "stop scheduling a job",
     "Stops scheduled runs of JOB until resumed, or for a while (--for 2h). Manual runs\n"
     "still start.\n",
     BIT(O_JSON) | BIT(O_FOR), 1, 1, 0, "JOB"},
    {"resume", cmd_resume, "resume JOB [--json]", "schedule a paused job again",
     "Resumes scheduled runs of a paused JOB.\n", BIT(O_JSON), 1, 1, 0, "JOB"},
    {"validate", cmd_validate, "validate [CONFIG] [--json]", "check a config file (offline)",
     "Loads CONFIG (default %ProgramData%\\ApcSched\\apcsvc.json) without a service and\n"
     "prints every finding as file:line:col: path: message, including daylight-saving\n"
     "warnings for the next 12 months in the machine's time zone. Exit 0 when valid\n"
     "(warnings allowed), 1 when invalid. --json prints the outcome and every finding\n"
     "as one JSON object (same exit codes).\n",
     BIT(O_JSON), 0, 1, 0, NULL},
    {"next", cmd_next, "next EXPR [--from ISO] [--count N] [--utc] [--json]",
     "the next fire times of a schedule (offline)",
     "Prints the next N (default 5, at most 1000) fire times of schedule EXPR after --from\n"
     "(default now), one ISO-8601 time per line in local time with its offset, or in UTC\n"
     "with --utc. --json prints one JSON object with each time as ISO-8601 and as Unix\n"
     "milliseconds. Example: apcctl next \"30 2 * * 1-5\" --count 3\n",
     BIT(O_FROM) | BIT(O_COUNT) | BIT(O_UTC) | BIT(O_JSON), 1, 1, 0, "EXPR"},
    {"help", cmd_help, "help [COMMAND]", "this overview, or the help of one command", "", 0, 0, 1,
     0, NULL},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command_t *find_command(const char *name)
{
    size_t i;

    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overview(void)
{
    size_t i;

    ctl_out("usage: apcctl [--service NAME] COMMAND [ARGS] [--help]\n\n"
            "Controls the ApcSched service through its pipe \\\\.\\pipe\\NAME (default "
            "apcsvc).\n\nCommands:\n");
    for (i = 0; i < NCOMMANDS; i++)
        ctl_outf("  %-9s %s\n", commands[i].name, commands[i].summary);
    ctl_out("\nOptions for every command:\n"
            "  --service NAME  talk to another instance (pipe \\\\.\\pipe\\NAME)\n"
            "  --json          (read commands) print the answer as JSON, one line\n"
            "  -h, --help      show help\n\n");
    ctl_out(exit_codes_help);
}

static void print_command_help(const command_t *c)
{
    ctl_outf("usage: apcctl %s\n\n%s\n", c->usage, c->help);
    if (c->opts & OFFLINE_READ)
        ctl_out("  --db PATH       when the service is not running, read this history database\n"
                "  --config PATH   ... or the history database named in this config\n");
    ctl_out("  --service NAME  talk to another instance (default apcsvc)\n");
    if (c->opts & BIT(O_JSON))
        ctl_out("  --json          print the JSON answer (one line)\n");
    ctl_out("\n");
    ctl_out(exit_codes_help);
}

static int cmd_help(ctx_t *x)
{
    const command_t *c;

    if (x->npos == 0) {
        print_overview();
        return CTL_EXIT_OK;
    }
    c = find_command(x->pos[0]);
    if (c == NULL)
        return usage_error(x, "unknown command \"%s\"", x->pos[0]);
    print_command_help(c);
    return CTL_EXIT_OK;
}

/* ---- Argument parsing ----------------------------------------------------------------------- */

/* Matches "--name" or "--name=value"; returns the option id or -1. */
static int match_option(const char *arg, const char **inline_val)
{
    size_t i;

    *inline_val = NULL;
    if (strcmp(arg, "-h") == 0)
        return O_HELP;
    for (i = 0; i < O_N_; i++) {
        size_t n = strlen(options[i].name);
        if (strncmp(arg, options[i].name, n) == 0) {
            if (arg[n] == '\0')
                return (int)i;
            if (arg[n] == '=' && options[i].has_arg) {
                *inline_val = arg + n + 1;
                return (int)i;
            }
        }
    }
    return -1;
}

static int parse_args(ctx_t *x, int argc, const char **argv)
{
    int i, cmd_index = -1, id;
    const char *inline_val;

    /* The command is the first word that is neither an option nor an option's value. */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] == '-') {
            id = match_option(argv[i], &inline_val);
            if (id >= 0 && options[id].has_arg && inline_val == NULL)
                i++;
            continue;
        }
        cmd_index = i;
        break;
    }
    if (cmd_index < 0) {
        for (i = 1; i < argc; i++)
            if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
                return -1; /* x->cmd stays NULL: the overview */
        return usage_error(NULL, "no command given");
    }
    x->cmd = find_command(argv[cmd_index]);
    if (x->cmd == NULL) {
        return usage_error(NULL, "unknown command \"%s\"", argv[cmd_index]);
    }
    x->pos = calloc((size_t)argc, sizeof *x->pos);
    if (x->pos == NULL) {
        ctl_errf("out of memory");
        return CTL_EXIT_ERROR;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == cmd_index)
            continue;
        if (strcmp(a, "--") == 0) {
            if (!x->cmd->takes_rest)
                return usage_error(x, "\"--\" is not accepted here");
            x->rest = argv + i + 1;
            x->nrest = (size_t)(argc - i - 1);
            break;
        }
        if (a[0] == '-' && a[1] != '\0') {
            id = match_option(a, &inline_val);
            if (id < 0 || ((GLOBAL_OPTS | x->cmd->opts) & BIT(id)) == 0)
                return usage_error(x, "unknown option \"%s\"", a);
            if (options[id].has_arg) {
                if (inline_val == NULL) {
                    if (i + 1 >= argc)
                        return usage_error(x, "%s: missing value", options[id].name);
                    inline_val = argv[++i];
                }
                if (x->val[id] != NULL)
                    return usage_error(x, "%s given twice", options[id].name);
                x->val[id] = inline_val;
            } else {
                if (inline_val != NULL)
                    return usage_error(x, "%s takes no value", options[id].name);
                x->val[id] = "";
            }
            continue;
        }
        x->pos[x->npos++] = a;
    }
    if (x->val[O_HELP] != NULL)
        return -1;
    if (x->npos < x->cmd->min_pos)
        return usage_error(x, "missing %s", x->cmd->argname);
    if (x->npos > x->cmd->max_pos)
        return usage_error(x, "unexpected argument \"%s\"", x->pos[x->cmd->max_pos]);
    if (x->val[O_SERVICE] != NULL) {
        char err[256];
        if (apc_proto_job_name_check(x->val[O_SERVICE], err, sizeof err) != 0)
            return usage_error(x,
                               "--service: \"%s\" is not a service name (1-64 characters of "
                               "A-Z a-z 0-9 . _ -)",
                               x->val[O_SERVICE]);
        x->service = x->val[O_SERVICE];
    }
    x->json = x->val[O_JSON] != NULL;
    return 0;
}

int wmain(int argc, wchar_t **wargv);

int wmain(int argc, wchar_t **wargv)
{
    ctx_t x;
    char **own = NULL;        /* the UTF-8 copies, freed at the end */
    const char **argv = NULL; /* the same strings, as the parser reads them */
    int i, code;

    ctl_out_init();
    memset(&x, 0, sizeof x);
    x.service = DEFAULT_SERVICE;
    x.now = apc_win_now_ms();
    x.local.offset_at = local_offset_at;
    x.local.name = "local";
    own = calloc((size_t)argc + 1u, sizeof *own);
    argv = calloc((size_t)argc + 1u, sizeof *argv);
    if (own == NULL || argv == NULL) {
        ctl_errf("out of memory");
        code = CTL_EXIT_ERROR;
        goto cleanup;
    }
    for (i = 0; i < argc; i++) {
        own[i] = apc_wide_to_utf8(wargv[i]);
        argv[i] = own[i];
        if (own[i] == NULL) {
            ctl_errf("argument %d cannot be converted to UTF-8", i);
            code = CTL_EXIT_USAGE;
            goto cleanup;
        }
    }
    code = parse_args(&x, argc, argv);
    if (code == -1) {
        if (x.cmd == NULL)
            print_overview();
        else
            print_command_help(x.cmd);
        code = CTL_EXIT_OK;
    } else if (code == 0) {
        code = x.cmd->fn(&x);
    }
cleanup:
    code = ctl_out_finish(code);
    for (i = 0; own != NULL && i < argc; i++)
        free(own[i]);
    free(own);
    free((void *)argv);
    free((void *)x.pos);
    return code;
}
