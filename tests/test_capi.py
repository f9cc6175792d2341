"""The C interface from pytest, so that the README's test command covers it: CMake builds
libnumrnn.so against this Python and ctest runs the C tests (tests/c/, CMakeLists.txt). Then two
things ctest does not check: the example host started with an empty environment gives Python's
numbers, and a new host process compiles nothing (Numba's on-disk cache is shared with Python)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import numrnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or CC is None,
                                reason="the C interface needs cmake and a C compiler, and this machine "
                                       "lacks " + ("cmake" if shutil.which("cmake") is None else "a C compiler"))


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Configure, build and ctest once; returns the build folder."""
    folder = str(tmp_path_factory.mktemp("capi-build"))
    run(["cmake", "-S", ROOT, "-B", folder, "-DPython3_EXECUTABLE=" + sys.executable])
    run(["cmake", "--build", folder, "-j", "2"])
    return folder


def test_ctest(build):
    out = run(["ctest", "--test-dir", build, "--output-on-failure"])
    assert "tests passed" in out and "0 tests failed" in out, out


def cache_files():
    """Numba's cache files of numrnn's kernels: {path: mtime_ns}."""
    import numba
    folders = [numba.config.CACHE_DIR] if numba.config.CACHE_DIR else []
    folders.append(os.path.join(os.path.dirname(numrnn.engine.__file__), "__pycache__"))
    found = {}
    for folder in folders:
        for base, _, names in os.walk(folder):
            for name in names:
                if name.endswith((".nbi", ".nbc")):
                    path = os.path.join(base, name)
                    found[path] = os.stat(path).st_mtime_ns
    return found


def test_example_host_empty_environment_and_warm_cache(build, tmp_path):
    """env -i: no venv, no PYTHONPATH, no HOME; outputs equal Python's; no kernel is compiled."""
    layer = numrnn.LSTM(4, 6, num_layers=2, seed=11)
    path = str(tmp_path / "lstm.safetensors")
    numrnn.save(layer, path)
    x = np.random.default_rng(1).standard_normal((5, 1, 4)).astype(np.float32)
    expected, _ = layer(x)    # compiles (or loads) the kernels in this process
    np.savetxt(tmp_path / "x.txt", x[:, 0])
    before = cache_files()
    host = [os.path.join(build, "numrnn-run"), path, "--input", str(tmp_path / "x.txt")]
    for _ in range(2):
        out = run(["env", "-i"] + host)
        got = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])
        assert np.linalg.norm(got - expected[:, 0]) / np.linalg.norm(expected) < 1e-5
        assert cache_files() == before, "the host process compiled kernels instead of loading Numba's cache"


def test_header_version_matches_package():
    with open(os.path.join(ROOT, "capi", "numrnn.h")) as f:
        header = f.read()
    version = ".".join(header.split(f"#define NUMRNN_VERSION_{part} ")[1].split()[0]
                       for part in ("MAJOR", "MINOR", "PATCH"))
    assert version == numrnn.__version__


def test_install_and_link(build, tmp_path):
    """cmake --install gives include/numrnn.h and lib/libnumrnn.so; a host compiled against them
    (the README's link line) runs from an empty environment."""
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", build, "--prefix", str(prefix)])
    libdir = next(p for p in (prefix / "lib", prefix / "lib64") if (p / "libnumrnn.so").exists())
    host = str(tmp_path / "host")
    run([CC, os.path.join(ROOT, "examples", "c", "numrnn_run.c"), "-I", str(prefix / "include"), "-L", str(libdir),
         "-lnumrnn", "-Wl,-rpath," + str(libdir), "-lm", "-o", host])
    numrnn.save(numrnn.GRU(2, 3, seed=0), str(tmp_path / "gru.safetensors"))
    np.savetxt(tmp_path / "x.txt", np.ones((4, 2)))
    out = run(["env", "-i", host, str(tmp_path / "gru.safetensors"), "--input", str(tmp_path / "x.txt")])
    assert np.array([line.split() for line in out.strip().splitlines()], float).shape == (4, 3)


def test_example_host_generates_from_numrnn_train(build, tmp_path):
    """A model trained by `numrnn train`, sampled by the C example host from an empty environment."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def add(a, b):\n    return a + b\n\n" * 40)
    model = str(tmp_path / "lm.safetensors")
    run([sys.executable, "-c", "import sys; from numrnn.cli import main; sys.exit(main(sys.argv[1:]))",
         "train", "--data", str(corpus), "--steps", "4", "--hidden-size", "16", "--embedding-dim", "8",
         "--seq-len", "16", "--batch-size", "4", "--eval-every", "4", "--out", model])
    out = run(["env", "-i", os.path.join(build, "numrnn-run"), model, "--prompt", "def ", "--length", "40",
               "--seed", "3"])
    assert out.startswith("def ") and len(out) == 4 + 40 + 1 and set(out) <= set(corpus.read_text()), out
    layer = str(tmp_path / "gru.safetensors")
    numrnn.save(numrnn.GRU(2, 3, seed=0), layer)
    for path, flag, message in ((model, "--input", f"--input is for a layer's feature rows; {model} is a "
                                                   f"LanguageModel, which starts from --prompt"),
                                (layer, "--prompt", f"--prompt is for a LanguageModel; {layer} is a layer")):
        done = subprocess.run(["env", "-i", os.path.join(build, "numrnn-run"), path, flag, "x"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 2 and message in done.stderr and not done.stdout, done.stderr


def test_example_host_greedy_and_nucleus_sampling(build, tmp_path):
    """--temperature 0 gives Python's greedy text (LanguageModel.generate) for the same model and
    prompt; --top-p draws only from the nucleus, and from all of it."""
    import json
    chars = ["\n", "\t", " ", "a", "b", "c", "d", "\u00e9"]
    lm = numrnn.LanguageModel(len(chars), 4, cell="lstm", hidden_size=8, num_layers=2, seed=3)
    lm.metadata["vocabulary"] = json.dumps(chars)
    path = str(tmp_path / "lm.safetensors")
    numrnn.save(lm, path)
    host = ["env", "-i", os.path.join(build, "numrnn-run"), path]
    out = run(host + ["--prompt", "ab\t\u00e9", "--length", "30", "--temperature", "0", "--seed", "4"])
    greedy = lm.generate("ab\t\u00e9", 30, temperature=0)
    assert out == "ab\t\u00e9" + greedy + "\n" and len(set(greedy)) > 1
    # a fixed next-character distribution: zero head weight, log p as its bias
    p = np.array([0.02, 0.03, 0.05, 0.40, 0.10, 0.30, 0.06, 0.04])
    lm.head.params["weight"][:] = 0
    lm.head.params["bias"][:] = np.log(p)
    numrnn.save(lm, path)
    out = run(host + ["--prompt", "a", "--length", "600", "--temperature", "1", "--top-p", "0.75"])
    assert set(out[1:-1]) == {"a", "b", "c"}      # mass 0.4 + 0.3 + 0.1 is the first to reach 0.75
    out = run(host + ["--prompt", "a", "--length", "600", "--temperature", "1"])
    assert set(out[1:-1]) == set(chars)


IN_PROCESS = r"""
import os, sys
import cffi
import numpy as np
import numrnn, numrnn.capi
build, folder = sys.argv[1], sys.argv[2]
ffi = cffi.FFI()
ffi.cdef('''typedef struct numrnn_model numrnn_model;
            int numrnn_model_open(const char *path, const char *device, numrnn_model **model);
            int numrnn_forward(numrnn_model *model, void *state, const float *x, int64_t seq_len,
                               int64_t batch, float *y, int64_t y_len);
            const char *numrnn_last_error(void);
            void numrnn_model_close(numrnn_model *model);''')
lib = ffi.dlopen(os.path.join(build, "libnumrnn.so"))
x = np.random.default_rng(3).standard_normal((4, 2, 3)).astype(np.float32)
run = numrnn.capi.run
def no_python(*args):
    raise RuntimeError("the Python half was called")
for dtype in ("float32", "float64"):
    path = os.path.join(folder, dtype + ".safetensors")
    numrnn.save(numrnn.GRU(3, 5, num_layers=2, dtype=dtype, seed=2), path)
    m = ffi.new("numrnn_model **")
    assert lib.numrnn_model_open(path.encode(), b"cpu", m) == 0
    y = np.empty((4, 2, 5), np.float32)
    yp, xp = ffi.cast("float *", y.ctypes.data), ffi.cast("const float *", x.ctypes.data)
    assert lib.numrnn_forward(m[0], ffi.NULL, xp, 4, 2, yp, y.size) == 0
    first = y.copy()
    numrnn.capi.run = no_python
    y[:] = 0
    code = lib.numrnn_forward(m[0], ffi.NULL, xp, 4, 2, yp, y.size)
    numrnn.capi.run = run
    print(dtype, code, int(np.array_equal(y, first)), ffi.string(lib.numrnn_last_error()).decode())
    lib.numrnn_model_close(m[0])
"""


def test_compiled_path_runs_without_python(build, tmp_path):
    """A float32 model's calls after the first do not enter the interpreter: with the Python
    half's run() made to fail, they still succeed with the same numbers; a float64 model, which
    goes through Python, then fails. The library is loaded with cffi into a fresh Python (then it
    runs in that interpreter, whose numrnn.capi can be patched; a fresh one, because loading it
    into this process after PyTorch was imported aborted)."""
    out = run([sys.executable, "-c", IN_PROCESS, build, str(tmp_path)]).splitlines()
    assert out[0] == "float32 0 1 ", out
    assert out[1].startswith("float64 5 0 ") and "the Python half was called" in out[1], out


@pytest.mark.parametrize("flag,value,message", [
    ("--temperature", "hot", "--temperature needs a number, got 'hot'"),
    ("--top-p", "0.9x", "--top-p needs a number, got '0.9x'"),
    ("--length", "ten", "--length needs a whole number from 0 to"),
    ("--length", "-3", "--length needs a whole number from 0 to"),
    ("--seed", "1.5", "--seed needs a whole number from 0 to"),
])
def test_example_host_refuses_a_value_that_is_not_a_number(build, flag, value, message):
    """atof/atol would read these as 0 (greedy sampling, no text): refused before the model is read."""
    done = subprocess.run(["env", "-i", os.path.join(build, "numrnn-run"), "no-such-model.safetensors", flag, value],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and not done.stdout, done.stderr


THREADS = r"""
import os, sys
import cffi
import numpy as np
import numrnn
build, folder = sys.argv[1], sys.argv[2]
ffi = cffi.FFI()
ffi.cdef('''typedef struct numrnn_model numrnn_model; typedef struct numrnn_state numrnn_state;
            int numrnn_model_open(const char *path, const char *device, numrnn_model **model);
            int numrnn_state_new(numrnn_model *model, int64_t batch, numrnn_state **state);
            void numrnn_state_free(numrnn_state *state);
            int numrnn_state_set_threads(numrnn_state *state, int threads);
            int numrnn_forward(numrnn_model *model, numrnn_state *state, const float *x, int64_t seq_len,
                               int64_t batch, float *y, int64_t y_len);
            const char *numrnn_last_error(void);
            void numrnn_model_close(numrnn_model *model);''')
lib = ffi.dlopen(os.path.join(build, "libnumrnn.so"))
rng = np.random.default_rng(4)
m = ffi.new("numrnn_model **")
for cell in ("LSTM", "GRU", "RNN"):
    path = os.path.join(folder, cell + ".safetensors")
    numrnn.save(getattr(numrnn, cell)(6, 40, num_layers=2, seed=2), path)
    assert lib.numrnn_model_open(path.encode(), b"cpu", m) == 0
    states = []
    for threads in (1, 2, 3):
        s = ffi.new("numrnn_state **")
        assert lib.numrnn_state_new(m[0], 2, s) == 0
        assert lib.numrnn_state_set_threads(s[0], threads) == 0, ffi.string(lib.numrnn_last_error())
        states.append(s[0])
    worst = [0.0, 0.0]     # threads 2 and 3 against 1, streamed calls of 1, 1, 4, 20, 1 steps
    exact = True           # to the bit until a call of seq_len * batch > 8 (then the states differ by rounding)
    for T in (1, 1, 4, 20, 1):
        exact = exact and T * 2 <= 8
        x = rng.standard_normal((T, 2, 6)).astype(np.float32)
        ys = []
        for s in states:
            y = np.empty((T, 2, 40), np.float32)
            assert lib.numrnn_forward(m[0], s, ffi.cast("const float *", x.ctypes.data), T, 2,
                                      ffi.cast("float *", y.ctypes.data), y.size) == 0
            ys.append(y)
        for i in (1, 2):
            if exact:
                assert np.array_equal(ys[i], ys[0]), (cell, T, i)
            worst[i - 1] = max(worst[i - 1], float(np.linalg.norm(ys[i] - ys[0]) / np.linalg.norm(ys[0])))
    # a refused change leaves the state on its threads, still working
    assert lib.numrnn_state_set_threads(states[1], 0) == 1
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    ys = [np.empty((1, 2, 40), np.float32) for _ in range(2)]
    for s, y in zip(states, ys):
        assert lib.numrnn_forward(m[0], s, ffi.cast("const float *", x.ctypes.data), 1, 2,
                                  ffi.cast("float *", y.ctypes.data), y.size) == 0
    worst[0] = max(worst[0], float(np.linalg.norm(ys[1] - ys[0]) / np.linalg.norm(ys[0])))
    tasks = len(os.listdir("/proc/self/task"))
    for s in states:
        lib.numrnn_state_free(s)
    print(cell, "%.1e %.1e" % tuple(worst), tasks - len(os.listdir("/proc/self/task")))
    lib.numrnn_model_close(m[0])
s = ffi.new("numrnn_state **")
numrnn.save(numrnn.LSTM(6, 40, proj_size=4, seed=2), os.path.join(folder, "proj.safetensors"))
for name, batch, threads in (("LSTM", 9, 2), ("LSTM", 2, 0), ("LSTM", 2, 9), ("proj", 2, 2)):
    lib.numrnn_model_open(os.path.join(folder, name + ".safetensors").encode(), b"cpu", m)
    lib.numrnn_state_new(m[0], batch, s)
    print(lib.numrnn_state_set_threads(s[0], threads), ffi.string(lib.numrnn_last_error()).decode())
    lib.numrnn_state_free(s[0])
    lib.numrnn_model_close(m[0])
"""


def test_a_state_on_several_threads_equals_one_thread(build, tmp_path):
    """numrnn_state_set_threads: streamed calls on 2 and 3 threads equal one thread's (to the bit
    while every call had seq_len * batch <= 8), numrnn_state_free ends the state's helper threads, and what the
    split cannot run is refused with its reason (in a fresh Python, as above)."""
    out = run([sys.executable, "-c", THREADS, build, str(tmp_path)]).splitlines()
    for line, cell in zip(out, ("LSTM", "GRU", "RNN")):
        name, two, three, ended = line.split()
        assert name == cell and float(two) <= 1e-6 and float(three) <= 1e-6 and int(ended) == 3, out
    assert out[3].startswith("1 numrnn_state_set_threads: threads > 1 need a batch of at most 8"), out
    assert out[4] == "1 numrnn_state_set_threads: threads must be in 1..8, got 0", out
    assert out[5] == "1 numrnn_state_set_threads: threads must be in 1..8, got 9", out
    assert out[6].startswith("1 numrnn_state_set_threads: threads > 1 need") and "proj_size 4" in out[6], out
