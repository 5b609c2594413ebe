/*
 * main.c - apcsvc.exe's entry point: the command line, then service mode or console mode.
 *
 *   apcsvc.exe [--config PATH] [--name NAME] [--allow-insecure-config]
 *                                                   service mode (what `sc create` runs)
 *   apcsvc.exe run [--config PATH] [--name NAME] [--allow-insecure-config]
 *                                                   console mode: the same engine, in front
 *   apcsvc.exe install [--config PATH] [--name NAME]   register the service (install.c)
 *   apcsvc.exe uninstall [--name NAME]                 stop and remove it
 *   apcsvc.exe --help | --version
 *
 * The arguments arrive as UTF-16 (wmain, linked with -municode) and are converted to UTF-8
 * once, here; everything after works in UTF-8. The only code that names the real engine is
 * the ops table below, so svc.c can be tested with a fake one.
 *
 * --allow-insecure-config is a command-line option and not a config key on purpose: whoever
 * may write the config file could otherwise switch its own ACL check off (cfgacl.h). The
 * service's command line is its image path in the SCM, which only administrators can change.
 *
 * Thread: the process' main thread (in service mode it becomes the SCM dispatcher thread).
 */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_config.h"
#include "apc_protocol.h"
#include "apc_str.h"
#include "cfgacl.h"
#include "engine.h"
#include "install.h"
#include "paths.h"
#include "svc.h"
#include "svclog.h"
#include "win_util.h"

static const apc_svc_engine_ops_t engine_ops = {
    apc_engine_start,      apc_engine_stop, apc_engine_join,
    apc_engine_done_event, apc_engine_free, apc_engine_post,
};

static const char usage_text[] =
    "usage: apcsvc [--config PATH] [--name NAME]\n"
    "       apcsvc run [--config PATH] [--name NAME]\n"
    "       apcsvc install [--config PATH] [--name NAME]\n"
    "       apcsvc uninstall [--name NAME]\n"
    "       apcsvc --help | --version\n"
    "\n"
    "Without a command apcsvc runs as a Windows service; the service control manager starts\n"
    "it (sc create NAME binPath= \"\\\"C:\\...\\apcsvc.exe\\\" --config "
    "\\\"C:\\...\\apcsvc.json\\\"\").\n"
    "\n"
    "commands:\n"
    "  run              run the scheduler in this console; Ctrl+C stops it cleanly\n"
    "  install          register this program as the service NAME (default apcsvc): quoted\n"
    "                   path, automatic (delayed) start, restart on failure, event source;\n"
    "                   an existing service is updated in place (needs an elevated prompt)\n"
    "  uninstall        stop the service NAME, delete it and remove the event source;\n"
    "                   history, configuration and logs are kept\n"
    "\n"
    "options:\n"
    "  --config PATH    configuration file (default %ProgramData%\\ApcSched\\apcsvc.json)\n"
    "  --name NAME      service name (default: the name the SCM started it under, else\n"
    "                   service.name of the config); console mode also stops when the event\n"
    "                   Local\\ApcSched-NAME-stop is signalled\n"
    "  --allow-insecure-config\n"
    "                   start even if accounts other than SYSTEM, Administrators and the\n"
    "                   service's own account may change the config file or its folder\n"
    "                   (then a warning is logged); without it such a file is refused\n"
    "  --help, -h       show this help and exit\n"
    "  --version        show the version and exit\n"
    "\n"
    "exit codes: 0 stopped cleanly, 1 failure, 2 bad command line or configuration,\n"
    "            3 data or log folder unusable, 4 the engine could not start,\n"
    "            5 not started by the service control manager, 6 already running,\n"
    "            7 install/uninstall: access denied (not elevated),\n"
    "            8 uninstall: no such service\n";

/* The first argument selects what the program does; none means service mode. */
enum { CMD_SERVICE, CMD_RUN, CMD_INSTALL, CMD_UNINSTALL };

typedef struct args {
    int command; /* CMD_* */
    int console;
    int help;
    int version;
    int allow_insecure; /* --allow-insecure-config */
    const char *config;
    const char *name;
} args_t;

/* Parses argv (UTF-8); returns 0 or APC_SVC_EXIT_CONFIG after printing the usage error. */
static int parse_args(int argc, char **argv, args_t *a)
{
    int i = 1;

    memset(a, 0, sizeof *a);
    if (argc > 1 && strcmp(argv[1], "run") == 0) {
        a->command = CMD_RUN;
        a->console = 1;
        i = 2;
    } else if (argc > 1 && strcmp(argv[1], "install") == 0) {
        a->command = CMD_INSTALL;
        i = 2;
    } else if (argc > 1 && strcmp(argv[1], "uninstall") == 0) {
        a->command = CMD_UNINSTALL;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = NULL;
        const char *opt = NULL;
        const char *value = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "/?") == 0) {
            a->help = 1;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            a->version = 1;
            continue;
        }
        if (strcmp(arg, "--allow-insecure-config") == 0) {
            if (a->command == CMD_INSTALL || a->command == CMD_UNINSTALL) {
                (void)fprintf(stderr,
                              "apcsvc: --allow-insecure-config is an option of the service, not "
                              "of %s (add it to the image path: sc config NAME binPath= ...)\n"
                              "Try 'apcsvc --help'.\n",
                              a->command == CMD_INSTALL ? "install" : "uninstall");
                return APC_SVC_EXIT_CONFIG;
            }
            a->allow_insecure = 1;
            continue;
        }
        if (strncmp(arg, "--config", 8) == 0 && (arg[8] == '\0' || arg[8] == '=')) {
            slot = &a->config;
            opt = "--config";
            value = arg[8] == '=' ? arg + 9 : NULL;
        } else if (strncmp(arg, "--name", 6) == 0 && (arg[6] == '\0' || arg[6] == '=')) {
            slot = &a->name;
            opt = "--name";
            value = arg[6] == '=' ? arg + 7 : NULL;
        } else {
            (void)fprintf(stderr, "apcsvc: unknown argument \"%s\"\nTry 'apcsvc --help'.\n", arg);
            return APC_SVC_EXIT_CONFIG;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                (void)fprintf(stderr, "apcsvc: %s needs a value\nTry 'apcsvc --help'.\n", opt);
                return APC_SVC_EXIT_CONFIG;
            }
            value = argv[++i];
        }
        if (value[0] == '\0') {
            (void)fprintf(stderr, "apcsvc: %s needs a non-empty value\n", opt);
            return APC_SVC_EXIT_CONFIG;
        }
        if (*slot != NULL) {
            (void)fprintf(stderr, "apcsvc: %s given twice\n", opt);
            return APC_SVC_EXIT_CONFIG;
        }
        *slot = value;
    }
    if (a->name != NULL && apc_proto_job_name_check(a->name, NULL, 0) != 0) {
        (void)fprintf(stderr,
                      "apcsvc: --name \"%s\" must be 1-64 characters of A-Z a-z 0-9 . _ -\n",
                      a->name);
        return APC_SVC_EXIT_CONFIG;
    }
    if (a->command == CMD_UNINSTALL && a->config != NULL) {
        (void)fprintf(stderr, "apcsvc: uninstall takes no --config (it keeps the "
                              "configuration)\nTry 'apcsvc --help'.\n");
        return APC_SVC_EXIT_CONFIG;
    }
    return 0;
}

/*
 * `apcsvc install`: checks the configuration first (an invalid one is refused: the service
 * could not start), takes the preshutdown timeout from its shutdown_grace, then registers.
 * A configuration that does not exist yet is only a warning: an operator may install first
 * and write the file before `sc start`.
 */
static int cmd_install(const args_t *a, const char *config)
{
    apc_install_opts_t o;
    apc_config_t *cfg = NULL;
    apc_diags_t diags;
    apc_buf_t text;
    char err[1024];
    int warnings = 0;
    int code = APC_SVC_EXIT_OK;
    int rc;

    memset(&o, 0, sizeof o);
    memset(&diags, 0, sizeof diags);
    memset(&text, 0, sizeof text);
    o.name = a->name;
    o.config_path = config;
    o.out = stdout;

    /* The service would refuse a file others may change: say so now, while someone watches. */
    if (apc_cfgacl_check_file(config, err, sizeof err) != 0)
        (void)printf("apcsvc: warning: the service will refuse to start: %s\n", err);
    rc = apc_config_load(config, &cfg, &diags);
    if (rc == 0) {
        int64_t ms = cfg->service.shutdown_grace_ms + (int64_t)APC_SVC_STOP_MARGIN_MS;
        o.preshutdown_ms = ms > 0 && ms < (int64_t)0xFFFFFFF0 ? (DWORD)ms : 0;
    } else if (rc == APC_ENOTFOUND) {
        (void)printf("apcsvc: warning: %s does not exist yet; write it before starting the "
                     "service\n",
                     config);
    } else {
        apc_diags_format(&diags, &text);
        (void)fprintf(stderr, "%sapcsvc: the configuration is invalid; nothing was installed\n",
                      text.data != NULL ? text.data : "");
        code = APC_SVC_EXIT_CONFIG;
        goto cleanup;
    }

    rc = apc_install_service(&o, &warnings, err, sizeof err);
    if (rc != 0) {
        (void)fprintf(stderr, "apcsvc: install failed: %s\n", err);
        code = rc == APC_EDENIED ? APC_INSTALL_EXIT_DENIED : APC_SVC_EXIT_FAILED;
        goto cleanup;
    }
    (void)printf("apcsvc: installed%s; start it with: sc start %s\n",
                 warnings > 0 ? " (with the warnings above)" : "",
                 a->name != NULL ? a->name : APC_INSTALL_DEFAULT_NAME);
    if (fflush(stdout) != 0 || ferror(stdout))
        code = APC_SVC_EXIT_FAILED;

cleanup:
    apc_buf_free(&text);
    apc_diags_free(&diags);
    apc_config_free(cfg);
    return code;
}

/* `apcsvc uninstall`: stop, delete, remove the event source; keeps data and config. */
static int cmd_uninstall(const args_t *a)
{
    apc_install_opts_t o;
    char err[1024];
    int warnings = 0;
    int rc;

    memset(&o, 0, sizeof o);
    o.name = a->name;
    o.out = stdout;
    rc = apc_install_remove(&o, &warnings, err, sizeof err);
    if (rc == APC_ENOTFOUND) {
        (void)fprintf(stderr, "apcsvc: %s\n", err);
        return APC_INSTALL_EXIT_NOT_INSTALLED;
    }
    if (rc != 0) {
        (void)fprintf(stderr, "apcsvc: uninstall failed: %s\n", err);
        return rc == APC_EDENIED ? APC_INSTALL_EXIT_DENIED : APC_SVC_EXIT_FAILED;
    }
    (void)printf("apcsvc: uninstalled%s; history, configuration and logs were kept\n",
                 warnings > 0 ? " (with the warnings above)" : "");
    return fflush(stdout) != 0 || ferror(stdout) ? APC_SVC_EXIT_FAILED : APC_SVC_EXIT_OK;
}

/* Writes s to stdout and reports a failed write (a closed pipe, a full disk) as exit 1. */
static int print_stdout(const char *s)
{
    if (fputs(s, stdout) < 0 || fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "apcsvc: cannot write to standard output\n");
        return APC_SVC_EXIT_FAILED;
    }
    return APC_SVC_EXIT_OK;
}

/* The C runtime declares no prototype for wmain; this one keeps -Wmissing-prototypes honest. */
int wmain(int argc, wchar_t **wargv);

int wmain(int argc, wchar_t **wargv)
{
    int code = APC_SVC_EXIT_OK;
    char **argv = NULL;
    char *config = NULL;
    apc_svc_t *svc = NULL;
    apc_svc_opts_t opts;
    args_t a;
    char err[1024];
    int i;

    /* UTF-8 on the console, so paths and messages print as they are (ignored when redirected). */
    err[0] = '\0';
    (void)SetConsoleOutputCP(CP_UTF8);
    argv = calloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof *argv);
    if (argv == NULL) {
        (void)fprintf(stderr, "apcsvc: out of memory\n");
        return APC_SVC_EXIT_FAILED;
    }
    for (i = 0; i < argc; i++) {
        argv[i] = apc_wide_to_utf8(wargv[i]);
        if (argv[i] == NULL) {
            (void)fprintf(stderr, "apcsvc: out of memory\n");
            code = APC_SVC_EXIT_FAILED;
            goto cleanup;
        }
    }

    code = parse_args(argc, argv, &a);
    if (code != 0)
        goto cleanup;
    if (a.help) {
        code = print_stdout(usage_text);
        goto cleanup;
    }
    if (a.version) {
        code = print_stdout("apcsvc " APC_VERSION_STRING "\n");
        goto cleanup;
    }

    if (a.command == CMD_UNINSTALL) {
        code = cmd_uninstall(&a);
        goto cleanup;
    }
    if (a.config != NULL) {
        if (apc_paths_absolute(a.config, &config, err, sizeof err) != 0) {
            (void)fprintf(stderr, "apcsvc: --config: %s\n", err);
            code = APC_SVC_EXIT_CONFIG;
            goto cleanup;
        }
    } else if (apc_paths_default_config(&config, err, sizeof err) != 0) {
        (void)fprintf(stderr, "apcsvc: %s; give --config PATH\n", err);
        code = APC_SVC_EXIT_CONFIG;
        goto cleanup;
    }

    if (a.command == CMD_INSTALL) {
        code = cmd_install(&a, config);
        goto cleanup;
    }

    memset(&opts, 0, sizeof opts);
    opts.config_path = config;
    opts.name = a.name;
    opts.console = a.console;
    opts.engine = &engine_ops;
    opts.out = stderr;
    opts.event_source = APC_SVCLOG_SOURCE;
    opts.control_pipe = 1;
    opts.config_acl = a.allow_insecure ? APC_CFGACL_WARN : APC_CFGACL_ENFORCE;

    if (!a.console) {
        code = apc_svc_dispatch(&opts, err, sizeof err);
        if (code != APC_SVC_EXIT_OK && err[0] != '\0')
            (void)fprintf(stderr, "apcsvc: %s\n", err);
        goto cleanup;
    }
    if (apc_svc_create(&opts, &svc, err, sizeof err) != 0) {
        (void)fprintf(stderr, "apcsvc: %s\n", err);
        code = APC_SVC_EXIT_FAILED;
        goto cleanup;
    }
    code = apc_svc_run(svc);

cleanup:
    apc_svc_free(svc);
    free(config);
    if (argv != NULL)
        for (i = 0; i < argc; i++)
            free(argv[i]);
    free(argv);
    return code;
}
