/*
 * bench_stats.c - percentiles and result lines for the benchmarks (see bench_stats.h).
 *
 * The clock is the one non-portable piece: QueryPerformanceCounter on Windows and
 * CLOCK_MONOTONIC elsewhere, both monotonic and sub-microsecond. Threads: any.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

int bench_samples_add(bench_samples_t *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

void bench_samples_free(bench_samples_t *s)
{
    if (s == NULL)
        return;
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(bench_samples_t *s, double q)
{
    double pos, frac;
    size_t i;

    if (s->n == 0)
        return 0.0;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    if (q <= 0.0)
        return s->v[0];
    if (q >= 1.0)
        return s->v[s->n - 1];
    pos = q * (double)(s->n - 1);
    i = (size_t)pos;
    frac = pos - (double)i;
    if (i + 1 >= s->n)
        return s->v[s->n - 1];
    return s->v[i] + (s->v[i + 1] - s->v[i]) * frac;
}

void bench_result(const char *bench, const char *metric, double value, const char *unit)
{
    printf("RESULT %s %s %.3f %s\n", bench, metric, value, unit);
    fflush(stdout);
}

void bench_info(const char *bench, const char *text)
{
    printf("INFO %s %s\n", bench, text);
    fflush(stdout);
}

void bench_summary(const char *bench, const char *prefix, bench_samples_t *s, const char *unit)
{
    char metric[128];
    int p;

    snprintf(metric, sizeof metric, "%s.n", prefix);
    bench_result(bench, metric, (double)s->n, "samples");
    snprintf(metric, sizeof metric, "%s.p50", prefix);
    bench_result(bench, metric, bench_quantile(s, 0.50), unit);
    snprintf(metric, sizeof metric, "%s.p99", prefix);
    bench_result(bench, metric, bench_quantile(s, 0.99), unit);
    snprintf(metric, sizeof metric, "%s.max", prefix);
    bench_result(bench, metric, bench_quantile(s, 1.0), unit);
    printf("DIST %s %s %zu", bench, prefix, s->n);
    for (p = 0; p <= 100; p++)
        printf(" %.3f", bench_quantile(s, (double)p / 100.0));
    printf("\n");
    fflush(stdout);
}

double bench_now_us(void)
{
#ifdef _WIN32
    static LARGE_INTEGER freq;
    LARGE_INTEGER t;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq); /* cannot fail on Windows XP and later */
    QueryPerformanceCounter(&t);
    return (double)t.QuadPart * 1e6 / (double)freq.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
#endif
}
