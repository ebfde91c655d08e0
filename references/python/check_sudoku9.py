#!/usr/bin/env python3
"""Checks of sudoku9.py, run by tests/sudoku9_test.ts (prints one JSON line, exits 1 on a
failure).

    python3 references/python/check_sudoku9.py --tmp DIR [--committed references/models/sudoku9-trm-mlp/data]

1. Two runs with the same seed (one with 1 worker, one with 2) write byte-identical files
   (sha256 of every file); another seed writes different puzzles.
2. Every puzzle of every split has exactly one solution, and it is the label; every hard
   puzzle is minimal (removing any clue admits a second solution); blank counts lie in the
   stated ranges.
3. No solution grid appears twice, within or across splits.
4. The dataset folders follow the official layout (file names, dtypes, shapes, indices,
   dataset.json keys and values) and match the JSONL files.
5. With --committed: the generator reproduces the committed test splits (all of the
   moderate split, the first --hard-prefix puzzles of the hard split).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sudoku9  # noqa: E402

META_KEYS = ["pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len", "num_puzzle_identifiers",
             "total_groups", "mean_puzzle_examples", "total_puzzles", "sets"]


def digest_tree(root: str) -> dict:
    out = {}
    for d, _, names in os.walk(root):
        for nm in names:
            p = os.path.join(d, nm)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return dict(sorted(out.items()))


def count_plain(digits, limit: int = 2) -> int:
    """Solutions up to `limit` by plain row/column/box-mask backtracking: written apart from
    sudoku9.py's propagating solver so that a bug there cannot hide itself."""
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    empty = []
    for i, d in enumerate(digits):
        r, c, b = i // 9, i % 9, (i // 27) * 3 + (i % 9) // 3
        if d:
            bit = 1 << d
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return 0
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
        else:
            empty.append((r, c, b))

    def go(todo, limit) -> int:
        if not todo:
            return 1
        # the cell with the fewest free digits
        k = max(range(len(todo)), key=lambda j: bin(rows[todo[j][0]] | cols[todo[j][1]] | boxes[todo[j][2]]).count("1"))
        r, c, b = todo[k]
        rest = todo[:k] + todo[k + 1:]
        n = 0
        for d in range(1, 10):
            bit = 1 << d
            if not (rows[r] | cols[c] | boxes[b]) & bit:
                rows[r] |= bit
                cols[c] |= bit
                boxes[b] |= bit
                n += go(rest, limit - n)
                rows[r] ^= bit
                cols[c] ^= bit
                boxes[b] ^= bit
                if n >= limit:
                    break
        return n

    return go(empty, limit)


def read_folder(folder: str) -> dict:
    files = {k: np.load(os.path.join(folder, f"all__{k}.npy"))
             for k in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")}
    with open(os.path.join(folder, "dataset.json")) as f:
        files["meta"] = json.load(f)
    return files


def check_folder(folder: str, jsonl: str, fail) -> tuple:
    f = read_folder(folder)
    n = len(f["inputs"])
    for k in ("inputs", "labels"):
        if f[k].dtype != np.uint8 or f[k].shape != (n, 81):
            fail(f"{folder}: all__{k}.npy is {f[k].dtype} {f[k].shape}, want uint8 ({n}, 81)")
    for k, want in (("puzzle_identifiers", np.zeros(n)), ("puzzle_indices", np.arange(n + 1)),
                    ("group_indices", np.arange(n + 1))):
        if f[k].dtype != np.int32 or not np.array_equal(f[k], want):
            fail(f"{folder}: all__{k}.npy is not int32 {want[:4]}...")
    m = f["meta"]
    if list(m) != META_KEYS:
        fail(f"{folder}: dataset.json keys {list(m)}")
    want = {"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 11, "seq_len": 81,
            "num_puzzle_identifiers": 1, "total_groups": n, "mean_puzzle_examples": 1.0, "total_puzzles": n,
            "sets": ["all"]}
    if m != want or not isinstance(m["mean_puzzle_examples"], float):
        fail(f"{folder}: dataset.json {m}")
    if f["inputs"].min() < 1 or f["inputs"].max() > 10 or f["labels"].min() < 2 or f["labels"].max() > 10:
        fail(f"{folder}: token values outside blank 1 / digits 2..10")
    rows = [json.loads(l) for l in open(jsonl)]
    if (np.asarray([r["tokens"] for r in rows]) != f["inputs"]).any() or \
            (np.asarray([r["label"] for r in rows]) != f["labels"]).any():
        fail(f"{jsonl} and {folder} differ")
    puzzles = [[int(v) - 1 for v in row] for row in f["inputs"]]
    grids = [[int(v) - 1 for v in row] for row in f["labels"]]
    return puzzles, grids


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tmp", required=True, help="scratch folder (two generator runs go there)")
    ap.add_argument("--committed", default=None, help="the committed dataset folder (moderate/, hard/) to reproduce")
    ap.add_argument("--committed-seed", type=int, default=0)
    ap.add_argument("--hard-prefix", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3, help="seed of the small generator runs")
    a = ap.parse_args(argv)
    errors = []

    def fail(msg):
        errors.append(msg)

    small = ["--train", "300", "--test", "60", "--hard", "6", "--seed", str(a.seed)]
    d1, d2, d3 = (os.path.join(a.tmp, n) for n in ("run1", "run2", "other_seed"))
    sudoku9.main(small + ["--out", d1])
    sudoku9.main(small + ["--out", d2, "--workers", "2"])
    sudoku9.main(["--train", "300", "--test", "60", "--hard", "6", "--seed", str(a.seed + 1), "--out", d3])
    h1, h2, h3 = digest_tree(d1), digest_tree(d2), digest_tree(d3)
    if h1 != h2:
        fail(f"same seed, different bytes: {[k for k in h1 if h1[k] != h2.get(k)]}")
    if h1["moderate/test/all__inputs.npy"] == h3["moderate/test/all__inputs.npy"]:
        fail("another seed gave the same test puzzles")
    gen = json.load(open(os.path.join(d1, "generation.json")))
    if gen["sha256"] != {k: v for k, v in h1.items() if k != "generation.json"}:
        fail("generation.json sha256 does not match the files")

    seen = set()
    n_checked = 0
    for split, folder, jsonl in (("train", "moderate/train", "train.jsonl"), ("test", "moderate/test", "test.jsonl"),
                                 ("hard", "hard/test", "test_hard.jsonl")):
        puzzles, grids = check_folder(os.path.join(d1, folder), os.path.join(d1, jsonl), fail)
        for p, g in zip(puzzles, grids):
            n_checked += 1
            if sudoku9.count_solutions(p) != 1 or sudoku9.solve(p) != g:
                fail(f"{split}: a puzzle without a unique solution equal to its label")
            if split != "train" and count_plain(p) != 1:
                fail(f"{split}: the plain solver finds {count_plain(p)} solutions")
            if any(v and v != gv for v, gv in zip(p, g)) or count_plain(g) != 1:
                fail(f"{split}: the label is not a valid grid matching the clues")
            nb = p.count(0)
            if split != "hard" and not 35 <= nb <= 45:
                fail(f"{split}: {nb} blanks")
            if split == "hard":
                for c in range(81):
                    if p[c]:
                        q = list(p)
                        q[c] = 0
                        if count_plain(q) != 2:
                            fail("hard: a clue can be removed keeping the solution unique")
                            break
            if tuple(g) in seen:
                fail(f"{split}: solution grid seen before")
            seen.add(tuple(g))
        if len(puzzles) != gen["splits"][split]["puzzles"]:
            fail(f"{split}: count differs from generation.json")

    reproduced = []
    if a.committed:
        d4 = os.path.join(a.tmp, "committed")
        sudoku9.main(["--out", d4, "--seed", str(a.committed_seed), "--no-train-files", "--test", "1000",
                      "--hard", str(a.hard_prefix)])
        for folder, prefix in (("moderate/test", None), ("hard/test", a.hard_prefix)):
            mine, theirs = read_folder(os.path.join(d4, folder)), read_folder(os.path.join(a.committed, folder))
            for k in ("inputs", "labels"):
                t = theirs[k] if prefix is None else theirs[k][:prefix]
                if not np.array_equal(mine[k], t) or mine[k].dtype != t.dtype:
                    fail(f"committed {folder}/all__{k}.npy is not what the generator writes")
            if prefix is None and digest_tree(os.path.join(d4, folder)) != digest_tree(os.path.join(a.committed, folder)):
                fail(f"committed {folder} differs byte-wise from a fresh run")
            reproduced.append(folder if prefix is None else f"{folder}[:{prefix}]")

    print(json.dumps({"ok": not errors, "errors": errors[:10], "puzzles_checked": n_checked,
                      "sha256_run1": h1["moderate/train/all__inputs.npy"], "reproduced": reproduced}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
