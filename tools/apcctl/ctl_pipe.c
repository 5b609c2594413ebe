/*
 * ctl_pipe.c - apcctl's side of the control pipe \\.\pipe\<service>: connect, send one
 * message, receive messages with a timeout.
 *
 * Why this way:
 * - SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION: if another process created the pipe
 *   name first (squatting), it can learn who we are but cannot impersonate the operator.
 * - ERROR_PIPE_BUSY means every instance is serving someone: WaitNamedPipeW for a bounded
 *   time (CTL_BUSY_WAIT_MS in total), then report "busy" instead of hanging.
 * - Message mode (PIPE_READMODE_MESSAGE) so one ReadFile returns one whole JSON message;
 *   ERROR_MORE_DATA means the message is larger than the 64 KiB cap and is refused.
 * - Overlapped I/O with an event, so a read can time out (250 ms ticks drive the progress
 *   line of `run --wait`) and no call can block apcctl forever on a stuck service.
 *
 * Threads: the main thread only.
 */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

#include "apc_protocol.h"
#include "win_util.h"

#define CTL_BUSY_WAIT_MS 5000u

/* Waits for an overlapped operation; on timeout cancels it and reports whether it finished. */
static int finish_io(ctl_conn_t *c, OVERLAPPED *ov, DWORD timeout_ms, DWORD *done, DWORD *code)
{
    DWORD w = WaitForSingleObject(c->event, timeout_ms);

    if (w == WAIT_TIMEOUT) {
        /* Cancel, then collect the result: the I/O may have completed in between. */
        if (!CancelIoEx(c->pipe, ov) && GetLastError() != ERROR_NOT_FOUND) {
            *code = GetLastError();
            return -1;
        }
    } else if (w != WAIT_OBJECT_0) {
        *code = GetLastError();
        return -1;
    }
    if (!GetOverlappedResult(c->pipe, ov, done, TRUE)) {
        *code = GetLastError();
        return -1;
    }
    *code = ERROR_SUCCESS;
    return 0;
}

int ctl_connect(const char *service, ctl_conn_t *c, ctl_reach_t *reach, char *err, size_t errsz)
{
    wchar_t *wname = NULL;
    char name[128];
    DWORD mode = PIPE_READMODE_MESSAGE;
    ULONGLONG deadline = GetTickCount64() + CTL_BUSY_WAIT_MS;
    DWORD code;
    int rc = 0;

    memset(c, 0, sizeof *c);
    c->pipe = INVALID_HANDLE_VALUE;
    *reach = CTL_REACH_BROKEN;
    /* The caller checked the service name (1-64 of [A-Za-z0-9._-]), so it cannot escape. */
    if (strlen(service) > 64) {
        rc = apc_seterr(err, errsz, APC_EINVAL, "service name too long");
        goto cleanup;
    }
    memcpy(name, "\\\\.\\pipe\\", 9);
    memcpy(name + 9, service, strlen(service) + 1);
    wname = apc_utf8_to_wide(name);
    c->buf = malloc(APC_PROTO_MAX_MESSAGE + 1u);
    c->event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (wname == NULL || c->buf == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (c->event == NULL) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "CreateEventW");
        goto cleanup;
    }
    for (;;) {
        ULONGLONG now;
        c->pipe = CreateFileW(
            wname, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (c->pipe != INVALID_HANDLE_VALUE)
            break;
        code = GetLastError();
        if (code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND) {
            *reach = CTL_REACH_NOT_RUNNING;
            rc = apc_seterr(err, errsz, APC_ENOTFOUND, "not running (no pipe %s)", name);
            goto cleanup;
        }
        if (code == ERROR_ACCESS_DENIED) {
            *reach = CTL_REACH_DENIED;
            rc = apc_seterr(err, errsz, APC_EDENIED,
                            "access denied to %s (run as an administrator or a member of "
                            "a group in service.control_allow)",
                            name);
            goto cleanup;
        }
        if (code != ERROR_PIPE_BUSY) {
            rc = apc_win_seterr(err, errsz, code, "opening %s", name);
            goto cleanup;
        }
        now = GetTickCount64();
        if (now >= deadline || (!WaitNamedPipeW(wname, (DWORD)(deadline - now)) &&
                                GetLastError() == ERROR_SEM_TIMEOUT)) {
            *reach = CTL_REACH_BUSY;
            rc = apc_seterr(err, errsz, APC_EBUSY,
                            "busy (every instance of %s stayed busy for %u s)", name,
                            CTL_BUSY_WAIT_MS / 1000u);
            goto cleanup;
        }
        /* Free now (or gone: the next CreateFileW says which); another client may win the
           race for the free instance, so loop until the deadline. */
    }
    if (!SetNamedPipeHandleState(c->pipe, &mode, NULL, NULL)) {
        rc = apc_win_seterr(err, errsz, GetLastError(), "setting message mode on %s", name);
        goto cleanup;
    }
    *reach = CTL_REACH_OK;
cleanup:
    free(wname);
    if (rc != 0)
        ctl_close(c);
    return rc;
}

int ctl_send(ctl_conn_t *c, const char *msg, size_t len, DWORD timeout_ms, char *err, size_t errsz)
{
    OVERLAPPED ov;
    DWORD done = 0, code;

    if (len > APC_PROTO_MAX_MESSAGE)
        return apc_seterr(err, errsz, APC_ETOOBIG, "request of %zu bytes exceeds the %d-byte limit",
                          len, APC_PROTO_MAX_MESSAGE);
    memset(&ov, 0, sizeof ov);
    ov.hEvent = c->event;
    if (!ResetEvent(c->event))
        return apc_win_seterr(err, errsz, GetLastError(), "ResetEvent");
    if (!WriteFile(c->pipe, msg, (DWORD)len, NULL, &ov)) {
        code = GetLastError();
        if (code != ERROR_IO_PENDING)
            return apc_win_seterr(err, errsz, code, "sending the request");
        if (finish_io(c, &ov, timeout_ms, &done, &code) != 0)
            return code == ERROR_OPERATION_ABORTED
                       ? apc_seterr(err, errsz, APC_ETIMEDOUT,
                                    "the service did not read the request in time")
                       : apc_win_seterr(err, errsz, code, "sending the request");
    } else if (!GetOverlappedResult(c->pipe, &ov, &done, TRUE)) {
        return apc_win_seterr(err, errsz, GetLastError(), "sending the request");
    }
    if (done != (DWORD)len)
        return apc_seterr(err, errsz, APC_EIO, "sending the request: wrote %lu of %zu bytes",
                          (unsigned long)done, len);
    return 0;
}

int ctl_recv(ctl_conn_t *c, DWORD timeout_ms, size_t *len, char *err, size_t errsz)
{
    OVERLAPPED ov;
    DWORD done = 0, code;
    int rc;

    *len = 0;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = c->event;
    if (!ResetEvent(c->event))
        return apc_win_seterr(err, errsz, GetLastError(), "ResetEvent");
    if (ReadFile(c->pipe, c->buf, APC_PROTO_MAX_MESSAGE, NULL, &ov)) {
        rc = GetOverlappedResult(c->pipe, &ov, &done, TRUE) ? 0 : -1;
        code = rc == 0 ? ERROR_SUCCESS : GetLastError();
    } else {
        code = GetLastError();
        if (code == ERROR_IO_PENDING)
            rc = finish_io(c, &ov, timeout_ms, &done, &code);
        else
            rc = -1;
    }
    if (rc != 0) {
        if (code == ERROR_OPERATION_ABORTED)
            return apc_seterr(err, errsz, APC_ETIMEDOUT, "no answer from the service in time");
        if (code == ERROR_MORE_DATA)
            /* The rest of the message is still in the pipe: the connection is unusable. */
            return apc_seterr(err, errsz, APC_ETOOBIG,
                              "the service sent a message larger than %d bytes",
                              APC_PROTO_MAX_MESSAGE);
        if (code == ERROR_BROKEN_PIPE || code == ERROR_PIPE_NOT_CONNECTED)
            return apc_seterr(err, errsz, APC_EIO, "the service closed the connection");
        return apc_win_seterr(err, errsz, code, "reading the answer");
    }
    c->buf[done] = '\0';
    *len = done;
    return 0;
}

void ctl_close(ctl_conn_t *c)
{
    if (c == NULL)
        return;
    if (c->pipe != NULL && c->pipe != INVALID_HANDLE_VALUE)
        CloseHandle(c->pipe);
    c->pipe = INVALID_HANDLE_VALUE;
    c->event = apc_win_close(c->event);
    free(c->buf);
    c->buf = NULL;
}
