/*
 * elog.h - the log sink the engine, the workers and the history thread share: a function
 * pointer and its context, as given in apc_engine_opts_t, plus a printf-style helper.
 *
 * Why this way: the engine does not own the service log (svclog.c does); it only formats
 * one line and hands it to whoever the service plugged in, from whichever of its threads
 * noticed the event. The sink must therefore be thread-safe (svclog's is).
 *
 * Thread safety: any thread, provided the sink is.
 */
#ifndef APC_ELOG_H
#define APC_ELOG_H

#include "apc_error.h"

typedef struct apc_elog {
    void (*fn)(void *ctx, int level, const char *msg); /* NULL: logging is off */
    void *ctx;
} apc_elog_t;

/*
 * Formats one line (at most 1023 bytes; longer lines are cut) and passes it to l->fn with
 * level (APC_ENGINE_LOG_*). Does nothing when l or l->fn is NULL. Any thread.
 */
void apc_elog(const apc_elog_t *l, int level, const char *fmt, ...) APC_PRINTF(3, 4);

#endif /* APC_ELOG_H */
