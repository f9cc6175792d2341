/* numrnn.c: the C half of libnumrnn.so; the Python half is python/numrnn/capi.py.
 *
 * capi/build.py hands this file to cffi (set_source), which compiles it into the generated
 * module with the build-time paths defined above it (NUMRNN_BUILD_HOME, NUMRNN_BUILD_SITE).
 * This half does what must work without Python or before it starts: the per-thread error
 * message, the checks that need no model (NULL pointers, signs), and starting the embedded
 * interpreter. Everything that needs the model goes to an `extern "Python"` function.
 *
 * Start-up rule: an `extern "Python"` function returns 0 (NUMRNN_OK) when the interpreter failed
 * to start. So every public function first runs start_python() exactly once per process and, if
 * it failed, returns NUMRNN_E_RUNTIME itself without calling into Python.
 *
 * The hot path: for a float32 model on "cpu", the first numrnn_forward(_tokens) call on a model
 * asks the Python half once for the addresses of compiled functions (Numba @cfunc,
 * engine/infer_c.py) with the model's description and weights; from then on every call runs
 * entirely here: every check in C, then one call through a function pointer, with no interpreter
 * and no GIL, on the state's own h, c and workspace, so calls on different states run in
 * parallel. Other models (float64, "cuda") go through Python. Why not at open: loading Numba and
 * the compiled code takes ~1 s the first time in a process, and an open is kept fast (a host may
 * open files only to check them; tests/c/fuzz_open.c bounds every open at 2 s).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numrnn.h"

#define NUMRNN_STR2(x) #x
#define NUMRNN_STR(x) NUMRNN_STR2(x)

/* What numrnn_py_model_open (sizes) and numrnn_py_model_compiled (the rest) tell the C half about
 * a model (declared again in capi/build.py). */
typedef struct numrnn_model_info {
    int64_t input_size, output_size, vocab_size;
    int64_t h_size, c_size;     /* floats of h and c per sequence: L * D * P and L * D * H (0: no c) */
    const int64_t *meta;        /* engine/infer.py's description of the model */
    const float *weights;       /* [meta's M_NPARAMS] */
    void *forward;              /* compiled entry point of a layer (NULL for a LanguageModel) */
    void *forward_tokens;       /* compiled entry point of a LanguageModel (NULL for a layer) */
    void *workspace_size;       /* NULL: no compiled path, the model runs through Python */
} numrnn_model_info;

typedef int64_t (*features_fn)(const int64_t *meta, const float *weights, float *h, float *c,
                               float *work, const int64_t *lengths, const float *x, int64_t seq_len,
                               int64_t batch, float *y);
typedef int64_t (*tokens_fn)(const int64_t *meta, const float *weights, float *h, float *c,
                             float *work, const int64_t *lengths, const int32_t *tokens,
                             int64_t seq_len, int64_t batch, float *y);
typedef int64_t (*size_fn)(const int64_t *meta, int64_t seq_len, int64_t batch);
/* A state's split description (engine/infer_c.py's SP_* fields): the entry point of a call split
 * over threads and its workspace size, then what only the compiled code reads. */
typedef int64_t (*split_fn)(const int64_t *meta, const float *weights, float *h, float *c, float *work,
                            const int64_t *lengths, const float *x, int64_t seq_len, int64_t batch, float *y,
                            const int64_t *split);
typedef int64_t (*split_size_fn)(const int64_t *meta, int64_t seq_len, int64_t batch, int64_t nparts);
enum { SP_FORWARD, SP_SIZE, SP_NPARTS = 7 };
#define COMPILED_DONE 1   /* what the compiled entry points return; 0 means a Python exception */

/* The handles the host holds. A model lives while its handle or any of its states does (refs);
 * the Python objects behind `py` keep the weights and compiled functions alive as long. */
struct numrnn_model {
    void *py;                   /* cffi handle of numrnn.capi.Model */
    numrnn_model_info info;
    atomic_int refs;
    atomic_int resolved;        /* 1 once numrnn_py_model_compiled has filled info */
    pthread_mutex_t lock;       /* taken only while resolving */
};

struct numrnn_state {
    void *py;                   /* cffi handle of numrnn.capi.State */
    numrnn_model *model;
    int64_t batch;
    float *h, *c;               /* [L * D][B][P], [L * D][B][H] (the compiled path's state) */
    float *work;                /* grown to the largest call seen */
    int64_t work_len;
    int64_t *lengths;           /* [B], set to seq_len before each call */
    int64_t lengths_of;         /* the seq_len they hold */
    const int64_t *split;       /* NULL: calls run on the caller's thread; else numrnn_state_set_threads's */
};

/* Implemented in python/numrnn/capi.py (cffi defines them after this file). model and state are
 * cffi handles of Python objects. */
static int numrnn_py_model_open(const char *path, const char *device, void **model,
                                numrnn_model_info *info);
static int numrnn_py_model_compiled(void *model, numrnn_model_info *info);
static int numrnn_py_state_set_threads(void *state, int threads, const int64_t **split);
static int numrnn_py_model_close(void *model);
static int numrnn_py_model_sizes(void *model, int64_t *input_size, int64_t *output_size,
                                 int64_t *vocab_size);
static int numrnn_py_state_new(void *model, int64_t batch, void **state);
static int numrnn_py_state_free(void *state);
static int numrnn_py_forward(void *model, void *state, const float *x, int64_t seq_len,
                             int64_t batch, float *y, int64_t y_len);
static int numrnn_py_forward_tokens(void *model, void *state, const int32_t *tokens,
                                    int64_t seq_len, int64_t batch, float *y, int64_t y_len);
static int numrnn_py_token_text(void *model, int32_t token, char *text, int64_t text_len);

static _Thread_local char last_error[2048];

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int started;              /* written once inside pthread_once, read after it */
static char start_error[2048];   /* why the start failed */

/* Zeroed memory of its own cache lines: the h, c and workspace of states that different
 * threads use never share a line, so one thread's writes do not evict another's reads. */
static void *zalloc(size_t bytes)
{
    void *p = NULL;
    bytes = (bytes + 63) / 64 * 64 + 64;
    if (posix_memalign(&p, 64, bytes))
        return NULL;
    return memset(p, 0, bytes);
}

static int fail(int code, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return code;
}

/* Called by the Python half to report a failure of the current call. */
static void numrnn_set_error_(const char *message)
{
    snprintf(last_error, sizeof last_error, "%s", message);
}

/* Called by capi/init.py when the interpreter started but numrnn could not be set up in it. */
static void numrnn_start_failed_(const char *message)
{
    snprintf(start_error, sizeof start_error, "%s", message);
}

/* Records the pending Python exception as the reason the start failed. GIL held. */
static void python_failed(const char *doing)
{
    PyObject *type, *value, *trace, *text;
    PyErr_Fetch(&type, &value, &trace);
    text = value ? PyObject_Str(value) : NULL;
    snprintf(start_error, sizeof start_error, "%s failed in the embedded Python: %s", doing,
             text ? PyUnicode_AsUTF8(text) : "unknown error");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(trace);
    PyErr_Clear();
}

/* Adds NUMRNN_PYTHONPATH's folders, then the build interpreter's site-packages, as site
 * directories: site.addsitedir, not a bare sys.path entry, because .pth files must run (an
 * editable install of numrnn is one). Before cffi starts, since cffi imports _cffi_backend from
 * there. GIL held. */
static int add_site_folders(void)
{
    const char *extra = getenv("NUMRNN_PYTHONPATH");
    char path[8192];
    char *folder, *rest = NULL;
    PyObject *site = PyImport_ImportModule("site");
    if (!site) {
        python_failed("importing site");
        return -1;
    }
    snprintf(path, sizeof path, "%s:%s", extra ? extra : "", NUMRNN_BUILD_SITE);
    for (folder = strtok_r(path, ":", &rest); folder; folder = strtok_r(NULL, ":", &rest)) {
        PyObject *done = PyObject_CallMethod(site, "addsitedir", "s", folder);
        if (!done) {
            python_failed("site.addsitedir");
            Py_DECREF(site);
            return -1;
        }
        Py_DECREF(done);
    }
    Py_DECREF(site);
    return 0;
}

static void start_python(void)
{
    if (!Py_IsInitialized()) {
        /* Isolated: the host's PYTHONHOME/PYTHONPATH belong to some other Python, and a library
         * must not install signal handlers. site_import = 0: add_site_folders adds exactly the
         * build interpreter's site directories, so a venv without system packages stays so. */
        const char *home = getenv("NUMRNN_PYTHONHOME");
        PyConfig config;
        PyStatus status;
        int sites;
        if (!home || !*home)
            home = NUMRNN_BUILD_HOME;
        PyConfig_InitIsolatedConfig(&config);
        config.site_import = 0;
        status = PyConfig_SetBytesString(&config, &config.home, home);
        if (!PyStatus_Exception(status))
            status = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(status)) {
            snprintf(start_error, sizeof start_error,
                     "the embedded Python did not start with home '%s' (%s%s%s); set "
                     "NUMRNN_PYTHONHOME to a Python " NUMRNN_STR(PY_MAJOR_VERSION) "."
                     NUMRNN_STR(PY_MINOR_VERSION) " installation, or unset it to use the "
                     "build-time one (" NUMRNN_BUILD_HOME ")",
                     home, status.func ? status.func : "", status.func ? ": " : "",
                     status.err_msg ? status.err_msg : "unknown error");
            return;
        }
        sites = add_site_folders();
        PyEval_SaveThread(); /* every call takes the GIL itself, from whichever thread */
        if (sites)
            return;
    }
    if (cffi_start_python() != 0) {
        if (!start_error[0])
            snprintf(start_error, sizeof start_error,
                     "numrnn's start-up code failed in the embedded Python (cffi printed the "
                     "reason on stderr)");
        return;
    }
    started = !start_error[0];
}

/* Every public function that needs Python starts with this. */
#define NUMRNN_START(fn)                                                   \
    do {                                                                   \
        pthread_once(&start_once, start_python);                           \
        if (!started)                                                      \
            return fail(NUMRNN_E_RUNTIME, "%s: %s", fn, start_error);      \
    } while (0)

NUMRNN_API const char *numrnn_version(void)
{
    return NUMRNN_STR(NUMRNN_VERSION_MAJOR) "." NUMRNN_STR(NUMRNN_VERSION_MINOR) "."
        NUMRNN_STR(NUMRNN_VERSION_PATCH);
}

NUMRNN_API const char *numrnn_last_error(void)
{
    return last_error;
}

static void model_release(numrnn_model *model)
{
    if (atomic_fetch_sub(&model->refs, 1) == 1) {
        pthread_mutex_destroy(&model->lock);
        free(model);
    }
}

NUMRNN_API int numrnn_model_open(const char *path, const char *device, numrnn_model **model)
{
    numrnn_model *m;
    int code;
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: model (where to store the new model) is NULL");
    *model = NULL;
    if (!path)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: path is NULL");
    if (!device)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: device is NULL (expected \"cpu\" or \"cuda\")");
    NUMRNN_START("numrnn_model_open");
    m = calloc(1, sizeof *m);
    if (!m)
        return fail(NUMRNN_E_RUNTIME, "numrnn_model_open: out of memory");
    code = numrnn_py_model_open(path, device, &m->py, &m->info);
    if (code != NUMRNN_OK) {
        free(m);
        return code;
    }
    atomic_init(&m->refs, 1);
    atomic_init(&m->resolved, 0);
    pthread_mutex_init(&m->lock, NULL);
    *model = m;
    return NUMRNN_OK;
}

NUMRNN_API void numrnn_model_close(numrnn_model *model)
{
    /* A model exists only if Python started, so there is nothing to do when it did not. */
    if (model && started) {
        numrnn_py_model_close(model->py);
        model_release(model);
    }
}

NUMRNN_API int numrnn_model_sizes(const numrnn_model *model, int64_t *input_size,
                                  int64_t *output_size, int64_t *vocab_size)
{
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_model_sizes: model is NULL");
    NUMRNN_START("numrnn_model_sizes");
    return numrnn_py_model_sizes(model->py, input_size, output_size, vocab_size);
}

NUMRNN_API int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state)
{
    numrnn_state *s;
    int code;
    if (!state)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: state (where to store the new state) is NULL");
    *state = NULL;
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: model is NULL");
    if (batch < 1)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: batch must be >= 1, got %lld", (long long)batch);
    NUMRNN_START("numrnn_state_new");
    s = zalloc(sizeof *s);
    if (!s)
        return fail(NUMRNN_E_RUNTIME, "numrnn_state_new: out of memory");
    code = numrnn_py_state_new(model->py, batch, &s->py);
    if (code != NUMRNN_OK) {
        free(s);
        return code;
    }
    /* zeros: the state before the first call (unused when the model runs through Python) */
    s->h = zalloc((size_t)(model->info.h_size * batch) * sizeof(float));
    s->c = zalloc((size_t)(model->info.c_size * batch) * sizeof(float));
    s->lengths = zalloc((size_t)batch * sizeof(int64_t));
    if (!s->h || !s->c || !s->lengths) {
        numrnn_py_state_free(s->py);
        free(s->h);
        free(s->c);
        free(s->lengths);
        free(s);
        return fail(NUMRNN_E_RUNTIME, "numrnn_state_new: out of memory");
    }
    atomic_fetch_add(&model->refs, 1);
    s->model = model;
    s->batch = batch;
    *state = s;
    return NUMRNN_OK;
}

NUMRNN_API void numrnn_state_free(numrnn_state *state)
{
    if (state && started) {
        numrnn_py_state_free(state->py);
        free(state->h);
        free(state->c);
        free(state->work);
        free(state->lengths);
        model_release(state->model);
        free(state);
    }
}

NUMRNN_API int numrnn_state_set_threads(numrnn_state *state, int threads)
{
    const int64_t *split;
    int code;
    if (!state)
        return fail(NUMRNN_E_ARG, "numrnn_state_set_threads: state is NULL");
    NUMRNN_START("numrnn_state_set_threads");
    /* the Python half reports what the state holds after the call, also when it fails (a refused
     * count leaves the old threads; threads that would not start leave one) */
    split = state->split;
    code = numrnn_py_state_set_threads(state->py, threads, &split);
    state->split = split;
    return code;
}

/* The checks numrnn_forward and numrnn_forward_tokens share; 0 when all pass. */
static int check_run(const char *fn, const void *model, const void *in, const char *in_name,
                     int64_t seq_len, int64_t batch, const float *y, int64_t y_len)
{
    if (!model)
        return fail(NUMRNN_E_ARG, "%s: model is NULL", fn);
    if (!in)
        return fail(NUMRNN_E_ARG, "%s: %s is NULL", fn, in_name);
    if (!y)
        return fail(NUMRNN_E_ARG, "%s: y is NULL", fn);
    if (seq_len < 1)
        return fail(NUMRNN_E_ARG, "%s: seq_len must be >= 1, got %lld", fn, (long long)seq_len);
    if (batch < 1)
        return fail(NUMRNN_E_ARG, "%s: batch must be >= 1, got %lld", fn, (long long)batch);
    if (y_len < 0)
        return fail(NUMRNN_E_ARG, "%s: y_len must be >= 0, got %lld", fn, (long long)y_len);
    return NUMRNN_OK;
}

/* The checks python/numrnn/capi.py's run() makes, with its messages, for the compiled path. */
static int check_model_run(const char *fn, const numrnn_model *model, const numrnn_state *state,
                           const int32_t *tokens, int64_t seq_len, int64_t batch, int64_t y_len)
{
    const numrnn_model_info *info = &model->info;
    int64_t need;
    if ((info->vocab_size > 0) != (tokens != NULL))
        return fail(NUMRNN_E_ARG, info->vocab_size > 0
                    ? "%s: this model is a LanguageModel: it takes token ids, call numrnn_forward_tokens"
                    : "%s: this model is a layer: it takes features, call numrnn_forward", fn);
    if (__builtin_mul_overflow(seq_len, batch, &need) || __builtin_mul_overflow(need, info->output_size, &need)
        || y_len < need)
        return fail(NUMRNN_E_ARG, "%s: y_len is %lld floats, the output needs seq_len * batch * "
                    "output_size = %lld * %lld * %lld = %lld", fn, (long long)y_len, (long long)seq_len,
                    (long long)batch, (long long)info->output_size, (long long)need);
    if (state) {
        if (state->model != model)
            return fail(NUMRNN_E_ARG, "%s: the state was made for another model", fn);
        if (state->batch != batch)
            return fail(NUMRNN_E_ARG, "%s: the state was made for batch %lld, the call has batch %lld",
                        fn, (long long)state->batch, (long long)batch);
    }
    if (tokens)
        for (int64_t t = 0; t < seq_len; t++)
            for (int64_t b = 0; b < batch; b++) {
                int32_t id = tokens[t * batch + b];
                if (id < 0 || id >= info->vocab_size)
                    return fail(NUMRNN_E_ARG, "%s: token ids must be in 0..%lld (the vocabulary), got "
                                "%d at tokens[%lld][%lld]", fn, (long long)info->vocab_size - 1, id,
                                (long long)t, (long long)b);
            }
    return NUMRNN_OK;
}

/* Whether the model has a compiled path, asking the Python half on the first call only; 0 or a
 * NUMRNN_E_* code in *code. */
static int compiled(numrnn_model *model, int *code)
{
    *code = NUMRNN_OK;
    if (!atomic_load_explicit(&model->resolved, memory_order_acquire)) {
        pthread_mutex_lock(&model->lock);
        if (!atomic_load_explicit(&model->resolved, memory_order_relaxed)) {
            *code = numrnn_py_model_compiled(model->py, &model->info);
            if (*code == NUMRNN_OK)
                atomic_store_explicit(&model->resolved, 1, memory_order_release);
        }
        pthread_mutex_unlock(&model->lock);
    }
    return *code == NUMRNN_OK && model->info.workspace_size != NULL;
}

/* The compiled path: check, then one call with no interpreter. With a state, nothing is
 * allocated once a shape has been seen (the workspace grows to the largest call). Without one,
 * h and c start at zeros and live for this call only. */
static int run_compiled(const char *fn, numrnn_model *model, numrnn_state *state, const float *x,
                        const int32_t *tokens, int64_t seq_len, int64_t batch, float *y, int64_t y_len)
{
    const numrnn_model_info *info = &model->info;
    const int64_t *split;
    int64_t n, done;
    int64_t *lengths;
    float *h, *c, *work;
    int code = check_model_run(fn, model, state, tokens, seq_len, batch, y_len);
    if (code)
        return code;
    split = state && state->split && !tokens ? state->split : NULL;
    n = split ? ((split_size_fn)split[SP_SIZE])(info->meta, seq_len, batch, split[SP_NPARTS])
              : ((size_fn)info->workspace_size)(info->meta, seq_len, batch);
    if (state) {
        if (state->work_len < n) {
            work = zalloc((size_t)n * sizeof(float));
            if (!work)
                return fail(NUMRNN_E_RUNTIME, "%s: out of memory (workspace of %lld floats)", fn,
                            (long long)n);
            free(state->work);
            state->work = work;
            state->work_len = n;
        }
        if (state->lengths_of != seq_len) {
            for (int64_t b = 0; b < batch; b++)
                state->lengths[b] = seq_len;
            state->lengths_of = seq_len;
        }
        h = state->h;
        c = state->c;
        work = state->work;
        lengths = state->lengths;
    } else {
        h = zalloc((size_t)(info->h_size * batch) * sizeof(float));
        c = zalloc((size_t)(info->c_size * batch) * sizeof(float));
        work = zalloc((size_t)n * sizeof(float));
        lengths = zalloc((size_t)batch * sizeof(int64_t));
        if (!h || !c || !work || !lengths) {
            free(h);
            free(c);
            free(work);
            free(lengths);
            return fail(NUMRNN_E_RUNTIME, "%s: out of memory (workspace of %lld floats)", fn, (long long)n);
        }
        for (int64_t b = 0; b < batch; b++)
            lengths[b] = seq_len;
    }
    if (split)
        done = ((split_fn)split[SP_FORWARD])(info->meta, info->weights, h, c, work, lengths, x, seq_len, batch, y,
                                             split);
    else if (tokens)
        done = ((tokens_fn)info->forward_tokens)(info->meta, info->weights, h, c, work, lengths, tokens, seq_len,
                                                 batch, y);
    else
        done = ((features_fn)info->forward)(info->meta, info->weights, h, c, work, lengths, x, seq_len, batch, y);
    if (!state) {
        free(h);
        free(c);
        free(work);
        free(lengths);
    }
    if (done != COMPILED_DONE)
        return fail(NUMRNN_E_RUNTIME, "%s: the compiled forward failed (it printed the reason on stderr); "
                    "y and the state may hold partial results", fn);
    return NUMRNN_OK;
}

NUMRNN_API int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x,
                              int64_t seq_len, int64_t batch, float *y, int64_t y_len)
{
    int code = check_run("numrnn_forward", model, x, "x", seq_len, batch, y, y_len);
    if (code)
        return code;
    NUMRNN_START("numrnn_forward");
    if (compiled(model, &code))
        return run_compiled("numrnn_forward", model, state, x, NULL, seq_len, batch, y, y_len);
    if (code)
        return code;
    return numrnn_py_forward(model->py, state ? state->py : NULL, x, seq_len, batch, y, y_len);
}

NUMRNN_API int numrnn_forward_tokens(numrnn_model *model, numrnn_state *state,
                                     const int32_t *tokens, int64_t seq_len, int64_t batch,
                                     float *y, int64_t y_len)
{
    int code = check_run("numrnn_forward_tokens", model, tokens, "tokens", seq_len, batch, y, y_len);
    if (code)
        return code;
    NUMRNN_START("numrnn_forward_tokens");
    if (compiled(model, &code))
        return run_compiled("numrnn_forward_tokens", model, state, NULL, tokens, seq_len, batch, y, y_len);
    if (code)
        return code;
    return numrnn_py_forward_tokens(model->py, state ? state->py : NULL, tokens, seq_len, batch, y, y_len);
}

NUMRNN_API int numrnn_token_text(const numrnn_model *model, int32_t token, char *text,
                                 int64_t text_len)
{
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_token_text: model is NULL");
    if (!text)
        return fail(NUMRNN_E_ARG, "numrnn_token_text: text is NULL");
    if (text_len < 1)
        return fail(NUMRNN_E_ARG, "numrnn_token_text: text_len must be >= 1, got %lld",
                    (long long)text_len);
    NUMRNN_START("numrnn_token_text");
    return numrnn_py_token_text(model->py, token, text, text_len);
}
