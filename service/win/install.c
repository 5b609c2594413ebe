/*
 * install.c - registering and removing the service and its event source (see install.h).
 *
 * Why from the executable as well as from installer/install.cmd: sc.exe has no verb for the
 * preshutdown timeout, and an administrator who copies apcsvc.exe by hand wants one command
 * that sets everything. Both paths set the same values; README.md (section Install on Windows) lists them.
 *
 * Install, step by step (each step one line on opts->out):
 *
 *   OpenSCManagerW ──denied──▶ APC_EDENIED ("run it from an elevated prompt")
 *        │
 *   CreateServiceW ──ERROR_SERVICE_EXISTS──▶ OpenServiceW + ChangeServiceConfigW (upgrade)
 *        │                                         │
 *        ├◀────────────────────────────────────────┘
 *   ChangeServiceConfig2W x5 (each refusal: a warning, the next one still runs)
 *        │
 *   event source key (a failure here fails the install: the service's log needs it)
 *
 * Thread: the caller's (apcsvc.exe's main thread; the tests' thread). No state is kept.
 */
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_str.h"
#include "install.h"
#include "svclog.h"
#include "win_util.h"

/* Prints one progress or warning line; out may be NULL. */
static void say(FILE *out, const char *fmt, ...) APC_PRINTF(2, 3);

static void say(FILE *out, const char *fmt, ...)
{
    va_list ap;

    if (out == NULL)
        return;
    va_start(ap, fmt);
    (void)vfprintf(out, fmt, ap);
    va_end(ap);
    (void)fputc('\n', out);
    (void)fflush(out);
}

/* Checks that path can stand between double quotes on a command line. */
static int quotable(const char *path, char *err, size_t errsz)
{
    size_t n;

    if (path == NULL || path[0] == '\0')
        return apc_seterr(err, errsz, APC_EINVAL, "an empty path cannot be installed");
    if (strchr(path, '"') != NULL)
        return apc_seterr(err, errsz, APC_EINVAL,
                          "path \"%s\" cannot be quoted on a command line: it contains '\"'", path);
    n = strlen(path);
    if (path[n - 1] == '\\')
        return apc_seterr(err, errsz, APC_EINVAL,
                          "path \"%s\" cannot be quoted on a command line: it ends with '\\'",
                          path);
    return 0;
}

int apc_install_binpath(const char *exe, const char *config, char **out, char *err, size_t errsz)
{
    apc_buf_t b;
    int rc;

    *out = NULL;
    memset(&b, 0, sizeof b);
    rc = quotable(exe, err, errsz);
    if (rc == 0 && config != NULL)
        rc = quotable(config, err, errsz);
    if (rc != 0)
        return rc;
    if (config != NULL)
        apc_buf_printf(&b, "\"%s\" --config \"%s\"", exe, config);
    else
        apc_buf_printf(&b, "\"%s\"", exe);
    if (apc_buf_failed(&b)) {
        apc_buf_free(&b);
        return apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    }
    *out = apc_buf_take(&b);
    return *out != NULL ? 0 : apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
}

int apc_install_self_path(char **out, char *err, size_t errsz)
{
    wchar_t *w = NULL;
    DWORD cap = MAX_PATH;
    int rc = 0;

    *out = NULL;
    for (;;) {
        wchar_t *grown = realloc(w, cap * sizeof *w);
        DWORD n;

        if (grown == NULL) {
            rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
            goto cleanup;
        }
        w = grown;
        /* A result equal to the buffer size means "truncated" (and ERROR_INSUFFICIENT_BUFFER). */
        n = GetModuleFileNameW(NULL, w, cap);
        if (n == 0) {
            rc = apc_win_seterr(err, errsz, GetLastError(), "GetModuleFileNameW");
            goto cleanup;
        }
        if (n < cap)
            break;
        if (cap >= 32768u) {
            rc = apc_win_seterr(err, errsz, ERROR_INSUFFICIENT_BUFFER, "GetModuleFileNameW");
            goto cleanup;
        }
        cap *= 2;
    }
    *out = apc_wide_to_utf8(w);
    if (*out == NULL)
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");

cleanup:
    free(w);
    return rc;
}

/* "<key>\<source>" as UTF-16 for the event source; NULL on a bad name or no memory. */
static wchar_t *source_key(const char *source, char *err, size_t errsz, int *rc)
{
    apc_buf_t k;
    wchar_t *w = NULL;

    if (source == NULL || source[0] == '\0' || strchr(source, '\\') != NULL) {
        *rc = apc_seterr(err, errsz, APC_EINVAL, "event source name \"%s\" is not valid",
                         source != NULL ? source : "");
        return NULL;
    }
    memset(&k, 0, sizeof k);
    apc_buf_printf(&k, "%s\\%s", APC_INSTALL_EVENTLOG_KEY, source);
    w = apc_buf_failed(&k) ? NULL : apc_utf8_to_wide(k.data);
    apc_buf_free(&k);
    if (w == NULL)
        *rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
    return w;
}

int apc_install_event_source_add(const char *source, const char *exe, char *err, size_t errsz)
{
    wchar_t *key = NULL;
    wchar_t *wexe = NULL;
    HKEY h = NULL;
    DWORD types = APC_INSTALL_TYPES_SUPPORTED;
    LSTATUS ls;
    int rc = 0;

    key = source_key(source, err, errsz, &rc);
    if (key == NULL)
        goto cleanup;
    wexe = exe != NULL ? apc_utf8_to_wide(exe) : NULL;
    if (wexe == NULL) {
        rc = apc_seterr(err, errsz, exe == NULL ? APC_EINVAL : APC_ENOMEM,
                        "event source: no message file");
        goto cleanup;
    }
    /* RegCreateKeyExW returns the error (it does not set GetLastError). */
    ls = RegCreateKeyExW(HKEY_LOCAL_MACHINE, key, 0, NULL, REG_OPTION_NON_VOLATILE, KEY_SET_VALUE,
                         NULL, &h, NULL);
    if (ls != ERROR_SUCCESS) {
        h = NULL;
        rc = apc_win_seterr(err, errsz, (DWORD)ls, "creating registry key HKLM\\%s\\%s",
                            APC_INSTALL_EVENTLOG_KEY, source);
        goto cleanup;
    }
    ls = RegSetValueExW(h, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)wexe,
                        (DWORD)((wcslen(wexe) + 1) * sizeof *wexe));
    if (ls == ERROR_SUCCESS)
        ls = RegSetValueExW(h, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types,
                            (DWORD)sizeof types);
    if (ls != ERROR_SUCCESS)
        rc = apc_win_seterr(err, errsz, (DWORD)ls, "setting the values of event source \"%s\"",
                            source);

cleanup:
    if (h != NULL)
        (void)RegCloseKey(h);
    free(wexe);
    free(key);
    return rc;
}

int apc_install_event_source_remove(const char *source, int *existed, char *err, size_t errsz)
{
    wchar_t *key = NULL;
    LSTATUS ls;
    int rc = 0;

    if (existed != NULL)
        *existed = 0;
    key = source_key(source, err, errsz, &rc);
    if (key == NULL)
        return rc;
    ls = RegDeleteKeyW(HKEY_LOCAL_MACHINE, key);
    if (ls == ERROR_SUCCESS) {
        if (existed != NULL)
            *existed = 1;
    } else if (ls != ERROR_FILE_NOT_FOUND) {
        rc = apc_win_seterr(err, errsz, (DWORD)ls, "deleting registry key HKLM\\%s\\%s",
                            APC_INSTALL_EVENTLOG_KEY, source);
    }
    free(key);
    return rc;
}

/* Applies one optional setting; a refusal is printed as a warning and counted. */
static void config2(SC_HANDLE svc, DWORD level, void *info, const char *what, FILE *out,
                    int *warnings)
{
    char msg[512];

    if (ChangeServiceConfig2W(svc, level, info))
        return;
    (void)apc_win_seterr(msg, sizeof msg, GetLastError(), "%s not set", what);
    say(out, "apcsvc: warning: %s", msg);
    (*warnings)++;
}

/*
 * Reads the failure actions back: Wine 8 answers TRUE to ChangeServiceConfig2W for them but
 * stores nothing, and an operator must learn that the service will not be restarted.
 */
static void check_failure_actions(SC_HANDLE svc, FILE *out, int *warnings)
{
    SERVICE_FAILURE_ACTIONSW *fa = NULL;
    DWORD need = 0;
    DWORD code = 0;

    if (!QueryServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, NULL, 0, &need)) {
        code = GetLastError();
        if (code == ERROR_INSUFFICIENT_BUFFER) {
            code = 0;
            fa = malloc(need);
            if (fa == NULL)
                code = ERROR_NOT_ENOUGH_MEMORY;
            else if (!QueryServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, (LPBYTE)fa, need,
                                           &need))
                code = GetLastError();
        }
    }
    if (code != 0) {
        char msg[512];
        (void)apc_win_seterr(msg, sizeof msg, code,
                             "failure actions not confirmed: reading them back failed");
        say(out, "apcsvc: warning: %s", msg);
        (*warnings)++;
    } else if (fa == NULL || fa->cActions != 3) {
        say(out, "apcsvc: warning: failure actions were accepted but not stored (the service "
                 "will not be restarted after a failure)");
        (*warnings)++;
    }
    free(fa);
}

/* The five optional settings of the file comment, each tried even when another failed. */
static void apply_config2(SC_HANDLE svc, const apc_install_opts_t *o, wchar_t *description,
                          FILE *out, int *warnings)
{
    SERVICE_DELAYED_AUTO_START_INFO delayed;
    SERVICE_DESCRIPTIONW desc;
    SC_ACTION actions[3];
    SERVICE_FAILURE_ACTIONSW fa;
    SERVICE_FAILURE_ACTIONS_FLAG flag;
    SERVICE_PRESHUTDOWN_INFO pre;
    int before;

    delayed.fDelayedAutostart = TRUE;
    config2(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &delayed, "delayed automatic start", out,
            warnings);

    desc.lpDescription = description;
    config2(svc, SERVICE_CONFIG_DESCRIPTION, &desc, "description", out, warnings);

    actions[0].Type = SC_ACTION_RESTART;
    actions[0].Delay = APC_INSTALL_RESTART1_MS;
    actions[1].Type = SC_ACTION_RESTART;
    actions[1].Delay = APC_INSTALL_RESTART2_MS;
    actions[2].Type = SC_ACTION_RESTART;
    actions[2].Delay = APC_INSTALL_RESTART3_MS;
    memset(&fa, 0, sizeof fa);
    fa.dwResetPeriod = APC_INSTALL_FAILURE_RESET_S;
    fa.cActions = 3;
    fa.lpsaActions = actions;
    before = *warnings;
    config2(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa,
            "failure actions (restart after 5 s, 10 s, 60 s)", out, warnings);
    if (*warnings == before)
        check_failure_actions(svc, out, warnings);

    /* Also restart when the service stops itself with a non-zero exit code, not only on a
       crash: a service that ends without being asked to is a failure too. */
    flag.fFailureActionsOnNonCrashFailures = TRUE;
    config2(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag, "failure actions flag", out, warnings);

    pre.dwPreshutdownTimeout =
        o->preshutdown_ms != 0 ? o->preshutdown_ms : APC_INSTALL_PRESHUTDOWN_DEFAULT_MS;
    config2(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pre, "preshutdown timeout", out, warnings);
}

/* Maps an access error to APC_EDENIED with the hint every operator needs. */
static int scm_error(char *err, size_t errsz, DWORD code, const char *what)
{
    int rc = apc_win_seterr(err, errsz, code, "%s", what);

    if (code == ERROR_ACCESS_DENIED) {
        size_t n = strlen(err);
        (void)snprintf(err + n, errsz - n, "; run it from an elevated (Administrator) prompt");
        rc = APC_EDENIED;
    }
    return rc;
}

int apc_install_service(const apc_install_opts_t *o, int *warnings, char *err, size_t errsz)
{
    const char *name = o->name != NULL ? o->name : APC_INSTALL_DEFAULT_NAME;
    const char *display = o->display_name;
    const char *source = o->event_source != NULL ? o->event_source : APC_SVCLOG_SOURCE;
    SC_HANDLE scm = NULL;
    SC_HANDLE svc = NULL;
    char *self = NULL;
    char *bin = NULL;
    apc_buf_t dbuf;
    wchar_t *wname = NULL;
    wchar_t *wdisplay = NULL;
    wchar_t *wbin = NULL;
    wchar_t *wdesc = NULL;
    const char *exe;
    int count = 0;
    int rc;

    if (warnings != NULL)
        *warnings = 0;
    memset(&dbuf, 0, sizeof dbuf);
    /* The SCM refuses a display name that another service has (ERROR_DUPLICATE_SERVICE_NAME),
       so a second instance installed with --name gets its name in its display name. */
    if (display == NULL) {
        if (strcmp(name, APC_INSTALL_DEFAULT_NAME) == 0)
            apc_buf_puts(&dbuf, APC_INSTALL_DISPLAY_NAME);
        else
            apc_buf_printf(&dbuf, "%s (%s)", APC_INSTALL_DISPLAY_NAME, name);
        if (apc_buf_failed(&dbuf)) {
            rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory");
            goto cleanup;
        }
        display = dbuf.data;
    }
    exe = o->exe_path;
    if (exe == NULL) {
        rc = apc_install_self_path(&self, err, errsz);
        if (rc != 0)
            goto cleanup;
        exe = self;
    }
    rc = apc_install_binpath(exe, o->config_path, &bin, err, errsz);
    if (rc != 0)
        goto cleanup;
    wname = apc_utf8_to_wide(name);
    wdisplay = apc_utf8_to_wide(display);
    wbin = apc_utf8_to_wide(bin);
    wdesc = apc_utf8_to_wide(APC_INSTALL_DESCRIPTION);
    if (wname == NULL || wdisplay == NULL || wbin == NULL || wdesc == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory (or a name that is not UTF-8)");
        goto cleanup;
    }

    scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
    if (scm == NULL) {
        rc = scm_error(err, errsz, GetLastError(), "opening the service control manager");
        goto cleanup;
    }
    /* SERVICE_START too: ChangeServiceConfig2W needs it to store SC_ACTION_RESTART actions. */
    svc = CreateServiceW(scm, wname, wdisplay,
                         SERVICE_CHANGE_CONFIG | SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS |
                             SERVICE_START,
                         SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, wbin,
                         NULL, NULL, NULL, NULL, NULL);
    if (svc != NULL) {
        say(o->out, "apcsvc: created service \"%s\" (%s): %s", name, display, bin);
    } else {
        DWORD code = GetLastError();
        SERVICE_STATUS st;

        if (code == ERROR_SERVICE_MARKED_FOR_DELETE) {
            rc = apc_seterr(err, errsz, APC_ESTATE,
                            "service \"%s\" is marked for deletion; close every program that "
                            "holds it open (services.msc, Event Viewer) and try again",
                            name);
            goto cleanup;
        }
        if (code != ERROR_SERVICE_EXISTS) {
            rc = scm_error(err, errsz, code, "creating the service");
            goto cleanup;
        }
        svc = OpenServiceW(scm, wname,
                           SERVICE_CHANGE_CONFIG | SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS |
                               SERVICE_START);
        if (svc == NULL) {
            rc = scm_error(err, errsz, GetLastError(), "opening the existing service");
            goto cleanup;
        }
        if (!ChangeServiceConfigW(svc, SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
                                  SERVICE_ERROR_NORMAL, wbin, NULL, NULL, NULL, NULL, NULL,
                                  wdisplay)) {
            rc = scm_error(err, errsz, GetLastError(), "updating the existing service");
            goto cleanup;
        }
        say(o->out, "apcsvc: service \"%s\" existed: updated it in place: %s", name, bin);
        if (QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_STOPPED)
            say(o->out,
                "apcsvc: note: the service is running; the new settings take effect "
                "when it restarts (sc stop %s, sc start %s)",
                name, name);
    }

    apply_config2(svc, o, wdesc, o->out, &count);

    if (source[0] != '\0') {
        rc = apc_install_event_source_add(source, exe, err, errsz);
        if (rc == APC_EDENIED || rc == apc_win_errno(ERROR_ACCESS_DENIED))
            rc = APC_EDENIED;
        if (rc != 0)
            goto cleanup;
        say(o->out, "apcsvc: registered event source \"%s\" (Application log)", source);
    }

cleanup:
    if (svc != NULL)
        (void)CloseServiceHandle(svc);
    if (scm != NULL)
        (void)CloseServiceHandle(scm);
    if (warnings != NULL)
        *warnings = count;
    free(wdesc);
    free(wbin);
    free(wdisplay);
    free(wname);
    free(bin);
    apc_buf_free(&dbuf);
    free(self);
    return rc;
}

/*
 * Asks a running service to stop and waits until the SCM reports STOPPED or timeout_ms has
 * passed, polling at a tenth of the wait hint (between 100 ms and 1 s), as Microsoft's
 * service samples do: the SCM has no "stopped" notification that works without a callback.
 */
static int stop_and_wait(SC_HANDLE svc, const char *name, DWORD timeout_ms, FILE *out, char *err,
                         size_t errsz)
{
    SERVICE_STATUS_PROCESS sp;
    SERVICE_STATUS st;
    ULONGLONG deadline = GetTickCount64() + timeout_ms;
    DWORD got;

    if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (LPBYTE)&sp, (DWORD)sizeof sp, &got))
        return apc_win_seterr(err, errsz, GetLastError(), "querying service \"%s\"", name);
    if (sp.dwCurrentState == SERVICE_STOPPED)
        return 0;
    if (sp.dwCurrentState != SERVICE_STOP_PENDING) {
        if (!ControlService(svc, SERVICE_CONTROL_STOP, &st)) {
            DWORD code = GetLastError();
            /* It may have stopped between the query and the control. */
            if (code != ERROR_SERVICE_NOT_ACTIVE)
                return apc_win_seterr(err, errsz, code, "stopping service \"%s\"", name);
        }
        say(out, "apcsvc: stopping service \"%s\" (pid %lu)...", name,
            (unsigned long)sp.dwProcessId);
    }
    for (;;) {
        DWORD step;

        if (!QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (LPBYTE)&sp, (DWORD)sizeof sp, &got))
            return apc_win_seterr(err, errsz, GetLastError(), "querying service \"%s\"", name);
        if (sp.dwCurrentState == SERVICE_STOPPED)
            return 0;
        if (GetTickCount64() >= deadline)
            return apc_seterr(err, errsz, APC_ETIMEDOUT, "service \"%s\" did not stop within %lu s",
                              name, (unsigned long)(timeout_ms / 1000u));
        step = sp.dwWaitHint / 10u;
        if (step < 100u)
            step = 100u;
        if (step > 1000u)
            step = 1000u;
        Sleep(step);
    }
}

int apc_install_remove(const apc_install_opts_t *o, int *warnings, char *err, size_t errsz)
{
    const char *name = o->name != NULL ? o->name : APC_INSTALL_DEFAULT_NAME;
    const char *source = o->event_source != NULL ? o->event_source : APC_SVCLOG_SOURCE;
    DWORD wait_ms = o->stop_wait_ms != 0 ? o->stop_wait_ms : APC_INSTALL_STOP_WAIT_DEFAULT_MS;
    SC_HANDLE scm = NULL;
    SC_HANDLE svc = NULL;
    wchar_t *wname = NULL;
    char serr[512];
    int count = 0;
    int existed = 0;
    int stop_rc = 0;
    int rc = 0;

    if (warnings != NULL)
        *warnings = 0;
    wname = apc_utf8_to_wide(name);
    if (wname == NULL) {
        rc = apc_seterr(err, errsz, APC_ENOMEM, "out of memory (or a name that is not UTF-8)");
        goto cleanup;
    }
    scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    if (scm == NULL) {
        rc = scm_error(err, errsz, GetLastError(), "opening the service control manager");
        goto cleanup;
    }
    svc = OpenServiceW(scm, wname, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
    if (svc == NULL) {
        DWORD code = GetLastError();
        if (code != ERROR_SERVICE_DOES_NOT_EXIST) {
            rc = scm_error(err, errsz, code, "opening the service");
            goto cleanup;
        }
        rc = apc_seterr(err, errsz, APC_ENOTFOUND, "service \"%s\" is not installed", name);
    } else {
        /* A service that will not stop is still deleted: the SCM removes it once it stops. */
        stop_rc = stop_and_wait(svc, name, wait_ms, o->out, serr, sizeof serr);
        if (stop_rc != 0) {
            say(o->out, "apcsvc: warning: %s", serr);
            count++;
        }
        if (!DeleteService(svc)) {
            DWORD code = GetLastError();
            if (code != ERROR_SERVICE_MARKED_FOR_DELETE) {
                rc = scm_error(err, errsz, code, "deleting the service");
                goto cleanup;
            }
        }
        say(o->out, "apcsvc: deleted service \"%s\"", name);
    }

    if (source[0] != '\0') {
        int src_rc = apc_install_event_source_remove(source, &existed, serr, sizeof serr);
        if (src_rc != 0) {
            say(o->out, "apcsvc: warning: %s", serr);
            count++;
        } else if (existed) {
            say(o->out, "apcsvc: removed event source \"%s\"", source);
        }
    }
    if (rc == 0 && stop_rc == APC_ETIMEDOUT)
        rc = apc_seterr(err, errsz, APC_ETIMEDOUT,
                        "service \"%s\" did not stop in time; it is marked for deletion and "
                        "goes away once it stops",
                        name);

cleanup:
    if (svc != NULL)
        (void)CloseServiceHandle(svc);
    if (scm != NULL)
        (void)CloseServiceHandle(scm);
    if (warnings != NULL)
        *warnings = count;
    free(wname);
    return rc;
}
