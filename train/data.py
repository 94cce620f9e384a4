"""Builds the tokenizer and the tokenized training set, with the engine itself rendering the chat template
and encoding text, so the model is trained on exactly the ids it is given at inference."""

import json
import os
import random
import subprocess
import tempfile

import numpy as np

import tasks
import tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = {"add_sub": 0.3, "multiply": 0.3, "sort": 0.2, "sudoku": 0.12, "tool_call": 0.05, "tool_answer": 0.03}


def run_engine(engine, args, lines):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        path = f.name
    try:
        out = subprocess.run([engine] + args + ["--input", path], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return [json.loads(l) for l in out.splitlines()]


def render(engine, tok_dir, examples):
    lines = [{"messages": e["messages"], "tools": e.get("tools"), "add_generation_prompt": True} for e in examples]
    return [r["rendered"] for r in run_engine(engine, ["render-chat", "--model", tok_dir], lines)]


def encode(engine, tok_dir, texts):
    return [r["ids"] for r in run_engine(engine, ["tokenize", "--model", tok_dir], [{"text": t} for t in texts])]


def sample_examples(n, seed):
    rng = random.Random(seed)
    names = list(WEIGHTS)
    weights = [WEIGHTS[t] for t in names]
    return [tasks.example(rng.choices(names, weights)[0], rng, False) for _ in range(n)]


def build(engine, out_dir, n_train, vocab_size, seed, log=print):
    """Writes the tokenizer files into out_dir; returns the training set (flat ids, offsets, prompt lengths,
    task index) and the special ids."""
    with open(os.path.join(HERE, "chat_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    log(f"generating {n_train} training examples")
    examples = sample_examples(n_train, seed)
    with tempfile.TemporaryDirectory() as boot:
        tokenizer.write(boot, [tokenizer.BYTE_CHAR[b] for b in range(256)], [], template)
        prompts = render(engine, boot, examples)
    corpus = prompts[:40000] + [e["answer"] for e in examples[:40000]]
    log(f"training a {vocab_size}-token byte-level BPE on {len(corpus)} texts")
    vocab, merges = tokenizer.train_bpe(corpus, vocab_size)
    special = tokenizer.write(out_dir, vocab, merges, template)
    log("encoding the training set with the engine's tokenizer")
    p_ids = encode(engine, out_dir, prompts)
    a_ids = encode(engine, out_dir, [e["answer"] for e in examples])
    flat, offsets, plen = [], [0], []
    for p, a in zip(p_ids, a_ids):
        flat.extend(p + a)
        offsets.append(len(flat))
        plen.append(len(p))
    task_index = np.array([tasks.TASKS.index(e["task"]) for e in examples], dtype=np.int64)
    return (np.array(flat, dtype=np.int64), np.array(offsets, dtype=np.int64), np.array(plen, dtype=np.int64),
            task_index, special)
