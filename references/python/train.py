#!/usr/bin/env python3
"""Seeded training of the demo TRM on 4x4 Sudoku (CPU, a few minutes).

    python3 references/python/train.py --data DIR --out DIR --seed 0 [--act --pos-encodings learned ...]

DIR (--data) holds train.jsonl / test.jsonl from sudoku4.py. Writes checkpoint.pt and
train_result.json (per-supervision-step accuracy on the test split) into --out.

Training follows the official scheme (pretrain.py + ACTLossHead): a fixed set of batch
slots, each holding one example and its carry; every optimizer step runs one supervision
step for every slot (TRM: no gradient through the first H_cycles-1 cycles, gradient through
the last one), then the carry is detached. Loss = mean over examples of (token CE averaged
over the 16 cells) + 0.5 * BCE(q_halt, prediction exactly right). A slot halts after
halt_max_steps, or, with --act, when q_halt > 0 (with exploration: with probability
--halt-exploration a minimum of 2..halt_max_steps steps is drawn); halted slots get new
examples and the carry is reset to H_init / L_init.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trm_model import ModelConfig, RecursiveModel, count_params, rollout, save_checkpoint  # noqa: E402


def load_jsonl(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return (torch.tensor([r["tokens"] for r in rows], dtype=torch.int64),
            torch.tensor([r["label"] for r in rows], dtype=torch.int64), rows)


@torch.no_grad()
def evaluate(model: RecursiveModel, tokens, labels, batch: int = 512):
    model.eval()
    T = model.cfg.halt_max_steps
    ex = torch.zeros(T)
    tk = torch.zeros(T)
    qh = torch.zeros(T)
    for i in range(0, tokens.shape[0], batch):
        t, y = tokens[i:i + batch], labels[i:i + batch]
        res = rollout(model, t)
        eq = res["logits"].argmax(-1) == y.unsqueeze(0)
        ex += eq.all(-1).float().sum(-1)
        tk += eq.float().mean(-1).sum(-1)
        qh += ((res["q_halt"] > 0) == eq.all(-1)).float().sum(-1)
    n = tokens.shape[0]
    model.train()
    return [{"sup": s, "exact": round(float(ex[s] / n), 6), "token": round(float(tk[s] / n), 6),
             "q_halt_acc": round(float(qh[s] / n), 6)} for s in range(T)]


def hard_mask(tokens, lo=10):
    return (tokens == 1).sum(-1) >= lo


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with train.jsonl and test.jsonl")
    ap.add_argument("--out", required=True, help="folder for checkpoint.pt and train_result.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--L-layers", type=int, default=2)
    ap.add_argument("--H-cycles", type=int, default=2)
    ap.add_argument("--L-cycles", type=int, default=2)
    ap.add_argument("--halt-max-steps", type=int, default=8)
    ap.add_argument("--mlp-t", action="store_true", help="sequence-MLP variant instead of attention")
    ap.add_argument("--pos-encodings", choices=["rope", "learned", "none"], default="rope")
    ap.add_argument("--ffn-multiple", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps (one supervision step each)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-warmup", type=int, default=100)
    ap.add_argument("--lr-min-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--act", action="store_true", help="halt training slots early when q_halt > 0 (official ACT)")
    ap.add_argument("--halt-exploration", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)

    tr_tok, tr_lab, _ = load_jsonl(os.path.join(a.data, "train.jsonl"))
    te_tok, te_lab, _ = load_jsonl(os.path.join(a.data, "test.jsonl"))
    cfg = ModelConfig(family="trm", seq_len=16, vocab_size=6, hidden_size=a.hidden, num_heads=a.heads,
                      expansion=4.0, H_cycles=a.H_cycles, L_cycles=a.L_cycles, L_layers=a.L_layers,
                      halt_max_steps=a.halt_max_steps, mlp_t=a.mlp_t, ffn_multiple=a.ffn_multiple,
                      pos_encodings=a.pos_encodings)
    model = RecursiveModel(cfg)
    model.train()
    n_params = count_params(model)
    print(f"params {n_params}; train {len(tr_tok)} test {len(te_tok)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=a.weight_decay)

    def lr_at(step):
        if step < a.lr_warmup:
            return a.lr * (step + 1) / a.lr_warmup
        p = (step - a.lr_warmup) / max(1, a.steps - a.lr_warmup)
        return a.lr * (a.lr_min_ratio + (1 - a.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))

    B, T = a.batch, cfg.halt_max_steps
    order = torch.randperm(len(tr_tok), generator=gen)
    cursor = 0

    def draw(n):
        nonlocal order, cursor
        out = []
        while n > 0:
            if cursor >= len(order):
                order = torch.randperm(len(tr_tok), generator=gen)
                cursor = 0
            k = min(n, len(order) - cursor)
            out.append(order[cursor:cursor + k])
            cursor += k
            n -= k
        return torch.cat(out)

    slot_idx = draw(B)
    steps = torch.zeros(B, dtype=torch.int64)
    carry = model.initial_carry(B)
    t0 = time.time()
    history = []
    for it in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        tok, lab = tr_tok[slot_idx], tr_lab[slot_idx]
        x = model.embed(tok)
        carry, logits, q_halt = model.sup_step(carry, x, train_grad=True)
        steps += 1
        with torch.no_grad():
            exact = (logits.argmax(-1) == lab).all(-1)
        ce = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), lab.reshape(-1), reduction="none").view(B, -1).mean(-1)
        bce = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="none")
        loss = (ce + 0.5 * bce).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            halted = steps >= T
            if a.act and T > 1:
                h2 = q_halt.detach() > 0
                explore = torch.rand(B, generator=gen) < a.halt_exploration
                min_steps = explore.long() * torch.randint(2, T + 1, (B,), generator=gen)
                halted = halted | (h2 & (steps >= min_steps))
            n_h = int(halted.sum())
            if n_h:
                slot_idx = slot_idx.clone()
                slot_idx[halted] = draw(n_h)
                steps[halted] = 0
                init = model.initial_carry(n_h)
                carry.z_H[halted] = init.z_H
                carry.z_L[halted] = init.z_L
        if (it + 1) % 100 == 0:
            print(f"step {it + 1} loss {loss.item():.4f} ce {ce.mean().item():.4f} bce {bce.mean().item():.4f} "
                  f"train_exact {exact.float().mean().item():.3f} lr {lr_at(it):.2e} [{time.time() - t0:.0f}s]", flush=True)
        if (it + 1) % a.eval_every == 0 or it + 1 == a.steps:
            ev = evaluate(model, te_tok, te_lab)
            history.append({"step": it + 1, "exact_first": ev[0]["exact"], "exact_last": ev[-1]["exact"]})
            print(f"eval step {it + 1}: exact per sup " + " ".join(f"{e['exact']:.3f}" for e in ev), flush=True)

    train_seconds = time.time() - t0
    model.eval()
    ev = evaluate(model, te_tok, te_lab)
    hm = hard_mask(te_tok)
    ev_hard = evaluate(model, te_tok[hm], te_lab[hm]) if hm.any() else []
    print("\nsup  exact   token   (test split, torch reference)")
    for e in ev:
        print(f"{e['sup']:>3}  {e['exact']:.4f}  {e['token']:.4f}")
    os.makedirs(a.out, exist_ok=True)
    cmd = "python3 " + " ".join([os.path.relpath(__file__, os.getcwd())] + (argv if argv is not None else sys.argv[1:]))
    source = {"training_command": cmd, "seed": a.seed, "train_puzzles": int(len(tr_tok)),
              "test_puzzles": int(len(te_tok)), "params": n_params,
              "test_exact_first_step": ev[0]["exact"], "test_exact_last_step": ev[-1]["exact"]}
    tokens = {"pad": 0, "blank": 1, "symbols": ["1", "2", "3", "4"], "symbol_offset": 2}
    save_checkpoint(model, os.path.join(a.out, "checkpoint.pt"),
                    {"name": "sudoku4-trm", "tokens": tokens, "source": source})
    with open(os.path.join(a.out, "train_result.json"), "w") as f:
        json.dump({"args": vars(a), "params": n_params, "train_seconds": round(train_seconds, 1),
                   "test": ev, "test_hard_10_12_blanks": ev_hard, "n_hard": int(hm.sum()),
                   "history": history, "source": source}, f, indent=1)
    print(f"done in {train_seconds:.0f}s; params {n_params}", flush=True)


if __name__ == "__main__":
    main()
