"""`pip install ./python` in a fresh virtual environment (with the system's site packages: NumPy,
setuptools), reusing the test build's CMake directory, then an import and a generation from outside
the source tree."""

import os
import subprocess
import sys

import pytest

from conftest import DEMO, SOURCE


def test_pip_install_in_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.fail(f"python3 -m venv failed (Debian: apt-get install python3-venv):\n{r.stderr}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build = os.environ.get("LLADA2_BUILD_DIR")
    if build:
        env["LLADA2_BUILD_DIR"] = build
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", "-q",
                        os.path.join(SOURCE, "python")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    script = ("import llada2, sys\n"
              "print(llada2.__file__)\n"
              f"pipe = llada2.LLaDA2Pipeline.from_pretrained({DEMO!r})\n"
              "out = pipe(prompt='What is 4821 + 739?', gen_length=64, block_length=32)\n"
              "print(out.sequences.shape, out.texts[0])\n")
    r = subprocess.run([py, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(venv)), lines[0]
    assert lines[1].startswith("(1, 64)")
