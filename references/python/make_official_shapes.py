#!/usr/bin/env python3
"""Write random-weight bundles at the official TinyRecursiveModels sizes, with a torch
parity reference, into a folder (for tests/official_shapes_test.ts; nothing is committed).

    python3 references/python/make_official_shapes.py --out /tmp/shapes --seed 0 \
        [--cases trm_mlp_sudoku,trm_att_maze] [--dtypes float32,float64] [--examples 2] [--steps sup]

Cases (D=512, SwiGLU expansion 4, halt_max_steps 16, the official configs and README
commands; seq_len and vocab from the official dataset builders):

    trm_mlp_sudoku      TRM mlp_t, pos none, Sudoku-Extreme S=81 + P=16, V=11, H3/L6, 2 layers
    trm_att_sudoku      TRM attention + RoPE, S=81 + P=16, V=11, H3/L6, 2 layers
    trm_learned_sudoku  TRM attention, learned positions, S=81 + P=16, V=11, H3/L6, 2 layers
    trm_att_maze        TRM attention + RoPE, Maze-Hard S=900 + P=16, V=6, H3/L4, 2 layers
    trm_att_arc         TRM attention + RoPE, ARC S=900 + P=16, V=12, H3/L4, 2 layers,
                        8 puzzle ids (real ARC datasets have ~10^5..10^6)
    hrm_sudoku          HRM attention + RoPE, S=81 + P=1, V=11, H2/L2, 4 + 4 layers

All have 8 heads of head_dim 64 and puzzle_emb_ndim 512 (one id for Sudoku and Maze, as
their builders write). Weights are seeded random: official-style truncated-normal layers,
H_init/L_init rounded to bfloat16 (official checkpoints store them so), and, unlike a
fresh official model, a random puzzle embedding (std 1/sqrt(D)) and q_head, so that every
path carries signal.

For each case and dtype it writes OUT/<case>/<dtype>/ (model.json + ONNX graphs, exported
by export.py without its own onnxruntime check) and OUT/<case>/ref_<dtype>/ with the torch
reference (the model cast to <dtype>) on --examples seeded puzzles, all floats saved as
float64 .npy:

    tokens.npy [N,S] int64, puzzle_identifiers.npy [N] int64
    first_zL.npy [N,P+S,D]   z_L after the first net call (s0.h0.l0)
    z_H.npy, z_L.npy         [N,P+S,D] after supervision step 0 (only --steps sup)
    logits.npy [N,S,V], q_halt.npy [N], preds.npy [N,S] int64   (only --steps sup)
    meta.json                the case, its config and the files (timings go to stderr)

--steps first computes only the first net call (cheap at S=900); --steps sup also the
whole first supervision step; --steps float32:first,float64:sup chooses per dtype.

--official-layout also writes what a TinyRecursiveModels run leaves behind, for tests of
export.py's official path: OUT/<case>/official/step_0 (the state dict under
`_orig_mod.model.inner.`, H_init/L_init in bfloat16), OUT/<case>/official/all_config.yaml
(the arch block as pretrain.py dumps it) and OUT/<case>/data/<dataset>/test/ (dataset.json
as the official builder writes it, and all__*.npy with the reference puzzles).
--hidden-size overrides D (heads stay 8) to make small models of the same layout.
Same inputs and --seed give the same files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from trm_model import ModelConfig, RecursiveModel  # noqa: E402
from export import export_bundle  # noqa: E402

COMMON = dict(hidden_size=512, num_heads=8, expansion=4.0, halt_max_steps=16, puzzle_emb_ndim=512)
CASES = {
    "trm_mlp_sudoku": dict(family="trm", seq_len=81, vocab_size=11, puzzle_emb_len=16, num_puzzle_identifiers=1,
                           H_cycles=3, L_cycles=6, L_layers=2, pos_encodings="none", mlp_t=True),
    "trm_att_sudoku": dict(family="trm", seq_len=81, vocab_size=11, puzzle_emb_len=16, num_puzzle_identifiers=1,
                           H_cycles=3, L_cycles=6, L_layers=2, pos_encodings="rope"),
    "trm_learned_sudoku": dict(family="trm", seq_len=81, vocab_size=11, puzzle_emb_len=16, num_puzzle_identifiers=1,
                               H_cycles=3, L_cycles=6, L_layers=2, pos_encodings="learned"),
    "trm_att_maze": dict(family="trm", seq_len=900, vocab_size=6, puzzle_emb_len=16, num_puzzle_identifiers=1,
                         H_cycles=3, L_cycles=4, L_layers=2, pos_encodings="rope"),
    "trm_att_arc": dict(family="trm", seq_len=900, vocab_size=12, puzzle_emb_len=16, num_puzzle_identifiers=8,
                        H_cycles=3, L_cycles=4, L_layers=2, pos_encodings="rope"),
    "hrm_sudoku": dict(family="hrm", seq_len=81, vocab_size=11, puzzle_emb_len=0, num_puzzle_identifiers=1,
                       H_cycles=2, L_cycles=2, L_layers=4, H_layers=4, pos_encodings="rope"),
}
TOKENS = {  # the official builders' token maps (export.py infers the same from dataset.json)
    11: {"pad": 0, "blank": 1, "symbols": [str(d) for d in range(1, 10)], "symbol_offset": 2},
    6: {"pad": 0, "blank": 2, "symbols": ["#", " ", "S", "G", "o"], "symbol_offset": 1},
    12: {"pad": 0, "blank": 0, "symbols": ["<eos>"] + [str(c) for c in range(10)], "symbol_offset": 1},
}


DATASETS = {  # vocab_size -> the official builder's default output folder name
    11: "sudoku-extreme-1k-aug-1000",
    6: "maze-30x30-hard-1k",
    12: "arc1concept-aug-1000",
}


def case_config(name: str, hidden_size: int = 512) -> ModelConfig:
    c = dict(COMMON, **CASES[name])
    c["hidden_size"] = c["puzzle_emb_ndim"] = hidden_size
    return ModelConfig(**c)


def write_official_layout(model: RecursiveModel, case_dir: str, tok, pid, seed: int) -> None:
    """step_0 + all_config.yaml + an official-builder dataset folder (see the module docstring)."""
    import yaml
    cfg = model.cfg
    off = os.path.join(case_dir, "official")
    os.makedirs(off, exist_ok=True)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().to(torch.bfloat16 if k in ("H_init", "L_init") else torch.float32).clone()
        sd["_orig_mod.model.inner." + k] = v
    torch.save(sd, os.path.join(off, "step_0"))
    arch = {
        "name": ("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1" if cfg.family == "trm"
                 else "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"),
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
        "halt_exploration_prob": 0.1, "halt_max_steps": cfg.halt_max_steps,
        "H_cycles": cfg.H_cycles, "L_cycles": cfg.L_cycles, "H_layers": cfg.H_layers, "L_layers": cfg.L_layers,
        "hidden_size": cfg.hidden_size, "num_heads": cfg.num_heads, "expansion": int(cfg.expansion),
        "puzzle_emb_ndim": cfg.puzzle_emb_ndim, "pos_encodings": cfg.pos_encodings, "forward_dtype": "bfloat16",
        "mlp_t": cfg.mlp_t,
    }
    if cfg.family == "trm":
        arch.update(puzzle_emb_len=cfg.puzzle_emb_len, no_ACT_continue=True)
    name = DATASETS[cfg.vocab_size]
    with open(os.path.join(off, "all_config.yaml"), "w") as f:
        yaml.safe_dump({"arch": arch, "data_paths": [f"data/{name}"], "global_batch_size": 768, "seed": seed}, f)
    test = os.path.join(case_dir, "data", name, "test")
    os.makedirs(test, exist_ok=True)
    n = tok.shape[0]
    meta = {"pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": cfg.vocab_size,
            "seq_len": cfg.seq_len, "num_puzzle_identifiers": cfg.num_puzzle_identifiers, "total_groups": n,
            "mean_puzzle_examples": 1, "total_puzzles": n, "sets": ["all"]}
    with open(os.path.join(test, "dataset.json"), "w") as f:
        json.dump(meta, f)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, cfg.vocab_size, tok.shape, generator=g)
    np.save(os.path.join(test, "all__inputs.npy"), tok.numpy().astype(np.uint8))
    np.save(os.path.join(test, "all__labels.npy"), labels.numpy().astype(np.uint8))
    np.save(os.path.join(test, "all__puzzle_identifiers.npy"), pid.numpy().astype(np.int32))
    np.save(os.path.join(test, "all__puzzle_indices.npy"), np.arange(n + 1, dtype=np.int32))
    np.save(os.path.join(test, "all__group_indices.npy"), np.arange(n + 1, dtype=np.int32))


def build_model(name: str, seed: int, hidden_size: int = 512) -> RecursiveModel:
    torch.manual_seed(seed * 1000 + zlib.crc32(name.encode()) % 1000)  # stable when cases are added
    cfg = case_config(name, hidden_size)
    model = RecursiveModel(cfg, trainable_puzzle_emb=False).eval()
    D = cfg.hidden_size
    with torch.no_grad():
        model.puzzle_emb.weights.normal_(0.0, D ** -0.5)
        model.q_head.weight.normal_(0.0, D ** -0.5)
        model.q_head.bias.normal_(0.0, 0.3)
        model.H_init.copy_(model.H_init.bfloat16().float())
        model.L_init.copy_(model.L_init.bfloat16().float())
    return model


def puzzles(cfg: ModelConfig, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(1, cfg.vocab_size, (n, cfg.seq_len), generator=g, dtype=torch.int64)
    pid = torch.randint(0, cfg.num_puzzle_identifiers, (n,), generator=g, dtype=torch.int64)
    return tok, pid


@torch.no_grad()
def reference(model: RecursiveModel, tok, pid, steps: str) -> dict:
    """Torch states after the first net call and (steps == "sup") after supervision step 0."""
    cfg = model.cfg
    x = model.embed(tok, pid)
    c = model.initial_carry(tok.shape[0])
    z_H, z_L = c.z_H, c.z_L
    out = {}
    for h in range(cfg.H_cycles):
        for l in range(cfg.L_cycles):
            z_L = model.L_net(z_L, z_H + x)
            if "first_zL" not in out:
                out["first_zL"] = z_L
                if steps == "first":
                    return out
        z_H = model.H_net(z_H, z_L)
    logits, q = model.head(z_H)
    out.update(z_H=z_H, z_L=z_L, logits=logits, q_halt=q, preds=logits.argmax(-1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--examples", type=int, default=2, help="puzzles in the reference")
    ap.add_argument("--steps", default="sup",
                    help="first (reference up to the first net call), sup (the whole first supervision step), "
                         "or per dtype: float32:first,float64:sup")
    ap.add_argument("--official-layout", action="store_true",
                    help="also write step_0, all_config.yaml and a dataset folder as the official code does")
    ap.add_argument("--hidden-size", type=int, default=512, help="D (and puzzle_emb_ndim); 512 is official")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    steps = {}
    for part in a.steps.split(","):
        dt, _, st = part.rpartition(":")
        if st not in ("first", "sup"):
            ap.error(f"--steps: {part!r}; expected first, sup or DTYPE:first|sup")
        steps[dt or "*"] = st
    torch.set_num_threads(a.threads)
    cases = [c for c in a.cases.split(",") if c]
    dtypes = [d for d in a.dtypes.split(",") if d]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; known: {', '.join(CASES)}")
    for d in dtypes:
        if d not in ("float32", "float64"):
            ap.error(f"unknown dtype {d!r}")
    for name in cases:
        model = build_model(name, a.seed, a.hidden_size)
        cfg = model.cfg
        tok, pid = puzzles(cfg, a.examples, a.seed * 1000 + 7)
        if a.official_layout:
            write_official_layout(model, os.path.join(a.out, name), tok, pid, a.seed)
        src = {"generator": "references/python/make_official_shapes.py", "seed": a.seed, "case": name,
               "weights": "random"}
        for dt in dtypes:
            t0 = time.time()
            out = os.path.join(a.out, name, dt)
            export_bundle(model, out, dt, f"{name}-{dt}", TOKENS[cfg.vocab_size], src, verify=False, quiet=True)
            t1 = time.time()
            m = model.to(torch.float64 if dt == "float64" else torch.float32)
            st = steps.get(dt, steps.get("*", "first"))
            res = reference(m, tok, pid, st)
            model.to(torch.float32)
            t2 = time.time()
            ref = os.path.join(a.out, name, f"ref_{dt}")
            os.makedirs(ref, exist_ok=True)
            arrays = {"tokens": tok, "puzzle_identifiers": pid, **res}
            files = {}
            for k, v in arrays.items():
                v = v.numpy() if v.dtype in (torch.int64,) else v.double().numpy()
                np.save(os.path.join(ref, f"{k}.npy"), np.ascontiguousarray(v))
                files[k] = {"file": f"{k}.npy", "shape": list(v.shape)}
            meta = {"format": "trminterp-official-shapes/1", "case": name, "dtype": dt, "steps": st,
                    "seed": a.seed, "config": cfg.to_dict(), "bundle": f"../{dt}", "files": files}
            with open(os.path.join(ref, "meta.json"), "w") as f:
                json.dump(meta, f, indent=1)
                f.write("\n")
            print(f"{name} {dt}: export {t1 - t0:.1f}s, torch ({st}, {a.examples} examples) {t2 - t1:.1f}s",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
