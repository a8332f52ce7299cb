"""Fixtures of the audit bundle tests: the tiny snapshot the idea jobs run on, and a bare Python (a venv made
without pip, so without Django or anything else installed) to run the stand-alone verifier in."""
import subprocess
import sys

import pytest

from ..builders import TINY_SNAPSHOT, a_snapshot
from ..conftest import REPO_ROOT

VERIFIER = REPO_ROOT / "tools" / "verify_bundle.py"


@pytest.fixture
def tiny_snapshot(db):
    return a_snapshot(TINY_SNAPSHOT)


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory):
    """The python of a fresh venv without pip: the standard library and nothing else."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-I", "-c", "import django"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "the bare venv can import Django"
    return python


def verify_offline(bare_python, *args) -> subprocess.CompletedProcess:
    """tools/verify_bundle.py run by the bare python, isolated (-I: no PYTHONPATH, no user site, no cwd)."""
    return subprocess.run([str(bare_python), "-I", str(VERIFIER), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd="/")
