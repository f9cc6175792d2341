# Start-up code of libnumrnn.so: capi/build.py compiles this text into the library (cffi's
# embedding_init_code); it runs once, inside the embedded interpreter, on the first call, after
# capi/numrnn.c has set up the site folders. It only hands over to numrnn.capi, whose functions
# live in real files (Numba caches only code in files). A failure is recorded for the C side,
# not raised, so every numrnn_* call returns NUMRNN_E_RUNTIME with the reason instead of cffi
# printing a traceback on the host's stderr.
import sys
import traceback

from _numrnn_capi import ffi, lib

try:
    import numrnn.capi
    numrnn.capi.bind(ffi, lib)
except BaseException as error:
    where = "".join(traceback.format_exception_only(type(error), error)).strip()
    lib.numrnn_start_failed_(("could not set up numrnn in the embedded Python: %s; sys.path = %s; set "
                              "NUMRNN_PYTHONPATH to the site-packages folder where numrnn is installed"
                              % (where, sys.path)).encode("utf-8", "replace"))
