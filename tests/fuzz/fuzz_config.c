/*
 * fuzz_config.c - libFuzzer target for the config loader and the JSON
 * position finder.
 *
 * Besides "no crash, leak or UB", it checks two properties that plain unit
 * tests cannot cover broadly:
 *   1. apc_jsonpos_syntax_error agrees with cJSON on whether the bytes are
 *      valid JSON (it is the source of every syntax error position);
 *   2. for valid JSON, apc_jsonpos_resolve puts every value on a byte that
 *      can start a value of its type and every key on a '"'.
 * A loaded config must also find each of its jobs by name.
 *
 * Single-threaded, as libFuzzer runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "apc_config.h"
#include "apc_jsonpos.h"
#include "apc_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_nodes(const cJSON *n)
{
    size_t k = 0;
    for (; n != NULL; n = n->next)
        k += 1 + count_nodes(n->child);
    return k;
}

static void add_reqs(const cJSON *n, int in_object, apc_jsonpos_req_t *r, size_t *k)
{
    for (; n != NULL; n = n->next) {
        r[*k].node = n;
        r[*k].want_key = 0;
        (*k)++;
        if (in_object) {
            r[*k].node = n;
            r[*k].want_key = 1;
            (*k)++;
        }
        add_reqs(n->child, cJSON_IsObject(n), r, k);
    }
}

static int starts(const cJSON *n, unsigned char c)
{
    if (cJSON_IsObject(n))
        return c == '{';
    if (cJSON_IsArray(n))
        return c == '[';
    if (cJSON_IsString(n))
        return c == '"';
    if (cJSON_IsNumber(n))
        return c == '-' || (c >= '0' && c <= '9');
    if (cJSON_IsBool(n))
        return c == 't' || c == 'f';
    return c == 'n';
}

static void check_positions(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    const char *end = NULL;
    cJSON *root;
    size_t off = 0, k = 0, i;
    char msg[256];
    int valid;

    if (copy == NULL)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    root = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
    valid = root != NULL;
    if (valid)
        for (i = (size_t)(end - copy); i < len; i++)
            if ((unsigned char)copy[i] > 32)
                valid = 0;
    if (apc_jsonpos_syntax_error(text, len, &off, msg, sizeof(msg)) == valid) {
        /* The scanner and cJSON disagree: allowed only where the scanner is stricter on
         * purpose (\u escapes with bad hex digits or \u0000). */
        if (!valid || strstr(msg, "\\u") == NULL)
            abort();
        valid = 0;
    }
    if (!valid && off > len)
        abort();
    if (root != NULL && valid) {
        size_t n = count_nodes(root);
        apc_jsonpos_req_t *reqs = calloc(2 * n + 1, sizeof(*reqs));
        if (reqs != NULL) {
            add_reqs(root, 0, reqs, &k);
            if (apc_jsonpos_resolve(text, len, root, reqs, k) == 0) {
                for (i = 0; i < k; i++) {
                    if (reqs[i].offset >= len || reqs[i].line == 0)
                        abort(); /* every node of a valid document has a position */
                    if (reqs[i].want_key
                            ? text[reqs[i].offset] != '"'
                            : !starts(reqs[i].node, (unsigned char)text[reqs[i].offset]))
                        abort();
                }
            }
            free(reqs);
        }
    }
    cJSON_Delete(root);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    apc_config_t *cfg = NULL;
    apc_diags_t d = {0};
    apc_buf_t out = {0};
    apc_tz_rules_t rules;
    apc_tz_t tz;

    if (size > 1u << 20)
        return 0;
    if (memchr(data, 0, size) == NULL)
        check_positions(text, size);

    if (apc_config_parse(text, size, "fuzz.json", "C:\\base", &cfg, &d) == 0) {
        char err[128];
        size_t i;
        if (cfg == NULL || d.errors != 0)
            abort();
        for (i = 0; i < cfg->njobs; i++)
            if (apc_config_find_job(cfg, cfg->jobs[i].name) != &cfg->jobs[i])
                abort();
        if (apc_tz_rules_parse("EST5EDT,M3.2.0,M11.1.0", &rules, err, sizeof(err)) == 0) {
            apc_tz_from_rules(&tz, &rules);
            (void)apc_config_lint(cfg, &tz, INT64_C(1767225600000), &d);
        }
    } else if (cfg != NULL || (d.errors == 0 && !d.failed)) {
        abort(); /* a failure always explains itself */
    }
    apc_diags_format(&d, &out);
    apc_buf_free(&out);
    apc_diags_free(&d);
    apc_config_free(cfg);
    return 0;
}
