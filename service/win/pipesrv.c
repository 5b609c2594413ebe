/*
 * pipesrv.c - the control pipe server: one alertable thread serving \\.\pipe\<service name>.
 *
 * Why this way (DESIGN.md section 1): like every long-lived thread of ApcSched, the pipe thread
 * owns its state (listening instances, connections, its read-only history connection) and
 * everything reaches it as an APC or a signalled event of its one alertable wait:
 *
 *     WaitForMultipleObjectsEx({connect events of the listening instances}, alertable = TRUE,
 *                              timeout = the earliest idle deadline)
 *       - a connect event:      a client connected; the instance becomes a connection and a
 *                               fresh instance starts listening
 *       - WAIT_IO_COMPLETION:   ReadFileEx / WriteFileEx completion routines ran, the engine's
 *                               answer (req->done) ran, or the stop APC ran
 *       - WAIT_TIMEOUT:         a client stayed silent past its idle deadline: drop it
 *
 * No other thread ever touches a connection, so there are no locks, and a silent client only
 * costs its own deadline: it never blocks anyone else. The idle timeout uses the wait's own
 * timeout rather than a timer or a thread.
 *
 * A connection's life (all on the pipe thread):
 *
 *     listening ──client connects──▶ READING ◀───────────── written ──────────────┐
 *                                     │  │                                          │
 *                  message (≤ 64 KiB) │  └─ silent past deadline / hang-up ─▶ CLOSING
 *                                     ▼                                           │
 *                      decode ─┬─ history/show/logs: answered here ─▶ WRITING ───┤
 *                              ├─ other ops: apc_engine_post ─▶ BUSY ─done─▶ WRITING
 *                              └─ malformed / oversize / unidentifiable ─▶ WRITING,
 *                                  then CLOSING once the error was written
 *
 *     CLOSING: the pending read or write is cancelled (CancelIoEx) and the connection is freed
 *     only when no completion routine and no engine answer can still arrive for it, because
 *     both carry a pointer to it.
 *
 * Threads: apc_pipesrv_start / join / free on the owning thread, apc_pipesrv_stop from any
 * thread; every static function whose comment says "pipe thread" runs only there.
 */
#include "pipesrv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_history.h"
#include "apc_protocol.h"
#include "apc_str.h"
#include "pipesec.h"
#include "win_util.h"

#define PIPE_PREFIX "\\\\.\\pipe\\"
#define NAME_MAX_CHARS 200

typedef enum conn_state {
    CONN_READING = 0, /* a ReadFileEx is pending: waiting for the client's request */
    CONN_BUSY,        /* the request is with the engine; no I/O pending */
    CONN_WRITING,     /* a WriteFileEx of the response is pending */
    CONN_CLOSING      /* being torn down; freed once nothing can refer to it any more */
} conn_state_t;

typedef struct conn {
    OVERLAPPED ov; /* first member: completion routines get &ov and cast it back */
    struct apc_pipesrv *srv;
    HANDLE pipe;
    struct conn *prev, *next;
    conn_state_t state;
    int io_pending;        /* a completion routine for ov will still run */
    int engine_pending;    /* req was posted; its done has not run yet */
    int close_after_write; /* the response is an error that ends the connection */
    int oversize;          /* ReadFileEx itself said ERROR_MORE_DATA */
    ULONGLONG deadline;    /* GetTickCount64 value after which a silent client is dropped */
    ULONG pid;             /* the client's process id (0 if unknown) */
    char *user;            /* "DOMAIN\user", known after the first message */
    apc_engine_req_t req;
    apc_buf_t out; /* the response being written */
    char in[APC_PROTO_MAX_MESSAGE];
} conn_t;

typedef struct listener {
    HANDLE pipe; /* an instance waiting for a client, or NULL */
    HANDLE event;
    OVERLAPPED ov;
    int pending;   /* ConnectNamedPipe is outstanding (the event will be signalled) */
    int connected; /* the client was there already: we signalled the event ourselves */
} listener_t;

struct apc_pipesrv {
    char *path;
    wchar_t *wpath;
    apc_pipesec_t sec;
    SECURITY_ATTRIBUTES sa;
    apc_engine_t *engine;
    apc_pipesrv_post_fn post;
    char *history_path;
    DWORD idle_ms;
    void (*log)(void *ctx, int level, const char *msg);
    void *log_ctx;

    HANDLE thread;
    HANDLE first; /* the FIRST_PIPE_INSTANCE instance, handed to listener 0 by the thread */
    int ended;    /* the thread has been joined */

    /* Owned by the pipe thread. */
    listener_t lis[APC_PIPESRV_LISTENERS];
    conn_t *conns;
    size_t nconns;
    int stopping;
    apc_history_t *hist;
};

static void logf_(apc_pipesrv_t *srv, int level, const char *fmt, ...) APC_PRINTF(3, 4);

/* Formats one log line and hands it to the sink; a line that cannot be formatted is dropped. */
static void logf_(apc_pipesrv_t *srv, int level, const char *fmt, ...)
{
    apc_buf_t b = {0};
    va_list ap;

    if (srv->log == NULL)
        return;
    va_start(ap, fmt);
    apc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (!apc_buf_failed(&b) && b.data != NULL)
        srv->log(srv->log_ctx, level, b.data);
    apc_buf_free(&b);
}

/* Creates one pipe instance with the server's security descriptor. Any thread. */
static HANDLE create_instance(apc_pipesrv_t *srv, int first)
{
    DWORD mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;

    if (first)
        mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    return CreateNamedPipeW(
        srv->wpath, mode,
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, APC_PIPESRV_BUFFER, APC_PIPESRV_BUFFER, 0, &srv->sa);
}

/* ---- Connections (pipe thread) ---------------------------------------------------------- */

static void arm_listeners(apc_pipesrv_t *srv);
static void start_read(conn_t *c);

/* Frees c once nothing can still refer to it: no completion routine, no engine answer.
   Pipe thread. */
static void maybe_free(conn_t *c)
{
    apc_pipesrv_t *srv = c->srv;

    if (c->state != CONN_CLOSING || c->io_pending || c->engine_pending)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nconns--;
    /* Closing (without DisconnectNamedPipe) lets the client still read a response we wrote
       just before, such as the error that explains why we hang up. */
    apc_win_close(c->pipe);
    apc_proto_request_free(&c->req.in);
    apc_buf_free(&c->req.response);
    apc_buf_free(&c->out);
    free(c->user);
    free(c);
    arm_listeners(srv); /* below the connection cap again: accept the next client */
}

/* Starts tearing c down (see the life cycle in the header comment). Pipe thread. */
static void close_conn(conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    /* ERROR_NOT_FOUND means the completion is already on its way; either way it will run. */
    if (c->io_pending && !CancelIoEx(c->pipe, &c->ov) && GetLastError() != ERROR_NOT_FOUND)
        logf_(c->srv, APC_ENGINE_LOG_WARNING, "control pipe: CancelIoEx failed (error %lu)",
              (unsigned long)GetLastError());
    maybe_free(c);
}

/* WriteFileEx completion: the response is in the pipe. Pipe thread (APC). */
static VOID CALLBACK on_write(DWORD code, DWORD n, LPOVERLAPPED ov)
{
    conn_t *c = (conn_t *)ov;

    (void)n;
    c->io_pending = 0;
    if (c->state == CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (code != ERROR_SUCCESS || c->close_after_write) {
        close_conn(c);
        return;
    }
    apc_buf_reset(&c->out);
    start_read(c); /* the client may send another request on the same connection */
}

/* Writes c->out as one message, then reads again or closes. Pipe thread. */
static void start_write(conn_t *c)
{
    if (apc_buf_failed(&c->out) || c->out.data == NULL) {
        close_conn(c); /* out of memory while building the answer: nothing to send */
        return;
    }
    memset(&c->ov, 0, sizeof(c->ov));
    c->state = CONN_WRITING;
    c->deadline = GetTickCount64() + c->srv->idle_ms; /* a client that never reads is dropped */
    if (!WriteFileEx(c->pipe, c->out.data, (DWORD)c->out.len, &c->ov, on_write)) {
        DWORD code = GetLastError();
        if (code != ERROR_BROKEN_PIPE && code != ERROR_NO_DATA)
            logf_(c->srv, APC_ENGINE_LOG_WARNING, "control pipe: WriteFileEx failed (error %lu)",
                  (unsigned long)code);
        close_conn(c);
        return;
    }
    c->io_pending = 1;
}

/* Answers with an error response; close = 1 ends the connection once it was written. */
static void reply_error(conn_t *c, int code, const char *message, int close)
{
    apc_buf_reset(&c->out);
    if (apc_proto_encode_error(code, message, &c->out) != 0)
        apc_buf_free(&c->out); /* start_write then closes without an answer */
    c->close_after_write = close;
    start_write(c);
}

/* The engine's answer: runs on the pipe thread as the APC the engine queued to it. */
static void on_engine_done(apc_engine_req_t *req)
{
    conn_t *c = req->ctx;

    c->engine_pending = 0;
    apc_proto_request_free(&req->in);
    if (c->state == CONN_CLOSING) {
        apc_buf_free(&req->response);
        maybe_free(c);
        return;
    }
    if (req->response.data == NULL || req->response.len == 0 || apc_buf_failed(&req->response)) {
        apc_buf_free(&req->response);
        reply_error(c, req->result != 0 ? req->result : APC_ESYS, "the service gave no answer", 0);
        return;
    }
    apc_buf_free(&c->out);
    c->out = req->response; /* hand the buffer over instead of copying up to 64 KiB */
    memset(&req->response, 0, sizeof(req->response));
    c->close_after_write = 0;
    start_write(c);
}

/* ---- history / show / logs: answered by the pipe thread itself ---------------------------- */

/* Opens the read-only history connection on first use (the engine creates the database
   before the pipe server starts; retried on every request until it works). Pipe thread. */
static int ensure_history(apc_pipesrv_t *srv, char *err, size_t errsz)
{
    if (srv->hist != NULL)
        return 0;
    if (srv->history_path == NULL)
        return apc_seterr(err, errsz, APC_ESTATE, "the run history is not available");
    return apc_history_open(srv->history_path, APC_HISTORY_READONLY, &srv->hist, err, errsz);
}

/* Copies the fields of a stored run into the protocol's run (borrowing its strings). */
static void to_proto_run(const apc_run_record_t *r, apc_proto_run_t *p)
{
    memset(p, 0, sizeof(*p));
    p->id = r->id;
    p->job = r->job;
    p->trigger = apc_trigger_name(r->trigger);
    p->status = apc_run_status_name(r->status);
    p->attempt = r->attempt > 0 ? r->attempt : 1;
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

typedef struct collect {
    apc_run_record_t **runs;
    size_t n, cap;
} collect_t;

/* apc_history_query callback: keeps a copy of each row (its strings die with the call). */
static int collect_run(const apc_run_record_t *run, void *ctx)
{
    collect_t *col = ctx;
    apc_run_record_t *copy;

    if (col->n == col->cap) {
        size_t cap = col->cap ? col->cap * 2 : 32;
        apc_run_record_t **grown = realloc(col->runs, cap * sizeof(*grown));
        if (grown == NULL)
            return APC_ENOMEM;
        col->runs = grown;
        col->cap = cap;
    }
    copy = apc_run_record_dup(run);
    if (copy == NULL)
        return APC_ENOMEM;
    col->runs[col->n++] = copy;
    return 0;
}

/* op history: the newest runs matching the filter, one more than asked to know "more". */
static int answer_history(apc_pipesrv_t *srv, const apc_proto_request_t *in, apc_buf_t *out,
                          char *err, size_t errsz)
{
    apc_history_filter_t f;
    collect_t col = {0};
    apc_proto_run_t *runs = NULL;
    apc_proto_response_t resp;
    size_t i;
    int rc;

    memset(&f, 0, sizeof(f));
    f.job = in->job;
    f.since_ms = in->since_ms == APC_PROTO_NONE ? 0 : in->since_ms;
    f.before_id = in->before_id == APC_PROTO_NONE ? 0 : in->before_id;
    f.limit = in->limit + 1;
    if (in->status != NULL) {
        apc_run_status_t st;
        if (apc_run_status_parse(in->status, &st) != 0) {
            rc = apc_seterr(err, errsz, APC_EINVAL, "history.status: unknown status \"%s\"",
                            in->status);
            goto cleanup;
        }
        f.status_mask = 1u << (unsigned)st;
    }
    if ((rc = apc_history_query(srv->hist, &f, collect_run, &col, err, errsz)) != 0) {
        if (rc == APC_ENOMEM)
            apc_seterr(err, errsz, rc, "out of memory");
        goto cleanup;
    }
    apc_proto_response_init(&resp, APC_RESP_RUNS);
    resp.more = col.n > (size_t)in->limit;
    resp.nruns = resp.more ? (size_t)in->limit : col.n;
    if (resp.nruns > 0) {
        runs = calloc(resp.nruns, sizeof(*runs));
        if (runs == NULL) {
            rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
            goto cleanup;
        }
        for (i = 0; i < resp.nruns; i++)
            to_proto_run(col.runs[i], &runs[i]);
    }
    resp.runs = runs;
    rc = apc_proto_response_encode(&resp, out, err, errsz);
cleanup:
    free(runs);
    for (i = 0; i < col.n; i++)
        apc_run_record_free(col.runs[i]);
    free(col.runs);
    return rc;
}

/* The client's text for a run that does not exist: the store's own message names the
   database file, which is none of the client's business. */
static int not_found(int rc, int64_t id, char *err, size_t errsz)
{
    if (rc == APC_ENOTFOUND)
        return apc_seterr(err, errsz, rc, "run %lld not found", (long long)id);
    return rc;
}

/* op show: one run. */
static int answer_show(apc_pipesrv_t *srv, const apc_proto_request_t *in, apc_buf_t *out, char *err,
                       size_t errsz)
{
    apc_run_record_t *run = NULL;
    apc_proto_response_t resp;
    int rc;

    if ((rc = apc_history_get_run(srv->hist, in->id, &run, err, errsz)) != 0)
        return not_found(rc, in->id, err, errsz);
    apc_proto_response_init(&resp, APC_RESP_RUN);
    to_proto_run(run, &resp.run);
    rc = apc_proto_response_encode(&resp, out, err, errsz);
    apc_run_record_free(run);
    return rc;
}

/* op logs: the tail of a run's output file. */
static int answer_logs(apc_pipesrv_t *srv, const apc_proto_request_t *in, apc_buf_t *out, char *err,
                       size_t errsz)
{
    apc_run_record_t *run = NULL;
    apc_buf_t data = {0};
    apc_proto_response_t resp;
    int truncated = 0, rc;

    if ((rc = apc_history_get_run(srv->hist, in->id, &run, err, errsz)) != 0) {
        rc = not_found(rc, in->id, err, errsz);
        goto cleanup;
    }
    if (run->output_path == NULL || run->output_path[0] == '\0') {
        rc =
            apc_seterr(err, errsz, APC_ENOTFOUND, "run %lld has no output file", (long long)in->id);
        goto cleanup;
    }
    if ((rc = apc_win_read_tail(run->output_path, in->tail_bytes, &data, &truncated, err, errsz)) !=
        0)
        goto cleanup;
    apc_proto_response_init(&resp, APC_RESP_LOGS);
    resp.id = in->id;
    resp.data = data.data;
    resp.truncated = truncated;
    rc = apc_proto_response_encode(&resp, out, err, errsz);
cleanup:
    apc_buf_free(&data);
    apc_run_record_free(run);
    return rc;
}

/* Answers history, show or logs into c->out. Pipe thread. */
static void answer_locally(conn_t *c)
{
    apc_pipesrv_t *srv = c->srv;
    const apc_proto_request_t *in = &c->req.in;
    char err[512] = "";
    int rc;

    apc_buf_reset(&c->out);
    rc = ensure_history(srv, err, sizeof(err));
    if (rc == 0) {
        if (in->op == APC_OP_HISTORY)
            rc = answer_history(srv, in, &c->out, err, sizeof(err));
        else if (in->op == APC_OP_SHOW)
            rc = answer_show(srv, in, &c->out, err, sizeof(err));
        else
            rc = answer_logs(srv, in, &c->out, err, sizeof(err));
    }
    apc_proto_request_free(&c->req.in);
    if (rc != 0) {
        if (rc == APC_EDB)
            logf_(srv, APC_ENGINE_LOG_WARNING, "control pipe: %s", err);
        reply_error(c, rc, err[0] != '\0' ? err : apc_strerror(rc), 0);
        return;
    }
    c->close_after_write = 0;
    start_write(c);
}

/* ---- Requests (pipe thread) ------------------------------------------------------------ */

/* Learns who the client is, once per connection (needs a message read first). */
static int identify(conn_t *c, char *err, size_t errsz)
{
    int rc;

    if (c->user != NULL)
        return 0;
    rc = apc_pipesec_client_name(c->pipe, &c->user, err, errsz);
    if (rc != 0) {
        logf_(c->srv, APC_ENGINE_LOG_WARNING,
              "control pipe: client pid %lu refused: cannot identify it: %s", (unsigned long)c->pid,
              err);
        return rc;
    }
    logf_(c->srv, APC_ENGINE_LOG_DEBUG, "control pipe: client pid %lu is %s", (unsigned long)c->pid,
          c->user);
    return 0;
}

/* One complete message of n bytes is in c->in. Pipe thread. */
static void handle_message(conn_t *c, DWORD n)
{
    apc_pipesrv_t *srv = c->srv;
    char err[512] = "";
    apc_proto_op_t op;
    int rc;

    if (identify(c, err, sizeof(err)) != 0) {
        reply_error(c, APC_EDENIED, "the caller's account could not be determined", 1);
        return;
    }
    memset(&c->req, 0, sizeof(c->req));
    rc = apc_proto_request_decode(c->in, n, &c->req.in, err, sizeof(err));
    if (rc != 0) {
        logf_(srv, APC_ENGINE_LOG_INFO, "control pipe: bad request from %s (pid %lu): %s", c->user,
              (unsigned long)c->pid, err);
        reply_error(c, rc, err, 1); /* a peer that speaks garbage gets no second chance */
        return;
    }
    op = c->req.in.op;
    /* Everything that changes the service is logged with who asked (an audit trail); reads
       only at debug level. */
    logf_(srv,
          op == APC_OP_STATUS || op == APC_OP_LIST || op == APC_OP_HISTORY || op == APC_OP_SHOW ||
                  op == APC_OP_LOGS
              ? APC_ENGINE_LOG_DEBUG
              : APC_ENGINE_LOG_INFO,
          "control pipe: %s%s%s by %s (pid %lu)", apc_proto_op_name(op),
          c->req.in.job != NULL ? " job " : "", c->req.in.job != NULL ? c->req.in.job : "", c->user,
          (unsigned long)c->pid);
    if (op == APC_OP_HISTORY || op == APC_OP_SHOW || op == APC_OP_LOGS) {
        answer_locally(c);
        return;
    }
    c->req.submitted_by = c->user;
    c->req.reply_thread = srv->thread;
    c->req.done = on_engine_done;
    c->req.ctx = c;
    c->state = CONN_BUSY;
    c->engine_pending = 1;
    rc = srv->post(srv->engine, &c->req);
    if (rc != 0) {
        c->engine_pending = 0; /* done will not run */
        apc_proto_request_free(&c->req.in);
        reply_error(c, rc == APC_ESTATE ? APC_EBUSY : rc,
                    rc == APC_ESTATE ? "the service is stopping" : "the engine refused the request",
                    0);
    }
}

/* ReadFileEx completion: a whole message, an oversize one, or the end. Pipe thread (APC). */
static VOID CALLBACK on_read(DWORD code, DWORD n, LPOVERLAPPED ov)
{
    conn_t *c = (conn_t *)ov;

    c->io_pending = 0;
    if (c->state == CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (code == ERROR_MORE_DATA || c->oversize) {
        /* The message did not fit in APC_PROTO_MAX_MESSAGE bytes. Its rest is never read: the
           answer explains, then we hang up. */
        logf_(c->srv, APC_ENGINE_LOG_INFO, "control pipe: oversize message from pid %lu",
              (unsigned long)c->pid);
        reply_error(c, APC_ETOOBIG, "message larger than 65536 bytes", 1);
        return;
    }
    if (code != ERROR_SUCCESS) {
        logf_(c->srv, APC_ENGINE_LOG_DEBUG, "control pipe: read ended (error %lu)",
              (unsigned long)code);
        close_conn(c); /* ERROR_BROKEN_PIPE: the client hung up */
        return;
    }
    handle_message(c, n);
}

/* Waits for the client's next request. Pipe thread. */
static void start_read(conn_t *c)
{
    memset(&c->ov, 0, sizeof(c->ov));
    c->state = CONN_READING;
    c->oversize = 0;
    c->deadline = GetTickCount64() + c->srv->idle_ms;
    if (!ReadFileEx(c->pipe, c->in, (DWORD)sizeof(c->in), &c->ov, on_read)) {
        DWORD code = GetLastError();
        if (code == ERROR_MORE_DATA) {
            /* The message is longer than our buffer and it was already there. STATUS_BUFFER_
               OVERFLOW is an NT warning, not an error: the read completes with the first
               65536 bytes, ReadFileEx reports FALSE / ERROR_MORE_DATA (it only returns TRUE for
               success and pending), and the completion routine IS still queued, as for any
               completed overlapped I/O (Wine does the same). So wait for on_read, which sees
               ERROR_MORE_DATA; the flag covers a completion that reports it as success. */
            c->oversize = 1;
            c->io_pending = 1;
            return;
        }
        logf_(c->srv,
              code == ERROR_BROKEN_PIPE || code == ERROR_PIPE_NOT_CONNECTED
                  ? APC_ENGINE_LOG_DEBUG
                  : APC_ENGINE_LOG_WARNING,
              "control pipe: ReadFileEx failed (error %lu)", (unsigned long)code);
        c->state = CONN_CLOSING;
        maybe_free(c);
        return;
    }
    c->io_pending = 1;
}

/* ---- Listening instances (pipe thread) --------------------------------------------------- */

/* Closes a listener's instance, cancelling and waiting out its ConnectNamedPipe. */
static void close_listener(listener_t *l)
{
    DWORD n;

    if (l->pending) {
        /* The wait below is short: after CancelIoEx the operation completes at once (or had
           completed). We must wait, because the kernel writes into l->ov until then. */
        if (CancelIoEx(l->pipe, &l->ov) || GetLastError() == ERROR_NOT_FOUND)
            (void)GetOverlappedResult(l->pipe, &l->ov, &n, TRUE);
        l->pending = 0;
    }
    l->pipe = apc_win_close(l->pipe);
}

/* Puts listener l into ConnectNamedPipe, creating an instance if it has none. */
static void arm(apc_pipesrv_t *srv, listener_t *l)
{
    DWORD code;

    if (l->pipe == NULL) {
        HANDLE h = create_instance(srv, 0);
        if (h == INVALID_HANDLE_VALUE) {
            logf_(srv, APC_ENGINE_LOG_WARNING,
                  "control pipe: CreateNamedPipeW failed (error %lu); fewer clients can wait",
                  (unsigned long)GetLastError());
            return; /* retried when a connection ends */
        }
        l->pipe = h;
    }
    memset(&l->ov, 0, sizeof(l->ov));
    l->ov.hEvent = l->event;
    l->connected = 0;
    if (!ResetEvent(l->event)) {
        logf_(srv, APC_ENGINE_LOG_WARNING, "control pipe: ResetEvent failed (error %lu)",
              (unsigned long)GetLastError());
        close_listener(l);
        return;
    }
    if (ConnectNamedPipe(l->pipe, &l->ov)) {
        code = ERROR_PIPE_CONNECTED; /* overlapped calls normally return FALSE; be safe */
    } else {
        code = GetLastError();
    }
    if (code == ERROR_IO_PENDING) {
        l->pending = 1;
        return;
    }
    if (code == ERROR_PIPE_CONNECTED) {
        /* A client connected between CreateNamedPipe and ConnectNamedPipe: nothing pends and
           the event is not signalled by the system, so signal it ourselves. */
        l->pending = 1;
        l->connected = 1;
        if (!SetEvent(l->event)) {
            logf_(srv, APC_ENGINE_LOG_WARNING, "control pipe: SetEvent failed (error %lu)",
                  (unsigned long)GetLastError());
            l->pending = 0;
            close_listener(l);
        }
        return;
    }
    /* ERROR_NO_DATA: the client came and went already. Anything else: a broken instance. */
    logf_(srv, code == ERROR_NO_DATA ? APC_ENGINE_LOG_DEBUG : APC_ENGINE_LOG_WARNING,
          "control pipe: ConnectNamedPipe failed (error %lu)", (unsigned long)code);
    l->pipe = apc_win_close(l->pipe);
}

/*
 * Keeps listeners waiting for a client while connections plus waiting listeners stay within
 * the connection cap. A waiting listener counts as a connection already: a client can connect
 * to it at any moment, and accept_client takes every connected instance (the client has its
 * handle by then; refusing it would only break its pipe). Counting connections alone let the
 * listeners armed just below the cap connect APC_PIPESRV_LISTENERS - 1 clients beyond it (the
 * flood test measured 259 connected with a cap of 256). Pipe thread.
 */
static void arm_listeners(apc_pipesrv_t *srv)
{
    size_t i, waiting = 0;

    for (i = 0; i < APC_PIPESRV_LISTENERS; i++)
        waiting += srv->lis[i].pending ? 1u : 0u;
    for (i = 0; i < APC_PIPESRV_LISTENERS; i++) {
        if (srv->stopping || srv->nconns + waiting >= APC_PIPESRV_MAX_CONNECTIONS)
            return;
        if (!srv->lis[i].pending) {
            arm(srv, &srv->lis[i]);
            waiting += srv->lis[i].pending ? 1u : 0u;
        }
    }
}

/* Listener l's event fired: its instance has a client (or the connect failed). */
static void accept_client(apc_pipesrv_t *srv, listener_t *l)
{
    DWORD n;
    conn_t *c;

    l->pending = 0;
    /* When ConnectNamedPipe said ERROR_PIPE_CONNECTED no I/O was started, so there is no
       result to ask for (Wine even leaves the OVERLAPPED marked pending). */
    if (!l->connected && !GetOverlappedResult(l->pipe, &l->ov, &n, FALSE)) {
        logf_(srv, APC_ENGINE_LOG_DEBUG, "control pipe: connect failed (error %lu)",
              (unsigned long)GetLastError());
        l->pipe = apc_win_close(l->pipe); /* the client gave up before we got to it */
        arm_listeners(srv);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        logf_(srv, APC_ENGINE_LOG_ERROR, "control pipe: out of memory: client dropped");
        l->pipe = apc_win_close(l->pipe);
        arm_listeners(srv);
        return;
    }
    c->srv = srv;
    c->pipe = l->pipe;
    l->pipe = NULL;
    if (!GetNamedPipeClientProcessId(c->pipe, &c->pid))
        c->pid = 0; /* only for the log lines: not worth refusing the client */
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    start_read(c);
    arm_listeners(srv);
}

/* Drops every connection whose client kept us waiting past its deadline; returns the wait
   (ms) until the next deadline, INFINITE if none. Pipe thread. */
static DWORD sweep_idle(apc_pipesrv_t *srv)
{
    ULONGLONG now = GetTickCount64(), next = 0;
    conn_t *c = srv->conns, *following;
    int have = 0;

    while (c != NULL) {
        following = c->next; /* close_conn may free c */
        if (c->state == CONN_READING || c->state == CONN_WRITING) {
            if (c->deadline <= now) {
                logf_(srv, APC_ENGINE_LOG_INFO,
                      "control pipe: client pid %lu silent for %lu ms: disconnected",
                      (unsigned long)c->pid, (unsigned long)srv->idle_ms);
                close_conn(c);
            } else if (!have || c->deadline < next) {
                next = c->deadline;
                have = 1;
            }
        }
        c = following;
    }
    if (!have)
        return INFINITE;
    return (DWORD)(next - now);
}

/* The stop APC. Pipe thread. */
static VOID CALLBACK stop_apc(ULONG_PTR param)
{
    apc_pipesrv_t *srv = (apc_pipesrv_t *)param;
    conn_t *c, *following;
    size_t i;

    if (srv->stopping)
        return;
    srv->stopping = 1;
    for (i = 0; i < APC_PIPESRV_LISTENERS; i++)
        close_listener(&srv->lis[i]);
    for (c = srv->conns; c != NULL; c = following) {
        following = c->next;
        close_conn(c);
    }
}

/*
 * The pipe thread: the alertable loop described at the top of this file. It ends when a stop
 * was asked and the last connection is gone (the engine answered every posted request).
 */
static DWORD WINAPI pipe_thread(LPVOID arg)
{
    apc_pipesrv_t *srv = arg;
    HANDLE events[APC_PIPESRV_LISTENERS];
    listener_t *which[APC_PIPESRV_LISTENERS];
    DWORD i;

    srv->lis[0].pipe = srv->first; /* created by apc_pipesrv_start; the thread owns it now */
    srv->first = NULL;
    arm_listeners(srv);
    for (;;) {
        DWORD count = 0, r, timeout = sweep_idle(srv);

        if (srv->stopping && srv->nconns == 0)
            break;
        for (i = 0; i < APC_PIPESRV_LISTENERS; i++) {
            if (srv->lis[i].pending) {
                events[count] = srv->lis[i].event;
                which[count++] = &srv->lis[i];
            }
        }
        if (count == 0)
            r = SleepEx(timeout, TRUE); /* at the connection cap, or stopping */
        else
            r = WaitForMultipleObjectsEx(count, events, FALSE, timeout, TRUE);
        if (r < WAIT_OBJECT_0 + count && count > 0) {
            accept_client(srv, which[r - WAIT_OBJECT_0]);
        } else if (r == WAIT_FAILED) {
            /* Cannot happen with valid handles; log it and stop rather than spin. */
            logf_(srv, APC_ENGINE_LOG_ERROR,
                  "control pipe: WaitForMultipleObjectsEx failed (error %lu): stopping",
                  (unsigned long)GetLastError());
            stop_apc((ULONG_PTR)srv);
        }
        /* WAIT_IO_COMPLETION: APCs ran; WAIT_TIMEOUT (0 for SleepEx): the sweep above. */
    }
    apc_history_close(srv->hist);
    srv->hist = NULL;
    return 0;
}

/* ---- Public API ------------------------------------------------------------------------- */

int apc_pipesrv_start(const apc_pipesrv_opts_t *opts, apc_pipesrv_t **out, char *err, size_t errsz)
{
    apc_pipesrv_t *srv = NULL;
    apc_buf_t path = {0};
    size_t i, len;
    DWORD code;
    int rc = 0;

    if (out != NULL)
        *out = NULL;
    if (opts == NULL || out == NULL || opts->name == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_pipesrv_start: missing argument");
    len = strlen(opts->name);
    if (len == 0 || len > NAME_MAX_CHARS || strchr(opts->name, '\\') != NULL)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "pipe name \"%s\" must be 1-200 characters without a backslash",
                          opts->name);
    if (opts->post == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "apc_pipesrv_start: no engine (post is NULL)");

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    srv->first = INVALID_HANDLE_VALUE;
    srv->engine = opts->engine;
    srv->post = opts->post;
    srv->idle_ms = opts->idle_timeout_ms != 0 ? opts->idle_timeout_ms : APC_PIPESRV_DEFAULT_IDLE_MS;
    srv->log = opts->log;
    srv->log_ctx = opts->log_ctx;
    apc_buf_printf(&path, PIPE_PREFIX "%s", opts->name);
    srv->path = apc_buf_take(&path);
    if (srv->path == NULL || (srv->wpath = apc_utf8_to_wide(srv->path)) == NULL ||
        (opts->history_path != NULL &&
         (srv->history_path = apc_strdup(opts->history_path)) == NULL)) {
        rc = apc_seterr(err, errsz,
                        srv->path != NULL && srv->wpath == NULL ? APC_EINVAL : APC_ENOMEM,
                        "pipe name: not valid UTF-8 or out of memory");
        goto cleanup;
    }
    if ((rc = apc_pipesec_build(opts->control_allow, &srv->sec, err, errsz)) != 0)
        goto cleanup;
    srv->sa.nLength = sizeof(srv->sa);
    srv->sa.lpSecurityDescriptor = srv->sec.sd;
    srv->sa.bInheritHandle = FALSE;
    for (i = 0; i < APC_PIPESRV_LISTENERS; i++) {
        /* Manual-reset, as overlapped I/O requires; reset before each ConnectNamedPipe. */
        srv->lis[i].event = CreateEventW(NULL, TRUE, FALSE, NULL);
        if (srv->lis[i].event == NULL) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "CreateEventW");
            goto cleanup;
        }
    }
    srv->first = create_instance(srv, 1);
    if (srv->first == INVALID_HANDLE_VALUE) {
        code = GetLastError();
        /* FIRST_PIPE_INSTANCE fails with ERROR_ACCESS_DENIED when the name exists; a holder
           that capped its instance count answers ERROR_PIPE_BUSY. Either way the name is not
           ours: refuse, so that clients never talk to someone else thinking it is us. */
        if (code == ERROR_ACCESS_DENIED || code == ERROR_PIPE_BUSY)
            rc = apc_seterr(err, errsz, APC_EEXISTS,
                            "pipe %s already exists: another instance or a squatter", srv->path);
        else
            rc = apc_win_seterr(err, errsz, code, "creating pipe %s", srv->path);
        srv->first = NULL;
        goto cleanup;
    }
    srv->thread = CreateThread(NULL, 0, pipe_thread, srv, 0, NULL);
    if (srv->thread == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "CreateThread (pipe thread)");
        goto cleanup;
    }
    logf_(srv, APC_ENGINE_LOG_INFO, "control pipe %s listening, security %s", srv->path,
          srv->sec.sddl);
    *out = srv;
    return 0;
cleanup:
    apc_buf_free(&path);
    apc_pipesrv_free(srv);
    return rc;
}

void apc_pipesrv_stop(apc_pipesrv_t *srv)
{
    if (srv == NULL || srv->thread == NULL || srv->ended)
        return;
    /* Fails only if the thread has ended already, which is what stop asks for anyway. */
    (void)QueueUserAPC(stop_apc, srv->thread, (ULONG_PTR)srv);
}

int apc_pipesrv_join(apc_pipesrv_t *srv, DWORD timeout_ms)
{
    ULONGLONG start = GetTickCount64(), spent;
    DWORD left = timeout_ms;

    if (srv == NULL || srv->thread == NULL)
        return APC_EINVAL;
    if (srv->ended)
        return 0;
    for (;;) {
        DWORD r = WaitForSingleObjectEx(srv->thread, left, TRUE);
        if (r == WAIT_OBJECT_0) {
            srv->ended = 1;
            return 0;
        }
        if (r != WAIT_IO_COMPLETION)
            return r == WAIT_TIMEOUT ? APC_ETIMEDOUT : APC_ESYS;
        if (timeout_ms != INFINITE) {
            spent = GetTickCount64() - start;
            if (spent >= timeout_ms)
                return APC_ETIMEDOUT;
            left = timeout_ms - (DWORD)spent;
        }
    }
}

void apc_pipesrv_free(apc_pipesrv_t *srv)
{
    size_t i;

    if (srv == NULL)
        return;
    if (srv->thread != NULL && !srv->ended) {
        apc_pipesrv_stop(srv);
        (void)apc_pipesrv_join(srv, INFINITE);
    }
    apc_win_close(srv->thread);
    apc_win_close(srv->first); /* still ours if start failed after creating it */
    for (i = 0; i < APC_PIPESRV_LISTENERS; i++) {
        apc_win_close(srv->lis[i].pipe); /* NULL after a clean stop */
        apc_win_close(srv->lis[i].event);
    }
    apc_pipesec_free(&srv->sec);
    free(srv->history_path);
    free(srv->wpath);
    free(srv->path);
    free(srv);
}

const char *apc_pipesrv_sddl(const apc_pipesrv_t *srv)
{
    return srv != NULL ? srv->sec.sddl : NULL;
}

const char *apc_pipesrv_path(const apc_pipesrv_t *srv)
{
    return srv != NULL ? srv->path : NULL;
}
