/* capi_bench.c: time of one numrnn_forward call with T=1, B=1 through a state (the per-step
 * cost of a streaming host). benchmarks/capi.py runs it beside the same call made in Python.
 *   numrnn-bench MODEL CALLS     prints the best of 5 runs of CALLS calls, in microseconds per call */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "numrnn.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

int main(int argc, char **argv)
{
    numrnn_model *m = NULL;
    numrnn_state *s = NULL;
    int64_t I, O;
    double runs[5];
    if (argc != 3) {
        fprintf(stderr, "usage: numrnn-bench MODEL CALLS\n");
        return 2;
    }
    long calls = atol(argv[2]);
    if (numrnn_model_open(argv[1], "cpu", &m) || numrnn_model_sizes(m, &I, &O, NULL) ||
        numrnn_state_new(m, 1, &s)) {
        fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
        return 1;
    }
    float *x = malloc(I * sizeof(float)), *y = malloc(O * sizeof(float));
    for (int64_t i = 0; i < I; i++)
        x[i] = (float)((i % 7) - 3) / 7.0f;
    for (long i = 0; i < calls / 10 + 1; i++)   /* warm up */
        numrnn_forward(m, s, x, 1, 1, y, O);
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (long i = 0; i < calls; i++)
            if (numrnn_forward(m, s, x, 1, 1, y, O)) {
                fprintf(stderr, "numrnn-bench: %s\n", numrnn_last_error());
                return 1;
            }
        runs[r] = (now() - t0) / calls * 1e6;
    }
    qsort(runs, 5, sizeof(double), cmp);
    printf("%.2f\n", runs[0]);
    numrnn_state_free(s);
    numrnn_model_close(m);
    free(x);
    free(y);
    return 0;
}
