#!/usr/bin/env python3
"""Per-supervision-step accuracy of a checkpoint by the torch reference (official evaluation:
every puzzle runs all halt_max_steps steps; step t predicts argmax head(z_H) after step t).

    python3 references/python/evaluate.py --checkpoint ckpt.pt --inputs test.jsonl
    python3 references/python/evaluate.py --checkpoint step_N --official-config all_config.yaml \
        --inputs data/test [--limit 64] [--json out.json]

--inputs is a JSONL file ({"id", "tokens", "label"}) or one split folder of the official
dataset layout; --limit takes the first N puzzles. An official checkpoint takes its seq_len
from the dataset folder's dataset.json (or --dataset-json). Prints a table of exact and
token accuracy per step, q_halt accuracy and exact accuracy by blank count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import official_base_config, resolve_dataset_json  # noqa: E402
from train import evaluate, exact_by_blanks, load_split  # noqa: E402
from trm_model import load_checkpoint  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="our checkpoint.pt, or an official state dict")
    ap.add_argument("--official-config", default=None, help="official all_config.yaml (for an official checkpoint)")
    ap.add_argument("--dataset-json", default=None, help="dataset.json giving seq_len (default: the --inputs folder's)")
    ap.add_argument("--inputs", required=True, help="puzzles .jsonl or a dataset split folder")
    ap.add_argument("--limit", type=int, default=None, help="first N puzzles only")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-by-blanks", action="store_true",
                    help="skip the table by blank count")
    ap.add_argument("--seed", type=int, default=0, help="unused (evaluation is deterministic); kept for uniformity")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    base = None
    if a.official_config:
        dj = a.dataset_json or (a.inputs if os.path.isdir(a.inputs) else None)
        meta = None
        if dj is not None:
            with open(resolve_dataset_json(dj)) as f:
                meta = json.load(f)
        base, _ = official_base_config(a.official_config, meta, None)
    model = load_checkpoint(a.checkpoint, base)
    model = model.to(torch.float64 if a.dtype == "float64" else torch.float32).eval()
    d = load_split(a.inputs)
    k = a.limit or len(d["tokens"])
    tok, lab, pid = d["tokens"][:k], d["labels"][:k], d["pids"][:k]
    flags = []
    per_step = evaluate(model, tok, lab, pids=pid, exact_out=flags)
    by_blanks = {} if a.no_by_blanks else exact_by_blanks(model, tok, lab, pids=pid, exact=torch.cat(flags, dim=1))
    print(f"{a.inputs}: {len(tok)} puzzles (torch {a.dtype})")
    print("sup  exact   token   q_halt_acc")
    for e in per_step:
        print(f"{e['sup']:>3}  {e['exact']:.4f}  {e['token']:.4f}  {e['q_halt_acc']:.4f}")
    if by_blanks:
        print("exact at the first / last step by blank count: " + ", ".join(
            f"{b}: {v['exact_first']:.3f}/{v['exact_last']:.3f} (n={v['n']})" for b, v in by_blanks.items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"inputs": a.inputs, "n": int(len(tok)), "dtype": a.dtype, "per_step": per_step,
                       "by_blanks": by_blanks}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
