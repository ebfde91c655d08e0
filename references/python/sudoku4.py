#!/usr/bin/env python3
"""4x4 Sudoku data for the demo model.

Enumerates all 288 solution grids, holds out whole grids (default 20%, seeded) for the test
split, and makes puzzles with a unique solution by removing givens in a seeded random
order. No digit-permutation augmentation (it would map test grids into the training set).

Tokens: pad=0, blank=1, digit d (1..4) = d+1, so V=6 and S=16 (row-major cells).
Each JSONL line: {"id": "...", "tokens": [16 ints], "label": [16 ints]}; label = solution.

    python3 references/python/sudoku4.py --out DIR --seed 0
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
from typing import List, Optional, Sequence

BLANK, PAD, OFFSET = 1, 0, 1  # token = digit + OFFSET, blank = 1


def all_grids() -> List[tuple]:
    rows = list(itertools.permutations((1, 2, 3, 4)))
    grids = []
    for r0 in rows:
        for r1 in rows:
            for r2 in rows:
                for r3 in rows:
                    g = (r0, r1, r2, r3)
                    if any(len({g[r][c] for r in range(4)}) < 4 for c in range(4)):
                        continue
                    ok = True
                    for br in (0, 2):
                        for bc in (0, 2):
                            if len({g[br + i][bc + j] for i in range(2) for j in range(2)}) < 4:
                                ok = False
                    if ok:
                        grids.append(tuple(v for row in g for v in row))
    return grids


GRIDS = all_grids()
assert len(GRIDS) == 288


def n_solutions(givens: Sequence[int], limit: int = 2) -> int:
    """givens: 16 digits, 0 for blank. Counts matching complete grids (up to limit)."""
    n = 0
    for g in GRIDS:
        if all(v == 0 or v == gv for v, gv in zip(givens, g)):
            n += 1
            if n >= limit:
                break
    return n


def make_puzzle(grid: Sequence[int], n_blanks: int, rng: random.Random) -> Optional[List[int]]:
    """Blank cells in a random order, skipping any blank that breaks uniqueness, until
    n_blanks cells are blank. None if this order cannot reach n_blanks."""
    cells = list(range(16))
    rng.shuffle(cells)
    p = list(grid)
    k = 0
    for c in cells:
        if k == n_blanks:
            break
        v = p[c]
        p[c] = 0
        if n_solutions(p) == 1:
            k += 1
        else:
            p[c] = v
    return p if k == n_blanks else None


def to_tokens(digits: Sequence[int]) -> List[int]:
    return [BLANK if d == 0 else d + OFFSET for d in digits]


def split_grids(seed: int, test_frac: float):
    rng = random.Random(seed)
    idx = list(range(len(GRIDS)))
    rng.shuffle(idx)
    n_test = round(test_frac * len(GRIDS))
    return sorted(idx[n_test:]), sorted(idx[:n_test])


def generate(grid_ids, per_grid: int, blanks: Sequence[int], rng: random.Random, prefix: str):
    out, seen = [], set()
    for gi in grid_ids:
        g = GRIDS[gi]
        made, tries = 0, 0
        while made < per_grid and tries < per_grid * 20:
            tries += 1
            nb = rng.choice(blanks)
            p = make_puzzle(g, nb, rng)
            if p is None:
                continue
            key = tuple(p)
            if key in seen:
                continue
            seen.add(key)
            out.append({"id": f"{prefix}-g{gi:03d}-{made:03d}-b{nb}", "tokens": to_tokens(p), "label": to_tokens(g)})
            made += 1
    rng.shuffle(out)
    return out


def write_jsonl(path: str, rows) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--train-per-grid", type=int, default=120)
    ap.add_argument("--train-blanks", default="4-12", help="range of blank counts for training puzzles")
    ap.add_argument("--test-per-grid", type=int, default=8)
    ap.add_argument("--test-blanks", default="10-12", help="range of blank counts for test puzzles (hard)")
    a = ap.parse_args(argv)

    def rng_of(s):
        lo, hi = (int(v) for v in s.split("-"))
        return list(range(lo, hi + 1))

    train_ids, test_ids = split_grids(a.seed, a.test_frac)
    rng = random.Random(a.seed + 1)
    train = generate(train_ids, a.train_per_grid, rng_of(a.train_blanks), rng, "train")
    test = generate(test_ids, a.test_per_grid, rng_of(a.test_blanks), rng, "test")
    os.makedirs(a.out, exist_ok=True)
    write_jsonl(os.path.join(a.out, "train.jsonl"), train)
    write_jsonl(os.path.join(a.out, "test.jsonl"), test)
    print(f"grids: {len(train_ids)} train / {len(test_ids)} test; puzzles: {len(train)} train / {len(test)} test")


if __name__ == "__main__":
    main()
