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
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numrnn.h"

#define NUMRNN_STR2(x) #x
#define NUMRNN_STR(x) NUMRNN_STR2(x)

/* Implemented in python/numrnn/capi.py (cffi defines them after this file). model and state are
 * cffi handles of Python objects. */
static int numrnn_py_model_open(const char *path, const char *device, void **model);
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

NUMRNN_API int numrnn_model_open(const char *path, const char *device, numrnn_model **model)
{
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: model (where to store the new model) is NULL");
    *model = NULL;
    if (!path)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: path is NULL");
    if (!device)
        return fail(NUMRNN_E_ARG, "numrnn_model_open: device is NULL (expected \"cpu\" or \"cuda\")");
    NUMRNN_START("numrnn_model_open");
    return numrnn_py_model_open(path, device, (void **)model);
}

NUMRNN_API void numrnn_model_close(numrnn_model *model)
{
    /* A model exists only if Python started, so there is nothing to do when it did not. */
    if (model && started)
        numrnn_py_model_close(model);
}

NUMRNN_API int numrnn_model_sizes(const numrnn_model *model, int64_t *input_size,
                                  int64_t *output_size, int64_t *vocab_size)
{
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_model_sizes: model is NULL");
    NUMRNN_START("numrnn_model_sizes");
    return numrnn_py_model_sizes((void *)model, input_size, output_size, vocab_size);
}

NUMRNN_API int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state)
{
    if (!state)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: state (where to store the new state) is NULL");
    *state = NULL;
    if (!model)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: model is NULL");
    if (batch < 1)
        return fail(NUMRNN_E_ARG, "numrnn_state_new: batch must be >= 1, got %lld", (long long)batch);
    NUMRNN_START("numrnn_state_new");
    return numrnn_py_state_new(model, batch, (void **)state);
}

NUMRNN_API void numrnn_state_free(numrnn_state *state)
{
    if (state && started)
        numrnn_py_state_free(state);
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

NUMRNN_API int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x,
                              int64_t seq_len, int64_t batch, float *y, int64_t y_len)
{
    int code = check_run("numrnn_forward", model, x, "x", seq_len, batch, y, y_len);
    if (code)
        return code;
    NUMRNN_START("numrnn_forward");
    return numrnn_py_forward(model, state, x, seq_len, batch, y, y_len);
}

NUMRNN_API int numrnn_forward_tokens(numrnn_model *model, numrnn_state *state,
                                     const int32_t *tokens, int64_t seq_len, int64_t batch,
                                     float *y, int64_t y_len)
{
    int code = check_run("numrnn_forward_tokens", model, tokens, "tokens", seq_len, batch, y, y_len);
    if (code)
        return code;
    NUMRNN_START("numrnn_forward_tokens");
    return numrnn_py_forward_tokens(model, state, tokens, seq_len, batch, y, y_len);
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
    return numrnn_py_token_text((void *)model, token, text, text_len);
}
