"""A byte-level BPE tokenizer trained on the task corpus, written as Hugging Face tokenizer files.

The pre-tokenizer is Ling's (LLaDA2's) split regex: every digit is its own piece, so numbers are always
read and written digit by digit. Merges are learned greedily (most frequent adjacent pair, ties broken by
the pair itself) over the pieces of the corpus until the vocabulary reaches its size.
"""

import collections
import json
import os

import regex

SPLIT = (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+")
SPECIALS = ["<|startoftext|>", "<|endoftext|>", "<|mask|>", "<|role_end|>", "<role>", "</role>"]
SPECIAL_SPLIT = regex.compile("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")")
PIECE = regex.compile(SPLIT)


def byte_alphabet():
    """The byte-level alphabet: byte b -> a printable character (printable Latin-1 bytes stand for themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = byte_alphabet()


def pieces(text):
    """Pre-tokenized, byte-mapped pieces of text that holds no special token."""
    return ["".join(BYTE_CHAR[b] for b in p.encode("utf-8")) for p in PIECE.findall(text)]


def train_bpe(texts, vocab_size):
    """Learn merges until the base alphabet + merges + specials reach vocab_size."""
    words = collections.Counter()
    for t in texts:
        for part in SPECIAL_SPLIT.split(t):
            if part and part not in SPECIALS:
                words.update(pieces(part))
    vocab = [BYTE_CHAR[b] for b in range(256)]
    seqs = {w: list(w) for w in words}
    merges = []
    while len(vocab) + len(SPECIALS) < vocab_size:
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merged = best[0] + best[1]
        merges.append(best)
        vocab.append(merged)
        for w in words:
            s = seqs[w]
            if len(s) < 2:
                continue
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == best[0] and s[i + 1] == best[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return vocab, merges


def write(out_dir, vocab, merges, chat_template):
    os.makedirs(out_dir, exist_ok=True)
    n = len(vocab)
    added = [{"id": n + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Isolated", "invert": False},
            dict(byte_level, trim_offsets=True)]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [[a, b] for a, b in merges]},
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "mask_token": "<|mask|>", "additional_special_tokens": ["<|role_end|>", "<role>", "</role>"]}
    cfg = dict(special, add_bos_token=False, add_eos_token=False, clean_up_tokenization_spaces=False,
               model_max_length=4096, tokenizer_class="PreTrainedTokenizerFast",
               added_tokens_decoder={str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
               chat_template=chat_template)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return {s: n + i for i, s in enumerate(SPECIALS)}
