#!/usr/bin/env python3
"""Regenerate the random-weight test bundles tests/fixtures/tiny_trm and tiny_hrm.

    python3 references/python/make_fixtures.py --out tests/fixtures --seed 0

Each folder: float32 bundle (model.json + graphs), f64/ (the same weights as float64
graphs), checkpoint.pt (our format), puzzles.jsonl (4 puzzles with "puzzle_identifier"),
parity/ written by parity.py with the torch model in float64 (compare f64/ against it
tightly), and parity_f32/ with the torch model in float32 (for the float32 graphs).
Model: D=32, 2 heads, P=2 prefix positions (TRM: puzzle_emb_ndim=32 zero-padded to 2*32, as
the official Sudoku config pads 512 to 16*512; HRM: puzzle_emb_ndim=64), 3 puzzle ids, S=16, V=6, H2/L2, one layer per
level, SwiGLU width rounded to 64 (not 256) to keep the files small, halt_max_steps 3.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from trm_model import ModelConfig, RecursiveModel, save_checkpoint  # noqa: E402
from export import export_bundle  # noqa: E402
import sudoku4  # noqa: E402
import parity  # noqa: E402


def tiny_config(family: str) -> ModelConfig:
    return ModelConfig(family=family, seq_len=16, vocab_size=6, hidden_size=32, num_heads=2, expansion=4.0,
                       H_cycles=2, L_cycles=2, L_layers=1, H_layers=1 if family == "hrm" else 0,
                       halt_max_steps=3, num_puzzle_identifiers=3,
                       # TRM: explicit puzzle_emb_len=2 with a 32-wide embedding zero-padded to 2*32;
                       # HRM (whose official code has no puzzle_emb_len): 64 = 2*32 wide, so P = ceil(64/32) = 2
                       puzzle_emb_ndim=32 if family == "trm" else 64, puzzle_emb_len=2 if family == "trm" else 0,
                       ffn_multiple=64)


def build(family: str, out: str, seed: int) -> None:
    torch.manual_seed(seed)
    cfg = tiny_config(family)
    model = RecursiveModel(cfg, trainable_puzzle_emb=False).eval()
    with torch.no_grad():
        # random (not official zero/-5) values so every path carries signal
        model.puzzle_emb.weights.normal_(0.0, 1.0)
        model.q_head.weight.normal_(0.0, 0.3)
        model.q_head.bias.normal_(0.0, 0.3)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    name = f"tiny_{family}"
    src = {"generator": "references/python/make_fixtures.py", "seed": seed, "weights": "random"}
    tokens = {"pad": 0, "blank": 1, "symbols": ["1", "2", "3", "4"], "symbol_offset": 2}
    ck = os.path.join(out, "checkpoint.pt")
    save_checkpoint(model, ck, {"name": name, "tokens": tokens, "source": src})
    export_bundle(model, out, "float32", name, tokens, src)
    export_bundle(model, os.path.join(out, "f64"), "float64", name, tokens, src)
    rng = random.Random(seed)
    with open(os.path.join(out, "puzzles.jsonl"), "w") as f:
        for i, nb in enumerate((6, 10, 11, 12)):
            gi = rng.randrange(len(sudoku4.GRIDS))
            p = None
            while p is None:
                p = sudoku4.make_puzzle(sudoku4.GRIDS[gi], nb, rng)
            row = {"id": f"p{i}-g{gi:03d}-b{nb}", "tokens": sudoku4.to_tokens(p),
                   "label": sudoku4.to_tokens(sudoku4.GRIDS[gi]), "puzzle_identifier": i % 3}
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    parity.main(["--bundle", os.path.join(out, "f64"), "--checkpoint", ck,
                 "--puzzles", os.path.join(out, "puzzles.jsonl"), "--out", os.path.join(out, "parity"),
                 "--dtype", "float64", "--seed", str(seed)])
    parity.main(["--bundle", out, "--checkpoint", ck,
                 "--puzzles", os.path.join(out, "puzzles.jsonl"), "--out", os.path.join(out, "parity_f32"),
                 "--dtype", "float32", "--seed", str(seed)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    build("trm", os.path.join(a.out, "tiny_trm"), a.seed)
    build("hrm", os.path.join(a.out, "tiny_hrm"), a.seed + 1)


if __name__ == "__main__":
    main()
