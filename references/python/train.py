#!/usr/bin/env python3
"""Seeded CPU training of a small TRM on Sudoku with the official deep-supervision scheme.

    python3 references/python/train.py --data DIR --out DIR --seed 0 [--act --mlp-t --official ...]

--data is either a folder with train.jsonl / test.jsonl ({"id", "tokens", "label"} per line,
as written by sudoku4.py or sudoku9.py) or an official dataset folder (train/ and test/ with
all__inputs.npy, all__labels.npy, dataset.json, as written by TinyRecursiveModels'
build_*_dataset.py or sudoku9.py); seq_len and vocab_size come from the data. Writes
checkpoint.pt and train_result.json (per-supervision-step accuracy on the test split and on
every --extra-test set) into --out; with --official also step_<N> (the state dict under
`_orig_mod.model.inner.*`, as the official pretrain.py saves it) and all_config.yaml.

Training follows the official scheme (pretrain.py + ACTLossHead): a fixed set of batch
slots, each holding one example and its carry; every optimizer step runs one supervision
step for every slot (TRM: no gradient through the first H_cycles-1 cycles, gradient through
the last one), then the carry is detached. Loss = mean over examples of (token CE averaged
over the labelled cells) + 0.5 * BCE(q_halt, prediction exactly right). A slot halts after
halt_max_steps, or, with --act, when q_halt > 0 (with exploration: with probability
--halt-exploration a minimum of 2..halt_max_steps steps is drawn); halted slots get new
examples and the carry is reset to H_init / L_init.

With --ema-rate R (the official `ema: true`, `ema_rate`), a shadow copy of the weights starts
equal to the initial weights and after every optimizer step becomes R * shadow + (1 - R) *
weights, with no bias correction, as the official EMA helper does; the evaluations, the
interim and final checkpoints and step_<N> then hold the shadow weights, and
train_result.json also reports the raw weights' final accuracy for comparison.

With --init-from CHECKPOINT, training starts from that checkpoint's weights (ours or an
official step_<N>; the architecture flags must match it) instead of a fresh initialization:
a continuation, with a fresh optimizer, fresh batch slots and the learning-rate schedule of
this run's flags (the EMA shadow, if any, starts at those weights).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trm_model import (OFFICIAL_PREFIX, ModelConfig, RecursiveModel, count_params, rollout,  # noqa: E402
                       save_checkpoint, strip_official)

IGNORE = -100  # label value that does not count (the official IGNORE_LABEL_ID)


def load_split(path: str) -> dict:
    """A JSONL file or one split folder of the official layout -> tokens, labels [N,S] int64
    (labels equal to the dataset's ignore_label_id become IGNORE, as the official loader
    does), puzzle identifiers, and the dataset's seq_len / vocab_size when it states them."""
    if os.path.isdir(path):
        with open(os.path.join(path, "dataset.json")) as f:
            meta = json.load(f)
        inputs = np.load(os.path.join(path, "all__inputs.npy")).astype(np.int64)
        labels = np.load(os.path.join(path, "all__labels.npy")).astype(np.int64)
        pids = np.load(os.path.join(path, "all__puzzle_identifiers.npy")).astype(np.int64)
        if len(pids) != len(inputs):  # identifiers are per puzzle; map examples through puzzle_indices
            idx = np.load(os.path.join(path, "all__puzzle_indices.npy"))
            pids = np.repeat(pids, np.diff(idx))
        if meta.get("ignore_label_id") is not None:
            labels[labels == meta["ignore_label_id"]] = IGNORE
        return {"tokens": torch.from_numpy(inputs), "labels": torch.from_numpy(labels),
                "pids": torch.from_numpy(pids), "seq_len": int(meta["seq_len"]),
                "vocab_size": int(meta["vocab_size"])}
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return {"tokens": torch.tensor([r["tokens"] for r in rows], dtype=torch.int64),
            "labels": torch.tensor([r["label"] for r in rows], dtype=torch.int64),
            "pids": torch.tensor([r.get("puzzle_identifier", 0) for r in rows], dtype=torch.int64),
            "seq_len": None, "vocab_size": None}


def load_data(folder: str):
    """(train, test) from a JSONL folder or an official dataset folder."""
    if os.path.isdir(os.path.join(folder, "train")) and os.path.isfile(os.path.join(folder, "train", "dataset.json")):
        return load_split(os.path.join(folder, "train")), load_split(os.path.join(folder, "test"))
    return load_split(os.path.join(folder, "train.jsonl")), load_split(os.path.join(folder, "test.jsonl"))


@torch.no_grad()
def evaluate(model: RecursiveModel, tokens, labels, batch: int = 512, pids=None, exact_out: list | None = None):
    """Official evaluation (every example runs all halt_max_steps steps): per supervision
    step, exact accuracy, mean token accuracy over labelled cells, q_halt accuracy. With
    exact_out, the per-example exact flags ([steps, batch] bool per batch) are appended to it."""
    was_training = model.training
    model.eval()
    T = model.cfg.halt_max_steps
    ex = torch.zeros(T, dtype=torch.float64)
    tk = torch.zeros(T, dtype=torch.float64)
    qh = torch.zeros(T, dtype=torch.float64)
    for i in range(0, tokens.shape[0], batch):
        t, y = tokens[i:i + batch], labels[i:i + batch]
        res = rollout(model, t, None if pids is None else pids[i:i + batch])
        valid = (y != IGNORE).unsqueeze(0)
        eq = (res["logits"].argmax(-1) == y.unsqueeze(0)) & valid
        n_valid = valid.sum(-1).clamp_min(1)
        exact = eq.sum(-1) == valid.sum(-1)
        if exact_out is not None:
            exact_out.append(exact)
        ex += exact.double().sum(-1)
        tk += (eq.sum(-1).double() / n_valid).sum(-1)
        qh += ((res["q_halt"] > 0) == exact).double().sum(-1)
    n = tokens.shape[0]
    model.train(was_training)
    return [{"sup": s, "exact": round(float(ex[s] / n), 6), "token": round(float(tk[s] / n), 6),
             "q_halt_acc": round(float(qh[s] / n), 6)} for s in range(T)]


def exact_by_blanks(model: RecursiveModel, tokens, labels, blank: int = 1, pids=None, exact=None) -> dict:
    """Exact accuracy at the first and the last supervision step per blank count. exact, the
    [steps, N] flags an evaluate(exact_out=...) call collected, saves running the model again."""
    if exact is None:
        flags = []
        evaluate(model, tokens, labels, pids=pids, exact_out=flags)
        exact = torch.cat(flags, dim=1)
    nb = (tokens == blank).sum(-1)
    out = {}
    for b in sorted(set(nb.tolist())):
        m = nb == b
        n = int(m.sum())
        out[str(b)] = {"n": n, "exact_last": round(float(exact[-1][m].double().sum() / n), 6),
                       "exact_first": round(float(exact[0][m].double().sum() / n), 6)}
    return out


def official_state_dict(model: RecursiveModel) -> dict:
    """The state dict as the official pretrain.py saves it: torch.compile(ACTLossHead(model))
    puts `_orig_mod.` + `model.` + `inner.` in front of the inner model's keys."""
    return {OFFICIAL_PREFIX + k: v.detach().to(torch.float32).contiguous().clone()
            for k, v in model.state_dict().items() if not k.endswith(("cos_cached", "sin_cached"))}


@torch.no_grad()
def ema_update(shadow: RecursiveModel, model: RecursiveModel, rate: float) -> None:
    """shadow <- rate * shadow + (1 - rate) * model, over the trained parameters."""
    for ps, p in zip(shadow.parameters(), model.parameters()):
        if p.requires_grad:
            ps.mul_(rate).add_(p.detach(), alpha=1.0 - rate)


def official_config(a, cfg: ModelConfig, n_train: int, name: str) -> dict:
    """all_config.yaml as the official pretrain.py dumps PretrainConfig (keys sorted by
    yaml.dump). `epochs` is chosen so the official step count
    epochs * total_groups / global_batch_size equals --steps."""
    expansion = int(cfg.expansion) if float(cfg.expansion).is_integer() else cfg.expansion
    epochs = a.steps * a.batch / n_train
    return {
        "arch": {
            "name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            "loss": {"name": "losses@ACTLossHead", "loss_type": "softmax_cross_entropy"},
            "halt_exploration_prob": a.halt_exploration,
            "halt_max_steps": cfg.halt_max_steps,
            "H_cycles": cfg.H_cycles, "L_cycles": cfg.L_cycles,
            "H_layers": 0, "L_layers": cfg.L_layers,
            "hidden_size": cfg.hidden_size, "num_heads": cfg.num_heads, "expansion": expansion,
            "puzzle_emb_ndim": cfg.puzzle_emb_ndim, "puzzle_emb_len": cfg.P,
            "pos_encodings": cfg.pos_encodings, "forward_dtype": "float32",
            "mlp_t": cfg.mlp_t, "no_ACT_continue": True,
        },
        "data_paths": [a.data], "data_paths_test": [], "evaluators": [],
        "global_batch_size": a.batch,
        "epochs": int(epochs) if float(epochs).is_integer() else epochs,
        "eval_interval": None, "checkpoint_every_eval": False, "min_eval_interval": 0,
        "lr": a.lr, "lr_min_ratio": a.lr_min_ratio, "lr_warmup_steps": a.lr_warmup,
        "weight_decay": a.weight_decay, "beta1": 0.9, "beta2": 0.95,
        "puzzle_emb_lr": a.lr, "puzzle_emb_weight_decay": a.weight_decay,
        "project_name": None, "run_name": name, "load_checkpoint": None, "checkpoint_path": a.out,
        "seed": a.seed, "eval_save_outputs": [], "ema": a.ema_rate is not None,
        "ema_rate": 0.999 if a.ema_rate is None else a.ema_rate, "freeze_weights": False,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True,
                    help="folder with train.jsonl and test.jsonl, or an official dataset folder (train/, test/)")
    ap.add_argument("--out", required=True, help="folder for checkpoint.pt and train_result.json")
    ap.add_argument("--name", default=None, help="model name in the checkpoint (default: the --data folder's name)")
    ap.add_argument("--extra-test", action="append", default=[], metavar="NAME=PATH",
                    help="also evaluate on this JSONL file or dataset split folder at the end (repeatable)")
    ap.add_argument("--official", action="store_true",
                    help="also write step_<N> (official key layout) and all_config.yaml")
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
    ap.add_argument("--eval-limit", type=int, default=None,
                    help="test puzzles used by the evaluations during training (the final one uses all)")
    ap.add_argument("--ema-rate", type=float, default=None, metavar="R",
                    help="keep an exponential moving average of the weights (official ema_rate: 0.999) and "
                         "evaluate and save it instead of the raw weights (default: no EMA)")
    ap.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                    help="start from these weights (checkpoint.pt or an official step_<N> with the same "
                         "architecture) instead of a fresh initialization")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.ema_rate is not None and not 0.0 < a.ema_rate < 1.0:
        raise SystemExit(f"--ema-rate must lie strictly between 0 and 1 (got {a.ema_rate}); the official value is 0.999")

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)

    train, test = load_data(a.data)
    tr_tok, tr_lab = train["tokens"], train["labels"]
    te_tok, te_lab = test["tokens"], test["labels"]
    if bool((train["pids"] != 0).any()) or bool((test["pids"] != 0).any()):
        raise SystemExit("puzzle identifiers other than 0 need a puzzle embedding, which train.py does not train")
    seq_len = train["seq_len"] or int(tr_tok.shape[1])
    vocab = train["vocab_size"] or int(max(tr_tok.max(), tr_lab.max(), te_tok.max(), te_lab.max())) + 1
    name = a.name or os.path.basename(os.path.normpath(a.data))
    cfg = ModelConfig(family="trm", seq_len=seq_len, vocab_size=vocab, hidden_size=a.hidden, num_heads=a.heads,
                      expansion=4.0, H_cycles=a.H_cycles, L_cycles=a.L_cycles, L_layers=a.L_layers,
                      halt_max_steps=a.halt_max_steps, mlp_t=a.mlp_t, ffn_multiple=a.ffn_multiple,
                      pos_encodings=a.pos_encodings)
    model = RecursiveModel(cfg)
    if a.init_from is not None:
        obj = torch.load(a.init_from, map_location="cpu", weights_only=True)
        sd = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else strip_official(obj)
        try:
            missing, unexpected = model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise SystemExit(f"--init-from {a.init_from} does not match the architecture flags "
                             f"({str(e).splitlines()[-1].strip()}); pass the flags it was trained with")
        missing = [k for k in missing if not k.endswith(("cos_cached", "sin_cached"))]
        if missing or unexpected:
            raise SystemExit(f"--init-from {a.init_from} does not match the architecture flags: "
                             f"missing {missing[:4]}, unexpected {unexpected[:4]}; pass the flags it was trained with")
        print(f"initialized from {a.init_from}", flush=True)
    model.train()
    n_params = count_params(model)
    print(f"params {n_params}; train {len(tr_tok)} test {len(te_tok)}", flush=True)
    # the model the evaluations and checkpoints see: the EMA shadow when asked for, else the weights
    shadow = None
    if a.ema_rate is not None:
        shadow = copy.deepcopy(model)
        shadow.requires_grad_(False)
    final_model = shadow if shadow is not None else model
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
    eval_seconds = 0.0
    history = []
    for it in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        tok, lab = tr_tok[slot_idx], tr_lab[slot_idx]
        x = model.embed(tok)
        carry, logits, q_halt = model.sup_step(carry, x, train_grad=True)
        steps += 1
        with torch.no_grad():
            valid = lab != IGNORE
            exact = ((logits.argmax(-1) == lab) | ~valid).all(-1)
        ce = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), lab.reshape(-1), ignore_index=IGNORE,
                             reduction="none").view(B, -1)
        # per-example mean over labelled cells (plain mean when all are labelled, as before)
        ce = ce.mean(-1) if bool(valid.all()) else ce.sum(-1) / valid.sum(-1).clamp_min(1)
        bce = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="none")
        loss = (ce + 0.5 * bce).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if shadow is not None:
            ema_update(shadow, model, a.ema_rate)
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
        if (it + 1) % a.eval_every == 0 and it + 1 < a.steps:
            te0 = time.time()
            k = a.eval_limit or len(te_tok)
            ev = evaluate(final_model, te_tok[:k], te_lab[:k])
            history.append({"step": it + 1, "n": int(min(k, len(te_tok))), "exact": [e["exact"] for e in ev]})
            # a checkpoint at every evaluation, so an interrupted run still leaves a model
            os.makedirs(a.out, exist_ok=True)
            save_checkpoint(final_model, os.path.join(a.out, "checkpoint.pt"), {"name": name, "step": it + 1})
            if a.official:  # the interim weights in the official layout too, for export.py
                torch.save(official_state_dict(final_model), os.path.join(a.out, f"step_{it + 1}"))
            eval_seconds += time.time() - te0
            print(f"eval step {it + 1} ({min(k, len(te_tok))} test): exact per sup "
                  + " ".join(f"{e['exact']:.3f}" for e in ev) + f" [{time.time() - t0:.0f}s]", flush=True)

    train_seconds = time.time() - t0
    model.eval()
    raw = None
    if shadow is not None:  # the raw weights once, to show what the average changed
        raw = evaluate(model, te_tok, te_lab)
        print("raw weights (no EMA), test: exact per sup " + " ".join(f"{e['exact']:.3f}" for e in raw), flush=True)
    model = final_model
    model.eval()
    flags = []
    ev = evaluate(model, te_tok, te_lab, exact_out=flags)
    by_blanks = exact_by_blanks(model, te_tok, te_lab, exact=torch.cat(flags, dim=1))
    print("\nsup  exact   token   (test split, torch reference)")
    for e in ev:
        print(f"{e['sup']:>3}  {e['exact']:.4f}  {e['token']:.4f}")
    extra = {}
    for spec in a.extra_test:
        nm, path = spec.split("=", 1)
        d = load_split(path)
        extra[nm] = {"path": path, "n": int(len(d["tokens"])), "per_step": evaluate(model, d["tokens"], d["labels"])}
        print(f"{nm} ({len(d['tokens'])}): exact per sup " + " ".join(f"{e['exact']:.3f}" for e in extra[nm]["per_step"]))
    os.makedirs(a.out, exist_ok=True)
    cmd = "python3 " + " ".join([os.path.relpath(__file__, os.getcwd())] + (argv if argv is not None else sys.argv[1:]))
    source = {"training_command": cmd, "seed": a.seed, "train_puzzles": int(len(tr_tok)),
              "test_puzzles": int(len(te_tok)), "params": n_params,
              "test_exact_first_step": ev[0]["exact"], "test_exact_last_step": ev[-1]["exact"]}
    if shadow is not None:
        source["ema_rate"] = a.ema_rate
    # pad 0, blank 1, symbols from 2 (sudoku4.py and the official Sudoku builder agree)
    tokens = {"pad": 0, "blank": 1, "symbols": [str(i) for i in range(1, cfg.vocab_size - 1)], "symbol_offset": 2}
    save_checkpoint(model, os.path.join(a.out, "checkpoint.pt"), {"name": name, "tokens": tokens, "source": source})
    if a.official:
        import yaml
        torch.save(official_state_dict(model), os.path.join(a.out, f"step_{a.steps}"))
        with open(os.path.join(a.out, "all_config.yaml"), "w") as f:
            yaml.dump(official_config(a, cfg, len(tr_tok), name), f)
    with open(os.path.join(a.out, "train_result.json"), "w") as f:
        json.dump({"args": vars(a), "params": n_params, "train_seconds": round(train_seconds, 1),
                   "eval_seconds_during_training": round(eval_seconds, 1),
                   "test": ev, "test_exact_by_blanks": by_blanks, "extra_tests": extra,
                   "history": history, "source": source,
                   **({"ema_rate": a.ema_rate, "test_raw_weights": raw} if shadow is not None else {})}, f, indent=1)
    print(f"done in {train_seconds:.0f}s (of which {eval_seconds:.0f}s evaluation); params {n_params}", flush=True)


if __name__ == "__main__":
    main()
