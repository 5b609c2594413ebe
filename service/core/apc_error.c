/*
 * apc_error.c - texts for the APC_E* codes and the caller-buffer formatter.
 *
 * Pure functions; any thread.
 */
#include "apc_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *apc_strerror(int err)
{
    switch (err) {
    case APC_OK:
        return "success";
#define APC_ERRNO_TEXT(name, text) \
    case APC_E##name:              \
        return text;
        APC_ERRNO_MAP(APC_ERRNO_TEXT)
#undef APC_ERRNO_TEXT
    default:
        return "unknown error";
    }
}

const char *apc_errname(int err)
{
    switch (err) {
    case APC_OK:
        return "OK";
#define APC_ERRNO_NAME(name, text) \
    case APC_E##name:              \
        return "E" #name;
        APC_ERRNO_MAP(APC_ERRNO_NAME)
#undef APC_ERRNO_NAME
    default:
        return "EUNKNOWN";
    }
}

int apc_seterr(char *buf, size_t size, int err, const char *fmt, ...)
{
    va_list ap;

    if (buf == NULL || size == 0)
        return err;
    va_start(ap, fmt);
    (void)vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return err;
}
