#!/usr/bin/env python3
"""Baselines for `deno task bench` (bench/run.ts): the reference TRM in PyTorch eager
(CPU) and the same exported .onnx graphs in Python onnxruntime, on the same inputs,
batch and schedule as trminterp's runner. Prints one JSON line per measurement.

Make a full-size random-weight bundle (TRM, D=512, seq 81 + 16 puzzle prefix, H3/L6,
two layers; `att` = RoPE attention, `mlp` = mlp_t) with its checkpoint:

    python3 references/python/bench_runner.py gen --arch att --out /tmp/trm-att --halt-max-steps 1

Time rollouts (every supervision step in model.json; `--record` keeps every state):

    python3 references/python/bench_runner.py time --bundle /tmp/trm-att --batch 8 --reps 2 --impl torch,ort

Inputs are deterministic and shared with bench/run.ts: token i of the flattened [B, S]
batch is 2 + (7*i + 3) mod (V - 2), puzzle identifier 0.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

T_START = time.perf_counter()
T_IMPORT0 = T_START
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trm_model import ModelConfig, RecursiveModel, load_checkpoint, save_checkpoint  # noqa: E402

T_IMPORT = time.perf_counter() - T_IMPORT0


def full_config(arch: str, halt_max_steps: int) -> ModelConfig:
    """The official Sudoku-Extreme TRM shape (D=512, 8 heads, expansion 4, H3/L6, 2 layers,
    16-position puzzle prefix, seq 81, vocab 11)."""
    return ModelConfig(family="trm", seq_len=81, vocab_size=11, hidden_size=512, num_heads=8, expansion=4.0,
                       H_cycles=3, L_cycles=6, L_layers=2, halt_max_steps=halt_max_steps,
                       puzzle_emb_ndim=512, puzzle_emb_len=16, num_puzzle_identifiers=1,
                       pos_encodings="none" if arch == "mlp" else "rope", mlp_t=arch == "mlp",
                       ffn_multiple=256)


def cmd_gen(a) -> None:
    from export import export_bundle
    torch.manual_seed(a.seed)
    model = RecursiveModel(full_config(a.arch, a.halt_max_steps), trainable_puzzle_emb=False).eval()
    with torch.no_grad():
        model.puzzle_emb.weights.normal_(0.0, 1.0)
    os.makedirs(a.out, exist_ok=True)
    name = f"trm-{a.arch}-d512-random"
    tokens = {"pad": 0, "blank": 1, "symbols": [str(i) for i in range(1, 10)], "symbol_offset": 2}
    src = {"generator": "references/python/bench_runner.py", "seed": a.seed, "weights": "random"}
    save_checkpoint(model, os.path.join(a.out, "checkpoint.pt"), {"name": name, "tokens": tokens, "source": src})
    export_bundle(model, a.out, "float32", name, tokens, src, verify=not a.no_verify, quiet=True)
    print(json.dumps({"out": a.out, "arch": a.arch, "params": sum(p.numel() for p in model.parameters())}))


def inputs(man: dict, B: int):
    S, V = man["seq_len"], man["vocab_size"]
    i = np.arange(B * S, dtype=np.int64)
    tok = (2 + (7 * i + 3) % (V - 2)).reshape(B, S)
    return tok, np.zeros(B, dtype=np.int64)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_rollout(model: RecursiveModel, tok, pid, record: bool, first: list):
    """rollout() of trm_model.py, timed at its first net call."""
    cfg = model.cfg
    with torch.no_grad():
        x = model.embed(tok, pid if cfg.puzzle_emb_ndim > 0 else None)
        carry = model.initial_carry(tok.shape[0])
        z_H, z_L = carry.z_H, carry.z_L
        kept = []
        for sup in range(cfg.halt_max_steps):
            for h in range(cfg.H_cycles):
                for _ in range(cfg.L_cycles):
                    z_L = model.L_net(z_L, z_H + x)
                    if not first:
                        first.append(time.perf_counter())
                    if record:
                        kept.append(z_L.numpy().copy())
                z_H = model.H_net(z_H, z_L)
                if record:
                    kept.append(z_H.numpy().copy())
            lg, q = model.head(z_H)
            lg.argmax(-1)
    return kept


def ort_rollout(sess: dict, man: dict, tok, pid, record: bool, first: list):
    sc = man["schedule"]
    B, T, D = tok.shape[0], man["seq_len"] + man["puzzle_emb_len"], man["hidden_size"]
    feeds = {"tokens": tok}
    if man["puzzle_emb_len"] > 0:
        feeds["puzzle_identifiers"] = pid
    x = sess["embed"].run(None, feeds)[0]
    z_H = np.broadcast_to(np.asarray(man["H_init"], np.float32), (B, T, D)).copy()
    z_L = np.broadcast_to(np.asarray(man["L_init"], np.float32), (B, T, D)).copy()
    L = sess["net"] if "net" in sess else sess["L_net"]
    H = sess["net"] if "net" in sess else sess["H_net"]
    kept = []
    for sup in range(sc["halt_max_steps"]):
        for h in range(sc["H_cycles"]):
            for _ in range(sc["L_cycles"]):
                z_L = L.run(None, {"hidden": z_L, "injection": z_H + x})[0]
                if not first:
                    first.append(time.perf_counter())
                if record:
                    kept.append(z_L)
            z_H = H.run(None, {"hidden": z_H, "injection": z_L})[0]
            if record:
                kept.append(z_H)
        lg, q = sess["head"].run(None, {"z_H": z_H})
        lg.argmax(-1)
    return kept


def warm_call(impl, m, man, tok, pid, first: list) -> None:
    """Warm-up: embed, one net call, head (the first net call is timed)."""
    P = man["puzzle_emb_len"]
    if impl == "torch":
        with torch.no_grad():
            t, p = torch.from_numpy(tok), torch.from_numpy(pid)
            x = m.embed(t, p if m.cfg.puzzle_emb_ndim > 0 else None)
            c = m.initial_carry(t.shape[0])
            z = m.L_net(c.z_L, c.z_H + x)
            first.append(time.perf_counter())
            m.head(z)
        return
    feeds = {"tokens": tok}
    if P > 0:
        feeds["puzzle_identifiers"] = pid
    x = m["embed"].run(None, feeds)[0]
    L = m["net"] if "net" in m else m["L_net"]
    z = L.run(None, {"hidden": x, "injection": x})[0]
    first.append(time.perf_counter())
    m["head"].run(None, {"z_H": z})


def cmd_time(a) -> None:
    with open(os.path.join(a.bundle, "model.json")) as f:
        man = json.load(f)
    sc = man["schedule"]
    calls_per_sup = sc["H_cycles"] * (sc["L_cycles"] + 1)
    calls = calls_per_sup * sc["halt_max_steps"]
    full_calls = calls_per_sup * a.full_sup_steps if a.full_sup_steps else calls
    tok_np, pid_np = inputs(man, a.batch)
    if a.threads:
        torch.set_num_threads(a.threads)
    for impl in a.impl.split(","):
        t0 = time.perf_counter()
        if impl == "torch":
            ck = a.checkpoint or os.path.join(a.bundle, "checkpoint.pt")
            model = load_checkpoint(ck).eval()
            model.cfg.halt_max_steps = sc["halt_max_steps"]
            tok, pid = torch.from_numpy(tok_np), torch.from_numpy(pid_np)
            run = lambda first: torch_rollout(model, tok, pid, a.record, first)  # noqa: E731
            threads = torch.get_num_threads()
        elif impl == "ort":
            import onnxruntime as ort
            so = ort.SessionOptions()
            if a.threads:
                so.intra_op_num_threads = a.threads
            so.log_severity_level = 3
            sess = {role: ort.InferenceSession(os.path.join(a.bundle, g["file"]), so,
                                               providers=["CPUExecutionProvider"])
                    for role, g in man["graphs"].items()}
            run = lambda first: ort_rollout(sess, man, tok_np, pid_np, a.record, first)  # noqa: E731
            threads = a.threads or so.intra_op_num_threads or os.cpu_count()
        else:
            raise SystemExit(f"unknown impl {impl}")
        first: list = []
        if a.warmup == "rollout":
            run(first)  # warm-up rollout (also the time to the first net call)
        else:
            warm_call(impl, model if impl == "torch" else sess, man, tok_np, pid_np, first)
        first_call_s = first[0] - t0
        times = []
        for _ in range(a.reps):
            s = time.perf_counter()
            run([])
            times.append(time.perf_counter() - s)
        if not times:
            print(json.dumps({"impl": impl, "first_call_s": first_call_s, "import_s": T_IMPORT,
                              "process_to_first_call_s": first[0] - T_START}), flush=True)
            continue
        best = min(times)
        print(json.dumps({
            "impl": impl, "bundle": a.bundle, "batch": a.batch, "record": a.record, "threads": threads,
            "net_calls": calls, "seconds": best, "reps": a.reps,
            "net_calls_per_s": calls / best, "ms_per_call": 1000 * best / calls,
            "examples_per_s": a.batch / (best * full_calls / calls),
            "first_call_s": first_call_s, "import_s": T_IMPORT, "peak_rss_mb": rss_mb(),
        }), flush=True)


def cmd_micro(a) -> None:
    """Two one-node graphs that split a net call's time into fixed per-call cost and
    kernel speed: Add of two [1, 18, 32] tensors, and MatMul [2, 97, 512] x [512, 1536]
    (the qkv projection of the full-size TRM at batch 2). Writes them to --out and times
    python onnxruntime and torch on 1 thread."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((512, 1536)).astype(np.float32) * 0.01
    vi = helper.make_tensor_value_info
    graphs = {
        "add": helper.make_graph([helper.make_node("Add", ["hidden", "injection"], ["hidden_out"])], "add",
                                 [vi(n, TensorProto.FLOAT, ["B", 18, 32]) for n in ("hidden", "injection")],
                                 [vi("hidden_out", TensorProto.FLOAT, ["B", 18, 32])]),
        "matmul": helper.make_graph([helper.make_node("MatMul", ["hidden", "W"], ["hidden_out"])], "matmul",
                                    [vi("hidden", TensorProto.FLOAT, ["B", 97, 512])],
                                    [vi("hidden_out", TensorProto.FLOAT, ["B", 97, 1536])],
                                    [numpy_helper.from_array(w, "W")]),
    }
    import onnxruntime as ort
    torch.set_num_threads(1)
    for name, g in graphs.items():
        path = os.path.join(a.out, f"{name}.onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        if name == "add":
            feeds = {"hidden": np.ones((1, 18, 32), np.float32), "injection": np.ones((1, 18, 32), np.float32)}
            n, flops = 2000, 0
        else:
            feeds = {"hidden": rng.standard_normal((2, 97, 512)).astype(np.float32)}
            n, flops = 20, 2 * 194 * 512 * 1536
        for impl in ("ort", "torch"):
            if impl == "ort":
                f = lambda: sess.run(None, feeds)  # noqa: E731
            elif name == "add":
                th, ti = torch.from_numpy(feeds["hidden"]), torch.from_numpy(feeds["injection"])
                f = lambda: th + ti  # noqa: E731
            else:
                xt, wt = torch.from_numpy(feeds["hidden"]), torch.from_numpy(w)
                f = lambda: xt @ wt  # noqa: E731
            for _ in range(n // 4):
                f()
            best = min(_timed(f, n // 10) for _ in range(10))
            print(json.dumps({"graph": name, "impl": impl, "us_per_call": best * 1e6,
                              "gflops": flops / best / 1e9 if flops else None}), flush=True)


def _timed(f, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def cmd_startup(a) -> None:
    """Time from process start to the first net call of the bundle at batch 1."""
    a.batch, a.reps, a.record, a.full_sup_steps, a.checkpoint, a.warmup = 1, 0, False, 0, None, "call"
    cmd_time(a)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="write a full-size random-weight checkpoint + bundle")
    g.add_argument("--arch", choices=["att", "mlp"], required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--halt-max-steps", type=int, default=16)
    g.add_argument("--no-verify", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("time", help="time torch eager and python onnxruntime rollouts")
    t.add_argument("--bundle", required=True)
    t.add_argument("--checkpoint", default=None, help="default: BUNDLE/checkpoint.pt")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--reps", type=int, default=2)
    t.add_argument("--record", action="store_true", help="keep a copy of every state")
    t.add_argument("--impl", default="torch,ort")
    t.add_argument("--threads", type=int, default=0, help="0: the library default")
    t.add_argument("--full-sup-steps", type=int, default=0,
                   help="examples/s as if the rollout had this many supervision steps (0: as in model.json)")
    t.add_argument("--warmup", choices=["call", "rollout"], default="call",
                   help="warm up with one net call (default) or a whole rollout")
    t.add_argument("--seed", type=int, default=0, help="unused (inputs are fixed); kept for uniformity")
    s = sub.add_parser("startup", help="process start to first net call at batch 1")
    s.add_argument("--bundle", required=True)
    s.add_argument("--impl", default="torch")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("micro", help="one-node graphs: fixed per-call cost and GEMM speed")
    m.add_argument("--out", required=True, help="folder for add.onnx and matmul.onnx")
    m.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    {"gen": cmd_gen, "time": cmd_time, "startup": cmd_startup, "micro": cmd_micro}[a.cmd](a)


if __name__ == "__main__":
    main()
