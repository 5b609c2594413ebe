/*
 * apc_protocol.h - the control protocol spoken over \\.\pipe\<service>:
 * request and response structs, their JSON encoders and strict decoders.
 *
 * Why one codec for both sides: the service (pipe thread) decodes requests
 * and encodes responses, apcctl does the reverse; sharing this file means
 * the two can never disagree about a field name, a type or a limit. Every
 * message is one JSON object, at most APC_PROTO_MAX_MESSAGE bytes, with
 * "v": 1. Decoders trust nothing from the peer: the size is checked before
 * parsing; every key, type, range, length and UTF-8 sequence is checked;
 * integers must be exact (no fractions, |n| <= 2^53).
 *
 * Requests are strict: an unknown key is an error. Responses are checked
 * for every key this version knows, but keys a newer service adds are
 * ignored, so clients keep working across additions.
 *
 * Memory: decoded structs borrow their strings from a JSON tree they own
 * (owner_); they stay valid until the matching *_free call. Structs filled
 * by the caller for encoding own nothing and are never freed by us.
 *
 * Thread safety: no shared state; a struct belongs to the thread using it
 * (the pipe thread in the service, the main thread in apcctl).
 */
#ifndef APC_PROTOCOL_H
#define APC_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "apc_str.h"

#define APC_PROTO_VERSION 1
#define APC_PROTO_MAX_MESSAGE 65536 /* bytes per message, checked before parsing */
#define APC_PROTO_NONE INT64_MIN    /* "absent" for every int64 field; same as APC_TIME_NONE */
#define APC_PROTO_JOB_NAME_MAX 64
#define APC_PROTO_MAX_ARGS 256       /* submit.args items */
#define APC_PROTO_MAX_ARG_BYTES 8192 /* bytes per submit.args item */
#define APC_PROTO_HISTORY_DEFAULT_LIMIT 20
#define APC_PROTO_HISTORY_MAX_LIMIT 1000
#define APC_PROTO_LOGS_DEFAULT_TAIL 16384                 /* logs.tail_bytes when absent */
#define APC_PROTO_LOGS_MAX_TAIL 1048576                   /* the service may send less: see logs */
#define APC_PROTO_MAX_DELAY_MS INT64_C(315360000000)      /* 3650 days: in_ms, for_ms */
#define APC_PROTO_MAX_INSTANT_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define APC_PROTO_MAX_ID INT64_C(9007199254740991)        /* 2^53 - 1 */

typedef enum apc_proto_op {
    APC_OP_STATUS = 0,
    APC_OP_LIST,
    APC_OP_SUBMIT,
    APC_OP_CANCEL,
    APC_OP_HISTORY,
    APC_OP_SHOW,
    APC_OP_LOGS,
    APC_OP_RELOAD,
    APC_OP_PAUSE,
    APC_OP_RESUME,
    APC_OP_COUNT_
} apc_proto_op_t;

/* Returns the wire name of an op ("submit"), or NULL for an invalid value. */
const char *apc_proto_op_name(apc_proto_op_t op);

/* Sets *out from a wire name; returns 0 or APC_ENOTFOUND. */
int apc_proto_op_parse(const char *name, apc_proto_op_t *out);

/*
 * Checks a job name: 1-64 bytes of [A-Za-z0-9._-]. Returns 0, or APC_EINVAL
 * with the message `job name "x y" must be 1-64 characters of A-Z a-z 0-9 . _ -`.
 */
int apc_proto_job_name_check(const char *name, char *err, size_t errsz);

/*
 * One request. Fields an op does not use must keep the values
 * apc_proto_request_init gave them (NULL, 0, APC_PROTO_NONE); the encoder
 * refuses a request that sets a field its op does not take.
 *
 *   op        fields
 *   status    -
 *   list      -
 *   reload    -
 *   submit    job (required), args/nargs, at_ms | in_ms (exclusive), wait
 *   cancel    id
 *   history   job, since_ms, status, limit (1-1000, default 20), before_id
 *   show      id
 *   logs      id, tail_bytes (1..APC_PROTO_LOGS_MAX_TAIL, default 16384)
 *   pause     job, for_ms (NONE = until resumed)
 *   resume    job
 */
typedef struct apc_proto_request {
    apc_proto_op_t op;
    const char *job;
    const char **args; /* extra arguments appended to the job's command */
    size_t nargs;
    int64_t at_ms;      /* Unix ms UTC */
    int64_t in_ms;      /* delay from when the service receives it */
    int wait;           /* 1: the service streams run events until the run ends */
    int64_t id;         /* run id, 0 when unused */
    int64_t since_ms;   /* history: runs queued at or after this instant */
    const char *status; /* history: only runs with this status (a runs.status value) */
    int limit;
    int64_t before_id; /* history: only runs with id < before_id (paging) */
    int64_t tail_bytes;
    int64_t for_ms;
    void *owner_; /* private: what a decoded request borrows from */
} apc_proto_request_t;

/* Sets every field to "unused" for op (limit = 20 for history). */
void apc_proto_request_init(apc_proto_request_t *req, apc_proto_op_t op);

/*
 * Validates req with the same rules as the decoder and appends its JSON to
 * out. Returns 0, APC_EINVAL (message in err, e.g. `history.limit: must be
 * between 1 and 1000`) or APC_ENOMEM. Encoding a decoded request gives an
 * equal request when decoded again.
 */
int apc_proto_request_encode(const apc_proto_request_t *req, apc_buf_t *out, char *err,
                             size_t errsz);

/*
 * Decodes len bytes (need not be NUL-terminated) into *out. Returns 0;
 * APC_ETOOBIG if len > APC_PROTO_MAX_MESSAGE (checked first); APC_EPROTO
 * for malformed JSON, a wrong "v" (message exactly `unsupported protocol
 * version`), an unknown op or key, a wrong type (`submit.job: expected a
 * string`) or invalid UTF-8; APC_EINVAL for a value out of range or against
 * the rules (`history.limit: must be between 1 and 1000`); APC_ENOMEM.
 * On failure *out is empty and needs no free (freeing it is harmless).
 */
int apc_proto_request_decode(const char *msg, size_t len, apc_proto_request_t *out, char *err,
                             size_t errsz);

/* Releases what a decoded request owns and re-inits it. Accepts NULL and encoder-only structs
   (owner_ NULL), for which it only re-inits. */
void apc_proto_request_free(apc_proto_request_t *req);

/* Returns 1 if the two requests carry the same op and field values, else 0. */
int apc_proto_request_equal(const apc_proto_request_t *a, const apc_proto_request_t *b);

/* ---- Responses ---------------------------------------------------------- */

/*
 * One row of the runs table. Instants are Unix ms UTC; APC_PROTO_NONE and
 * NULL strings travel as JSON null. exit_code is only meaningful when
 * has_exit_code is 1 (it is a 32-bit Windows code, -2^31 .. 2^32-1).
 */
typedef struct apc_proto_run {
    int64_t id;
    const char *job;
    const char *trigger; /* schedule | manual | retry | startup | catchup */
    const char *status;  /* queued | running | succeeded | failed | timed_out | cancelled |
                            interrupted | skipped */
    int64_t attempt;
    int64_t queued_at, started_at, finished_at;
    int has_exit_code;
    int64_t exit_code;
    const char *submitted_by;
    int64_t worker, pid;
    const char *output_path, *output_tail, *error;
} apc_proto_run_t;

/* One job in a list response. */
typedef struct apc_proto_job_info {
    const char *name;
    const char *schedule; /* the expression as configured */
    int enabled;
    int paused;
    int64_t paused_until;     /* NONE: not paused, or paused until resumed */
    int64_t next_run;         /* NONE: nothing scheduled */
    int64_t running;          /* runs in progress */
    const char *last_status;  /* NULL: never ran */
    int64_t last_finished_at; /* NONE: never finished */
} apc_proto_job_info_t;

/* The status response. */
typedef struct apc_proto_status {
    const char *version; /* "0.1.0" */
    int64_t pid;
    int64_t started_at, now;
    int64_t workers, workers_busy;
    int64_t jobs, queued, running;
} apc_proto_status_t;

typedef enum apc_proto_resp_kind {
    APC_RESP_ERROR = 0, /* {"ok":false,"error":{"code","message"}}   any op */
    APC_RESP_ACK,       /* {"ok":true[,"message"]}        cancel reload pause resume */
    APC_RESP_STATUS,    /* {"ok":true,"status":{...}}                       status */
    APC_RESP_LIST,      /* {"ok":true,"jobs":[...]}                          list */
    APC_RESP_SUBMITTED, /* {"ok":true,"id","job","due_at","wait"}           submit */
    APC_RESP_RUN,       /* {"ok":true[,"event"],"run":{...}}   show; submit+wait */
    APC_RESP_RUNS,      /* {"ok":true,"runs":[...],"more"}                 history */
    APC_RESP_LOGS       /* {"ok":true,"id","data","truncated"}                logs */
} apc_proto_resp_kind_t;

typedef struct apc_proto_response {
    apc_proto_resp_kind_t kind;
    /* ERROR: an APC_E* code (APC_EPROTO when the peer's name is unknown), its name and text */
    int error_code;
    const char *error_name; /* decoded only; the encoder derives it from error_code */
    const char *error_message;
    /* ACK: optional text (NULL: none) */
    const char *message;
    apc_proto_status_t status;        /* STATUS */
    const apc_proto_job_info_t *jobs; /* LIST */
    size_t njobs;
    /* SUBMITTED */
    int64_t id; /* also LOGS */
    const char *job;
    int64_t due_at;
    int wait;
    /* RUN: event is NULL for show, "queued" | "started" | "finished" while waiting */
    const char *event;
    apc_proto_run_t run;
    /* RUNS: newest first; more = 1 when older runs exist (ask with before_id = last id) */
    const apc_proto_run_t *runs;
    size_t nruns;
    int more;
    /* LOGS: the tail of the run's output as UTF-8 text */
    const char *data;
    int truncated;
    void *owner_; /* private */
} apc_proto_response_t;

/* Zeroes a response and sets every int64 "absent" field to APC_PROTO_NONE. */
void apc_proto_response_init(apc_proto_response_t *resp, apc_proto_resp_kind_t kind);

/*
 * Appends the JSON of a response to out. Text fields that are not valid
 * UTF-8 (process output often is not) are sent with U+FFFD in place of
 * each bad byte. The message is kept within APC_PROTO_MAX_MESSAGE: a RUNS
 * response carries only the newest runs that fit and sets "more": true;
 * a LOGS response drops the oldest bytes of data and sets "truncated": true.
 * Returns 0, APC_EINVAL for a struct that breaks the rules (message in
 * err), APC_ETOOBIG if it cannot be made to fit, or APC_ENOMEM.
 */
int apc_proto_response_encode(const apc_proto_response_t *resp, apc_buf_t *out, char *err,
                              size_t errsz);

/* Shorthand for an ERROR response: code is an APC_E* value, message the text. */
int apc_proto_encode_error(int code, const char *message, apc_buf_t *out);

/*
 * Decodes a response to a request of op `op` (which fixes the kinds it may
 * be: ERROR always; status -> STATUS; list -> LIST; submit -> SUBMITTED or
 * RUN; show -> RUN; history -> RUNS; logs -> LOGS; the others -> ACK).
 * Return codes and checks as for apc_proto_request_decode; unknown keys are
 * ignored. Free with apc_proto_response_free.
 */
int apc_proto_response_decode(const char *msg, size_t len, apc_proto_op_t op,
                              apc_proto_response_t *out, char *err, size_t errsz);

/* Releases what a decoded response owns. Accepts NULL. */
void apc_proto_response_free(apc_proto_response_t *resp);

/* Returns 1 if two responses carry the same values (error_name is not compared). */
int apc_proto_response_equal(const apc_proto_response_t *a, const apc_proto_response_t *b);

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int apc_proto_utf8_valid(const char *s, size_t len);

#endif /* APC_PROTOCOL_H */
