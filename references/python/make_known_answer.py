#!/usr/bin/env python3
"""Write a hand-built TRM bundle in which one known direction decides one output cell.

    python3 references/python/make_known_answer.py --out tests/fixtures/known_answer --seed 0

Construction (D=16, S=16, P=0, V=10: pad 0, blank 1, symbols "1".."8" at ids 2..9):

- Q is a seeded random orthogonal 16x16 matrix; its columns are the only directions used.
  u = Q[:, 0] is the planted direction (written to u.npy).
- embed: x[b, s] = sig1[s] T1[tok[b, s]] + sig2[s] T2[tok[b, s+1 mod S]] + sigu[s] K[tok[b, 0]]
    T1[symbol i] = +-Q[:, 2 + i mod 4]  (this cell's token; + for "1".."4", - for "5".."8")
    T2[symbol i] = +-Q[:, 6 + i mod 4]  (the next cell's token, signed the same way)
    K[symbol i]  = +u for "7", "8"; -u for "1", "2"; 0 otherwise (the key at position 0)
  with seeded per-position magnitudes sig1, sig2, sigu. The key puts +-u into every cell
  of the puzzle. Every direction occurs with both signs, so the state mean is near 0 and
  an SAE's b_dec carries little u; magnitudes vary by position, so combinations of
  directions do not reconstruct the rows as well as the directions themselves.
- net(hidden, injection) = Q clip(Q^T (hidden + injection), -cap, cap): a saturating
  nonlinearity in the Q basis, cap[s, j] being coordinate j's magnitude at position s.
  With H_init = L_init = 0 every z_L and z_H equals x exactly, so the u-structure
  survives the recurrence (schedule H1/L1, halt_max_steps 2), and an edit of z_H that
  removes u is undone by the next z_L update (the injection carries x) unless repeated.
- head: cell 5 reads only z_H[:, 5] . u: the logit of "2" (id 3) is
  G (z_H[:, 5] . u - theta) with theta = sigu[5] / 2, the logit of "1" (id 2) is 0, the
  rest -10. Every other cell has constant logits answering "1" (id 2) whatever z_H is.
  q_halt = 0 (the schedule halts by max_steps).
- puzzles.jsonl: random symbols; key "+u" with probability P_ON, "-u" with P_ON, else
  none. Label "2" at cell 5 for a +u key, else "1"; "1" at every other cell. The clean
  model is exactly right.

Known answer: the SAE feature aligned with +u is the only feature whose ablation can
change an output. Ablating it flips cell 5 of the +u puzzles; no other direction (the -u
feature included: it only moves z_H[5] . u from negative towards 0) changes an answer.
The script checks the graphs with onnxruntime against a numpy rollout, and checks that
removing u from z_H flips exactly those cells while removing any other Q direction
changes nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D, S, V = 16, 16, 10
SYMBOLS = [str(i) for i in range(1, 9)]
OFFSET = 2
CELL = 5
SIG1 = (0.5, 1.5)  # per-position magnitude range of the token term
SIG2 = (0.3, 0.9)  # ... of the next-token term
SIGU = (1.5, 3.0)  # ... of the key term (u)
G = 8.0  # head gain at cell 5
P_ON = 0.3  # probability of a "+u" key, and of a "-u" key
N_PUZZLES = 320
OPSET = 17
IR_VERSION = 8


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tensor(name: str, a: np.ndarray):
    return numpy_helper.from_array(a, name)


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def save(graph, path: str) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="make_known_answer")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def tables(seed: int):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((D, D)))
    Q = (q * np.sign(np.diag(r))[None, :]).astype(np.float32)
    u = Q[:, 0].copy()
    T1 = np.zeros((V, D), np.float32)
    T2 = np.zeros((V, D), np.float32)
    K = np.zeros((V, D), np.float32)
    for i in range(len(SYMBOLS)):
        sign = 1.0 if i < 4 else -1.0
        T1[OFFSET + i] = sign * Q[:, 2 + i % 4]
        T2[OFFSET + i] = sign * Q[:, 6 + i % 4]
    K[OFFSET + 6:OFFSET + 8] = u  # key "7", "8": +u
    K[OFFSET + 0:OFFSET + 2] = -u  # key "1", "2": -u
    sig = {
        "sig1": rng.uniform(*SIG1, (S, 1)).astype(np.float32),
        "sig2": rng.uniform(*SIG2, (S, 1)).astype(np.float32),
        "sigu": rng.uniform(*SIGU, (S, 1)).astype(np.float32),
    }
    # saturation level [S, D] of each Q coordinate: its value in x when present
    cap = np.zeros((S, D), np.float32)
    cap[:, 0:1] = sig["sigu"]
    cap[:, 2:6] = sig["sig1"]
    cap[:, 6:10] = sig["sig2"]
    return Q, u, T1, T2, K, sig, cap


def head_tables(u, theta):
    W = np.zeros((S, D, V), np.float32)
    bias = np.full((S, V), -10.0, np.float32)
    bias[:, OFFSET] = 10.0  # every other cell answers "1"
    W[CELL, :, OFFSET + 1] = G * u
    bias[CELL, OFFSET] = 0.0
    bias[CELL, OFFSET + 1] = -G * theta
    return W, bias


def build_embed(T1, T2, K, sig, path):
    nodes = [
        helper.make_node("Gather", ["T1", "tokens"], ["e1"], axis=0),  # [B,S,D]
        helper.make_node("Slice", ["tokens", "one", "big", "ax1"], ["tail"]),
        helper.make_node("Slice", ["tokens", "zero", "one", "ax1"], ["first"]),
        helper.make_node("Concat", ["tail", "first"], ["nxt"], axis=1),
        helper.make_node("Gather", ["T2", "nxt"], ["e2"], axis=0),  # [B,S,D]
        helper.make_node("Gather", ["K", "first"], ["ek"], axis=0),  # [B,1,D]
        helper.make_node("Mul", ["e1", "sig1"], ["m1"]),
        helper.make_node("Mul", ["e2", "sig2"], ["m2"]),
        helper.make_node("Mul", ["ek", "sigu"], ["mu"]),  # [B,S,D]
        helper.make_node("Add", ["m1", "m2"], ["s12"]),
        helper.make_node("Add", ["s12", "mu"], ["x"]),
    ]
    inits = [tensor("T1", T1), tensor("T2", T2), tensor("K", K),
             *[tensor(k, v) for k, v in sig.items()],
             tensor("zero", np.array([0], np.int64)), tensor("one", np.array([1], np.int64)),
             tensor("big", np.array([S], np.int64)), tensor("ax1", np.array([1], np.int64))]
    g = helper.make_graph(nodes, "embed",
                          [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", S])],
                          [f32("x", ["B", S, D])], inits)
    save(g, path)


def build_net(Q, cap, path):
    nodes = [
        helper.make_node("Add", ["hidden", "injection"], ["y"]),
        helper.make_node("MatMul", ["y", "Q"], ["c"]),
        helper.make_node("Max", ["c", "neg_cap"], ["cr"]),
        helper.make_node("Min", ["cr", "cap"], ["cs"]),
        helper.make_node("MatMul", ["cs", "QT"], ["hidden_out"]),
    ]
    inits = [tensor("Q", Q), tensor("QT", np.ascontiguousarray(Q.T)), tensor("cap", cap), tensor("neg_cap", -cap)]
    g = helper.make_graph(nodes, "net", [f32("hidden", ["B", S, D]), f32("injection", ["B", S, D])],
                          [f32("hidden_out", ["B", S, D])], inits)
    save(g, path)


def build_head(W, bias, path):
    nodes = [
        helper.make_node("Unsqueeze", ["z_H", "ax3"], ["z4"]),  # [B,S,D,1]
        helper.make_node("Mul", ["z4", "W"], ["prod"]),  # [B,S,D,V]
        helper.make_node("ReduceSum", ["prod", "ax2"], ["lin"], keepdims=0),  # [B,S,V]
        helper.make_node("Add", ["lin", "bias"], ["logits"]),
        helper.make_node("ReduceSum", ["z_H", "ax12"], ["tot"], keepdims=0),  # [B]
        helper.make_node("Mul", ["tot", "zero_f"], ["q_halt"]),
    ]
    inits = [tensor("W", W), tensor("bias", bias), tensor("ax3", np.array([3], np.int64)),
             tensor("ax2", np.array([2], np.int64)), tensor("ax12", np.array([1, 2], np.int64)),
             tensor("zero_f", np.array(0.0, np.float32))]
    g = helper.make_graph(nodes, "head", [f32("z_H", ["B", S, D])],
                          [f32("logits", ["B", S, V]), f32("q_halt", ["B"])], inits)
    save(g, path)


def puzzles(seed: int):
    rng = np.random.default_rng(seed + 1)
    rows = []
    for n in range(N_PUZZLES):
        toks = rng.integers(0, len(SYMBOLS), S)
        r = rng.random()
        on = bool(r < P_ON)
        toks[0] = rng.integers(6, 8) if on else rng.integers(0, 2) if r < 2 * P_ON else rng.integers(2, 6)
        label = [OFFSET] * S
        label[CELL] = OFFSET + 1 if on else OFFSET
        rows.append({"id": f"k{n:03d}-{'on' if on else 'off'}",
                     "tokens": [int(t) + OFFSET for t in toks], "label": label})
    return rows


def reference(tokens, T1, T2, K, sig, Q, cap, W, bias):
    """numpy rollout of the schedule: the final z_H and logits."""
    x = (T1[tokens] * sig["sig1"] + T2[np.roll(tokens, -1, axis=1)] * sig["sig2"]
         + K[tokens[:, :1]] * sig["sigu"])

    def net(h, i):
        return np.clip((h + i) @ Q, -cap, cap) @ Q.T

    zH = np.zeros_like(x)
    zL = np.zeros_like(x)
    for _ in range(2):
        zL = net(zL, zH + x)
        zH = net(zH, zL)
    assert np.abs(zH - x).max() < 1e-5, "every state equals x"
    return zH, np.einsum("bsd,sdv->bsv", zH, W) + bias


def verify(out, files, rows, Q, u, ref):
    import onnxruntime as ort
    sess = {r: ort.InferenceSession(os.path.join(out, f), providers=["CPUExecutionProvider"])
            for r, f in files.items()}
    tokens = np.array([r["tokens"] for r in rows], np.int64)
    labels = np.array([r["label"] for r in rows], np.int64)
    n_on = int((labels[:, CELL] == OFFSET + 1).sum())
    (x,) = sess["embed"].run(None, {"tokens": tokens})
    zH = np.zeros_like(x)
    zL = np.zeros_like(x)
    for _ in range(2):
        (zL,) = sess["net"].run(None, {"hidden": zL, "injection": zH + x})
        (zH,) = sess["net"].run(None, {"hidden": zH, "injection": zL})
        logits, q_halt = sess["head"].run(None, {"z_H": zH})
        assert logits.shape == (len(rows), S, V) and q_halt.shape == (len(rows),)
        assert (logits.argmax(-1) == labels).all(), "the clean model must be exact at every step"
    ref_zH, ref_logits = ref(tokens)
    assert np.abs(ref_zH - zH).max() < 1e-4 and np.abs(ref_logits - logits).max() < 1e-3
    # Removing u from z_H flips cell 5 of exactly the key-on puzzles ...
    (cut, _) = sess["head"].run(None, {"z_H": zH - (zH @ u)[..., None] * u})
    flipped = cut.argmax(-1) != labels
    assert flipped[:, CELL].sum() == n_on and flipped.sum() == n_on
    # ... and removing any other Q direction changes no answer.
    for j in range(1, D):
        e = Q[:, j]
        (l2, _) = sess["head"].run(None, {"z_H": zH - (zH @ e)[..., None] * e})
        assert (l2.argmax(-1) == labels).all()
    return n_on


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)

    Q, u, T1, T2, K, sig, cap = tables(args.seed)
    on_value = float(sig["sigu"][CELL, 0])  # z_H[:, CELL] . u in a key-on puzzle
    theta = 0.5 * on_value
    W, bias = head_tables(u, theta)
    files = {"embed": "embed.onnx", "net": "net.onnx", "head": "head.onnx"}
    build_embed(T1, T2, K, sig, os.path.join(out, files["embed"]))
    build_net(Q, cap, os.path.join(out, files["net"]))
    build_head(W, bias, os.path.join(out, files["head"]))
    np.save(os.path.join(out, "u.npy"), u.astype(np.float32))

    rows = puzzles(args.seed)
    with open(os.path.join(out, "puzzles.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")

    n_on = verify(out, files, rows, Q, u,
                  lambda tokens: reference(tokens, T1, T2, K, sig, Q, cap, W, bias))
    manifest = {
        "format": "trminterp-bundle/1",
        "name": "known_answer",
        "family": "trm",
        "dtype": "float32",
        "hidden_size": D,
        "seq_len": S,
        "puzzle_emb_len": 0,
        "vocab_size": V,
        "num_puzzle_identifiers": 1,
        "tokens": {"pad": 0, "blank": 1, "symbols": SYMBOLS, "symbol_offset": OFFSET},
        "schedule": {"H_cycles": 1, "L_cycles": 1, "halt_max_steps": 2, "halt_mode": "max_steps"},
        "H_init": [0.0] * D,
        "L_init": [0.0] * D,
        "graphs": {role: {"file": f, "sha256": sha256_file(os.path.join(out, f))} for role, f in files.items()},
        "source": {"generator": "references/python/make_known_answer.py", "seed": args.seed,
                   "weights": "hand-built", "planted_direction": "u.npy", "cell": CELL,
                   "threshold": round(theta, 6), "puzzles": len(rows), "key_on_puzzles": n_on},
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(README.format(seed=args.seed, n=len(rows), n_on=n_on, on=on_value, theta=theta))
    print(f"wrote {out}: {len(rows)} puzzles, {n_on} key-on; z_H[5].u on={on_value:.4f} theta={theta:.4f}")


README = """# known_answer: a TRM bundle with a planted direction

Written by `python3 references/python/make_known_answer.py --out tests/fixtures/known_answer --seed {seed}`;
the script's docstring has the full construction. Do not edit by hand.

- D=16, S=16, P=0, V=10 (symbols "1".."8" at ids 2..9), schedule H1/L1, halt_max_steps 2.
- Every state is a sparse signed combination of columns of a seeded orthogonal matrix Q,
  with per-position magnitudes. `u.npy` (float32 [16]) is Q[:, 0], the planted direction.
- The key token at position 0 adds +u ("7", "8") or -u ("1", "2") to every cell. The net,
  Q clip(Q^T (hidden + injection), -cap, cap), keeps every z_L and z_H equal to the
  embedding, so z_H[5] . u is {on:.4f} in +u puzzles.
- The head answers cell 5 with "2" when z_H[5] . u > {theta:.4f} and "1" otherwise; every
  other cell answers "1" whatever the state. q_halt is 0.
- `puzzles.jsonl`: {n} puzzles, {n_on} with a +u key; labels follow the rule, so the clean
  model is exactly right.

Known answer: the SAE feature aligned with +u is the only feature whose ablation changes an
output. Ablating it flips cell 5 of the +u puzzles (token accuracy drops by their
fraction / 16); ablating any other feature changes nothing.
"""


if __name__ == "__main__":
    main()
