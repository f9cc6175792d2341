"""The CUDA tests run only in a process where numba.cuda can work: under Numba's simulator
(NUMBA_ENABLE_CUDASIM=1, set before numba.cuda is imported) or on a GPU (NUMRNN_TEST_GPU=1).
tests/test_cuda_sim.py starts such a process from the plain `pytest` run; elsewhere these files
are not collected, so a process without the simulator never imports them."""
import os

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("NUMRNN_TEST_GPU") != "1":
    collect_ignore_glob = ["test_*.py"]
