/*
 * apc_str.c - portable strdup and the growable buffer (see apc_str.h).
 */
#include "apc_str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *apc_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return apc_strndup(s, strlen(s));
}

char *apc_strndup(const char *s, size_t n)
{
    char *p;

    if (s == NULL || n == (size_t)-1)
        return NULL;
    p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Makes room for n more bytes plus the terminator; returns 0 or -1 (and marks failure). */
static int reserve(apc_buf_t *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return -1;
    if (n > (size_t)-1 - b->len - 1) {
        b->failed = 1;
        return -1;
    }
    need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void apc_buf_append(apc_buf_t *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void apc_buf_puts(apc_buf_t *b, const char *s)
{
    apc_buf_append(b, s, strlen(s));
}

void apc_buf_vprintf(apc_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void apc_buf_printf(apc_buf_t *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apc_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

int apc_buf_failed(const apc_buf_t *b)
{
    return b->failed;
}

void apc_buf_reset(apc_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *apc_buf_take(apc_buf_t *b)
{
    char *s;

    if (b->failed) {
        apc_buf_free(b);
        return NULL;
    }
    if (b->data == NULL) {
        if (reserve(b, 0) != 0)
            return NULL;
        b->data[0] = '\0';
    }
    s = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void apc_buf_free(apc_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
