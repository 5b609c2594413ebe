/*
 * apc_jsonpos.h - where in the JSON text a parsed cJSON value (or its key)
 * starts, as a byte offset and as 1-based line:column.
 *
 * Why this exists: cJSON keeps no positions, but every config error must
 * name the line and column of the offending value. Rather than make cJSON
 * remember positions for every value (a cost paid by every valid config),
 * positions are found only when an error has to be reported: one forward
 * scan of the text walks the text and the cJSON tree side by side (cJSON
 * keeps members in document order, duplicates included), so resolving any
 * number of requests costs one pass over the text, not one pass per error.
 *
 * Columns count characters (UTF-8 code points), not bytes, so that they match
 * what an editor shows for non-ASCII text; a tab counts as one column. Lines
 * end at '\n' (so "\r\n" files work); a UTF-8 byte order mark at the start of
 * the text is not counted.
 *
 * Thread safety: no state; any thread, as long as the tree is not modified
 * while it is being resolved.
 */
#ifndef APC_JSONPOS_H
#define APC_JSONPOS_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The offset reported for a request that could not be resolved. */
#define APC_JSONPOS_NONE ((size_t)-1)

/* One question: where is `node` (or, with want_key, the key of that object member)? */
typedef struct apc_jsonpos_req {
    const cJSON *node; /* in: a value of the tree parsed from the text */
    int want_key;      /* in: 1 = the member's key (node must be an object member) */
    size_t offset;     /* out: byte offset of the first character, or APC_JSONPOS_NONE */
    unsigned line;     /* out: 1-based, 0 when unresolved */
    unsigned col;      /* out: 1-based character column, 0 when unresolved */
} apc_jsonpos_req_t;

/*
 * Resolves every request in reqs[0..nreqs) against text[0..len), which must
 * be the exact text root was parsed from by cJSON. Requests may come in any
 * order and may repeat a node. Requests whose node is not in the tree (or a
 * key asked of an array element) stay unresolved (offset APC_JSONPOS_NONE,
 * line and col 0) without failing the others.
 *
 * Returns 0, APC_EINVAL for NULL arguments, or APC_ENOMEM (requests are then
 * left unresolved). Never reads outside text[0..len).
 */
int apc_jsonpos_resolve(const char *text, size_t len, const cJSON *root, apc_jsonpos_req_t *reqs,
                        size_t nreqs);

/*
 * Converts a byte offset into text[0..len) into a 1-based line and character
 * column (see the header comment for the counting rules). An offset at or
 * past len gives the position just after the last character, which is where
 * an "unexpected end of file" is reported.
 */
void apc_jsonpos_linecol(const char *text, size_t len, size_t offset, unsigned *line,
                         unsigned *col);

/*
 * Finds the first syntax error in text[0..len) the way cJSON 1.7 reads JSON
 * (whitespace is any byte <= 32, a leading UTF-8 byte order mark is skipped,
 * at most CJSON_NESTING_LIMIT nested containers, nothing but whitespace after
 * the top value). cJSON's own error offset is only approximate (it often
 * points one byte past the culprit), so callers run this after cJSON has
 * failed to find the exact spot.
 *
 * It is stricter than cJSON in one respect, on purpose: a \u escape must
 * have four hex digits and must not be \u0000 (cJSON reads bad hex digits as
 * 0 and then silently cuts the string at the NUL).
 *
 * Returns 1 and sets *offset to the byte to point at and msg to a one-line
 * explanation, e.g. `syntax error near "}" (a comma before a closing bracket
 * is not allowed in JSON)` or `syntax error: unexpected end of file` (offset
 * len); returns 0 if the scanner finds no error (msg then empty).
 */
int apc_jsonpos_syntax_error(const char *text, size_t len, size_t *offset, char *msg, size_t msgsz);

#endif /* APC_JSONPOS_H */
