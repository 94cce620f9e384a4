"""LLaDA2MoeModelLM in PyTorch: the architecture of the published LLaDA2.0/2.1 checkpoints (a dense first
layer, then MoE layers with sigmoid grouped routing, expert bias and a shared expert; GQA with QK RMSNorm;
partial rotate-half RoPE; untied LM head), with the same parameter names, read and written as safetensors.
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def demo_config(vocab_size, mask_id, eos_id, layers=5):
    return {
        "architectures": ["LLaDA2MoeModelLM"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
                     "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
                     "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM"},
        "embedding_dropout": 0.0,
        "first_k_dense_replace": 1,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 256,
        "initializer_range": 0.02,
        "intermediate_size": 768,
        "max_position_embeddings": 4096,
        "max_window_layers": layers,
        "model_type": "llada2_moe",
        "moe_intermediate_size": 128,
        "moe_router_enable_expert_bias": True,
        "n_group": 4,
        "norm_head": False,
        "norm_softmax": False,
        "norm_topk_prob": True,
        "num_attention_heads": 4,
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "num_hidden_layers": layers,
        "num_key_value_heads": 2,
        "num_shared_experts": 1,
        "output_dropout": 0.0,
        "output_router_logits": False,
        "pad_token_id": eos_id,
        "eos_token_id": eos_id,
        "mask_token_id": mask_id,
        "partial_rotary_factor": 0.5,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "rotary_dim": 32,
        "routed_scaling_factor": 2.5,
        "router_dtype": "fp32",
        "score_function": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 2,
        "torch_dtype": "bfloat16",
        "use_bias": False,
        "use_cache": False,
        "use_qk_norm": True,
        "use_qkv_bias": False,
        "use_rmsnorm": True,
        "use_sliding_window": False,
        "using_split_qkv_in_self_attention": False,
        "vocab_size": vocab_size,
    }


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * x).to(dt)


class Mlp(nn.Module):
    def __init__(self, h, inter):
        super().__init__()
        self.gate_proj = nn.Linear(h, inter, bias=False)
        self.up_proj = nn.Linear(h, inter, bias=False)
        self.down_proj = nn.Linear(inter, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.hq, self.hkv, self.d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        h = c["hidden_size"]
        self.query_key_value = nn.Linear(h, (self.hq + 2 * self.hkv) * self.d, bias=False)
        self.dense = nn.Linear(self.hq * self.d, h, bias=False)
        self.query_layernorm = RMSNorm(self.d, c["rms_norm_eps"])
        self.key_layernorm = RMSNorm(self.d, c["rms_norm_eps"])

    def forward(self, x, cos, sin, bias):
        b, n, _ = x.shape
        qkv = self.query_key_value(x).view(b, n, self.hq + 2 * self.hkv, self.d)
        q, k, v = qkv.split([self.hq, self.hkv, self.hkv], dim=2)
        q = self.query_layernorm(q).transpose(1, 2)
        k = self.key_layernorm(k).transpose(1, 2)
        v = v.transpose(1, 2)
        r = self.c["rotary_dim"]
        q = torch.cat((q[..., :r] * cos + rotate_half(q[..., :r]) * sin, q[..., r:]), dim=-1)
        k = torch.cat((k[..., :r] * cos + rotate_half(k[..., :r]) * sin, k[..., r:]), dim=-1)
        g = self.hq // self.hkv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d)
        p = torch.softmax(scores.float() + bias, dim=-1).to(v.dtype)
        out = torch.matmul(p, v).transpose(1, 2).reshape(b, n, self.hq * self.d)
        return self.dense(out)


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.weight = nn.Parameter(torch.empty(c["num_experts"], c["hidden_size"]))
        self.register_buffer("expert_bias", torch.zeros(c["num_experts"]))

    def forward(self, x):
        """x [N, H] -> chosen experts [N, k] and their weights [N, k] (float32)."""
        c = self.c
        e, k, ng, kg = c["num_experts"], c["num_experts_per_tok"], c["n_group"], c["topk_group"]
        with torch.autocast("cpu", enabled=False):
            s = torch.sigmoid(F.linear(x.float(), self.weight.float()))
        r = s.detach() + self.expert_bias
        group = r.view(-1, ng, e // ng).topk(2, dim=-1).values.sum(-1)
        keep = torch.zeros_like(group).scatter_(1, group.topk(kg, dim=-1).indices, 1.0)
        keep = keep.unsqueeze(-1).expand(-1, ng, e // ng).reshape(-1, e)
        chosen = r.masked_fill(keep == 0, float("-inf")).topk(k, dim=-1).indices
        w = s.gather(1, chosen)
        if k > 1:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return chosen, w * c["routed_scaling_factor"]


class Moe(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.gate = Gate(c)
        self.experts = nn.ModuleList([Mlp(c["hidden_size"], c["moe_intermediate_size"])
                                      for _ in range(c["num_experts"])])
        self.shared_experts = Mlp(c["hidden_size"], c["moe_intermediate_size"] * c["num_shared_experts"])
        self.load = None  # tokens per expert in the last forward (for the bias update)

    def forward(self, x, valid=None):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        chosen, w = self.gate(x)
        counted = chosen if valid is None else chosen[valid.reshape(-1)]
        self.load = torch.bincount(counted.flatten(), minlength=self.c["num_experts"])
        # One gather of every (token, expert) slot sorted by expert, each expert on its contiguous rows,
        # one scatter back: the backward pass then has one index operation instead of one per expert.
        flat = chosen.flatten()
        order = torch.argsort(flat, stable=True)
        token = order // chosen.shape[1]
        counts = torch.bincount(flat, minlength=self.c["num_experts"]).tolist()
        parts = [self.experts[e](rows) for e, rows in enumerate(torch.split(x[token], counts)) if counts[e]]
        y = torch.cat(parts).float() * w.flatten()[order].unsqueeze(-1)
        out = torch.zeros(x.shape[0], x.shape[1], dtype=torch.float32).index_add_(0, token, y)
        out = out + self.shared_experts(x).float()
        return out.to(x.dtype).view(shape)


class Layer(nn.Module):
    def __init__(self, c, moe):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.attention = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = Moe(c) if moe else Mlp(c["hidden_size"], c["intermediate_size"])

    def forward(self, x, cos, sin, bias, valid=None):
        x = x + self.attention(self.input_layernorm(x), cos, sin, bias)
        h = self.post_attention_layernorm(x)
        return x + (self.mlp(h, valid) if isinstance(self.mlp, Moe) else self.mlp(h))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c, i >= c["first_k_dense_replace"]) for i in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class LLaDA2Moe(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        r = c["rotary_dim"]
        self.inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, r, 2, dtype=torch.float32) / r))

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std = self.c["initializer_range"]
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.data.fill_(1.0)
            else:
                p.data.normal_(0.0, std, generator=g)

    def zero_residual_branches(self, first):
        """Layers from `first` on add nothing to the residual stream (attention output and every down
        projection zero), so a model grown from a shallower one computes the same function at the start."""
        for layer in self.model.layers[first:]:
            layer.attention.dense.weight.data.zero_()
            mlps = list(layer.mlp.experts) + [layer.mlp.shared_experts] if isinstance(layer.mlp, Moe) else [layer.mlp]
            for m in mlps:
                m.down_proj.weight.data.zero_()

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if isinstance(l.mlp, Moe)]

    def forward(self, ids, pos, bias, head_rows=None, valid=None):
        """ids, pos [B, L] int64; bias [B, 1, L, L] additive float32 attention mask; head_rows: a boolean
        [B, L] selecting the rows whose logits are returned (all by default); valid: a boolean [B, L] of the
        real (not padding) positions, the only ones counted in the experts' loads. Returns float32 logits."""
        x = self.model.word_embeddings(ids)
        freqs = pos.float().unsqueeze(-1) * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)
        for layer in self.model.layers:
            x = layer(x, cos, sin, bias, valid)
        x = x[head_rows] if head_rows is not None else x
        return self.lm_head(self.model.norm(x)).float()


# ---- safetensors (bf16 on disk, as the published checkpoints) ----

def save_safetensors(model, path):
    tensors = {}
    for name, t in model.state_dict().items():
        if name.endswith("expert_bias"):
            tensors[name] = ("F32", t.float().contiguous().numpy().tobytes(), list(t.shape))
        else:
            raw = t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
            tensors[name] = ("BF16", raw, list(t.shape))
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        dt, raw, shape = tensors[name]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        if meta["dtype"] == "BF16":
            raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            t = torch.from_numpy(raw.view(np.float32).copy())
        elif meta["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy())
        else:
            raise ValueError(f"{name}: unsupported dtype {meta['dtype']}")
        out[name] = t.view(meta["shape"])
    return out


def load_model(model_dir):
    with open(f"{model_dir}/config.json") as f:
        c = json.load(f)
    m = LLaDA2Moe(c)
    m.load_state_dict(load_safetensors(f"{model_dir}/model.safetensors"))
    return m
