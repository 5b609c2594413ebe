/*
 * histthread.c - the history thread: owns the SQLite write connection, writes every batch
 * of records that arrived as APCs in one transaction (group commit), acknowledges to the
 * engine by APC, retries failed writes with backoff, prunes old runs daily (histthread.h).
 *
 * Threads: hist_main and every static function it calls run on the HISTORY thread; the
 * outbox functions (apc_histthread_add / _flush / _stop) run on the ENGINE thread; start and
 * free on the owning thread. The two sides share only: the parcels handed over by
 * QueueUserAPC (ownership moves with the APC), the acknowledgements queued back to the ack
 * thread (apc_hist_ack_t, freed by ack_trampoline there), and the fields set before the
 * thread starts.
 */
#include "histthread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "apc_str.h"
#include "engine.h"
#include "win_util.h"

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 30000

/* One record with its own copies of every string. */
typedef struct hrec {
    struct hrec *next;
    uint64_t seq;
    apc_history_op_t op;   /* op.run / op.state point into the copies below */
    apc_run_record_t *run; /* apc_run_record_dup copy, or NULL */
    char *state_job;
    char *state_by;
} hrec_t;

/* A list of records moving from one thread to the other. */
typedef struct parcel {
    apc_histthread_t *h;
    hrec_t *head, *tail;
    size_t count;
    int stop; /* 1: the last parcel, asking the thread to end after writing */
} parcel_t;

struct apc_histthread {
    /* Set before the thread starts, then read-only. */
    char *db_path;
    int retention_days;
    wchar_t *output_dir; /* full path, no trailing separator, or NULL: no file is deleted */
    int64_t now_ms;
    apc_elog_t log;
    HANDLE ack_thread;
    PAPCFUNC ack_fn;
    ULONG_PTR ack_arg;
    HANDLE thread;
    HANDLE ready; /* set by the thread when start-up is over (either way) */

    /* Start-up results, written by the history thread before `ready`. */
    int start_rc;
    char start_err[512];
    apc_hist_boot_t *boot;

    /* Engine-thread state: the outbox. */
    parcel_t outbox;
    uint64_t next_seq;
    int stop_sent;

    /* History-thread state. */
    apc_history_t *db;
    hrec_t *pend_head, *pend_tail;
    size_t pend_count;
    uint64_t pend_max_seq; /* highest seq received so far (written or dropped) */
    apc_history_op_t *ops; /* scratch array for apc_history_write */
    size_t ops_cap;
    int stopping;
    int stop_kick;         /* 1: the stop parcel arrived; attempt a write at once */
    ULONGLONG stop_since;  /* GetTickCount64 when the stop parcel arrived */
    int db_read_only;      /* 1: started on a read-only file: h->db is READONLY, no recovery yet */
    int prune_due;         /* 1: a prune waits for the file to become writable */
    int failing;           /* 1: the last write attempt failed as a whole (a streak) */
    ULONGLONG fail_since;  /* when the streak began */
    ULONGLONG fail_logged; /* when its last ERROR line was logged */
    unsigned long fail_attempts;
    ULONGLONG next_try; /* while failing: when the retry timer allows the next attempt */
    DWORD retry_ms;     /* the backoff after the next failure */
    DWORD reminder_ms;  /* at most one reminder ERROR per this interval of a streak */
    size_t max_pending; /* the bound of the pending list */
    HANDLE prune_timer;
    size_t dropped_full; /* records dropped because the pending list was full */
    int dropping;        /* 1: the last arrival was dropped (a streak, logged at its start) */
    /* Records dropped unwritten since the last acknowledgement, sorted (add_lost); one spare
       slot so that a new range can be inserted before the closest two are merged. */
    apc_hist_range_t lost[APC_HIST_ACK_RANGES + 1];
    size_t nlost;
    uint64_t acked; /* `done` of the last acknowledgement queued */
    int ack_failed; /* 1: the last acknowledgement could not be queued; retried (hist_main) */
};

static void hrec_free(hrec_t *r)
{
    if (r == NULL)
        return;
    apc_run_record_free(r->run);
    free(r->state_job);
    free(r->state_by);
    free(r);
}

static void list_free(hrec_t *r)
{
    while (r != NULL) {
        hrec_t *next = r->next;
        hrec_free(r);
        r = next;
    }
}

void apc_hist_boot_free(apc_hist_boot_t *boot)
{
    size_t i;

    if (boot == NULL)
        return;
    for (i = 0; i < boot->nstates; i++)
        apc_job_state_free(boot->states[i]);
    for (i = 0; i < boot->nlast; i++)
        apc_run_record_free(boot->last_runs[i]);
    free(boot->states);
    free(boot->last_runs);
    memset(boot, 0, sizeof *boot);
}

/* ---- History thread ------------------------------------------------------------------ */

int apc_hist_ack_lost(const apc_hist_ack_t *ack, uint64_t first, uint64_t last)
{
    size_t i;

    for (i = 0; ack != NULL && i < ack->nlost; i++)
        if (ack->lost[i].first <= last && first <= ack->lost[i].last)
            return 1;
    return 0;
}

/* Runs on the ack thread: hands the acknowledgement to the ack routine, then frees it. */
static void CALLBACK ack_trampoline(ULONG_PTR arg)
{
    apc_hist_ack_t *a = (apc_hist_ack_t *)arg;

    a->fn_((ULONG_PTR)a);
    free(a);
}

/*
 * Runs on the history thread: records that first..last were dropped unwritten, keeping
 * h->lost sorted and coalesced. Drops arrive in a few runs (the newest arrivals while the
 * pending list is full, a record the database refuses, the pending list at the stop give-up),
 * so APC_HIST_ACK_RANGES ranges suffice; should they not, the two closest ranges are merged:
 * the records between them - written ones among them - are then reported lost too. That errs
 * on the safe side (a request gets an error although its row is there, never "ok" for a row
 * that is not), and it is logged.
 */
static void add_lost(apc_histthread_t *h, uint64_t first, uint64_t last)
{
    apc_hist_range_t *v = h->lost;
    size_t n = h->nlost, i = 0, k;

    while (i < n && v[i].first < first)
        i++;
    memmove(&v[i + 1], &v[i], (n - i) * sizeof *v);
    v[i].first = first;
    v[i].last = last;
    n++;
    for (k = 0; k + 1 < n;) {
        if (v[k + 1].first <= v[k].last + 1) {
            if (v[k + 1].last > v[k].last)
                v[k].last = v[k + 1].last;
            memmove(&v[k + 1], &v[k + 2], (n - k - 2) * sizeof *v);
            n--;
        } else {
            k++;
        }
    }
    if (n > APC_HIST_ACK_RANGES) {
        size_t best = 0;
        for (k = 1; k + 1 < n; k++)
            if (v[k + 1].first - v[k].last < v[best + 1].first - v[best].last)
                best = k;
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                 "history: more than %u separate runs of lost records: records %llu to %llu are "
                 "reported lost too, although they may be written",
                 (unsigned)APC_HIST_ACK_RANGES, (unsigned long long)(v[best].last + 1),
                 (unsigned long long)(v[best + 1].first - 1));
        v[best].last = v[best + 1].last;
        memmove(&v[best + 1], &v[best + 2], (n - best - 2) * sizeof *v);
        n--;
    }
    h->nlost = n;
}

/*
 * Runs on the history thread (only with nothing pending): acknowledges every record received
 * so far to the engine - `done` and the ranges lost since the last acknowledgement travel in
 * ONE APC, so the engine can never take a dropped record for a written one. Nothing new to
 * say: no APC. If the acknowledgement cannot be queued (no memory, QueueUserAPC failed), the
 * lost ranges are kept and it is retried (h->ack_failed; hist_main): the engine only waits
 * longer, it is never told `done` without the losses.
 */
static void publish(apc_histthread_t *h)
{
    apc_hist_ack_t *a;

    if (h->ack_fn == NULL) {
        h->nlost = 0;
        return;
    }
    if (h->pend_max_seq == h->acked && h->nlost == 0)
        return;
    a = malloc(sizeof *a);
    if (a == NULL) {
        if (!h->ack_failed)
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: out of memory for an acknowledgement; retrying");
        h->ack_failed = 1;
        return;
    }
    a->arg = h->ack_arg;
    a->fn_ = h->ack_fn;
    a->done = h->pend_max_seq;
    a->nlost = h->nlost;
    memcpy(a->lost, h->lost, h->nlost * sizeof *a->lost);
    if (!QueueUserAPC(ack_trampoline, h->ack_thread, (ULONG_PTR)a)) {
        if (!h->ack_failed)
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: cannot wake the engine (QueueUserAPC error %lu); retrying",
                     (unsigned long)GetLastError());
        free(a);
        h->ack_failed = 1;
        return;
    }
    h->acked = h->pend_max_seq; /* not a->done: `a` belongs to the ack thread now */
    h->nlost = 0;
    h->ack_failed = 0;
}

/* The APC that delivers a parcel; runs on the history thread. */
static void CALLBACK parcel_apc(ULONG_PTR arg)
{
    parcel_t *p = (parcel_t *)arg;
    apc_histthread_t *h = p->h;
    hrec_t *r = p->head;

    while (r != NULL) {
        hrec_t *next = r->next;
        r->next = NULL;
        if (r->seq > h->pend_max_seq)
            h->pend_max_seq = r->seq;
        if (h->pend_count >= h->max_pending) {
            /* Bounded memory while the disk is failing: the newest records are the ones
               lost, every one is counted in the log and reported lost to the engine. */
            h->dropped_full++;
            if (!h->dropping)
                apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                         "history: record %llu dropped: %zu record(s) already wait for the "
                         "database; it and the next ones without room are reported lost (their "
                         "requests get an error)",
                         (unsigned long long)r->seq, h->pend_count);
            h->dropping = 1;
            add_lost(h, r->seq, r->seq);
            hrec_free(r);
        } else {
            h->dropping = 0;
            if (h->pend_tail != NULL)
                h->pend_tail->next = r;
            else
                h->pend_head = r;
            h->pend_tail = r;
            h->pend_count++;
        }
        r = next;
    }
    if (p->stop && !h->stopping) {
        h->stopping = 1;
        h->stop_kick = 1;
        h->stop_since = GetTickCount64();
    }
    free(p);
}

/* Runs on the history thread: drops the pending record at index i (in list order). */
static void drop_at(apc_histthread_t *h, size_t i)
{
    hrec_t **pp = &h->pend_head;
    hrec_t *prev = NULL;

    while (*pp != NULL && i > 0) {
        prev = *pp;
        pp = &(*pp)->next;
        i--;
    }
    if (*pp == NULL)
        return;
    {
        hrec_t *r = *pp;
        *pp = r->next;
        if (h->pend_tail == r)
            h->pend_tail = prev;
        h->pend_count--;
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                 "history: dropped a record the database refuses (run %lld, job %s)",
                 (long long)r->op.run.id,
                 r->op.kind == APC_HOP_JOB_STATE ? r->op.state.job : r->op.run.job);
        add_lost(h, r->seq, r->seq);
        hrec_free(r);
    }
}

/*
 * Runs on the history thread: writes every pending record in one transaction. Returns 0
 * when the pending list is empty afterwards (*written: how many records this call wrote), 1
 * when it should be retried at once (an op at fault was dropped, with a log line), or a
 * negative code when the transaction failed as a whole: then err says why and nothing is
 * logged here - hist_main decides what of a failure streak goes to the log.
 */
static int write_pending(apc_histthread_t *h, size_t *written, char *err, size_t errsz)
{
    size_t n = 0;
    size_t bad;
    hrec_t *r;
    int rc;

    *written = 0;
    if (h->pend_count == 0)
        return 0;
    if (h->pend_count > h->ops_cap) {
        size_t ncap = h->pend_count + h->pend_count / 2 + 16;
        apc_history_op_t *ops = realloc(h->ops, ncap * sizeof *ops);
        if (ops == NULL)
            return apc_seterr(err, errsz, APC_ENOMEM, "out of memory for a batch of %zu records",
                              h->pend_count);
        h->ops = ops;
        h->ops_cap = ncap;
    }
    for (r = h->pend_head; r != NULL; r = r->next)
        h->ops[n++] = r->op;
    rc = apc_history_write(h->db, h->ops, n, err, errsz);
    if (rc == 0) {
        list_free(h->pend_head);
        h->pend_head = h->pend_tail = NULL;
        h->pend_count = 0;
        *written = n;
        return 0;
    }
    bad = apc_history_failed_op(h->db);
    if (bad != (size_t)-1 && bad < n) {
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR, "history: %s", err);
        drop_at(h, bad);
        return 1;
    }
    return rc;
}

/*
 * Runs on the history thread, after a read-only start: opens the database read-write again,
 * which also runs the recovery the start had to leave out (runs left queued/running by the
 * last service marked interrupted, at the start time: the engine has not written any row of
 * its own yet - those are all pending). On success the read-only handle is replaced.
 */
static int reopen_writable(apc_histthread_t *h, char *err, size_t errsz)
{
    apc_history_start_t *info = malloc(sizeof *info);
    apc_history_t *db = NULL;
    int rc;

    if (info == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    /* The read-only handle goes first: SQLite shares one -shm mapping per file in a process,
       and the read-only one would make the new connection read-only too. The boot reads are
       done, so nothing needs it any more. */
    apc_history_close(h->db);
    h->db = NULL;
    rc = apc_history_open_writer(h->db_path, h->now_ms, 0, &db, info, err, errsz);
    if (rc == 0) {
        h->db = db;
        h->db_read_only = 0;
        apc_elog(&h->log, APC_ENGINE_LOG_INFO,
                 "history: %s can be written again; %lld unfinished run(s) of the last service "
                 "marked interrupted",
                 h->db_path, (long long)info->recovered);
    }
    free(info);
    return rc;
}

/*
 * Runs on the history thread: one write attempt of everything pending, with the failure
 * streak's bookkeeping and log lines. A streak logs its first failure (ERROR, SQLite's text),
 * then at most one reminder ERROR per reminder interval, and one INFO when writing works
 * again - never one line per attempt, so a long outage cannot flood the event log. Returns 0
 * when nothing is pending afterwards, or the failure code.
 */
static int attempt_write(apc_histthread_t *h)
{
    char err[512];
    size_t written = 0, total = 0;
    ULONGLONG now;
    int rc;

    err[0] = '\0';
    rc = h->db_read_only ? reopen_writable(h, err, sizeof err) : 0;
    if (rc == 0)
        rc = write_pending(h, &written, err, sizeof err);
    total += written;
    while (rc == 1) {
        rc = write_pending(h, &written, err, sizeof err);
        total += written;
    }
    now = GetTickCount64();
    if (rc == 0) {
        if (h->failing)
            apc_elog(&h->log, APC_ENGINE_LOG_INFO,
                     "history: writing works again after %.1f s; %zu record(s) written",
                     (double)(now - h->fail_since) / 1000.0, total);
        h->failing = 0;
        h->retry_ms = RETRY_FIRST_MS;
        return 0;
    }
    if (!h->failing) {
        h->failing = 1;
        h->fail_since = now;
        h->fail_attempts = 1;
        h->fail_logged = now;
        h->retry_ms = RETRY_FIRST_MS;
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR, "history: write of %zu record(s) failed: %s",
                 h->pend_count, err);
    } else {
        h->fail_attempts++;
        if (now - h->fail_logged >= h->reminder_ms) {
            h->fail_logged = now;
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: still failing after %lu attempts over %.0f s: %s; %zu record(s) "
                     "waiting",
                     h->fail_attempts, (double)(now - h->fail_since) / 1000.0, err, h->pend_count);
        }
    }
    /* The next attempt: 100 ms, doubling up to 30 s. */
    h->next_try = now + h->retry_ms;
    h->retry_ms = h->retry_ms >= RETRY_MAX_MS / 2 ? RETRY_MAX_MS : h->retry_ms * 2;
    return rc;
}

/* What one prune did to output files: counts and the first case of each trouble. */
typedef struct prune_files {
    apc_histthread_t *h;
    size_t removed, failed, outside;
    char first_failed[600];
    char first_outside[300];
} prune_files_t;

/*
 * Runs on the history thread: 1 if the full form of path (stored in *full; free it) lies
 * inside the output folder, 0 if not, -1 with *code set if it cannot be worked out.
 * GetFullPathNameW resolves "..", "." and forward slashes, so "out\\..\\x" is outside.
 */
static int inside_output_dir(const apc_histthread_t *h, const wchar_t *path, wchar_t **full,
                             DWORD *code)
{
    DWORD n;
    size_t dl;

    *full = NULL;
    if (h->output_dir == NULL)
        return 0;
    n = GetFullPathNameW(path, 0, NULL, NULL);
    if (n == 0) {
        *code = GetLastError();
        return -1;
    }
    *full = malloc(n * sizeof **full);
    if (*full == NULL) {
        *code = ERROR_NOT_ENOUGH_MEMORY;
        return -1;
    }
    if (GetFullPathNameW(path, n, *full, NULL) >= n) {
        *code = GetLastError();
        return -1;
    }
    dl = wcslen(h->output_dir);
    return _wcsnicmp(*full, h->output_dir, dl) == 0 && (*full)[dl] == L'\\' &&
           (*full)[dl + 1] != L'\0';
}

/*
 * apc_history_pruned_cb; runs on the history thread after the run's row deletion committed:
 * deletes its output file if it lies inside the output folder. A file already gone is fine.
 */
static void delete_output(const char *output_path, void *ctx)
{
    prune_files_t *pf = ctx;
    wchar_t *w = apc_utf8_to_wide(output_path);
    wchar_t *full = NULL;
    DWORD code = 0;
    int inside = -1;

    if (w == NULL)
        code = ERROR_NOT_ENOUGH_MEMORY;
    else
        inside = inside_output_dir(pf->h, w, &full, &code);
    if (inside == 0) {
        if (pf->outside++ == 0)
            (void)snprintf(pf->first_outside, sizeof pf->first_outside, "%s", output_path);
    } else if (inside == 1) {
        if (DeleteFileW(full))
            pf->removed++;
        else if ((code = GetLastError()) == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND)
            code = 0;
    }
    if (code != 0 && pf->failed++ == 0)
        (void)apc_win_seterr(pf->first_failed, sizeof pf->first_failed, code, "%s", output_path);
    free(full);
    free(w);
}

/*
 * Runs on the history thread: deletes runs older than the retention, then (chunk by chunk,
 * after each commit) their output files, and re-arms the timer.
 */
static void prune(apc_histthread_t *h)
{
    char err[512];
    int64_t deleted = 0;
    LARGE_INTEGER due;
    prune_files_t pf;

    if (h->retention_days <= 0)
        return;
    memset(&pf, 0, sizeof pf);
    pf.h = h;
    if (apc_history_prune_files(h->db, apc_win_now_ms() - h->retention_days * APC_MS_PER_DAY,
                                &deleted, delete_output, &pf, err, sizeof err) != 0)
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR, "history: pruning failed: %s", err);
    if (deleted > 0)
        apc_elog(&h->log, APC_ENGINE_LOG_INFO,
                 "history: pruned %lld run(s) older than %d day(s) and %zu output file(s)",
                 (long long)deleted, h->retention_days, pf.removed);
    if (pf.failed > 0)
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                 "history: %zu output file(s) of pruned runs could not be deleted; the first: %s",
                 pf.failed, pf.first_failed);
    if (pf.outside > 0)
        apc_elog(&h->log, APC_ENGINE_LOG_WARNING,
                 "history: %zu output file(s) of pruned runs were left alone: outside the output "
                 "folder; the first: %s",
                 pf.outside, pf.first_outside);
    /* Relative due time: "a day from now" is what retention means, whatever the clock does. */
    due.QuadPart = -(LONGLONG)APC_MS_PER_DAY * 10000;
    if (!SetWaitableTimer(h->prune_timer, &due, 0, NULL, NULL, FALSE))
        apc_elog(&h->log, APC_ENGINE_LOG_ERROR, "history: cannot arm the prune timer (error %lu)",
                 (unsigned long)GetLastError());
}

static int collect_state(const apc_job_state_t *s, void *ctx)
{
    apc_hist_boot_t *b = ctx;
    apc_job_state_t *copy;
    apc_job_state_t **arr;
    size_t jl = strlen(s->job) + 1;
    size_t bl = s->paused_by != NULL ? strlen(s->paused_by) + 1 : 0;

    arr = realloc(b->states, (b->nstates + 1) * sizeof *arr);
    if (arr == NULL)
        return APC_ENOMEM;
    b->states = arr;
    /* One block, as apc_history_job_state_get makes, so apc_job_state_free (free) fits. */
    copy = malloc(sizeof *copy + jl + bl);
    if (copy == NULL)
        return APC_ENOMEM;
    *copy = *s;
    copy->job = memcpy((char *)(copy + 1), s->job, jl);
    copy->paused_by = bl > 0 ? memcpy((char *)(copy + 1) + jl, s->paused_by, bl) : NULL;
    b->states[b->nstates++] = copy;
    return 0;
}

static int collect_last(const apc_run_record_t *r, void *ctx)
{
    apc_hist_boot_t *b = ctx;
    apc_run_record_t **arr = realloc(b->last_runs, (b->nlast + 1) * sizeof *arr);

    if (arr == NULL)
        return APC_ENOMEM;
    b->last_runs = arr;
    arr[b->nlast] = apc_run_record_dup(r);
    if (arr[b->nlast] == NULL)
        return APC_ENOMEM;
    b->nlast++;
    return 0;
}

/* The run id in an output file name "<digits>.log", or 0. */
static int64_t id_of_log_name(const wchar_t *name)
{
    int64_t id = 0;
    size_t i = 0;

    for (; name[i] >= L'0' && name[i] <= L'9'; i++) {
        if (id > (INT64_MAX - 9) / 10)
            return 0;
        id = id * 10 + (name[i] - L'0');
    }
    return i > 0 && _wcsicmp(name + i, L".log") == 0 ? id : 0;
}

/*
 * Runs on the history thread: the highest run id among the output files
 * <output folder>\<job>\<id>.log, 0 if none. Used when the database holds no run (new after a
 * set-aside, or emptied by retention), so that the engine's ids never name an existing output
 * file again. A folder that cannot be listed counts as empty.
 */
static int64_t max_output_id(const apc_histthread_t *h)
{
    WIN32_FIND_DATAW job, file;
    HANDLE fj = INVALID_HANDLE_VALUE, ff;
    size_t cap;
    wchar_t *pat = NULL;
    int64_t best = 0;

    if (h->output_dir == NULL)
        return 0;
    cap = wcslen(h->output_dir) + 2 * MAX_PATH + 16;
    pat = malloc(cap * sizeof *pat);
    if (pat == NULL)
        return 0;
    (void)swprintf(pat, cap, L"%ls\\*", h->output_dir);
    fj = FindFirstFileW(pat, &job);
    if (fj == INVALID_HANDLE_VALUE)
        goto cleanup;
    do {
        if ((job.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) == 0 || job.cFileName[0] == L'.')
            continue;
        (void)swprintf(pat, cap, L"%ls\\%ls\\*.log", h->output_dir, job.cFileName);
        ff = FindFirstFileW(pat, &file);
        if (ff == INVALID_HANDLE_VALUE)
            continue;
        do {
            int64_t id = id_of_log_name(file.cFileName);
            if (id > best)
                best = id;
        } while (FindNextFileW(ff, &file));
        (void)FindClose(ff);
    } while (FindNextFileW(fj, &job));

cleanup:
    if (fj != INVALID_HANDLE_VALUE)
        (void)FindClose(fj);
    free(pat);
    return best;
}

/* Runs on the history thread: open, recover, read what the engine needs, prune once. */
static int boot(apc_histthread_t *h)
{
    apc_hist_boot_t *b = h->boot;
    char *err = h->start_err;
    size_t errsz = sizeof h->start_err;
    apc_history_start_t *info = NULL;
    int rc;

    h->prune_timer = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);
    if (h->prune_timer == NULL)
        return apc_win_seterr(err, errsz, GetLastError(), "cannot create the prune timer");
    info = malloc(sizeof *info);
    if (info == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    /* A corrupt file is set aside and a new one started: scheduling goes on, and what the
       old file holds stays readable in the set-aside copy. */
    rc = apc_history_open_writer(h->db_path, h->now_ms,
                                 APC_HISTORY_SET_ASIDE_CORRUPT | APC_HISTORY_ALLOW_READ_ONLY,
                                 &h->db, info, err, errsz);
    if (rc == 0) {
        b->recovered = info->recovered;
        b->max_id = info->max_id;
        /* An empty database (new, or emptied by retention) must not restart the ids at 1:
           run N writes <job>\N.log, which may still be a set-aside run's output. */
        if (b->max_id == 0) {
            int64_t out_max = max_output_id(h);
            if (out_max > 0) {
                b->max_id = out_max;
                apc_elog(&h->log, APC_ENGINE_LOG_INFO,
                         "history: the database holds no run; run ids go on after %lld, the "
                         "highest in the output folder",
                         (long long)out_max);
            }
        }
        if (info->read_only) {
            /* Scheduling goes on; the recovery and every new record wait, in memory, for the
               file to become writable: hist_main retries as after a failed write. */
            ULONGLONG now = GetTickCount64();
            h->db_read_only = 1;
            h->failing = 1;
            h->fail_since = h->fail_logged = now;
            h->fail_attempts = 1;
            h->next_try = now + RETRY_FIRST_MS;
            h->retry_ms = RETRY_FIRST_MS * 2;
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: %s cannot be written (%s); the service starts with what it holds "
                     "and keeps new records in memory (up to %u) until it can write; unfinished "
                     "runs of the last service are marked interrupted then",
                     h->db_path, info->diagnosis, (unsigned)h->max_pending);
        }
        if (info->set_aside)
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: %s is corrupt (SQLite: %s); set aside as %s; a new history "
                     "database was started (run ids go on after %lld)",
                     h->db_path, info->diagnosis, info->aside_path, (long long)b->max_id);
    }
    free(info);
    if (rc != 0)
        return rc;
    rc = apc_history_job_state_list(h->db, collect_state, b, err, errsz);
    if (rc == 0)
        rc = apc_history_last_runs(h->db, collect_last, b, err, errsz);
    if (rc == 0 && h->db_read_only) {
        /* The recovery is only deferred: the engine sees those runs as it will be written. */
        size_t i;
        for (i = 0; i < b->nlast; i++)
            if (b->last_runs[i]->status == APC_RUN_QUEUED ||
                b->last_runs[i]->status == APC_RUN_RUNNING)
                b->last_runs[i]->status = APC_RUN_INTERRUPTED;
    }
    if (rc == APC_ENOMEM)
        apc_seterr(err, errsz, rc, "out of memory reading the history database");
    if (rc != 0)
        return rc;
    /* A read-only start prunes once the file can be written (hist_main). */
    if (h->db_read_only)
        h->prune_due = 1;
    else
        prune(h);
    return 0;
}

/*
 * The history thread's loop: an alertable wait on the prune timer whose timeout is the next
 * retry (INFINITE when nothing is pending), then one write of everything pending.
 *
 *   writing --attempt fails--> failing --retry timer: attempt succeeds--> writing
 *      ^  records arrive:         |  records arrive: only join the pending list
 *      |  written at once         |  retry timer (100 ms doubling to 30 s): attempt
 *      +--------------------------+  stop arrives: attempt at once, then by the timer until
 *                                    APC_HIST_STOP_GIVE_UP_MS, then the rest is dropped
 */
static DWORD WINAPI hist_main(LPVOID arg)
{
    apc_histthread_t *h = arg;
    DWORD timeout = INFINITE;

    h->start_rc = boot(h);
    SetEvent(h->ready);
    if (h->start_rc != 0)
        goto cleanup;

    for (;;) {
        DWORD w = WaitForSingleObjectEx(h->prune_timer, timeout, TRUE);
        ULONGLONG now;
        int attempt;

        if (w == WAIT_OBJECT_0 && h->db_read_only)
            h->prune_due = 1; /* the daily prune waits for a writable file */
        else if (w == WAIT_OBJECT_0)
            prune(h);
        else if (w == WAIT_FAILED)
            Sleep(RETRY_FIRST_MS); /* cannot happen with a valid handle; never spin */

        /* While failing, arriving records wait for the retry timer: an immediate attempt per
           record would burn CPU on doomed transactions. Stop asks for one attempt at once. */
        now = GetTickCount64();
        attempt = !h->failing || h->stop_kick || now >= h->next_try ||
                  (h->stopping && now - h->stop_since >= APC_HIST_STOP_GIVE_UP_MS);
        h->stop_kick = 0;
        if (attempt)
            (void)attempt_write(h);
        if (h->prune_due && !h->db_read_only) {
            h->prune_due = 0;
            prune(h);
        }
        now = GetTickCount64();
        timeout = INFINITE;
        if (h->failing) {
            ULONGLONG due = h->next_try;
            if (h->stopping && h->stop_since + APC_HIST_STOP_GIVE_UP_MS < due)
                due = h->stop_since + APC_HIST_STOP_GIVE_UP_MS;
            timeout = due > now ? (DWORD)(due - now) : 0;
        }
        if (h->dropped_full > 0) {
            apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                     "history: %zu record(s) dropped: more than %u waiting for the database",
                     h->dropped_full, (unsigned)h->max_pending);
            h->dropped_full = 0;
        }
        if (h->pend_count == 0) {
            h->dropping = 0;
            publish(h);
        }
        /* An acknowledgement that could not be queued is retried soon, whatever else waits. */
        if (h->ack_failed && (timeout == INFINITE || timeout > RETRY_FIRST_MS))
            timeout = RETRY_FIRST_MS;
        if (h->stopping) {
            if (h->pend_count == 0 &&
                (!h->ack_failed || now - h->stop_since >= APC_HIST_STOP_GIVE_UP_MS))
                break;
            if (attempt && now - h->stop_since >= APC_HIST_STOP_GIVE_UP_MS) {
                apc_elog(&h->log, APC_ENGINE_LOG_ERROR,
                         "history: stopping: %zu record(s) could not be written and are lost",
                         h->pend_count);
                /* The pending list is in seq order; what lies between its records was dropped
                   unwritten already, so one range is exact. */
                add_lost(h, h->pend_head->seq, h->pend_tail->seq);
                list_free(h->pend_head);
                h->pend_head = h->pend_tail = NULL;
                h->pend_count = 0;
                publish(h); /* if it cannot be queued, the engine gives every waiting request
                               the error at its end: no false "ok" either way */
                break;
            }
        }
    }

cleanup:
    /* Parcels queued after the stop parcel cannot exist (the engine sends nothing after
       stop), but run whatever is still queued so that its memory is freed. */
    while (SleepEx(0, TRUE) == WAIT_IO_COMPLETION)
        ;
    list_free(h->pend_head);
    h->pend_head = h->pend_tail = NULL;
    h->pend_count = 0;
    apc_history_close(h->db);
    h->db = NULL;
    h->prune_timer = apc_win_close(h->prune_timer);
    return 0;
}

/* ---- Owning thread ----------------------------------------------------------------- */

/* The full form of folder dir without a trailing separator, in *out (free it). Owning thread. */
static int full_dir(const char *dir, wchar_t **out, char *err, size_t errsz)
{
    wchar_t *w = apc_utf8_to_wide(dir);
    wchar_t *full = NULL;
    DWORD n;
    size_t len;
    int rc = 0;

    *out = NULL;
    if (w == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    n = GetFullPathNameW(w, 0, NULL, NULL);
    if (n == 0) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "output folder %s", dir);
        goto cleanup;
    }
    full = malloc(n * sizeof *full);
    if (full == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (GetFullPathNameW(w, n, full, NULL) >= n) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "output folder %s", dir);
        goto cleanup;
    }
    len = wcslen(full);
    while (len > 0 && (full[len - 1] == L'\\' || full[len - 1] == L'/'))
        full[--len] = L'\0';
    *out = full;
    full = NULL;

cleanup:
    free(full);
    free(w);
    return rc;
}

int apc_histthread_start(const apc_histthread_opts_t *opts, apc_histthread_t **out,
                         apc_hist_boot_t *bootp, char *err, size_t errsz)
{
    apc_histthread_t *h = NULL;
    HANDLE both[2];
    DWORD w;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (opts == NULL || opts->db_path == NULL || out == NULL || bootp == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "history thread: bad arguments");
    memset(bootp, 0, sizeof *bootp);
    h = calloc(1, sizeof *h);
    if (h == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    h->db_path = apc_strdup(opts->db_path);
    if (h->db_path == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto fail;
    }
    h->retention_days = opts->retention_days;
    if (opts->output_dir != NULL) {
        rc = full_dir(opts->output_dir, &h->output_dir, err, errsz);
        if (rc != 0)
            goto fail;
    }
    h->now_ms = opts->now_ms;
    h->reminder_ms = opts->reminder_ms != 0 ? opts->reminder_ms : APC_HIST_REMINDER_MS;
    h->max_pending = opts->max_pending != 0 ? opts->max_pending : APC_HIST_MAX_PENDING;
    h->retry_ms = RETRY_FIRST_MS;
    h->log = opts->log;
    h->ack_thread = opts->ack_thread;
    h->ack_fn = opts->ack_fn;
    h->ack_arg = opts->ack_arg;
    h->boot = bootp;
    h->outbox.h = h;
    h->ready = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (h->ready == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "cannot create an event");
        goto fail;
    }
    h->thread = CreateThread(NULL, 0, hist_main, h, 0, NULL);
    if (h->thread == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "cannot start the history thread");
        goto fail;
    }
    both[0] = h->ready;
    both[1] = h->thread;
    w = WaitForMultipleObjects(2, both, FALSE, INFINITE);
    if (w != WAIT_OBJECT_0 || h->start_rc != 0) {
        rc = h->start_rc != 0 ? h->start_rc : APC_ESYS;
        apc_seterr(err, errsz, rc, "%s",
                   h->start_rc != 0 ? h->start_err : "the history thread ended at start");
        WaitForSingleObject(h->thread, INFINITE);
        goto fail;
    }
    *out = h;
    return 0;

fail:
    apc_hist_boot_free(bootp);
    if (h != NULL) {
        h->thread = apc_win_close(h->thread);
        h->ready = apc_win_close(h->ready);
        free(h->db_path);
        free(h->output_dir);
        free(h);
    }
    return rc;
}

void apc_histthread_free(apc_histthread_t *h)
{
    if (h == NULL)
        return;
    if (h->thread != NULL && WaitForSingleObject(h->thread, 0) != WAIT_OBJECT_0) {
        if (apc_histthread_stop(h) == 0)
            WaitForSingleObject(h->thread, INFINITE);
    }
    list_free(h->outbox.head);
    h->thread = apc_win_close(h->thread);
    h->ready = apc_win_close(h->ready);
    free(h->ops);
    free(h->db_path);
    free(h->output_dir);
    free(h);
}

HANDLE apc_histthread_handle(const apc_histthread_t *h)
{
    return h == NULL ? NULL : h->thread;
}

/* ---- Engine thread ------------------------------------------------------------------ */

int apc_histthread_add(apc_histthread_t *h, const apc_history_op_t *op, uint64_t *seq)
{
    hrec_t *r;

    if (h == NULL || op == NULL)
        return APC_EINVAL;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return APC_ENOMEM;
    r->op = *op;
    if (op->kind == APC_HOP_JOB_STATE) {
        r->state_job = apc_strdup(op->state.job);
        r->state_by = op->state.paused_by != NULL ? apc_strdup(op->state.paused_by) : NULL;
        if (r->state_job == NULL || (op->state.paused_by != NULL && r->state_by == NULL)) {
            hrec_free(r);
            return APC_ENOMEM;
        }
        r->op.state.job = r->state_job;
        r->op.state.paused_by = r->state_by;
        memset(&r->op.run, 0, sizeof r->op.run);
    } else {
        r->run = apc_run_record_dup(&op->run);
        if (r->run == NULL) {
            hrec_free(r);
            return APC_ENOMEM;
        }
        r->op.run = *r->run;
        memset(&r->op.state, 0, sizeof r->op.state);
    }
    r->seq = ++h->next_seq;
    if (h->outbox.tail != NULL)
        h->outbox.tail->next = r;
    else
        h->outbox.head = r;
    h->outbox.tail = r;
    h->outbox.count++;
    if (seq != NULL)
        *seq = r->seq;
    return 0;
}

/* Engine thread: sends the outbox (and the stop flag) as one parcel. */
static int send_outbox(apc_histthread_t *h, int stop)
{
    parcel_t *p;

    if (h->outbox.count == 0 && !stop)
        return 0;
    p = malloc(sizeof *p);
    if (p == NULL)
        return APC_ENOMEM;
    *p = h->outbox;
    p->h = h;
    p->stop = stop;
    if (!QueueUserAPC(parcel_apc, h->thread, (ULONG_PTR)p)) {
        free(p);
        return APC_ESYS;
    }
    h->outbox.head = h->outbox.tail = NULL;
    h->outbox.count = 0;
    return 0;
}

int apc_histthread_flush(apc_histthread_t *h)
{
    if (h == NULL)
        return APC_EINVAL;
    return send_outbox(h, 0);
}

int apc_histthread_stop(apc_histthread_t *h)
{
    int rc;

    if (h == NULL)
        return APC_EINVAL;
    if (h->stop_sent)
        return 0;
    rc = send_outbox(h, 1);
    if (rc == 0)
        h->stop_sent = 1;
    return rc;
}
