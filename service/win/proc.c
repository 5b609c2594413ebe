/*
 * proc.c - the process runner (see proc.h): CreateProcessW into a Job Object, output captured
 * through an overlapped named pipe read with ReadFileEx, timeout and cancel by ending the job.
 *
 * Thread: every function here runs on the worker thread that called apc_proc_start. The read
 * completion routine (on_read) is an APC on that same thread, run only while the worker sits in
 * the alertable wait of apc_proc_wait (or apc_proc_free), so the apc_proc_t needs no lock: one
 * thread owns it, and its APCs interleave with its code only at those waits.
 *
 * Why a named pipe: anonymous pipes cannot do overlapped I/O, and overlapped I/O is what lets
 * the worker read output and wait for the process, the deadline and a cancel in ONE alertable
 * wait, with no reader thread. The child's end is a plain synchronous handle, which is what
 * console programs expect for their stdout.
 *
 * A run's life (apc_proc_wait draws the right half):
 *
 *   apc_proc_start: cmdline ok? -> env, path, cwd ok? -> output file -> pipe pair + NUL
 *        -> job (KILL_ON_JOB_CLOSE) -> CreateProcessW(SUSPENDED) -> AssignProcessToJobObject
 *        -> first ReadFileEx -> ResumeThread -> RUNNING
 *        (any failure: terminate the suspended process, close everything, return the error)
 *
 *                 process handle signalled
 *   RUNNING ----------------------------------------------> EXITED ----+
 *      |  deadline passed: TerminateJobObject(1460)                    |
 *      +--------------------------------------------------> TIMED_OUT -+
 *      |  *cancel != 0 (a cancel APC ran in our wait):                 |
 *      |  TerminateJobObject(1223)                                     v
 *      +--------------------------------------------------> CANCELLED -> DRAINING: read the
 *                                                           pipe to EOF, at most 2 s (an
 *                                   EXITED run whose job holds only console hosts ends them
 *                                   first: see only_console_hosts_left)
 *                                                                      |
 *                                                                      v
 *                           CLOSED: CloseHandle(job) ends leftovers, pending read cancelled
 *                           and its completion awaited, truncation line appended, res filled
 */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_cmdline.h"
#include "apc_str.h"
#include "apc_time.h"
#include "win_util.h"

#define READ_CHUNK 16384
#define PIPE_BUFFER 65536
/* How long a cancelled read or a terminated process may take to finish before we give up. */
#define SETTLE_MS 5000

struct apc_proc {
    OVERLAPPED ov; /* the one read in flight; ov.hEvent carries the apc_proc_t (ReadFileEx
                      ignores hEvent and leaves it to the application) */
    HANDLE process;
    HANDLE job;
    HANDLE pipe; /* server end, overlapped, read only */
    HANDLE file; /* the output file, or INVALID_HANDLE_VALUE */
    DWORD pid;
    int waited;
    int read_pending; /* a ReadFileEx is in flight: ov and buf must stay alive */
    int eof;
    DWORD write_error; /* first failure writing the output file, 0 if none */
    uint64_t limit;
    uint64_t written;
    uint64_t dropped;
    unsigned char last_written;
    unsigned char *tail; /* ring buffer of tail_cap bytes */
    size_t tail_cap;
    size_t tail_head; /* next index to write */
    size_t tail_len;
    char *output_path; /* for error messages */
    unsigned char buf[READ_CHUNK];
};

static volatile LONG pipe_counter;

static void CALLBACK on_read(DWORD error, DWORD n, LPOVERLAPPED ov);

/* Keeps the last tail_cap bytes of everything the tree wrote. */
static void keep_tail(apc_proc_t *p, const unsigned char *data, size_t n)
{
    size_t first;

    if (p->tail_cap == 0)
        return;
    if (n >= p->tail_cap) {
        memcpy(p->tail, data + (n - p->tail_cap), p->tail_cap);
        p->tail_head = 0;
        p->tail_len = p->tail_cap;
        return;
    }
    first = p->tail_cap - p->tail_head;
    if (first > n)
        first = n;
    memcpy(p->tail + p->tail_head, data, first);
    memcpy(p->tail, data + first, n - first);
    p->tail_head = (p->tail_head + n) % p->tail_cap;
    p->tail_len = p->tail_len + n > p->tail_cap ? p->tail_cap : p->tail_len + n;
}

/* Writes all n bytes to the output file; remembers the first failure and stops writing. */
static void write_file(apc_proc_t *p, const void *data, DWORD n)
{
    DWORD done = 0;

    if (p->file == INVALID_HANDLE_VALUE || p->write_error != 0 || n == 0)
        return;
    if (!WriteFile(p->file, data, n, &done, NULL))
        p->write_error = GetLastError();
    else if (done != n)
        p->write_error = ERROR_WRITE_FAULT;
}

/* Takes n freshly read bytes: the file up to the cap, the rest counted as dropped. */
static void consume(apc_proc_t *p, DWORD n)
{
    uint64_t room = p->limit - p->written;
    DWORD keep = room < n ? (DWORD)room : n;

    if (keep > 0) {
        write_file(p, p->buf, keep);
        p->written += keep;
        p->last_written = p->buf[keep - 1];
    }
    p->dropped += n - keep;
    keep_tail(p, p->buf, n);
}

/*
 * Issues the next read. On an immediate failure (EOF when every writer is gone) the run's
 * output is complete. Runs on the worker thread, also from inside on_read.
 */
static void issue_read(apc_proc_t *p)
{
    memset(&p->ov, 0, sizeof p->ov);
    p->ov.hEvent = (HANDLE)p;
    if (ReadFileEx(p->pipe, p->buf, sizeof p->buf, &p->ov, on_read))
        p->read_pending = 1;
    else
        p->eof = 1; /* ERROR_BROKEN_PIPE, or the pipe is unusable: either way no more output */
}

/*
 * The ReadFileEx completion routine: an APC on the worker thread, run during its alertable
 * wait. ERROR_BROKEN_PIPE means every writer closed its end (EOF); ERROR_OPERATION_ABORTED
 * means we cancelled the read; both end the output.
 */
static void CALLBACK on_read(DWORD error, DWORD n, LPOVERLAPPED ov)
{
    apc_proc_t *p = (apc_proc_t *)ov->hEvent;

    p->read_pending = 0;
    if (error != ERROR_SUCCESS) {
        p->eof = 1;
        return;
    }
    consume(p, n);
    issue_read(p);
}

/* Returns the length of an environment entry's name: up to the first '=' after position 0. */
static size_t env_name_len(const wchar_t *e)
{
    const wchar_t *eq = wcschr(e + (e[0] == L'=' ? 1 : 0), L'=');
    return eq ? (size_t)(eq - e) : wcslen(e);
}

/* Compares two entries by name the way Windows sorts a block: ordinal, case-insensitive. */
static int env_cmp_names(const wchar_t *a, const wchar_t *b)
{
    int r = CompareStringOrdinal(a, (int)env_name_len(a), b, (int)env_name_len(b), TRUE);
    return r == CSTR_LESS_THAN ? -1 : r == CSTR_GREATER_THAN ? 1 : 0;
}

static int env_qsort_cmp(const void *a, const void *b)
{
    return env_cmp_names(*(const wchar_t *const *)a, *(const wchar_t *const *)b);
}

/*
 * Builds the child's environment: the service's own block with every spec entry put over it
 * (same name ignoring case replaces), sorted by name as CreateProcessW requires, as one
 * malloc'd double-NUL-terminated UTF-16 block in *block. Also returns a malloc'd copy of the
 * resulting PATH in *path (NULL when there is none) for the program search.
 */
static int build_env(const char *const *env, wchar_t **block, wchar_t **path, char *err,
                     size_t errsz)
{
    wchar_t *sys = NULL, **list = NULL, **mine = NULL, *out = NULL, *s;
    size_t nsys = 0, nmine = 0, n = 0, i, j, total = 2;
    int rc = APC_ENOMEM;

    *block = NULL;
    *path = NULL;
    for (nmine = 0; env[nmine] != NULL; nmine++)
        ;
    mine = calloc(nmine + 1, sizeof *mine);
    if (mine == NULL)
        goto cleanup;
    for (i = 0; i < nmine; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL || eq == env[i]) {
            rc = apc_seterr(err, errsz, APC_EINVAL,
                            "environment entry \"%s\" is not of the form NAME=value", env[i]);
            goto cleanup;
        }
        mine[i] = apc_utf8_to_wide(env[i]);
        if (mine[i] == NULL) {
            rc =
                apc_seterr(err, errsz, APC_EINVAL, "environment entry \"%s\" is not UTF-8", env[i]);
            goto cleanup;
        }
    }
    sys = GetEnvironmentStringsW();
    if (sys == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "reading the service's environment");
        goto cleanup;
    }
    for (s = sys; *s != L'\0'; s += wcslen(s) + 1)
        nsys++;
    list = calloc(nsys + nmine + 1, sizeof *list);
    if (list == NULL)
        goto cleanup;
    for (s = sys; *s != L'\0'; s += wcslen(s) + 1) {
        for (j = 0; j < nmine; j++)
            if (env_cmp_names(s, mine[j]) == 0)
                break;
        if (j == nmine)
            list[n++] = s;
    }
    for (i = 0; i < nmine; i++) {
        /* A later entry with the same name wins, as it would in the job's own env object. */
        for (j = i + 1; j < nmine; j++)
            if (env_cmp_names(mine[i], mine[j]) == 0)
                break;
        if (j == nmine)
            list[n++] = mine[i];
    }
    qsort(list, n, sizeof *list, env_qsort_cmp);
    for (i = 0; i < n; i++)
        total += wcslen(list[i]) + 1;
    out = malloc(total * sizeof *out);
    if (out == NULL)
        goto cleanup;
    s = out;
    for (i = 0; i < n; i++) {
        size_t len = wcslen(list[i]) + 1;
        memcpy(s, list[i], len * sizeof *s);
        if (env_name_len(list[i]) == 4 && _wcsnicmp(list[i], L"PATH=", 5) == 0) {
            *path = _wcsdup(list[i] + 5);
            if (*path == NULL)
                goto cleanup;
        }
        s += len;
    }
    /* The block ends with an empty entry; an empty block still needs two NULs. */
    s[0] = L'\0';
    s[1] = L'\0';
    *block = out;
    out = NULL;
    rc = 0;
cleanup:
    if (rc != 0) {
        free(*path);
        *path = NULL;
        if (rc == APC_ENOMEM)
            (void)apc_seterr(err, errsz, rc, "out of memory building the environment");
    }
    free(out);
    free(list);
    if (sys != NULL)
        (void)FreeEnvironmentStringsW(sys);
    for (i = 0; mine != NULL && i < nmine; i++)
        free(mine[i]);
    free(mine);
    return rc;
}

/* Returns a malloc'd copy of the service's PATH, or NULL when it has none. */
static wchar_t *service_path(void)
{
    DWORD n = GetEnvironmentVariableW(L"PATH", NULL, 0), m;
    wchar_t *w;

    if (n == 0)
        return NULL;
    w = malloc((size_t)n * sizeof *w);
    if (w == NULL)
        return NULL;
    m = GetEnvironmentVariableW(L"PATH", w, n);
    if (m == 0 || m >= n) {
        free(w);
        return NULL;
    }
    return w;
}

static int has_separator(const wchar_t *s)
{
    return wcschr(s, L'\\') != NULL || wcschr(s, L'/') != NULL || wcschr(s, L':') != NULL;
}

/* Returns 1 if the last path component of s has a '.' (an extension of some kind). */
static int has_extension(const wchar_t *s)
{
    const wchar_t *base = s, *c;

    for (c = s; *c != L'\0'; c++)
        if (*c == L'\\' || *c == L'/' || *c == L':')
            base = c + 1;
    return wcschr(base, L'.') != NULL;
}

/* Returns 1 if path names an existing file that is not a directory. */
static int is_file(const wchar_t *path)
{
    DWORD a = GetFileAttributesW(path);
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) == 0;
}

/*
 * Resolves the program into a malloc'd full path in *full. A bare name is searched in path
 * (SearchPathW, ".exe" added when the name has no extension) and never in the current
 * directory, so a file dropped into a job's cwd cannot shadow a system tool. A path is taken
 * relative to cwd (the job's, when given), with ".exe" added if the name has no extension and
 * no such file exists, as CreateProcess does for a command line.
 */
static int resolve_program(const char *prog, const wchar_t *wprog, const wchar_t *wcwd,
                           const wchar_t *path, wchar_t **full, char *err, size_t errsz)
{
    wchar_t *joined = NULL, *res = NULL;
    DWORD n, m;
    int rc = APC_ENOMEM;

    *full = NULL;
    if (!has_separator(wprog)) {
        n = SearchPathW(path, wprog, L".exe", 0, NULL, NULL);
        if (n == 0) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "cannot start \"%s\"", prog);
            goto cleanup;
        }
        res = malloc((size_t)n * sizeof *res);
        if (res == NULL)
            goto cleanup;
        m = SearchPathW(path, wprog, L".exe", n, res, NULL);
        if (m == 0 || m >= n) {
            rc = apc_win_seterr(err, errsz, m == 0 ? GetLastError() : ERROR_FILE_NOT_FOUND,
                                "cannot start \"%s\"", prog);
            goto cleanup;
        }
    } else {
        size_t lp = wcslen(wprog), lc;
        const wchar_t *rel = wprog;
        int absolute =
            (wprog[0] == L'\\' || wprog[0] == L'/' || (wprog[0] != L'\0' && wprog[1] == L':'));
        if (!absolute && wcwd != NULL) {
            lc = wcslen(wcwd);
            joined = malloc((lc + 1 + lp + 1) * sizeof *joined);
            if (joined == NULL)
                goto cleanup;
            memcpy(joined, wcwd, lc * sizeof *joined);
            joined[lc] = L'\\';
            memcpy(joined + lc + 1, wprog, (lp + 1) * sizeof *joined);
            rel = joined;
        }
        n = GetFullPathNameW(rel, 0, NULL, NULL);
        if (n == 0) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "cannot start \"%s\"", prog);
            goto cleanup;
        }
        res = malloc(((size_t)n + 4) * sizeof *res); /* room to add ".exe" */
        if (res == NULL)
            goto cleanup;
        m = GetFullPathNameW(rel, n, res, NULL);
        if (m == 0 || m >= n) {
            rc = apc_win_seterr(err, errsz, m == 0 ? GetLastError() : ERROR_FILE_NOT_FOUND,
                                "cannot start \"%s\"", prog);
            goto cleanup;
        }
        if (!is_file(res) && !has_extension(res))
            wcscat(res, L".exe");
        if (!is_file(res)) {
            rc = apc_win_seterr(err, errsz, ERROR_FILE_NOT_FOUND, "cannot start \"%s\"", prog);
            goto cleanup;
        }
    }
    *full = res;
    res = NULL;
    rc = 0;
cleanup:
    if (rc == APC_ENOMEM)
        (void)apc_seterr(err, errsz, rc, "out of memory resolving \"%s\"", prog);
    free(res);
    free(joined);
    return rc;
}

/*
 * Creates the pipe pair: *server is the overlapped read end we keep, *client the synchronous,
 * inheritable write end the child gets as stdout and stderr. The name is unique per process
 * and call, the instance is the first and only one, and remote clients are refused.
 */
static int make_pipe(HANDLE *server, HANDLE *client, char *err, size_t errsz)
{
    wchar_t name[96];
    SECURITY_ATTRIBUTES sa;
    OVERLAPPED ov;
    HANDLE ev = NULL;
    LONG id = InterlockedIncrement(&pipe_counter);
    int rc = 0;

    memset(&ov, 0, sizeof ov);
    *server = INVALID_HANDLE_VALUE;
    *client = INVALID_HANDLE_VALUE;
    (void)_snwprintf(name, sizeof name / sizeof name[0], L"\\\\.\\pipe\\apcsched-out-%lu-%ld",
                     (unsigned long)GetCurrentProcessId(), (long)id);
    name[sizeof name / sizeof name[0] - 1] = L'\0';
    /* The zero-valued BYTE flags are spelled out on purpose: they say what the pipe is. */
    *server = CreateNamedPipeW(
        name, PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        // cppcheck-suppress badBitmaskCheck
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, 0,
        PIPE_BUFFER, 0, NULL);
    if (*server == INVALID_HANDLE_VALUE) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "creating the output pipe");
        goto cleanup;
    }
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = NULL;
    sa.bInheritHandle = TRUE;
    *client = CreateFileW(name, GENERIC_WRITE, 0, &sa, OPEN_EXISTING, 0, NULL);
    if (*client == INVALID_HANDLE_VALUE) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "opening the output pipe");
        goto cleanup;
    }
    /* The client is already connected, so this reports ERROR_PIPE_CONNECTED at once; calling
       it anyway puts the server end in the documented connected state. */
    ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (ev == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "creating an event");
        goto cleanup;
    }
    ov.hEvent = ev;
    if (!ConnectNamedPipe(*server, &ov)) {
        DWORD e = GetLastError();
        if (e != ERROR_PIPE_CONNECTED) {
            if (e == ERROR_IO_PENDING) {
                DWORD ignored;
                (void)CancelIoEx(*server, &ov);
                (void)GetOverlappedResult(*server, &ov, &ignored, TRUE);
            }
            rc = apc_win_seterr(err, errsz, e, "connecting the output pipe");
            goto cleanup;
        }
    }
cleanup:
    (void)apc_win_close(ev);
    if (rc != 0) {
        *client = apc_win_close(*client);
        *server = apc_win_close(*server);
        *client = INVALID_HANDLE_VALUE;
        *server = INVALID_HANDLE_VALUE;
    }
    return rc;
}

/* Creates the run's job: closing its last handle ends every process in it. */
static int make_job(HANDLE *job, char *err, size_t errsz)
{
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;

    *job = CreateJobObjectW(NULL, NULL);
    if (*job == NULL)
        return apc_win_seterr(err, errsz, GetLastError(), "creating a job object");
    memset(&li, 0, sizeof li);
    /* DIE_ON_UNHANDLED_EXCEPTION: a crashing job ends with its exception code instead of
       waiting for a debugger or an error-report dialog that nobody on a service desktop sees. */
    li.BasicLimitInformation.LimitFlags =
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    if (!SetInformationJobObject(*job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
        int rc = apc_win_seterr(err, errsz, GetLastError(), "configuring the job object");
        *job = apc_win_close(*job);
        return rc;
    }
    return 0;
}

/* Ends the tree with code and waits (bounded) until the program's handle is signalled. */
static void end_tree(apc_proc_t *p, UINT code)
{
    if (p->job != NULL && !TerminateJobObject(p->job, code) && p->process != NULL)
        (void)TerminateProcess(p->process, code); /* the job is unusable: end the program */
    if (p->process != NULL)
        (void)WaitForSingleObject(p->process, SETTLE_MS);
}

/*
 * Cancels the read in flight, if any, and waits alertably until its completion routine has
 * run: until then the kernel may still write into p->buf and will call on_read with p->ov.
 */
static void settle_read(apc_proc_t *p)
{
    ULONGLONG start = GetTickCount64();

    if (!p->read_pending)
        return;
    /* ERROR_NOT_FOUND means it already completed: the routine is queued and runs at the
       next alertable wait, which the loop below provides either way. */
    (void)CancelIoEx(p->pipe, &p->ov);
    while (p->read_pending) {
        (void)SleepEx(100, TRUE);
        if (GetTickCount64() - start > SETTLE_MS * 12) {
            /* Never seen: a cancelled pipe read always completes. Keep waiting rather than
               free memory the kernel may still write to, but make the hang diagnosable. */
            OutputDebugStringW(L"apcsched: a cancelled output read has not completed\n");
            start = GetTickCount64();
        }
    }
}

int apc_proc_start(const apc_proc_spec_t *spec, apc_proc_t **out, char *err, size_t errsz)
{
    apc_buf_t cmd = {0};
    apc_proc_t *p = NULL;
    wchar_t *wcmd = NULL, *wprog = NULL, *wcwd = NULL, *envblock = NULL, *path = NULL;
    wchar_t *app = NULL, *wout = NULL;
    char *app8 = NULL;
    HANDLE client = INVALID_HANDLE_VALUE, nul = INVALID_HANDLE_VALUE;
    HANDLE inherit[2];
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
    int attrs_ready = 0;
    SIZE_T attrs_size = 0;
    SECURITY_ATTRIBUTES sa;
    STARTUPINFOEXW si;
    PROCESS_INFORMATION pi;
    int rc;

    memset(&pi, 0, sizeof pi);
    if (out != NULL)
        *out = NULL;
    if (spec == NULL || out == NULL || spec->argv == NULL || spec->argv[0] == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no command to start");

    /* 1. Everything that can be refused is checked before anything is created. */
    rc = apc_cmdline_build(spec->argv, &cmd, err, errsz);
    if (rc != 0)
        goto cleanup;
    wcmd = apc_utf8_to_wide(cmd.data);
    wprog = apc_utf8_to_wide(spec->argv[0]);
    if (wcmd == NULL || wprog == NULL) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "the command of \"%s\" is not valid UTF-8",
                        spec->argv[0]);
        goto cleanup;
    }
    if (spec->cwd != NULL) {
        DWORD a;
        wcwd = apc_utf8_to_wide(spec->cwd);
        if (wcwd == NULL) {
            rc = apc_seterr(err, errsz, APC_EINVAL, "working directory \"%s\" is not UTF-8",
                            spec->cwd);
            goto cleanup;
        }
        a = GetFileAttributesW(wcwd);
        if (a == INVALID_FILE_ATTRIBUTES) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "working directory \"%s\"", spec->cwd);
            goto cleanup;
        }
        if ((a & FILE_ATTRIBUTE_DIRECTORY) == 0) {
            rc = apc_win_seterr(err, errsz, ERROR_DIRECTORY, "working directory \"%s\"", spec->cwd);
            goto cleanup;
        }
    }
    if (spec->env != NULL) {
        rc = build_env(spec->env, &envblock, &path, err, errsz);
        if (rc != 0)
            goto cleanup;
    } else {
        path = service_path();
    }
    rc = resolve_program(spec->argv[0], wprog, wcwd, path, &app, err, errsz);
    if (rc != 0)
        goto cleanup;
    /* The batch-file check of apc_cmdline_build looked at argv[0] as written; if resolving it
       reached a batch file anyway, cmd.exe would parse the line unchecked, so refuse. */
    app8 = apc_wide_to_utf8(app);
    if (app8 == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (apc_cmdline_is_batch(app8) && !apc_cmdline_is_batch(spec->argv[0])) {
        rc = apc_seterr(err, errsz, APC_EINVAL,
                        "\"%s\" resolves to the batch file \"%s\": name the batch file itself",
                        spec->argv[0], app8);
        goto cleanup;
    }

    /* 2. The run's state and its output file. */
    p = calloc(1, sizeof *p);
    if (p == NULL || (spec->tail_bytes > 0 && (p->tail = malloc(spec->tail_bytes)) == NULL)) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    p->pipe = INVALID_HANDLE_VALUE;
    p->file = INVALID_HANDLE_VALUE;
    p->tail_cap = spec->tail_bytes;
    p->limit = spec->output_limit;
    if (spec->output_path != NULL) {
        p->output_path = apc_strdup(spec->output_path);
        wout = apc_utf8_to_wide(spec->output_path);
        if (p->output_path == NULL || wout == NULL) {
            rc = apc_seterr(err, errsz, APC_EINVAL, "output path \"%s\" is not UTF-8",
                            spec->output_path);
            goto cleanup;
        }
        /* Others may read (apcctl logs while it runs) and delete (retention) the file. */
        p->file = CreateFileW(wout, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL,
                              CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
        if (p->file == INVALID_HANDLE_VALUE) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "creating output file \"%s\"",
                                spec->output_path);
            goto cleanup;
        }
    }

    /* 3. The child's standard handles: NUL for stdin, one pipe for stdout and stderr. */
    rc = make_pipe(&p->pipe, &client, err, errsz);
    if (rc != 0)
        goto cleanup;
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = NULL;
    sa.bInheritHandle = TRUE;
    nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                      0, NULL);
    if (nul == INVALID_HANDLE_VALUE) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "opening the NUL device");
        goto cleanup;
    }

    /* 4. The job, before the process exists. */
    rc = make_job(&p->job, err, errsz);
    if (rc != 0)
        goto cleanup;

    /* 5. Inherit exactly these two handles, whatever else in the service is inheritable. */
    if (InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size) ||
        GetLastError() != ERROR_INSUFFICIENT_BUFFER) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "sizing the attribute list");
        goto cleanup;
    }
    attrs = malloc(attrs_size);
    if (attrs == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (!InitializeProcThreadAttributeList(attrs, 1, 0, &attrs_size)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "initialising the attribute list");
        goto cleanup;
    }
    attrs_ready = 1;
    inherit[0] = nul;
    inherit[1] = client;
    if (!UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit,
                                   sizeof inherit, NULL, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "setting the inherited handle list");
        goto cleanup;
    }
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = nul;
    si.StartupInfo.hStdOutput = client;
    si.StartupInfo.hStdError = client;
    si.lpAttributeList = attrs;

    /* 6. Start suspended, put it in the job, then let it run: its children are born in the
          job, so ending the job ends them all. */
    if (!CreateProcessW(app, wcmd, NULL, NULL, TRUE,
                        CREATE_SUSPENDED | CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT |
                            CREATE_NEW_PROCESS_GROUP | EXTENDED_STARTUPINFO_PRESENT,
                        envblock, wcwd, &si.StartupInfo, &pi)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "cannot start \"%s\"", spec->argv[0]);
        memset(&pi, 0, sizeof pi);
        goto cleanup;
    }
    p->process = pi.hProcess;
    p->pid = pi.dwProcessId;
    if (!AssignProcessToJobObject(p->job, pi.hProcess)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "putting \"%s\" into its job object",
                            spec->argv[0]);
        goto cleanup;
    }
    /* Our copies of the child's ends must go, or the pipe never reports EOF. */
    client = apc_win_close(client);
    client = INVALID_HANDLE_VALUE;
    nul = apc_win_close(nul);
    nul = INVALID_HANDLE_VALUE;
    issue_read(p);
    if (ResumeThread(pi.hThread) == (DWORD)-1) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "resuming \"%s\"", spec->argv[0]);
        goto cleanup;
    }
    *out = p;
    p = NULL;
    rc = 0;

cleanup:
    if (p != NULL && p->process != NULL) {
        /* Created but not handed out: end it before it runs a single instruction of its own. */
        (void)TerminateProcess(p->process, APC_PROC_EXIT_CANCELLED);
        (void)WaitForSingleObject(p->process, SETTLE_MS);
    }
    (void)apc_win_close(pi.hThread);
    if (attrs_ready)
        DeleteProcThreadAttributeList(attrs);
    free(attrs);
    (void)apc_win_close(nul);
    (void)apc_win_close(client);
    apc_proc_free(p);
    free(app8);
    free(app);
    free(path);
    free(envblock);
    free(wcwd);
    free(wout);
    free(wprog);
    free(wcmd);
    apc_buf_free(&cmd);
    return rc;
}

DWORD apc_proc_pid(const apc_proc_t *p)
{
    return p != NULL ? p->pid : 0;
}

/* Copies the ring buffer out as a NUL-terminated string, starting on a UTF-8 boundary when the
   front of the output was cut off. */
static char *take_tail(const apc_proc_t *p, uint64_t total)
{
    size_t start = (p->tail_head + p->tail_cap - p->tail_len) % (p->tail_cap ? p->tail_cap : 1);
    size_t i, skip = 0;
    char *s = malloc(p->tail_len + 1);

    if (s == NULL)
        return NULL;
    for (i = 0; i < p->tail_len; i++)
        s[i] = (char)p->tail[(start + i) % p->tail_cap];
    if (total > p->tail_len)
        while (skip < 3 && skip < p->tail_len && ((unsigned char)s[skip] & 0xC0) == 0x80)
            skip++;
    memmove(s, s + skip, p->tail_len - skip);
    s[p->tail_len - skip] = '\0';
    return s;
}

/* Returns 1 if the process pid is the console host (conhost.exe in the system folder) or has
   ended; 0 if it is anything else or cannot be told. */
static int is_console_host_or_gone(DWORD pid)
{
    wchar_t image[MAX_PATH + 1], host[MAX_PATH + 16];
    DWORD n = MAX_PATH + 1;
    UINT len = GetSystemDirectoryW(host, MAX_PATH);
    HANDLE h;
    int yes = 0;

    if (len == 0 || len >= MAX_PATH)
        return 0;
    wcscpy(host + len, L"\\conhost.exe");
    h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, pid);
    if (h == NULL)
        return GetLastError() == ERROR_INVALID_PARAMETER; /* no such process (any more) */
    if (WaitForSingleObject(h, 0) == WAIT_OBJECT_0)
        yes = 1;
    else if (QueryFullProcessImageNameW(h, 0, image, &n))
        yes = CompareStringOrdinal(image, (int)n, host, -1, TRUE) == CSTR_EQUAL;
    (void)CloseHandle(h);
    return yes;
}

/*
 * Returns 1 when the program has ended and nothing that could still write output is left in
 * its job: no process, or only the console host of its hidden console. Wine starts that host
 * (conhost.exe --headless) from the program itself with handle inheritance on, so the host holds
 * a copy of the output pipe's write end and EOF would wait for the host to finish starting up
 * and notice its console is empty: measured, most of a run's cost beyond a raw CreateProcess
 * (about 900 wineserver requests). On Windows the console host inherits nothing and EOF comes
 * with the program's end; there the host is gone, outside the job or about to end by itself, so
 * ending it changes nothing. Any doubt (a list too long, a process that cannot be opened) answers 0: the drain
 * then waits for EOF as before. Runs on the worker thread.
 */
static int only_console_hosts_left(apc_proc_t *p)
{
    union {
        JOBOBJECT_BASIC_PROCESS_ID_LIST list;
        /* Only gives the list room for 8 process ids; never read by name. */
        // cppcheck-suppress unusedStructMember
        unsigned char room[sizeof(JOBOBJECT_BASIC_PROCESS_ID_LIST) + 7 * sizeof(ULONG_PTR)];
    } u;
    DWORD i;

    memset(&u, 0, sizeof u);
    if (!QueryInformationJobObject(p->job, JobObjectBasicProcessIdList, &u, sizeof u, NULL) ||
        u.list.NumberOfProcessIdsInList != u.list.NumberOfAssignedProcesses)
        return 0;
    for (i = 0; i < u.list.NumberOfProcessIdsInList; i++) {
        DWORD pid = (DWORD)u.list.ProcessIdList[i];
        if (pid != p->pid && !is_console_host_or_gone(pid))
            return 0;
    }
    return 1;
}

int apc_proc_wait(apc_proc_t *p, int64_t deadline_ms, const volatile LONG *cancel,
                  apc_proc_result_t *res, char *err, size_t errsz)
{
    apc_proc_end_t end = APC_PROC_EXITED;
    DWORD code = 0;
    ULONGLONG drain_end;
    int rc = 0;

    if (res != NULL)
        memset(res, 0, sizeof *res);
    if (p == NULL || res == NULL)
        return apc_seterr(err, errsz, APC_EINVAL, "no process to wait for");
    if (p->waited)
        return apc_seterr(err, errsz, APC_ESTATE, "process %lu was already waited for",
                          (unsigned long)p->pid);
    p->waited = 1;

    /* RUNNING: one alertable wait serves the exit, the deadline, output and a cancel APC. */
    for (;;) {
        DWORD ms = INFINITE;
        if (cancel != NULL && *cancel != 0) {
            end = APC_PROC_CANCELLED;
            break;
        }
        if (deadline_ms != APC_TIME_NONE) {
            int64_t left = deadline_ms - apc_win_now_ms();
            if (left <= 0) {
                end = APC_PROC_TIMED_OUT;
                break;
            }
            ms = left >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)left;
        }
        DWORD r = WaitForSingleObjectEx(p->process, ms, TRUE);
        if (r == WAIT_OBJECT_0)
            break;
        if (r == WAIT_FAILED) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "waiting for process %lu",
                                (unsigned long)p->pid);
            end_tree(p, APC_PROC_EXIT_CANCELLED);
            settle_read(p);
            p->job = apc_win_close(p->job);
            memset(res, 0, sizeof *res);
            return rc;
        }
        /* WAIT_IO_COMPLETION (output or a cancel APC ran) or WAIT_TIMEOUT: re-check. */
    }
    if (end != APC_PROC_EXITED) {
        /* It may have exited on its own in the same instant; then it was not ended by us. */
        if (WaitForSingleObject(p->process, 0) == WAIT_OBJECT_0)
            end = APC_PROC_EXITED;
        else
            end_tree(p,
                     end == APC_PROC_TIMED_OUT ? APC_PROC_EXIT_TIMEOUT : APC_PROC_EXIT_CANCELLED);
    }
    if (!GetExitCodeProcess(p->process, &code))
        code = (DWORD)-1;

    /* DRAINING: what the tree wrote before it ended is still in the pipe. A grandchild left
       running may hold the pipe open; it gets APC_PROC_DRAIN_MS, then the job's end. */
    drain_end = GetTickCount64() + APC_PROC_DRAIN_MS;
    if (!p->eof && end == APC_PROC_EXITED && p->job != NULL && only_console_hosts_left(p))
        (void)TerminateJobObject(p->job, APC_PROC_EXIT_CANCELLED); /* EOF follows at once */
    while (!p->eof) {
        ULONGLONG now = GetTickCount64();
        if (now >= drain_end)
            break;
        (void)SleepEx((DWORD)(drain_end - now), TRUE);
        if (cancel != NULL && *cancel != 0 && p->job != NULL)
            (void)TerminateJobObject(p->job, APC_PROC_EXIT_CANCELLED); /* stop waiting */
    }

    /* CLOSED: whatever is left of the tree is ended with a documented code, then the job is
       closed (KILL_ON_JOB_CLOSE is the backstop should the service itself die). */
    if (!p->eof)
        (void)TerminateJobObject(p->job, APC_PROC_EXIT_CANCELLED);
    p->job = apc_win_close(p->job);
    settle_read(p);
    if (p->dropped > 0) {
        char line[128];
        int n = snprintf(line, sizeof line,
                         "%s[apcsched: output truncated after %llu bytes; %llu bytes dropped]\n",
                         p->written > 0 && p->last_written != '\n' ? "\n" : "",
                         (unsigned long long)p->written, (unsigned long long)p->dropped);
        if (n > 0 && (size_t)n < sizeof line)
            write_file(p, line, (DWORD)n);
    }
    res->end = end;
    res->pid = p->pid;
    res->exit_code = code;
    res->output_bytes = p->written + p->dropped;
    res->truncated = p->dropped > 0;
    res->output_tail = take_tail(p, res->output_bytes);
    if (res->output_tail == NULL)
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory keeping the output tail");
    if (p->write_error != 0)
        return apc_win_seterr(err, errsz, p->write_error, "writing output file \"%s\"",
                              p->output_path ? p->output_path : "");
    return rc;
}

void apc_proc_result_free(apc_proc_result_t *res)
{
    if (res == NULL)
        return;
    free(res->output_tail);
    memset(res, 0, sizeof *res);
}

void apc_proc_free(apc_proc_t *p)
{
    if (p == NULL)
        return;
    if (p->job != NULL && p->process != NULL && WaitForSingleObject(p->process, 0) != WAIT_OBJECT_0)
        end_tree(p, APC_PROC_EXIT_CANCELLED);
    p->job = apc_win_close(p->job);
    settle_read(p);
    (void)apc_win_close(p->pipe);
    (void)apc_win_close(p->file);
    (void)apc_win_close(p->process);
    free(p->output_path);
    free(p->tail);
    free(p);
}
