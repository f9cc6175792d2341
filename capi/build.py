"""Generates the C source of libnumrnn.so with cffi in embedding mode (CMakeLists.txt runs it).

    python capi/build.py OUT.c

The interpreter that runs this script is the one the library will embed: its home and its
site-packages (a venv's own and, if it sees them, the base interpreter's; the user site when
enabled) are baked into OUT.c. This script only writes C; CMake compiles and links it.
"""
import os
import site
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))

# What crosses between capi/numrnn.c and python/numrnn/capi.py (prototypes repeated in numrnn.c).
BRIDGE = """
#define NUMRNN_OK ...
#define NUMRNN_E_ARG ...
#define NUMRNN_E_IO ...
#define NUMRNN_E_FORMAT ...
#define NUMRNN_E_DEVICE ...
#define NUMRNN_E_RUNTIME ...

typedef struct numrnn_model_info {
    int64_t input_size, output_size, vocab_size;
    int64_t h_size, c_size;
    const int64_t *meta;
    const float *weights;
    void *forward;
    void *forward_tokens;
    void *workspace_size;
} numrnn_model_info;

extern "Python" int numrnn_py_model_open(const char *, const char *, void **, numrnn_model_info *);
extern "Python" int numrnn_py_model_compiled(void *, numrnn_model_info *);
extern "Python" int numrnn_py_model_close(void *);
extern "Python" int numrnn_py_model_sizes(void *, int64_t *, int64_t *, int64_t *);
extern "Python" int numrnn_py_state_new(void *, int64_t, void **);
extern "Python" int numrnn_py_state_free(void *);
extern "Python" int numrnn_py_state_set_threads(void *, int, const int64_t **);
extern "Python" int numrnn_py_forward(void *, void *, const float *, int64_t, int64_t, float *, int64_t);
extern "Python" int numrnn_py_forward_tokens(void *, void *, const int32_t *, int64_t, int64_t,
                                             float *, int64_t);
extern "Python" int numrnn_py_token_text(void *, int32_t, char *, int64_t);

void numrnn_set_error_(const char *message);
void numrnn_start_failed_(const char *message);
"""


def site_folders():
    """This interpreter's site directories, in the order `site` gives them."""
    folders = list(site.getsitepackages())
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user):
        folders.append(user)
    return folders


def c_string(text):
    """A C string literal holding `text` as UTF-8 (octal escapes keep any byte safe)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else "\\%03o" % b
                         for b in text.encode("utf-8")) + '"'


def main(out_path):
    ffi = cffi.FFI()
    ffi.cdef(BRIDGE)
    with open(os.path.join(HERE, "init.py"), encoding="utf-8") as f:
        ffi.embedding_init_code(f.read())
    source = ("#define NUMRNN_BUILD_HOME %s\n#define NUMRNN_BUILD_SITE %s\n#include \"numrnn.c\"\n"
              % (c_string(sys.base_prefix), c_string(os.pathsep.join(site_folders()))))
    ffi.set_source("_numrnn_capi", source)
    ffi.emit_c_code(out_path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python capi/build.py OUT.c")
    main(sys.argv[1])
