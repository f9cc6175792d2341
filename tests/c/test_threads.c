/* test_threads.c: calls on different states from different threads (the compiled path of
 * capi/numrnn.c, no interpreter) give, bit for bit, what each state's calls give on one thread.
 *
 *   test_threads MODEL features|tokens
 *
 * Four states, each fed its own input (so a mix-up between states shows), streamed one step per
 * call over STEPS steps, ROUNDS times with a new state each time: first every state alone on the
 * main thread, then all four at once on four threads started together. Every round's outputs are
 * compared (a late round alone could match by the state's dynamics forgetting a corrupted start). (Whether they really run in parallel is measured, not
 * tested: benchmarks/capi.py's thread row.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numrnn.h"

enum { THREADS = 4, STEPS = 40, ROUNDS = 50, BATCH = 2 };

typedef struct {
    numrnn_model *model;
    int tokens;
    int64_t I, O, V;
    void *in;     /* [STEPS][BATCH][I] floats or [STEPS][BATCH] token ids */
    float *y;     /* [ROUNDS][STEPS][BATCH][O] */
    int rc;
} job;

static pthread_barrier_t start;

static void *stream(void *arg)
{
    job *j = arg;
    int64_t step = BATCH * j->O;
    if (j->rc < 0) {    /* a thread of the parallel run: wait for the others */
        j->rc = 0;
        pthread_barrier_wait(&start);
    }
    for (int r = 0; r < ROUNDS && !j->rc; r++) {
        numrnn_state *s = NULL;
        j->rc = numrnn_state_new(j->model, BATCH, &s);
        for (int64_t t = 0; t < STEPS && !j->rc; t++) {
            j->rc = j->tokens
                ? numrnn_forward_tokens(j->model, s, (const int32_t *)j->in + t * BATCH, 1, BATCH,
                                        j->y + (r * STEPS + t) * step, step)
                : numrnn_forward(j->model, s, (const float *)j->in + t * BATCH * j->I, 1, BATCH,
                                 j->y + (r * STEPS + t) * step, step);
        }
        numrnn_state_free(s);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    numrnn_model *m = NULL;
    job one[THREADS], many[THREADS];
    pthread_t tid[THREADS];
    int failures = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: test_threads MODEL features|tokens\n");
        return 2;
    }
    if (numrnn_model_open(argv[1], "cpu", &m) != NUMRNN_OK) {
        fprintf(stderr, "open: %s\n", numrnn_last_error());
        return 1;
    }
    int tokens = strcmp(argv[2], "tokens") == 0;
    int64_t I, O, V;
    numrnn_model_sizes(m, &I, &O, &V);
    srand(7);
    for (int i = 0; i < THREADS; i++) {
        int64_t n = STEPS * BATCH * (tokens ? 1 : I);
        void *in = malloc(n * (tokens ? sizeof(int32_t) : sizeof(float)));
        for (int64_t k = 0; k < n; k++) {
            if (tokens)
                ((int32_t *)in)[k] = rand() % (int)V;
            else
                ((float *)in)[k] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
        }
        one[i] = (job){m, tokens, I, O, V, in, calloc(ROUNDS * STEPS * BATCH * O, sizeof(float)), 0};
        many[i] = one[i];
        many[i].y = calloc(ROUNDS * STEPS * BATCH * O, sizeof(float));
        many[i].rc = -1;
        stream(&one[i]);
        if (one[i].rc) {
            fprintf(stderr, "FAIL state %d alone: %d %s\n", i, one[i].rc, numrnn_last_error());
            failures++;
        }
    }
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&tid[i], NULL, stream, &many[i]);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        if (many[i].rc || memcmp(many[i].y, one[i].y, ROUNDS * STEPS * BATCH * O * sizeof(float)) != 0) {
            fprintf(stderr, "FAIL thread %d: rc %d, %s\n", i, many[i].rc,
                    many[i].rc ? numrnn_last_error() : "outputs differ from the state's single-thread run");
            failures++;
        }
        if (i > 0 && memcmp(one[i].y, one[0].y, STEPS * BATCH * O * sizeof(float)) == 0) {
            fprintf(stderr, "FAIL states 0 and %d gave the same outputs for different inputs\n", i);
            failures++;
        }
    }
    pthread_barrier_destroy(&start);
    printf("%s: %d threads x %d rounds x %d steps on %d states == each state alone, bit for bit; "
           "(%d failures)\n", argv[1], THREADS, ROUNDS, STEPS, THREADS, failures);
    for (int i = 0; i < THREADS; i++) {
        free(one[i].in);
        free(one[i].y);
        free(many[i].y);
    }
    numrnn_model_close(m);
    return failures ? 1 : 0;
}
