/*
 * proc.h - the process runner: start one job's command as a Windows process tree inside a Job
 * Object, capture its stdout+stderr into a file (capped) and a tail, and end it on timeout or
 * cancel.
 *
 * Why this shape: a worker thread of ApcSched is an alertable loop (DESIGN.md section 1). The
 * runner therefore never creates a thread of its own: the output pipe is read with ReadFileEx,
 * whose completion routines are APCs delivered to the very worker that waits in
 * apc_proc_wait, and a cancel arrives the same way (an APC from the engine that sets a flag).
 * The Job Object makes "the run" mean the whole tree: a timeout, a cancel or the end of the
 * run ends every process the command started, grandchildren included.
 *
 * Thread: everything here runs on the calling WORKER thread. An apc_proc_t belongs to the
 * thread that started it and must be waited for and freed on that thread, because the read
 * completions are queued to that thread and to no other.
 */
#ifndef APC_PROC_H
#define APC_PROC_H

#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#include "apc_error.h"

/* Exit code given to every process of a tree ended because its deadline passed. */
#define APC_PROC_EXIT_TIMEOUT 1460u /* ERROR_TIMEOUT */
/* Exit code given to every process of a tree ended by a cancel (or by apc_proc_free). */
#define APC_PROC_EXIT_CANCELLED 1223u /* ERROR_CANCELLED */
/* How long apc_proc_wait keeps reading output after the program has ended. */
#define APC_PROC_DRAIN_MS 2000

typedef struct apc_proc_spec {
    const char *const *argv; /* UTF-8, NULL-terminated, argv[0] = program */
    const char *cwd;         /* NULL = inherit the service's */
    const char *const *env;  /* "NAME=value" entries, NULL-terminated, or NULL: merged OVER the
                                service's own environment (same name, case-insensitive,
                                replaces); the block is sorted as Windows requires */
    const char *output_path; /* stdout+stderr go here (created/truncated; its folder exists);
                                NULL = keep only the tail */
    uint64_t output_limit;   /* bytes written to the file at most; the rest is counted and
                                dropped, and a final line "[apcsched: output truncated after N
                                bytes; M bytes dropped]" is appended */
    size_t tail_bytes;       /* how much of the END of the output the result keeps */
} apc_proc_spec_t;

typedef enum apc_proc_end {
    APC_PROC_EXITED,    /* the program ended by itself; exit_code is its own */
    APC_PROC_TIMED_OUT, /* the deadline passed; the tree was ended with APC_PROC_EXIT_TIMEOUT */
    APC_PROC_CANCELLED  /* *cancel was set; the tree was ended with APC_PROC_EXIT_CANCELLED */
} apc_proc_end_t;

typedef struct apc_proc_result {
    apc_proc_end_t end;
    DWORD pid;
    DWORD exit_code;       /* GetExitCodeProcess of the program (argv[0]) */
    uint64_t output_bytes; /* every byte the tree wrote, kept or dropped */
    int truncated;         /* 1 when output_limit dropped bytes */
    char *output_tail;     /* malloc'd, NUL-terminated: the last tail_bytes bytes of the output
                              (as written by the program: not necessarily valid UTF-8) */
} apc_proc_result_t;

typedef struct apc_proc apc_proc_t;

/*
 * Starts spec->argv[0] with the command line apc_cmdline_build makes from spec->argv, in its
 * own Job Object, suspended until it is in the job, with stdin on the NUL device and stdout and
 * stderr on one pipe that this thread reads. A program name without a path separator is looked
 * up in PATH (the job's PATH when spec->env sets one) with ".exe" as default extension; a
 * relative path is taken relative to spec->cwd.
 *
 * Returns 0 and *out (free with apc_proc_free), or: APC_EINVAL with apc_cmdline_build's text
 * for a refused argv (nothing created, not even the output file) or for a malformed env entry;
 * the Win32 error mapped by apc_win_seterr with the system's text, e.g.
 * `cannot start "nosuch.exe": The system cannot find the file specified (error 2)`; APC_ENOMEM.
 * On failure *out is NULL and nothing is left running.
 * Runs on the worker thread.
 */
int apc_proc_start(const apc_proc_spec_t *spec, apc_proc_t **out, char *err, size_t errsz);

/* Returns the process id of the started program. Runs on the worker thread. */
DWORD apc_proc_pid(const apc_proc_t *p);

/*
 * Waits alertably until the program exits, the deadline passes (apc_win_now_ms clock;
 * APC_TIME_NONE = no timeout) or *cancel becomes non-zero (set by a cancel APC that ran during
 * this very wait; cancel may be NULL). On timeout or cancel it terminates the Job Object (the
 * whole tree). Then it drains the output pipe (until EOF or APC_PROC_DRAIN_MS; when the program
 * ended by itself and only console hosts are left in its job, they are ended first, since under
 * Wine they hold the pipe open - see docs/process.md), closes the job
 * (KILL_ON_JOB_CLOSE ends leftover grandchildren), appends the truncation line if bytes were
 * dropped, and fills res (free with apc_proc_result_free).
 *
 * Returns 0 with res filled; APC_EIO when the output file could not be written (res is still
 * filled: the run happened, its output file is incomplete; err says why); APC_ESTATE when p was
 * already waited for; a Win32 error if waiting itself failed (the tree is then ended, res is
 * zeroed). Runs on the worker thread that called apc_proc_start; APCs queued to it (output
 * completions, cancel, anything else) run during this call.
 */
int apc_proc_wait(apc_proc_t *p, int64_t deadline_ms, const volatile LONG *cancel,
                  apc_proc_result_t *res, char *err, size_t errsz);

/* Frees what apc_proc_wait put into res and zeroes it. Accepts NULL. */
void apc_proc_result_free(apc_proc_result_t *res);

/*
 * Frees p. Accepts NULL. If the tree is still running it is ended (exit code
 * APC_PROC_EXIT_CANCELLED) and a pending read is cancelled and waited for. Runs on the worker
 * thread that called apc_proc_start.
 */
void apc_proc_free(apc_proc_t *p);

#endif /* APC_PROC_H */
