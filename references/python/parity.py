#!/usr/bin/env python3
"""Reference rollout for parity tests: run the torch model step by step on a puzzles JSONL
and write float64 .npy files plus meta.json.

    python3 references/python/parity.py --bundle B --checkpoint ckpt.pt --puzzles p.jsonl \
        --out DIR [--limit N] [--dtype float32|float64] [--all-states] [--check-onnx]

The torch model runs in the bundle's dtype (model.json "dtype") unless --dtype says
otherwise; all float outputs are saved as float64. Puzzle ids come from an optional
"puzzle_identifier" field of each JSONL line (0 when absent). Written files (T =
halt_max_steps, N = puzzles, L = P+S):

    tokens.npy              int64 [N,S]
    puzzle_identifiers.npy  int64 [N]
    x.npy                   [N,L,D]   embed output
    first_zL.npy            [N,L,D]   z_L after the first net call (address s0.h0.l0)
    z_H.npy                 [T,N,L,D] z_H after the last H update of each supervision step
    z_L.npy                 [T,N,L,D] z_L at the same point (after its last update)
    logits.npy              [T,N,S,V] head(z_H) of each supervision step
    q_halt.npy              [T,N]
    preds.npy               int64 [T,N,S] argmax(logits)
    states.npy              [K,N,L,D] every net call in execution order (only --all-states;
                            meta.json "state_addresses" names the K rows)
With --check-onnx it also runs the bundle's graphs with onnxruntime on the same schedule
and prints the max abs differences to stderr (nothing of that goes into the files).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trm_model import load_checkpoint, rollout  # noqa: E402

FORMAT = "trminterp-parity/1"


def read_puzzles(path: str, limit: int | None):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def ort_rollout(bundle: str, manifest: dict, tokens: np.ndarray, pids: np.ndarray, opt: bool = True):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if not opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    S = {r: ort.InferenceSession(os.path.join(bundle, g["file"]), so, providers=["CPUExecutionProvider"])
         for r, g in manifest["graphs"].items()}
    ft = np.float64 if manifest["dtype"] == "float64" else np.float32
    feeds = {"tokens": tokens}
    if manifest["puzzle_emb_len"] > 0:
        feeds["puzzle_identifiers"] = pids
    x = S["embed"].run(None, feeds)[0]
    N, L, D = x.shape
    zH = np.broadcast_to(np.asarray(manifest["H_init"], ft), (N, L, D)).copy()
    zL = np.broadcast_to(np.asarray(manifest["L_init"], ft), (N, L, D)).copy()
    Lnet = S.get("net") or S["L_net"]
    Hnet = S.get("net") or S["H_net"]
    sch = manifest["schedule"]
    out = {"x": x, "z_H": [], "z_L": [], "logits": [], "q_halt": [], "first_zL": None}
    for sup in range(sch["halt_max_steps"]):
        for h in range(sch["H_cycles"]):
            for l in range(sch["L_cycles"]):
                zL = Lnet.run(None, {"hidden": zL, "injection": zH + x})[0]
                if out["first_zL"] is None:
                    out["first_zL"] = zL
            zH = Hnet.run(None, {"hidden": zH, "injection": zL})[0]
        lg, q = S["head"].run(None, {"z_H": zH})
        out["z_H"].append(zH); out["z_L"].append(zL); out["logits"].append(lg); out["q_halt"].append(q)
    return {k: (np.stack(v) if isinstance(v, list) else v) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle folder (model.json)")
    ap.add_argument("--checkpoint", required=True, help="torch checkpoint the bundle was exported from")
    ap.add_argument("--puzzles", required=True, help="puzzles JSONL")
    ap.add_argument("--out", required=True, help="folder to write")
    ap.add_argument("--limit", type=int, default=None, help="first N puzzles only")
    ap.add_argument("--dtype", choices=["float32", "float64"], default=None, help="torch compute dtype (default: the bundle's)")
    ap.add_argument("--all-states", action="store_true", help="also write states.npy with every net call")
    ap.add_argument("--check-onnx", action="store_true", help="compare against onnxruntime on stderr")
    ap.add_argument("--seed", type=int, default=0, help="torch seed (the rollout itself is deterministic)")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)

    with open(os.path.join(a.bundle, "model.json"), "rb") as f:
        mbytes = f.read()
    manifest = json.loads(mbytes)
    dtype = a.dtype or manifest["dtype"]
    model = load_checkpoint(a.checkpoint).to(torch.float64 if dtype == "float64" else torch.float32).eval()
    rows = read_puzzles(a.puzzles, a.limit)
    if not rows:
        sys.exit("no puzzles")
    tokens = torch.tensor([r["tokens"] for r in rows], dtype=torch.int64)
    pids = torch.tensor([int(r.get("puzzle_identifier", 0)) for r in rows], dtype=torch.int64)
    labels = np.array([r["label"] for r in rows], dtype=np.int64) if all("label" in r for r in rows) else None
    res = rollout(model, tokens, pids if model.cfg.puzzle_emb_ndim > 0 else None, record_states=True)
    addrs = list(res["states"].keys())
    arrays = {
        "tokens": tokens.numpy(),
        "puzzle_identifiers": pids.numpy(),
        "x": res["x"].double().numpy(),
        "first_zL": res["states"][addrs[0]].double().numpy(),
        "z_H": res["z_H"].double().numpy(),
        "z_L": res["z_L"].double().numpy(),
        "logits": res["logits"].double().numpy(),
        "q_halt": res["q_halt"].double().numpy(),
        "preds": res["logits"].argmax(-1).numpy().astype(np.int64),
    }
    if a.all_states:
        arrays["states"] = torch.stack([res["states"][k] for k in addrs]).double().numpy()
    os.makedirs(a.out, exist_ok=True)
    files = {}
    for k, v in arrays.items():
        v = np.ascontiguousarray(v)
        np.save(os.path.join(a.out, f"{k}.npy"), v)
        files[k] = {"file": f"{k}.npy", "dtype": str(v.dtype), "shape": list(v.shape)}
    per_step = []
    if labels is not None:
        for t in range(arrays["preds"].shape[0]):
            eq = arrays["preds"][t] == labels
            per_step.append({"sup": t, "exact": float(eq.all(-1).mean()), "token": float(eq.mean())})
    meaning = {
        "tokens": "input tokens [N,S]", "puzzle_identifiers": "puzzle ids [N]",
        "x": "embed output [N,P+S,D]", "first_zL": "z_L after the first net call, address s0.h0.l0 [N,P+S,D]",
        "z_H": "z_H after the last H update of supervision step t, address s{t}.h{H_cycles-1}.H [T,N,P+S,D]",
        "z_L": "z_L after its last update in supervision step t, address s{t}.h{H_cycles-1}.l{L_cycles-1} [T,N,P+S,D]",
        "logits": "head(z_H) logits of supervision step t, prefix dropped [T,N,S,V]",
        "q_halt": "head(z_H) q_halt of supervision step t [T,N]",
        "preds": "argmax(logits) [T,N,S]",
        "states": "state after every net call, rows in execution order, see state_addresses [K,N,P+S,D]",
    }
    for k in files:
        files[k]["meaning"] = meaning[k]
    meta = {
        "format": FORMAT,
        "model_name": manifest.get("name"),
        "model_json_sha256": hashlib.sha256(mbytes).hexdigest(),
        "family": manifest["family"],
        "torch_dtype": dtype,
        "saved_float_dtype": "float64",
        "schedule": manifest["schedule"],
        "puzzles": os.path.basename(a.puzzles),
        "limit": a.limit,
        "ids": [r.get("id", str(i)) for i, r in enumerate(rows)],
        "files": files,
        "state_addresses": addrs if a.all_states else None,
        "accuracy_per_step": per_step,
    }
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    if a.check_onnx:
        for opt in (True, False):
            o = ort_rollout(a.bundle, manifest, arrays["tokens"], arrays["puzzle_identifiers"], opt)
            d = {k: float(np.abs(o[k].astype(np.float64) - arrays[k]).max()) for k in ("x", "first_zL", "z_H", "z_L", "logits", "q_halt")}
            same = bool((o["logits"].argmax(-1) == arrays["preds"]).all())
            print(f"onnxruntime ({manifest['dtype']}, optimizations {'on' if opt else 'off'}) vs torch ({dtype}): "
                  + ", ".join(f"{k} {v:.3g}" for k, v in d.items()) + f"; predictions identical: {same}", file=sys.stderr)
    if per_step:
        for s in per_step:
            print(f"sup {s['sup']}: exact {s['exact']:.4f} token {s['token']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
