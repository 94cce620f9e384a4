"""Shared paths and fixtures of the Python tests (run by ctest as Python.Pytest, or by hand:
PYTHONPATH=build/python python3 -m pytest python/tests)."""

import json
import os
import struct

import numpy as np
import pytest

SOURCE = os.environ.get("LLADA2_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(SOURCE, "tests", "data")
GOLDEN = os.path.join(DATA, "golden")
DEMO = os.path.join(SOURCE, "models", "llada2-demo")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_safetensors(path):
    """name -> NumPy array (F32, I64, BOOL; BF16 widened to float32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, {"F32": np.float32, "I64": np.int64, "BOOL": np.bool_}[t["dtype"]])
        out[name] = arr.reshape(t["shape"])
    return out


def golden_cases(role=None):
    cases = read_json(os.path.join(GOLDEN, "cases.json"))["cases"]
    return [c for c in cases if role is None or c["role"] == role]


@pytest.fixture(scope="session")
def demo():
    import llada2
    if not os.path.exists(os.path.join(DEMO, "config.json")):
        pytest.skip("the demo model is not in this checkout")
    return llada2.LLaDA2Pipeline.from_pretrained(DEMO)


_pipes = {}


def golden_pipeline(case_json):
    """A pipeline over the golden case's model with the case's scheduler config (models are shared)."""
    import llada2
    sc = case_json["scheduler_config"]
    key = (case_json["model_dir"], json.dumps(sc, sort_keys=True))
    if key not in _pipes:
        sched = llada2.BlockRefinementScheduler(**sc)
        _pipes[key] = llada2.LLaDA2Pipeline.from_pretrained(os.path.join(GOLDEN, case_json["model_dir"]), sched)
    return _pipes[key]


def call_kwargs(case_json):
    """The case's `pipe(...)` keyword arguments, ids as int64 NumPy arrays."""
    kw = dict(case_json["call"])
    kw["input_ids"] = np.array(kw["input_ids"], dtype=np.int64)
    if "attention_mask" in kw:
        kw["attention_mask"] = np.array(kw["attention_mask"], dtype=np.int64)
    return kw
