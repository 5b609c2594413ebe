/*
 * elog.c - the engine's printf-style front end to the service log sink (see elog.h).
 *
 * Thread safety: any thread; the line is formatted on the caller's stack.
 */
#include "elog.h"

#include <stdarg.h>
#include <stdio.h>

void apc_elog(const apc_elog_t *l, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (l == NULL || l->fn == NULL)
        return;
    va_start(ap, fmt);
    if (vsnprintf(line, sizeof line, fmt, ap) < 0)
        line[0] = '\0';
    va_end(ap);
    l->fn(l->ctx, level, line);
}
