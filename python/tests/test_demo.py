"""The README's snippet on the default model, and the input and output forms of a call."""

import gzip
import json
import os

import numpy as np
import pytest

import llada2
from conftest import DATA, DEMO, read_json

ARGS = dict(gen_length=256, block_length=32, num_inference_steps=32, threshold=0.7, editing_threshold=0.5,
            max_post_steps=16)


def test_readme_snippet(demo):
    out = demo(prompt="What is 4821 + 739?", output_type="text", **ARGS)
    assert isinstance(out, llada2.LLaDA2PipelineOutput)
    assert "5560" in out.texts[0]
    assert out.sequences.shape == (1, 256) and out.sequences.dtype == np.int64
    assert out.stats["forwards"] > 0 and out.stats["generated_tokens"] > 0
    assert list(out) == ["sequences", "texts"]  # diffusers' outputs are ordered dicts: iteration gives keys
    assert out[1] == out["texts"] == out.texts and out.to_tuple()[0] is out.sequences


def test_texts_are_decoded_sequences(demo):
    out = demo(prompt="What is 52 * 17?", **ARGS)
    row = out.sequences[0].tolist()
    eos = demo.tokenizer.eos_token_id
    cut = row[:row.index(eos) + 1] if eos in row else row
    assert out.texts[0] == demo.tokenizer.decode(cut, skip_special_tokens=True)


def test_messages_equal_the_rendered_prompt(demo):
    msgs = [{"role": "user", "content": "Sort these numbers: 42, 7, 913"}]
    a = demo(messages=msgs, **ARGS)
    ids = demo.tokenizer.apply_chat_template(msgs, add_generation_prompt=True)
    b = demo(input_ids=np.array(ids, np.int64), **ARGS)
    assert a.sequences.tolist() == b.sequences.tolist() and a.texts == b.texts
    c = demo(prompt=msgs[0]["content"], **ARGS)  # a str prompt is wrapped as one user message
    assert c.sequences.tolist() == a.sequences.tolist()


def test_batch_of_text_prompts_is_padded_by_the_tokenizer(demo):
    """A list of prompts without the chat template is tokenized with padding (the tokenizer's side and pad
    token) and a mask of the real tokens: the same call as the padded ids and mask given directly. (The
    golden cases with padding check what padding does to the result, token for token.)"""
    tok = demo.tokenizer
    prompts = ["What is 12 + 5?", "What is 4821 + 739? Tell me."]
    enc = [tok.encode(p) for p in prompts]
    P = max(len(r) for r in enc)
    pad = tok.pad_token_id
    ids = np.array([r + [pad] * (P - len(r)) for r in enc], np.int64)  # right: the default padding side
    mask = np.array([[1] * len(r) + [0] * (P - len(r)) for r in enc], np.int64)
    out = demo(prompt=prompts, use_chat_template=False, **ARGS)
    ref = demo(input_ids=ids, attention_mask=mask, **ARGS)
    assert out.sequences.shape == (2, 256) and len(out.texts) == 2
    assert out.sequences.tolist() == ref.sequences.tolist() and out.texts == ref.texts


def test_seq_output_and_tuple(demo):
    seq, texts = demo(prompt="What is 2 + 2?", output_type="seq", return_dict=False, **ARGS)
    assert texts is None and isinstance(seq, np.ndarray) and seq.shape == (1, 256)


def test_one_dimensional_ids_and_lists(demo):
    ids = demo.tokenizer.apply_chat_template([{"role": "user", "content": "What is 7 + 8?"}],
                                             add_generation_prompt=True)
    a = demo(input_ids=np.array(ids, np.int64), **ARGS)
    b = demo(input_ids=[ids], **ARGS)
    assert a.sequences.tolist() == b.sequences.tolist()


def test_torch_inputs_give_torch_outputs(demo):
    torch = pytest.importorskip("torch")
    ids = demo.tokenizer.apply_chat_template([{"role": "user", "content": "What is 7 + 8?"}],
                                             add_generation_prompt=True)
    out = demo(input_ids=torch.tensor([ids]), **ARGS)
    assert isinstance(out.sequences, torch.Tensor) and out.sequences.dtype == torch.int64
    ref = demo(input_ids=np.array([ids], np.int64), **ARGS)
    assert out.sequences.tolist() == ref.sequences.tolist()
    with pytest.raises(ValueError, match=r"got dtype=torch.int32"):
        demo(input_ids=torch.tensor([ids], dtype=torch.int32), **ARGS)
    g = torch.Generator().manual_seed(1234)
    s1 = demo(prompt="What is 7 + 8?", temperature=0.8, generator=g, **ARGS)
    s2 = demo(prompt="What is 7 + 8?", temperature=0.8, generator=1234, **ARGS)
    assert s1.sequences.tolist() == s2.sequences.tolist()


def test_seeded_sampling_is_reproducible(demo):
    kw = dict(prompt="What is 61 * 43?", temperature=1.0, top_k=5, **ARGS)
    a, b = demo(generator=7, **kw), demo(generator=7, **kw)
    assert a.sequences.tolist() == b.sequences.tolist()


def test_callback_alias_names(demo):
    seen = {}

    def cb(p, step, timestep, k):
        seen.update({n: v for n, v in k.items()})
        return {}

    demo(prompt="What is 3 + 4?", callback_on_step_end=cb,
         callback_on_step_end_tensor_inputs=["block_x", "x0", "x0_p", "confidence", "sampled_tokens",
                                             "sampled_probs", "transfer_index", "editing_transfer_index",
                                             "active_block"], **ARGS)
    assert (seen["x0"] == seen["sampled_tokens"]).all()
    assert np.array_equal(seen["x0_p"], seen["sampled_probs"]) and seen["x0_p"].dtype == np.float32
    assert seen["active_block"].dtype == np.bool_ and seen["block_x"].shape[1] % 32 == 0


def test_pipeline_callback_object(demo):
    class Recorder:  # diffusers' PipelineCallback protocol: tensor_inputs + __call__
        tensor_inputs = ["sampled_probs"]

        def __init__(self):
            self.keys = set()

        def __call__(self, pipe, step, timestep, kwargs):
            self.keys |= set(kwargs)
            return kwargs

    r = Recorder()
    demo(prompt="What is 3 + 4?", callback_on_step_end=r, **ARGS)
    assert r.keys == {"sampled_probs"}


def test_tokenizer_matches_reference():
    """encode/decode against Hugging Face's outputs for a LLaDA2-style tokenizer (every 10th case)."""
    tok = llada2.Tokenizer.from_pretrained(os.path.join(DATA, "tok", "ling-synth"))
    with gzip.open(os.path.join(DATA, "tok", "golden", "ling-synth.public.jsonl.gz"), "rt", encoding="utf-8") as f:
        cases = [json.loads(line) for line in f][::10]
    assert len(cases) > 100
    for c in cases:
        assert tok.encode(c["text"]) == c["ids"], c["id"]
        assert tok.encode(c["text"], add_special_tokens=False) == c["ids_no_special"], c["id"]
        assert tok.decode(c["ids"]) == c["decoded"], c["id"]
        assert tok.decode(c["ids"], skip_special_tokens=True) == c["decoded_skip_special"], c["id"]


def test_default_model_tokenizer(demo):
    tok = demo.tokenizer
    ids = tok.encode("What is 4821 + 739?", add_special_tokens=False)
    assert tok.decode(ids) == "What is 4821 + 739?"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert "<role>HUMAN</role>hi<|role_end|>" in text and text.endswith("<role>ASSISTANT</role>")
    assert tok.mask_token_id == demo.mask_token_id is not None


def test_model_forward_shapes(demo):
    ids = np.array(demo.tokenizer.encode("What is 1 + 1?", False), np.int64)
    logits = demo.model.forward(ids)
    assert logits.shape == (1, len(ids), demo.model.vocab_size) and logits.dtype == np.float32
    exact = demo.model.forward(ids, exact=True)
    assert np.max(np.abs(exact - logits)) < 0.5  # bf16 activations move logits a little, not a lot


def test_version_and_threads():
    assert llada2.version().startswith("llada2 ")
    n = llada2.threads()
    llada2.set_threads(1)
    assert llada2.threads() == 1
    llada2.set_threads(n)
    with pytest.raises(ValueError):
        llada2.set_threads(0)


def test_readme_python_section_runs(capsys, monkeypatch):
    """The first Python block of README.md's Python section, run as it is from the repository root."""
    from conftest import SOURCE
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("\n## Python\n"):]
    code = section[section.index("```python\n") + 10:]
    code = code[:code.index("```")]
    monkeypatch.chdir(SOURCE)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "5560" in printed
