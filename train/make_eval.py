#!/usr/bin/env python3
"""Writes the held-out evaluation set of the demo model's tasks (problems training never sees) as a
`llada2 eval` task file."""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--out", default="models/llada2-demo/eval.jsonl")
ap.add_argument("--per-task", type=int, default=200)
args = ap.parse_args()
with open(args.out, "w", encoding="utf-8") as f:
    for line in tasks.eval_set(args.per_task):
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
print(f"wrote {args.out}")
