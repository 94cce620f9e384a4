#!/usr/bin/python3
"""Speed of a plain PyTorch implementation of the LLaDA2 pipeline, for comparison with `llada2 bench`.

It follows the reference system of SPEC Part B as a Python user runs it: every refinement step is a
forward pass over the whole window in bf16 (no KV cache), the MoE layer loops over the experts that
received tokens (tokens sorted by expert), the LM head runs over every window position and its
output is cast to float32, and the scheduler takes softmax/argmax over the block's logits. Greedy
decoding, block_causal attention, threshold commit rule with the linear step schedule.

Needs Debian's python3-torch (bench only; not used by the build or the tests):
    apt-get install -y python3-torch
    /usr/bin/python3 bench/python_baseline.py --model /tmp/mini-L2 --gen-length 256

Prints one line per block and a summary (forwards, seconds per forward, generated tokens/s).
Long generations take long here (gen_length 1024: ~35 minutes on 2 cores): `--sample-every N` runs
the forwards of every N-th block only (the others get random ids, as cost depends on the window's
length, not its tokens), fits seconds per forward against the window length over the blocks run,
and prints the whole run's time that the fit gives beside what was measured.
Router logits are computed with a bf16 matmul cast to float32: Debian's torch has no optimised
float32 GEMM (2-3 GFLOP/s), which would otherwise dominate and overstate the baseline's cost.
"""
import argparse
import json
import math
import mmap
import struct
import sys
import time

import torch


def load_safetensors(path):
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = struct.unpack("<Q", mm[:8])[0]
    header = json.loads(mm[8 : 8 + n])
    base = 8 + n
    dtypes = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(mm[base + a : base + b]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out


class Model:
    def __init__(self, folder):
        self.cfg = json.load(open(folder + "/config.json"))
        w = load_safetensors(folder + "/model.safetensors")
        self.dtype = torch.bfloat16
        self.w = {k: (v if k.endswith("expert_bias") else v.to(self.dtype)) for k, v in w.items()}
        c = self.cfg
        self.D = c["head_dim"]
        self.R = int(self.D * c.get("partial_rotary_factor", 1.0))
        self.inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, self.R, 2, dtype=torch.float32) / self.R))

    def rms(self, x, weight):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"])
        return weight * xf.to(x.dtype)

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def mlp(self, p, x):
        w = self.w
        g = x @ w[p + "gate_proj.weight"].T
        u = x @ w[p + "up_proj.weight"].T
        return (torch.nn.functional.silu(g) * u) @ w[p + "down_proj.weight"].T

    def moe(self, p, x):
        c, w = self.cfg, self.w
        E, TK = c["num_experts"], c["num_experts_per_tok"]
        z = (x @ w[p + "gate.weight"].T).float()  # see the module docstring
        s = torch.sigmoid(z)
        r = s + w[p + "gate.expert_bias"].float()
        G = c["n_group"]
        gs = r.view(-1, G, E // G).topk(2, dim=-1)[0].sum(-1)
        keep = gs.topk(c["topk_group"], dim=-1)[1]
        gmask = torch.zeros_like(gs).scatter_(1, keep, 1.0)
        emask = gmask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
        r = r.masked_fill(emask == 0, float("-inf"))
        idx = r.topk(TK, dim=-1)[1]
        wt = s.gather(1, idx)
        wt = wt / (wt.sum(-1, keepdim=True) + 1e-20) * c["routed_scaling_factor"]
        # Tokens sorted by expert; one call per expert that received tokens.
        counts = torch.bincount(idx.view(-1), minlength=E).tolist()
        order = idx.view(-1).argsort()
        tokens = x[order // TK]
        outs, start = [], 0
        for e, cnt in enumerate(counts):
            if cnt == 0:
                continue
            outs.append(self.mlp(p + f"experts.{e}.", tokens[start : start + cnt]))
            start += cnt
        cat = torch.cat(outs, 0)
        y = torch.empty_like(cat)
        y[order] = cat
        routed = (y.view(-1, TK, x.shape[-1]).float() * wt.unsqueeze(-1)).sum(1).to(x.dtype)
        return routed + self.mlp(p + "shared_experts.", x)

    def forward(self, ids, mask4d):
        c, w, D, R = self.cfg, self.w, self.D, self.R
        L = ids.shape[0]
        Hq, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        h = w["model.word_embeddings.weight"][ids]
        f = torch.arange(L, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            a = self.rms(h, w[p + "input_layernorm.weight"])
            qkv = (a @ w[p + "attention.query_key_value.weight"].T).view(L, Hq + 2 * Hkv, D).transpose(0, 1)
            q, k, v = qkv[:Hq], qkv[Hq : Hq + Hkv], qkv[Hq + Hkv :]
            q = self.rms(q, w[p + "attention.query_layernorm.weight"])
            k = self.rms(k, w[p + "attention.key_layernorm.weight"])
            q = torch.cat((q[..., :R] * cos + self.rotate_half(q[..., :R]) * sin, q[..., R:]), -1)
            k = torch.cat((k[..., :R] * cos + self.rotate_half(k[..., :R]) * sin, k[..., R:]), -1)
            k = k.repeat_interleave(Hq // Hkv, 0)
            v = v.repeat_interleave(Hq // Hkv, 0)
            sc = (q @ k.transpose(1, 2)) * (D**-0.5) + mask4d
            pr = torch.softmax(sc.float(), -1).to(self.dtype)
            ctx = (pr @ v).transpose(0, 1).reshape(L, Hq * D)
            h = h + ctx @ w[p + "attention.dense.weight"].T
            m = self.rms(h, w[p + "post_attention_layernorm.weight"])
            if l < c["first_k_dense_replace"]:
                h = h + self.mlp(p + "mlp.", m)
            else:
                h = h + self.moe(p + "mlp.", m)
        h = self.rms(h, w["model.norm.weight"])
        return (h @ w["lm_head.weight"].T).float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-length", type=int, default=64)
    ap.add_argument("--gen-length", type=int, default=256)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-every", type=int, default=1, help="run every N-th block only and estimate the rest "
                    "from a linear fit of seconds per forward against the window (default 1: run every block)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Model(a.model)
    c = model.cfg
    K, P, G = a.block_length, a.prompt_length, a.gen_length
    mask_id = c.get("mask_token_id", 156895)  # LLaDA2's mask id; config.json does not carry it
    T = K * math.ceil((P + G) / K)
    x = torch.full((T,), mask_id, dtype=torch.long)
    x[:P] = torch.randint(0, 150000, (P,))
    S = min(a.steps, K)
    base, rem = K // S, K % S
    schedule = [base + (1 if i < rem else 0) for i in range(S)]
    pos = torch.arange(T)
    allowed = (pos[None, :] // K) <= (pos[:, None] // K)
    mask_full = torch.zeros(T, T, dtype=model.dtype).masked_fill(~allowed, float("-inf"))
    forwards, t0 = 0, time.time()
    sampled = []  # (window, forwards, seconds) of the blocks run
    skipped = []  # windows of the blocks not run
    first = P // K
    with torch.inference_mode():
        for n in range(P // K, T // K):
            W = (n + 1) * K
            if (n - first) % a.sample_every != a.sample_every // 2 and a.sample_every > 1:
                x[W - K : W] = torch.randint(0, 150000, (K,))
                skipped.append(W)
                continue
            tb, step = time.time(), 0
            while True:
                blk = x[W - K : W]
                masked = blk == mask_id
                if not bool(masked.any()) or step >= S:
                    break
                logits = model.forward(x[:W], mask_full[:W, :W])[W - K :]
                forwards += 1
                probs = torch.softmax(logits, -1)
                conf, tok = probs.max(-1)
                conf = torch.where(masked, conf, torch.full_like(conf, float("-inf")))
                need = schedule[min(step, S - 1)]
                high = masked & (conf > a.threshold)
                commit = high if int(high.sum()) >= need else torch.zeros_like(masked)
                if not bool(commit.any()):
                    commit[conf.topk(min(need, int(masked.sum())))[1]] = True
                blk[commit] = tok[commit]
                step += 1
            sampled.append((W, step, time.time() - tb))
            print(f"block {n}: window {W}, {step} forwards, {time.time() - tb:.2f} s", file=sys.stderr, flush=True)
    dt = time.time() - t0
    gen = T - P
    if skipped:
        # seconds per forward = c0 + c1 * window, least squares over the forwards of the blocks run
        pts = [(w, s / f) for w, f, s in sampled for _ in range(f)]
        mw = sum(w for w, _ in pts) / len(pts)
        mt = sum(t for _, t in pts) / len(pts)
        var = sum((w - mw) ** 2 for w, _ in pts)
        c1 = sum((w - mw) * (t - mt) for w, t in pts) / var if var > 0 else 0.0
        c0 = mt - c1 * mw
        per_block = sum(f for _, f, _ in sampled) / len(sampled)
        est = sum(s for _, _, s in sampled) + sum(per_block * (c0 + c1 * w) for w in skipped)
        print(f"sampled {len(sampled)} of {len(sampled) + len(skipped)} blocks: {forwards} forwards in {dt:.1f} s; "
              f"seconds per forward ~ {c0:.3f} + {c1 * 1000:.3f} ms x window; whole run estimated "
              f"{per_block * (len(sampled) + len(skipped)):.0f} forwards, {gen} tokens in {est:.1f} s = "
              f"{gen / est:.2f} tokens/s")
        return
    print(f"forwards {forwards}, {dt / max(forwards, 1):.3f} s per forward, {gen} tokens in {dt:.1f} s = "
          f"{gen / dt:.2f} tokens/s")


if __name__ == "__main__":
    main()
