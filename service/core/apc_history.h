/*
 * apc_history.h - the run history store: one SQLite database that records every
 * run (queued, running, finished), the per-job state needed for catch-up and
 * pausing, and views that make it readable with the sqlite3 shell.
 *
 * Why this shape: the engine must never wait on the disk, so it names runs
 * itself (apc_history_max_id() once at start, then it counts up) and hands
 * records to the history thread, which writes whatever has queued up as ONE
 * batch in ONE transaction (group commit). A batch lands completely or not at
 * all, so the caller can keep it and retry. Readers (apcctl, the pipe thread)
 * open their own read-only connection; WAL lets them read while the writer
 * holds a transaction open.
 *
 * The run state machine the rows follow (see README.md (section The run history database)):
 *
 *     queued ──start──▶ running ──finish──▶ succeeded | failed | timed_out | cancelled
 *       │
 *       └──finish──▶ cancelled | skipped        (never started)
 *
 *     queued | running ──apc_history_recover()──▶ interrupted   (service stopped)
 *
 * A run may also be inserted directly in a final state (e.g. skipped by the
 * overlap policy).
 *
 * Threads: an apc_history_t is one SQLite connection and belongs to the thread
 * that opened it (the history thread for the writer; any one thread for a
 * read-only handle). Different handles may be used from different threads and
 * processes at the same time.
 *
 * Strings: every const char * handed to a callback is valid only during that
 * callback; copy what you keep (apc_run_record_dup() copies a whole record).
 */
#ifndef APC_HISTORY_H
#define APC_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "apc_time.h" /* APC_TIME_NONE: an unknown instant, stored as SQL NULL */

/* The schema version (PRAGMA user_version) this build creates and understands. */
#define APC_HISTORY_SCHEMA_VERSION 1

/* apc_history_prune() deletes in transactions of at most this many rows. */
#define APC_HISTORY_PRUNE_CHUNK 500

/* Where a run stands. The names ("timed_out") are what the database stores. */
typedef enum apc_run_status {
    APC_RUN_QUEUED = 0,
    APC_RUN_RUNNING,
    APC_RUN_SUCCEEDED,
    APC_RUN_FAILED,
    APC_RUN_TIMED_OUT,
    APC_RUN_CANCELLED,
    APC_RUN_INTERRUPTED,
    APC_RUN_SKIPPED,
    APC_RUN_STATUS_COUNT
} apc_run_status_t;

/* Why a run was created. */
typedef enum apc_trigger {
    APC_TRIGGER_SCHEDULE = 0, /* its schedule fell due */
    APC_TRIGGER_MANUAL,       /* apcctl run/submit */
    APC_TRIGGER_RETRY,        /* an earlier attempt failed and the retry policy asked again */
    APC_TRIGGER_STARTUP,      /* an @startup schedule */
    APC_TRIGGER_CATCHUP,      /* a fire time missed while the service was down */
    APC_TRIGGER_COUNT
} apc_trigger_t;

/* Returns the stored name ("timed_out"), or NULL for a value out of range. */
const char *apc_run_status_name(apc_run_status_t status);

/* Parses a stored name into *out. Returns 0, or APC_EINVAL if the name is unknown or NULL. */
int apc_run_status_parse(const char *name, apc_run_status_t *out);

/* Returns 1 for the statuses a run ends in (everything except queued and running). */
int apc_run_status_is_final(apc_run_status_t status);

/* Returns the stored name ("schedule"), or NULL for a value out of range. */
const char *apc_trigger_name(apc_trigger_t trigger);

/* Parses a stored name into *out. Returns 0, or APC_EINVAL if the name is unknown or NULL. */
int apc_trigger_parse(const char *name, apc_trigger_t *out);

/*
 * One row of the runs table. Times are Unix milliseconds UTC, APC_TIME_NONE
 * when unknown (stored as NULL). worker <= 0 and pid <= 0 mean "none" (NULL);
 * NULL strings are stored as NULL. attempt <= 0 is stored as 1, so a zeroed
 * record is a valid first attempt. exit_code is only meaningful when
 * has_exit_code is set; it is 64-bit so that Windows codes such as
 * 0xC0000005 (3221225477) stay readable. args_json is NULL or a JSON array.
 */
typedef struct apc_run_record {
    int64_t id;
    const char *job;
    apc_trigger_t trigger;
    apc_run_status_t status;
    int attempt;
    int64_t queued_at, started_at, finished_at, scheduled_for;
    int has_exit_code;
    int64_t exit_code;
    const char *submitted_by;
    int worker;
    int64_t pid;
    const char *output_path, *output_tail, *error, *args_json;
} apc_run_record_t;

/* Which job_state fields an APC_HOP_JOB_STATE operation sets; the others keep their value. */
#define APC_JS_LAST_FIRE 0x1u /* last_fire_at */
#define APC_JS_PAUSE 0x2u     /* paused, paused_until, paused_by together */

/*
 * One row of the job_state table. In a write operation, `fields` (APC_JS_*)
 * says what to set; a job without a row behaves as not paused and never fired.
 * updated_at is always set (the caller passes its clock; the core has none).
 */
typedef struct apc_job_state {
    const char *job;
    unsigned fields;
    int64_t last_fire_at; /* the last scheduled fire time handled, for catch-up */
    int paused;
    int64_t paused_until; /* APC_TIME_NONE: paused until resumed */
    const char *paused_by;
    int64_t updated_at;
} apc_job_state_t;

typedef enum apc_hop_kind {
    APC_HOP_INSERT = 0, /* insert `run` with its id, in any status */
    APC_HOP_START,      /* run.id: queued -> running; sets started_at, worker, pid */
    APC_HOP_FINISH,     /* run.id: queued|running -> run.status (final); sets finished_at,
                           exit code, output_path, output_tail, error */
    APC_HOP_JOB_STATE   /* upsert `state` (the fields it names) */
} apc_hop_kind_t;

typedef struct apc_history_op {
    apc_hop_kind_t kind;
    apc_run_record_t run;
    apc_job_state_t state;
} apc_history_op_t;

typedef struct apc_history apc_history_t;

/* Open modes. */
#define APC_HISTORY_READWRITE 0 /* the service's writer: creates and migrates the schema */
#define APC_HISTORY_READONLY 1  /* apcctl and other readers: never writes, never migrates */

/*
 * Opens (and in READWRITE mode creates or migrates) the database at path.
 * READWRITE sets WAL, synchronous=FULL, foreign keys on and a 5 s busy
 * timeout, then brings the schema to APC_HISTORY_SCHEMA_VERSION in one
 * transaction. READONLY only checks the version. Either mode refuses a
 * database newer than this build knows, a file that is not a database, and
 * (READONLY) a file without our schema. On failure returns APC_EDB (or
 * APC_ENOMEM / APC_EINVAL), *out is NULL and err says why, keeping SQLite's
 * code and text. The handle belongs to the calling thread.
 */
int apc_history_open(const char *path, int mode, apc_history_t **out, char *err, size_t errsz);

/* apc_history_open_writer() flag: set a corrupt file aside and start a new database. */
#define APC_HISTORY_SET_ASIDE_CORRUPT 0x1u
/* apc_history_open_writer() flag: a file SQLite can only open read-only (read-only file or
   filesystem) is opened READONLY, without recovery, and info->read_only says so. */
#define APC_HISTORY_ALLOW_READ_ONLY 0x2u

/* What apc_history_open_writer() did; filled on success. */
typedef struct apc_history_start {
    int64_t recovered; /* runs apc_history_recover() turned into interrupted */
    /* The highest run id: of the database, or (after a set-aside) at least the highest id
       still readable from the corrupt file, so the engine never reuses an id (and the
       output file name <id>.log) of a set-aside run. Not stored in the new file. */
    int64_t max_id;
    int set_aside;           /* 1: the file was corrupt and was set aside */
    char aside_path[1024];   /* its new name ("-wal" / "-shm" of the set-aside copy beside it) */
    char diagnosis[512];     /* SQLite's diagnosis, e.g. "file is not a database (...) while" */
    int64_t salvaged_max_id; /* highest id read from the corrupt file, 0 if none was readable */
    /* 1 (APC_HISTORY_ALLOW_READ_ONLY): the handle is READONLY, nothing was recovered
       (recovered is 0), diagnosis says why it could not be written. */
    int read_only;
} apc_history_start_t;

/*
 * The service's start: opens path READWRITE (creating or migrating it), recovers
 * unfinished runs at now_ms and reads the highest id, into *info. With
 * APC_HISTORY_SET_ASIDE_CORRUPT in flags, when any of that fails because the
 * FILE is unusable (SQLITE_CORRUPT, SQLITE_NOTADB; never for busy, locked,
 * read-only, cannot-open or out-of-memory, nor for a valid database of another
 * schema), the connection is closed without a checkpoint, the file and its
 * -wal / -shm are set aside with apc_history_set_aside(), and a new database is
 * created at path and started the same way; info->set_aside says so. Returns
 * 0, or the error of the step that failed (APC_EDB ...; a failed set-aside adds
 * "; it could not be set aside: ..." to the diagnosis). With
 * APC_HISTORY_ALLOW_READ_ONLY, a file SQLite opens only read-only is opened READONLY
 * instead (immutable=1 on a read-only filesystem, only when no -wal file exists), its highest
 * id read, and info->read_only set: the caller must write nothing with that handle and run
 * the recovery later by opening again. Writer thread only.
 */
int apc_history_open_writer(const char *path, int64_t now_ms, unsigned flags, apc_history_t **out,
                            apc_history_start_t *info, char *err, size_t errsz);

/*
 * Renames path, and its path-wal / path-shm if present, to
 * "<path>.corrupt-<UTC yyyymmddThhmmssZ of now_ms>" (+ "-wal" / "-shm"), or with
 * "-2", "-3", ... after the Z when any of those names exists: an existing file
 * is never overwritten. The contents are not touched. On failure nothing stays
 * renamed. The database must be closed (Windows cannot rename an open file).
 * Stores the new name of path in aside. Returns 0, APC_EIO (err names the file,
 * the target and the C library's reason), APC_EEXISTS or APC_EINVAL.
 */
int apc_history_set_aside(const char *path, int64_t now_ms, char *aside, size_t asidesz, char *err,
                          size_t errsz);

/* Closes the connection and frees the handle. Accepts NULL. */
void apc_history_close(apc_history_t *h);

/*
 * Sets how long a statement waits for another connection's lock before it
 * fails with SQLITE_BUSY (open sets 5000 ms). For tools and tests.
 * Returns 0 or APC_EDB.
 */
int apc_history_set_busy_timeout(apc_history_t *h, int ms, char *err, size_t errsz);

/* Stores the highest run id in *out (0 for an empty table). Returns 0 or APC_EDB. */
int apc_history_max_id(apc_history_t *h, int64_t *out, char *err, size_t errsz);

/*
 * Writes ops[0..n) in ONE transaction (BEGIN IMMEDIATE ... COMMIT): on success
 * every op is committed (synchronous=FULL: durable) and 0 is returned. On any
 * failure the transaction is rolled back, NOTHING of the batch is stored, and
 * the error is returned: the caller still owns the batch and should keep it to
 * retry later. apc_history_failed_op() then tells whether one op was at fault
 * (a duplicate id, a run that does not exist or is already finished, an
 * invalid field: retrying the same batch fails again, so drop or fix that op)
 * or the transaction itself failed (busy, disk full, I/O, a corrupt page, a
 * read-only handle: retry as is; no op is blamed, so no record is dropped).
 * Errors: APC_EDB (SQLite), APC_EINVAL (bad op), APC_ENOTFOUND (START or
 * FINISH of an unknown id), APC_ESTATE (START of a run that is not queued,
 * FINISH of a run already final). n == 0 is a no-op. Writer thread only.
 */
int apc_history_write(apc_history_t *h, const apc_history_op_t *ops, size_t n, char *err,
                      size_t errsz);

/* After a failed apc_history_write(): the index of the op at fault, or (size_t)-1 if none. */
size_t apc_history_failed_op(const apc_history_t *h);

/*
 * Start-up recovery, called once before the engine runs: every run left queued
 * or running by a stop or crash becomes interrupted with finished_at = now_ms
 * and error "service stopped while the run was running" (or "... was
 * queued"). *count (may be NULL) receives how many. One transaction. Callers
 * that want to re-queue such runs list them first with apc_history_query().
 * Returns 0 or APC_EDB.
 */
int apc_history_recover(apc_history_t *h, int64_t now_ms, int64_t *count, char *err, size_t errsz);

/*
 * Retention: deletes runs in a final status whose finished_at < older_than_ms
 * (never queued or running ones), APC_HISTORY_PRUNE_CHUNK rows per
 * transaction so that no transaction holds the write lock long. *deleted (may
 * be NULL) receives the total. On error the chunks already committed stay
 * deleted. Returns 0 or APC_EDB.
 */
int apc_history_prune(apc_history_t *h, int64_t older_than_ms, int64_t *deleted, char *err,
                      size_t errsz);

/* Called once per deleted run that has an output path, after its deletion committed. */
typedef void (*apc_history_pruned_cb)(const char *output_path, void *ctx);

/*
 * apc_history_prune() that also reports, through cb (may be NULL), the output
 * path of exactly the runs it deleted, each chunk after its COMMIT (so a caller
 * deleting the files never removes one whose row still exists). Same returns.
 */
int apc_history_prune_files(apc_history_t *h, int64_t older_than_ms, int64_t *deleted,
                            apc_history_pruned_cb cb, void *ctx, char *err, size_t errsz);

/*
 * Called once per row. Return 0 to go on, 1 to stop early (the query then
 * returns 0), or a negative APC_E* code to abort (the query returns it).
 * Strings in the row are valid only during the call.
 */
typedef int (*apc_history_run_cb)(const apc_run_record_t *run, void *ctx);
typedef int (*apc_history_state_cb)(const apc_job_state_t *state, void *ctx);

/*
 * A query over runs. A zeroed filter selects everything, newest first.
 * status_mask: 0 for any status, else a set of (1u << APC_RUN_*) bits.
 * since_ms: only runs queued at or after it; 0 or APC_TIME_NONE for no bound.
 * before_id: only runs with id < before_id (paging: pass the last id seen); 0 for none.
 * limit: at most this many rows; 0 for no limit.
 */
typedef struct apc_history_filter {
    const char *job;
    unsigned status_mask;
    int64_t since_ms;
    int64_t before_id;
    int limit;
} apc_history_filter_t;

/*
 * Calls cb for each run matching filter (NULL: everything), newest (highest id)
 * first. Returns 0, APC_EDB, APC_EINVAL, or the callback's negative code.
 */
int apc_history_query(apc_history_t *h, const apc_history_filter_t *filter, apc_history_run_cb cb,
                      void *ctx, char *err, size_t errsz);

/*
 * Stores in *out a malloc'd copy of run id (one block: free it with free() or
 * apc_run_record_free()). Returns 0, APC_ENOTFOUND (err names the id), APC_EDB
 * or APC_ENOMEM.
 */
int apc_history_get_run(apc_history_t *h, int64_t id, apc_run_record_t **out, char *err,
                        size_t errsz);

/*
 * Calls cb once per job that has runs, in job name order, with that job's
 * newest run (what `apcctl list` shows as last status). Same return rules as
 * apc_history_query().
 */
int apc_history_last_runs(apc_history_t *h, apc_history_run_cb cb, void *ctx, char *err,
                          size_t errsz);

/*
 * Stores in *out a malloc'd copy of job's state (one block: free() it); its
 * `fields` is APC_JS_LAST_FIRE | APC_JS_PAUSE. Returns 0, APC_ENOTFOUND if the
 * job has no state row, APC_EDB or APC_ENOMEM.
 */
int apc_history_job_state_get(apc_history_t *h, const char *job, apc_job_state_t **out, char *err,
                              size_t errsz);

/* Calls cb for every job_state row in job name order. Same return rules as apc_history_query(). */
int apc_history_job_state_list(apc_history_t *h, apc_history_state_cb cb, void *ctx, char *err,
                               size_t errsz);

/* Returns a malloc'd single-block deep copy of r (free() it), or NULL if r is NULL or on OOM. */
apc_run_record_t *apc_run_record_dup(const apc_run_record_t *r);

/* Frees a record from apc_run_record_dup() or apc_history_get_run(). Accepts NULL. */
void apc_run_record_free(apc_run_record_t *r);

/* Frees a state from apc_history_job_state_get(). Accepts NULL. */
void apc_job_state_free(apc_job_state_t *s);

/*
 * The underlying sqlite3 connection, for tests and diagnostics only (read
 * PRAGMAs, run a SELECT). Do not change state through it.
 */
struct sqlite3 *apc_history_sqlite(apc_history_t *h);

#endif /* APC_HISTORY_H */
