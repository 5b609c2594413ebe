/*
 * fuzz_protocol.c - libFuzzer target for the control-protocol codec.
 *
 * Feeds arbitrary bytes to the request decoder and to the response decoder
 * (as the answer to every op). Whatever decodes must re-encode, and the
 * re-encoded message must decode to an equal value: this catches a decoder
 * that accepts what the encoder would refuse, and an encoder that writes
 * what the decoder cannot read. Crashes, leaks and UB are caught by the
 * sanitizers the target is built with.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "apc_error.h"
#include "apc_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const char *msg, size_t len)
{
    apc_proto_request_t a, b;
    apc_buf_t out = {0};
    char err[256];
    int rc;

    if (apc_proto_request_decode(msg, len, &a, err, sizeof err) != 0)
        return;
    rc = apc_proto_request_encode(&a, &out, err, sizeof err);
    /* Escaping may grow a message past the cap (a raw control byte becomes \u00XX). */
    if (rc == APC_ETOOBIG)
        goto done;
    if (rc != 0)
        abort();
    if (apc_proto_request_decode(out.data, out.len, &b, err, sizeof err) != 0)
        abort();
    if (!apc_proto_request_equal(&a, &b))
        abort();
    apc_proto_request_free(&b);
done:
    apc_proto_request_free(&a);
    apc_buf_free(&out);
}

static void check_response(const char *msg, size_t len, apc_proto_op_t op)
{
    apc_proto_response_t a, b;
    apc_buf_t out = {0};
    char err[256];
    int rc;

    if (apc_proto_response_decode(msg, len, op, &a, err, sizeof err) != 0)
        return;
    rc = apc_proto_response_encode(&a, &out, err, sizeof err);
    if (rc == APC_ETOOBIG)
        goto done;
    if (rc != 0)
        abort();
    if (apc_proto_response_decode(out.data, out.len, op, &b, err, sizeof err) != 0)
        abort();
    /* Trimming to the cap may legitimately drop runs or log bytes on re-encoding. */
    if (out.len < APC_PROTO_MAX_MESSAGE - 1024 && !apc_proto_response_equal(&a, &b))
        abort();
    apc_proto_response_free(&b);
done:
    apc_proto_response_free(&a);
    apc_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    int op;

    check_request(msg, size);
    for (op = 0; op < (int)APC_OP_COUNT_; op++)
        check_response(msg, size, (apc_proto_op_t)op);
    return 0;
}
