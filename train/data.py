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


def sample_examples(n, seed, mix=None, multi_turn=0.0):
    """n training examples drawn by the task weights `mix`; a `multi_turn` fraction of them get one to three
    earlier exchanges (other training problems with their answers) in front, so the model answers the last
    question of a conversation and ignores the ones already answered."""
    rng = random.Random(seed)
    mix = mix or WEIGHTS
    names = list(mix)
    weights = [mix[t] for t in names]
    out = []
    for _ in range(n):
        ex = tasks.example(rng.choices(names, weights)[0], rng, False)
        if multi_turn and rng.random() < multi_turn:
            ex["messages"] = tasks.history(rng) + ex["messages"]
        out.append(ex)
    return out


def read_tokenizer(model_dir):
    """The vocabulary and merges of an existing model's tokenizer.json (to continue training it)."""
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        bpe = json.load(f)["model"]
    vocab = sorted(bpe["vocab"], key=bpe["vocab"].get)
    return vocab, [tuple(m) for m in bpe["merges"]]


def build(engine, out_dir, n_train, vocab_size, seed, log=print, mix=None, multi_turn=0.0, tokenizer_from=None):
    """Writes the tokenizer files into out_dir (trained on the data, or those of `tokenizer_from`); returns
    the training set (flat ids, offsets, prompt lengths, task index) and the special ids."""
    with open(os.path.join(HERE, "chat_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    log(f"generating {n_train} training examples")
    examples = sample_examples(n_train, seed, mix, multi_turn)
    with tempfile.TemporaryDirectory() as boot:
        tokenizer.write(boot, [tokenizer.BYTE_CHAR[b] for b in range(256)], [], template)
        prompts = render(engine, boot, examples)
    if tokenizer_from:
        log(f"keeping the tokenizer of {tokenizer_from}")
        vocab, merges = read_tokenizer(tokenizer_from)
    else:
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
