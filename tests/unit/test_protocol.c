/*
 * test_protocol.c - the control-protocol codec: exact wire text, round trips
 * for every op and response kind, and the exact error for each kind of bad
 * message a peer could send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apc_error.h"
#include "apc_protocol.h"

#define NONE APC_PROTO_NONE

/* Decodes a request from a C string and expects failure with exactly this code and text. */
static void expect_reject(const char *msg, int code, const char *text)
{
    apc_proto_request_t r;
    char err[256] = "";
    int rc = apc_proto_request_decode(msg, strlen(msg), &r, err, sizeof err);
    if (rc != code)
        fail_msg("%s -> %d (%s), want %d", msg, rc, err, code);
    assert_string_equal(err, text);
    apc_proto_request_free(&r);
}

/* Encodes, checks the exact text when want != NULL, decodes and compares. */
static void request_round_trip(const apc_proto_request_t *req, const char *want)
{
    apc_buf_t b = {0};
    apc_proto_request_t back;
    char err[256] = "";
    int rc = apc_proto_request_encode(req, &b, err, sizeof err);
    if (rc != 0)
        fail_msg("encode: %s", err);
    if (want != NULL)
        assert_string_equal(b.data, want);
    rc = apc_proto_request_decode(b.data, b.len, &back, err, sizeof err);
    if (rc != 0)
        fail_msg("decode of %s: %s", b.data, err);
    assert_true(apc_proto_request_equal(req, &back));
    apc_proto_request_free(&back);
    apc_buf_free(&b);
}

static void submit_request_has_the_exact_wire_form(void **state)
{
    apc_proto_request_t r;
    const char *args[] = {"--full", "a \"b\""};
    (void)state;
    apc_proto_request_init(&r, APC_OP_SUBMIT);
    r.job = "backup";
    r.args = args;
    r.nargs = 2;
    r.at_ms = 1767225600000;
    r.wait = 1;
    request_round_trip(&r, "{\"v\":1,\"op\":\"submit\",\"job\":\"backup\",\"args\":[\"--full\","
                           "\"a \\\"b\\\"\"],\"at_ms\":1767225600000,\"wait\":true}");
}

static void every_op_round_trips(void **state)
{
    apc_proto_request_t r;
    (void)state;
    apc_proto_request_init(&r, APC_OP_STATUS);
    request_round_trip(&r, "{\"v\":1,\"op\":\"status\"}");
    apc_proto_request_init(&r, APC_OP_LIST);
    request_round_trip(&r, "{\"v\":1,\"op\":\"list\"}");
    apc_proto_request_init(&r, APC_OP_RELOAD);
    request_round_trip(&r, "{\"v\":1,\"op\":\"reload\"}");
    apc_proto_request_init(&r, APC_OP_SUBMIT);
    r.job = "a.b_c-9";
    r.in_ms = 900000;
    request_round_trip(&r, "{\"v\":1,\"op\":\"submit\",\"job\":\"a.b_c-9\",\"in_ms\":900000,"
                           "\"wait\":false}");
    apc_proto_request_init(&r, APC_OP_CANCEL);
    r.id = 42;
    request_round_trip(&r, "{\"v\":1,\"op\":\"cancel\",\"id\":42}");
    apc_proto_request_init(&r, APC_OP_HISTORY);
    request_round_trip(&r, "{\"v\":1,\"op\":\"history\",\"limit\":20}");
    r.job = "backup";
    r.since_ms = 0;
    r.status = "timed_out";
    r.limit = 1000;
    r.before_id = 9007199254740991;
    request_round_trip(&r, "{\"v\":1,\"op\":\"history\",\"job\":\"backup\",\"since_ms\":0,"
                           "\"status\":\"timed_out\",\"limit\":1000,"
                           "\"before_id\":9007199254740991}");
    apc_proto_request_init(&r, APC_OP_SHOW);
    r.id = 7;
    request_round_trip(&r, "{\"v\":1,\"op\":\"show\",\"id\":7}");
    apc_proto_request_init(&r, APC_OP_LOGS);
    r.id = 7;
    request_round_trip(&r, "{\"v\":1,\"op\":\"logs\",\"id\":7,\"tail_bytes\":16384}");
    r.tail_bytes = 100;
    request_round_trip(&r, NULL);
    apc_proto_request_init(&r, APC_OP_PAUSE);
    r.job = "backup";
    request_round_trip(&r, "{\"v\":1,\"op\":\"pause\",\"job\":\"backup\"}");
    r.for_ms = 3600000;
    request_round_trip(&r, "{\"v\":1,\"op\":\"pause\",\"job\":\"backup\",\"for_ms\":3600000}");
    apc_proto_request_init(&r, APC_OP_RESUME);
    r.job = "backup";
    request_round_trip(&r, "{\"v\":1,\"op\":\"resume\",\"job\":\"backup\"}");
}

static void decoder_applies_defaults(void **state)
{
    apc_proto_request_t r;
    const char *h = "{\"op\":\"history\",\"v\":1}";
    const char *l = " {\"v\":1,\"op\":\"logs\",\"id\":3}\r\n";
    (void)state;
    assert_int_equal(apc_proto_request_decode(h, strlen(h), &r, NULL, 0), 0);
    assert_int_equal(r.op, APC_OP_HISTORY);
    assert_int_equal(r.limit, 20);
    assert_null(r.job);
    assert_true(r.since_ms == NONE && r.before_id == NONE);
    apc_proto_request_free(&r);
    assert_int_equal(apc_proto_request_decode(l, strlen(l), &r, NULL, 0), 0);
    assert_int_equal(r.id, 3);
    assert_int_equal(r.tail_bytes, 16384);
    apc_proto_request_free(&r);
}

static void decoded_submit_exposes_args(void **state)
{
    apc_proto_request_t r;
    const char *m = "{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"args\":[\"x\",\"\",\"\\u00e9\"]}";
    (void)state;
    assert_int_equal(apc_proto_request_decode(m, strlen(m), &r, NULL, 0), 0);
    assert_string_equal(r.job, "j");
    assert_int_equal(r.nargs, 3);
    assert_string_equal(r.args[0], "x");
    assert_string_equal(r.args[1], "");
    assert_string_equal(r.args[2], "\xc3\xa9");
    assert_int_equal(r.wait, 0);
    apc_proto_request_free(&r);
}

static void wrong_types_are_named_precisely(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":5}", APC_EPROTO,
                  "submit.job: expected a string");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":\"5\"}", APC_EPROTO,
                  "cancel.id: expected an integer");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":1.5}", APC_EPROTO,
                  "cancel.id: expected an integer");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"wait\":1}", APC_EPROTO,
                  "submit.wait: expected a boolean");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"args\":\"x\"}", APC_EPROTO,
                  "submit.args: expected an array of strings");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"args\":[\"x\",3]}", APC_EPROTO,
                  "submit.args[1]: expected a string");
    expect_reject("{\"v\":1,\"op\":\"history\",\"job\":null}", APC_EPROTO,
                  "history.job: expected a string");
    expect_reject("{\"v\":1,\"op\":7}", APC_EPROTO, "op: expected a string");
}

static void unknown_ops_and_keys_are_rejected(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"frobnicate\"}", APC_EPROTO,
                  "op: unknown operation \"frobnicate\"");
    expect_reject("{\"v\":1}", APC_EPROTO, "op: required");
    expect_reject("{\"v\":1,\"op\":\"status\",\"verbose\":true}", APC_EPROTO,
                  "status.verbose: unknown key");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":1,\"job\":\"x\"}", APC_EPROTO,
                  "cancel.job: unknown key");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":1,\"id\":2}", APC_EPROTO,
                  "cancel.id: duplicate key");
    expect_reject("{\"v\":1,\"op\":\"Status\"}", APC_EPROTO, "op: unknown operation \"Status\"");
}

static void missing_required_fields_are_named(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"cancel\"}", APC_EPROTO, "cancel.id: required");
    expect_reject("{\"v\":1,\"op\":\"submit\"}", APC_EPROTO, "submit.job: required");
    expect_reject("{\"v\":1,\"op\":\"resume\"}", APC_EPROTO, "resume.job: required");
}

static void version_must_be_exactly_one(void **state)
{
    (void)state;
    expect_reject("{\"op\":\"status\"}", APC_EPROTO, "unsupported protocol version");
    expect_reject("{\"v\":2,\"op\":\"status\"}", APC_EPROTO, "unsupported protocol version");
    expect_reject("{\"v\":\"1\",\"op\":\"status\"}", APC_EPROTO, "unsupported protocol version");
    expect_reject("{\"v\":1.5,\"op\":\"status\"}", APC_EPROTO, "unsupported protocol version");
}

static void values_are_range_checked(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"history\",\"limit\":0}", APC_EINVAL,
                  "history.limit: must be between 1 and 1000");
    expect_reject("{\"v\":1,\"op\":\"history\",\"limit\":1001}", APC_EINVAL,
                  "history.limit: must be between 1 and 1000");
    expect_reject("{\"v\":1,\"op\":\"history\",\"limit\":1e300}", APC_EPROTO,
                  "history.limit: expected an integer");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":0}", APC_EINVAL,
                  "cancel.id: must be between 1 and 9007199254740991");
    expect_reject("{\"v\":1,\"op\":\"cancel\",\"id\":9007199254740993}", APC_EPROTO,
                  "cancel.id: expected an integer");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"in_ms\":-1}", APC_EINVAL,
                  "submit.in_ms: must be between 0 and 315360000000");
    expect_reject("{\"v\":1,\"op\":\"pause\",\"job\":\"j\",\"for_ms\":0}", APC_EINVAL,
                  "pause.for_ms: must be between 1 and 315360000000");
    expect_reject("{\"v\":1,\"op\":\"logs\",\"id\":1,\"tail_bytes\":0}", APC_EINVAL,
                  "logs.tail_bytes: must be between 1 and 1048576");
    expect_reject("{\"v\":1,\"op\":\"history\",\"status\":\"done\"}", APC_EINVAL,
                  "history.status: \"done\" is not a run status (queued, running, succeeded, "
                  "failed, timed_out, cancelled, interrupted, skipped)");
}

static void at_and_in_are_exclusive(void **state)
{
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"at_ms\":1,\"in_ms\":1}", APC_EINVAL,
                  "submit: at_ms and in_ms are exclusive");
}

static void job_names_follow_the_rules(void **state)
{
    char name[80];
    char msg[200];
    (void)state;
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"a b\"}", APC_EINVAL,
                  "submit.job: job name \"a b\" must be 1-64 characters of A-Z a-z 0-9 . _ -");
    expect_reject("{\"v\":1,\"op\":\"resume\",\"job\":\"\"}", APC_EINVAL,
                  "resume.job: job name \"\" must be 1-64 characters of A-Z a-z 0-9 . _ -");
    memset(name, 'x', 64);
    name[64] = '\0';
    assert_int_equal(apc_proto_job_name_check(name, NULL, 0), 0);
    name[64] = 'x';
    name[65] = '\0';
    snprintf(msg, sizeof msg, "{\"v\":1,\"op\":\"pause\",\"job\":\"%s\"}", name);
    {
        apc_proto_request_t r;
        assert_int_equal(apc_proto_request_decode(msg, strlen(msg), &r, NULL, 0), APC_EINVAL);
    }
    assert_int_equal(apc_proto_job_name_check("caf\xc3\xa9", NULL, 0), APC_EINVAL);
}

static void size_cap_is_checked_before_parsing(void **state)
{
    size_t n = APC_PROTO_MAX_MESSAGE + 1;
    char *big = malloc(n);
    apc_proto_request_t r;
    char err[200];
    (void)state;
    assert_non_null(big);
    memset(big, '[', n); /* would be deeply nested garbage if it were parsed */
    assert_int_equal(apc_proto_request_decode(big, n, &r, err, sizeof err), APC_ETOOBIG);
    assert_string_equal(err, "message: 65537 bytes exceeds the 65536-byte limit");
    free(big);
}

static void malformed_messages_are_rejected(void **state)
{
    apc_proto_request_t r;
    char err[200];
    const char nul[] = "{\"v\":1,\"op\":\"status\"}\0";
    (void)state;
    expect_reject("{\"v\":1,", APC_EPROTO, "message: not valid JSON (near offset 6)");
    expect_reject("[1]", APC_EPROTO, "message: expected a JSON object");
    expect_reject("{\"v\":1,\"op\":\"status\"} {}", APC_EPROTO,
                  "message: unexpected data after the JSON value at offset 22");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\\u0000x\"}", APC_EPROTO,
                  "message: \\u0000 at offset 29 is not allowed in a string");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\xff\"}", APC_EPROTO,
                  "submit.job: not valid UTF-8");
    expect_reject("{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"args\":[\"\xc0\xaf\"]}", APC_EINVAL,
                  "submit.args[0]: not valid UTF-8");
    assert_int_equal(apc_proto_request_decode(nul, sizeof nul - 1, &r, err, sizeof err),
                     APC_EPROTO);
    assert_string_equal(err, "message: NUL byte at offset 21");
    assert_int_equal(apc_proto_request_decode("", 0, &r, err, sizeof err), APC_EPROTO);
    /* An escaped backslash before u0000 is not a NUL escape. */
    {
        const char *ok = "{\"v\":1,\"op\":\"submit\",\"job\":\"j\",\"args\":[\"\\\\u0000\"]}";
        assert_int_equal(apc_proto_request_decode(ok, strlen(ok), &r, err, sizeof err), 0);
        assert_string_equal(r.args[0], "\\u0000");
        apc_proto_request_free(&r);
    }
}

static void encoder_refuses_what_the_decoder_would(void **state)
{
    apc_proto_request_t r;
    apc_buf_t b = {0};
    char err[200];
    (void)state;
    apc_proto_request_init(&r, APC_OP_CANCEL);
    r.id = 1;
    r.job = "x";
    assert_int_equal(apc_proto_request_encode(&r, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "cancel.job: not a field of this operation");
    apc_proto_request_init(&r, APC_OP_HISTORY);
    r.limit = 5000;
    assert_int_equal(apc_proto_request_encode(&r, &b, err, sizeof err), APC_EINVAL);
    assert_string_equal(err, "history.limit: must be between 1 and 1000");
    assert_int_equal(b.len, 0);
    apc_buf_free(&b);
}

/* ---- responses ---- */

static apc_proto_run_t sample_run(void)
{
    apc_proto_run_t r;
    memset(&r, 0, sizeof r);
    r.id = 1234;
    r.job = "backup";
    r.trigger = "schedule";
    r.status = "failed";
    r.attempt = 2;
    r.queued_at = 1767225600000;
    r.started_at = 1767225600015;
    r.finished_at = 1767225660015;
    r.has_exit_code = 1;
    r.exit_code = 3221225477; /* 0xC0000005 */
    r.submitted_by = "NT AUTHORITY\\SYSTEM";
    r.worker = 3;
    r.pid = 4242;
    r.output_path = "C:\\ProgramData\\ApcSched\\out\\1234.log";
    r.output_tail = "line1\nline2 \xe2\x82\xac";
    r.error = NULL;
    return r;
}

/* Encodes, optionally checks the text, decodes for op and compares. */
static void response_round_trip(const apc_proto_response_t *resp, apc_proto_op_t op,
                                const char *want)
{
    apc_buf_t b = {0};
    apc_proto_response_t back;
    char err[256] = "";
    int rc = apc_proto_response_encode(resp, &b, err, sizeof err);
    if (rc != 0)
        fail_msg("encode: %s", err);
    if (want != NULL)
        assert_string_equal(b.data, want);
    rc = apc_proto_response_decode(b.data, b.len, op, &back, err, sizeof err);
    if (rc != 0)
        fail_msg("decode: %s", err);
    assert_true(apc_proto_response_equal(resp, &back));
    apc_proto_response_free(&back);
    apc_buf_free(&b);
}

static void show_response_uses_the_runs_column_names(void **state)
{
    apc_proto_response_t r;
    (void)state;
    apc_proto_response_init(&r, APC_RESP_RUN);
    r.run = sample_run();
    response_round_trip(
        &r, APC_OP_SHOW,
        "{\"v\":1,\"ok\":true,\"run\":{\"id\":1234,\"job\":\"backup\",\"trigger\":\"schedule\","
        "\"status\":\"failed\",\"attempt\":2,\"queued_at\":1767225600000,"
        "\"started_at\":1767225600015,\"finished_at\":1767225660015,\"exit_code\":3221225477,"
        "\"submitted_by\":\"NT AUTHORITY\\\\SYSTEM\",\"worker\":3,\"pid\":4242,"
        "\"output_path\":\"C:\\\\ProgramData\\\\ApcSched\\\\out\\\\1234.log\","
        "\"output_tail\":\"line1\\nline2 \xe2\x82\xac\",\"error\":null}}");
}

static void queued_run_sends_nulls_for_unknown_values(void **state)
{
    apc_proto_response_t r;
    (void)state;
    apc_proto_response_init(&r, APC_RESP_RUN);
    r.event = "queued";
    memset(&r.run, 0, sizeof r.run);
    r.run.id = 1;
    r.run.job = "j";
    r.run.trigger = "manual";
    r.run.status = "queued";
    r.run.attempt = 1;
    r.run.queued_at = 5;
    r.run.started_at = r.run.finished_at = NONE;
    r.run.worker = r.run.pid = NONE;
    response_round_trip(
        &r, APC_OP_SUBMIT,
        "{\"v\":1,\"ok\":true,\"event\":\"queued\",\"run\":{\"id\":1,\"job\":\"j\",\"trigger\":"
        "\"manual\",\"status\":\"queued\",\"attempt\":1,\"queued_at\":5,\"started_at\":null,"
        "\"finished_at\":null,\"exit_code\":null,\"submitted_by\":null,\"worker\":null,"
        "\"pid\":null,\"output_path\":null,\"output_tail\":null,\"error\":null}}");
}

static void error_response_round_trips_with_symbolic_code(void **state)
{
    apc_buf_t b = {0};
    apc_proto_response_t back;
    (void)state;
    assert_int_equal(apc_proto_encode_error(APC_ENOTFOUND, "run 99 not found", &b), 0);
    assert_string_equal(b.data, "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"ENOTFOUND\","
                                "\"message\":\"run 99 not found\"}}");
    assert_int_equal(apc_proto_response_decode(b.data, b.len, APC_OP_SHOW, &back, NULL, 0), 0);
    assert_int_equal(back.kind, APC_RESP_ERROR);
    assert_int_equal(back.error_code, APC_ENOTFOUND);
    assert_string_equal(back.error_name, "ENOTFOUND");
    assert_string_equal(back.error_message, "run 99 not found");
    apc_proto_response_free(&back);
    apc_buf_free(&b);
}

static void unknown_error_code_from_peer_maps_to_eproto(void **state)
{
    const char *m = "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"EWHATEVER\",\"message\":\"m\"}}";
    apc_proto_response_t back;
    (void)state;
    assert_int_equal(apc_proto_response_decode(m, strlen(m), APC_OP_LIST, &back, NULL, 0), 0);
    assert_int_equal(back.error_code, APC_EPROTO);
    assert_string_equal(back.error_name, "EWHATEVER");
    apc_proto_response_free(&back);
}

static void status_list_submit_ack_and_logs_round_trip(void **state)
{
    apc_proto_response_t r;
    apc_proto_job_info_t jobs[2];
    (void)state;
    apc_proto_response_init(&r, APC_RESP_STATUS);
    r.status.version = "0.1.0";
    r.status.pid = 808;
    r.status.started_at = 1767225600000;
    r.status.now = 1767229200000;
    r.status.workers = 4;
    r.status.workers_busy = 1;
    r.status.jobs = 12;
    r.status.queued = 0;
    r.status.running = 1;
    response_round_trip(&r, APC_OP_STATUS,
                        "{\"v\":1,\"ok\":true,\"status\":{\"version\":\"0.1.0\",\"pid\":808,"
                        "\"started_at\":1767225600000,\"now\":1767229200000,\"workers\":4,"
                        "\"workers_busy\":1,\"jobs\":12,\"queued\":0,\"running\":1}}");

    memset(jobs, 0, sizeof jobs);
    jobs[0].name = "backup";
    jobs[0].schedule = "0 2 * * *";
    jobs[0].enabled = 1;
    jobs[0].paused_until = NONE;
    jobs[0].next_run = 1767232800000;
    jobs[0].last_status = "succeeded";
    jobs[0].last_finished_at = 1767146400000;
    jobs[1].name = "report";
    jobs[1].schedule = "@every 15m";
    jobs[1].paused = 1;
    jobs[1].paused_until = 1767240000000;
    jobs[1].next_run = NONE;
    jobs[1].running = 2;
    jobs[1].last_finished_at = NONE;
    apc_proto_response_init(&r, APC_RESP_LIST);
    r.jobs = jobs;
    r.njobs = 2;
    response_round_trip(
        &r, APC_OP_LIST,
        "{\"v\":1,\"ok\":true,\"jobs\":[{\"name\":\"backup\",\"schedule\":\"0 2 * * *\","
        "\"enabled\":true,\"paused\":false,\"paused_until\":null,\"next_run\":1767232800000,"
        "\"running\":0,\"last_status\":\"succeeded\",\"last_finished_at\":1767146400000},"
        "{\"name\":\"report\",\"schedule\":\"@every 15m\",\"enabled\":false,\"paused\":true,"
        "\"paused_until\":1767240000000,\"next_run\":null,\"running\":2,\"last_status\":null,"
        "\"last_finished_at\":null}]}");
    r.njobs = 0;
    response_round_trip(&r, APC_OP_LIST, "{\"v\":1,\"ok\":true,\"jobs\":[]}");

    apc_proto_response_init(&r, APC_RESP_SUBMITTED);
    r.id = 77;
    r.job = "backup";
    r.due_at = 1767225600000;
    r.wait = 1;
    response_round_trip(&r, APC_OP_SUBMIT,
                        "{\"v\":1,\"ok\":true,\"id\":77,\"job\":\"backup\","
                        "\"due_at\":1767225600000,\"wait\":true}");

    apc_proto_response_init(&r, APC_RESP_ACK);
    response_round_trip(&r, APC_OP_RELOAD, "{\"v\":1,\"ok\":true}");
    r.message = "job backup paused until resumed";
    response_round_trip(&r, APC_OP_PAUSE,
                        "{\"v\":1,\"ok\":true,\"message\":\"job backup paused until resumed\"}");
    response_round_trip(&r, APC_OP_CANCEL, NULL);
    response_round_trip(&r, APC_OP_RESUME, NULL);

    apc_proto_response_init(&r, APC_RESP_LOGS);
    r.id = 5;
    r.data = "hello\r\n";
    response_round_trip(&r, APC_OP_LOGS,
                        "{\"v\":1,\"ok\":true,\"id\":5,\"data\":\"hello\\r\\n\","
                        "\"truncated\":false}");
}

static void a_manual_job_is_listed_with_a_null_schedule(void **state)
{
    apc_proto_response_t r;
    apc_proto_job_info_t job;
    (void)state;
    memset(&job, 0, sizeof job);
    job.name = "adhoc";
    job.schedule = NULL; /* no schedule: runs only when submitted */
    job.enabled = 1;
    job.paused_until = NONE;
    job.next_run = NONE;
    job.last_finished_at = NONE;
    apc_proto_response_init(&r, APC_RESP_LIST);
    r.jobs = &job;
    r.njobs = 1;
    response_round_trip(&r, APC_OP_LIST,
                        "{\"v\":1,\"ok\":true,\"jobs\":[{\"name\":\"adhoc\",\"schedule\":null,"
                        "\"enabled\":true,\"paused\":false,\"paused_until\":null,\"next_run\":null,"
                        "\"running\":0,\"last_status\":null,\"last_finished_at\":null}]}");
}

static void history_round_trips_and_fits_the_cap(void **state)
{
    enum { N = 1000 };
    apc_proto_run_t *runs = calloc(N, sizeof *runs);
    apc_proto_response_t r, back;
    apc_buf_t b = {0};
    size_t i;
    (void)state;
    assert_non_null(runs);
    for (i = 0; i < N; i++) {
        runs[i] = sample_run();
        runs[i].id = (int64_t)(N - i);
    }
    apc_proto_response_init(&r, APC_RESP_RUNS);
    r.runs = runs;
    r.nruns = 3;
    response_round_trip(&r, APC_OP_HISTORY, NULL);
    r.nruns = N;
    assert_int_equal(apc_proto_response_encode(&r, &b, NULL, 0), 0);
    assert_true(b.len <= APC_PROTO_MAX_MESSAGE);
    assert_int_equal(apc_proto_response_decode(b.data, b.len, APC_OP_HISTORY, &back, NULL, 0), 0);
    assert_true(back.nruns > 100 && back.nruns < N);
    assert_int_equal(back.more, 1);
    assert_int_equal(back.runs[0].id, N);
    assert_int_equal(back.runs[back.nruns - 1].id, (int64_t)(N - back.nruns + 1));
    apc_proto_response_free(&back);
    apc_buf_free(&b);
    free(runs);
}

static void logs_keep_the_newest_bytes_that_fit(void **state)
{
    size_t n = 200000, i;
    char *data = malloc(n + 1);
    apc_proto_response_t r, back;
    apc_buf_t b = {0};
    (void)state;
    assert_non_null(data);
    for (i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    data[n] = '\0';
    apc_proto_response_init(&r, APC_RESP_LOGS);
    r.id = 9;
    r.data = data;
    assert_int_equal(apc_proto_response_encode(&r, &b, NULL, 0), 0);
    assert_true(b.len <= APC_PROTO_MAX_MESSAGE);
    assert_true(b.len > APC_PROTO_MAX_MESSAGE - 8);
    assert_int_equal(apc_proto_response_decode(b.data, b.len, APC_OP_LOGS, &back, NULL, 0), 0);
    assert_int_equal(back.truncated, 1);
    i = strlen(back.data);
    assert_memory_equal(back.data, data + n - i, i);
    apc_proto_response_free(&back);
    apc_buf_free(&b);
    free(data);
}

static void logs_that_fit_exactly_are_not_truncated(void **state)
{
    const char *envelope = "{\"v\":1,\"ok\":true,\"id\":9,\"data\":\"\",\"truncated\":false}";
    size_t n = APC_PROTO_MAX_MESSAGE - strlen(envelope);
    char *data = malloc(n + 1);
    apc_proto_response_t r, back;
    apc_buf_t b = {0};
    (void)state;
    assert_non_null(data);
    memset(data, 'x', n);
    data[n] = '\0';
    apc_proto_response_init(&r, APC_RESP_LOGS);
    r.id = 9;
    r.data = data;
    assert_int_equal(apc_proto_response_encode(&r, &b, NULL, 0), 0);
    assert_int_equal(b.len, APC_PROTO_MAX_MESSAGE);
    assert_int_equal(apc_proto_response_decode(b.data, b.len, APC_OP_LOGS, &back, NULL, 0), 0);
    assert_int_equal(back.truncated, 0);
    assert_int_equal(strlen(back.data), n);
    apc_proto_response_free(&back);
    apc_buf_free(&b);
    free(data);
}

static void invalid_utf8_output_is_sent_with_replacement_characters(void **state)
{
    apc_proto_response_t r, back;
    apc_buf_t b = {0};
    (void)state;
    apc_proto_response_init(&r, APC_RESP_LOGS);
    r.id = 1;
    r.data = "caf\xe9 ok\xff";
    assert_int_equal(apc_proto_response_encode(&r, &b, NULL, 0), 0);
    assert_int_equal(apc_proto_response_decode(b.data, b.len, APC_OP_LOGS, &back, NULL, 0), 0);
    assert_string_equal(back.data, "caf\xef\xbf\xbd ok\xef\xbf\xbd");
    apc_proto_response_free(&back);
    apc_buf_free(&b);
}

static void response_decoder_ignores_new_keys_but_checks_known_ones(void **state)
{
    const char *newer = "{\"v\":1,\"ok\":true,\"message\":\"x\",\"hint\":{\"a\":1}}";
    const char *bad = "{\"v\":1,\"ok\":true,\"id\":\"7\",\"data\":\"\",\"truncated\":false}";
    const char *noboth = "{\"v\":1,\"ok\":\"yes\"}";
    apc_proto_response_t back;
    char err[200];
    (void)state;
    assert_int_equal(
        apc_proto_response_decode(newer, strlen(newer), APC_OP_RELOAD, &back, err, sizeof err), 0);
    assert_string_equal(back.message, "x");
    apc_proto_response_free(&back);
    assert_int_equal(
        apc_proto_response_decode(bad, strlen(bad), APC_OP_LOGS, &back, err, sizeof err),
        APC_EPROTO);
    assert_string_equal(err, "logs.id: expected an integer");
    assert_int_equal(
        apc_proto_response_decode(noboth, strlen(noboth), APC_OP_LOGS, &back, err, sizeof err),
        APC_EPROTO);
    assert_string_equal(err, "response.ok: expected a boolean");
}

static void run_record_values_are_checked_on_decode(void **state)
{
    const char *m = "{\"v\":1,\"ok\":true,\"runs\":[{\"id\":1,\"job\":\"j\",\"trigger\":\"manual\","
                    "\"status\":\"exploded\",\"attempt\":1,\"queued_at\":1,\"started_at\":null,"
                    "\"finished_at\":null,\"exit_code\":null,\"submitted_by\":null,"
                    "\"worker\":null,\"pid\":null,\"output_path\":null,\"output_tail\":null,"
                    "\"error\":null}],\"more\":false}";
    apc_proto_response_t back;
    char err[200];
    (void)state;
    assert_int_equal(
        apc_proto_response_decode(m, strlen(m), APC_OP_HISTORY, &back, err, sizeof err),
        APC_EINVAL);
    assert_string_equal(err, "runs[0].status: must be queued, running, succeeded, failed, "
                             "timed_out, cancelled, interrupted or skipped");
}

static void op_names_round_trip(void **state)
{
    int i;
    apc_proto_op_t op;
    (void)state;
    for (i = 0; i < (int)APC_OP_COUNT_; i++) {
        assert_int_equal(apc_proto_op_parse(apc_proto_op_name((apc_proto_op_t)i), &op), 0);
        assert_int_equal(op, i);
    }
    assert_null(apc_proto_op_name(APC_OP_COUNT_));
    assert_int_equal(apc_proto_op_parse("nope", &op), APC_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(submit_request_has_the_exact_wire_form),
        cmocka_unit_test(every_op_round_trips),
        cmocka_unit_test(decoder_applies_defaults),
        cmocka_unit_test(decoded_submit_exposes_args),
        cmocka_unit_test(wrong_types_are_named_precisely),
        cmocka_unit_test(unknown_ops_and_keys_are_rejected),
        cmocka_unit_test(missing_required_fields_are_named),
        cmocka_unit_test(version_must_be_exactly_one),
        cmocka_unit_test(values_are_range_checked),
        cmocka_unit_test(at_and_in_are_exclusive),
        cmocka_unit_test(job_names_follow_the_rules),
        cmocka_unit_test(size_cap_is_checked_before_parsing),
        cmocka_unit_test(malformed_messages_are_rejected),
        cmocka_unit_test(encoder_refuses_what_the_decoder_would),
        cmocka_unit_test(show_response_uses_the_runs_column_names),
        cmocka_unit_test(queued_run_sends_nulls_for_unknown_values),
        cmocka_unit_test(error_response_round_trips_with_symbolic_code),
        cmocka_unit_test(unknown_error_code_from_peer_maps_to_eproto),
        cmocka_unit_test(status_list_submit_ack_and_logs_round_trip),
        cmocka_unit_test(a_manual_job_is_listed_with_a_null_schedule),
        cmocka_unit_test(history_round_trips_and_fits_the_cap),
        cmocka_unit_test(logs_keep_the_newest_bytes_that_fit),
        cmocka_unit_test(logs_that_fit_exactly_are_not_truncated),
        cmocka_unit_test(invalid_utf8_output_is_sent_with_replacement_characters),
        cmocka_unit_test(response_decoder_ignores_new_keys_but_checks_known_ones),
        cmocka_unit_test(run_record_values_are_checked_on_decode),
        cmocka_unit_test(op_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
