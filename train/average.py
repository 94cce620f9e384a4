"""Averages the weights of model folders of one architecture (e.g. checkpoints saved along a run):
every tensor, the expert biases included, is the mean of its copies. Config and tokenizer come from the
first folder.

    /usr/bin/python3 train/average.py --out DIR A B [C ...]
"""

import argparse
import os
import shutil

import model as mdl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="model folder to write")
    ap.add_argument("models", nargs="+", help="model folders to average")
    args = ap.parse_args()
    states = [mdl.load_safetensors(os.path.join(d, "model.safetensors")) for d in args.models]
    for d, s in zip(args.models[1:], states[1:]):
        if s.keys() != states[0].keys() or any(s[k].shape != states[0][k].shape for k in s):
            raise SystemExit(f"{d}: tensors differ from {args.models[0]}")
    model = mdl.load_model(args.models[0])
    model.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]})
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.models[0]):
        if f != "model.safetensors" and os.path.isfile(os.path.join(args.models[0], f)):
            shutil.copy(os.path.join(args.models[0], f), os.path.join(args.out, f))
    mdl.save_safetensors(model, os.path.join(args.out, "model.safetensors"))
    print(f"{args.out}: mean of {len(states)} models")


if __name__ == "__main__":
    main()
