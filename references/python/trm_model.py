"""Small reference TRM / HRM in PyTorch.

The module layout (and therefore the state_dict key names) follows the inner model of
SamsungSAILMontreal/TinyRecursiveModels (`models/recursive_reasoning/trm.py`, `hrm.py`,
`models/layers.py`), so an official checkpoint loads after its `_orig_mod.model.inner.`
prefix is stripped:

    embed_tokens.embedding_weight          [V, D]
    puzzle_emb.weights                     [num_puzzle_identifiers, puzzle_emb_ndim] (buffer)
    lm_head.weight                         [V, D]
    q_head.weight, q_head.bias             [2, D], [2]
    L_level.layers.{i}.self_attn.qkv_proj.weight | L_level.layers.{i}.mlp_t.gate_up_proj.weight ...
    L_level.layers.{i}.mlp.gate_up_proj.weight, ...mlp.down_proj.weight
    H_level.layers.{i}....                 (HRM only)
    H_init, L_init                         [D] (buffers)

The code here is written independently. It follows the official numerics (v0-spec §1.4):
float32 RoPE tables, F.silu and scaled_dot_product_attention in torch, RMSNorm and the
RoPE rotation upcast to float32 for bfloat16 activations, q_halt returned in float32 for
bfloat16. Cast with `model.to(dtype)`: float32 runs as the official float32 model (bit for
bit on the CPU), bfloat16 as the official bfloat16 forward (weights cast to bfloat16, the
RoPE tables stay float32), and float64 as a float64 reference (RMSNorm stays float64). The
ONNX export (torch.onnx.is_in_onnx_export()) swaps in graph-friendly forms of the same
math: attention as MatMul/Softmax/MatMul, and in float64 SiLU as x/(1+exp(-x)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

OFFICIAL_PREFIX = "_orig_mod.model.inner."


@dataclass
class ModelConfig:
    family: str = "trm"            # "trm" | "hrm"
    seq_len: int = 16
    vocab_size: int = 6
    hidden_size: int = 64
    num_heads: int = 2
    expansion: float = 4.0
    H_cycles: int = 2
    L_cycles: int = 2
    L_layers: int = 2
    H_layers: int = 0               # HRM only (TRM ignores it, as the official code does)
    halt_max_steps: int = 8
    puzzle_emb_ndim: int = 0
    puzzle_emb_len: int = 0         # 0 -> ceil(puzzle_emb_ndim / hidden_size)
    num_puzzle_identifiers: int = 1
    pos_encodings: str = "rope"     # "rope" | "learned" | "none"
    mlp_t: bool = False
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    ffn_multiple: int = 256         # SwiGLU width rounds up to this (the official code uses 256)

    @property
    def P(self) -> int:
        if self.puzzle_emb_len:
            return self.puzzle_emb_len
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        known = {k: d[k] for k in ModelConfig.__dataclass_fields__ if k in d}
        return ModelConfig(**known)


# ----------------------------------------------------------------------------- init

def trunc_normal_(t: torch.Tensor, std: float, lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    """Truncated normal whose actual std is `std` (JAX-style correction)."""
    with torch.no_grad():
        if std == 0:
            return t.zero_()
        # variance of a standard normal truncated to [lo, hi]
        phi = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        Z = 0.5 * (math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)))
        var = 1 + (lo * phi(lo) - hi * phi(hi)) / Z - ((phi(lo) - phi(hi)) / Z) ** 2
        s = std / math.sqrt(var)
        t.normal_(0.0, 1.0).clamp_(lo, hi).mul_(s)  # approximate; fine for a reference model
    return t


# ----------------------------------------------------------------------------- layers

def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the official code uses for RMSNorm and the RoPE rotation: float32 for
    bfloat16/float16 activations (it upcasts there), else the activations' own dtype (the
    float64 reference stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # no weight; computed in compute_dtype and cast back, as the official rms_norm does for
    # bfloat16 (a no-op in float32 and float64); x*x rather than pow so the float64 ONNX
    # export uses Mul (x*x and square() round identically)
    dt, ct = x.dtype, compute_dtype(x.dtype)
    h = x if ct == dt else x.to(ct)  # no Cast node in float32/float64 graphs
    h = h * torch.rsqrt((h * h).mean(-1, keepdim=True) + eps)
    return h if ct == dt else h.to(dt)


def silu(x: torch.Tensor) -> torch.Tensor:
    # torch: F.silu, as the official SwiGLU. ONNX export: float32 -> Sigmoid+Mul (what the
    # exporter writes for F.silu; onnxruntime may fuse it to QuickGelu, float32 only);
    # float64 -> x/(1+exp(-x)) written out (Neg/Exp/Add/Div, the formula of torch's float64
    # silu), a pattern no onnxruntime fusion rewrites, so float64 graphs run with graph
    # optimizations on or off.
    if x.dtype == torch.float64 and torch.onnx.is_in_onnx_export():
        return x / (1.0 + torch.exp(-x))
    return F.silu(x)


def _round_up(a: int, b: int) -> int:
    return -(a // -b) * b


class CastedLinear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(fan_out, fan_in), std=fan_in ** -0.5))
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class CastedEmbedding(nn.Module):
    def __init__(self, n: int, d: int, init_std: float):
        super().__init__()
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(n, d), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight)


class PuzzleEmbedding(nn.Module):
    """Eval-mode equivalent of the official CastedSparseEmbedding: a persistent `weights`
    buffer. For our own training it is a plain parameter with the same name."""

    def __init__(self, n: int, d: int, trainable: bool):
        super().__init__()
        w = torch.zeros(n, d)
        if trainable:
            self.weights = nn.Parameter(w)
        else:
            self.register_buffer("weights", w, persistent=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weights[ids]


def rope_tables(dim: int, max_pos: int, base: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [max_pos, dim] exactly as the official RotaryEmbedding builds them: inverse
    frequencies, positions, their outer product, cos and sin all in float32 (on the CPU)."""
    inv = 1.0 / (float(base) ** (torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") / dim))
    t = torch.arange(max_pos, dtype=torch.float32, device="cpu")
    ang = torch.outer(t, inv)
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos(), ang.sin()


class RotaryEmbedding(nn.Module):
    """Holds the float32 tables as plain attributes, so `model.to(dtype)` leaves them float32;
    forward(dtype) returns them in compute_dtype(dtype): float32 for float32/bfloat16
    activations, float64 (the float32 values, exactly) for a float64 model."""

    def __init__(self, dim: int, max_pos: int, base: float):
        super().__init__()
        self.cos32, self.sin32 = rope_tables(dim, max_pos, base)

    def forward(self, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
        ct = compute_dtype(dtype)
        if ct == torch.float32:
            return self.cos32, self.sin32
        return self.cos32.to(ct), self.sin32.to(ct)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.qkv_proj = CastedLinear(hidden, 3 * num_heads * self.head_dim, bias=False)
        self.o_proj = CastedLinear(num_heads * self.head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos_sin) -> torch.Tensor:
        B, L, _ = x.shape
        nh, hd = self.num_heads, self.head_dim
        qkv = self.qkv_proj(x).view(B, L, 3 * nh, hd)
        q, k, v = qkv[:, :, :nh], qkv[:, :, nh:2 * nh], qkv[:, :, 2 * nh:]
        if cos_sin is not None:
            # as the official apply_rotary_pos_emb: rotate in the tables' dtype, cast back
            cos, sin = cos_sin
            dt, ct = q.dtype, cos.dtype
            if ct != dt:
                q, k = q.to(ct), k.to(ct)
            cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # [L,1,hd]
            q = (q * cos) + (_rotate_half(q) * sin)
            k = (k * cos) + (_rotate_half(k) * sin)
            if ct != dt:
                q, k = q.to(dt), k.to(dt)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # B,nh,L,hd
        if torch.onnx.is_in_onnx_export():
            scores = q @ k.transpose(-1, -2)
            # scale by a [L] vector instead of a scalar: same numbers, but onnxruntime's
            # MatMulScaleFusion (whose alpha is a float32 attribute) cannot fold it into the
            # MatMul, which would cost float64 graphs ~1e-8 of accuracy
            att = torch.softmax(scores * scores.new_full((scores.shape[-1],), 1.0 / math.sqrt(hd)), dim=-1)
            out = att @ v
        else:
            # torch: the official call (bit-identical to the official model on the same device)
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(B, L, nh * hd)
        return self.o_proj(out)


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, expansion: float, multiple: int = 256):
        super().__init__()
        inter = _round_up(round(expansion * hidden * 2 / 3), multiple)  # official width rule with multiple=256
        self.gate_up_proj = CastedLinear(hidden, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(silu(g) * u)


class Block(nn.Module):
    """Post-norm block: x = norm(x + mix(x)); x = norm(x + mlp(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.eps = cfg.rms_norm_eps
        self.use_mlp_t = cfg.mlp_t
        if cfg.mlp_t:
            self.mlp_t = SwiGLU(cfg.seq_len + cfg.P, cfg.expansion, cfg.ffn_multiple)
        else:
            self.self_attn = Attention(cfg.hidden_size, cfg.num_heads)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.expansion, cfg.ffn_multiple)

    def forward(self, x: torch.Tensor, cos_sin) -> torch.Tensor:
        if self.use_mlp_t:
            t = x.transpose(1, 2)
            t = rms_norm(t + self.mlp_t(t), self.eps)
            x = t.transpose(1, 2)
        else:
            x = rms_norm(x + self.self_attn(x, cos_sin), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    def __init__(self, cfg: ModelConfig, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg) for _ in range(n_layers)])

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor, cos_sin=None) -> torch.Tensor:
        h = hidden + injection
        for layer in self.layers:
            h = layer(h, cos_sin)
        return h


# ----------------------------------------------------------------------------- model

@dataclass
class Carry:
    z_H: torch.Tensor
    z_L: torch.Tensor


class RecursiveModel(nn.Module):
    """TRM (family='trm', one shared L_level) or HRM (family='hrm', L_level + H_level)."""

    def __init__(self, cfg: ModelConfig, trainable_puzzle_emb: bool = True):
        super().__init__()
        assert cfg.family in ("trm", "hrm")
        self.cfg = cfg
        D = cfg.hidden_size
        self.embed_scale = math.sqrt(D)
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, D, init_std=1.0 / self.embed_scale)
        self.lm_head = CastedLinear(D, cfg.vocab_size, bias=False)
        self.q_head = CastedLinear(D, 2, bias=True)
        self.puzzle_emb_len = cfg.P
        if cfg.puzzle_emb_ndim > 0:
            assert cfg.puzzle_emb_ndim <= cfg.P * D
            self.puzzle_emb = PuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim, trainable_puzzle_emb)
        if cfg.pos_encodings == "rope" and not cfg.mlp_t:
            self.rotary_emb = RotaryEmbedding(D // cfg.num_heads, cfg.seq_len + cfg.P, cfg.rope_theta)
        elif cfg.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(cfg.seq_len + cfg.P, D, init_std=1.0 / self.embed_scale)
        self.L_level = ReasoningModule(cfg, cfg.L_layers)
        if cfg.family == "hrm":
            self.H_level = ReasoningModule(cfg, cfg.H_layers)
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), std=1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), std=1.0), persistent=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

    # --- pieces that become ONNX graphs -------------------------------------------------
    def cos_sin(self, dtype: torch.dtype):
        return self.rotary_emb(dtype) if hasattr(self, "rotary_emb") else None

    def embed(self, tokens: torch.Tensor, puzzle_identifiers: Optional[torch.Tensor] = None) -> torch.Tensor:
        cfg, D = self.cfg, self.cfg.hidden_size
        e = self.embed_tokens(tokens)
        if cfg.puzzle_emb_ndim > 0:
            pe = self.puzzle_emb(puzzle_identifiers)
            pad = cfg.P * D - cfg.puzzle_emb_ndim
            if pad > 0:
                pe = F.pad(pe, (0, pad))
            e = torch.cat((pe.view(-1, cfg.P, D), e), dim=-2)
        if cfg.pos_encodings == "learned":
            e = 0.707106781 * (e + self.embed_pos.embedding_weight)
        return self.embed_scale * e

    def L_net(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        return self.L_level(hidden, injection, self.cos_sin(hidden.dtype))

    def H_net(self, hidden: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        lvl = self.H_level if self.cfg.family == "hrm" else self.L_level
        return lvl(hidden, injection, self.cos_sin(hidden.dtype))

    def head(self, z_H: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits = self.lm_head(z_H)[:, self.puzzle_emb_len:]
        q = self.q_head(z_H[:, 0])
        if compute_dtype(q.dtype) != q.dtype:
            q = q.to(torch.float32)  # official: q logits in float32 (bfloat16 forward)
        return logits, q[..., 0]

    # --- recurrence -----------------------------------------------------------------------
    def initial_carry(self, batch: int) -> Carry:
        L = self.cfg.seq_len + self.cfg.P
        D = self.cfg.hidden_size
        return Carry(self.H_init.view(1, 1, D).expand(batch, L, D).clone(),
                     self.L_init.view(1, 1, D).expand(batch, L, D).clone())

    def sup_step(self, carry: Carry, x: torch.Tensor, train_grad: bool = False):
        """One supervision step. With train_grad, gradients flow only through the official
        part: TRM -> the last H cycle (its L_cycles z_L updates and the z_H update); HRM ->
        the last z_L update and the last z_H update (1-step gradient)."""
        cfg = self.cfg
        z_H, z_L = carry.z_H, carry.z_L
        n_calls = cfg.H_cycles * (cfg.L_cycles + 1)
        if cfg.family == "trm":
            n_grad = cfg.L_cycles + 1
        else:
            n_grad = 2
        i = 0
        for h in range(cfg.H_cycles):
            for l in range(cfg.L_cycles):
                with torch.set_grad_enabled(train_grad and i >= n_calls - n_grad):
                    z_L = self.L_net(z_L, z_H + x)
                i += 1
            with torch.set_grad_enabled(train_grad and i >= n_calls - n_grad):
                z_H = self.H_net(z_H, z_L)
            i += 1
        logits, q_halt = self.head(z_H)
        return Carry(z_H.detach(), z_L.detach()), logits, q_halt


@torch.no_grad()
def rollout(model: RecursiveModel, tokens: torch.Tensor, puzzle_identifiers: Optional[torch.Tensor] = None,
            record_states: bool = False) -> dict:
    """Official evaluation: every example runs all halt_max_steps supervision steps.
    Returns x, per-step logits [T,B,S,V], q_halt [T,B], final z_H/z_L per step, and (with
    record_states) an ordered dict address -> state after that net call."""
    cfg = model.cfg
    x = model.embed(tokens, puzzle_identifiers)
    carry = model.initial_carry(tokens.shape[0])
    z_H, z_L = carry.z_H, carry.z_L
    states: Dict[str, torch.Tensor] = {}
    logits_all, q_all, zH_all, zL_all = [], [], [], []
    for sup in range(cfg.halt_max_steps):
        for h in range(cfg.H_cycles):
            for l in range(cfg.L_cycles):
                z_L = model.L_net(z_L, z_H + x)
                if record_states:
                    states[f"s{sup}.h{h}.l{l}"] = z_L
            z_H = model.H_net(z_H, z_L)
            if record_states:
                states[f"s{sup}.h{h}.H"] = z_H
        lg, q = model.head(z_H)
        logits_all.append(lg)
        q_all.append(q)
        zH_all.append(z_H)
        zL_all.append(z_L)
    return dict(x=x, logits=torch.stack(logits_all), q_halt=torch.stack(q_all),
                z_H=torch.stack(zH_all), z_L=torch.stack(zL_all), states=states)


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(model: RecursiveModel, path: str, extra: Optional[dict] = None) -> None:
    """Our checkpoint: {'config': dict, 'state_dict': {key: float32 tensor}, 'meta': dict}.
    State-dict keys are the official inner-model keys without prefix."""
    sd = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    torch.save({"config": model.cfg.to_dict(), "state_dict": sd, "meta": extra or {}}, path)


def strip_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove `_orig_mod.` / `model.` / `inner.` prefixes (official checkpoints are saved
    from torch.compile(ACTLossHead(model)))."""
    out = {}
    for k, v in sd.items():
        kk = k
        for p in ("_orig_mod.", "model.", "inner."):
            if kk.startswith(p):
                kk = kk[len(p):]
        out[kk] = v
    return out


def config_from_state_dict(sd: Dict[str, torch.Tensor], base: ModelConfig) -> ModelConfig:
    """Fill in what the shapes reveal (vocab, hidden, layers, puzzle emb, mlp_t, family)."""
    c = ModelConfig(**base.to_dict())
    V, D = sd["embed_tokens.embedding_weight"].shape
    c.vocab_size, c.hidden_size = int(V), int(D)
    c.L_layers = len({k.split(".")[2] for k in sd if k.startswith("L_level.layers.")})
    hl = {k.split(".")[2] for k in sd if k.startswith("H_level.layers.")}
    if hl:
        c.family, c.H_layers = "hrm", len(hl)
    c.mlp_t = any(".mlp_t." in k for k in sd)
    if "puzzle_emb.weights" in sd:
        n, nd = sd["puzzle_emb.weights"].shape
        c.num_puzzle_identifiers, c.puzzle_emb_ndim = int(n), int(nd)
    else:
        c.puzzle_emb_ndim, c.num_puzzle_identifiers, c.puzzle_emb_len = 0, 1, 0
    if "embed_pos.embedding_weight" in sd:
        c.pos_encodings = "learned"
    inter = int(sd["L_level.layers.0.mlp.down_proj.weight"].shape[1])
    if _round_up(round(c.expansion * c.hidden_size * 2 / 3), c.ffn_multiple) != inter:
        c.ffn_multiple = inter  # e.g. our small fixtures saved under official keys
    # P + S is visible in learned positions ([P+S, D]) and in mlp_t (its width is P+S);
    # seq_len 0 in `base` means "unknown, take it from the weights"
    seen = {}
    if "embed_pos.embedding_weight" in sd:
        seen["embed_pos.embedding_weight rows"] = int(sd["embed_pos.embedding_weight"].shape[0])
    if c.mlp_t:
        seen["L_level.layers.0.mlp_t.gate_up_proj.weight columns"] = int(sd["L_level.layers.0.mlp_t.gate_up_proj.weight"].shape[1])
    for what, n in seen.items():
        if c.seq_len <= 0:
            c.seq_len = n - c.P
        elif n != c.seq_len + c.P:
            raise ValueError(f"the checkpoint's {what} = {n}, but seq_len {c.seq_len} + puzzle_emb_len {c.P} = "
                             f"{c.seq_len + c.P}; is the dataset.json the one the model was trained on?")
    if c.seq_len <= 0:
        raise ValueError("seq_len is unknown: the weights do not show it (RoPE or no positions, no mlp_t); "
                         "pass the dataset's dataset.json (--dataset-json) or --seq-len")
    return c


def load_checkpoint(path: str, base: Optional[ModelConfig] = None) -> RecursiveModel:
    """Load either our checkpoint (dict with 'config' and 'state_dict') or an official one
    (a bare state dict with `_orig_mod.model.inner.` keys; `base` must give seq_len,
    num_heads, cycles, halt_max_steps, puzzle_emb_len and family when not inferable)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and "config" in obj:
        cfg = ModelConfig.from_dict(obj["config"])
        sd = obj["state_dict"]
    else:
        assert base is not None, "an official checkpoint needs a config (see export.py --official-config)"
        sd = strip_official(obj)
        cfg = config_from_state_dict(sd, base)
    sd = {k: v.to(torch.float32) for k, v in sd.items() if not k.endswith(("cos_cached", "sin_cached"))}
    model = RecursiveModel(cfg, trainable_puzzle_emb=False)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith(("cos_cached", "sin_cached"))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing={missing} unexpected={unexpected}")
    model.eval()
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
