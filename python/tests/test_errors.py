"""Every invalid argument raises the exception diffusers raises for it (ValueError with the same gist;
TypeError for a value of the wrong type), before any forward runs where diffusers checks first."""

import os

import numpy as np
import pytest

import llada2
from conftest import GOLDEN

TINY = os.path.join(GOLDEN, "models", "tiny-a-f32")  # no tokenizer; mask id 319


@pytest.fixture(scope="module")
def tiny():
    return llada2.LLaDA2Pipeline.from_pretrained(TINY)


IDS = np.array([[5, 6, 7, 8]], dtype=np.int64)
OK = dict(input_ids=IDS, gen_length=8, block_length=4, mask_token_id=319, output_type="seq")

VALUE_ERRORS = [
    (dict(input_ids=None), "Provide one of `prompt`, `messages`, or `input_ids`."),
    (dict(input_ids=np.zeros((1, 2, 3), np.int64)), "`input_ids` must be 1D or 2D, got shape"),
    (dict(input_ids=IDS.astype(np.int32)), "`input_ids` must be int64 token IDs, got dtype=int32"),
    (dict(input_ids=IDS.astype(np.float32)), "`input_ids` must be int64 token IDs, got dtype=float32"),
    (dict(input_ids=None, prompt="hi"), "Tokenizer is required when `input_ids` is not provided."),
    (dict(gen_length=0), "`gen_length` must be > 0, got 0."),
    (dict(block_length=0), "`block_length` must be > 0, got 0."),
    (dict(num_inference_steps=-1), "`num_inference_steps` must be > 0, got -1."),
    (dict(minimal_topk=0), "`minimal_topk` must be > 0, got 0."),
    (dict(threshold=-0.1), "`threshold` must be in [0, 1] (or > 1 to force top-k commits)"),
    (dict(threshold=float("nan")), "`threshold` must be in [0, 1] (or > 1 to force top-k commits)"),
    (dict(sampling_method="beam"), "`sampling_method` must be one of {'auto', 'greedy', 'multinomial'}"),
    (dict(output_type="pt"), "`output_type` must be 'seq' or 'text'"),
    (dict(callback_on_step_end_tensor_inputs=["logits"]), "`callback_on_step_end_tensor_inputs` has to be in"),
    (dict(attention_mask=np.ones((1, 3), np.int64)), "`attention_mask` shape"),
    (dict(gen_length=1, minimal_topk=2), "`num_inference_steps` must be > 0"),
    (dict(temperature=-1.0), "`temperature` must be >= 0"),
    (dict(temperature=1.0, top_p=0.0), "`top_p` must be in (0, 1]"),
    (dict(mask_token_id=100000), "`mask_token_id` 100000 is outside the vocabulary"),
    (dict(input_ids=np.array([[5, 99999]], np.int64)), "`input_ids` contains 99999, outside the vocabulary"),
    (dict(attention="sideways"), "attention"),
    (dict(decoding="llada3"), "decoding"),
]


@pytest.mark.parametrize("kw,gist", VALUE_ERRORS, ids=[g[:40] for _, g in VALUE_ERRORS])
def test_value_errors(tiny, kw, gist):
    with pytest.raises(ValueError) as e:
        tiny(**dict(OK, **kw))
    assert gist in str(e.value)


def test_prompt_and_messages(demo):
    with pytest.raises(ValueError, match="Provide either `prompt` or `messages`, not both."):
        demo(prompt="hi", messages=[{"role": "user", "content": "hi"}], gen_length=8)
    with pytest.raises(ValueError, match="`prompt` must be a string when `use_chat_template=True`."):
        demo(prompt=["a", "b"], gen_length=8)


TYPE_ERRORS = [
    dict(gen_length="8"), dict(block_length=4.0), dict(num_inference_steps="32"), dict(threshold="high"),
    dict(temperature=None), dict(top_k=1.5), dict(max_post_steps=None), dict(prompt=5, input_ids=None),
    dict(generator="seed"), dict(sampling_method=1), dict(output_type=None), dict(input_ids="1 2 3"),
    dict(callback_on_step_end=42), dict(callback_on_step_end_tensor_inputs="block_x"), dict(eos_token_id=1.0),
    dict(messages=[{"role": "user", "content": object()}], input_ids=None),
]


@pytest.mark.parametrize("kw", TYPE_ERRORS, ids=[next(iter(k)) for k in TYPE_ERRORS])
def test_type_errors(tiny, kw):
    with pytest.raises(TypeError):
        tiny(**dict(OK, **kw))


def test_callback_must_return_a_dict(tiny):
    with pytest.raises(TypeError, match="must return a dict"):
        tiny(**OK, callback_on_step_end=lambda p, s, t, k: None)


def test_callback_exception_propagates(tiny):
    class Boom(Exception):
        pass

    def cb(p, s, t, k):
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        tiny(**OK, callback_on_step_end=cb)


def test_bad_block_x_shape(tiny):
    with pytest.raises(ValueError, match="callback returned `block_x` of shape"):
        tiny(**OK, callback_on_step_end=lambda p, s, t, k: {"block_x": np.zeros((1, 1), np.int64)})


def test_bad_checkpoint_paths(tmp_path):
    with pytest.raises(OSError):
        llada2.LLaDA2Pipeline.from_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="config.json"):
        llada2.Model.load(str(tmp_path))


def test_scheduler_checks_types():
    with pytest.raises(TypeError):
        llada2.BlockRefinementScheduler(block_length="32")
    s = llada2.BlockRefinementScheduler(block_length=8, editing_threshold=0.4)
    assert s.config.block_length == 8 and s.config["editing_threshold"] == 0.4


def test_model_forward_checks(tiny):
    m = tiny.model
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.forward(np.array([[1, 100000]]))
    with pytest.raises(ValueError, match="2-D"):
        m.forward(np.zeros((1, 2, 3), np.int64))
    with pytest.raises(ValueError, match="shape"):
        m.forward(np.array([[1, 2]]), attention_mask=np.array([[1, 1, 1]]))
