#!/usr/bin/env python3
"""Reference logits of the demo model from its PyTorch definition (float32), for the engine's parity test.

    /usr/bin/python3 train/parity.py --model models/llada2-demo --out tests/data/demo/parity.safetensors

Three inputs from the held-out set, encoded by the engine: a sum with its answer (block_causal, blocks of
32), a sudoku with half its answer masked (bidirectional) and a tool call with masked cells (block_causal,
blocks of 16). Written as safetensors: caseN.input_ids, caseN.block_length (0 = bidirectional),
caseN.logits [W, vocab].
"""

import argparse
import json
import os
import random
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import model as mdl  # noqa: E402
import tasks  # noqa: E402


def write_safetensors(path, arrays):
    header, blobs, offset = {}, [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        dt = {np.dtype(np.int64): "I64", np.dtype(np.float32): "F32"}[a.dtype]
        raw = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def reference_logits(m, ids, block):
    n = len(ids)
    pos = torch.arange(n)
    if block:
        blk = pos // block
        allow = blk[None, :] <= blk[:, None]
    else:
        allow = torch.ones(n, n, dtype=torch.bool)
    bias = torch.zeros(1, 1, n, n).masked_fill(~allow, torch.finfo(torch.float32).min)
    with torch.no_grad():
        return m(torch.tensor([ids]), pos[None], bias)[0].numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/llada2-demo")
    ap.add_argument("--engine", default="build/llada2")
    ap.add_argument("--out", default="tests/data/demo/parity.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = mdl.load_model(args.model).float().eval()
    with open(os.path.join(args.model, "config.json")) as f:
        mask_id = json.load(f)["mask_token_id"]
    ev = tasks.eval_set(1)
    picks = [(next(e for e in ev if e["task"] == "add_sub"), 32, 0.0),
             (next(e for e in ev if e["task"] == "sudoku"), 0, 0.5),
             (next(e for e in ev if e["task"] == "tool_call"), 16, 0.7)]
    rng = np.random.default_rng(7)
    arrays = {}
    for i, (e, block, masked) in enumerate(picks):
        prompt = data.render(args.engine, args.model, [e])[0]
        answer = tasks.example(e["task"], random.Random(i), True)["answer"]  # some answer of the task
        p_ids, a_ids = data.encode(args.engine, args.model, [prompt, answer])
        a_ids = [mask_id if rng.random() < masked else t for t in a_ids]
        ids = p_ids + a_ids
        arrays[f"case{i}.input_ids"] = np.array(ids, dtype=np.int64)
        arrays[f"case{i}.block_length"] = np.array([block], dtype=np.int64)
        arrays[f"case{i}.logits"] = reference_logits(m, ids, block)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_safetensors(args.out, arrays)
    print(f"wrote {args.out}: {len(picks)} cases")


if __name__ == "__main__":
    main()
