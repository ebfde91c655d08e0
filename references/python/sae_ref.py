"""Plain PyTorch (dense) SAELens-style SAE training loop: the speed and
quality baseline for trminterp's lib/sae_train.ts.

Same scheme as the TypeScript trainer: Gaussian unit-norm decoder rows,
W_enc = W_dec^T, b_enc = 0, b_dec = data mean; Adam; decoder gradient
component parallel to each row removed before the step and rows
renormalized after it; TopK (top-k pre-activations, then ReLU) with AuxK on
dead latents (residual reconstructed without b_dec, scale min(n_dead/k_aux, 1),
coefficient 1/32), or ReLU with a linearly warmed-up L1 penalty. Losses are
squared errors summed over D and averaged over the batch (SAELens v6).

Reads states [N, D] from a .npy file (or makes planted synthetic data with
--synthetic N,D) and prints one JSON line with activations/s and the final
FVU on the training rows.

    python3 references/python/sae_ref.py --synthetic 16384,64 --d-sae 1024 --k 16 --steps 20
"""

import argparse
import json
import math
import time

import numpy as np
import torch


def planted(n: int, d: int, n_atoms: int, active: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    idx = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :active]
    coef = (0.5 + rng.random((n, active))).astype(np.float32)
    return np.einsum("na,nad->nd", coef, atoms[idx]).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--states", help=".npy file of float32 states [N, D]")
    p.add_argument("--synthetic", help="N,D: planted sparse data instead of --states")
    p.add_argument("--arch", choices=["topk", "relu"], default="topk")
    p.add_argument("--d-sae", type=int, required=True)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--l1", type=float, default=5.0)
    p.add_argument("--l1-warmup", type=int, default=None)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k-aux", type=int, default=None)
    p.add_argument("--aux-coef", type=float, default=1 / 32)
    p.add_argument("--dead-tokens", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.synthetic:
        n, d = (int(v) for v in a.synthetic.split(","))
        x_all = torch.from_numpy(planted(n, d, a.d_sae, min(a.k, a.d_sae), a.seed))
    else:
        x_all = torch.from_numpy(np.load(a.states).astype(np.float32))
    n, D = x_all.shape
    F = a.d_sae
    B = min(a.batch, n)
    k_aux_max = a.k_aux if a.k_aux is not None else D // 2
    dead_tokens = a.dead_tokens if a.dead_tokens is not None else min(10_000_000, n)
    l1_warm = a.l1_warmup if a.l1_warmup is not None else a.steps // 20

    w = torch.randn(F, D)
    W_dec = torch.nn.Parameter(w / w.norm(dim=1, keepdim=True))
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(F))
    b_dec = torch.nn.Parameter(x_all.mean(0))
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    since = torch.zeros(F)
    gen = torch.Generator().manual_seed(a.seed)
    perm = torch.randperm(n, generator=gen)
    pos = 0

    def step_fn(step: int) -> float:
        nonlocal perm, pos
        if pos + B > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        x = x_all[perm[pos : pos + B]]
        pos += B
        dead = since >= dead_tokens
        pre = (x - b_dec) @ W_enc + b_enc
        if a.arch == "topk":
            top = pre.topk(a.k, dim=-1)
            f = torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
        else:
            f = pre.relu()
        x_hat = f @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum(-1).mean()
        n_dead = int(dead.sum())
        if a.arch == "topk" and n_dead > 0 and k_aux_max > 0:
            k_aux = min(k_aux_max, n_dead)
            scale = min(n_dead / k_aux_max, 1.0)
            resid = (x - x_hat).detach()
            masked = torch.where(dead[None], pre, -torch.inf)
            at = masked.topk(k_aux, dim=-1)
            z = torch.zeros_like(pre).scatter_(-1, at.indices, at.values)
            loss = loss + a.aux_coef * scale * (z @ W_dec - resid).pow(2).sum(-1).mean()
        if a.arch == "relu":
            coef = a.l1 * (min(1.0, (step + 1) / l1_warm) if l1_warm > 0 else 1.0)
            loss = loss + coef * (f * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        with torch.no_grad():
            g = W_dec.grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec
            opt.step()
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))
            fired = (f > 0).any(0)
            since.add_(B).masked_fill_(fired, 0)
        return float(loss.detach())

    for s in range(a.warmup_steps):
        step_fn(s)
    t0 = time.perf_counter()
    for s in range(a.warmup_steps, a.warmup_steps + a.steps):
        loss = step_fn(s)
    dt = time.perf_counter() - t0

    with torch.no_grad():
        sse = 0.0
        for s in range(0, n, 4096):
            x = x_all[s : s + 4096]
            pre = (x - b_dec) @ W_enc + b_enc
            if a.arch == "topk":
                top = pre.topk(a.k, dim=-1)
                f = torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
            else:
                f = pre.relu()
            sse += float((f @ W_dec + b_dec - x).pow(2).sum())
        var = float((x_all - x_all.mean(0)).pow(2).sum())
    print(json.dumps({
        "impl": "pytorch-dense", "arch": a.arch, "d_in": D, "d_sae": F, "k": a.k,
        "batch": B, "steps": a.steps, "threads": a.threads,
        "activations_per_s": a.steps * B / dt, "seconds": dt,
        "final_loss": loss, "fvu": sse / var if var > 0 else math.nan,
    }))


if __name__ == "__main__":
    main()
