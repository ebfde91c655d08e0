#!/usr/bin/env python3
"""Compare the reference model (trm_model.py) with the official TinyRecursiveModels code.

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/TinyRecursiveModels
    pip install pydantic einops        # the official model code imports them
    python3 references/python/official_check.py --official-repo /tmp/TinyRecursiveModels --seed 0 \
        [--cases trm_mlp_sudoku,hrm_sudoku] [--dtypes float32,float64,bfloat16] [--examples 2] [--sups 1]

Nothing of the official code is copied here: this script imports it from --official-repo.
For each case of make_official_shapes.py (the same random weights) and each dtype it builds
the official model (`forward_dtype` = the dtype; its state dict loaded from ours, strict),
runs --sups supervision steps of the official evaluation (ACT wrapper in eval mode) and our
reference rollout on the same seeded puzzles, and prints max |ours - official| for the embed
output, the first net call (z_L at s0.h0.l0) and, per supervision step, z_H, z_L, logits and
q_halt, and whether the predictions are identical. float64: the official model is cast with
`.to(torch.float64)` and its `rms_norm` is replaced by the same formula without the float32
cast (which would otherwise round a float64 model to float32 in every norm); its q logits are
still cast to float32 (a difference of ~1e-7 in q_halt). Runs on the CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_official_shapes as shapes  # noqa: E402
from trm_model import ModelConfig  # noqa: E402


def official_model(mods, cfg: ModelConfig, batch: int, dtype: str):
    trm, hrm = mods
    ocfg = dict(batch_size=batch, seq_len=cfg.seq_len, puzzle_emb_ndim=cfg.puzzle_emb_ndim,
                num_puzzle_identifiers=cfg.num_puzzle_identifiers, vocab_size=cfg.vocab_size,
                H_cycles=cfg.H_cycles, L_cycles=cfg.L_cycles, H_layers=cfg.H_layers, L_layers=cfg.L_layers,
                hidden_size=cfg.hidden_size, expansion=cfg.expansion, num_heads=cfg.num_heads,
                pos_encodings=cfg.pos_encodings, halt_max_steps=cfg.halt_max_steps, halt_exploration_prob=0.1,
                forward_dtype=dtype, mlp_t=cfg.mlp_t)
    if cfg.family == "trm":
        ocfg["puzzle_emb_len"] = cfg.puzzle_emb_len
        return trm.TinyRecursiveReasoningModel_ACTV1(ocfg)
    return hrm.HierarchicalReasoningModel_ACTV1(ocfg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official-repo", required=True, help="a clone of SamsungSAILMontreal/TinyRecursiveModels")
    ap.add_argument("--cases", default=",".join(shapes.CASES))
    ap.add_argument("--dtypes", default="float32,float64,bfloat16")
    ap.add_argument("--examples", type=int, default=2)
    ap.add_argument("--sups", type=int, default=1, help="supervision steps to compare")
    ap.add_argument("--hidden-size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    sys.path.insert(0, os.path.abspath(a.official_repo))
    from models.recursive_reasoning import trm, hrm  # noqa: E402  (the official code)

    def rms_norm_keep(h, variance_epsilon):  # the official formula without the float32 cast
        return h * torch.rsqrt(h.square().mean(-1, keepdim=True) + variance_epsilon)

    official_rms = (trm.rms_norm, hrm.rms_norm)
    d = lambda p, q: (p.double() - q.double()).abs().max().item()  # noqa: E731
    print("| case | dtype | embed | first call | sup | z_H | z_L | logits | q_halt | preds same |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in [c for c in a.cases.split(",") if c]:
        for dt in [x for x in a.dtypes.split(",") if x]:
            tdt = getattr(torch, dt)
            ours = shapes.build_model(name, a.seed, a.hidden_size)
            cfg = ours.cfg
            tok, pid = shapes.puzzles(cfg, a.examples, a.seed * 1000 + 7)
            off = official_model((trm, hrm), cfg, a.examples, dt)
            off.inner.load_state_dict(ours.state_dict(), strict=True)
            if dt == "float64":
                trm.rms_norm = hrm.rms_norm = rms_norm_keep
                off = off.to(torch.float64)
            else:
                trm.rms_norm, hrm.rms_norm = official_rms
            off.eval()
            ours = ours.to(tdt)
            first = {}

            def hook(mod, inp, out):
                first.setdefault("zL", out.detach().clone())  # returns None: the output is kept

            h = off.inner.L_level.register_forward_hook(hook)
            batch = {"inputs": tok, "labels": tok, "puzzle_identifiers": pid}
            t0 = time.time()
            with torch.no_grad():
                carry = off.initial_carry(batch)
                theirs = []
                for _ in range(a.sups):
                    carry, o = off(carry=carry, batch=batch)
                    theirs.append((carry.inner_carry.z_H, carry.inner_carry.z_L, o["logits"], o["q_halt_logits"]))
                ox = off.inner._input_embeddings(tok, pid)
            h.remove()
            with torch.no_grad():
                ids = pid if cfg.puzzle_emb_ndim > 0 else None
                x = ours.embed(tok, ids)
                c = ours.initial_carry(a.examples)
                z_H, z_L, f = c.z_H, c.z_L, None
                mine = []
                for _ in range(a.sups):
                    for _h in range(cfg.H_cycles):
                        for _l in range(cfg.L_cycles):
                            z_L = ours.L_net(z_L, z_H + x)
                            f = z_L if f is None else f
                        z_H = ours.H_net(z_H, z_L)
                    lg, q = ours.head(z_H)
                    mine.append((z_H, z_L, lg, q))
            trm.rms_norm, hrm.rms_norm = official_rms
            for s in range(a.sups):
                m, t = mine[s], theirs[s]
                same = bool((m[2].argmax(-1) == t[2].argmax(-1)).all())
                print(f"| {name} | {dt} | {d(x, ox):.3g} | {d(f, first['zL']):.3g} | {s} | {d(m[0], t[0]):.3g} | "
                      f"{d(m[1], t[1]):.3g} | {d(m[2], t[2]):.3g} | {d(m[3], t[3]):.3g} | {'yes' if same else 'NO'} |",
                      flush=True)
            print(f"  ({name} {dt}: {time.time() - t0:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
