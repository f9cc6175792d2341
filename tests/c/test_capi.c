/* test_capi.c: tests of libnumrnn.so through its header, against the outputs numrnn computed in
 * Python (files written by tests/c/make_fixtures.py; see CMakeLists.txt for how ctest runs it).
 *
 *   test_capi FIXTURES models    every model: whole sequence vs Python, streaming halves ==
 *                                whole, canary past y_len, the model-specific error cases
 *   test_capi FIXTURES errors    every other error case, each with its code and a message
 *   test_capi FIXTURES threads   4 threads sharing one model, one state each == one thread
 *   test_capi FIXTURES broken    run with a Python that cannot start: every call fails with
 *                                NUMRNN_E_RUNTIME (never NUMRNN_OK)
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numrnn.h"

#define MAX_MODELS 32
#define CANARY 12345.0f /* written past y_len; must survive every call */
#define SPARE 8         /* canary floats after each output buffer */

typedef struct {
    char name[64], kind[16];
    int64_t T, B, I, O, V;
    int streams;
    void *in;     /* [T][B][I] float or [T][B] int32 */
    float *out;   /* [T][B][O] from Python */
} fixture;

static const char *folder;
static int failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

/* A call that must fail with `code` and leave a message naming the function. */
#define CHECK_FAILS(call, code, fn)                                                         \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        CHECK(rc_ == (code), "%s returned %d, expected %d (%s)", #call, rc_, (code),        \
              numrnn_last_error());                                                         \
        CHECK(strstr(numrnn_last_error(), fn) != NULL, "%s: message '%s' does not name %s", \
              #call, numrnn_last_error(), fn);                                              \
        printf("  ok %-60.60s -> %d: %s\n", #call, rc_, numrnn_last_error());              \
    } while (0)

static char *path_of(const char *name, const char *ext)
{
    static _Thread_local char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", folder, name, ext);
    return path;
}

static void *read_all(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    void *data = malloc(bytes ? bytes : 1);
    if (!f || fread(data, 1, bytes, f) != bytes) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, path);
        exit(2);
    }
    fclose(f);
    return data;
}

static int read_fixtures(fixture *fx)
{
    FILE *f = fopen(path_of("manifest", ".txt"), "r");
    int n = 0;
    if (!f) {
        fprintf(stderr, "no %s: run tests/c/make_fixtures.py first\n", path_of("manifest", ".txt"));
        exit(2);
    }
    while (n < MAX_MODELS && fscanf(f, "%63s %15s %ld %ld %ld %ld %ld %d", fx[n].name, fx[n].kind,
                                    &fx[n].T, &fx[n].B, &fx[n].I, &fx[n].O, &fx[n].V,
                                    &fx[n].streams) == 8) {
        fixture *x = &fx[n++];
        size_t in_bytes = strcmp(x->kind, "tokens") == 0 ? x->T * x->B * sizeof(int32_t)
                                                         : x->T * x->B * x->I * sizeof(float);
        x->in = read_all(path_of(x->name, ".in"), in_bytes);
        x->out = read_all(path_of(x->name, ".out"), x->T * x->B * x->O * sizeof(float));
    }
    fclose(f);
    return n;
}

static double rel_error(const float *a, const float *ref, int64_t n)
{
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < n; i++) {
        diff += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        norm += (double)ref[i] * ref[i];
    }
    return sqrt(diff) / (sqrt(norm) + 1e-30);
}

static float *canary_buffer(int64_t n)
{
    float *y = malloc((n + SPARE) * sizeof(float));
    for (int64_t i = 0; i < n + SPARE; i++)
        y[i] = CANARY;
    return y;
}

static int untouched(const float *y, int64_t from, int64_t to)
{
    for (int64_t i = from; i < to; i++)
        if (y[i] != CANARY)
            return 0;
    return 1;
}

static int is_tokens(const fixture *x)
{
    return strcmp(x->kind, "tokens") == 0;
}

/* steps [t0, t0 + n) of a fixture's input */
static const void *steps_of(const fixture *x, int64_t t0)
{
    return is_tokens(x) ? (const void *)((const int32_t *)x->in + t0 * x->B)
                        : (const void *)((const float *)x->in + t0 * x->B * x->I);
}

static int run(const fixture *x, numrnn_model *m, numrnn_state *s, int64_t t0, int64_t n,
               int64_t batch, float *y, int64_t y_len)
{
    return is_tokens(x) ? numrnn_forward_tokens(m, s, steps_of(x, t0), n, batch, y, y_len)
                        : numrnn_forward(m, s, steps_of(x, t0), n, batch, y, y_len);
}

static void test_model(const fixture *x)
{
    const char *fn = is_tokens(x) ? "numrnn_forward_tokens" : "numrnn_forward";
    int64_t need = x->T * x->B * x->O, I = -1, O = -1, V = -1;
    numrnn_model *m = NULL;
    numrnn_state *s = NULL;
    float *y = canary_buffer(need);
    int rc;

    printf("%s (%s, T=%ld B=%ld I=%ld O=%ld V=%ld)\n", x->name, x->kind, x->T, x->B, x->I, x->O, x->V);
    rc = numrnn_model_open(path_of(x->name, ".safetensors"), "cpu", &m);
    CHECK(rc == NUMRNN_OK && m, "%s: open -> %d: %s", x->name, rc, numrnn_last_error());
    if (rc != NUMRNN_OK)
        return;
    rc = numrnn_model_sizes(m, &I, &O, &V);
    CHECK(rc == NUMRNN_OK && I == x->I && O == x->O && V == x->V,
          "%s: sizes -> %d: I=%ld O=%ld V=%ld", x->name, rc, I, O, V);
    CHECK(numrnn_model_sizes(m, NULL, &O, NULL) == NUMRNN_OK && O == x->O, "sizes with NULLs");

    /* whole sequence, no state, y_len exactly the output: matches Python, canary intact */
    rc = run(x, m, NULL, 0, x->T, x->B, y, need);
    double err = rel_error(y, x->out, need);
    CHECK(rc == NUMRNN_OK && err < 1e-5, "%s: whole -> %d, relative error %.3g (%s)", x->name, rc,
          err, numrnn_last_error());
    CHECK(untouched(y, need, need + SPARE), "%s: wrote past y_len", x->name);
    printf("  ok whole sequence, relative error %.2e, canary past y_len intact\n", err);

    /* y_len one short: NUMRNN_E_ARG and nothing written at all */
    float *z = canary_buffer(need);
    CHECK_FAILS(run(x, m, NULL, 0, x->T, x->B, z, need - 1), NUMRNN_E_ARG, fn);
    CHECK(untouched(z, 0, need + SPARE), "%s: wrote with y_len too small", x->name);

    /* the other entry point is refused */
    CHECK_FAILS(is_tokens(x) ? numrnn_forward(m, NULL, (const float *)x->in, x->T, x->B, z, need)
                             : numrnn_forward_tokens(m, NULL, (const int32_t *)x->in, x->T, x->B, z, need),
                NUMRNN_E_ARG, is_tokens(x) ? "numrnn_forward" : "numrnn_forward_tokens");
    CHECK(untouched(z, 0, need + SPARE), "%s: refused call wrote into y", x->name);

    if (!x->streams) {
        CHECK_FAILS(numrnn_state_new(m, x->B, &s), NUMRNN_E_ARG, "numrnn_state_new");
        CHECK(s == NULL, "failed state_new left a state");
    } else {
        /* two halves through one state == the whole */
        int64_t t1 = x->T / 2, first = t1 * x->B * x->O;
        float *h = canary_buffer(need);
        rc = numrnn_state_new(m, x->B, &s);
        CHECK(rc == NUMRNN_OK && s, "state_new -> %d: %s", rc, numrnn_last_error());
        rc = run(x, m, s, 0, t1, x->B, h, first);
        CHECK(rc == NUMRNN_OK, "first half -> %d: %s", rc, numrnn_last_error());
        CHECK(untouched(h, first, need + SPARE), "first half wrote past its y_len");
        rc = run(x, m, s, t1, x->T - t1, x->B, h + first, need - first);
        CHECK(rc == NUMRNN_OK, "second half -> %d: %s", rc, numrnn_last_error());
        err = rel_error(h, x->out, need);
        CHECK(err < 1e-5 && untouched(h, need, need + SPARE), "%s: halves vs whole: %.3g", x->name, err);
        printf("  ok streaming halves == whole, relative error %.2e\n", err);

        /* a state of another batch size, or of another model, is refused and left as it was */
        numrnn_state *other = NULL;
        CHECK(numrnn_state_new(m, x->B + 1, &other) == NUMRNN_OK, "state_new B+1");
        CHECK_FAILS(run(x, m, other, 0, x->T, x->B, z, need), NUMRNN_E_ARG, fn);
        numrnn_state_free(other);
        numrnn_state_free(s);
        free(h);
    }
    free(z);
    free(y);
    numrnn_model_close(m);
}

static void test_models(void)
{
    fixture fx[MAX_MODELS];
    int n = read_fixtures(fx), tokens = 0;
    for (int i = 0; i < n; i++) {
        test_model(&fx[i]);
        tokens += is_tokens(&fx[i]);
    }
    CHECK(n >= 17 && tokens == 4, "only %d models (%d LanguageModels and Taggers) in the manifest", n, tokens);

    /* a state made for one model, used with another of the same sizes */
    numrnn_model *a = NULL, *b = NULL;
    numrnn_state *s = NULL;
    float y[2 * 5];
    float x[2 * 3] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    CHECK(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", &a) == NUMRNN_OK, "open lstm");
    CHECK(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", &b) == NUMRNN_OK, "open lstm");
    CHECK(numrnn_state_new(a, 2, &s) == NUMRNN_OK, "state_new");
    CHECK_FAILS(numrnn_forward(b, s, x, 1, 2, y, 10), NUMRNN_E_ARG, "numrnn_forward");
    /* the state outlives its model's handle */
    numrnn_model_close(a);
    CHECK(numrnn_forward(b, NULL, x, 1, 2, y, 10) == NUMRNN_OK, "forward after closing another model");
    numrnn_state_free(s);
    numrnn_model_close(b);
}

static void test_errors(void)
{
    fixture fx[MAX_MODELS];
    int n = read_fixtures(fx);
    numrnn_model *m = (numrnn_model *)1, *lm = NULL;
    numrnn_state *s = (numrnn_state *)1;
    float x[64] = {0}, y[64];
    char text[8];

    CHECK(strcmp(numrnn_version(), "0.1.0") == 0 && NUMRNN_VERSION_MAJOR == 0 && NUMRNN_VERSION_MINOR == 1,
          "version %s", numrnn_version());
    numrnn_model_close(NULL);
    numrnn_state_free(NULL);

    /* files: missing or not a file -> IO; not a numrnn model -> FORMAT */
    CHECK_FAILS(numrnn_model_open(path_of("no-such-model", ".safetensors"), "cpu", &m), NUMRNN_E_IO,
                "numrnn_model_open");
    CHECK(m == NULL, "failed open left a model");
    CHECK_FAILS(numrnn_model_open(path_of("a-folder", ".safetensors"), "cpu", &m), NUMRNN_E_IO,
                "numrnn_model_open");
    const char *bad[] = {"truncated", "garbage", "empty", "text", "foreign"};
    for (int i = 0; i < 5; i++)
        CHECK_FAILS(numrnn_model_open(path_of(bad[i], ".safetensors"), "cpu", &m), NUMRNN_E_FORMAT,
                    "numrnn_model_open");

    /* devices */
    CHECK_FAILS(numrnn_model_open(path_of("lstm", ".safetensors"), "tpu", &m), NUMRNN_E_DEVICE,
                "numrnn_model_open");
    int rc = numrnn_model_open(path_of("lstm", ".safetensors"), "cuda", &m);
    CHECK(rc == NUMRNN_E_DEVICE || rc == NUMRNN_OK, "cuda -> %d (%s)", rc, numrnn_last_error());
    printf("  ok device \"cuda\" -> %d: %s\n", rc, rc ? numrnn_last_error() : "a GPU is here");
    numrnn_model_close(rc == NUMRNN_OK ? m : NULL);

    /* NULL pointers */
    CHECK_FAILS(numrnn_model_open(NULL, "cpu", &m), NUMRNN_E_ARG, "numrnn_model_open");
    CHECK_FAILS(numrnn_model_open(path_of("lstm", ".safetensors"), NULL, &m), NUMRNN_E_ARG,
                "numrnn_model_open");
    CHECK_FAILS(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", NULL), NUMRNN_E_ARG,
                "numrnn_model_open");
    CHECK(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", &m) == NUMRNN_OK, "open lstm");
    CHECK_FAILS(numrnn_model_sizes(NULL, NULL, NULL, NULL), NUMRNN_E_ARG, "numrnn_model_sizes");
    CHECK_FAILS(numrnn_state_new(NULL, 1, &s), NUMRNN_E_ARG, "numrnn_state_new");
    CHECK_FAILS(numrnn_state_new(m, 1, NULL), NUMRNN_E_ARG, "numrnn_state_new");
    CHECK_FAILS(numrnn_forward(NULL, NULL, x, 1, 1, y, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward(m, NULL, NULL, 1, 1, y, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward(m, NULL, x, 1, 1, NULL, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward_tokens(m, NULL, NULL, 1, 1, y, 64), NUMRNN_E_ARG, "numrnn_forward_tokens");
    CHECK_FAILS(numrnn_token_text(NULL, 0, text, 8), NUMRNN_E_ARG, "numrnn_token_text");
    CHECK_FAILS(numrnn_token_text(m, 0, NULL, 8), NUMRNN_E_ARG, "numrnn_token_text");

    /* negative and zero sizes */
    CHECK_FAILS(numrnn_state_new(m, 0, &s), NUMRNN_E_ARG, "numrnn_state_new");
    CHECK_FAILS(numrnn_state_new(m, -3, &s), NUMRNN_E_ARG, "numrnn_state_new");
    CHECK_FAILS(numrnn_forward(m, NULL, x, -1, 1, y, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward(m, NULL, x, 0, 1, y, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward(m, NULL, x, 1, -2, y, 64), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_forward(m, NULL, x, 1, 1, y, -1), NUMRNN_E_ARG, "numrnn_forward");
    CHECK_FAILS(numrnn_token_text(m, 0, text, -1), NUMRNN_E_ARG, "numrnn_token_text");
    /* a layer has no vocabulary */
    CHECK_FAILS(numrnn_token_text(m, 0, text, 8), NUMRNN_E_ARG, "numrnn_token_text");
    numrnn_model_close(m);

    /* token ids outside the vocabulary, and token texts */
    for (int i = 0; i < n; i++) {
        if (strcmp(fx[i].kind, "tokens") != 0)
            continue;
        CHECK(numrnn_model_open(path_of(fx[i].name, ".safetensors"), "cpu", &lm) == NUMRNN_OK, "open lm");
        float *z = canary_buffer(2 * fx[i].V);
        int32_t outside[2][2] = {{0, (int32_t)fx[i].V}, {-1, 0}};
        CHECK_FAILS(numrnn_forward_tokens(lm, NULL, outside[0], 1, 2, z, 2 * fx[i].V), NUMRNN_E_ARG,
                    "numrnn_forward_tokens");
        CHECK_FAILS(numrnn_forward_tokens(lm, NULL, outside[1], 1, 2, z, 2 * fx[i].V), NUMRNN_E_ARG,
                    "numrnn_forward_tokens");
        CHECK(untouched(z, 0, 2 * fx[i].V + SPARE), "out-of-vocabulary call wrote into y");
        CHECK(numrnn_token_text(lm, 0, text, sizeof text) == NUMRNN_OK && strlen(text) >= 1,
              "token_text 0: %s", numrnn_last_error());
        CHECK_FAILS(numrnn_token_text(lm, (int32_t)fx[i].V, text, sizeof text), NUMRNN_E_ARG,
                    "numrnn_token_text");
        CHECK_FAILS(numrnn_token_text(lm, 0, text, 1), NUMRNN_E_ARG, "numrnn_token_text");
        free(z);
        numrnn_model_close(lm);
    }
}

/* Threads: every thread streams the "lstm" fixture step by step through its own state, several
 * times, all on one shared model; each must give exactly what one thread gave. */
typedef struct {
    const fixture *x;
    numrnn_model *model;
    float *y;      /* [T][B][O] */
    int rounds, rc;
} job;

static void *stream(void *arg)
{
    job *j = arg;
    const fixture *x = j->x;
    int64_t step = x->B * x->O;
    for (int r = 0; r < j->rounds && !j->rc; r++) {
        numrnn_state *s = NULL;
        j->rc = numrnn_state_new(j->model, x->B, &s);
        for (int64_t t = 0; t < x->T && !j->rc; t++)
            j->rc = numrnn_forward(j->model, s, (const float *)steps_of(x, t), 1, x->B,
                                   j->y + t * step, step);
        numrnn_state_free(s);
    }
    return NULL;
}

static void test_threads(void)
{
    fixture fx[MAX_MODELS];
    int n = read_fixtures(fx);
    const fixture *x = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(fx[i].name, "lstm") == 0)
            x = &fx[i];
    CHECK(x != NULL, "no lstm fixture");
    if (!x)
        return;
    int64_t need = x->T * x->B * x->O;
    numrnn_model *m = NULL;
    CHECK(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", &m) == NUMRNN_OK, "open");

    job one = {x, m, canary_buffer(need), 1, 0};
    stream(&one);
    CHECK(one.rc == NUMRNN_OK && rel_error(one.y, x->out, need) < 1e-5, "one thread: %d %s", one.rc,
          numrnn_last_error());

    enum { THREADS = 4 };
    pthread_t tid[THREADS];
    job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){x, m, canary_buffer(need), 20, 0};
        pthread_create(&tid[i], NULL, stream, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        CHECK(jobs[i].rc == NUMRNN_OK, "thread %d -> %d", i, jobs[i].rc);
        CHECK(memcmp(jobs[i].y, one.y, need * sizeof(float)) == 0, "thread %d differs from one thread", i);
        CHECK(untouched(jobs[i].y, need, need + SPARE), "thread %d wrote past y", i);
        free(jobs[i].y);
    }
    printf("  ok %d threads x %d rounds of %ld streamed steps == one thread, bit for bit\n", THREADS,
           jobs[0].rounds, x->T);
    free(one.y);
    numrnn_model_close(m);
}

/* Run with NUMRNN_PYTHONHOME or NUMRNN_PYTHONPATH set to something broken. */
static void test_broken(void)
{
    numrnn_model *m = NULL;
    numrnn_state *s = NULL;
    numrnn_model *fake = (numrnn_model *)&m; /* never dereferenced: Python is not running */
    float x[8] = {0}, y[8];
    int32_t tokens[1] = {0};
    char text[8];
    for (int attempt = 0; attempt < 2; attempt++) {
        CHECK_FAILS(numrnn_model_open(path_of("lstm", ".safetensors"), "cpu", &m), NUMRNN_E_RUNTIME,
                    "numrnn_model_open");
        CHECK(m == NULL, "failed open left a model");
    }
    CHECK_FAILS(numrnn_model_sizes(fake, NULL, NULL, NULL), NUMRNN_E_RUNTIME, "numrnn_model_sizes");
    CHECK_FAILS(numrnn_state_new(fake, 1, &s), NUMRNN_E_RUNTIME, "numrnn_state_new");
    CHECK_FAILS(numrnn_forward(fake, NULL, x, 1, 1, y, 8), NUMRNN_E_RUNTIME, "numrnn_forward");
    CHECK_FAILS(numrnn_forward_tokens(fake, NULL, tokens, 1, 1, y, 8), NUMRNN_E_RUNTIME,
                "numrnn_forward_tokens");
    CHECK_FAILS(numrnn_token_text(fake, 0, text, 8), NUMRNN_E_RUNTIME, "numrnn_token_text");
    /* checks that need no Python still report their own error */
    CHECK_FAILS(numrnn_forward(NULL, NULL, x, 1, 1, y, 8), NUMRNN_E_ARG, "numrnn_forward");
    numrnn_model_close(fake);   /* no-op: no model can exist */
    numrnn_state_free((numrnn_state *)fake);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_capi FIXTURES models|errors|threads|broken\n");
        return 2;
    }
    folder = argv[1];
    if (strcmp(argv[2], "models") == 0)
        test_models();
    else if (strcmp(argv[2], "errors") == 0)
        test_errors();
    else if (strcmp(argv[2], "threads") == 0)
        test_threads();
    else if (strcmp(argv[2], "broken") == 0)
        test_broken();
    else {
        fprintf(stderr, "unknown test %s\n", argv[2]);
        return 2;
    }
    printf("%s: %s (%d failures)\n", argv[2], failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
