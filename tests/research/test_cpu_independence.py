"""The kernel's numbers do not depend on the CPU: OpenBLAS picks a kernel (and its order of summation) by CPU
type, so the backtest and the PBO sum with numpy reductions, never matrix products. Two child processes, each made
to use another BLAS kernel, must print the same sha256 of the numbers."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO_ROOT

CHILD = Path(__file__).with_name("kernel_child.py")


def has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() != "x86_64" or not has_avx2(),
                    reason="OpenBLAS core types Prescott and Haswell are both usable only on x86-64 with AVX2")
def test_the_kernel_gives_the_same_numbers_whichever_blas_kernel_runs():
    digests = {}
    for core in ("Prescott", "Haswell"):
        done = subprocess.run([sys.executable, str(CHILD)], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT),
                                                "OPENBLAS_CORETYPE": core})
        assert done.returncode == 0, done.stderr
        digests[core] = done.stdout.strip()
    assert all(len(digest) == 64 for digest in digests.values()), digests
    assert len(set(digests.values())) == 1, digests
