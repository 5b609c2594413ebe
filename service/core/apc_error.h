/*
 * apc_error.h - the one list of error codes used by the portable core and
 * the Windows runtime.
 *
 * Every public function returns int: 0 on success or a negative APC_E* code.
 * Human detail (file, line, field, the original Win32/SQLite code) goes into
 * a caller-supplied buffer, never into a global. The list below is an X-macro
 * so that the enum and apc_strerror() can never disagree.
 *
 * Thread safety: everything here is pure and may be called from any thread.
 */
#ifndef APC_ERROR_H
#define APC_ERROR_H

#include <stddef.h>

/*
 * APC_PRINTF(f, a): printf-style format checking where the compiler has it. MinGW builds
 * use the C99-conforming stdio (__USE_MINGW_ANSI_STDIO, set by the build), so formats are
 * checked as gnu_printf there (%zu, %lld); MSVC has no attribute and needs none.
 */
#if defined(__MINGW32__)
#define APC_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define APC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define APC_PRINTF(f, a)
#endif

#define APC_ERRNO_MAP(X)                                 \
    X(INVAL, "invalid argument")                         \
    X(NOMEM, "out of memory")                            \
    X(RANGE, "value out of range")                       \
    X(SYNTAX, "syntax error")                            \
    X(NOTFOUND, "not found")                             \
    X(EXISTS, "already exists")                          \
    X(IO, "input/output error")                          \
    X(DB, "history database error")                      \
    X(BUSY, "resource busy")                             \
    X(TOOBIG, "too large")                               \
    X(PROTO, "protocol error")                           \
    X(NEVER, "schedule can never fire")                  \
    X(STATE, "operation not valid in the current state") \
    X(DENIED, "access denied")                           \
    X(SYS, "system error")                               \
    X(CANCELLED, "cancelled")                            \
    X(TIMEDOUT, "timed out")

typedef enum apc_errno {
    APC_OK = 0,
#define APC_ERRNO_ENUM(name, text) APC_E##name,
    APC_EFIRST_ = -1000,
    APC_ERRNO_MAP(APC_ERRNO_ENUM)
#undef APC_ERRNO_ENUM
        APC_ELAST_
} apc_errno_t;

/* Returns a static, never-NULL English text for an APC_E* code (or for 0). */
const char *apc_strerror(int err);

/* Returns the symbolic name ("EINVAL") of an APC_E* code, or "OK" for 0. */
const char *apc_errname(int err);

/*
 * Formats into a caller buffer without ever overflowing it and always
 * NUL-terminates when size > 0. Returns err unchanged, so error paths can be
 * written as `return apc_seterr(buf, size, APC_EINVAL, "...", ...);`.
 */
int apc_seterr(char *buf, size_t size, int err, const char *fmt, ...) APC_PRINTF(4, 5);

#endif /* APC_ERROR_H */
