"""Runs the project's shared contract check (../shared/checks/contract.py beside the checkout):
numrnn's RNN/LSTM/GRU against PyTorch on its fixed cases, float64 and float32."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
CONTRACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "checks", "contract.py")


@pytest.mark.skipif(not os.path.exists(CONTRACT), reason="no ../shared/checks/contract.py beside this checkout")
def test_contract_cpu():
    run = subprocess.run([sys.executable, CONTRACT, "--device", "cpu"], capture_output=True, text=True,
                         cwd=os.path.dirname(CONTRACT), timeout=900)
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert last.startswith("contract (cpu):") and last.split()[-2].split("/")[0] == last.split()[-2].split("/")[1], last
