#!/usr/bin/env python3
"""Formats `llada2 eval --json` outputs (bench/eval_demo.sh) as the markdown table of README.md."""
import json
import os
import sys

TASKS = ["add_sub", "multiply", "sort", "sudoku", "tool_call", "tool_answer", "multi_turn"]


def label(path, settings):
    base = os.path.basename(path)[:-5]
    parts = []
    s = dict(settings)
    thr, edit = s.pop("threshold", 0.7), s.pop("editing_threshold", 0.5)
    mode = {(0.5, None): " (S mode)", (0.7, 0.5): " (Q mode)"}.get((thr, edit), "")
    parts.append(f"threshold {thr}, editing {'off' if edit is None else edit}{mode}")
    if "block_length" in s:
        parts.append(f"block {s.pop('block_length')}")
    extra = {"bidirectional": "bidirectional attention", "exact": "exact mode (float32 compute)", "q8": "q8 weights",
             "q4": "q4 weights"}.get(base)
    if extra:
        parts.append(extra)
    return ", ".join(parts)


print("| settings | " + " | ".join(TASKS) + " | all | tokens/forward |")
print("|---|" + "---:|" * (len(TASKS) + 2))
for path in sys.argv[1:]:
    for run in json.load(open(path))["runs"]:
        cells = []
        for t in TASKS:
            r = run["tasks"][t]
            cells.append(f"{100 * r['accuracy']:.1f}")
        a = run["all"]
        lo, hi = a["ci95"]
        cells.append(f"{100 * a['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})")
        cells.append(f"{a['tokens_per_forward']:.2f}")
        print(f"| {label(path, run['settings'])} | " + " | ".join(cells) + " |")
