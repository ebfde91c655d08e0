#!/usr/bin/env python3
r"""Export a TRM/HRM checkpoint to a trminterp bundle (model.json + ONNX graphs, v0-spec §1).

Our checkpoints:
    python3 references/python/export.py --checkpoint ckpt.pt --out bundle/ [--dtype float64]
An official TinyRecursiveModels checkpoint (keys `_orig_mod.model.inner.*`) with its
all_config.yaml and the official dataset it was trained on (the tokens come from the
Sudoku, Maze and ARC builders' conventions; --tokens-json for other data):
    python3 references/python/export.py --checkpoint step_N --official-config all_config.yaml \
        --dataset-json data/sudoku-extreme-1k-aug-1000/test --out bundle/
At the end it prints the `trminterp trace` command for the bundle.

The graphs follow the official numerics (v0-spec §1.4; RoPE tables built in float32, then
cast to the bundle dtype). SiLU is Sigmoid+Mul in float32 graphs and Neg/Exp/Add/Div in
float64 graphs, RMSNorm uses Mul instead of Pow, and attention is MatMul/Softmax/MatMul
with a vector scale: onnxruntime has float64 kernels for every op in the graphs, with graph
optimizations on or off.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trm_model import ModelConfig, RecursiveModel, load_checkpoint  # noqa: E402

FORMAT = "trminterp-bundle/1"
OPSET = 17


class EmbedGraph(nn.Module):
    def __init__(self, m: RecursiveModel):
        super().__init__()
        self.m = m

    def forward(self, tokens, puzzle_identifiers=None):
        return self.m.embed(tokens, puzzle_identifiers)


class NetGraph(nn.Module):
    def __init__(self, m: RecursiveModel, which: str):
        super().__init__()
        self.m, self.which = m, which

    def forward(self, hidden, injection):
        return self.m.L_net(hidden, injection) if self.which == "L" else self.m.H_net(hidden, injection)


class HeadGraph(nn.Module):
    def __init__(self, m: RecursiveModel):
        super().__init__()
        self.m = m

    def forward(self, z_H):
        return self.m.head(z_H)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _export(module, args, path, input_names, output_names, output_shapes):
    dyn = {n: {0: "B"} for n in input_names + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dyn, do_constant_folding=True)
    # pin every non-batch axis of the I/O to its static size (the tracer may leave symbolic names)
    import onnx
    model = onnx.load_from_string(buf.getvalue())
    shapes = {n: tuple(t.shape) for n, t in zip(input_names, args)}
    shapes.update(zip(output_names, output_shapes))
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i == 0:
                d.dim_param = "B"
            else:
                d.dim_value = int(shapes[vi.name][i])
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def graph_roles(family: str):
    return ["embed", "net", "head"] if family == "trm" else ["embed", "L_net", "H_net", "head"]


def export_bundle(model: RecursiveModel, out: str, dtype: str = "float32", name: str = "model",
                  tokens: dict | None = None, source: dict | None = None, halt_mode: str = "max_steps",
                  verify: bool = True, quiet: bool = False, grid: dict | None = None) -> dict:
    cfg = model.cfg
    os.makedirs(out, exist_ok=True)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    m = copy.deepcopy(model).to(tdt).eval()
    P, S, D = cfg.P, cfg.seq_len, cfg.hidden_size
    B = 2
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, cfg.vocab_size, (B, S), generator=g, dtype=torch.int64)
    pid = torch.randint(0, cfg.num_puzzle_identifiers, (B,), generator=g, dtype=torch.int64)
    hid = torch.randn(B, P + S, D, generator=g, dtype=torch.float64).to(tdt)
    inj = torch.randn(B, P + S, D, generator=g, dtype=torch.float64).to(tdt)
    files = {}
    state = [(B, P + S, D)]  # the graphs' output shapes (v0-spec §1.2)
    with torch.no_grad():
        if P > 0 and cfg.puzzle_emb_ndim > 0:
            _export(EmbedGraph(m), (tok, pid), os.path.join(out, "embed.onnx"), ["tokens", "puzzle_identifiers"], ["x"],
                    state)
        else:
            _export(EmbedGraph(m), (tok,), os.path.join(out, "embed.onnx"), ["tokens"], ["x"], state)
        files["embed"] = "embed.onnx"
        if cfg.family == "trm":
            _export(NetGraph(m, "L"), (hid, inj), os.path.join(out, "net.onnx"), ["hidden", "injection"], ["hidden_out"],
                    state)
            files["net"] = "net.onnx"
        else:
            _export(NetGraph(m, "L"), (hid, inj), os.path.join(out, "L_net.onnx"), ["hidden", "injection"],
                    ["hidden_out"], state)
            _export(NetGraph(m, "H"), (hid, inj), os.path.join(out, "H_net.onnx"), ["hidden", "injection"],
                    ["hidden_out"], state)
            files["L_net"], files["H_net"] = "L_net.onnx", "H_net.onnx"
        _export(HeadGraph(m), (hid,), os.path.join(out, "head.onnx"), ["z_H"], ["logits", "q_halt"],
                [(B, S, cfg.vocab_size), (B,)])
        files["head"] = "head.onnx"

    if tokens is None:
        tokens = {"pad": 0, "blank": 1, "symbols": [str(i) for i in range(1, cfg.vocab_size - 1)], "symbol_offset": 2}
    manifest = {
        "format": FORMAT,
        "name": name,
        "family": cfg.family,
        "dtype": dtype,
        "hidden_size": D,
        "seq_len": S,
        "puzzle_emb_len": P,
        "vocab_size": cfg.vocab_size,
        "num_puzzle_identifiers": cfg.num_puzzle_identifiers if cfg.puzzle_emb_ndim > 0 else 1,
        "tokens": tokens,
        **({"grid": grid} if grid is not None else {}),
        "schedule": {"H_cycles": cfg.H_cycles, "L_cycles": cfg.L_cycles,
                     "halt_max_steps": cfg.halt_max_steps, "halt_mode": halt_mode},
        "H_init": [float(v) for v in model.H_init.detach().to(torch.float32).tolist()],
        "L_init": [float(v) for v in model.L_init.detach().to(torch.float32).tolist()],
        "graphs": {role: {"file": f, "sha256": sha256_file(os.path.join(out, f))} for role, f in files.items()},
    }
    if source is not None:
        manifest["source"] = source
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    if verify:
        report = verify_bundle(m, out, manifest)
        if not quiet:
            for k, v in report.items():
                print(f"  verify {k}: max|torch-ort| = {v:.3g}", file=sys.stderr)
        tol = 1e-10 if dtype == "float64" else 1e-3
        bad = {k: v for k, v in report.items() if not v <= tol}
        if bad:
            raise SystemExit(f"export verification failed (tolerance {tol}): {bad}")
    return manifest


def verify_bundle(m: RecursiveModel, out: str, manifest: dict) -> dict:
    """onnx.checker + onnxruntime vs torch on random inputs (batch 3, i.e. not the export batch)."""
    import onnx
    import onnxruntime as ort
    cfg = m.cfg
    tdt = next(m.parameters()).dtype
    P, S, D = cfg.P, cfg.seq_len, cfg.hidden_size
    g = torch.Generator().manual_seed(1)
    B = 3
    tok = torch.randint(0, cfg.vocab_size, (B, S), generator=g, dtype=torch.int64)
    pid = torch.randint(0, cfg.num_puzzle_identifiers, (B,), generator=g, dtype=torch.int64)
    hid = torch.randn(B, P + S, D, generator=g, dtype=torch.float64).to(tdt)
    inj = torch.randn(B, P + S, D, generator=g, dtype=torch.float64).to(tdt)
    rep = {}
    so = ort.SessionOptions()
    for role, spec in manifest["graphs"].items():
        path = os.path.join(out, spec["file"])
        onnx.checker.check_model(onnx.load(path), full_check=True)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            if role == "embed":
                feeds = {"tokens": tok.numpy()}
                if P > 0 and cfg.puzzle_emb_ndim > 0:
                    feeds["puzzle_identifiers"] = pid.numpy()
                ref = [m.embed(tok, pid)]
            elif role == "head":
                feeds = {"z_H": hid.numpy()}
                ref = list(m.head(hid))
            else:
                feeds = {"hidden": hid.numpy(), "injection": inj.numpy()}
                ref = [m.L_net(hid, inj) if role in ("net", "L_net") else m.H_net(hid, inj)]
        got = sess.run(None, feeds)
        for i, (r, o) in enumerate(zip(ref, got)):
            assert o.shape == tuple(r.shape), (role, o.shape, r.shape)
            assert str(o.dtype) == manifest["dtype"], (role, o.dtype)
            rep[f"{role}[{i}]"] = float(np.abs(r.numpy().astype(np.float64) - o.astype(np.float64)).max())
    return rep


OFFICIAL_ARCHS = {
    # arch.name in the official all_config.yaml -> our family; the other official
    # architectures (trm_singlez, trm_hier6, transformers_baseline) have the same weight
    # names but another recurrence, so loading them as TRM would be silently wrong
    "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1": "trm",
    "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1": "hrm",
}


def official_base_config(path: str, meta: dict | None, seq_len: int | None) -> tuple[ModelConfig, dict]:
    """ModelConfig from an official all_config.yaml (or an arch yaml) plus the dataset's
    dataset.json metadata; also returns facts for model.json "source"."""
    import yaml
    with open(path) as f:
        y = yaml.safe_load(f)
    arch = y.get("arch", y)
    name = str(arch.get("name", ""))
    if name not in OFFICIAL_ARCHS:
        raise SystemExit(f"{path}: arch.name {name!r} is not supported; trminterp runs "
                         + " and ".join(repr(k) for k in OFFICIAL_ARCHS))
    base = ModelConfig()
    base.family = OFFICIAL_ARCHS[name]
    for k in ("H_cycles", "L_cycles", "L_layers", "H_layers", "hidden_size", "num_heads", "expansion",
              "halt_max_steps", "pos_encodings", "mlp_t", "rms_norm_eps", "rope_theta"):
        if k in arch:
            setattr(base, k, type(getattr(base, k))(arch[k]))
    if base.family == "trm":
        base.H_layers = 0  # ignored by the official TRM
    ndim = arch.get("puzzle_emb_ndim", 0)
    if isinstance(ndim, str):  # an unresolved OmegaConf interpolation "${.hidden_size}"
        ndim = base.hidden_size
    base.puzzle_emb_ndim = int(ndim)
    if base.family == "trm":
        # official TRM: puzzle_emb_len (default 16) when non-zero, else ceil(ndim / hidden)
        base.puzzle_emb_len = int(arch.get("puzzle_emb_len", 16))
        if base.puzzle_emb_ndim == 0 and base.puzzle_emb_len != 0:
            raise SystemExit(f"{path}: puzzle_emb_ndim 0 with puzzle_emb_len {base.puzzle_emb_len}: the official "
                             "TRM cannot run this (its carry has P+S positions, the embedding S)")
    else:
        base.puzzle_emb_len = 0  # HRM: always ceil(puzzle_emb_ndim / hidden_size)
    base.seq_len = 0  # unknown until the dataset or the weights say
    if meta is not None:
        base.seq_len = int(meta["seq_len"])
    if seq_len:
        base.seq_len = seq_len
    facts = {"official_arch": name, "forward_dtype": str(arch.get("forward_dtype", "bfloat16"))}
    return base, facts


# Token maps of the official dataset builders (TinyRecursiveModels dataset/build_*_dataset.py),
# in model.json "tokens" form; the builders write pad_id 0 and ignore_label_id 0.
def _official_tokens(kind: str) -> dict:
    if kind == "sudoku":  # PAD 0; cell value v (0 = blank) -> v + 1
        return {"pad": 0, "blank": 1, "symbols": [str(d) for d in range(1, 10)], "symbol_offset": 2}
    if kind == "maze":  # PAD 0; "#", " ", "S", "G", "o" -> 1..5; an open cell " " is what the path fills
        return {"pad": 0, "blank": 2, "symbols": ["#", " ", "S", "G", "o"], "symbol_offset": 1}
    if kind == "arc":  # PAD 0, <eos> 1, colour c -> c + 2; no blank cell (blank = pad)
        return {"pad": 0, "blank": 0, "symbols": ["<eos>"] + [str(c) for c in range(10)], "symbol_offset": 1}
    raise ValueError(kind)


def _official_grid(kind: str, seq_len: int) -> dict:
    """The official builders' layouts: Sudoku 9x9 in 3x3 boxes, a square maze, ARC's 30x30."""
    if kind == "sudoku":
        return {"rows": 9, "cols": 9, "box": {"rows": 3, "cols": 3}}
    n = round(seq_len ** 0.5)
    return {"rows": n, "cols": n}


def parse_grid(text: str) -> dict:
    """--grid ROWSxCOLS or ROWSxCOLS/BOXROWSxBOXCOLS (e.g. 4x4/2x2)."""
    import re
    m = re.fullmatch(r"(\d+)x(\d+)(?:/(\d+)x(\d+))?", text.strip())
    if not m:
        raise SystemExit(f"--grid {text!r}: expected ROWSxCOLS or ROWSxCOLS/BOXROWSxBOXCOLS, e.g. 4x4/2x2")
    g = {"rows": int(m[1]), "cols": int(m[2])}
    if m[3]:
        g["box"] = {"rows": int(m[3]), "cols": int(m[4])}
    return g


def resolve_dataset_json(path: str) -> str:
    """--dataset-json: a dataset.json, a split folder holding one, or the dataset root (then test/)."""
    if os.path.isdir(path):
        for cand in (os.path.join(path, "dataset.json"), os.path.join(path, "test", "dataset.json")):
            if os.path.isfile(cand):
                return cand
        raise SystemExit(f"--dataset-json {path}: no dataset.json in it or in its test/ folder")
    if not os.path.isfile(path):
        raise SystemExit(f"--dataset-json {path}: no such file")
    return path


def official_dataset_kind(meta: dict, dataset_json: str) -> str:
    """Which official builder wrote this dataset: from dataset.json (seq_len, vocab_size,
    pad_id, ignore_label_id), checked against the dataset folder's name when it names one."""
    S, V = int(meta.get("seq_len", -1)), int(meta.get("vocab_size", -1))
    by_meta = None
    if meta.get("pad_id") == 0 and meta.get("ignore_label_id") in (0, None):
        if (S, V) == (81, 11):
            by_meta = "sudoku"
        elif V == 6 and S > 0 and round(S ** 0.5) ** 2 == S:
            by_meta = "maze"
        elif (S, V) == (900, 12):
            by_meta = "arc"
    split_dir = os.path.dirname(os.path.abspath(dataset_json))
    import re
    words = re.split(r"[^a-z0-9]+", " ".join([os.path.basename(os.path.dirname(split_dir)),
                                              os.path.basename(split_dir)]).lower())
    # "sudoku-extreme-1k-aug-1000", "maze-30x30-hard-1k", "arc1concept-aug-1000", ...
    by_name = {k for k in ("sudoku", "maze", "arc") if any(w.startswith(k) for w in words)}
    hint = ("pass --tokens-json with the model.json \"tokens\" object "
            '(e.g. {"pad": 0, "blank": 1, "symbols": ["1", "2"], "symbol_offset": 2})')
    if by_meta is None:
        raise SystemExit(f"{dataset_json}: cannot tell which official builder wrote it (seq_len {S}, vocab_size {V}, "
                         f"pad_id {meta.get('pad_id')}, ignore_label_id {meta.get('ignore_label_id')}; the builders write "
                         f"Sudoku 81/11, Maze n*n/6, ARC 900/12, pad 0, ignore 0), so the tokens are unknown; {hint}")
    if by_name and by_meta not in by_name:
        raise SystemExit(f"{dataset_json}: the folder name says {'/'.join(sorted(by_name))}, but seq_len {S} and "
                         f"vocab_size {V} are {by_meta}'s; {hint}")
    return by_meta


def repo_path(p: str) -> str:
    """A path as `deno task` (which runs in the repository root) should see it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap_ = os.path.abspath(p)
    rel = os.path.relpath(ap_, root)
    return ap_ if rel.startswith("..") else rel


def trace_command(out: str, name: str, inputs: str | None, limit: int | None) -> str:
    import shlex
    run = "runs/" + "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    cmd = ["npx", "-y", "deno@2.9.6", "task", "trminterp", "trace", "--run-dir", run, "--model", repo_path(out),
           "--inputs", repo_path(inputs) if inputs else "PUZZLES.jsonl"]
    if limit:
        cmd += ["--limit", str(limit), "--seed", "0"]
    return " ".join(shlex.quote(c) if c != "PUZZLES.jsonl" else c for c in cmd)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="our checkpoint.pt, or an official state dict")
    ap.add_argument("--out", required=True, help="bundle folder to write")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--name", default=None, help="model name (default: from the checkpoint or folder name)")
    ap.add_argument("--halt-mode", choices=["max_steps", "q_halt"], default="max_steps")
    ap.add_argument("--official-config", default=None, help="official all_config.yaml (or arch yaml)")
    ap.add_argument("--dataset-json", default=None,
                    help="official dataset.json, or its split folder, or the dataset root (then test/): gives "
                         "seq_len and, for the Sudoku, Maze and ARC builders, the tokens")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--tokens-json", default=None,
                    help='JSON for model.json "tokens" (default: from --dataset-json for an official builder\'s '
                         'dataset; else pad 0, blank 1, symbols 1..V-2, offset 2)')
    ap.add_argument("--source-json", default=None, help="JSON merged into model.json source")
    ap.add_argument("--grid", default=None,
                    help="the cells' layout for model.json grid: ROWSxCOLS or ROWSxCOLS/BOXROWSxBOXCOLS "
                         "(Sudoku 4x4: 4x4/2x2; default: from --dataset-json for an official builder's dataset)")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="unused (export is deterministic); kept for uniformity")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    meta_ds, ds_json = None, None
    if a.dataset_json:
        ds_json = resolve_dataset_json(a.dataset_json)
        with open(ds_json) as f:
            meta_ds = json.load(f)
    base, facts = official_base_config(a.official_config, meta_ds, a.seq_len) if a.official_config else (None, {})
    try:
        model = load_checkpoint(a.checkpoint, base)
    except ValueError as e:
        raise SystemExit(f"{a.checkpoint}: {e}")
    obj = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    meta = obj.get("meta", {}) if isinstance(obj, dict) and "config" in obj else {}
    source = dict(meta.get("source", {})) if meta else {"checkpoint": os.path.basename(a.checkpoint), "official": True}
    source.setdefault("exporter", "references/python/export.py")
    source.update(facts)
    if a.source_json:
        with open(a.source_json) as f:
            source.update(json.load(f))
    tokens = meta.get("tokens") if meta else None
    if meta_ds is not None:
        cfg = model.cfg
        if int(meta_ds["vocab_size"]) != cfg.vocab_size:
            raise SystemExit(f"{ds_json}: vocab_size {meta_ds['vocab_size']}, but the checkpoint has {cfg.vocab_size}")
        if cfg.puzzle_emb_ndim > 0 and int(meta_ds.get("num_puzzle_identifiers", 1)) > cfg.num_puzzle_identifiers:
            raise SystemExit(f"{ds_json}: num_puzzle_identifiers {meta_ds['num_puzzle_identifiers']}, but the checkpoint's "
                             f"puzzle embedding has {cfg.num_puzzle_identifiers} rows")
    if a.tokens_json:
        with open(a.tokens_json) as f:
            tokens = json.load(f)
    elif meta_ds is not None and tokens is None:
        kind = official_dataset_kind(meta_ds, ds_json)
        tokens = _official_tokens(kind)
        source.setdefault("dataset", {"builder": kind, "dataset_json": repo_path(ds_json)})
    elif tokens is None and a.official_config:
        raise SystemExit("an official checkpoint needs --dataset-json (seq_len and tokens) or --tokens-json")
    grid = parse_grid(a.grid) if a.grid else None
    if grid is None and meta_ds is not None:
        grid = _official_grid(official_dataset_kind(meta_ds, ds_json), int(meta_ds["seq_len"]))
    name = a.name or meta.get("name") or os.path.basename(os.path.normpath(a.out))
    man = export_bundle(model, a.out, a.dtype, name, tokens, source, a.halt_mode, verify=not a.no_verify, grid=grid)
    print(json.dumps({k: man[k] for k in ("name", "family", "dtype", "graphs")}, indent=1))
    inputs = os.path.dirname(ds_json) if ds_json else None
    total = int(meta_ds.get("total_puzzles", 0)) if meta_ds else 0
    limit = 8 if total > 8 else None
    print("\ntrace it (from the repository root):\n  " + trace_command(a.out, name, inputs, limit))
    if limit:
        print(f"  (--limit 8 samples 8 of the {total} test puzzles; drop it to trace them all)")
    if not inputs:
        print("  (PUZZLES.jsonl: your puzzles in model token ids, or an official dataset folder; v0-spec §3.6)")
    if facts.get("forward_dtype") not in (None, "float32", "float64"):
        print(f"  (the model was trained and evaluated with forward_dtype {facts['forward_dtype']}; this bundle runs "
              f"{a.dtype}: see references/python/README.md, bfloat16 drift)")


if __name__ == "__main__":
    main()
