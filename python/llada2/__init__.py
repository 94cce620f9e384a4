"""LLaDA2 block-diffusion generation on the llada2.cpp engine, called like diffusers' LLaDA2Pipeline.

    import llada2

    pipe = llada2.LLaDA2Pipeline.from_pretrained("models/llada2-demo")
    out = pipe(prompt="What is 4821 + 739?", gen_length=256, block_length=32, num_inference_steps=32,
               threshold=0.7, editing_threshold=0.5, max_post_steps=16, output_type="text")
    print(out.texts[0])

`LLaDA2Pipeline.__call__` takes every keyword argument of diffusers' `LLaDA2Pipeline.__call__` with the
same names, defaults, checks and outputs, plus `attention=` ("block_causal" or "bidirectional"), `exact=`
(float32 compute whatever the weight dtype) and `decoding=` (the LLaDA2.1 or LLaDA2.2 rules). Generation
runs in C++ with the GIL released; Ctrl-C stops it within one step.

Lower-level access: `Model.load(path).forward(ids)` returns logits; `Tokenizer.from_pretrained(path)`
encodes, decodes and applies the chat template.
"""

from __future__ import annotations

import json
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

__all__ = ["BlockRefinementScheduler", "LLaDA2Pipeline", "LLaDA2PipelineOutput", "Model", "Tokenizer",
           "set_threads", "threads", "version"]


def version() -> str:
    """The engine's version, revision and kernel tier, e.g. "llada2 0.1.0 (abc1234), kernels: avx2"."""
    return _core.version()


def threads() -> int:
    """Worker threads of the engine (process-wide; default: the hardware concurrency or LLADA2_THREADS)."""
    return _core.threads()


def set_threads(n: int) -> None:
    """Sets the engine's worker threads for the whole process."""
    _core.set_threads(_int("threads", n))


# ---- argument checks: TypeError for a value of the wrong type (as diffusers' own checks fail on one) ----

def _checked(name: str, v: Any, kind: type, what: str) -> Any:
    if isinstance(v, bool) or not isinstance(v, kind):
        raise TypeError(f"`{name}` must be {what}, got {type(v).__name__}")
    return v


def _int(name: str, v: Any) -> int:
    return int(_checked(name, v, numbers.Integral, "an int"))


def _opt_int(name: str, v: Any) -> Optional[int]:
    return None if v is None else _int(name, v)


def _float(name: str, v: Any) -> float:
    return float(_checked(name, v, numbers.Real, "a float"))


def _opt_float(name: str, v: Any) -> Optional[float]:
    return None if v is None else _float(name, v)


def _json_number(x: Optional[float]) -> Any:
    """A float for the JSON call object. JSON has no infinities: +-inf become +-DBL_MAX, which every
    bound treats alike (a threshold above 1 commits by schedule only). NaN, which every check rejects,
    goes as a string, which the engine rejects as not a number."""
    if x is None or np.isfinite(x):
        return x
    return "nan" if np.isnan(x) else float(np.copysign(np.finfo(np.float64).max, x))


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def _ids_array(name: str, v: Any) -> Tuple[np.ndarray, str]:
    """A token-id tensor (torch.Tensor, NumPy array or nested lists) as a NumPy array and the dtype name
    the caller sees (checked by the engine: `input_ids` must be int64, as in diffusers)."""
    if _is_torch_tensor(v):
        torch = _torch()
        dtype = "int64" if v.dtype == torch.int64 else str(v.dtype)
        t = v.detach().cpu()
        arr = t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy()
        return arr, dtype
    if isinstance(v, np.ndarray):
        return v, "int64" if v.dtype == np.int64 else str(v.dtype)
    if isinstance(v, (list, tuple)):
        arr = np.asarray(v)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        return arr, "int64" if arr.dtype == np.int64 else str(arr.dtype)
    raise TypeError(f"`{name}` must be a torch.Tensor, a NumPy array or a list of token ids, got {type(v).__name__}")


def _block_array(v: Any) -> np.ndarray:
    if _is_torch_tensor(v):
        v = v.detach().cpu().numpy()
    arr = np.asarray(v)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"the `block_x` a callback returns must hold integer token ids, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _seed(generator: Any) -> Optional[int]:
    """`generator`: None, an int seed, or a torch.Generator (its initial seed seeds the engine's own
    generator: runs are reproducible in this engine, not bit-identical to torch's draws)."""
    if generator is None:
        return None
    if isinstance(generator, (list, tuple)):
        if len(generator) != 1:
            raise ValueError("`generator` must be one generator or seed; the engine draws a batch from one stream")
        generator = generator[0]
    if hasattr(generator, "initial_seed") and callable(generator.initial_seed):
        return int(generator.initial_seed()) & 0xFFFFFFFFFFFFFFFF
    if isinstance(generator, bool) or not isinstance(generator, numbers.Integral):
        raise TypeError(f"`generator` must be an int seed or a torch.Generator, got {type(generator).__name__}")
    return int(generator) & 0xFFFFFFFFFFFFFFFF


def _json(name: str, v: Any) -> str:
    try:
        return json.dumps(v)
    except (TypeError, ValueError) as e:
        raise TypeError(f"`{name}` must be JSON-serializable (lists, dicts, strings, numbers): {e}") from None


class _Config(dict):
    """A scheduler config: a dict whose keys are also attributes (`scheduler.config.block_length`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class BlockRefinementScheduler:
    """diffusers' BlockRefinementScheduler configuration: the defaults a call falls back to for
    `block_length`, `num_inference_steps` (when None), `threshold` and `editing_threshold` (when None)
    and `minimal_topk`. The commit and editing rules themselves run in the engine."""

    def __init__(self, block_length: int = 32, num_inference_steps: int = 32, threshold: float = 0.95,
                 editing_threshold: Optional[float] = None, minimal_topk: int = 1):
        self.config = _Config(block_length=_int("block_length", block_length),
                              num_inference_steps=_int("num_inference_steps", num_inference_steps),
                              threshold=_float("threshold", threshold),
                              editing_threshold=_opt_float("editing_threshold", editing_threshold),
                              minimal_topk=_int("minimal_topk", minimal_topk))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"BlockRefinementScheduler({args})"


class LLaDA2PipelineOutput:
    """What a call returns with `return_dict=True`: `sequences` ([batch, gen_length] int64: a NumPy array,
    or a torch.Tensor when `input_ids` was one) and `texts` (a list of str, or None for `output_type="seq"`
    or without a tokenizer). Indexing by position or name and `to_tuple()` work as on diffusers' outputs.
    `stats` (not a diffusers field): forwards, generated tokens, seconds, tokens per second and forward."""

    def __init__(self, sequences: Any, texts: Optional[List[str]], stats: Optional[Dict[str, float]] = None):
        self.sequences = sequences
        self.texts = texts
        self.stats = stats or {}

    def to_tuple(self) -> Tuple[Any, Optional[List[str]]]:
        return (self.sequences, self.texts)

    def keys(self) -> List[str]:
        return ["sequences", "texts"]

    def __getitem__(self, k: Union[int, str]) -> Any:
        if isinstance(k, str):
            if k not in ("sequences", "texts"):
                raise KeyError(k)
            return getattr(self, k)
        return self.to_tuple()[k]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        shape = tuple(getattr(self.sequences, "shape", ()))
        return f"LLaDA2PipelineOutput(sequences=<{shape}>, texts={self.texts!r})"


class Tokenizer:
    """The checkpoint's tokenizer (tokenizer.json + tokenizer_config.json), as Hugging Face tokenizers
    encodes and decodes, with its chat template."""

    def __init__(self, core: Any):
        self._core = core

    @classmethod
    def from_pretrained(cls, path: str) -> "Tokenizer":
        return cls(_core.Tokenizer.from_dir(str(path)))

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a str, got {type(text).__name__}")
        return self._core.encode(text, bool(add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if _is_torch_tensor(ids) or isinstance(ids, np.ndarray):
            ids = ids.tolist()
        return self._core.decode([_int("ids", i) for i in ids], bool(skip_special_tokens))

    def batch_decode(self, rows: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> List[str]:
        if _is_torch_tensor(rows) or isinstance(rows, np.ndarray):
            rows = rows.tolist()
        return [self.decode(r, skip_special_tokens) for r in rows]

    def apply_chat_template(self, messages: List[Dict[str, Any]], tools: Optional[List[Dict[str, Any]]] = None,
                            add_generation_prompt: bool = False, tokenize: bool = True) -> Union[str, List[int]]:
        """Renders a conversation with the chat template (and the tokenizer's special tokens); with
        `tokenize`, encodes it without adding special tokens, as transformers does."""
        text = self._core.render(_json("messages", messages), _json("tools", tools), bool(add_generation_prompt))
        return self._core.encode(text, False) if tokenize else text

    @property
    def chat_template(self) -> Optional[str]:
        return self._core.chat_template or None

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    eos_token_id = property(lambda self: self._core.eos_token_id, doc="the EOS id (None without one)")
    mask_token_id = property(lambda self: self._core.mask_token_id, doc="the mask id (None without one)")
    pad_token_id = property(lambda self: self._core.pad_token_id, doc="the padding id (None without one)")
    bos_token_id = property(lambda self: self._core.bos_token_id, doc="the BOS id (None without one)")

    def convert_tokens_to_ids(self, token: str) -> Optional[int]:
        return self._core.token_to_id(token)

    def convert_ids_to_tokens(self, i: int) -> Optional[str]:
        return self._core.id_to_token(_int("id", i))


class Model:
    """A LLaDA2 checkpoint folder (config.json + safetensors: f32, bf16, q8 or q4) loaded by the engine."""

    def __init__(self, core: Any):
        self._core = core

    @classmethod
    def load(cls, path: str) -> "Model":
        return cls(_core.Model.load(str(path)))

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    def forward(self, input_ids: Any, attention_mask: Any = None, attention: str = "block_causal",
                block_length: int = 32, exact: Optional[bool] = None) -> np.ndarray:
        """Logits (float32 NumPy array [batch, window, vocab]) of one forward over `input_ids` ([window] or
        [batch, window]). `attention_mask` (same shape, 1 = a real token): padding is never a key.
        `attention`: "block_causal" (query i sees key j iff j // block_length <= i // block_length) or
        "bidirectional". `exact`: float32 compute (default: the engine's fast mode)."""
        ids, _ = _ids_array("input_ids", input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        mask = None
        if attention_mask is not None:
            mask, _ = _ids_array("attention_mask", attention_mask)
            mask = mask[None] if mask.ndim == 1 else mask
            mask = np.ascontiguousarray(mask, dtype=np.int64)
        if not isinstance(attention, str):
            raise TypeError(f"`attention` must be a str, got {type(attention).__name__}")
        return self._core.forward(np.ascontiguousarray(ids, dtype=np.int64), mask, attention,
                                  _int("block_length", block_length), bool(exact))

    __call__ = forward


class LLaDA2Pipeline:
    """diffusers' LLaDA2Pipeline on the llada2.cpp engine: build it with `from_pretrained(path)` and call
    it with the keyword arguments of `LLaDA2Pipeline.__call__` (see `__call__`)."""

    def __init__(self, core: Any, scheduler: BlockRefinementScheduler, exact: bool = False):
        self._core = core
        self.scheduler = scheduler
        self.exact = exact
        self.model = Model(core.model)
        tok = core.tokenizer
        self.tokenizer = Tokenizer(tok) if tok is not None else None

    @classmethod
    def from_pretrained(cls, path: str, scheduler: Optional[BlockRefinementScheduler] = None, *,
                        threads: Optional[int] = None, exact: bool = False) -> "LLaDA2Pipeline":
        """Loads a checkpoint folder (its model, and its tokenizer and chat template when it has a
        tokenizer.json). `scheduler`: the BlockRefinementScheduler whose config supplies the call
        defaults (default: BlockRefinementScheduler()). Run-time options: `threads` (worker threads,
        process-wide) and `exact` (the default of the calls' `exact=`: float32 compute)."""
        if scheduler is None:
            scheduler = BlockRefinementScheduler()
        if not isinstance(scheduler, BlockRefinementScheduler):
            cfg = getattr(scheduler, "config", None)
            if cfg is None:
                raise TypeError("`scheduler` must be a BlockRefinementScheduler")
            get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
            scheduler = BlockRefinementScheduler(get("block_length", 32), get("num_inference_steps", 32),
                                                 get("threshold", 0.95), get("editing_threshold", None),
                                                 get("minimal_topk", 1))
        if threads is not None:
            set_threads(threads)
        c = scheduler.config
        core = _core.Pipeline.from_pretrained(str(path), c.block_length, c.num_inference_steps, c.threshold,
                                              c.editing_threshold, c.minimal_topk)
        return cls(core, scheduler, bool(exact))

    @property
    def eos_token_id(self) -> Optional[int]:
        return self.tokenizer.eos_token_id if self.tokenizer else None

    @property
    def mask_token_id(self) -> Optional[int]:
        return self.tokenizer.mask_token_id if self.tokenizer else None

    def __call__(self,
                 prompt: Optional[Union[str, List[str]]] = None,
                 messages: Optional[List[Dict[str, Any]]] = None,
                 input_ids: Any = None,
                 attention_mask: Any = None,
                 use_chat_template: bool = True,
                 add_generation_prompt: bool = True,
                 gen_length: int = 2048,
                 block_length: Optional[int] = None,
                 num_inference_steps: int = 32,
                 temperature: float = 0.0,
                 top_p: Optional[float] = None,
                 top_k: Optional[int] = None,
                 sampling_method: str = "multinomial",
                 threshold: float = 0.7,
                 editing_threshold: Optional[float] = 0.5,
                 max_post_steps: int = 16,
                 minimal_topk: int = 1,
                 eos_early_stop: bool = True,
                 eos_token_id: Optional[int] = None,
                 mask_token_id: Optional[int] = None,
                 generator: Any = None,
                 output_type: str = "text",
                 return_dict: bool = True,
                 callback_on_step_end: Optional[Callable[..., Dict[str, Any]]] = None,
                 callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
                 *,
                 attention: str = "block_causal",
                 exact: Optional[bool] = None,
                 decoding: str = "auto") -> Union[LLaDA2PipelineOutput, Tuple[Any, Optional[List[str]]]]:
        """Generates `gen_length` tokens after each prompt by block-wise refinement of a masked canvas.

        The arguments are those of diffusers' LLaDA2Pipeline.__call__, with its defaults and checks
        (ValueError with the same message; TypeError for a value of the wrong type):
        prompt (str or list of str) | messages (one conversation) | input_ids ([P] or [B, P] int64, a
        torch.Tensor, NumPy array or list) with attention_mask (1 = real token); use_chat_template,
        add_generation_prompt; gen_length; block_length (None: the scheduler's); num_inference_steps
        (None: the scheduler's); temperature, top_p, top_k, sampling_method ("greedy", "multinomial",
        "auto"); threshold (None: the scheduler's); editing_threshold (None: the scheduler's; <= 0: no
        editing); max_post_steps; minimal_topk; eos_early_stop; eos_token_id, mask_token_id (None: the
        tokenizer's, then config.json's); generator (an int seed or a torch.Generator, whose initial seed
        seeds the engine's generator); output_type ("text" or "seq"); return_dict;
        callback_on_step_end(pipe, step, timestep, callback_kwargs) -> dict, whose callback_kwargs hold
        the tensors named in callback_on_step_end_tensor_inputs (default ["block_x"]; also
        transfer_index, editing_transfer_index, sampled_tokens, sampled_probs, active_block and the
        aliases x0, x0_p, confidence) as NumPy arrays; a returned "block_x" replaces the window.

        Not diffusers arguments: attention ("block_causal", the pattern LLaDA2 was trained with, or
        "bidirectional"); exact (True: float32 compute whatever the weight dtype; default: the
        pipeline's, fast); decoding ("auto", "llada2.1" or "llada2.2": the rules; auto follows the
        checkpoint's config).

        Returns LLaDA2PipelineOutput(sequences, texts), or the tuple (sequences, texts) when
        return_dict is False.
        """
        if prompt is not None and not isinstance(prompt, str):
            if not isinstance(prompt, (list, tuple)) or not all(isinstance(p, str) for p in prompt):
                raise TypeError("`prompt` must be a str or a list of str")
            prompt = list(prompt)
        if isinstance(callback_on_step_end, (list, tuple)):
            raise TypeError("`callback_on_step_end` must be one callable (or a PipelineCallback)")
        if callback_on_step_end is not None and hasattr(callback_on_step_end, "tensor_inputs"):
            # diffusers' PipelineCallback / MultiPipelineCallbacks name the tensors they read.
            callback_on_step_end_tensor_inputs = list(callback_on_step_end.tensor_inputs)
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError("`callback_on_step_end` must be callable")
        names = callback_on_step_end_tensor_inputs
        if names is not None:
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError("`callback_on_step_end_tensor_inputs` must be a list of tensor names")
            names = list(names)
        for name, value in (("sampling_method", sampling_method), ("output_type", output_type),
                            ("attention", attention), ("decoding", decoding)):
            if not isinstance(value, str):
                raise TypeError(f"`{name}` must be a str, got {type(value).__name__}")

        if threshold is not None and isinstance(threshold, numbers.Real) and np.isnan(threshold):
            raise ValueError(f"`threshold` must be in [0, 1] (or > 1 to force top-k commits), got {threshold}.")
        call = {
            "prompt": prompt,
            "messages": messages,
            "use_chat_template": bool(use_chat_template),
            "add_generation_prompt": bool(add_generation_prompt),
            "gen_length": _int("gen_length", gen_length),
            "block_length": _opt_int("block_length", block_length),
            "num_inference_steps": _opt_int("num_inference_steps", num_inference_steps),
            "temperature": _json_number(_float("temperature", temperature)),
            "top_p": _json_number(_opt_float("top_p", top_p)),
            "top_k": _opt_int("top_k", top_k),
            "sampling_method": sampling_method,
            "threshold": _json_number(_opt_float("threshold", threshold)),
            "editing_threshold": _json_number(_opt_float("editing_threshold", editing_threshold)),
            "max_post_steps": _int("max_post_steps", max_post_steps),
            "minimal_topk": _opt_int("minimal_topk", minimal_topk),
            "eos_early_stop": bool(eos_early_stop),
            "eos_token_id": _opt_int("eos_token_id", eos_token_id),
            "mask_token_id": _opt_int("mask_token_id", mask_token_id),
            "generator": _seed(generator),
            "output_type": output_type,
            "callback_on_step_end_tensor_inputs": names,
            "attention": attention,
            "decoding": decoding,
        }
        ids, ids_dtype = (None, "int64") if input_ids is None else _ids_array("input_ids", input_ids)
        mask = None
        if attention_mask is not None and input_ids is not None:
            mask, _ = _ids_array("attention_mask", attention_mask)
            if mask.dtype.kind not in "iub":
                mask = mask.astype(np.int64)  # diffusers casts the mask to int64
        step = None
        if callback_on_step_end is not None:
            cb = callback_on_step_end

            def step(global_step: int, timestep: int, tensors: Dict[str, np.ndarray]) -> Optional[np.ndarray]:
                out = cb(self, global_step, timestep, dict(tensors))
                if not isinstance(out, dict):
                    raise TypeError(f"`callback_on_step_end` must return a dict, got {type(out).__name__}")
                bx = out.get("block_x")
                return None if bx is None else _block_array(bx)

        sequences, texts, stats = self._core.run(_json("messages", call), ids, ids_dtype, mask, "int64", step,
                                                 self.exact if exact is None else bool(exact))
        if input_ids is not None and _is_torch_tensor(input_ids):
            sequences = _torch().from_numpy(sequences)
        if not return_dict:
            return (sequences, texts)
        return LLaDA2PipelineOutput(sequences, texts, stats)
