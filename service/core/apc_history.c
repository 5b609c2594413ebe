/*
 * apc_history.c - the SQLite run history (see apc_history.h for the contract
 * and README.md (section The run history database) for the schema as users see it).
 *
 * How it is built:
 * - One connection per handle, opened with sqlite3_open_v2. The writer runs in
 *   WAL mode with synchronous=FULL: a committed batch acknowledges runs to
 *   apcctl, so it must survive a power cut; WAL keeps readers (apcctl, the
 *   sqlite3 shell) working while the writer commits.
 * - Every data statement is a fixed SQL text in the `stmts` table, prepared on
 *   first use and reused for the life of the connection (never SQL built from
 *   values). DDL and PRAGMAs run once at open.
 * - The schema moves forward one version at a time: `migrations[v]` takes a
 *   database from user_version v to v + 1, all of them in one transaction.
 * - Every SQLite failure goes through dberr(), the one place that turns it
 *   into APC_EDB with the path, SQLite's text, code name and number, and what
 *   we were doing: "history.db: database is locked (SQLITE_BUSY, 5) while
 *   starting a batch".
 *
 * Threads: a handle belongs to the thread that opened it; the connection is
 * opened with SQLITE_OPEN_NOMUTEX because nothing else touches it.
 */
#include "apc_history.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "apc_error.h"
#include "apc_str.h"
#include "apc_time.h"

/* The statements a handle may prepare; indexes into `stmts` and apc_history.st. */
enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INSERT,
    ST_START,
    ST_FINISH,
    ST_STATE_SET,
    ST_STATUS_OF,
    ST_MAX_ID,
    ST_RECOVER,
    ST_PRUNE,
    ST_QUERY_ALL,
    ST_QUERY_JOB,
    ST_GET,
    ST_LAST_RUNS,
    ST_STATE_GET,
    ST_STATE_LIST,
    ST_COUNT
};

/* The columns of a run, in the order read_run() expects. */
#define RUN_COLS                                                                             \
    "id, job, \"trigger\", status, attempt, queued_at, started_at, finished_at, exit_code, " \
    "submitted_by, worker, pid, output_path, output_tail, error, args, scheduled_for"

/* Filters shared by the two query statements; ?2 before_id, ?3 since, ?4 ",status,..." list. */
#define QUERY_WHERE                                \
    "id < ?2 AND (?3 IS NULL OR queued_at >= ?3) " \
    "AND (?4 IS NULL OR instr(?4, ',' || status || ',') > 0) ORDER BY id DESC LIMIT ?5"

#define STATE_COLS "job, last_fire_at, paused, paused_until, paused_by, updated_at"

static const struct {
    const char *sql;
    const char *what; /* finishes "while ..." in error messages */
} stmts[ST_COUNT] = {
    [ST_BEGIN] = {"BEGIN IMMEDIATE", "starting a transaction"},
    [ST_COMMIT] = {"COMMIT", "committing a transaction"},
    [ST_ROLLBACK] = {"ROLLBACK", "rolling back a transaction"},
    [ST_INSERT] = {"INSERT INTO runs(" RUN_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                   "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                   "inserting a run"},
    [ST_START] = {"UPDATE runs SET status = 'running', started_at = ?2, worker = ?3, pid = ?4 "
                  "WHERE id = ?1 AND status = 'queued'",
                  "starting a run"},
    /* A queued run can only end without running; a running one may end any way. */
    [ST_FINISH] = {"UPDATE runs SET status = ?2, finished_at = ?3, exit_code = ?4, "
                   "output_path = coalesce(?5, output_path), "
                   "output_tail = coalesce(?6, output_tail), error = coalesce(?7, error) "
                   "WHERE id = ?1 AND (status = 'running' OR (status = 'queued' "
                   "AND ?2 IN ('cancelled', 'skipped', 'interrupted')))",
                   "finishing a run"},
    /* ?7 is the APC_JS_* mask: fields it does not name keep their stored value. */
    [ST_STATE_SET] = {"INSERT INTO job_state(" STATE_COLS ") VALUES(?1, "
                      "CASE WHEN ?7 & 1 THEN ?2 END, CASE WHEN ?7 & 2 THEN ?3 ELSE 0 END, "
                      "CASE WHEN ?7 & 2 THEN ?4 END, CASE WHEN ?7 & 2 THEN ?5 END, ?6) "
                      "ON CONFLICT(job) DO UPDATE SET "
                      "last_fire_at = CASE WHEN ?7 & 1 THEN excluded.last_fire_at "
                      "ELSE last_fire_at END, "
                      "paused = CASE WHEN ?7 & 2 THEN excluded.paused ELSE paused END, "
                      "paused_until = CASE WHEN ?7 & 2 THEN excluded.paused_until "
                      "ELSE paused_until END, "
                      "paused_by = CASE WHEN ?7 & 2 THEN excluded.paused_by ELSE paused_by END, "
                      "updated_at = excluded.updated_at",
                      "setting a job's state"},
    [ST_STATUS_OF] = {"SELECT status FROM runs WHERE id = ?1", "looking up a run's status"},
    [ST_MAX_ID] = {"SELECT coalesce(max(id), 0) FROM runs", "reading the highest run id"},
    [ST_RECOVER] = {"UPDATE runs SET status = 'interrupted', finished_at = ?1, "
                    "error = CASE status WHEN 'running' "
                    "THEN 'service stopped while the run was running' "
                    "ELSE 'service stopped while the run was queued' END "
                    "WHERE status IN ('queued', 'running')",
                    "marking unfinished runs interrupted"},
    /* RETURNING: SQLite makes every change at the first step and buffers the rows, so the
       output paths of exactly the deleted runs are known before the COMMIT. */
    [ST_PRUNE] = {"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE finished_at < ?1 "
                  "AND status NOT IN ('queued', 'running') LIMIT ?2) RETURNING output_path",
                  "pruning old runs"},
    [ST_QUERY_ALL] = {"SELECT " RUN_COLS " FROM runs WHERE " QUERY_WHERE, "querying runs"},
    [ST_QUERY_JOB] = {"SELECT " RUN_COLS " FROM runs WHERE job = ?1 AND " QUERY_WHERE,
                      "querying a job's runs"},
    [ST_GET] = {"SELECT " RUN_COLS " FROM runs WHERE id = ?1", "reading a run"},
    [ST_LAST_RUNS] = {"SELECT " RUN_COLS " FROM runs WHERE id IN "
                      "(SELECT max(id) FROM runs GROUP BY job) ORDER BY job",
                      "reading each job's last run"},
    [ST_STATE_GET] = {"SELECT " STATE_COLS " FROM job_state WHERE job = ?1",
                      "reading a job's state"},
    [ST_STATE_LIST] = {"SELECT " STATE_COLS " FROM job_state ORDER BY job", "listing job states"},
};

struct apc_history {
    sqlite3 *db;
    char *path; /* as given to open; starts every error message */
    int readonly;
    int last_rc; /* primary SQLite code of the last failure dberr() reported, else 0 */
    size_t failed_op;
    sqlite3_stmt *st[ST_COUNT];
};

static const char *const status_names[APC_RUN_STATUS_COUNT] = {
    "queued", "running", "succeeded", "failed", "timed_out", "cancelled", "interrupted", "skipped"};

static const char *const trigger_names[APC_TRIGGER_COUNT] = {"schedule", "manual", "retry",
                                                             "startup", "catchup"};

/* ---- names ---------------------------------------------------------------------------------- */

/* Index of name in names[0..count), or -1 (also for NULL): the one lookup behind both parsers. */
static int name_index(const char *const *names, int count, const char *name)
{
    for (int i = 0; name != NULL && i < count; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *apc_run_status_name(apc_run_status_t status)
{
    if ((int)status < 0 || status >= APC_RUN_STATUS_COUNT)
        return NULL;
    return status_names[status];
}

int apc_run_status_parse(const char *name, apc_run_status_t *out)
{
    int i = name_index(status_names, (int)APC_RUN_STATUS_COUNT, name);

    if (i < 0)
        return APC_EINVAL;
    *out = (apc_run_status_t)i;
    return 0;
}

int apc_run_status_is_final(apc_run_status_t status)
{
    return status > APC_RUN_RUNNING && status < APC_RUN_STATUS_COUNT;
}

const char *apc_trigger_name(apc_trigger_t trigger)
{
    if ((int)trigger < 0 || trigger >= APC_TRIGGER_COUNT)
        return NULL;
    return trigger_names[trigger];
}

int apc_trigger_parse(const char *name, apc_trigger_t *out)
{
    int i = name_index(trigger_names, (int)APC_TRIGGER_COUNT, name);

    if (i < 0)
        return APC_EINVAL;
    *out = (apc_trigger_t)i;
    return 0;
}

/* ---- errors --------------------------------------------------------------------------------- */

/* The symbolic name of a primary SQLite result code, for messages. */
static const char *code_name(int rc)
{
    static const char *const names[] = {
        "SQLITE_OK",       "SQLITE_ERROR",     "SQLITE_INTERNAL", "SQLITE_PERM",
        "SQLITE_ABORT",    "SQLITE_BUSY",      "SQLITE_LOCKED",   "SQLITE_NOMEM",
        "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",    "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND", "SQLITE_FULL",      "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",    "SQLITE_SCHEMA",    "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH", "SQLITE_MISUSE",    "SQLITE_NOLFS",    "SQLITE_AUTH",
        "SQLITE_FORMAT",   "SQLITE_RANGE",     "SQLITE_NOTADB",   "SQLITE_NOTICE",
        "SQLITE_WARNING"};

    if (rc >= 0 && rc < (int)(sizeof names / sizeof names[0]))
        return names[rc];
    if (rc == SQLITE_ROW)
        return "SQLITE_ROW";
    if (rc == SQLITE_DONE)
        return "SQLITE_DONE";
    return "SQLITE_UNKNOWN";
}

static int dberr(apc_history_t *h, int rc, char *err, size_t errsz, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/*
 * The one translation of a SQLite failure: returns APC_EDB and writes
 * "<path>: <SQLite's message> (<SQLITE_NAME>, <code>) while <doing>". The
 * connection's own message is used when it belongs to rc (it is more precise:
 * "UNIQUE constraint failed: runs.id"), else SQLite's generic text for rc.
 * Call it before anything else touches the connection. Remembers the primary
 * code in h->last_rc, which tells a corrupt file from a busy one at start.
 */
static int dberr(apc_history_t *h, int rc, char *err, size_t errsz, const char *fmt, ...)
{
    char doing[200];
    const char *msg = NULL;
    int primary = rc & 0xff;
    int ext = rc;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(doing, sizeof doing, fmt, ap);
    va_end(ap);
    h->last_rc = primary;
    if (h->db != NULL && sqlite3_errcode(h->db) == primary) {
        msg = sqlite3_errmsg(h->db);
        ext = sqlite3_extended_errcode(h->db);
    }
    if (msg == NULL)
        msg = sqlite3_errstr(rc);
    if (ext != primary)
        return apc_seterr(err, errsz, APC_EDB, "%s: %s (%s, %d, extended %d) while %s", h->path,
                          msg, code_name(primary), primary, ext, doing);
    return apc_seterr(err, errsz, APC_EDB, "%s: %s (%s, %d) while %s", h->path, msg,
                      code_name(primary), primary, doing);
}

/* ---- statements ----------------------------------------------------------------------------- */

/* Returns statement `which` of this connection in *out, preparing it on first use. */
static int stmt(apc_history_t *h, int which, sqlite3_stmt **out, char *err, size_t errsz)
{
    if (h->st[which] == NULL) {
        int rc = sqlite3_prepare_v3(h->db, stmts[which].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &h->st[which], NULL);
        if (rc != SQLITE_OK)
            return dberr(h, rc, err, errsz, "preparing the statement for %s", stmts[which].what);
    }
    *out = h->st[which];
    return 0;
}

/* Makes a used statement ready for its next use and drops the pointers bound to it. */
static void done(sqlite3_stmt *st)
{
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

static int bind_time(sqlite3_stmt *st, int i, int64_t ms)
{
    if (ms == APC_TIME_NONE)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_int64(st, i, ms);
}

/* Binds s without copying it: the caller's string outlives the statement's use (done()). */
static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int bind_positive(sqlite3_stmt *st, int i, int64_t v)
{
    if (v <= 0)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_int64(st, i, v);
}

static int64_t col_time(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return APC_TIME_NONE;
    return sqlite3_column_int64(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/*
 * Runs a statement that returns no rows (or whose rows do not matter).
 * `what` overrides the table's description for the error message when not NULL.
 */
static int run_stmt(apc_history_t *h, sqlite3_stmt *st, const char *what, char *err, size_t errsz)
{
    int rc = sqlite3_step(st);
    int ret = 0;

    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = dberr(h, rc, err, errsz, "%s", what);
    done(st);
    return ret;
}

/* Runs one of the argument-less statements (BEGIN, COMMIT, ROLLBACK). */
static int exec_st(apc_history_t *h, int which, const char *what, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int ret = stmt(h, which, &st, err, errsz);

    if (ret != 0)
        return ret;
    return run_stmt(h, st, what != NULL ? what : stmts[which].what, err, errsz);
}

/* Ends an open transaction without its changes; the error that led here is already reported. */
static void rollback(apc_history_t *h)
{
    if (!sqlite3_get_autocommit(h->db)) {
        char ignored[16];
        int reported = h->last_rc; /* the failure that led here is the one that counts */

        (void)exec_st(h, ST_ROLLBACK, NULL, ignored, sizeof ignored);
        h->last_rc = reported;
    }
}

/* Reads the current row of a RUN_COLS statement; strings point into the statement. */
static int read_run(apc_history_t *h, sqlite3_stmt *st, apc_run_record_t *r, char *err,
                    size_t errsz)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->job = col_text(st, 1);
    if (apc_trigger_parse(col_text(st, 2), &r->trigger) != 0)
        return apc_seterr(err, errsz, APC_EDB, "%s: run %" PRId64 " has an unknown trigger \"%s\"",
                          h->path, r->id, col_text(st, 2) ? col_text(st, 2) : "(null)");
    if (apc_run_status_parse(col_text(st, 3), &r->status) != 0)
        return apc_seterr(err, errsz, APC_EDB, "%s: run %" PRId64 " has an unknown status \"%s\"",
                          h->path, r->id, col_text(st, 3) ? col_text(st, 3) : "(null)");
    r->attempt = sqlite3_column_int(st, 4);
    r->queued_at = col_time(st, 5);
    r->started_at = col_time(st, 6);
    r->finished_at = col_time(st, 7);
    r->has_exit_code = sqlite3_column_type(st, 8) != SQLITE_NULL;
    r->exit_code = sqlite3_column_int64(st, 8);
    r->submitted_by = col_text(st, 9);
    r->worker = sqlite3_column_int(st, 10);
    r->pid = sqlite3_column_int64(st, 11);
    r->output_path = col_text(st, 12);
    r->output_tail = col_text(st, 13);
    r->error = col_text(st, 14);
    r->args_json = col_text(st, 15);
    r->scheduled_for = col_time(st, 16);
    return 0;
}

static void read_state(sqlite3_stmt *st, apc_job_state_t *s)
{
    memset(s, 0, sizeof *s);
    s->job = col_text(st, 0);
    s->fields = APC_JS_LAST_FIRE | APC_JS_PAUSE;
    s->last_fire_at = col_time(st, 1);
    s->paused = sqlite3_column_int(st, 2) != 0;
    s->paused_until = col_time(st, 3);
    s->paused_by = col_text(st, 4);
    s->updated_at = col_time(st, 5);
}

/* Steps a RUN_COLS statement calling cb per row; applies the callback return rules. */
static int each_run(apc_history_t *h, sqlite3_stmt *st, int which, apc_history_run_cb cb, void *ctx,
                    char *err, size_t errsz)
{
    apc_run_record_t r;
    int rc, ret = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ret = read_run(h, st, &r, err, errsz);
        if (ret == 0)
            ret = cb(&r, ctx);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = dberr(h, rc, err, errsz, "%s", stmts[which].what);
    done(st);
    return ret > 0 ? 0 : ret;
}

/* ---- open, schema, migrations --------------------------------------------------------------- */

/* Runs one PRAGMA or query at open time and returns its first column as an integer. */
static int query_int(apc_history_t *h, const char *sql, const char *what, int64_t *out, char *err,
                     size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = 0;

    rc = sqlite3_prepare_v2(h->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_ROW)
        ret = dberr(h, rc, err, errsz, "%s", what);
    (void)sqlite3_finalize(st);
    return ret;
}

/* Runs fixed DDL or PRAGMA text (never built from values) at open time. */
static int exec_sql(apc_history_t *h, const char *sql, const char *what, char *err, size_t errsz)
{
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return dberr(h, rc, err, errsz, "%s", what);
    return 0;
}

/*
 * Version 1. Indexes: runs_job (history of one job, newest first, and each
 * job's max(id)), runs_status (recovery finds queued/running rows without a
 * scan), runs_queued_at (time-window queries). The views are for people with
 * the sqlite3 shell; the program itself reads the tables.
 */
static const char schema_v1[] =
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  job TEXT NOT NULL,\n"
    "  \"trigger\" TEXT NOT NULL\n"
    "    CHECK (\"trigger\" IN ('schedule', 'manual', 'retry', 'startup', 'catchup')),\n"
    "  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed',\n"
    "    'timed_out', 'cancelled', 'interrupted', 'skipped')),\n"
    "  attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),\n"
    "  queued_at INTEGER,\n"
    "  started_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  exit_code INTEGER,\n"
    "  submitted_by TEXT,\n"
    "  worker INTEGER,\n"
    "  pid INTEGER,\n"
    "  output_path TEXT,\n"
    "  output_tail TEXT,\n"
    "  error TEXT,\n"
    "  args TEXT,\n"
    "  scheduled_for INTEGER\n"
    ");\n"
    "CREATE INDEX runs_job ON runs(job, id DESC);\n"
    "CREATE INDEX runs_status ON runs(status);\n"
    "CREATE INDEX runs_queued_at ON runs(queued_at);\n"
    "CREATE TABLE job_state (\n"
    "  job TEXT PRIMARY KEY,\n"
    "  last_fire_at INTEGER,\n"
    "  paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),\n"
    "  paused_until INTEGER,\n"
    "  paused_by TEXT,\n"
    "  updated_at INTEGER\n"
    ");\n"
    "CREATE VIEW v_runs AS SELECT\n"
    "  id, job, \"trigger\", status, attempt, queued_at, started_at, finished_at, exit_code,\n"
    "  submitted_by, worker, pid, output_path, output_tail, error, args, scheduled_for,\n"
    "  strftime('%Y-%m-%d %H:%M:%f', queued_at / 1000.0, 'unixepoch', 'localtime') AS queued,\n"
    "  strftime('%Y-%m-%d %H:%M:%f', started_at / 1000.0, 'unixepoch', 'localtime') AS started,\n"
    "  strftime('%Y-%m-%d %H:%M:%f', finished_at / 1000.0, 'unixepoch', 'localtime') AS finished,\n"
    "  strftime('%Y-%m-%d %H:%M:%f', scheduled_for / 1000.0, 'unixepoch', 'localtime')\n"
    "    AS scheduled,\n"
    "  finished_at - started_at AS duration_ms\n"
    "FROM runs;\n"
    /* Durations count runs that ran to an end of their own or were cancelled; an
     * interrupted run's finished_at is the recovery time, so it would lie. */
    "CREATE VIEW v_job_stats AS\n"
    "WITH timed AS (\n"
    "  SELECT job, finished_at - started_at AS d,\n"
    "    row_number() OVER (PARTITION BY job ORDER BY finished_at - started_at, id) AS rn,\n"
    "    count(*) OVER (PARTITION BY job) AS n\n"
    "  FROM runs\n"
    "  WHERE started_at IS NOT NULL AND finished_at IS NOT NULL\n"
    "    AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled')),\n"
    "durations AS (\n"
    "  SELECT job, max(CASE WHEN rn = (n + 1) / 2 THEN d END) AS p50_duration_ms,\n"
    "    max(d) AS max_duration_ms\n"
    "  FROM timed GROUP BY job),\n"
    "counts AS (\n"
    "  SELECT job, count(*) AS runs,\n"
    "    sum(status = 'succeeded') AS succeeded,\n"
    "    sum(status IN ('failed', 'timed_out')) AS failures,\n"
    "    max(id) AS last_id, max(finished_at) AS last_finished_at\n"
    "  FROM runs GROUP BY job)\n"
    "SELECT c.job AS job, c.runs AS runs, c.succeeded AS succeeded, c.failures AS failures,\n"
    "  round(1.0 * c.succeeded / nullif(c.succeeded + c.failures, 0), 4) AS success_rate,\n"
    "  l.status AS last_status,\n"
    "  strftime('%Y-%m-%d %H:%M:%f', c.last_finished_at / 1000.0, 'unixepoch', 'localtime')\n"
    "    AS last_finished,\n"
    "  d.p50_duration_ms AS p50_duration_ms, d.max_duration_ms AS max_duration_ms\n"
    "FROM counts c JOIN runs l ON l.id = c.last_id\n"
    "LEFT JOIN durations d ON d.job = c.job;\n";

static int migrate_0_to_1(apc_history_t *h, char *err, size_t errsz)
{
    return exec_sql(h, schema_v1, "creating the version 1 schema", err, errsz);
}

/* migrations[v] takes the schema from user_version v to v + 1, inside the caller's transaction. */
static int (*const migrations[])(apc_history_t *h, char *err, size_t errsz) = {
    migrate_0_to_1,
};

_Static_assert(sizeof migrations / sizeof migrations[0] == APC_HISTORY_SCHEMA_VERSION,
               "one migration per schema version");

/* Refuses versions this build cannot read; `tables` tells a fresh file from a foreign one. */
static int check_version(apc_history_t *h, int64_t version, int64_t tables, char *err, size_t errsz)
{
    if (version > APC_HISTORY_SCHEMA_VERSION)
        return apc_seterr(err, errsz, APC_EDB,
                          "%s: schema version %" PRId64
                          " is newer than this program knows (%d); refusing to open it",
                          h->path, version, APC_HISTORY_SCHEMA_VERSION);
    if (version == 0 && (h->readonly || tables > 0))
        return apc_seterr(err, errsz, APC_EDB,
                          "%s: not an ApcSched history database (schema version 0)", h->path);
    if (version < APC_HISTORY_SCHEMA_VERSION && h->readonly)
        return apc_seterr(err, errsz, APC_EDB,
                          "%s: schema version %" PRId64
                          " is older than this program's (%d); start the service once to "
                          "upgrade it",
                          h->path, version, APC_HISTORY_SCHEMA_VERSION);
    return 0;
}

/* Reads user_version into *version and refuses what check_version() refuses. */
static int read_version(apc_history_t *h, int64_t *version, char *err, size_t errsz)
{
    int64_t tables = 0;
    int ret;

    ret = query_int(h, "PRAGMA user_version", "reading the schema version", version, err, errsz);
    if (ret == 0)
        ret = query_int(h, "SELECT count(*) FROM sqlite_master", "reading the schema", &tables, err,
                        errsz);
    if (ret == 0)
        ret = check_version(h, *version, tables, err, errsz);
    return ret;
}

/* Brings the schema to APC_HISTORY_SCHEMA_VERSION in one transaction (all steps or none). */
static int migrate(apc_history_t *h, char *err, size_t errsz)
{
    int64_t version = 0;
    char sql[64];
    int ret;

    ret = exec_st(h, ST_BEGIN, "starting the schema upgrade", err, errsz);
    if (ret != 0)
        return ret;
    /* Read again under the write lock: another writer may have upgraded it meanwhile. */
    ret = read_version(h, &version, err, errsz);
    for (; ret == 0 && version < APC_HISTORY_SCHEMA_VERSION; version++) {
        ret = migrations[version](h, err, errsz);
        if (ret == 0) {
            (void)snprintf(sql, sizeof sql, "PRAGMA user_version = %d", (int)version + 1);
            ret = exec_sql(h, sql, "setting the schema version", err, errsz);
        }
    }
    if (ret == 0)
        ret = exec_st(h, ST_COMMIT, "committing the schema upgrade", err, errsz);
    if (ret != 0)
        rollback(h);
    return ret;
}

/* The writer's connection settings; journal_mode must change outside a transaction. */
static int configure_writer(apc_history_t *h, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = 0;

    if (sqlite3_db_readonly(h->db, "main") == 1)
        return apc_seterr(err, errsz, APC_EDB,
                          "%s: the file is read-only, but the service must write to it", h->path);
    rc = sqlite3_prepare_v2(h->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = dberr(h, rc, err, errsz, "switching to WAL mode");
    } else {
        const char *mode = col_text(st, 0);

        if (mode == NULL || strcmp(mode, "wal") != 0)
            ret = apc_seterr(err, errsz, APC_EDB,
                             "%s: cannot use WAL mode (journal mode stays \"%s\"); "
                             "is it on a network share?",
                             h->path, mode ? mode : "(null)");
    }
    (void)sqlite3_finalize(st);
    if (ret == 0)
        ret = exec_sql(h, "PRAGMA synchronous = FULL", "setting synchronous=FULL", err, errsz);
    if (ret == 0)
        ret = exec_sql(h, "PRAGMA foreign_keys = ON", "enabling foreign keys", err, errsz);
    return ret;
}

/*
 * Opens path in mode into *out. On failure returns the error and leaves *out set
 * when a handle exists (its last_rc says what SQLite found), so that
 * apc_history_open_writer() can tell a corrupt file from a busy one; the caller
 * closes it either way.
 */
static int open_conn(const char *path, const char *uri, int mode, apc_history_t **out, char *err,
                     size_t errsz)
{
    apc_history_t *h = NULL;
    int64_t version = 0;
    int flags, rc;

    *out = NULL;
    h = calloc(1, sizeof *h);
    if (h == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory", path);
    h->failed_op = (size_t)-1;
    h->readonly = mode == APC_HISTORY_READONLY;
    h->path = apc_strdup(path);
    if (h->path == NULL) {
        free(h);
        return apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory", path);
    }
    *out = h;
    flags = SQLITE_OPEN_NOMUTEX;
    flags |= h->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (uri != NULL)
        flags |= SQLITE_OPEN_URI;
    rc = sqlite3_open_v2(uri != NULL ? uri : path, &h->db, flags, NULL);
    if (rc != SQLITE_OK)
        return dberr(h, rc, err, errsz, "opening the database");
    rc = sqlite3_busy_timeout(h->db, 5000);
    if (rc != SQLITE_OK)
        return dberr(h, rc, err, errsz, "setting the busy timeout");
    /* Check the version before anything writes, so a newer database is left untouched. */
    rc = read_version(h, &version, err, errsz);
    if (rc == 0 && !h->readonly)
        rc = configure_writer(h, err, errsz);
    if (rc == 0 && !h->readonly)
        rc = migrate(h, err, errsz);
    return rc;
}

int apc_history_open(const char *path, int mode, apc_history_t **out, char *err, size_t errsz)
{
    apc_history_t *h = NULL;
    int ret;

    if (out != NULL)
        *out = NULL;
    if (path == NULL || *path == '\0' || out == NULL ||
        (mode != APC_HISTORY_READWRITE && mode != APC_HISTORY_READONLY))
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_open: invalid argument");
    ret = open_conn(path, NULL, mode, &h, err, errsz);
    if (ret != 0) {
        apc_history_close(h);
        return ret;
    }
    *out = h;
    return 0;
}

/* ---- a corrupt file at start ---------------------------------------------------------------- */

/* 1 if SQLite's primary code says the FILE is unusable (not locks, permissions or memory). */
static int is_corrupt_code(int primary)
{
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

/* 1 if a file (or anything else) exists at path. */
static int path_exists(const char *path)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return 0;
    (void)fclose(f);
    return 1;
}

/* Formats "<base>" and its "-wal" / "-shm" companions into the three buffers (each 1024). */
static int companion_names(const char *base, char names[3][1024])
{
    static const char *const suffix[3] = {"", "-wal", "-shm"};
    int i;

    for (i = 0; i < 3; i++) {
        int n = snprintf(names[i], 1024, "%s%s", base, suffix[i]);
        if (n < 0 || n >= 1024)
            return -1;
    }
    return 0;
}

int apc_history_set_aside(const char *path, int64_t now_ms, char *aside, size_t asidesz, char *err,
                          size_t errsz)
{
    char from[3][1024], to[3][1024], base[1024];
    int64_t days, secs, y;
    int m, d, i, n, moved = 0, counter, ret = 0;

    if (aside != NULL && asidesz > 0)
        aside[0] = '\0';
    if (path == NULL || *path == '\0' || aside == NULL || asidesz == 0)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_set_aside: invalid argument");
    if (companion_names(path, from) != 0)
        return apc_seterr(err, errsz, APC_EINVAL, "%s: path too long", path);
    days = apc_floor_div(now_ms, APC_MS_PER_DAY);
    secs = apc_floor_mod(now_ms, APC_MS_PER_DAY) / 1000;
    apc_civil_from_days(days, &y, &m, &d);
    /* The first free name: none of the three set-aside names may exist (never overwrite). */
    for (counter = 1;; counter++) {
        char num[24] = "";

        if (counter > 1)
            (void)snprintf(num, sizeof num, "-%d", counter);
        n = snprintf(base, sizeof base, "%s.corrupt-%04d%02d%02dT%02d%02d%02dZ%s", path, (int)y, m,
                     d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), num);
        if (n < 0 || n >= (int)sizeof base || companion_names(base, to) != 0)
            return apc_seterr(err, errsz, APC_EINVAL, "%s: path too long to set the file aside",
                              path);
        if (!path_exists(to[0]) && !path_exists(to[1]) && !path_exists(to[2]))
            break;
        if (counter >= 1000)
            return apc_seterr(err, errsz, APC_EEXISTS,
                              "%s: cannot set the file aside: %s and 999 numbered names exist",
                              path, to[0]);
    }
    if ((size_t)n >= asidesz)
        return apc_seterr(err, errsz, APC_EINVAL, "%s: no room for the set-aside name", path);
    /* The database first, then its WAL and shared memory; undo on failure, so the three
       never part company (a WAL next to the wrong database would be replayed into it). */
    for (i = 0; i < 3; i++) {
        if (i > 0 && !path_exists(from[i]))
            continue;
        if (rename(from[i], to[i]) != 0) {
            ret = apc_seterr(err, errsz, APC_EIO, "%s: cannot rename it to %s: %s", from[i], to[i],
                             strerror(errno));
            break;
        }
        moved |= 1 << i;
    }
    if (ret != 0) {
        for (i = 2; i >= 0; i--)
            if ((moved & (1 << i)) != 0)
                (void)rename(to[i], from[i]);
        return ret;
    }
    (void)snprintf(aside, asidesz, "%s", base);
    return 0;
}

/* The start-up steps on an open writer: recovery and the highest id. */
static int start_steps(apc_history_t *h, int64_t now_ms, apc_history_start_t *info, char *err,
                       size_t errsz)
{
    int ret = apc_history_recover(h, now_ms, &info->recovered, err, errsz);

    if (ret == 0)
        ret = apc_history_max_id(h, &info->max_id, err, errsz);
    return ret;
}

/*
 * "file:" URI of path with immutable=1: separators as '/', a drive letter after a '/', and the
 * characters URIs reserve ('%', '?', '#') percent-encoded. Returns NULL without memory.
 */
static char *immutable_uri(const char *path)
{
    size_t len = strlen(path), i, o = 0;
    char *uri = malloc(len * 3 + 32);

    if (uri == NULL)
        return NULL;
    o += (size_t)sprintf(uri, "file:%s", path[0] != '\0' && path[1] == ':' ? "/" : "");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%' || c == '?' || c == '#')
            o += (size_t)sprintf(uri + o, "%%%02X", c);
        else
            uri[o++] = c == '\\' ? '/' : (char)c;
    }
    (void)strcpy(uri + o, "?immutable=1");
    return uri;
}

/*
 * The read-only start (APC_HISTORY_ALLOW_READ_ONLY): opens path READONLY and reads the
 * highest id. A WAL database on a read-only FILESYSTEM cannot be read the normal way (SQLite
 * must create its -wal / -shm companions: SQLITE_CANTOPEN); then, and only if no -wal file
 * exists, it is opened immutable=1: without a WAL the file itself holds every committed row,
 * and a read-only filesystem cannot change it under us. A -wal left by a crash may hold
 * committed rows the file lacks: reading around it could reuse run ids, so that is refused.
 */
static int open_read_only_start(const char *path, apc_history_t **out, apc_history_start_t *info,
                                char *err, size_t errsz)
{
    apc_history_t *h = NULL;
    char *uri = NULL;
    int ret;

    ret = open_conn(path, NULL, APC_HISTORY_READONLY, &h, err, errsz);
    if (ret != 0 && h != NULL && (h->last_rc & 0xff) == SQLITE_CANTOPEN) {
        char wal[1040];

        (void)snprintf(wal, sizeof wal, "%s-wal", path);
        if (path_exists(wal)) {
            ret = apc_seterr(err, errsz, APC_EDB,
                             "%s: cannot be read without writing its -wal file (%s): it may "
                             "hold committed runs",
                             path, wal);
        } else {
            apc_history_close(h);
            h = NULL;
            uri = immutable_uri(path);
            if (uri == NULL)
                ret = apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory", path);
            else
                ret = open_conn(path, uri, APC_HISTORY_READONLY, &h, err, errsz);
        }
    }
    if (ret == 0)
        ret = apc_history_max_id(h, &info->max_id, err, errsz);
    free(uri);
    if (ret != 0) {
        apc_history_close(h);
        return ret;
    }
    info->read_only = 1;
    *out = h;
    return 0;
}

int apc_history_open_writer(const char *path, int64_t now_ms, unsigned flags, apc_history_t **out,
                            apc_history_start_t *info, char *err, size_t errsz)
{
    apc_history_t *h = NULL;
    int64_t salvaged = 0;
    char diag[512];
    int ret;

    if (out != NULL)
        *out = NULL;
    if (info != NULL)
        memset(info, 0, sizeof *info);
    if (path == NULL || *path == '\0' || out == NULL || info == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_open_writer: invalid argument");
    ret = open_conn(path, NULL, APC_HISTORY_READWRITE, &h, err, errsz);
    if (ret == 0)
        ret = start_steps(h, now_ms, info, err, errsz);
    if (ret == 0) {
        *out = h;
        return 0;
    }
    /* Read-write was asked but SQLite could open the file only read-only (a read-only file
       or filesystem): start from what it holds, if the caller can live with that. */
    if ((flags & APC_HISTORY_ALLOW_READ_ONLY) != 0 && h != NULL && h->db != NULL &&
        sqlite3_db_readonly(h->db, "main") == 1) {
        size_t plen = strlen(path);
        const char *d = err;

        if (strncmp(d, path, plen) == 0 && d[plen] == ':' && d[plen + 1] == ' ')
            d += plen + 2;
        (void)snprintf(diag, sizeof diag, "%s", d);
        apc_history_close(h);
        h = NULL;
        ret = open_read_only_start(path, &h, info, err, errsz);
        if (ret != 0) {
            char why[512];

            (void)snprintf(why, sizeof why, "%s", err);
            return apc_seterr(err, errsz, ret, "%s: %s; it cannot be read either: %s", path, diag,
                              why);
        }
        (void)snprintf(info->diagnosis, sizeof info->diagnosis, "%s", diag);
        *out = h;
        return 0;
    }
    if ((flags & APC_HISTORY_SET_ASIDE_CORRUPT) == 0 || h == NULL || ret != APC_EDB ||
        !is_corrupt_code(h->last_rc)) {
        apc_history_close(h);
        return ret;
    }
    (void)snprintf(diag, sizeof diag, "%s", err);
    if (h->db != NULL) {
        char ignored[16];

        /* Ids of the set-aside runs stay unused if the file still tells the highest one. */
        if (apc_history_max_id(h, &salvaged, ignored, sizeof ignored) != 0 || salvaged < 0)
            salvaged = 0;
        /* Closing must not checkpoint the WAL into the file: it is set aside as it is. */
        (void)sqlite3_db_config(h->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    }
    apc_history_close(h);
    h = NULL;
    ret =
        apc_history_set_aside(path, now_ms, info->aside_path, sizeof info->aside_path, err, errsz);
    if (ret != 0) {
        char why[512];

        (void)snprintf(why, sizeof why, "%s", err);
        return apc_seterr(err, errsz, ret, "%s; it could not be set aside: %s", diag, why);
    }
    info->set_aside = 1;
    {
        /* The diagnosis without the leading "<path>: " (the log line names the path itself). */
        size_t plen = strlen(path);
        const char *d = diag;

        if (strncmp(d, path, plen) == 0 && d[plen] == ':' && d[plen + 1] == ' ')
            d += plen + 2;
        (void)snprintf(info->diagnosis, sizeof info->diagnosis, "%s", d);
    }
    info->salvaged_max_id = salvaged;
    ret = open_conn(path, NULL, APC_HISTORY_READWRITE, &h, err, errsz);
    if (ret == 0)
        ret = start_steps(h, now_ms, info, err, errsz);
    if (ret != 0) {
        apc_history_close(h);
        return ret;
    }
    if (info->max_id < salvaged)
        info->max_id = salvaged;
    *out = h;
    return 0;
}

void apc_history_close(apc_history_t *h)
{
    int i;

    if (h == NULL)
        return;
    for (i = 0; i < ST_COUNT; i++)
        (void)sqlite3_finalize(h->st[i]);
    /* Every statement is finalized above, so close cannot be left pending. */
    (void)sqlite3_close(h->db);
    free(h->path);
    free(h);
}

int apc_history_set_busy_timeout(apc_history_t *h, int ms, char *err, size_t errsz)
{
    int rc;

    if (h == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_set_busy_timeout: no handle");
    rc = sqlite3_busy_timeout(h->db, ms);
    if (rc != SQLITE_OK)
        return dberr(h, rc, err, errsz, "setting the busy timeout");
    return 0;
}

struct sqlite3 *apc_history_sqlite(apc_history_t *h)
{
    return h != NULL ? h->db : NULL;
}

/* ---- writing -------------------------------------------------------------------------------- */

int apc_history_max_id(apc_history_t *h, int64_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if (h == NULL || out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_max_id: invalid argument");
    ret = stmt(h, ST_MAX_ID, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_MAX_ID].what);
    done(st);
    return ret;
}

/* Explains why START/FINISH of run `id` changed no row: it does not exist, or its status. */
static int no_change(apc_history_t *h, int64_t id, const char *doing, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    apc_run_status_t status = APC_RUN_QUEUED;
    int rc, ret;

    ret = stmt(h, ST_STATUS_OF, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        ret = apc_seterr(err, errsz, APC_ENOTFOUND, "%s: cannot %s: no run %" PRId64, h->path,
                         doing, id);
    else if (rc != SQLITE_ROW)
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_STATUS_OF].what);
    else if (apc_run_status_parse(col_text(st, 0), &status) != 0)
        ret = apc_seterr(err, errsz, APC_EDB, "%s: run %" PRId64 " has an unknown status", h->path,
                         id);
    else
        ret = apc_seterr(err, errsz, APC_ESTATE, "%s: cannot %s: it is %s", h->path, doing,
                         status_names[status]);
    done(st);
    return ret;
}

/* Checks the fields an INSERT needs; database constraints check the rest. */
static int check_insert(const apc_history_t *h, const apc_run_record_t *r, char *err, size_t errsz)
{
    if (r->id <= 0)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "%s: cannot insert run %" PRId64 ": ids start at 1", h->path, r->id);
    if (r->job == NULL || r->job[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL,
                          "%s: cannot insert run %" PRId64 ": it has no job name", h->path, r->id);
    if (apc_trigger_name(r->trigger) == NULL || apc_run_status_name(r->status) == NULL)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "%s: cannot insert run %" PRId64
                          ": trigger %d or status %d is out of range",
                          h->path, r->id, (int)r->trigger, (int)r->status);
    if (r->args_json != NULL) {
        cJSON *args = cJSON_Parse(r->args_json);
        int is_array = cJSON_IsArray(args);

        cJSON_Delete(args);
        if (!is_array)
            return apc_seterr(err, errsz, APC_EINVAL,
                              "%s: cannot insert run %" PRId64 ": args is not a JSON array",
                              h->path, r->id);
    }
    return 0;
}

static int op_insert(apc_history_t *h, const apc_run_record_t *r, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    char what[64];
    int rc, ret;

    ret = check_insert(h, r, err, errsz);
    if (ret == 0)
        ret = stmt(h, ST_INSERT, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_bind_int64(st, 1, r->id);
    rc |= bind_text(st, 2, r->job);
    rc |= bind_text(st, 3, trigger_names[r->trigger]);
    rc |= bind_text(st, 4, status_names[r->status]);
    rc |= sqlite3_bind_int(st, 5, r->attempt > 0 ? r->attempt : 1);
    rc |= bind_time(st, 6, r->queued_at);
    rc |= bind_time(st, 7, r->started_at);
    rc |= bind_time(st, 8, r->finished_at);
    rc |= r->has_exit_code ? sqlite3_bind_int64(st, 9, r->exit_code) : sqlite3_bind_null(st, 9);
    rc |= bind_text(st, 10, r->submitted_by);
    rc |= bind_positive(st, 11, r->worker);
    rc |= bind_positive(st, 12, r->pid);
    rc |= bind_text(st, 13, r->output_path);
    rc |= bind_text(st, 14, r->output_tail);
    rc |= bind_text(st, 15, r->error);
    rc |= bind_text(st, 16, r->args_json);
    rc |= bind_time(st, 17, r->scheduled_for);
    (void)snprintf(what, sizeof what, "inserting run %" PRId64, r->id);
    if (rc != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", what);
        done(st);
        return ret;
    }
    return run_stmt(h, st, what, err, errsz);
}

static int op_start(apc_history_t *h, const apc_run_record_t *r, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    char what[64];
    int rc, ret;

    ret = stmt(h, ST_START, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_bind_int64(st, 1, r->id);
    rc |= bind_time(st, 2, r->started_at);
    rc |= bind_positive(st, 3, r->worker);
    rc |= bind_positive(st, 4, r->pid);
    (void)snprintf(what, sizeof what, "starting run %" PRId64, r->id);
    if (rc != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", what);
        done(st);
        return ret;
    }
    ret = run_stmt(h, st, what, err, errsz);
    if (ret == 0 && sqlite3_changes(h->db) == 0) {
        (void)snprintf(what, sizeof what, "start run %" PRId64, r->id);
        ret = no_change(h, r->id, what, err, errsz);
    }
    return ret;
}

static int op_finish(apc_history_t *h, const apc_run_record_t *r, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    char what[80];
    int rc, ret;

    if (!apc_run_status_is_final(r->status))
        return apc_seterr(err, errsz, APC_EINVAL,
                          "%s: cannot finish run %" PRId64 " as %s: not a final status", h->path,
                          r->id, apc_run_status_name(r->status) ? status_names[r->status] : "?");
    ret = stmt(h, ST_FINISH, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_bind_int64(st, 1, r->id);
    rc |= bind_text(st, 2, status_names[r->status]);
    rc |= bind_time(st, 3, r->finished_at);
    rc |= r->has_exit_code ? sqlite3_bind_int64(st, 4, r->exit_code) : sqlite3_bind_null(st, 4);
    rc |= bind_text(st, 5, r->output_path);
    rc |= bind_text(st, 6, r->output_tail);
    rc |= bind_text(st, 7, r->error);
    (void)snprintf(what, sizeof what, "finishing run %" PRId64, r->id);
    if (rc != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", what);
        done(st);
        return ret;
    }
    ret = run_stmt(h, st, what, err, errsz);
    if (ret == 0 && sqlite3_changes(h->db) == 0) {
        (void)snprintf(what, sizeof what, "finish run %" PRId64 " as %s", r->id,
                       status_names[r->status]);
        ret = no_change(h, r->id, what, err, errsz);
    }
    return ret;
}

static int op_state(apc_history_t *h, const apc_job_state_t *s, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc, ret;

    if (s->job == NULL || s->job[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "%s: cannot set job state: no job name", h->path);
    if (s->fields == 0 || (s->fields & ~(APC_JS_LAST_FIRE | APC_JS_PAUSE)) != 0)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "%s: cannot set the state of job \"%s\": fields 0x%x name nothing known",
                          h->path, s->job, s->fields);
    ret = stmt(h, ST_STATE_SET, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = bind_text(st, 1, s->job);
    rc |= bind_time(st, 2, s->last_fire_at);
    rc |= sqlite3_bind_int(st, 3, s->paused != 0);
    rc |= bind_time(st, 4, s->paused_until);
    rc |= bind_text(st, 5, s->paused_by);
    rc |= bind_time(st, 6, s->updated_at);
    rc |= sqlite3_bind_int(st, 7, (int)s->fields);
    if (rc != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", stmts[ST_STATE_SET].what);
        done(st);
        return ret;
    }
    return run_stmt(h, st, stmts[ST_STATE_SET].what, err, errsz);
}

static int apply(apc_history_t *h, const apc_history_op_t *op, char *err, size_t errsz)
{
    switch (op->kind) {
    case APC_HOP_INSERT:
        return op_insert(h, &op->run, err, errsz);
    case APC_HOP_START:
        return op_start(h, &op->run, err, errsz);
    case APC_HOP_FINISH:
        return op_finish(h, &op->run, err, errsz);
    case APC_HOP_JOB_STATE:
        return op_state(h, &op->state, err, errsz);
    default:
        return apc_seterr(err, errsz, APC_EINVAL, "%s: unknown operation kind %d", h->path,
                          (int)op->kind);
    }
}

/*
 * 1 if an op's failure is the op's own (retrying it fails again): a bad field, an unknown or
 * finished run, a constraint (a duplicate id). A corrupt file, a full disk, I/O, a lock or
 * memory fail the transaction as a whole: no op is blamed, so the caller keeps every record.
 */
static int op_at_fault(const apc_history_t *h, int ret)
{
    if (ret != APC_EDB)
        return ret == APC_EINVAL || ret == APC_ENOTFOUND || ret == APC_ESTATE;
    return h->last_rc == SQLITE_CONSTRAINT || h->last_rc == SQLITE_MISMATCH ||
           h->last_rc == SQLITE_TOOBIG || h->last_rc == SQLITE_RANGE;
}

int apc_history_write(apc_history_t *h, const apc_history_op_t *ops, size_t n, char *err,
                      size_t errsz)
{
    size_t i;
    int ret;

    if (h == NULL || (ops == NULL && n > 0))
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_write: invalid argument");
    h->failed_op = (size_t)-1;
    if (n == 0)
        return 0;
    ret = exec_st(h, ST_BEGIN, "starting a batch", err, errsz);
    if (ret != 0)
        return ret;
    for (i = 0; i < n; i++) {
        h->last_rc = 0;
        ret = apply(h, &ops[i], err, errsz);
        if (ret != 0) {
            if (op_at_fault(h, ret))
                h->failed_op = i;
            goto fail;
        }
    }
    ret = exec_st(h, ST_COMMIT, "committing a batch", err, errsz);
    if (ret != 0)
        goto fail;
    return 0;

fail:
    rollback(h);
    return ret;
}

size_t apc_history_failed_op(const apc_history_t *h)
{
    return h != NULL ? h->failed_op : (size_t)-1;
}

int apc_history_recover(apc_history_t *h, int64_t now_ms, int64_t *count, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int ret;

    if (count != NULL)
        *count = 0;
    if (h == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_recover: no handle");
    ret = stmt(h, ST_RECOVER, &st, err, errsz);
    if (ret == 0)
        ret = exec_st(h, ST_BEGIN, "starting the recovery", err, errsz);
    if (ret != 0)
        return ret;
    ret = bind_time(st, 1, now_ms) == SQLITE_OK
              ? run_stmt(h, st, stmts[ST_RECOVER].what, err, errsz)
              : dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", stmts[ST_RECOVER].what);
    if (ret == 0) {
        changed = sqlite3_changes(h->db);
        ret = exec_st(h, ST_COMMIT, "committing the recovery", err, errsz);
    }
    if (ret != 0) {
        done(st);
        rollback(h);
        return ret;
    }
    if (count != NULL)
        *count = changed;
    return 0;
}

/* The output paths of one prune chunk, kept until its COMMIT (never report an uncommitted delete). */
typedef struct paths {
    char **v;
    size_t n, cap;
} paths_t;

static void paths_clear(paths_t *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        free(p->v[i]);
    p->n = 0;
}

static int paths_add(paths_t *p, const char *s)
{
    char *copy;

    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        char **v = realloc(p->v, ncap * sizeof *v);
        if (v == NULL)
            return APC_ENOMEM;
        p->v = v;
        p->cap = ncap;
    }
    copy = apc_strdup(s);
    if (copy == NULL)
        return APC_ENOMEM;
    p->v[p->n++] = copy;
    return 0;
}

/*
 * Deletes one chunk of prunable runs in its own transaction; *changed receives how many and
 * paths (when not NULL) the non-empty output paths of exactly those runs.
 */
static int prune_chunk(apc_history_t *h, sqlite3_stmt *st, int64_t cutoff, paths_t *paths,
                       int *changed, char *err, size_t errsz)
{
    int rc, ret;

    *changed = 0;
    ret = exec_st(h, ST_BEGIN, "starting a prune chunk", err, errsz);
    if (ret != 0)
        return ret;
    rc = sqlite3_bind_int64(st, 1, cutoff);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, APC_HISTORY_PRUNE_CHUNK);
    if (rc != SQLITE_OK)
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_PRUNE].what);
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = col_text(st, 0);

        (*changed)++;
        if (paths != NULL && path != NULL && path[0] != '\0' && paths_add(paths, path) != 0)
            ret = apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory while pruning", h->path);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_PRUNE].what);
    done(st);
    if (ret == 0)
        ret = exec_st(h, ST_COMMIT, "committing a prune chunk", err, errsz);
    if (ret != 0) {
        *changed = 0;
        if (paths != NULL)
            paths_clear(paths);
        rollback(h);
    }
    return ret;
}

int apc_history_prune_files(apc_history_t *h, int64_t older_than_ms, int64_t *deleted,
                            apc_history_pruned_cb cb, void *ctx, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    paths_t paths = {0};
    int64_t total = 0;
    int changed = 0, ret;
    size_t i;

    if (deleted != NULL)
        *deleted = 0;
    if (h == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_prune: no handle");
    ret = stmt(h, ST_PRUNE, &st, err, errsz);
    /* A chunk that deletes fewer rows than it may is the last one. */
    while (ret == 0) {
        ret = prune_chunk(h, st, older_than_ms, cb != NULL ? &paths : NULL, &changed, err, errsz);
        total += changed;
        /* The chunk is committed: its runs' files may go now. */
        for (i = 0; i < paths.n; i++)
            cb(paths.v[i], ctx);
        paths_clear(&paths);
        if (changed < APC_HISTORY_PRUNE_CHUNK)
            break;
    }
    free(paths.v);
    if (deleted != NULL)
        *deleted = total;
    return ret;
}

int apc_history_prune(apc_history_t *h, int64_t older_than_ms, int64_t *deleted, char *err,
                      size_t errsz)
{
    return apc_history_prune_files(h, older_than_ms, deleted, NULL, NULL, err, errsz);
}

/* ---- reading -------------------------------------------------------------------------------- */

int apc_history_query(apc_history_t *h, const apc_history_filter_t *filter, apc_history_run_cb cb,
                      void *ctx, char *err, size_t errsz)
{
    static const apc_history_filter_t all = {0};
    apc_buf_t statuses = {0};
    sqlite3_stmt *st = NULL;
    int which, i, rc, ret;

    if (filter == NULL)
        filter = &all;
    if (h == NULL || cb == NULL || filter->limit < 0 || filter->before_id < 0 ||
        (filter->status_mask >> APC_RUN_STATUS_COUNT) != 0)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_query: invalid argument");
    which = filter->job != NULL ? ST_QUERY_JOB : ST_QUERY_ALL;
    ret = stmt(h, which, &st, err, errsz);
    if (ret != 0)
        return ret;
    /* The status set travels as one text ",failed,timed_out," so one statement serves all sets. */
    if (filter->status_mask != 0) {
        apc_buf_puts(&statuses, ",");
        for (i = 0; i < (int)APC_RUN_STATUS_COUNT; i++)
            if (filter->status_mask & (1u << i))
                apc_buf_printf(&statuses, "%s,", status_names[i]);
        if (apc_buf_failed(&statuses)) {
            ret = apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory", h->path);
            goto cleanup;
        }
    }
    rc = bind_text(st, 1, filter->job);
    rc |= sqlite3_bind_int64(st, 2, filter->before_id > 0 ? filter->before_id : INT64_MAX);
    rc |= bind_time(st, 3, filter->since_ms != 0 ? filter->since_ms : APC_TIME_NONE);
    rc |= bind_text(st, 4, statuses.data);
    rc |= sqlite3_bind_int(st, 5, filter->limit > 0 ? filter->limit : -1);
    if (rc != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", stmts[which].what);
        done(st);
        goto cleanup;
    }
    ret = each_run(h, st, which, cb, ctx, err, errsz);

cleanup:
    apc_buf_free(&statuses);
    return ret;
}

/* Callback of apc_history_get_run(): keeps a copy of the one row. */
static int keep_copy(const apc_run_record_t *run, void *ctx)
{
    apc_run_record_t **out = ctx;

    *out = apc_run_record_dup(run);
    return *out != NULL ? 1 : APC_ENOMEM;
}

int apc_history_get_run(apc_history_t *h, int64_t id, apc_run_record_t **out, char *err,
                        size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if (out != NULL)
        *out = NULL;
    if (h == NULL || out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_get_run: invalid argument");
    ret = stmt(h, ST_GET, &st, err, errsz);
    if (ret != 0)
        return ret;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        ret = dberr(h, sqlite3_errcode(h->db), err, errsz, "%s", stmts[ST_GET].what);
        done(st);
        return ret;
    }
    ret = each_run(h, st, ST_GET, keep_copy, out, err, errsz);
    if (ret == APC_ENOMEM)
        return apc_seterr(err, errsz, ret, "%s: out of memory reading run %" PRId64, h->path, id);
    if (ret == 0 && *out == NULL)
        ret = apc_seterr(err, errsz, APC_ENOTFOUND, "%s: no run %" PRId64, h->path, id);
    return ret;
}

int apc_history_last_runs(apc_history_t *h, apc_history_run_cb cb, void *ctx, char *err,
                          size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if (h == NULL || cb == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_last_runs: invalid argument");
    ret = stmt(h, ST_LAST_RUNS, &st, err, errsz);
    if (ret != 0)
        return ret;
    return each_run(h, st, ST_LAST_RUNS, cb, ctx, err, errsz);
}

/* Returns a single-block deep copy of s (free() it), or NULL on OOM. */
static apc_job_state_t *state_dup(const apc_job_state_t *s)
{
    size_t job_len = s->job ? strlen(s->job) + 1 : 0;
    size_t by_len = s->paused_by ? strlen(s->paused_by) + 1 : 0;
    apc_job_state_t *c = malloc(sizeof *c + job_len + by_len);
    char *p;

    if (c == NULL)
        return NULL;
    *c = *s;
    p = (char *)(c + 1);
    if (s->job != NULL) {
        memcpy(p, s->job, job_len);
        c->job = p;
        p += job_len;
    }
    if (s->paused_by != NULL) {
        memcpy(p, s->paused_by, by_len);
        c->paused_by = p;
    }
    return c;
}

int apc_history_job_state_get(apc_history_t *h, const char *job, apc_job_state_t **out, char *err,
                              size_t errsz)
{
    sqlite3_stmt *st = NULL;
    apc_job_state_t s;
    int rc, ret;

    if (out != NULL)
        *out = NULL;
    if (h == NULL || job == NULL || out == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_job_state_get: invalid argument");
    ret = stmt(h, ST_STATE_GET, &st, err, errsz);
    if (ret != 0)
        return ret;
    rc = bind_text(st, 1, job);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_state(st, &s);
        *out = state_dup(&s);
        if (*out == NULL)
            ret = apc_seterr(err, errsz, APC_ENOMEM, "%s: out of memory", h->path);
    } else if (rc == SQLITE_DONE) {
        ret = apc_seterr(err, errsz, APC_ENOTFOUND, "%s: job \"%s\" has no saved state", h->path,
                         job);
    } else {
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_STATE_GET].what);
    }
    done(st);
    return ret;
}

int apc_history_job_state_list(apc_history_t *h, apc_history_state_cb cb, void *ctx, char *err,
                               size_t errsz)
{
    sqlite3_stmt *st = NULL;
    apc_job_state_t s;
    int rc, ret;

    if (h == NULL || cb == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_history_job_state_list: invalid argument");
    ret = stmt(h, ST_STATE_LIST, &st, err, errsz);
    if (ret != 0)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_state(st, &s);
        ret = cb(&s, ctx);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = dberr(h, rc, err, errsz, "%s", stmts[ST_STATE_LIST].what);
    done(st);
    return ret > 0 ? 0 : ret;
}

/* ---- copies --------------------------------------------------------------------------------- */

apc_run_record_t *apc_run_record_dup(const apc_run_record_t *r)
{
    const char *src[6];
    size_t len[6], total, i;
    apc_run_record_t *c;
    char *p;

    if (r == NULL)
        return NULL;
    src[0] = r->job;
    src[1] = r->submitted_by;
    src[2] = r->output_path;
    src[3] = r->output_tail;
    src[4] = r->error;
    src[5] = r->args_json;
    total = sizeof *c;
    for (i = 0; i < 6; i++) {
        len[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    c = malloc(total);
    if (c == NULL)
        return NULL;
    *c = *r;
    p = (char *)(c + 1);
    for (i = 0; i < 6; i++) {
        const char *copy = NULL;

        if (src[i] != NULL) {
            memcpy(p, src[i], len[i]);
            copy = p;
            p += len[i];
        }
        switch (i) {
        case 0:
            c->job = copy;
            break;
        case 1:
            c->submitted_by = copy;
            break;
        case 2:
            c->output_path = copy;
            break;
        case 3:
            c->output_tail = copy;
            break;
        case 4:
            c->error = copy;
            break;
        default:
            c->args_json = copy;
            break;
        }
    }
    return c;
}

void apc_run_record_free(apc_run_record_t *r)
{
    free(r);
}

void apc_job_state_free(apc_job_state_t *s)
{
    free(s);
}
