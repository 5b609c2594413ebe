/*
 * apc_str.h - small string helpers shared by the core: portable strdup, and a
 * growable byte buffer used to build messages, SQL and JSON text.
 *
 * Why our own: strdup/strndup are POSIX, not C11, and MSVC spells them
 * differently; one checked implementation beats a copy in every file.
 *
 * Thread safety: no shared state; a buffer belongs to the thread that uses it.
 */
#ifndef APC_STR_H
#define APC_STR_H

#include <stdarg.h>
#include <stddef.h>

#include "apc_error.h"

/* Returns a malloc'd copy of s (NULL if s is NULL or memory runs out). */
char *apc_strdup(const char *s);

/* Returns a malloc'd, NUL-terminated copy of the first n bytes of s (NULL on OOM). */
char *apc_strndup(const char *s, size_t n);

/*
 * A growable, always NUL-terminated buffer. Zero-initialise it
 * (apc_buf_t b = {0};) before use. After an allocation failure the buffer is
 * marked failed: further appends do nothing and apc_buf_failed() says so, so a
 * builder can append freely and check once at the end.
 */
typedef struct apc_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} apc_buf_t;

void apc_buf_append(apc_buf_t *b, const char *s, size_t n);
void apc_buf_puts(apc_buf_t *b, const char *s);
void apc_buf_printf(apc_buf_t *b, const char *fmt, ...) APC_PRINTF(2, 3);
void apc_buf_vprintf(apc_buf_t *b, const char *fmt, va_list ap) APC_PRINTF(2, 0);

/* Returns 1 if an append ran out of memory since the buffer was reset. */
int apc_buf_failed(const apc_buf_t *b);

/* Empties the buffer, keeping its memory. */
void apc_buf_reset(apc_buf_t *b);

/* Hands the string to the caller (who frees it) and leaves b empty; NULL if failed. */
char *apc_buf_take(apc_buf_t *b);

/* Releases the buffer's memory. Accepts a zeroed buffer. */
void apc_buf_free(apc_buf_t *b);

#endif /* APC_STR_H */
