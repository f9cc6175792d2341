/* capi_bench.c: time of numrnn_forward calls from a C host (benchmarks/capi.py runs it beside the
 * same work in Python and in ONNX Runtime).
 *   numrnn-bench MODEL CALLS              best of 5 runs of CALLS T=1, B=1 calls through a state,
 *                                         in microseconds per call (a streaming host's step)
 *   numrnn-bench MODEL serve T STATE [THREADS]
 *                                         a worker of benchmarks/interleave.py: "ready", then each
 *                                         line N runs N calls of T steps, B=1 (STATE 1: through one
 *                                         state, on THREADS threads (numrnn_state_set_threads, default
 *                                         1), 0: state NULL) and prints the seconds they took
 *   numrnn-bench MODEL threads K SECONDS  K threads, one state each, T=1 B=1 calls for SECONDS:
 *                                         prints the calls per second of all threads together, the
 *                                         CPU seconds the threads got per second, and the calls
 *                                         per CPU second (equal for 1 and K threads when nothing
 *                                         shared slows them: not a lock, not a cache line) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numrnn.h"

static numrnn_model *model;
static int64_t I, O;

static double clock_s(clockid_t which)
{
    struct timespec t;
    clock_gettime(which, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static int cmp(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

static float *input(int64_t T)
{
    float *x = malloc(T * I * sizeof(float));
    for (int64_t i = 0; i < T * I; i++)
        x[i] = (float)((i % 7) - 3) / 7.0f;
    return x;
}

static int call(numrnn_state *s, const float *x, int64_t T, float *y)
{
    if (numrnn_forward(model, s, x, T, 1, y, T * O)) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        exit(1);
    }
    return 0;
}

static int best_of_5(long calls)
{
    numrnn_state *s = NULL;
    double runs[5];
    float *x = input(1), *y = malloc(O * sizeof(float));
    if (numrnn_state_new(model, 1, &s)) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        return 1;
    }
    for (long i = 0; i < calls / 10 + 1; i++)   /* warm up */
        call(s, x, 1, y);
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (long i = 0; i < calls; i++)
            call(s, x, 1, y);
        runs[r] = (now() - t0) / calls * 1e6;
    }
    qsort(runs, 5, sizeof(double), cmp);
    printf("%.2f\n", runs[0]);
    numrnn_state_free(s);
    free(x);
    free(y);
    return 0;
}

static int serve(int64_t T, int with_state, int threads)
{
    numrnn_state *s = NULL;
    float *x = input(T), *y = malloc(T * O * sizeof(float));
    char line[64];
    if (with_state && (numrnn_state_new(model, 1, &s) || numrnn_state_set_threads(s, threads))) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        return 1;
    }
    for (int i = 0; i < 3; i++)
        call(s, x, T, y);
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0) {
        long n = atol(line);
        double t0 = now();
        for (long i = 0; i < n; i++)
            call(s, x, T, y);
        printf("%.9f\n", now() - t0);
        fflush(stdout);
    }
    numrnn_state_free(s);
    free(x);
    free(y);
    return 0;
}

typedef struct {
    double seconds, cpu;
    long calls;
} job;

static void *stream(void *arg)
{
    job *j = arg;
    numrnn_state *s = NULL;
    float *x = input(1), *y = malloc(O * sizeof(float));
    if (numrnn_state_new(model, 1, &s)) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        exit(1);
    }
    double end = now() + j->seconds, cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    while (now() < end) {
        for (int i = 0; i < 100; i++)
            call(s, x, 1, y);
        j->calls += 100;
    }
    j->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    numrnn_state_free(s);
    free(x);
    free(y);
    return NULL;
}

static int threads(int k, double seconds)
{
    pthread_t tid[64];
    job jobs[64];
    long total = 0;
    double cpu = 0, wall;
    float *x = input(1), *y = malloc(O * sizeof(float));
    call(NULL, x, 1, y);   /* the model's first call sets up its compiled path */
    double t0 = now();
    for (int i = 0; i < k; i++) {
        jobs[i] = (job){seconds, 0, 0};
        pthread_create(&tid[i], NULL, stream, &jobs[i]);
    }
    for (int i = 0; i < k; i++) {
        pthread_join(tid[i], NULL);
        total += jobs[i].calls;
        cpu += jobs[i].cpu;
    }
    wall = now() - t0;
    printf("%.1f %.3f %.1f\n", total / wall, cpu / wall, total / cpu);
    free(x);
    free(y);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[2], "serve") == 0 && argc != 5 && argc != 6) ||
        (strcmp(argv[2], "threads") == 0 && (argc != 5 || atoi(argv[3]) < 1 || atoi(argv[3]) > 64))) {
        fprintf(stderr, "usage: numrnn-bench MODEL CALLS | MODEL serve T STATE [THREADS] | MODEL threads K SECONDS\n");
        return 2;
    }
    if (numrnn_model_open(argv[1], "cpu", &model) || numrnn_model_sizes(model, &I, &O, NULL)) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        return 1;
    }
    int rc = strcmp(argv[2], "serve") == 0     ? serve(atol(argv[3]), atoi(argv[4]), argc == 6 ? atoi(argv[5]) : 1)
             : strcmp(argv[2], "threads") == 0 ? threads(atoi(argv[3]), atof(argv[4]))
                                               : best_of_5(atol(argv[2]));
    numrnn_model_close(model);
    return rc;
}
