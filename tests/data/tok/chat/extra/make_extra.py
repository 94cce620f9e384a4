#!/usr/bin/env python3
"""Writes extra.jsonl: the well-known chat templates in this folder rendered by Python Jinja2
(transformers' environment, see ../make_constructs.py) over the conversations of
../ling/public.jsonl. Records: {"template", "index", "out"} or {"template", "index", "error"}.
Run: python3 tests/data/tok/chat/extra/make_extra.py > tests/data/tok/chat/extra/extra.jsonl"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_constructs import make_env  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
env = make_env()
records = [json.loads(line) for line in open(os.path.join(here, "..", "ling", "public.jsonl"), encoding="utf-8")]
VARS = {"bos_token": "<s>", "eos_token": "</s>"}
for name in sorted(os.listdir(here)):
    if not name.endswith(".jinja"):
        continue
    tpl = env.from_string(open(os.path.join(here, name), encoding="utf-8").read())
    for i, r in enumerate(records):
        rec = {"template": name, "index": i}
        try:
            rec["out"] = tpl.render(messages=r["messages"], tools=r["tools"], add_generation_prompt=r["add_generation_prompt"], **VARS)
        except Exception as e:  # noqa: BLE001 - the record notes that Jinja2 raised
            rec["error"] = type(e).__name__ + ": " + str(e)
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
