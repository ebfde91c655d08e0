#!/usr/bin/env python3
"""Export a TRM/HRM checkpoint to a trminterp bundle (model.json + ONNX graphs, v0-spec §1).

Our checkpoints:
    python3 references/python/export.py --checkpoint ckpt.pt --out bundle/ [--dtype float64]
An official TinyRecursiveModels checkpoint (keys `_orig_mod.model.inner.*`):
    python3 references/python/export.py --checkpoint step_N --official-config all_config.yaml \
        --dataset-json data/sudoku/test/dataset.json --out bundle/

SiLU is written as x*sigmoid(x), so the graphs hold Sigmoid+Mul and RMSNorm uses Mul
instead of Pow: onnxruntime has float64 kernels for every op in the graphs, with graph
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


def _export(module, args, path, input_names, output_names):
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
    with torch.no_grad():
        outs = module(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    shapes = {n: tuple(t.shape) for n, t in zip(input_names, args)}
    shapes.update({n: tuple(t.shape) for n, t in zip(output_names, outs)})
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
                  verify: bool = True, quiet: bool = False) -> dict:
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
    with torch.no_grad():
        if P > 0 and cfg.puzzle_emb_ndim > 0:
            _export(EmbedGraph(m), (tok, pid), os.path.join(out, "embed.onnx"), ["tokens", "puzzle_identifiers"], ["x"])
        else:
            _export(EmbedGraph(m), (tok,), os.path.join(out, "embed.onnx"), ["tokens"], ["x"])
        files["embed"] = "embed.onnx"
        if cfg.family == "trm":
            _export(NetGraph(m, "L"), (hid, inj), os.path.join(out, "net.onnx"), ["hidden", "injection"], ["hidden_out"])
            files["net"] = "net.onnx"
        else:
            _export(NetGraph(m, "L"), (hid, inj), os.path.join(out, "L_net.onnx"), ["hidden", "injection"], ["hidden_out"])
            _export(NetGraph(m, "H"), (hid, inj), os.path.join(out, "H_net.onnx"), ["hidden", "injection"], ["hidden_out"])
            files["L_net"], files["H_net"] = "L_net.onnx", "H_net.onnx"
        _export(HeadGraph(m), (hid,), os.path.join(out, "head.onnx"), ["z_H"], ["logits", "q_halt"])
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


def official_base_config(path: str, dataset_json: str | None, seq_len: int | None) -> ModelConfig:
    import yaml
    with open(path) as f:
        y = yaml.safe_load(f)
    arch = y.get("arch", y)
    base = ModelConfig()
    name = str(arch.get("name", ""))
    base.family = "hrm" if "hrm" in name.lower() else "trm"
    for k in ("H_cycles", "L_cycles", "L_layers", "H_layers", "hidden_size", "num_heads", "expansion",
              "halt_max_steps", "pos_encodings", "mlp_t", "rms_norm_eps", "rope_theta"):
        if k in arch:
            setattr(base, k, type(getattr(base, k))(arch[k]))
    ndim = arch.get("puzzle_emb_ndim", 0)
    if isinstance(ndim, str):  # OmegaConf interpolation "${.hidden_size}"
        ndim = base.hidden_size
    base.puzzle_emb_ndim = int(ndim)
    if base.family == "trm":
        base.puzzle_emb_len = int(arch.get("puzzle_emb_len", 16))  # official TRM default
    else:
        base.puzzle_emb_len = 0  # HRM: ceil(puzzle_emb_ndim / hidden_size)
    if dataset_json:
        with open(dataset_json) as f:
            meta = json.load(f)
        base.seq_len = int(meta["seq_len"])
    if seq_len:
        base.seq_len = seq_len
    return base


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="our checkpoint.pt, or an official state dict")
    ap.add_argument("--out", required=True, help="bundle folder to write")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--name", default=None, help="model name (default: from the checkpoint or folder name)")
    ap.add_argument("--halt-mode", choices=["max_steps", "q_halt"], default="max_steps")
    ap.add_argument("--official-config", default=None, help="official all_config.yaml (or arch yaml)")
    ap.add_argument("--dataset-json", default=None, help="official dataset.json (gives seq_len)")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--tokens-json", default=None,
                    help='JSON for model.json "tokens" (default: pad 0, blank 1, symbols 1..V-2, offset 2)')
    ap.add_argument("--source-json", default=None, help="JSON merged into model.json source")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="unused (export is deterministic); kept for uniformity")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    base = official_base_config(a.official_config, a.dataset_json, a.seq_len) if a.official_config else None
    model = load_checkpoint(a.checkpoint, base)
    obj = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    meta = obj.get("meta", {}) if isinstance(obj, dict) and "config" in obj else {}
    source = dict(meta.get("source", {})) if meta else {"checkpoint": os.path.basename(a.checkpoint), "official": True}
    source.setdefault("exporter", "references/python/export.py")
    if a.source_json:
        with open(a.source_json) as f:
            source.update(json.load(f))
    tokens = meta.get("tokens") if meta else None
    if a.tokens_json:
        with open(a.tokens_json) as f:
            tokens = json.load(f)
    name = a.name or meta.get("name") or os.path.basename(os.path.normpath(a.out))
    man = export_bundle(model, a.out, a.dtype, name, tokens, source, a.halt_mode, verify=not a.no_verify)
    print(json.dumps({k: man[k] for k in ("name", "family", "dtype", "graphs")}, indent=1))


if __name__ == "__main__":
    main()
