#!/usr/bin/env python3
"""Trains the demo LLaDA2 model from scratch with the LLaDA2.x objective (train/README.md).

    /usr/bin/python3 train/train.py --out models/llada2-demo

Block diffusion: a sequence (prompt + response + EOS padding) is cut into blocks at absolute positions;
the input is a clean copy of the sequence followed by a noisy copy of the blocks that hold response tokens, with the attention mask of block-diffusion training (a noisy block
sees itself bidirectionally and the clean copies of earlier blocks; the clean copy is block-causal), which
is what the engine's block_causal mode computes at inference. Loss: cross-entropy at masked positions
(mask-to-token), at positions whose token was replaced by a random one (token-to-token, LLaDA2.1 editing),
and with a small weight at kept response tokens.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import model as mdl  # noqa: E402
import tasks  # noqa: E402

BLOCK_CHOICES = ([8, 16, 32], [0.15, 0.2, 0.65])
LONG_TASKS = {"tool_call", "tool_answer"}
EOS_FILL_WEIGHT = 0.25


def layout(ids, p, blk, eos, mask_id, rng, pool, own_subs=0.0):
    """One training row: (ids, positions, is_noisy, block index, labels, loss weights) as numpy arrays.
    own_subs: share of the token-to-token substitutes drawn from the row's own response (a digit of a
    neighbouring number, the confusion parallel commits make) instead of from the pool."""
    total = len(ids) + 1
    n = -(-total // blk) * blk
    if rng.random() < 0.15:
        n += blk  # now and then a whole block of EOS after the answer
    x0 = np.full(n, eos, dtype=np.int64)
    x0[:len(ids)] = ids
    first = (p // blk) * blk  # the first block that holds response positions
    xt = x0[first:].copy()
    pos_t = np.arange(first, n)
    resp = pos_t >= p
    label_w = np.zeros(n - first, dtype=np.float32)
    # mask-to-token: one mask ratio per block, U(0, 1]
    for b0 in range(0, n - first, blk):
        t = 1.0 - rng.random()
        sel = resp[b0:b0 + blk] & (rng.random(blk) < t)
        xt[b0:b0 + blk][sel] = mask_id
        label_w[b0:b0 + blk][sel] = 1.0
    visible = resp & (xt != mask_id)
    # token-to-token: on half the rows, replace up to 25% of the visible response tokens by random ones
    if rng.random() < 0.5:
        r = rng.random() * 0.25
        sub = visible & (rng.random(n - first) < r)
        k = int(sub.sum())
        subs = pool[rng.integers(0, len(pool), k)]
        if own_subs > 0 and k:
            own = np.asarray(ids[p:], dtype=np.int64)
            mine = rng.random(k) < own_subs
            subs[mine] = own[rng.integers(0, len(own), int(mine.sum()))]
        xt[sub] = subs
        changed = sub & (xt != x0[first:])
        label_w[changed] = 1.0
        visible = visible & ~changed
    label_w[visible] = 0.1  # kept tokens: keep them (so editing has a calibrated "no change")
    label_w[pos_t > len(ids)] *= EOS_FILL_WEIGHT  # the EOS fill after the first EOS is easy: weigh it less
    clean = n - blk  # clean copies of all blocks but the last
    ids_row = np.concatenate([x0[:clean], xt])
    pos_row = np.concatenate([np.arange(clean), pos_t])
    noisy = np.concatenate([np.zeros(clean, bool), np.ones(n - first, bool)])
    labels = np.concatenate([np.full(clean, -100), x0[first:]])
    weights = np.concatenate([np.zeros(clean, np.float32), label_w])
    return ids_row, pos_row, noisy, pos_row // blk, labels, weights


def collate(rows, eos, pack=0):
    """Pads the rows into a batch with their attention bias. With pack > 0, several rows share a batch row
    (first fit, longest first, up to `pack` positions) and a document id keeps them from seeing each other,
    so short rows are not padded to the longest one."""
    bins = []
    for r in sorted(rows, key=lambda r: -len(r[0])) if pack else rows:
        for b in bins:
            if pack and sum(len(x[0]) for x in b) + len(r[0]) <= pack:
                b.append(r)
                break
        else:
            bins.append([r])
    L = max(sum(len(x[0]) for x in b) for b in bins)
    B = len(bins)
    ids = np.full((B, L), eos, np.int64)
    pos = np.zeros((B, L), np.int64)
    noisy = np.zeros((B, L), bool)
    blk = np.full((B, L), -1, np.int64)
    doc = np.full((B, L), -1, np.int64)
    valid = np.zeros((B, L), bool)
    labels = np.full((B, L), -100, np.int64)
    weights = np.zeros((B, L), np.float32)
    for i, b in enumerate(bins):
        o = 0
        for d, (a, p, nz, bk, lb, w) in enumerate(b):
            k = len(a)
            sl = slice(o, o + k)
            ids[i, sl], pos[i, sl], noisy[i, sl], blk[i, sl], labels[i, sl], weights[i, sl] = a, p, nz, bk, lb, w
            doc[i, sl] = d
            valid[i, sl] = True
            o += k
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    ids, pos, noisy, blk, doc, valid, labels, weights = map(t, (ids, pos, noisy, blk, doc, valid, labels, weights))
    nq, nk = noisy[:, :, None], noisy[:, None, :]
    bq, bk = blk[:, :, None], blk[:, None, :]
    allow = (nq & nk & (bq == bk)) | (nq & ~nk & (bq > bk)) | (~nq & ~nk & (bq >= bk))
    allow &= valid[:, None, :] & (doc[:, :, None] == doc[:, None, :])
    allow |= torch.eye(L, dtype=torch.bool)[None]
    bias = torch.zeros(B, 1, L, L).masked_fill(~allow[:, None], torch.finfo(torch.float32).min)
    return ids, pos, bias, labels, weights, valid


class Sampler:
    def __init__(self, flat, offsets, plen, task_index, seed):
        self.flat, self.offsets, self.plen = flat, offsets, plen
        self.rng = np.random.default_rng(seed)
        long_ids = [tasks.TASKS.index(t) for t in LONG_TASKS]
        is_long = np.isin(task_index, long_ids)
        self.groups = {"short": np.nonzero(~is_long)[0], "long": np.nonzero(is_long)[0]}
        self.pos = {g: len(v) for g, v in self.groups.items()}
        self.order = {}
        resp = np.concatenate([flat[offsets[i] + plen[i]:offsets[i + 1]] for i in range(min(len(plen), 20000))])
        self.pool = resp  # substitutes are drawn from the response tokens' own distribution

    def take(self, group, k):
        out = []
        for _ in range(k):
            if self.pos[group] >= len(self.groups[group]):
                self.order[group] = self.rng.permutation(self.groups[group])
                self.pos[group] = 0
            i = self.order[group][self.pos[group]]
            self.pos[group] += 1
            out.append(self.flat[self.offsets[i]:self.offsets[i + 1]].copy())
            out[-1] = (out[-1], int(self.plen[i]))
        return out


def export(model, cfg, out_dir):
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tmp = os.path.join(out_dir, "model.safetensors.tmp")
    mdl.save_safetensors(model, tmp)
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))


def self_draft(model, batch, mask_id, rng, share, bf16):
    """Multi-turn-forward drafts (LLaDA2.1's MTF, TRAINING.md section 2): a no-grad forward predicts every
    masked position; on a `share` of the batch rows the predictions above a random confidence (as the
    decoder commits them) are written into the noisy copy. The model is then trained on that input against
    the true tokens, so it learns to re-write its own confident mistakes (a carry decided before the digits
    below it), the errors editing meets at inference, which random substitutes rarely are."""
    ids, pos, bias, labels, weights, valid = batch
    masked = (ids == mask_id) & valid
    if share <= 0 or not bool(masked.any()):
        return batch, 0, 0
    use = torch.from_numpy(rng.random(ids.shape[0]) < share)
    tau = torch.from_numpy(rng.uniform(0.3, 0.95, ids.shape[0]).astype(np.float32))
    masked &= use[:, None]  # only the drafted rows' logits are needed
    if not bool(masked.any()):
        return batch, 0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(ids, pos, bias, masked, valid)
    logits[:, mask_id] = float("-inf")
    conf, guess = torch.softmax(logits.float(), dim=-1).max(dim=-1)
    where = masked.nonzero(as_tuple=True)
    write = conf > tau[where[0]]
    r, c = where[0][write], where[1][write]
    ids, weights = ids.clone(), weights.clone()
    ids[r, c] = guess[write]
    wrong = guess[write] != labels[r, c]
    weights[r, c] = weights[r, c] * torch.where(wrong, torch.tensor(1.0), torch.tensor(0.1))
    return (ids, pos, bias, labels, weights, valid), int(write.sum()), int(wrong.sum())


def plot(log, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in log]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(steps, [r["loss"] for r in log], lw=1, label="training loss (per supervised token)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    minutes = log[-1]["elapsed"] / 60
    ax.set_title(f"llada2-demo: {steps[-1]} steps, {minutes:.0f} min on 2 CPU cores")
    fig.tight_layout()
    fig.savefig(path)


def cpu_has_bf16():
    """True where the CPU has AVX512-BF16, the products oneDNN runs fast under bf16 autocast; elsewhere
    torch's bf16 products fall back to a loop ~20x slower than float32 BLAS."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "avx512_bf16" in line.split() for line in f)
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="model folder to write (config, weights, tokenizer)")
    ap.add_argument("--engine", default="build/llada2", help="the llada2 binary (renders and tokenizes the data)")
    ap.add_argument("--steps", type=int, default=2100)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--examples", type=int, default=400000, help="training examples generated")
    ap.add_argument("--short-rows", type=int, default=64, help="rows of short tasks per step")
    ap.add_argument("--long-rows", type=int, default=3, help="rows of tool tasks per step")
    ap.add_argument("--pack", type=int, default=256, help="positions per packed batch row of the short tasks")
    ap.add_argument("--lr", type=float, default=4e-3, help="peak learning rate (cosine decay to 5%%)")
    ap.add_argument("--bias-rate", type=float, default=5e-3, help="expert-bias update per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--init", help="continue from this model folder's weights (and expert biases) instead of "
                    "a random initialisation, keeping its tokenizer")
    ap.add_argument("--mix", help="task weights of the generated data, e.g. add_sub=0.35,multiply=0.25,... "
                    "(default: train/data.py's WEIGHTS)")
    ap.add_argument("--multi-turn", type=float, default=0.0, help="fraction of examples that get earlier "
                    "exchanges of a conversation in front of the question")
    ap.add_argument("--mtf", type=float, default=0.0, help="share of the short tasks' rows that get the model's own "
                    "confident predictions written into their masked positions (multi-turn forward; costs one "
                    "no-grad forward of the short rows per step)")
    ap.add_argument("--own-subs", type=float, default=0.0, help="share of the editing substitutes taken from the "
                    "row's own response tokens (a digit of a neighbouring number) instead of the corpus' tokens")
    ap.add_argument("--warmup", type=int, default=100, help="learning-rate warm-up steps")
    ap.add_argument("--precision", choices=["auto", "bf16", "f32"], default="auto",
                    help="matrix products under bf16 autocast (fast where the CPU has AVX512-BF16: oneDNN) or in "
                    "float32 (BLAS: install libopenblas0-pthread); auto picks bf16 where the CPU has AVX512-BF16")
    ap.add_argument("--layers", type=int, help="hidden layers (default: --init's count, else 5); more than --init "
                    "has appends MoE layers that start as the identity (zero output projections)")
    ap.add_argument("--log", default="train/loss.json", help="where the loss log (JSON) goes; the plot goes "
                    "beside it as .png")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_has_bf16())
    print(f"matrix products in {'bf16 (autocast)' if bf16 else 'float32'}", flush=True)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    mix = None
    if args.mix:
        mix = {k: float(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}
        unknown = set(mix) - set(tasks.TASKS)
        if unknown:
            ap.error(f"--mix: unknown task(s) {sorted(unknown)}; tasks are {tasks.TASKS}")
    flat, offsets, plen, task_index, special = data.build(args.engine, args.out, args.examples, 1024, args.seed,
                                                          mix=mix, multi_turn=args.multi_turn,
                                                          tokenizer_from=args.init)
    eos, mask_id = special["<|endoftext|>"], special["<|mask|>"]
    vocab = -(-(max(special.values()) + 1) // 64) * 64
    init_layers = None
    if args.init:
        with open(os.path.join(args.init, "config.json")) as f:
            init_layers = json.load(f)["num_hidden_layers"]
    layers = args.layers or init_layers or 5
    if init_layers and layers < init_layers:
        ap.error(f"--layers {layers}: --init has {init_layers} layers; a model cannot be grown smaller")
    cfg = mdl.demo_config(vocab, mask_id, eos, layers)
    model = mdl.LLaDA2Moe(cfg)
    model.init_weights(args.seed)
    if args.init:
        missing, unexpected = model.load_state_dict(
            mdl.load_safetensors(os.path.join(args.init, "model.safetensors")), strict=layers == init_layers)
        stray = unexpected + [n for n in missing if int(n.split(".")[2]) < init_layers]
        if stray:
            raise SystemExit(f"--init {args.init}: tensors do not match the model: {stray[:5]}")
        if layers > init_layers:
            model.zero_residual_branches(init_layers)
            print(f"grown from {init_layers} to {layers} layers ({len(missing)} new tensors)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"data ready in {time.time() - t0:.0f} s; vocab {vocab}; {n_params / 1e6:.2f}M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    warmup = args.warmup

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        q = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * q)))

    sampler = Sampler(flat, offsets, plen, task_index, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    log, start, tokens = [], time.time(), 0
    drafted = [0, 0]  # MTF: predictions written, wrong ones among them (since the last log line)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        blk = int(rng.choice(BLOCK_CHOICES[0], p=BLOCK_CHOICES[1]))
        batches = []
        for group, k in [("short", args.short_rows), ("long", args.long_rows)]:
            if k == 0 or len(sampler.groups[group]) == 0:
                continue
            rows = [layout(ids, p, blk, eos, mask_id, rng, sampler.pool, args.own_subs)
                    for ids, p in sampler.take(group, k)]
            batch = collate(rows, eos, args.pack if group == "short" else 0)
            if group == "short":
                batch, n_written, n_wrong = self_draft(model, batch, mask_id, rng, args.mtf, bf16)
                drafted[0] += n_written
                drafted[1] += n_wrong
            batches.append(batch)
        total_w = sum(float(b[4].sum()) for b in batches)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        loads = [torch.zeros(cfg["num_experts"]) for _ in model.moe_layers()]
        for ids, pos, bias, labels, weights, valid in batches:
            rows = weights > 0
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids, pos, bias, rows, valid)
            ce = F.cross_entropy(logits, labels[rows], reduction="none")
            loss = (ce * weights[rows]).sum() / total_w
            loss.backward()
            loss_sum += float(loss)
            tokens += int(valid.sum())
            for acc, m in zip(loads, model.moe_layers()):
                acc += m.load.float()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # expert-bias balancing (zero-mean sign update)
            for acc, m in zip(loads, model.moe_layers()):
                sgn = torch.sign(acc.mean() - acc)
                m.gate.expert_bias += args.bias_rate * (sgn - sgn.mean())
        if step % 20 == 0 or step == args.steps - 1:
            el = time.time() - start
            imb = max(float(a.max() / a.mean()) for a in loads)
            rec = {"step": step, "loss": loss_sum, "lr": lr_at(step), "block": blk, "elapsed": el,
                   "tokens_per_s": tokens / el, "max_expert_load_ratio": imb}
            if args.mtf > 0:
                rec["mtf_drafted"], rec["mtf_wrong"] = drafted
                drafted[:] = [0, 0]
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if (step + 1) % args.save_every == 0 or step == args.steps - 1:
            export(model, cfg, args.out)
            with open(args.log, "w") as f:
                json.dump(log, f)
    export(model, cfg, args.out)
    with open(args.log, "w") as f:
        json.dump(log, f)
    plot(log, os.path.splitext(args.log)[0] + ".png")
    print(f"done in {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
