/* fuzz_open.c: the damaged and hostile files of tests/hostile_files.py through libnumrnn.so.
 *
 *   fuzz_open FIXTURES    opens every file listed in FIXTURES/hostile/manifest.txt (written by
 *                         tests/c/make_fixtures.py) and checks each against what numrnn does in
 *                         Python: NUMRNN_E_FORMAT with a message where Python refuses the file,
 *                         else NUMRNN_OK with the same sizes and a forward call that succeeds;
 *                         no other code, and no open slower than MAX_SECONDS.
 *
 * Manifest lines: expected_code I O V file case_name  (I O V: Python's sizes when it opens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numrnn.h"

#define MAX_SECONDS 2.0 /* per file; the files are a few KB and a refusal takes milliseconds */
#define T 2              /* steps of the forward call on a file that opens */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One forward call of T steps, batch 1, zero input, on an opened model of the given sizes. */
static int forward_once(numrnn_model *m, int64_t in, int64_t out, int64_t vocab)
{
    float *y = malloc(T * out * sizeof(float));
    int rc;
    if (vocab > 0) {
        int32_t tokens[T] = {0};
        rc = numrnn_forward_tokens(m, NULL, tokens, T, 1, y, T * out);
    } else {
        float *x = calloc(T * in, sizeof(float));
        rc = numrnn_forward(m, NULL, x, T, 1, y, T * out);
        free(x);
    }
    free(y);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_open FIXTURES\n");
        return 2;
    }
    char path[4096], file[256], name[256];
    snprintf(path, sizeof path, "%s/hostile/manifest.txt", argv[1]);
    FILE *manifest = fopen(path, "r");
    if (!manifest) {
        fprintf(stderr, "no %s: run tests/c/make_fixtures.py first\n", path);
        return 2;
    }
    numrnn_model *warm_up = NULL;  /* the first call starts the embedded Python: not the files' time */
    numrnn_model_open(path, "cpu", &warm_up);
    numrnn_model_close(warm_up);
    int expected, failures = 0, files = 0, opened = 0;
    long long in, out, vocab;
    double total = 0, slowest = 0;
    char slowest_name[256] = "";
    while (fscanf(manifest, "%d %lld %lld %lld %255s %255s", &expected, &in, &out, &vocab, file, name) == 6) {
        snprintf(path, sizeof path, "%s/hostile/%s", argv[1], file);
        numrnn_model *m = NULL;
        double start = now();
        int rc = numrnn_model_open(path, "cpu", &m);
        double seconds = now() - start;
        const char *why = "";
        files++;
        total += seconds;
        if (seconds > slowest) {
            slowest = seconds;
            snprintf(slowest_name, sizeof slowest_name, "%s", name);
        }
        if (rc != expected)
            why = "not the code Python's numrnn gives";
        else if (seconds > MAX_SECONDS)
            why = "too slow";
        else if (rc != NUMRNN_OK && (strstr(numrnn_last_error(), "numrnn_model_open") == NULL || m != NULL))
            why = "no message, or a model left behind";
        opened += rc == NUMRNN_OK;
        if (rc == NUMRNN_OK && !*why) {
            int64_t i = -1, o = -1, v = -1;
            if (numrnn_model_sizes(m, &i, &o, &v) != NUMRNN_OK || i != in || o != out || v != vocab)
                why = "sizes differ from Python's";
            else if (forward_once(m, i, o, v) != NUMRNN_OK)
                why = "forward failed";
        }
        numrnn_model_close(rc == NUMRNN_OK ? m : NULL);
        if (*why) {
            failures++;
            fprintf(stderr, "FAIL %s (%s): %s; returned %d, expected %d, %.3f s: %s\n", name, file, why, rc,
                    expected, seconds, rc ? numrnn_last_error() : "");
        }
    }
    fclose(manifest);
    printf("%d files: %d opened, %d refused, %d failures; %.2f s in numrnn_model_open, slowest %s %.1f ms\n",
           files, opened, files - opened, failures, total, slowest_name, slowest * 1e3);
    if (files == 0) {
        fprintf(stderr, "FAIL: the manifest lists no file\n");
        return 1;
    }
    return failures ? 1 : 0;
}
