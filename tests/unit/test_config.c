/*
 * test_config.c - the config loader: defaults, every error class with its
 * exact text and line:col, path resolution, syntax errors, the shipped
 * config/apcsvc.json, the DST lint and the 100,000-job scale target.
 *
 * Texts are built line by line in C strings so that the expected line:col
 * can be counted from the source: line N is the N-th string piece.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apc_config.h"
#include "apc_error.h"
#include "apc_time.h"
#include "apc_tz.h"

#define FILE_NAME "apcsvc.json"
#define BASE "C:\\data"

/* Parses text as apcsvc.json in C:\data; returns the code and the formatted findings. */
static int parse(const char *text, apc_config_t **cfg, char **findings)
{
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    int rc = apc_config_parse(text, strlen(text), FILE_NAME, BASE, cfg, &d);

    apc_diags_format(&d, &b);
    assert_false(apc_buf_failed(&b));
    assert_false(d.failed);
    *findings = apc_buf_take(&b);
    apc_diags_free(&d);
    return rc;
}

/* Asserts that text is rejected with code want_rc and exactly the findings want. */
static void expect_findings(const char *text, int want_rc, const char *want)
{
    apc_config_t *cfg = (apc_config_t *)1;
    char *got = NULL;
    int rc = parse(text, &cfg, &got);

    assert_string_equal(got, want);
    assert_int_equal(rc, want_rc);
    assert_null(cfg);
    free(got);
}

/* Parses text that must be valid; the caller frees the config. */
static apc_config_t *expect_valid(const char *text)
{
    apc_config_t *cfg = NULL;
    char *got = NULL;
    int rc = parse(text, &cfg, &got);

    assert_string_equal(got, "");
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    free(got);
    return cfg;
}

/* ---- The shipped config and defaults ----------------------------------------------------- */

static void shipped_config_loads_without_findings(void **state)
{
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    (void)state;

    assert_int_equal(apc_config_load(APC_TEST_DATA_DIR "/../../config/apcsvc.json", &cfg, &d), 0);
    assert_int_equal(d.count, 0);
    assert_non_null(cfg);
    assert_int_equal(cfg->njobs, 4);
    assert_string_equal(cfg->jobs[0].name, "hello");
    assert_string_equal(cfg->jobs[0].env[0], "GREETING=hello");
    assert_string_equal(cfg->jobs[1].schedule_expr, "30 2 * * *");
    assert_int_equal(cfg->jobs[1].zone, 1); /* UTC */
    assert_int_equal(cfg->jobs[2].builtin, APC_BUILTIN_NOOP);
    assert_int_equal(cfg->jobs[3].builtin, APC_BUILTIN_SLEEP);
    assert_int_equal(cfg->jobs[3].sleep_ms, 2000);
    assert_null(cfg->jobs[3].schedule_expr);
    apc_config_free(cfg);
    apc_diags_free(&d);
}

static void empty_object_gives_every_service_default(void **state)
{
    apc_config_t *cfg = expect_valid("{}");
    (void)state;

    assert_string_equal(cfg->service.name, "apcsvc");
    assert_int_equal(cfg->service.workers, 0);
    assert_string_equal(cfg->service.history, "C:\\data\\history.db");
    assert_string_equal(cfg->service.output_dir, "C:\\data\\runs");
    assert_string_equal(cfg->service.log_dir, "C:\\data\\logs");
    assert_int_equal(cfg->service.retention_days, 30);
    assert_int_equal(cfg->service.shutdown_grace_ms, 30000);
    assert_null(cfg->service.control_allow[0]);
    assert_int_equal(cfg->njobs, 0);
    assert_string_equal(cfg->source, FILE_NAME);
    assert_string_equal(cfg->base_dir, BASE);
    apc_config_free(cfg);
}

static void job_with_only_name_and_command_gets_every_job_default(void **state)
{
    apc_config_t *cfg = expect_valid("{\"jobs\": [{\"name\": \"a\", \"command\": [\"x.exe\"]}]}");
    const apc_job_config_t *j = &cfg->jobs[0];
    (void)state;

    assert_string_equal(j->argv[0], "x.exe");
    assert_null(j->argv[1]);
    assert_null(j->env);
    assert_string_equal(j->cwd, BASE);
    assert_null(j->schedule_expr);
    assert_int_equal(j->zone, 0);
    assert_int_equal(cfg->zones[0].kind, APC_ZONE_LOCAL);
    assert_true(j->timeout_ms == APC_TIME_NONE);
    assert_int_equal(j->retries, 0);
    assert_int_equal(j->retry_backoff_ms, 30000);
    assert_int_equal(j->overlap, APC_OVERLAP_SKIP);
    assert_int_equal(j->missed, APC_MISSED_RUN_ONCE);
    assert_true(j->missed_within_ms == APC_TIME_NONE);
    assert_int_equal(j->jitter_ms, 0);
    assert_true(j->enabled);
    assert_int_equal(j->output_limit, 1024 * 1024);
    assert_false(j->allow_args);
    assert_int_equal(j->builtin, APC_BUILTIN_NONE);
    apc_config_free(cfg);
}

static void every_job_key_is_read(void **state)
{
    apc_config_t *cfg = expect_valid(
        "{\"service\": {\"name\": \"svc2\", \"workers\": 8, \"history\": \"D:\\\\h.db\","
        " \"output_dir\": \"out\", \"log_dir\": \"./logs2\", \"retention_days\": 0,"
        " \"shutdown_grace\": \"1m\", \"control_allow\": [\"BUILTIN\\\\Users\", \"ops\"]},"
        " \"jobs\": [{\"name\": \"full\", \"command\": [\"a.exe\", \"\", \"b\"],"
        " \"schedule\": \"0 */2 * * 1-5\", \"timezone\": \"CET-1CEST,M3.5.0,M10.5.0/3\","
        " \"cwd\": \"work\", \"env\": {\"A\": \"1\", \"B\": \"\"}, \"timeout\": \"10m\","
        " \"retries\": 100, \"retry_backoff\": \"1s\", \"overlap\": \"replace\","
        " \"missed\": \"skip\", \"missed_within\": \"2h\", \"jitter\": \"5s\","
        " \"enabled\": false, \"output_limit\": 4096, \"allow_args\": true,"
        " \"$comment\": \"ignored\"}]}");
    const apc_job_config_t *j = &cfg->jobs[0];
    (void)state;

    assert_string_equal(cfg->service.name, "svc2");
    assert_int_equal(cfg->service.workers, 8);
    assert_string_equal(cfg->service.history, "D:\\h.db");
    assert_string_equal(cfg->service.output_dir, "C:\\data\\out");
    assert_string_equal(cfg->service.log_dir, "C:\\data\\logs2");
    assert_int_equal(cfg->service.retention_days, 0);
    assert_int_equal(cfg->service.shutdown_grace_ms, 60000);
    assert_string_equal(cfg->service.control_allow[0], "BUILTIN\\Users");
    assert_string_equal(cfg->service.control_allow[1], "ops");
    assert_null(cfg->service.control_allow[2]);
    assert_string_equal(j->argv[1], "");
    assert_string_equal(j->argv[2], "b");
    assert_null(j->argv[3]);
    assert_string_equal(j->schedule_expr, "0 */2 * * 1-5");
    assert_int_equal(j->schedule.kind, APC_SCHED_CRON);
    assert_int_equal(j->zone, 2);
    assert_int_equal(cfg->nzones, 3);
    assert_int_equal(cfg->zones[2].kind, APC_ZONE_RULES);
    assert_string_equal(cfg->zones[2].name, "CET-1CEST,M3.5.0,M10.5.0/3");
    assert_string_equal(j->cwd, "C:\\data\\work");
    assert_string_equal(j->env[0], "A=1");
    assert_string_equal(j->env[1], "B=");
    assert_null(j->env[2]);
    assert_int_equal(j->timeout_ms, 600000);
    assert_int_equal(j->retries, 100);
    assert_int_equal(j->retry_backoff_ms, 1000);
    assert_int_equal(j->overlap, APC_OVERLAP_REPLACE);
    assert_int_equal(j->missed, APC_MISSED_SKIP);
    assert_int_equal(j->missed_within_ms, 7200000);
    assert_int_equal(j->jitter_ms, 5000);
    assert_false(j->enabled);
    assert_int_equal(j->output_limit, 4096);
    assert_true(j->allow_args);
    apc_config_free(cfg);
}

static void null_means_none_for_schedule_timeout_and_missed_within(void **state)
{
    apc_config_t *cfg = expect_valid("{\"jobs\": [{\"name\": \"m\", \"builtin\": \"noop\","
                                     " \"schedule\": null, \"timeout\": null,"
                                     " \"missed_within\": null}]}");
    (void)state;
    assert_null(cfg->jobs[0].schedule_expr);
    assert_true(cfg->jobs[0].timeout_ms == APC_TIME_NONE);
    assert_true(cfg->jobs[0].missed_within_ms == APC_TIME_NONE);
    apc_config_free(cfg);
}

/* ---- Error classes, exact text and position --------------------------------------------- */

static void schedule_error_names_file_line_col_and_path(void **state)
{
    (void)state;
    expect_findings("{\n"
                    "  \"jobs\": [\n"
                    "    {\"name\": \"a\", \"builtin\": \"noop\"},\n"
                    "    {\"name\": \"b\", \"builtin\": \"noop\"},\n"
                    "    {\"name\": \"c\", \"builtin\": \"noop\"},\n"
                    "    {\n"
                    "      \"name\": \"d\",\n"
                    "      \"builtin\": \"noop\",\n"
                    "      \"enabled\": true,\n"
                    "      \"retries\": 1,\n"
                    "      \"jitter\": \"0s\",\n"
                    "     \"schedule\": \"61 * * * *\"\n"
                    "    }\n"
                    "  ]\n"
                    "}\n",
                    APC_EINVAL,
                    "apcsvc.json:12:18: jobs[3].schedule: minute field \"61\" is out of range "
                    "0-59\n");
}

static void unknown_key_is_reported_at_the_key_with_a_suggestion(void **state)
{
    (void)state;
    expect_findings("{\n"
                    "  \"service\": {\n"
                    "    \"name\": \"apcsvc\",\n"
                    "    \"wokers\": 4\n"
                    "  }\n"
                    "}\n",
                    APC_EINVAL,
                    "apcsvc.json:4:5: service.wokers: unknown key (did you mean \"workers\"?)\n");
}

static void unknown_key_far_from_every_known_key_gets_no_suggestion(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"colour\": 1}]}",
                    APC_EINVAL, "apcsvc.json:1:44: jobs[0].colour: unknown key\n");
}

static void duplicate_job_name_points_at_the_first_definition(void **state)
{
    (void)state;
    expect_findings("{\n"
                    "  \"jobs\": [\n"
                    "    {\n"
                    "      \"builtin\": \"noop\",\n"
                    "      \"enabled\": true,\n"
                    "      \"retries\": 0,\n"
                    "      \"name\": \"hello\"\n"
                    "    },\n"
                    "    {\"name\": \"hello\", \"builtin\": \"noop\"}\n"
                    "  ]\n"
                    "}\n",
                    APC_EINVAL,
                    "apcsvc.json:9:14: jobs[1].name: duplicate job name \"hello\" (first defined "
                    "at 7:15)\n");
}

static void job_names_are_unique_ignoring_case(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"Backup\", \"builtin\": \"noop\"},\n"
                    "{\"name\": \"BACKUP\", \"builtin\": \"noop\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:2:10: jobs[1].name: duplicate job name \"BACKUP\" (job names "
                    "ignore case; first defined at 1:20 as \"Backup\")\n");
}

/* The ACL check's switch is an apcsvc.exe option: a file that may be written by others
   must not be able to turn its own check off (README "Security model in short"). */
static void
allow_insecure_config_in_the_file_is_refused_naming_the_command_line_option(void **state)
{
    (void)state;
    expect_findings("{\"service\": {\"allow_insecure_config\": false}}", APC_EINVAL,
                    "apcsvc.json:1:14: service.allow_insecure_config: this setting moved to the "
                    "apcsvc.exe command line (--allow-insecure-config) because a writable config "
                    "could turn its own check off\n");
}

static void wrong_types_name_what_was_expected_and_what_came(void **state)
{
    (void)state;
    expect_findings(
        "{\"service\": {\"workers\": \"4\", \"allow_insecure_config\": 1, \"history\": 5},\n"
        " \"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"retries\": \"2\",\n"
        "  \"timeout\": 30, \"overlap\": true, \"env\": [], \"output_limit\": {}}]}",
        APC_EINVAL,
        "apcsvc.json:1:25: service.workers: expected an integer 0-64, got a string\n"
        "apcsvc.json:1:30: service.allow_insecure_config: this setting moved to the apcsvc.exe "
        "command line (--allow-insecure-config) because a writable config could turn its own "
        "check off\n"
        "apcsvc.json:1:69: service.history: expected a path string, got a number\n"
        "apcsvc.json:2:55: jobs[0].retries: expected an integer 0-100, got a string\n"
        "apcsvc.json:3:14: jobs[0].timeout: expected a duration like \"30s\" or null, got a "
        "number\n"
        "apcsvc.json:3:29: jobs[0].overlap: expected one of \"skip\", \"queue\", \"parallel\", "
        "\"replace\", got a boolean\n"
        "apcsvc.json:3:42: jobs[0].env: expected an object of name: \"value\" strings, got an "
        "array\n"
        "apcsvc.json:3:62: jobs[0].output_limit: expected a size like \"1MiB\", got an "
        "object\n");
}

static void out_of_range_values_quote_the_value_given(void **state)
{
    (void)state;
    expect_findings("{\"service\": {\"workers\": 65, \"retention_days\": -1,"
                    " \"shutdown_grace\": \"11m\"},\n"
                    " \"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"retries\": 2.5,"
                    " \"timeout\": \"0s\", \"output_limit\": \"2GiB\", \"jitter\": \"2d\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:25: service.workers: expected an integer 0-64, got 65\n"
                    "apcsvc.json:1:47: service.retention_days: expected an integer 0-36500, "
                    "got -1\n"
                    "apcsvc.json:1:69: service.shutdown_grace: expected a duration from 0s to "
                    "10m, got \"11m\"\n"
                    "apcsvc.json:2:55: jobs[0].retries: expected an integer 0-100, got 2.5\n"
                    "apcsvc.json:2:71: jobs[0].timeout: expected a duration from 1ms to 30d or "
                    "null, got \"0s\"\n"
                    "apcsvc.json:2:93: jobs[0].output_limit: expected a size from 0 to 1GiB, got "
                    "\"2GiB\"\n"
                    "apcsvc.json:2:111: jobs[0].jitter: expected a duration from 0s to 1d, got "
                    "\"2d\"\n");
}

static void malformed_duration_passes_the_parsers_reason_on(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"timeout\": \"5x\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:55: jobs[0].timeout: duration \"5x\" has an unknown unit \"x\" "
                    "(use ms, s, m, h or d)\n");
}

static void enum_typo_gets_a_suggestion(void **state)
{
    (void)state;
    expect_findings(
        "{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"missed\": \"run-once\"}]}",
        APC_EINVAL,
        "apcsvc.json:1:54: jobs[0].missed: expected one of \"run_once\", \"skip\", got "
        "\"run-once\" (did you mean \"run_once\"?)\n");
}

static void empty_argv_and_empty_program_are_errors(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"command\": []},\n"
                    "{\"name\": \"b\", \"command\": [\"\", \"x\"]},\n"
                    "{\"name\": \"c\", \"command\": \"x.exe /q\"},\n"
                    "{\"name\": \"d\", \"command\": [\"x.exe\", 1]}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:36: jobs[0].command: must not be empty: the first element is "
                    "the program to run\n"
                    "apcsvc.json:2:27: jobs[1].command[0]: the program name must not be empty\n"
                    "apcsvc.json:3:26: jobs[2].command: expected a non-empty array of strings "
                    "like [\"prog.exe\", \"arg\"], got a string\n"
                    "apcsvc.json:4:36: jobs[3].command[1]: expected a string, got a number\n");
}

static void a_job_needs_exactly_one_of_command_and_builtin(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\"},\n"
                    "{\"name\": \"b\", \"command\": [\"x.exe\"], \"builtin\": \"noop\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:11: jobs[0]: needs \"command\" (an argv array) or \"builtin\"\n"
                    "apcsvc.json:2:48: jobs[1].builtin: cannot be combined with \"command\" (a job "
                    "has exactly one of them)\n");
}

static void builtin_arguments_are_checked(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"command\": [\"x\"], \"args\": [\"1\"]},\n"
                    "{\"name\": \"b\", \"builtin\": \"noop\", \"args\": [\"1\"]},\n"
                    "{\"name\": \"c\", \"builtin\": \"sleep\"},\n"
                    "{\"name\": \"d\", \"builtin\": \"sleep\", \"args\": [\"1s\", \"2s\"]},\n"
                    "{\"name\": \"e\", \"builtin\": \"sleep\", \"args\": [\"2days\"]},\n"
                    "{\"name\": \"f\", \"builtin\": \"nap\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:51: jobs[0].args: only allowed with \"builtin\" (put a "
                    "command's arguments in \"command\")\n"
                    "apcsvc.json:2:42: jobs[1].args: builtin \"noop\" takes no arguments\n"
                    "apcsvc.json:3:26: jobs[2].builtin: builtin \"sleep\" needs \"args\": "
                    "[\"<duration>\"]\n"
                    "apcsvc.json:4:43: jobs[3].args: builtin \"sleep\" takes exactly one argument, "
                    "a duration, got 2\n"
                    "apcsvc.json:5:44: jobs[4].args[0]: duration \"2days\" has an unknown unit "
                    "\"days\" (use ms, s, m, h or d)\n"
                    "apcsvc.json:6:26: jobs[5].builtin: expected one of \"noop\", \"sleep\", got "
                    "\"nap\" (did you mean \"noop\"?)\n");
}

static void job_names_follow_the_documented_rule(void **state)
{
    (void)state;
    expect_findings(
        "{\"jobs\": [{\"name\": \"my job\", \"builtin\": \"noop\"},\n"
        "{\"name\": \"\", \"builtin\": \"noop\"},\n"
        "{\"name\": \"x.\", \"builtin\": \"noop\"},\n"
        "{\"name\": \"LPT1.log\", \"builtin\": \"noop\"},\n"
        "{\"builtin\": \"noop\"},\n"
        "{\"name\": \"a23456789012345678901234567890123456789012345678901234567890123"
        "45\", \"builtin\": \"noop\"}]}",
        APC_EINVAL,
        "apcsvc.json:1:20: jobs[0].name: expected a name of 1-64 characters from A-Z "
        "a-z 0-9 . _ -, got \"my job\"\n"
        "apcsvc.json:2:10: jobs[1].name: expected a name of 1-64 characters from A-Z "
        "a-z 0-9 . _ -, got \"\"\n"
        "apcsvc.json:3:10: jobs[2].name: name \"x.\" must not end with \".\" (Windows "
        "drops it from file names)\n"
        "apcsvc.json:4:10: jobs[3].name: name \"LPT1.log\" is a reserved device name on "
        "Windows\n"
        "apcsvc.json:5:1: jobs[4]: missing required key \"name\"\n"
        "apcsvc.json:6:10: jobs[5].name: expected a name of 1-64 characters from A-Z "
        "a-z 0-9 . _ -, got "
        "\"a23456789012345678901234567890123456789012345678901234567890...\"\n");
}

static void environment_names_are_checked_at_the_key(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"env\": {\n"
                    "  \"\": \"x\", \"A=B\": \"1\", \"Path\": \"p\", \"PATH\": \"q\", \"N\": 1}}]}",
                    APC_EINVAL,
                    "apcsvc.json:2:3: jobs[0].env[\"\"]: environment variable names must not be "
                    "empty\n"
                    "apcsvc.json:2:12: jobs[0].env[\"A=B\"]: environment variable names must not "
                    "contain \"=\"\n"
                    "apcsvc.json:2:37: jobs[0].env.PATH: duplicate environment variable (names "
                    "ignore case; first defined at 2:24 as \"Path\")\n"
                    "apcsvc.json:2:55: jobs[0].env.N: expected a string, got a number\n");
}

static void duplicate_keys_point_at_the_first_one(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\",\n"
                    "            \"retries\": 1, \"retries\": 2}]}",
                    APC_EINVAL,
                    "apcsvc.json:2:27: jobs[0].retries: duplicate key (first defined at 2:13)\n");
}

static void time_zones_are_local_utc_or_posix_rules(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"timezone\": "
                    "\"Europe/Paris\"},\n"
                    "{\"name\": \"b\", \"builtin\": \"noop\", \"timezone\": 1}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:56: jobs[0].timezone: zone names like \"Europe/Paris\" are not "
                    "supported; use \"local\", \"UTC\" or a POSIX TZ rule like "
                    "\"CET-1CEST,M3.5.0,M10.5.0/3\"\n"
                    "apcsvc.json:2:46: jobs[1].timezone: expected \"local\", \"UTC\" or a POSIX TZ "
                    "rule like \"CET-1CEST,M3.5.0,M10.5.0/3\", got a number\n");
}

static void job_tz_gives_the_local_zone_for_local_jobs(void **state)
{
    apc_config_t *cfg =
        expect_valid("{\"jobs\": [{\"name\": \"l\", \"builtin\": \"noop\"},"
                     "{\"name\": \"u\", \"builtin\": \"noop\", \"timezone\": \"UTC\"},"
                     "{\"name\": \"r\", \"builtin\": \"noop\", \"timezone\": "
                     "\"EST5EDT,M3.2.0,M11.1.0\"},"
                     "{\"name\": \"r2\", \"builtin\": \"noop\", \"timezone\": "
                     "\"EST5EDT,M3.2.0,M11.1.0\"}]}");
    const apc_tz_t *local = apc_tz_utc();
    int32_t off = 0;
    (void)state;

    assert_ptr_equal(apc_config_job_tz(cfg, &cfg->jobs[0], local), local);
    assert_null(apc_config_job_tz(cfg, &cfg->jobs[0], NULL));
    assert_ptr_equal(apc_config_job_tz(cfg, &cfg->jobs[1], NULL), &cfg->zones[1].tz);
    assert_int_equal(cfg->jobs[2].zone, cfg->jobs[3].zone); /* one zone record, shared */
    assert_int_equal(cfg->nzones, 3);
    /* 2026-01-15T12:00:00Z is EST (-5h) in that zone. */
    assert_int_equal(
        apc_tz_offset_at_ms(apc_config_job_tz(cfg, &cfg->jobs[2], NULL), 1768478400000, &off), 0);
    assert_int_equal(off, -5 * 3600);
    apc_config_free(cfg);
}

static void structural_type_errors_are_reported(void **state)
{
    (void)state;
    expect_findings("[1]", APC_EINVAL,
                    "apcsvc.json:1:1: expected an object at the top level, got an array\n");
    expect_findings("{\"service\": [], \"jobs\": {}}", APC_EINVAL,
                    "apcsvc.json:1:13: service: expected an object, got an array\n"
                    "apcsvc.json:1:25: jobs: expected an array of jobs, got an object\n");
    expect_findings("{\"jobs\": [\"hello\"], \"job\": 1}", APC_EINVAL,
                    "apcsvc.json:1:11: jobs[0]: expected an object, got a string\n"
                    "apcsvc.json:1:21: job: unknown key (did you mean \"jobs\"?)\n");
}

static void drive_relative_and_empty_paths_are_rejected(void **state)
{
    (void)state;
    expect_findings("{\"service\": {\"log_dir\": \"\"},\n"
                    " \"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\", \"cwd\": \"D:work\"}]}",
                    APC_EINVAL,
                    "apcsvc.json:1:25: service.log_dir: must not be empty\n"
                    "apcsvc.json:2:51: jobs[0].cwd: drive-relative path \"D:work\" depends on the "
                    "current folder of drive D: (write D:\\work)\n");
}

static void too_many_jobs_is_one_error(void **state)
{
    size_t n = APC_CONFIG_MAX_JOBS + 1, i;
    char *text = malloc(n * 3 + 16);
    char *got = NULL;
    apc_config_t *cfg = NULL;
    size_t k = 0;
    (void)state;

    assert_non_null(text);
    memcpy(text, "{\"jobs\":[", 9);
    k += 9;
    for (i = 0; i < n; i++) {
        memcpy(text + k, i + 1 < n ? "{}," : "{}", i + 1 < n ? 3 : 2);
        k += i + 1 < n ? 3 : 2;
    }
    memcpy(text + k, "]}", 3);
    assert_int_equal(parse(text, &cfg, &got), APC_EINVAL);
    assert_string_equal(got, "apcsvc.json:1:9: jobs: too many jobs: 250001 (at most 250000)\n");
    free(got);
    free(text);
}

/* ---- Syntax and encoding ----------------------------------------------------------------- */

static void syntax_error_points_at_the_offending_character(void **state)
{
    (void)state;
    expect_findings("{\n"
                    "  \"jobs\": [\n"
                    "    {\n"
                    "      \"name\": \"a\",\n"
                    "      \"builtin\": \"noop\"\n"
                    "    }\n"
                    "  }\n"
                    "}\n",
                    APC_ESYNTAX, "apcsvc.json:7:3: syntax error near \"}\"\n");
}

static void syntax_errors_explain_common_slips(void **state)
{
    (void)state;
    expect_findings("{\"jobs\": [],\n}", APC_ESYNTAX,
                    "apcsvc.json:2:1: syntax error near \"}\" (a comma before a closing bracket is "
                    "not allowed in JSON)\n");
    expect_findings("{\"jobs\": [1 2]}", APC_ESYNTAX,
                    "apcsvc.json:1:13: syntax error near \"2\" (missing comma?)\n");
    expect_findings("{\n  // note\n}", APC_ESYNTAX,
                    "apcsvc.json:2:3: syntax error near \"//\" (JSON has no comments; use a "
                    "\"$comment\" key)\n");
    expect_findings("{'jobs': []}", APC_ESYNTAX,
                    "apcsvc.json:1:2: syntax error near \"'jobs'\" (JSON strings use double "
                    "quotes)\n");
    expect_findings("{\"jobs\": [", APC_ESYNTAX,
                    "apcsvc.json:1:11: syntax error: unexpected end of file\n");
    expect_findings("{\"jobs\" []}", APC_ESYNTAX,
                    "apcsvc.json:1:9: syntax error near \"[\" (expected \":\" after the key)\n");
    expect_findings("{\"a\": \"C:\\data\"}", APC_ESYNTAX,
                    "apcsvc.json:1:10: syntax error: invalid escape \"\\d\" in a string (use \\\" "
                    "\\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)\n");
    expect_findings("{\"a\": \"abc\n}", APC_ESYNTAX,
                    "apcsvc.json:1:7: syntax error: this string is never closed\n");
    expect_findings("{\"a\": \"x\\u0000y\"}", APC_ESYNTAX,
                    "apcsvc.json:1:9: syntax error: \\u0000 (NUL) is not allowed in a string\n");
    expect_findings("{\"a\": \"\\uZZZZ\"}", APC_ESYNTAX,
                    "apcsvc.json:1:8: syntax error: invalid \\u escape in a string (4 hex digits; "
                    "a surrogate pair for characters above U+FFFF)\n");
    expect_findings("{\"a\": \"x\\", APC_ESYNTAX,
                    "apcsvc.json:1:7: syntax error: this string is never closed\n");
    expect_findings("{} {}", APC_ESYNTAX, "apcsvc.json:1:4: syntax error near \"{\"\n");
    expect_findings("{\"a\": tru}", APC_ESYNTAX, "apcsvc.json:1:7: syntax error near \"tru\"\n");
    expect_findings("  \n ", APC_ESYNTAX,
                    "apcsvc.json:1:1: the file is empty (expected a JSON object)\n");
}

static void columns_count_characters_not_bytes(void **state)
{
    (void)state;
    /* "é" and "€" are 2 and 3 bytes but one column each. */
    expect_findings("{\"$comment\": \"é€\", \"x\": 1}", APC_EINVAL,
                    "apcsvc.json:1:20: x: unknown key\n");
    expect_findings("{\"$comment\": \"é€\", \"x\" 1}", APC_ESYNTAX,
                    "apcsvc.json:1:24: syntax error near \"1\" (expected \":\" after the key)\n");
}

static void byte_order_mark_and_crlf_do_not_shift_positions(void **state)
{
    (void)state;
    expect_findings("\xEF\xBB\xBF{\r\n  \"x\": 1\r\n}\r\n", APC_EINVAL,
                    "apcsvc.json:2:3: x: unknown key\n");
}

static void encoding_problems_are_syntax_errors_with_a_position(void **state)
{
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    (void)state;

    expect_findings("{\"a\": \"caf\xE9\"}", APC_ESYNTAX,
                    "apcsvc.json:1:11: invalid UTF-8 (byte 0xE9); save the file as UTF-8\n");
    expect_findings("\xFF\xFE{\0", APC_ESYNTAX,
                    "apcsvc.json:1:1: the file is UTF-16; save it as UTF-8\n");
    /* A NUL byte cannot be passed through strlen, so this one goes in with its length. */
    assert_int_equal(apc_config_parse("{\n \0}", 4, FILE_NAME, NULL, &cfg, &d), APC_ESYNTAX);
    apc_diags_format(&d, &b);
    assert_string_equal(b.data, "apcsvc.json:2:2: NUL byte in the text (is this a text file?)\n");
    assert_null(cfg);
    apc_buf_free(&b);
    apc_diags_free(&d);
}

static void oversized_text_is_refused_before_parsing(void **state)
{
    size_t n = APC_CONFIG_MAX_BYTES + 1;
    char *text = malloc(n);
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    (void)state;

    assert_non_null(text);
    memset(text, ' ', n);
    assert_int_equal(apc_config_parse(text, n, FILE_NAME, NULL, &cfg, &d), APC_ETOOBIG);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].message, "the file is 33554433 bytes; the limit is 33554432 "
                                            "(32 MiB)");
    free(text);
    apc_diags_free(&d);
}

/* ---- Files -------------------------------------------------------------------------------- */

static void missing_file_names_the_file_and_the_system_error(void **state)
{
    apc_config_t *cfg = (apc_config_t *)1;
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    (void)state;

    assert_int_equal(apc_config_load(APC_TEST_DATA_DIR "/config/no-such-file.json", &cfg, &d),
                     APC_ENOTFOUND);
    assert_null(cfg);
    apc_diags_format(&d, &b);
    assert_string_equal(b.data, APC_TEST_DATA_DIR
                        "/config/no-such-file.json: cannot open: No such file or directory\n");
    apc_buf_free(&b);
    apc_diags_free(&d);
}

static void load_resolves_paths_against_the_files_folder(void **state)
{
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    (void)state;

    assert_int_equal(apc_config_load(APC_TEST_DATA_DIR "/config/minimal.json", &cfg, &d), 0);
    assert_int_equal(d.count, 0);
    assert_string_equal(cfg->base_dir, APC_TEST_DATA_DIR "/config");
    assert_string_equal(cfg->service.history, APC_TEST_DATA_DIR "/config/history.db");
    assert_string_equal(cfg->jobs[0].cwd, APC_TEST_DATA_DIR "/config/work/dir");
    apc_config_free(cfg);
}

static void load_reports_errors_of_a_file_under_its_path(void **state)
{
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    (void)state;

    assert_int_equal(apc_config_load(APC_TEST_DATA_DIR "/config/invalid.json", &cfg, &d),
                     APC_EINVAL);
    apc_diags_format(&d, &b);
    assert_string_equal(b.data, APC_TEST_DATA_DIR "/config/invalid.json:5:19: "
                                                  "jobs[0].schedule: minute field \"61\" is out "
                                                  "of range 0-59\n");
    assert_int_equal(d.errors, 1);
    apc_buf_free(&b);
    apc_diags_free(&d);
}

/* ---- Paths -------------------------------------------------------------------------------- */

static void absolute_paths_in_both_styles_are_recognised(void **state)
{
    (void)state;
    assert_true(apc_config_path_is_absolute("C:\\x"));
    assert_true(apc_config_path_is_absolute("c:/x"));
    assert_true(apc_config_path_is_absolute("\\\\server\\share"));
    assert_true(apc_config_path_is_absolute("/x"));
    assert_true(apc_config_path_is_absolute("\\x"));
    assert_false(apc_config_path_is_absolute("x"));
    assert_false(apc_config_path_is_absolute("C:x"));
    assert_false(apc_config_path_is_absolute("./x"));
    assert_false(apc_config_path_is_absolute(""));
    assert_false(apc_config_path_is_absolute(NULL));
}

/* Asserts resolve(base, path) == want. */
static void resolves(const char *base, const char *path, const char *want)
{
    char *out = NULL;
    char err[128];
    assert_int_equal(apc_config_path_resolve(base, path, &out, err, sizeof(err)), 0);
    assert_string_equal(out, want);
    free(out);
}

static void relative_paths_join_with_the_base_folders_separator(void **state)
{
    (void)state;
    resolves("C:\\ProgramData\\ApcSched", "history.db", "C:\\ProgramData\\ApcSched\\history.db");
    resolves("C:\\ProgramData\\ApcSched\\", "runs", "C:\\ProgramData\\ApcSched\\runs");
    resolves("/etc/apc", "logs", "/etc/apc/logs");
    resolves("/", "logs", "/logs");
    resolves("C:", "logs", "C:\\logs");
    resolves("C:\\data", "./runs", "C:\\data\\runs");
    resolves("C:\\data", ".\\.\\runs/today", "C:\\data\\runs/today");
    resolves("C:\\data", ".", "C:\\data");
    resolves("C:\\data", "D:\\x", "D:\\x");
    resolves("C:\\data", "d:/x", "d:/x");
    resolves("C:\\data", "\\\\srv\\share\\h.db", "\\\\srv\\share\\h.db");
    resolves("C:\\data", "/abs", "/abs");
    resolves("", "rel", "rel");
    resolves(NULL, "rel", "rel");
    resolves("C:\\data", "..\\up", "C:\\data\\..\\up");
}

static void drive_relative_and_empty_paths_do_not_resolve(void **state)
{
    char *out = (char *)1;
    char err[160];
    (void)state;

    assert_int_equal(apc_config_path_resolve("C:\\data", "", &out, err, sizeof(err)), APC_EINVAL);
    assert_null(out);
    assert_string_equal(err, "must not be empty");
    assert_int_equal(apc_config_path_resolve("C:\\data", "C:x", &out, err, sizeof(err)),
                     APC_EINVAL);
    assert_string_equal(err, "drive-relative path \"C:x\" depends on the current folder of drive "
                             "C: (write C:\\x)");
}

/* ---- Lookup, lint, diagnostics ------------------------------------------------------------ */

static void find_job_ignores_case(void **state)
{
    apc_config_t *cfg =
        expect_valid("{\"jobs\": [{\"name\": \"Backup.Daily\", \"builtin\": \"noop\"},"
                     "{\"name\": \"other\", \"builtin\": \"noop\"}]}");
    (void)state;

    assert_ptr_equal(apc_config_find_job(cfg, "backup.daily"), &cfg->jobs[0]);
    assert_ptr_equal(apc_config_find_job(cfg, "OTHER"), &cfg->jobs[1]);
    assert_null(apc_config_find_job(cfg, "backup"));
    assert_null(apc_config_find_job(cfg, NULL));
    assert_null(apc_config_find_job(NULL, "other"));
    apc_config_free(cfg);
}

static void lint_warns_about_local_times_in_a_dst_gap(void **state)
{
    apc_config_t *cfg = expect_valid("{\"jobs\": [{\"name\": \"a\", \"builtin\": \"noop\","
                                     " \"schedule\": \"30 2 * * *\"},"
                                     "{\"name\": \"u\", \"builtin\": \"noop\","
                                     " \"schedule\": \"30 2 * * *\", \"timezone\": \"UTC\"},"
                                     "{\"name\": \"m\", \"builtin\": \"noop\"}]}");
    apc_tz_rules_t rules;
    apc_tz_t ny;
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    char err[128];
    (void)state;

    assert_int_equal(apc_tz_rules_parse("EST5EDT,M3.2.0,M11.1.0", &rules, err, sizeof(err)), 0);
    apc_tz_from_rules(&ny, &rules);
    /* From 2026-01-01T00:00:00Z: one gap (March 8) in the next 12 months. */
    assert_int_equal(apc_config_lint(cfg, &ny, 1767225600000, &d), 0);
    apc_diags_format(&d, &b);
    assert_string_equal(b.data, "apcsvc.json: warning: jobs[0].schedule: 2026-03-08: 02:30 does "
                                "not exist (clocks go forward 02:00->03:00); runs at 03:00\n");
    assert_int_equal(d.warnings, 1);
    assert_int_equal(d.errors, 0);
    apc_buf_free(&b);
    apc_diags_free(&d);
    assert_int_equal(apc_config_lint(cfg, NULL, 1767225600000, &d), 0);
    assert_int_equal(d.count, 0);
    apc_config_free(cfg);
}

static void diag_format_leaves_out_missing_parts(void **state)
{
    apc_diags_t d = {0};
    apc_buf_t b = {0};
    (void)state;

    assert_int_equal(apc_diags_add(&d, APC_DIAG_ERROR, NULL, 3, 4, "jobs[0]", "m%d", 1), 0);
    assert_int_equal(apc_diags_add(&d, APC_DIAG_WARNING, "f.json", 0, 0, NULL, "w"), 0);
    assert_int_equal(apc_diags_add(&d, APC_DIAG_ERROR, "", 0, 0, "", "bare"), 0);
    apc_diags_format(&d, &b);
    assert_string_equal(b.data, "3:4: jobs[0]: m1\nf.json: warning: w\nbare\n");
    assert_int_equal(d.errors, 2);
    assert_int_equal(d.warnings, 1);
    assert_int_equal(apc_diags_add(NULL, APC_DIAG_ERROR, NULL, 0, 0, NULL, "x"), APC_EINVAL);
    apc_buf_free(&b);
    apc_diags_free(&d);
    apc_diags_free(NULL);
    apc_config_free(NULL);
}

/* ---- Scale -------------------------------------------------------------------------------- */

static void job_record_stays_within_its_documented_size(void **state)
{
    (void)state;
    assert_true(sizeof(apc_job_config_t) <= APC_JOB_CONFIG_MAX_SIZE);
}

/* Builds a config of n jobs, each with a 3-element command, a cron schedule and a timeout. */
static char *make_jobs(size_t n, size_t *len)
{
    apc_buf_t b = {0};
    size_t i;

    apc_buf_puts(&b, "{\"jobs\": [\n");
    for (i = 0; i < n; i++)
        apc_buf_printf(&b,
                       "{\"name\": \"job%06lu\", \"command\": [\"C:\\\\tools\\\\task.exe\", "
                       "\"--id\", \"%lu\"], \"schedule\": \"%lu */2 * * *\", \"timeout\": "
                       "\"10m\"}%s\n",
                       (unsigned long)i, (unsigned long)i, (unsigned long)(i % 60),
                       i + 1 < n ? "," : "");
    apc_buf_puts(&b, "]}\n");
    assert_false(apc_buf_failed(&b));
    *len = b.len;
    return apc_buf_take(&b);
}

static void hundred_thousand_jobs_load_within_the_memory_budget(void **state)
{
    size_t len = 0, total = 0, strings = 0;
    char *text = make_jobs(100000, &len);
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    clock_t t0, t1;
    (void)state;

    t0 = clock();
    assert_int_equal(apc_config_parse(text, len, "big.json", "C:\\data", &cfg, &d), 0);
    t1 = clock();
    assert_int_equal(cfg->njobs, 100000);
    assert_string_equal(apc_config_find_job(cfg, "JOB099999")->argv[2], "99999");
    apc_config_memory(cfg, &total, &strings);
    /* The budget: at most 200 heap bytes per job besides the characters of its strings. */
    assert_true((total - strings) / cfg->njobs <= 200);
    printf("config: 100000 jobs, %lu bytes of JSON, parsed in %.0f ms (CPU); heap %lu bytes, "
           "%lu bytes/job beyond strings\n",
           (unsigned long)len, (double)(t1 - t0) * 1000.0 / CLOCKS_PER_SEC, (unsigned long)total,
           (unsigned long)((total - strings) / cfg->njobs));
    apc_config_free(cfg);
    apc_diags_free(&d);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_config_loads_without_findings),
        cmocka_unit_test(empty_object_gives_every_service_default),
        cmocka_unit_test(job_with_only_name_and_command_gets_every_job_default),
        cmocka_unit_test(every_job_key_is_read),
        cmocka_unit_test(null_means_none_for_schedule_timeout_and_missed_within),
        cmocka_unit_test(schedule_error_names_file_line_col_and_path),
        cmocka_unit_test(unknown_key_is_reported_at_the_key_with_a_suggestion),
        cmocka_unit_test(unknown_key_far_from_every_known_key_gets_no_suggestion),
        cmocka_unit_test(duplicate_job_name_points_at_the_first_definition),
        cmocka_unit_test(job_names_are_unique_ignoring_case),
        cmocka_unit_test(wrong_types_name_what_was_expected_and_what_came),
        cmocka_unit_test(
            allow_insecure_config_in_the_file_is_refused_naming_the_command_line_option),
        cmocka_unit_test(out_of_range_values_quote_the_value_given),
        cmocka_unit_test(malformed_duration_passes_the_parsers_reason_on),
        cmocka_unit_test(enum_typo_gets_a_suggestion),
        cmocka_unit_test(empty_argv_and_empty_program_are_errors),
        cmocka_unit_test(a_job_needs_exactly_one_of_command_and_builtin),
        cmocka_unit_test(builtin_arguments_are_checked),
        cmocka_unit_test(job_names_follow_the_documented_rule),
        cmocka_unit_test(environment_names_are_checked_at_the_key),
        cmocka_unit_test(duplicate_keys_point_at_the_first_one),
        cmocka_unit_test(time_zones_are_local_utc_or_posix_rules),
        cmocka_unit_test(job_tz_gives_the_local_zone_for_local_jobs),
        cmocka_unit_test(structural_type_errors_are_reported),
        cmocka_unit_test(drive_relative_and_empty_paths_are_rejected),
        cmocka_unit_test(too_many_jobs_is_one_error),
        cmocka_unit_test(syntax_error_points_at_the_offending_character),
        cmocka_unit_test(syntax_errors_explain_common_slips),
        cmocka_unit_test(columns_count_characters_not_bytes),
        cmocka_unit_test(byte_order_mark_and_crlf_do_not_shift_positions),
        cmocka_unit_test(encoding_problems_are_syntax_errors_with_a_position),
        cmocka_unit_test(oversized_text_is_refused_before_parsing),
        cmocka_unit_test(missing_file_names_the_file_and_the_system_error),
        cmocka_unit_test(load_resolves_paths_against_the_files_folder),
        cmocka_unit_test(load_reports_errors_of_a_file_under_its_path),
        cmocka_unit_test(absolute_paths_in_both_styles_are_recognised),
        cmocka_unit_test(relative_paths_join_with_the_base_folders_separator),
        cmocka_unit_test(drive_relative_and_empty_paths_do_not_resolve),
        cmocka_unit_test(find_job_ignores_case),
        cmocka_unit_test(lint_warns_about_local_times_in_a_dst_gap),
        cmocka_unit_test(diag_format_leaves_out_missing_parts),
        cmocka_unit_test(job_record_stays_within_its_documented_size),
        cmocka_unit_test(hundred_thousand_jobs_load_within_the_memory_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
