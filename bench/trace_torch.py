#!/usr/bin/env python3
"""The demo trace written by hand in PyTorch, the baseline `deno task bench` measures
`trminterp trace` against: the reference TRM (references/python/trm_model.py) from the
bundle's checkpoint.pt, every puzzle of the bundle's test.jsonl, batch 64, every z_L and
z_H after every net call kept and saved to one [rows, D] float32 .npy in trminterp's row
order (per batch: per step, per example, per position), plus each supervision step's
predictions as JSON. What a researcher would write instead of `trminterp trace`; it does
not write trminterp's JSONL records.

    python3 bench/trace_torch.py --bundle references/models/sudoku4-trm --out /tmp/torch-trace
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "references", "python"))
from trm_model import load_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--inputs", help="puzzles .jsonl (default: the bundle's test.jsonl)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_checkpoint(os.path.join(a.bundle, "checkpoint.pt"))
    cfg = model.cfg
    with open(a.inputs or os.path.join(a.bundle, "test.jsonl")) as f:
        puzzles = [json.loads(line) for line in f if line.strip()]
    tokens = torch.tensor([p["tokens"] for p in puzzles], dtype=torch.int64)
    pids = torch.tensor([p.get("puzzle_identifier", 0) for p in puzzles], dtype=torch.int64)
    chunks, preds = [], []
    with torch.no_grad():
        for b0 in range(0, len(puzzles), a.batch):
            tok, pid = tokens[b0:b0 + a.batch], pids[b0:b0 + a.batch]
            x = model.embed(tok, pid if cfg.puzzle_emb_ndim > 0 else None)
            carry = model.initial_carry(tok.shape[0])
            z_H, z_L = carry.z_H, carry.z_L
            per_sup = []
            for _sup in range(cfg.halt_max_steps):
                for _h in range(cfg.H_cycles):
                    for _l in range(cfg.L_cycles):
                        z_L = model.L_net(z_L, z_H + x)
                        chunks.append(z_L.numpy().copy())
                    z_H = model.H_net(z_H, z_L)
                    chunks.append(z_H.numpy().copy())
                logits, _q = model.head(z_H)
                per_sup.append(logits.argmax(-1).tolist())
            preds.extend([[s[i] for s in per_sup] for i in range(tok.shape[0])])
    D = cfg.hidden_size
    states = np.concatenate([c.reshape(-1, D) for c in chunks])
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "states.npy"), states)
    with open(os.path.join(a.out, "preds.json"), "w") as f:
        json.dump({"ids": [p["id"] for p in puzzles], "pred_per_sup": preds}, f)
    print(json.dumps({"rows": int(states.shape[0]), "examples": len(puzzles),
                      "seconds_in_process": time.perf_counter() - T0}))


if __name__ == "__main__":
    main()
