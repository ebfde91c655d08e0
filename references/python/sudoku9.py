#!/usr/bin/env python3
"""Seeded 9x9 Sudoku data for the sudoku9-trm-mlp study model.

Solution grids come from a randomized backtracking search; every grid is used for exactly
one puzzle, so the splits are disjoint by solution grid (checked). Every puzzle is checked
to have exactly one solution.

  moderate: blanks removed in a random order, each removal kept only if the solution stays
            unique, until a blank count drawn uniformly from --blanks (default 35-45) is
            reached. Train and test splits.
  hard:     greedy passes over all 81 cells in a random order, removing every clue whose
            removal keeps the solution unique: each result is minimal (no clue can go); of
            --hard-tries passes the one with the fewest clues is kept. Test split only; the
            blank counts it reaches are printed and recorded.

Tokens follow TinyRecursiveModels' build_sudoku_dataset.py: pad 0, blank 1, digit d = d+1
(V = 11, S = 81 cells row-major). No digit or band augmentation (it would map test grids
into training).

Writes into --out:
    train.jsonl, test.jsonl, test_hard.jsonl     {"id", "tokens", "label"} per line
    moderate/{train,test}/ , hard/test/          the official dataset-folder layout:
        all__inputs.npy, all__labels.npy         uint8 [N, 81]
        all__puzzle_identifiers.npy              int32 [N] (all 0)
        all__puzzle_indices.npy                  int32 [N+1] (0..N: one example per puzzle)
        all__group_indices.npy                   int32 [N+1] (one puzzle per group)
        dataset.json                             PuzzleDatasetMetadata fields
    moderate/identifiers.json, hard/identifiers.json   ["<blank>"]
    generation.json                              counts, blank ranges, sha256 of every file

    python3 references/python/sudoku9.py --out DIR --seed 0

Each puzzle has its own random stream derived from (seed, split, index), so --workers does
not change the output.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from typing import List, Optional, Sequence

import numpy as np

PAD, BLANK, OFFSET = 0, 1, 1  # token = digit + OFFSET; blank "0" -> 1 as in the official builder
FULL = 0x1FF

ROW = [i // 9 for i in range(81)]
COL = [i % 9 for i in range(81)]
BOX = [(i // 27) * 3 + (i % 9) // 3 for i in range(81)]
UNITS = ([[r * 9 + c for c in range(9)] for r in range(9)]
         + [[r * 9 + c for r in range(9)] for c in range(9)]
         + [[i for i in range(81) if BOX[i] == b] for b in range(9)])
PEERS = [tuple(j for j in range(81) if j != i and (ROW[j] == ROW[i] or COL[j] == COL[i] or BOX[j] == BOX[i]))
         for i in range(81)]
POP = [bin(m).count("1") for m in range(512)]
DIGIT = {1 << d: d + 1 for d in range(9)}


# ----------------------------------------------------------------------------- solver
# Candidate masks (bit d = digit d+1) with naked- and hidden-single propagation, then
# branching on the cell with fewest candidates. Propagation settles almost every check
# made while blanking 35-45 cells, so the search rarely branches there.

def _eliminate(cand: List[int], queue: List[int]) -> bool:
    """Remove each fixed cell's digit from its peers; False on a contradiction."""
    while queue:
        i = queue.pop()
        b = cand[i]
        for p in PEERS[i]:
            m = cand[p]
            if m & b:
                m &= ~b
                if not m:
                    return False
                cand[p] = m
                if not (m & (m - 1)):
                    queue.append(p)
    return True


def _propagate(cand: List[int], queue: List[int]) -> bool:
    while True:
        if not _eliminate(cand, queue):
            return False
        for unit in UNITS:
            once = twice = 0
            for i in unit:
                m = cand[i]
                twice |= once & m
                once |= m
            if once != FULL:
                return False  # some digit has no place left in this unit
            hidden = once & ~twice
            if hidden:
                for i in unit:
                    m = cand[i]
                    h = m & hidden
                    if h and m != h:
                        if h & (h - 1):
                            return False  # two digits that must both go in one cell
                        cand[i] = h
                        queue.append(i)
        if not queue:
            return True


def _search(cand: List[int], queue: List[int], limit: int, rng: Optional[random.Random], out: list) -> int:
    if not _propagate(cand, queue):
        return 0
    best, best_n = -1, 10
    for i in range(81):
        n = POP[cand[i]]
        if 1 < n < best_n:
            best, best_n = i, n
            if n == 2:
                break
    if best < 0:
        out.append(cand)
        return 1
    m = cand[best]
    bits = [1 << d for d in range(9) if m >> d & 1]
    if rng is not None:
        rng.shuffle(bits)
    found = 0
    for b in bits:
        c = cand[:]
        c[best] = b
        found += _search(c, [best], limit - found, rng, out)
        if found >= limit:
            break
    return found


def _start(digits: Sequence[int]) -> tuple:
    cand = [FULL] * 81
    queue = []
    for i, d in enumerate(digits):
        if d:
            cand[i] = 1 << (d - 1)
            queue.append(i)
    return cand, queue


def count_solutions(digits: Sequence[int], limit: int = 2) -> int:
    """Number of completions of `digits` (81 ints, 0 = blank), counted up to `limit`."""
    cand, queue = _start(digits)
    return _search(cand, queue, limit, None, [])


def solve(digits: Sequence[int]) -> Optional[List[int]]:
    cand, queue = _start(digits)
    out: list = []
    if not _search(cand, queue, 1, None, out):
        return None
    return [DIGIT[m] for m in out[0]]


def random_grid(rng: random.Random) -> List[int]:
    cand = [FULL] * 81
    out: list = []
    _search(cand, [], 1, rng, out)
    return [DIGIT[m] for m in out[0]]


def still_unique(puzzle: List[int], cell: int, digit: int) -> bool:
    """`puzzle` (with `cell` just blanked) had a unique solution with `digit` at `cell`:
    it still has one iff no completion puts another digit there."""
    b = 1 << (digit - 1)
    seen = 0
    for p in PEERS[cell]:
        if puzzle[p]:
            seen |= 1 << (puzzle[p] - 1)
    if seen | b == FULL:
        return True  # the peers' clues force the digit: cheap, and the common case
    cand, queue = _start(puzzle)
    cand[cell] = FULL & ~b & ~seen
    if not cand[cell]:
        return True
    return _search(cand, queue, 1, None, []) == 0


# ----------------------------------------------------------------------------- puzzles

def blank_to(grid: Sequence[int], n_blanks: int, rng: random.Random) -> Optional[List[int]]:
    order = list(range(81))
    rng.shuffle(order)
    p = list(grid)
    k = 0
    for c in order:
        if k == n_blanks:
            break
        d = p[c]
        p[c] = 0
        if still_unique(p, c, d):
            k += 1
        else:
            p[c] = d
    return p if k == n_blanks else None


def minimal(grid: Sequence[int], rng: random.Random) -> List[int]:
    order = list(range(81))
    rng.shuffle(order)
    p = list(grid)
    for c in order:
        d = p[c]
        p[c] = 0
        if not still_unique(p, c, d):
            p[c] = d
    return p


SPLIT_CODE = {"train": 1, "test": 2, "hard": 3}


def make_one(args) -> tuple:
    """One (grid, puzzle) from its own random stream, so workers cannot change the output."""
    seed, split, index, lo, hi, attempt = args
    rng = random.Random(((seed * 4 + SPLIT_CODE[split]) * 1_000_003 + index) * 64 + attempt)
    grid = random_grid(rng)
    if split == "hard":
        # lo = number of greedy passes (random orders); keep the one with the fewest clues
        best = None
        for _ in range(max(1, lo)):
            p = minimal(grid, rng)
            if best is None or p.count(0) > best.count(0):
                best = p
        return grid, best
    nb = rng.randint(lo, hi)
    return grid, blank_to(grid, nb, rng)


def to_tokens(digits: Sequence[int]) -> List[int]:
    return [d + OFFSET if d else BLANK for d in digits]


# ----------------------------------------------------------------------------- writing

def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_jsonl(path: str, rows) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def write_dataset_split(folder: str, puzzles: Sequence[Sequence[int]], grids: Sequence[Sequence[int]]) -> None:
    """The official layout: one example per puzzle, one puzzle per group, identifier 0."""
    os.makedirs(folder, exist_ok=True)
    n = len(puzzles)
    # the official builder stores digits 0..9 (0 = blank) shifted by one, as uint8
    inputs = np.asarray(puzzles, dtype=np.uint8).reshape(n, 81) + np.uint8(1)
    labels = np.asarray(grids, dtype=np.uint8).reshape(n, 81) + np.uint8(1)
    arrays = {
        "inputs": inputs,
        "labels": labels,
        "group_indices": np.arange(n + 1, dtype=np.int32),
        "puzzle_indices": np.arange(n + 1, dtype=np.int32),
        "puzzle_identifiers": np.zeros(n, dtype=np.int32),
    }
    meta = {  # field order of PuzzleDatasetMetadata
        "pad_id": PAD,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "vocab_size": 11,
        "seq_len": 81,
        "num_puzzle_identifiers": 1,
        "total_groups": n,
        "mean_puzzle_examples": 1.0,
        "total_puzzles": n,
        "sets": ["all"],
    }
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(meta, f)
    for k, v in arrays.items():
        np.save(os.path.join(folder, f"all__{k}.npy"), v)


def generate(split: str, n: int, lo: int, hi: int, seed: int, workers: int, taken: set) -> tuple:
    jobs = [(seed, split, i, lo, hi, 0) for i in range(n)]
    if workers > 1:
        import multiprocessing as mp
        with mp.Pool(workers) as pool:
            results = pool.map(make_one, jobs, chunksize=64)
    else:
        results = [make_one(j) for j in jobs]
    grids, puzzles = [], []
    for i, (g, p) in enumerate(results):
        attempt = 0
        # a repeated grid or an unreachable blank count is redrawn from the next stream
        while p is None or tuple(g) in taken:
            attempt += 1
            g, p = make_one((seed, split, i, lo, hi, attempt))
        taken.add(tuple(g))
        grids.append(g)
        puzzles.append(p)
    return grids, puzzles


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=40000, help="moderate training puzzles")
    ap.add_argument("--test", type=int, default=1000, help="moderate test puzzles")
    ap.add_argument("--hard", type=int, default=300, help="hard (minimal) test puzzles")
    ap.add_argument("--hard-tries", type=int, default=8,
                    help="greedy passes per hard puzzle (random cell orders); the fewest clues wins")
    ap.add_argument("--blanks", default="35-45", help="blank-count range of the moderate split")
    ap.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    ap.add_argument("--no-train-files", action="store_true",
                    help="skip the training split (the test splits stay the same)")
    a = ap.parse_args(argv)
    lo, hi = (int(v) for v in a.blanks.split("-"))
    t0 = time.time()
    taken: set = set()
    # test grids are drawn first and train grids must differ from them
    te_g, te_p = generate("test", a.test, lo, hi, a.seed, a.workers, taken)
    hd_g, hd_p = generate("hard", a.hard, a.hard_tries, 0, a.seed, a.workers, taken)
    # train comes last, so leaving it out cannot change the test splits
    n_train = 0 if a.no_train_files else a.train
    tr_g, tr_p = generate("train", n_train, lo, hi, a.seed, a.workers, taken)
    assert len(taken) == n_train + a.test + a.hard
    for g, p in zip(te_g + hd_g + tr_g, te_p + hd_p + tr_p):
        assert all(v == 0 or v == gv for v, gv in zip(p, g))
    print(f"generated in {time.time() - t0:.0f}s", file=sys.stderr)

    os.makedirs(a.out, exist_ok=True)
    splits = [("test", "moderate/test", "test.jsonl", te_g, te_p), ("hard", "hard/test", "test_hard.jsonl", hd_g, hd_p)]
    if not a.no_train_files:
        splits.insert(0, ("train", "moderate/train", "train.jsonl", tr_g, tr_p))
    # no --out / --workers here: the file must not depend on where or how fast it was written
    info = {"args": {k: v for k, v in vars(a).items() if k not in ("out", "workers")}, "splits": {}}
    for name, folder, jsonl, grids, puzzles in splits:
        if not puzzles:
            continue
        blanks = [p.count(0) for p in puzzles]
        rows = [{"id": f"{name}-{i:05d}-b{b}", "tokens": to_tokens(p), "label": to_tokens(g)}
                for i, (g, p, b) in enumerate(zip(grids, puzzles, blanks))]
        write_jsonl(os.path.join(a.out, jsonl), rows)
        write_dataset_split(os.path.join(a.out, folder), puzzles, grids)
        hist = {str(b): blanks.count(b) for b in sorted(set(blanks))}
        info["splits"][name] = {"puzzles": len(puzzles), "jsonl": jsonl, "folder": folder,
                                "blanks_min": min(blanks), "blanks_max": max(blanks), "blanks_hist": hist}
        print(f"{name}: {len(puzzles)} puzzles, blanks {min(blanks)}-{max(blanks)}", file=sys.stderr)
    for top in ("moderate", "hard"):
        if not os.path.isdir(os.path.join(a.out, top)):
            continue
        with open(os.path.join(a.out, top, "identifiers.json"), "w") as f:
            json.dump(["<blank>"], f)
    files = []
    for root, _, names in os.walk(a.out):
        for nm in names:
            rel = os.path.relpath(os.path.join(root, nm), a.out)
            if rel != "generation.json":
                files.append(rel)
    info["sha256"] = {rel: sha256_file(os.path.join(a.out, rel)) for rel in sorted(files)}
    with open(os.path.join(a.out, "generation.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
