/*
 * install.h - `apcsvc install` / `apcsvc uninstall`: registering the service with the service
 * control manager (SCM) and the event source with the event log, from the executable itself.
 *
 * What install does (the same as installer/install.cmd does with sc.exe and reg.exe):
 *   - CreateServiceW: own process, SERVICE_AUTO_START, image path QUOTED
 *     ("C:\Program Files\ApcSched\apcsvc.exe" --config "C:\ProgramData\ApcSched\apcsvc.json"),
 *     so a space in the path can never start C:\Program.exe;
 *   - ChangeServiceConfig2W: DELAYED_AUTO_START_INFO, DESCRIPTION, FAILURE_ACTIONS (restart
 *     after 5 s, 10 s, 60 s; reset after a day), FAILURE_ACTIONS_FLAG (also on a non-zero
 *     service exit code), PRESHUTDOWN_INFO (shutdown_grace + 30 s);
 *   - the event source key HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\<src>
 *     with EventMessageFile = the exe and TypesSupported = 7.
 * If the service exists already, its configuration is updated in place (ChangeServiceConfigW)
 * instead of failing, so install is idempotent. A ChangeServiceConfig2W level that the system
 * refuses (Wine stores no failure actions, for instance) is a WARNING, counted and printed,
 * not a failure: the service runs without it. What cannot be left out (creating the service,
 * the event source key) is a failure.
 *
 * Uninstall: ControlService(STOP) and a wait until STOPPED, DeleteService, remove the event
 * source key. History, config and logs are left alone.
 *
 * Every SC_HANDLE and HKEY is closed on every path (one cleanup label per function).
 *
 * Thread: the process' main thread of apcsvc.exe (a one-shot command); the functions keep no
 * state and may be called from any one thread at a time (the tests call them directly).
 */
#ifndef APC_INSTALL_H
#define APC_INSTALL_H

#include <windows.h>

#include <stddef.h>
#include <stdio.h>

/* Defaults: the service name, what services.msc shows, and sc qdescription's text. */
#define APC_INSTALL_DEFAULT_NAME "apcsvc"
#define APC_INSTALL_DISPLAY_NAME "ApcSched job scheduler"
#define APC_INSTALL_DESCRIPTION                                                          \
    "Runs scheduled and on-demand jobs (ApcSched). Control it with apcctl.exe; the run " \
    "history is an SQLite database next to the configuration."

/* The registry key below HKLM that holds the event sources of the Application log. */
#define APC_INSTALL_EVENTLOG_KEY "SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application"
/* EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE. */
#define APC_INSTALL_TYPES_SUPPORTED 7u

/* Failure actions: reset the failure count after a day; restart after 5 s, 10 s, 60 s. */
#define APC_INSTALL_FAILURE_RESET_S 86400u
#define APC_INSTALL_RESTART1_MS 5000u
#define APC_INSTALL_RESTART2_MS 10000u
#define APC_INSTALL_RESTART3_MS 60000u

/* Preshutdown timeout when the config gives none: the default shutdown_grace 30 s + 30 s. */
#define APC_INSTALL_PRESHUTDOWN_DEFAULT_MS 60000u
/* How long uninstall waits for a running service to reach STOPPED. */
#define APC_INSTALL_STOP_WAIT_DEFAULT_MS 120000u

/* Exit codes of `apcsvc install|uninstall` beyond APC_SVC_EXIT_OK/FAILED/CONFIG (0, 1, 2). */
#define APC_INSTALL_EXIT_DENIED 7        /* not elevated: the SCM refused access */
#define APC_INSTALL_EXIT_NOT_INSTALLED 8 /* uninstall: no service of that name */

typedef struct apc_install_opts {
    const char *name; /* service name; NULL = APC_INSTALL_DEFAULT_NAME */
    /* NULL = APC_INSTALL_DISPLAY_NAME, or "ApcSched job scheduler (NAME)" for a name other
       than the default: the SCM refuses two services with the same display name. */
    const char *display_name;
    const char *exe_path;     /* UTF-8, absolute; NULL = this program (GetModuleFileNameW) */
    const char *config_path;  /* UTF-8, absolute; NULL = no --config in the image path */
    const char *event_source; /* NULL = APC_SVCLOG_SOURCE ("ApcSched"); "" = do not touch */
    DWORD preshutdown_ms;     /* 0 = APC_INSTALL_PRESHUTDOWN_DEFAULT_MS */
    DWORD stop_wait_ms;       /* uninstall; 0 = APC_INSTALL_STOP_WAIT_DEFAULT_MS */
    FILE *out;                /* one line per step and per warning; NULL = silent */
} apc_install_opts_t;

/*
 * Builds the service's image path (what `sc qc` shows as BINARY_PATH_NAME) into a malloc'd
 * UTF-8 string: "<exe>" or "<exe>" --config "<config>", each path in double quotes. Returns
 * 0, APC_EINVAL (a NULL or empty exe, or a path that contains a double quote or ends with a
 * backslash, which the command-line parser would misread: `path "X" cannot be quoted on a
 * command line: it contains '"'` / `... it ends with '\'`) or APC_ENOMEM. The caller frees.
 */
int apc_install_binpath(const char *exe, const char *config, char **out, char *err, size_t errsz);

/*
 * Sets *out to the malloc'd UTF-8 full path of the running executable (GetModuleFileNameW,
 * without the 260-character limit). Returns 0, APC_ENOMEM or the translated Win32 error.
 */
int apc_install_self_path(char **out, char *err, size_t errsz);

/*
 * Creates the service, or updates an existing one in place, as the file comment says, and
 * registers the event source. *warnings (if not NULL) receives the number of optional
 * settings the system refused (each printed to opts->out as "warning: ..."). Returns 0;
 * APC_EDENIED (the SCM or the registry refused access: not elevated); APC_ESTATE (the
 * service is marked for deletion: close services.msc / wait, then retry); APC_EINVAL,
 * APC_ENOMEM, or the translated Win32 error, with the failed step in err.
 */
int apc_install_service(const apc_install_opts_t *opts, int *warnings, char *err, size_t errsz);

/*
 * Stops the service (ControlService STOP, then waits up to opts->stop_wait_ms for STOPPED),
 * deletes it and removes the event source. Returns 0; APC_ENOTFOUND (no such service: the
 * event source is removed all the same, message `service "X" is not installed`);
 * APC_EDENIED; APC_ETIMEDOUT (the service did not stop in time: it is marked for deletion,
 * the SCM removes it once it stops); or the translated Win32 error.
 */
int apc_install_remove(const apc_install_opts_t *opts, int *warnings, char *err, size_t errsz);

/*
 * Creates or updates HKLM\...\EventLog\Application\<source> with EventMessageFile = exe
 * (REG_EXPAND_SZ) and TypesSupported = 7 (REG_DWORD). Returns 0, APC_EINVAL, APC_ENOMEM,
 * APC_EDENIED or the translated Win32 error.
 */
int apc_install_event_source_add(const char *source, const char *exe, char *err, size_t errsz);

/*
 * Deletes the event source key. A missing key is not an error (*existed, if not NULL, says
 * whether it was there). Returns 0, APC_EINVAL, APC_ENOMEM, APC_EDENIED or the translated
 * Win32 error.
 */
int apc_install_event_source_remove(const char *source, int *existed, char *err, size_t errsz);

#endif /* APC_INSTALL_H */
