/*
 * histthread.h - the history thread: the ONE owner of the SQLite write connection. The engine
 * hands it records as APCs; it writes everything that arrived since its last wake in ONE
 * apc_history_write transaction (group commit) and then acknowledges to the engine by APC.
 *
 * Why this way: the engine must never wait for the disk, yet a submit may be acknowledged
 * only once its queued row is durable. So the engine numbers every record it hands over
 * (a sequence number), the history thread publishes the highest number it has finished
 * with and queues the engine's ack routine; the engine answers whatever requests were
 * waiting for records up to that number. One fsync covers a whole burst of records.
 *
 *   engine thread                              history thread
 *   apc_histthread_add(op) -> outbox           SleepEx/WaitFor...Ex(prune timer, alertable)
 *   apc_histthread_flush() --APC(parcel)-->    pending += parcel
 *                                              apc_history_write(all pending)   one COMMIT
 *   ack routine <----APC(apc_hist_ack_t)----   { done: last seq, lost: seqs dropped unwritten }
 *
 * The acknowledgement carries the progress AND the losses in one message: the engine answers
 * a waiting request "ok" only if none of its records is in a lost range, else with an error,
 * and it can never see one without the other. Lost ranges need no keeping afterwards: every
 * new record gets a higher seq than anything acknowledged.
 *
 * On a write error the batch stays in memory (at most APC_HIST_MAX_PENDING records; beyond
 * that new records are dropped with an ERROR log line and reported lost) and is retried with a
 * backoff from
 * 100 ms doubling to 30 s; records arriving meanwhile only join it (the retry timer, not
 * their arrival, decides when to try again). A failure streak logs its first failure as an
 * ERROR with SQLite's text, then at most one reminder ERROR per APC_HIST_REMINDER_MS
 * ("still failing after N attempts over M s: ...; K record(s) waiting"), and one INFO when
 * writing works again ("after M s; K record(s) written"). A stop while failing triggers one
 * attempt at once and then retries until APC_HIST_STOP_GIVE_UP_MS. An op the store names as
 * at fault (apc_history_failed_op: a duplicate id, a run already final) is dropped with a log
 * line (reported lost) and the rest retried at once.
 * Retention: runs older than service.retention_days are pruned at start and then every 24 h
 * (a waitable timer of this thread); after each pruned chunk has committed, the output files
 * of exactly those runs are deleted, but only inside service.output_dir (a row pointing
 * elsewhere keeps its file; one log line per prune counts each kind of failure).
 * A corrupt database at start (SQLITE_CORRUPT / SQLITE_NOTADB) is set aside as
 * <name>.corrupt-<UTC time> and a new one is started (apc_history_open_writer), with an
 * ERROR in the log naming both files: the service keeps scheduling. A database SQLite can
 * open only read-only at start (a read-only file, or a read-only filesystem: then immutable=1,
 * and only when no -wal file exists) does not stop the start either: the boot reads come from
 * it, the recovery (runs left queued/running marked interrupted) is deferred, one ERROR names
 * the file and SQLite's reason, and the thread retries as after a failed write - reopening
 * read-write (which runs the recovery first), then writing everything pending. A database
 * without runs (new, or emptied by retention) reports as max_id the highest <id>.log in the
 * output folder, so run ids, and with them output file names, never repeat.
 *
 * Threads: apc_histthread_start / _free run on the thread that owns the engine; add, flush
 * and stop run on the ENGINE thread (the outbox is engine-thread state); the ack routine runs
 * on ack_thread; handle and apc_hist_ack_lost may be called from any thread. Everything else
 * in histthread.c runs on the history thread.
 */
#ifndef APC_HISTTHREAD_H
#define APC_HISTTHREAD_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "apc_history.h"
#include "elog.h"

/* The most records kept in memory while the database cannot be written (the default of
   apc_histthread_opts_t.max_pending). */
#define APC_HIST_MAX_PENDING 100000u

/* How many separate seq ranges of lost records one acknowledgement carries. */
#define APC_HIST_ACK_RANGES 8

/* While writes keep failing, at most one reminder ERROR per this interval (10 min). */
#define APC_HIST_REMINDER_MS 600000u

/* How long stop keeps retrying a failing write before it gives up and drops the records. */
#define APC_HIST_STOP_GIVE_UP_MS 10000

typedef struct apc_histthread apc_histthread_t;

/* What the history thread read from the database at start, for the engine. */
typedef struct apc_hist_boot {
    int64_t max_id;    /* the highest run id used (database, set-aside file, output folder) */
    int64_t recovered; /* runs turned from queued/running into interrupted */
    apc_job_state_t **states; /* every job_state row (apc_job_state_free each) */
    size_t nstates;
    apc_run_record_t **last_runs; /* the newest run of every job (apc_run_record_free each) */
    size_t nlast;
} apc_hist_boot_t;

/* The records first..last (sequence numbers, both included). */
typedef struct apc_hist_range {
    uint64_t first, last;
} apc_hist_range_t;

/*
 * One acknowledgement, the argument of the ack routine (cast from ULONG_PTR). Every record up
 * to `done` is finished with: written, or dropped unwritten (pending list full, refused by the
 * database, given up at stop) - and every record dropped since the previous acknowledgement
 * is in lost[0..nlost), sorted, not overlapping. Drops come in a few runs at most (the newest
 * arrivals while the list is full; the pending list at the stop give-up); should there be more
 * than APC_HIST_ACK_RANGES runs, the two closest are merged, so records written between them
 * are reported lost too (never the other way round; logged as an ERROR).
 * The memory belongs to the history code: valid only during the ack routine's call.
 */
typedef struct apc_hist_ack {
    ULONG_PTR arg; /* opts->ack_arg */
    uint64_t done;
    size_t nlost;
    apc_hist_range_t lost[APC_HIST_ACK_RANGES];
    PAPCFUNC fn_; /* private: opts->ack_fn */
} apc_hist_ack_t;

/* 1 if any record first..last is in a lost range of ack, else 0. Any thread. */
int apc_hist_ack_lost(const apc_hist_ack_t *ack, uint64_t first, uint64_t last);

typedef struct apc_histthread_opts {
    const char *db_path;    /* UTF-8; its folder must exist */
    int retention_days;     /* 0 = keep forever */
    const char *output_dir; /* UTF-8 or NULL: pruning deletes run output files only inside it */
    int64_t now_ms;         /* the recovery time stamp */
    apc_elog_t log;
    HANDLE ack_thread; /* the engine thread; must exist (may be suspended) */
    /* Runs on ack_thread (an APC) whenever the thread has finished with more records; its
       argument is a const apc_hist_ack_t * (above) whose `arg` is ack_arg. NULL: no acks. */
    PAPCFUNC ack_fn;
    ULONG_PTR ack_arg;
    DWORD reminder_ms;  /* 0: APC_HIST_REMINDER_MS; tests make it short */
    size_t max_pending; /* 0: APC_HIST_MAX_PENDING; tests make it small */
} apc_histthread_opts_t;

/*
 * Starts the history thread, which opens (creating or migrating) the database (setting a
 * corrupt one aside and starting a new one, see above), recovers
 * runs left queued/running as interrupted (at opts->now_ms), reads the max run id, the job
 * states and every job's newest run into *boot, prunes once, and then waits for records.
 * Returns 0 once all of that succeeded; otherwise the thread has ended, *out is NULL and err
 * says why (e.g. the SQLite error of the open). Free *boot with apc_hist_boot_free.
 */
int apc_histthread_start(const apc_histthread_opts_t *opts, apc_histthread_t **out,
                         apc_hist_boot_t *boot, char *err, size_t errsz);

/* Releases what apc_histthread_start put in *boot. Accepts NULL. */
void apc_hist_boot_free(apc_hist_boot_t *boot);

/*
 * Copies op (with its own copies of every string) into the outbox and returns its sequence
 * number in *seq (may be NULL). Nothing is sent until apc_histthread_flush. Returns 0 or
 * APC_ENOMEM (then the record is lost: the caller logs it). Runs on the engine thread.
 */
int apc_histthread_add(apc_histthread_t *h, const apc_history_op_t *op, uint64_t *seq);

/*
 * Hands every record in the outbox to the history thread in one APC. Returns 0 (also when
 * the outbox is empty) or APC_ENOMEM / APC_ESYS, in which case the records stay in the
 * outbox for the next flush. Runs on the engine thread.
 */
int apc_histthread_flush(apc_histthread_t *h);

/*
 * Flushes the outbox and asks the thread to end once everything is written (giving up after
 * APC_HIST_STOP_GIVE_UP_MS of failed retries). Wait for apc_histthread_handle to be
 * signalled. Returns 0 or APC_ESYS. Runs on the engine thread.
 */
int apc_histthread_stop(apc_histthread_t *h);

/* The thread's handle (owned by h), signalled when it has ended. Any thread. */
HANDLE apc_histthread_handle(const apc_histthread_t *h);

/*
 * Frees h after its thread has ended (if it is still running, asks it to stop and waits).
 * Records still in the outbox are discarded. Accepts NULL. Owning thread.
 */
void apc_histthread_free(apc_histthread_t *h);

#endif /* APC_HISTTHREAD_H */
