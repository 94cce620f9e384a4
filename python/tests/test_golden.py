"""Every golden pipeline case through the Python call, token for token (SPEC A6's exact mode), with the
callback tensors of every step checked against the golden traces."""

import os

import numpy as np
import pytest

import llada2
from conftest import GOLDEN, call_kwargs, golden_cases, golden_pipeline, read_json

PARITY = golden_cases("parity")


def test_eighty_parity_cases():
    assert len(PARITY) == 80


@pytest.mark.parametrize("case", PARITY, ids=[c["path"] for c in PARITY])
def test_reproduces_golden(case):
    cj = read_json(os.path.join(GOLDEN, case["path"], "case.json"))
    pipe = golden_pipeline(cj)
    kw = call_kwargs(cj)
    K = kw.get("block_length") or cj["scheduler_config"]["block_length"]
    steps = []

    def record(p, step, timestep, t):
        assert p is pipe
        bx = t["block_x"]
        assert bx.dtype == np.int64 and t["transfer_index"].dtype == np.bool_
        W = bx.shape[1]
        tr, ed = t["transfer_index"], t["editing_transfer_index"]
        steps.append({
            "global_step": step, "block": W // K - 1, "timestep": timestep,
            "transfer": [np.nonzero(r)[0].tolist() for r in tr],
            "edit": [np.nonzero(r)[0].tolist() for r in ed],
            "sampled_at_commits": [t["sampled_tokens"][b][tr[b] | ed[b]].tolist() for b in range(bx.shape[0])],
            "block_after": bx[:, W - K:].tolist(),
        })
        return {}

    out = pipe(**kw, attention=case["attention"], exact=True, callback_on_step_end=record,
               callback_on_step_end_tensor_inputs=["block_x", "transfer_index", "editing_transfer_index",
                                                   "sampled_tokens"])
    expected = cj["expected"]["sequences"]
    assert isinstance(out.sequences, np.ndarray) and out.sequences.dtype == np.int64
    assert out.sequences.tolist() == expected
    assert out.texts is None
    assert out.stats["forwards"] == cj["expected"]["num_model_calls"]
    assert len(steps) == len(cj["steps"])
    for got, want in zip(steps, cj["steps"]):
        for key in got:
            assert got[key] == want[key], (got["global_step"], key)
    # Without a callback (the LM head runs on the needed cells only), and as a tuple.
    seq, texts = pipe(**dict(kw, return_dict=False), attention=case["attention"], exact=True)
    assert seq.tolist() == expected and texts is None


def test_returned_block_replaces_the_window():
    """A callback that returns the block it was given changes nothing; one that writes a token into
    every undecided cell of the active block ends the block (no masks left) and, with editing off, the
    written tokens are the output."""
    cj = read_json(os.path.join(GOLDEN, "v0.40.0+blockcausal", "a_b4_s3", "case.json"))
    pipe = golden_pipeline(cj)
    kw = call_kwargs(cj)
    base = pipe(**kw, attention="block_causal", exact=True).sequences
    same = pipe(**kw, attention="block_causal", exact=True,
                callback_on_step_end=lambda p, s, t, k: {"block_x": k["block_x"]}).sequences
    assert same.tolist() == base.tolist()

    mask_id = kw["mask_token_id"]
    token = 7

    def fill(p, step, timestep, k):
        bx = k["block_x"].copy()
        bx[bx == mask_id] = token
        return {"block_x": bx}

    kw.update(editing_threshold=None, eos_early_stop=False)
    filled = pipe(**kw, attention="block_causal", exact=True, callback_on_step_end=fill)
    base_noedit = pipe(**kw, attention="block_causal", exact=True)
    seq = filled.sequences
    assert (seq != mask_id).all()
    assert (seq == token).any() and seq.tolist() != base_noedit.sequences.tolist()
    # Each block took two forwards: the step whose callback filled it, then the one post step that runs
    # whenever the masks run out before the schedule does (editing off).
    n_blocks = -(-(kw["input_ids"].shape[-1] + kw["gen_length"]) // kw["block_length"]) - \
        kw["input_ids"].shape[-1] // kw["block_length"]
    assert filled.stats["forwards"] == 2 * n_blocks


def test_forward_logits_match_golden():
    """Model.forward: the float32 reference logits within 1e-4 (relative to max(1, |ref|)) in exact mode."""
    from conftest import read_safetensors
    for name, file, prefix, attention in [("tiny-a-f32", "forward_blockcausal.safetensors", "blockcausal", "block_causal"),
                                          ("tiny-b-f32", "forward.safetensors", "ones", "bidirectional"),
                                          ("tiny-b-bf16", "forward_f32compute.safetensors", "blockcausal",
                                           "block_causal")]:
        t = read_safetensors(os.path.join(GOLDEN, "models", name, file))
        model = llada2.Model.load(os.path.join(GOLDEN, "models", name))
        ids, mask = t[prefix + ".input_ids"], t[prefix + ".attention_mask"]
        K = int(t[prefix + ".block_length"].reshape(-1)[0]) if attention == "block_causal" else ids.shape[-1]
        logits = model.forward(ids, mask, attention=attention, block_length=K, exact=True)
        ref = t[prefix + ".logits"].reshape(logits.shape)
        assert logits.dtype == np.float32 and logits.shape == (1, ids.shape[-1], model.vocab_size)
        err = np.max(np.abs(logits - ref) / np.maximum(1.0, np.abs(ref)))
        assert err <= 1e-4, (name, err)
