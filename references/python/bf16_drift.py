#!/usr/bin/env python3
r"""How far a float32 trace drifts from the bfloat16 evaluation the official code runs.

    python3 references/python/bf16_drift.py --seed 0 [--limit N] [--random-examples 8] [--json out.json]
    python3 references/python/bf16_drift.py --checkpoint step_N --official-config all_config.yaml \
        --dataset data/sudoku-extreme-1k-aug-1000 --limit 64 --random-examples 0

The official TinyRecursiveModels trains and evaluates with forward_dtype bfloat16: weights
cast to bfloat16 at every use, activations in bfloat16, RMSNorm and the RoPE rotation in
float32, q logits cast to float32. trminterp runs float32 (or float64) graphs. This script
runs the reference model (trm_model.py, whose bfloat16 forward equals the official one)
both ways on the same puzzles and reports, per supervision step:

    agree cells     fraction of cells whose argmax prediction is the same in float32 and bfloat16
    agree puzzles   fraction of puzzles whose whole prediction is the same
    logits max/mean max and mean |logits_f32 - logits_bf16| (bfloat16 logits as the official
                    evaluation sees them, i.e. rounded to bfloat16)
    q_halt max      max |q_halt_f32 - q_halt_bf16|
    exact f32/bf16  exact accuracy of each (only when the puzzles have labels)
    f64: ...        control: float32 against float64, the drift that any change of rounding
                    causes in this model (--no-f64-control skips it)

and the state difference after the first net call.

Models: the 4x4 demo checkpoint on its test.jsonl (--checkpoint, --puzzles, --limit; an
official step_N with --official-config all_config.yaml and --dataset <official dataset>), and
a random-weight model at the official Sudoku-Extreme TRM-MLP shape (make_official_shapes.py
case trm_mlp_sudoku, D=512, S=81+16, H3/L6, 16 steps) on --random-examples seeded random
puzzles (--random-case picks another case of make_official_shapes.py; 0 examples skips it).
Same inputs and --seed give the same numbers.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from trm_model import load_checkpoint, rollout  # noqa: E402
from export import official_base_config, resolve_dataset_json  # noqa: E402
import make_official_shapes as shapes  # noqa: E402


def rel(p: str) -> str:
    r = os.path.relpath(os.path.abspath(p), ROOT)
    return os.path.abspath(p) if r.startswith("..") else r


def read_dataset(split: str, meta: dict, limit):
    """The first `limit` examples of an official dataset split (v0-spec §3.6)."""
    import numpy as np
    inp = np.load(os.path.join(split, "all__inputs.npy"))[:limit].astype(np.int64)
    lab = np.load(os.path.join(split, "all__labels.npy"))[:limit].astype(np.int64)
    ids = np.load(os.path.join(split, "all__puzzle_identifiers.npy")).astype(np.int64)
    pi = os.path.join(split, "all__puzzle_indices.npy")
    if os.path.isfile(pi) and len(ids) != len(np.load(os.path.join(split, "all__inputs.npy"), mmap_mode="r")):
        # per puzzle: example e belongs to puzzle p with indices[p] <= e < indices[p+1]
        idx = np.load(pi)
        ids = ids[np.searchsorted(idx, np.arange(len(inp)), side="right") - 1]
    ids = ids[: len(inp)]
    if meta.get("ignore_label_id") is not None:
        lab[lab == int(meta["ignore_label_id"])] = -100
    return torch.from_numpy(inp), torch.from_numpy(ids), torch.from_numpy(lab)


def run(model, tok, pid, dtype):
    m = copy.deepcopy(model).to(dtype).eval()
    ids = pid if model.cfg.puzzle_emb_ndim > 0 else None
    out = rollout(m, tok, ids)
    with torch.no_grad():  # the first net call alone (s0.h0.l0)
        x = m.embed(tok, ids)
        c = m.initial_carry(tok.shape[0])
        out["first_zL"] = m.L_net(c.z_L, c.z_H + x)
    return out


def drift(model, tok, pid, labels, batch: int, control: bool):
    outs = {}
    dtypes = [("f32", torch.float32), ("bf16", torch.bfloat16)] + ([("f64", torch.float64)] if control else [])
    for name, dt in dtypes:
        parts = [run(model, tok[i:i + batch], pid[i:i + batch], dt) for i in range(0, tok.shape[0], batch)]
        outs[name] = {"logits": torch.cat([p["logits"] for p in parts], dim=1),
                      "q_halt": torch.cat([p["q_halt"] for p in parts], dim=1),
                      "first_zL": torch.cat([p["first_zL"] for p in parts], dim=0)}
    a, b = outs["f32"], outs["bf16"]
    first = {"zL_rms": float(a["first_zL"].double().pow(2).mean().sqrt()),
             "bf16_max": float((a["first_zL"].double() - b["first_zL"].double()).abs().max())}
    if control:
        first["f64_max"] = float((a["first_zL"].double() - outs["f64"]["first_zL"]).abs().max())
    rows = []
    for t in range(a["logits"].shape[0]):
        la, lb = a["logits"][t].float(), b["logits"][t].float()
        pa, pb = la.argmax(-1), b["logits"][t].argmax(-1)  # bf16 argmax as the official evaluation
        d = (la - lb).abs()
        row = {"sup": t, "agree_cells": float((pa == pb).float().mean()),
               "agree_puzzles": float((pa == pb).all(-1).float().mean()),
               "logits_max": float(d.max()), "logits_mean": float(d.mean()),
               "q_halt_max": float((a["q_halt"][t].float() - b["q_halt"][t].float()).abs().max())}
        if labels is not None:
            mask = labels != -100
            row["exact_f32"] = float(((pa == labels) | ~mask).all(-1).float().mean())
            row["exact_bf16"] = float(((pb == labels) | ~mask).all(-1).float().mean())
        if control:
            lc = outs["f64"]["logits"][t]
            row["f64_agree_cells"] = float((pa == lc.argmax(-1)).float().mean())
            row["f64_logits_max"] = float((la.double() - lc).abs().max())
        rows.append(row)
    return {"first_call": first, "steps": rows}


def table(title: str, res) -> str:
    rows, first = res["steps"], res["first_call"]
    lab, ctl = "exact_f32" in rows[0], "f64_agree_cells" in rows[0]
    out = [f"{title}", "",
           f"First net call: rms(z_L) {first['zL_rms']:.3g}, max |z_L f32 - bf16| {first['bf16_max']:.3g}"
           + (f", max |z_L f32 - f64| {first['f64_max']:.3g}" if ctl else "") + ".", "",
           "| sup | agree cells | agree puzzles | logits max | logits mean | q_halt max |"
           + (" exact f32 | exact bf16 |" if lab else "") + (" f64: agree cells | f64: logits max |" if ctl else ""),
           "| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if lab else "") + (" --- | --- |" if ctl else "")]
    for r in rows:
        out.append(f"| {r['sup']} | {r['agree_cells']:.4f} | {r['agree_puzzles']:.4f} | {r['logits_max']:.3g} | "
                   f"{r['logits_mean']:.3g} | {r['q_halt_max']:.3g} |"
                   + (f" {r['exact_f32']:.4f} | {r['exact_bf16']:.4f} |" if lab else "")
                   + (f" {r['f64_agree_cells']:.4f} | {r['f64_logits_max']:.3g} |" if ctl else ""))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "references/models/sudoku4-trm/checkpoint.pt"))
    ap.add_argument("--puzzles", default=os.path.join(ROOT, "references/models/sudoku4-trm/test.jsonl"))
    ap.add_argument("--official-config", default=None,
                    help="with an official checkpoint (step_N): its all_config.yaml, as for export.py")
    ap.add_argument("--dataset", default=None,
                    help="an official dataset folder (split folder, or the root, then test/) instead of --puzzles")
    ap.add_argument("--limit", type=int, default=None, help="first N puzzles (default: all)")
    ap.add_argument("--random-case", default="trm_mlp_sudoku", choices=sorted(shapes.CASES))
    ap.add_argument("--random-examples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random model and its puzzles")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-f64-control", action="store_true",
                    help="skip the control columns (float32 against float64: how much of the drift any "
                         "rounding change causes, bfloat16 or not)")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    result = {}
    if a.checkpoint and (a.puzzles or a.dataset):
        base, meta = None, None
        if a.dataset:
            split = os.path.dirname(resolve_dataset_json(a.dataset))
            with open(os.path.join(split, "dataset.json")) as f:
                meta = json.load(f)
        if a.official_config:
            base, _ = official_base_config(a.official_config, meta, None)
        model = load_checkpoint(a.checkpoint, base)
        if a.dataset:
            tok, pid, lab = read_dataset(split, meta, a.limit)
            where = split
        else:
            rows = [json.loads(line) for line in open(a.puzzles) if line.strip()][: a.limit]
            tok = torch.tensor([r["tokens"] for r in rows], dtype=torch.int64)
            pid = torch.tensor([int(r.get("puzzle_identifier", 0)) for r in rows], dtype=torch.int64)
            lab = (torch.tensor([r["label"] for r in rows], dtype=torch.int64)
                   if all("label" in r for r in rows) else None)
            where = a.puzzles
        r = drift(model, tok, pid, lab, a.batch, not a.no_f64_control)
        result["checkpoint"] = {"checkpoint": rel(a.checkpoint), "puzzles": int(tok.shape[0]), **r}
        print(table(f"{rel(a.checkpoint)} on {tok.shape[0]} puzzles of {rel(where)}", r) + "\n")
    if a.random_examples > 0:
        model = shapes.build_model(a.random_case, a.seed)
        tok, pid = shapes.puzzles(model.cfg, a.random_examples, a.seed * 1000 + 7)
        r = drift(model, tok, pid, None, a.batch, not a.no_f64_control)
        result["random"] = {"case": a.random_case, "seed": a.seed, "puzzles": a.random_examples, **r}
        print(table(f"random-weight {a.random_case} (seed {a.seed}) on {a.random_examples} random puzzles", r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
