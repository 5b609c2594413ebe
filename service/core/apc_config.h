/*
 * apc_config.h - the service configuration: loading and validating
 * apcsvc.json into plain structs, and the diagnostics (errors and warnings
 * with file:line:col and JSON path) that explain a rejected file.
 *
 * Why this way: the file is parsed with cJSON, then walked once against a
 * fixed list of keys per object (unknown keys are errors, with a spelling
 * suggestion). Every problem is collected, not just the first, so one
 * `apcctl validate` shows them all. cJSON keeps no positions, so line:col are
 * looked up only when there is something to report (apc_jsonpos.h): a valid
 * config pays nothing for them. All strings of a loaded config live in one
 * arena owned by the config, and each job is a fixed-size record (see
 * APC_JOB_CONFIG_MAX_SIZE) so that 100,000 jobs load in well under a second
 * and stay small in memory.
 *
 * The format is documented in README.md (section Configuration) and config/apcsvc.schema.json.
 *
 * Thread safety: parsing and loading keep no global state of our own and may
 * run on any thread, but cJSON records the last syntax error in a static
 * variable, so two threads should not parse a broken file at the same moment
 * (the service parses on the engine thread only; apcctl is its own process).
 * A loaded apc_config_t is immutable: any number of threads may read it
 * until apc_config_free().
 */
#ifndef APC_CONFIG_H
#define APC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apc_error.h"
#include "apc_policy.h"
#include "apc_schedule.h"
#include "apc_str.h"
#include "apc_tz.h"

/* Limits, documented in README.md (section Configuration). */
#define APC_CONFIG_MAX_BYTES (32u * 1024u * 1024u) /* larger files are refused */
#define APC_CONFIG_MAX_JOBS 250000u                /* the scale target is 100,000 */
#define APC_CONFIG_MAX_ZONES 256u                  /* distinct "timezone" values */
#define APC_JOB_NAME_MAX 64u                       /* job and service names */
#define APC_CONFIG_MAX_WORKERS 64
#define APC_CONFIG_MAX_RETRIES 100

/* sizeof(apc_job_config_t) stays at or below this (a test checks it). */
#define APC_JOB_CONFIG_MAX_SIZE 160u

/* ---- Diagnostics ------------------------------------------------------------------------- */

typedef enum apc_diag_severity {
    APC_DIAG_ERROR = 0, /* the config is rejected */
    APC_DIAG_WARNING    /* reported, never fails a load */
} apc_diag_severity_t;

/*
 * One finding. file, path and message share one allocation owned by the
 * list; path is "" for the document as a whole (and for file errors).
 * line and col are 1-based (col counts characters), or both 0 when the
 * finding has no position (a file that cannot be opened, a lint warning).
 */
typedef struct apc_diag {
    apc_diag_severity_t severity;
    unsigned line;
    unsigned col;
    char *file;    /* the display name given to the loader, may be "" */
    char *path;    /* JSON path: "jobs[3].schedule", "service.workers", "" */
    char *message; /* "minute field \"61\" is out of range 0-59" */
} apc_diag_t;

/*
 * A list of findings, in file order for one load. Zero-initialise it
 * (apc_diags_t d = {0};) and release it with apc_diags_free(). If memory runs
 * out while adding, the finding is dropped and `failed` is set, so a caller
 * can still tell that the list is incomplete.
 */
typedef struct apc_diags {
    apc_diag_t *items;
    size_t count;
    size_t cap;
    size_t errors;   /* number of APC_DIAG_ERROR items */
    size_t warnings; /* number of APC_DIAG_WARNING items */
    int failed;      /* 1 if a finding was lost for lack of memory */
} apc_diags_t;

/*
 * Appends a finding (file and path may be NULL for ""). Returns 0 or
 * APC_ENOMEM (the list is then marked failed); APC_EINVAL if d or fmt is NULL.
 */
int apc_diags_add(apc_diags_t *d, apc_diag_severity_t severity, const char *file, unsigned line,
                  unsigned col, const char *path, const char *fmt, ...) APC_PRINTF(7, 8);

/* Releases every finding and leaves the list empty and reusable. Accepts NULL. */
void apc_diags_free(apc_diags_t *d);

/*
 * Appends the one-line form of a finding to out, without a newline:
 *   apcsvc.json:12:18: jobs[3].schedule: minute field "61" is out of range 0-59
 *   apcsvc.json:12:18: warning: jobs[3].schedule: 2026-03-08: 02:30 does not exist ...
 *   apcsvc.json: cannot open: No such file or directory
 * The file part is left out when file is "", ":line:col" when line is 0,
 * the path part when path is "". Check apc_buf_failed(out) for memory.
 */
void apc_diag_format(const apc_diag_t *diag, apc_buf_t *out);

/* Appends every finding of d to out, one line each, each ending in '\n'. */
void apc_diags_format(const apc_diags_t *d, apc_buf_t *out);

/* ---- The configuration ------------------------------------------------------------------- */

/* A job runs either a command line or one of these built-in actions. */
typedef enum apc_builtin {
    APC_BUILTIN_NONE = 0, /* the job runs `command` */
    APC_BUILTIN_NOOP,     /* succeeds at once (tests, heartbeats) */
    APC_BUILTIN_SLEEP     /* waits sleep_ms, then succeeds (demos, tests) */
} apc_builtin_t;

/* How a "timezone" value is evaluated. */
typedef enum apc_zone_kind {
    APC_ZONE_LOCAL = 0, /* the machine's zone: the runtime supplies the apc_tz_t */
    APC_ZONE_UTC,       /* "UTC" */
    APC_ZONE_RULES      /* a POSIX TZ rule such as "CET-1CEST,M3.5.0,M10.5.0/3" */
} apc_zone_kind_t;

/*
 * One distinct time zone used by the jobs. zones[0] is always "local" and
 * zones[1] always "UTC"; rules zones follow in order of first use. For UTC
 * and rules zones `tz` is ready to use; for the local zone it is not set
 * (use apc_config_job_tz() with the runtime's local zone).
 */
typedef struct apc_config_zone {
    apc_zone_kind_t kind;
    char *name; /* as written in the config */
    apc_tz_rules_t rules;
    apc_tz_t tz;
} apc_config_zone_t;

/*
 * One job, a fixed-size record (no per-job allocation besides its strings
 * and string arrays, which live in the config's arena). Every string is
 * owned by the config: read it, never free or change it.
 *
 * Durations are in milliseconds; APC_TIME_NONE (apc_time.h) means "none"
 * for timeout_ms and missed_within_ms, as apc_policy.h expects.
 */
typedef struct apc_job_config {
    char *name;          /* 1-64 of [A-Za-z0-9._-], unique ignoring case */
    char **argv;         /* NULL-terminated, argv[0] non-empty; NULL for a builtin */
    char **env;          /* NULL-terminated "NAME=value" strings; NULL when none */
    char *cwd;           /* resolved; NULL only when there is no base_dir and none given */
    char *schedule_expr; /* as written; NULL = manual-only job (apcctl run) */
    int64_t timeout_ms;  /* APC_TIME_NONE = no timeout */
    int64_t retry_backoff_ms;
    int64_t missed_within_ms; /* APC_TIME_NONE = catch up however late */
    int64_t jitter_ms;
    int64_t sleep_ms;        /* APC_BUILTIN_SLEEP only */
    uint64_t output_limit;   /* bytes of output kept per run */
    apc_schedule_t schedule; /* valid when schedule_expr != NULL */
    uint16_t zone;           /* index into apc_config_t.zones */
    uint8_t retries;         /* 0-100 */
    uint8_t builtin;         /* an apc_builtin_t */
    uint8_t overlap;         /* an apc_overlap_t */
    uint8_t missed;          /* an apc_missed_t */
    bool enabled;
    bool allow_args; /* apcctl run may append arguments to argv */
} apc_job_config_t;

/* The "service" block, with defaults applied and paths resolved. */
typedef struct apc_service_config {
    char *name;           /* SCM service and pipe name, default "apcsvc" */
    char *history;        /* SQLite history database */
    char *output_dir;     /* per-run output files */
    char *log_dir;        /* service log files */
    char **control_allow; /* NULL-terminated account/group names; never NULL */
    int64_t shutdown_grace_ms;
    int workers;        /* 0-64; 0 = one per CPU (the runtime clamps to 1-64) */
    int retention_days; /* 0 = keep history forever */
} apc_service_config_t;

typedef struct apc_config {
    apc_service_config_t service;
    apc_job_config_t *jobs; /* in file order */
    size_t njobs;
    apc_config_zone_t *zones;
    size_t nzones;
    char *source;                 /* the display name it was loaded under */
    char *base_dir;               /* relative paths were resolved against this; "" if none */
    struct apc_config_priv *priv; /* the arena and the name index: private */
} apc_config_t;

/*
 * Parses and validates text[0..len) (UTF-8, optionally with a byte order
 * mark; it need not be NUL-terminated). display_name names the file in
 * findings (NULL = ""); relative paths are resolved against base_dir (NULL
 * or "" = leave them relative).
 *
 * On success returns 0 and a config in *out (free it with
 * apc_config_free()); warnings may have been added to diags. On failure
 * *out is NULL, every problem found is in diags (which may be NULL if the
 * caller only wants the code), and the result is APC_ESYNTAX (not valid JSON
 * or not UTF-8), APC_ETOOBIG (over APC_CONFIG_MAX_BYTES), APC_EINVAL
 * (valid JSON, invalid config) or APC_ENOMEM.
 */
int apc_config_parse(const char *text, size_t len, const char *display_name, const char *base_dir,
                     apc_config_t **out, apc_diags_t *diags);

/*
 * Reads the file at path and parses it with display_name = path and
 * base_dir = the folder part of path ("." for a bare file name). Returns as
 * apc_config_parse(), or APC_ENOTFOUND / APC_EIO when the file cannot be
 * opened or read (the finding names the file and the system's error text).
 * The path is passed to fopen(), so on Windows it is in the ANSI code page;
 * the service passes an absolute path.
 */
int apc_config_load(const char *path, apc_config_t **out, apc_diags_t *diags);

/* Returns the job called name (ignoring ASCII case), or NULL. Constant time on average. */
const apc_job_config_t *apc_config_find_job(const apc_config_t *cfg, const char *name);

/*
 * Returns the zone a job's schedule is evaluated in: local_tz for
 * "local" jobs (NULL if local_tz is NULL), otherwise the config's own zone.
 */
const apc_tz_t *apc_config_job_tz(const apc_config_t *cfg, const apc_job_config_t *job,
                                  const apc_tz_t *local_tz);

/*
 * Adds DST warnings (apc_schedule_dst_lint over the 12 months after now_ms)
 * for every scheduled job whose zone has daylight saving time: "local" jobs
 * are checked against local_tz (skipped when it is NULL), rules zones against
 * their own rules. Each line becomes one warning with path
 * "jobs[i].schedule" and no line:col. Returns 0, APC_EINVAL for NULL cfg or
 * diags, APC_ENOMEM, or a zone's error.
 */
int apc_config_lint(const apc_config_t *cfg, const apc_tz_t *local_tz, int64_t now_ms,
                    apc_diags_t *diags);

/* Releases a config and everything it owns. Accepts NULL. */
void apc_config_free(apc_config_t *cfg);

/*
 * Heap bytes held by cfg (total), and how many of them are the characters
 * and terminators of its strings (strings); total - strings is the per-job
 * overhead budgeted in README.md (section Configuration) (records, pointer arrays, the index).
 */
void apc_config_memory(const apc_config_t *cfg, size_t *total, size_t *strings);

/* ---- Paths -------------------------------------------------------------------------------- */

/*
 * Returns 1 if path is absolute in the Windows or POSIX sense: "C:\x",
 * "C:/x", "\\server\share", "\x" or "/x" ('/' and '\' are both separators).
 */
int apc_config_path_is_absolute(const char *path);

/*
 * Resolves path against base_dir: an absolute path (or any path when base_dir
 * is NULL or "") is copied unchanged; otherwise leading "./" or ".\" parts
 * are dropped and the rest is joined to base_dir with the separator base_dir
 * already uses (its last one; '\' for a bare "C:"; otherwise '/' natively
 * and '\' on Windows). "." resolves to base_dir itself. Returns 0 and a
 * malloc'd string in *out, or APC_EINVAL with the reason in err for "" or a
 * drive-relative path like "C:x", or APC_ENOMEM.
 */
int apc_config_path_resolve(const char *base_dir, const char *path, char **out, char *err,
                            size_t errsz);

#endif /* APC_CONFIG_H */
