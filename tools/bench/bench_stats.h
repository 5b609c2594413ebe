/*
 * bench_stats.h - sample statistics and the result lines every benchmark prints.
 *
 * Why this way: the machine the benchmarks run on is shared and noisy, so every figure is a
 * percentile over many samples rather than a mean, and every figure is printed as one
 * self-describing line that tools/bench/run turns into REPORT.md:
 *
 *   RESULT <bench> <metric> <value> <unit>
 *   DIST <bench> <series> <n> <p0> <p1> ... <p100>      (101 percentiles, for the chart)
 *   INFO <bench> <free text>
 *
 * Portable C11 (native and Windows builds). Threads: any, no shared state.
 */
#ifndef APC_BENCH_STATS_H
#define APC_BENCH_STATS_H

#include <stddef.h>

/* A growable array of samples (any unit; the caller says which when printing). */
typedef struct bench_samples {
    double *v;
    size_t n, cap;
} bench_samples_t;

/* Appends x. Returns 0, or -1 when out of memory (the sample is lost; callers abort). */
int bench_samples_add(bench_samples_t *s, double x);

/* Releases the samples. Accepts NULL. */
void bench_samples_free(bench_samples_t *s);

/*
 * The q-quantile (0 <= q <= 1) by linear interpolation between order statistics; sorts the
 * samples in place. Returns 0.0 for an empty set.
 */
double bench_quantile(bench_samples_t *s, double q);

/* Prints "RESULT bench metric value unit" (value with 3 decimals) and flushes stdout. */
void bench_result(const char *bench, const char *metric, double value, const char *unit);

/* Prints "INFO bench text" and flushes stdout. */
void bench_info(const char *bench, const char *text);

/*
 * Prints RESULT lines <prefix>.p50, .p99, .max (and .n) for s in unit, then the DIST line
 * for the chart. Sorts s.
 */
void bench_summary(const char *bench, const char *prefix, bench_samples_t *s, const char *unit);

/* Monotonic clock in microseconds (QueryPerformanceCounter / CLOCK_MONOTONIC). */
double bench_now_us(void);

#endif /* APC_BENCH_STATS_H */
