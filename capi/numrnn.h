/* numrnn.h: the C interface of numrnn. Include this one header, link libnumrnn.so, and run
 * inference on any file numrnn.save wrote: an RNN/LSTM/GRU layer or cell (features in, features
 * out; a cell runs over whole sequences, as the one-layer layer it is a step of), a
 * LanguageModel (token ids in, logits out) or a Tagger (token ids in, label scores per step out;
 * `numrnn tag-train`). It is not a training interface.
 *
 * The library embeds the Python interpreter it was built with (CMake's Python3_EXECUTABLE) and
 * finds that interpreter's home and site-packages by itself; a host needs no environment
 * variables. Two optional ones override what was baked in at build time:
 *   NUMRNN_PYTHONHOME   the Python installation whose standard library is used
 *   NUMRNN_PYTHONPATH   extra folders (separated by ':'), searched before the build-time
 *                       site-packages; treated like site-packages (.pth files are processed)
 * The interpreter starts on the first call that needs it (numrnn_version and numrnn_last_error
 * never do). In a process that already runs Python (the library loaded with cffi or ctypes), the
 * library uses that interpreter as it is, and numrnn must be importable there. If it cannot start, that call and every later one return NUMRNN_E_RUNTIME and
 * numrnn_last_error() says why; no call ever reports success without having done its work.
 *
 * Glossary (the same letters as the Python package):
 *   T  seq_len: time steps in this call          B  batch: sequences side by side
 *   I  input_size: features per step (layer)     O  output_size: features (or logits) per step
 *   V  vocab_size: token ids 0..V-1 (LanguageModel, Tagger)
 * Arrays are dense, time-major and row-major: x[t][b][i] is x[(t * B + b) * I + i]; the rightmost
 * dimension changes fastest. All floats are float32 whatever the model's own dtype.
 * Layers with bidirectional=True give O = 2 * hidden (2 * proj_size), forward half first, like
 * PyTorch; a layer saved with batch_first=True still takes time-major arrays here.
 *
 * Ownership: the library never keeps a pointer to caller memory after a call returns, and never
 * frees caller memory. Objects it creates (numrnn_model, numrnn_state) belong to the caller until
 * passed to numrnn_model_close / numrnn_state_free; a state keeps its model's data alive, so the
 * two may be released in either order.
 *
 * Threads: a model may be shared by any number of threads; a state belongs to one thread at a
 * time (using one state from two threads at once is the caller's error, and its results are
 * undefined). Calls from several threads are safe and give the same results as one thread. For
 * a float32 model on "cpu", numrnn_forward and numrnn_forward_tokens run compiled code without
 * the interpreter (after the model's first call, which sets that up), so calls on different
 * states run in parallel; the weights are shared read-only and each state owns its workspace,
 * so a call on a state allocates nothing once the state has seen a call of its length.
 * A float64 model, "cuda", a Tagger, and open/close/state_new run in the embedded interpreter,
 * where calls are serialised. Setting up the compiled path sets the process's BLAS (the one Numba uses, SciPy's)
 * to one thread: each call runs on its caller's thread.
 *
 * Errors: every function returning int returns NUMRNN_OK (0) or one of the NUMRNN_E_* codes, and
 * on failure sets a message for numrnn_last_error(). A failed call writes nothing into caller
 * arrays and leaves the state as it was.
 */
#ifndef NUMRNN_H
#define NUMRNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define NUMRNN_API __attribute__((visibility("default")))
#else
#define NUMRNN_API
#endif

#define NUMRNN_VERSION_MAJOR 0
#define NUMRNN_VERSION_MINOR 1
#define NUMRNN_VERSION_PATCH 0

#define NUMRNN_OK         0
#define NUMRNN_E_ARG      1 /* a NULL pointer, a negative or zero size, y_len too small, a token id
                               outside 0..V-1, a state that does not fit the model or the batch,
                               features given to a token model or tokens to a feature model */
#define NUMRNN_E_IO       2 /* the model file is missing or cannot be read */
#define NUMRNN_E_FORMAT   3 /* the file is truncated, not safetensors, or not a numrnn model */
#define NUMRNN_E_DEVICE   4 /* device is not "cpu" or "cuda", or "cuda" with no usable GPU */
#define NUMRNN_E_RUNTIME  5 /* the embedded Python did not start, or an unexpected failure */

/* "MAJOR.MINOR.PATCH" of the library (static string; the same as the Python package's). */
NUMRNN_API const char *numrnn_version(void);

/* Message of the last failed call on the calling thread ("" if none). Static per-thread storage,
 * valid until the next failing call on this thread; successful calls leave it unchanged. */
NUMRNN_API const char *numrnn_last_error(void);

typedef struct numrnn_model numrnn_model; /* an opened model file (opaque) */
typedef struct numrnn_state numrnn_state; /* h (and c for LSTM) carried between calls (opaque) */

/* Open a file written by numrnn.save.
 *   path    NUL-terminated file name (read during the call only)
 *   device  "cpu" or "cuda"
 *   model   out: the new model, to be released with numrnn_model_close; NULL on failure */
NUMRNN_API int numrnn_model_open(const char *path, const char *device, numrnn_model **model);

/* Release a model. NULL is a no-op. States made from it stay usable until freed. */
NUMRNN_API void numrnn_model_close(numrnn_model *model);

/* Sizes of a model; each out pointer may be NULL when that size is not wanted.
 *   input_size   out: I, features per step; 0 for a LanguageModel or Tagger (they take token ids)
 *   output_size  out: O, floats per step and sequence in y (V for a LanguageModel, the number of
 *                labels for a Tagger)
 *   vocab_size   out: V for a LanguageModel or Tagger; 0 for a layer (it takes features) */
NUMRNN_API int numrnn_model_sizes(const numrnn_model *model, int64_t *input_size,
                                  int64_t *output_size, int64_t *vocab_size);

/* A zero state for `batch` sequences, for streaming: each numrnn_forward(_tokens) call with it
 * starts where the previous one ended, so a sequence fed in two halves gives the same outputs
 * as fed whole. A bidirectional model cannot stream (its reverse direction needs the whole
 * sequence): NUMRNN_E_ARG.
 *   model  the model the state will be used with
 *   batch  B >= 1; every call with this state must use the same batch
 *   state  out: the new state, to be released with numrnn_state_free; NULL on failure */
NUMRNN_API int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state);

/* Release a state. NULL is a no-op. */
NUMRNN_API void numrnn_state_free(numrnn_state *state);

/* Run each numrnn_forward call on this state on `threads` threads: the caller's and threads - 1
 * helper threads the state keeps (they sleep when idle and end with numrnn_state_free), which
 * split the hidden units between them. For float32 RNN, LSTM and GRU layers on "cpu" with a
 * batch of at most 8 and no proj_size; anything else is NUMRNN_E_ARG with the reason. Worth it
 * with a free core per thread and a hidden size of about 128 or more (the README's "C
 * interface" section has the figures); with fewer cores than threads the threads wait on each
 * other. Results equal one thread's to rounding (to the bit when seq_len * batch <= 8). A state
 * with helper threads is not usable in a child process after fork().
 *   threads  1 (the default: the caller's thread alone) to 8 */
NUMRNN_API int numrnn_state_set_threads(numrnn_state *state, int threads);

/* Run a layer model over features.
 *   model    a layer model (vocab_size 0)
 *   state    NULL: start from zeros and keep nothing; else a state of this model and batch,
 *            read as the initial state and updated to the final one
 *   x        [T][B][I] input features (read only)
 *   seq_len  T >= 1
 *   batch    B >= 1
 *   y        [T][B][O] out: the outputs of the last layer at every step
 *   y_len    number of floats available at y; at least T * B * O, and nothing is written past
 *            T * B * O (nothing at all when y_len is too small) */
NUMRNN_API int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x,
                              int64_t seq_len, int64_t batch, float *y, int64_t y_len);

/* Run a LanguageModel or a Tagger over token ids.
 *   model    a LanguageModel or Tagger (vocab_size V > 0)
 *   state    as for numrnn_forward
 *   tokens   [T][B] token ids in 0..V-1 (read only)
 *   seq_len  T >= 1
 *   batch    B >= 1
 *   y        [T][B][O] out: logits (unnormalised log-probabilities of the next token, O = V), or
 *            a Tagger's label scores (O labels; the best is the step's label)
 *   y_len    floats available at y, at least T * B * O, as for numrnn_forward */
NUMRNN_API int numrnn_forward_tokens(numrnn_model *model, numrnn_state *state,
                                     const int32_t *tokens, int64_t seq_len, int64_t batch,
                                     float *y, int64_t y_len);

/* The text of one token of a LanguageModel's or Tagger's vocabulary (for a character model, one character),
 * so that a host can turn text into token ids and back.
 *   token     id in 0..V-1
 *   text      out: the token's UTF-8 bytes and a terminating NUL
 *   text_len  bytes available at text (a character takes at most 4 bytes plus the NUL) */
NUMRNN_API int numrnn_token_text(const numrnn_model *model, int32_t token, char *text,
                                 int64_t text_len);

#ifdef __cplusplus
}
#endif

#endif /* NUMRNN_H */
