"""PyTorch reference for pgolf's parity tests (tests/test_parity.c): train_gpt.py's GPT, Muon and Adam,
re-implemented functionally (torch 1.13 has neither F.rms_norm nor scaled_dot_product_attention).

`python3 tests/ref_gpt.py --out DIR` writes DIR/gpt_<case>/ for each case in CASES:
  config.txt            KEY=VALUE settings (pgolf env names, plus BATCH_SEQS, STEP_MOMENTUM, LR_MUL)
  weights.safetensors   every parameter, F32, seeded random (not the reference init: zero projections
                        would hide gradient bugs)
  tokens.i32            B*T+1 little-endian int32 ids; x = tok[:-1].view(B,T), y = tok[1:].view(B,T)
  expected.safetensors  F32 of float64 results: loss, grad.<name>, step1.<name> (one optimizer step),
                        loss2 and step2.<name> (a second step on the same batch, optimizer state kept)

Importable without side effects: bench/torch_ref.py uses param_shapes, init_params, gpt_loss and
Optimizers in float32.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import save_safetensors  # noqa: E402

# F.rms_norm(eps=None) uses the epsilon of the op's math type, float32 for fp32/bf16 inputs; we keep
# that value in float64 too.
RMS_EPS = float(torch.finfo(torch.float32).eps)
# Names routed to the scalar Adam group even when 2-D (train_gpt.py's CONTROL_TENSOR_NAME_PATTERNS).
# The records' list plus #1435/#2005's skip_gates (pgolf's default); the root script has the first nine.
CONTROL_PATTERNS = ("attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes",
                    "q_gain", "skip_weight", "skip_weights", "skip_gates", "smear", "dtg_gate", "ve_layer_scales",
                    "ve_shared.scale", "attn_gate", "vr_lambda")


def model_config(vocab=1024, layers=9, dim=512, heads=8, kv_heads=4, mlp_mult=2, tie=True, rope_base=10000.0,
                 softcap=30.0, qk_gain=1.5, rope_dims=0, ln_scale=False, negative_slope=0.0, xsa_last_n=0,
                 smear=False, gated_attention=False, gate_elementwise=False, value_residual="", bigram=(0, 0),
                 skip_gates=False, recur=None, parallel_from=-1, virtual_skips=False, gate_rows_in_q=False,
                 ve=None, lanes_from=0, rope_train_seq_len=0):
    """rope_dims, ln_scale, negative_slope, xsa_last_n: the records' partial RoPE, LN scale, LeakyReLU^2 and
    XSA on the last N layers, SmearGate, gated attention (per head, or per channel), value residual
    ("scalar": #413 and #638, "sigmoid": the 2026-03-25_ValCalib record), BigramHash (buckets, dim), sigmoid-gated U-Net skips, depth recurrence
    recur=(first, last, loops), GPT-J parallel blocks from layer parallel_from, skips sized from the looped
    layout, #2005's gate logits as extra rows of c_q, value embedding ve=(dim, [layers]), #1435's two lanes from
    layer lanes_from, #638's NTK-scaled RoPE beyond rope_train_seq_len (0/False/""/None/-1: off)."""
    return dict(vocab=vocab, layers=layers, dim=dim, heads=heads, kv_heads=kv_heads, mlp_mult=mlp_mult, tie=tie,
                rope_base=float(rope_base), softcap=float(softcap), qk_gain=float(qk_gain), rope_dims=rope_dims,
                ln_scale=ln_scale, negative_slope=float(negative_slope), xsa_last_n=xsa_last_n, smear=smear,
                gated_attention=gated_attention, gate_elementwise=gate_elementwise, value_residual=value_residual,
                bigram=bigram, skip_gates=skip_gates, recur=recur, parallel_from=parallel_from,
                virtual_skips=virtual_skips, gate_rows_in_q=gate_rows_in_q, ve=ve, lanes_from=lanes_from,
                rope_train_seq_len=rope_train_seq_len)


def layer_order(cfg):
    """Physical layer of each virtual position: #1435/#2005's looped layout when recur is set."""
    L, recur = cfg["layers"], cfg.get("recur")
    if not recur:
        return list(range(L))
    first, last, loops = recur
    return list(range(last + 1)) + list(range(first, last + 1)) * loops + list(range(last + 1, L))


def param_shapes(cfg):
    """name -> shape, in train_gpt.py's state_dict order."""
    D, L = cfg["dim"], cfg["layers"]
    Dkv = cfg["kv_heads"] * (D // cfg["heads"])
    n = len(layer_order(cfg)) if cfg.get("virtual_skips") else L
    rows = min(n // 2, n - n // 2)
    shapes = {"skip_weights": (rows, D)}
    if cfg.get("skip_gates"):
        shapes["skip_gates"] = (rows, D)
    if cfg.get("lanes_from"):
        shapes["lane_merge"] = ()
    shapes["tok_emb.weight"] = (cfg["vocab"], D)
    buckets, bdim = cfg.get("bigram", (0, 0))
    if buckets:
        shapes["bigram.scale"] = ()
        shapes["bigram.embed.weight"] = (buckets, bdim)
        if bdim != D:
            shapes["bigram.proj.weight"] = (D, bdim)
    if cfg.get("smear"):
        shapes["smear.gate"] = (D,)
    for i in range(L):
        b = f"blocks.{i}."
        shapes[b + "attn_scale"] = (D,)
        shapes[b + "mlp_scale"] = (D,)
        shapes[b + "resid_mix"] = (2, D)
        shapes[b + "attn.q_gain"] = (cfg["heads"],)
        if cfg.get("value_residual") == "scalar":
            shapes[b + "attn.vr_lambda"] = (2,)
        elif cfg.get("value_residual") == "sigmoid":
            shapes[b + "attn.vrl_alpha"] = (1,)
        G = (D if cfg.get("gate_elementwise") else cfg["heads"]) if cfg.get("gated_attention") else 0
        shapes[b + "attn.c_q.weight"] = (D + (G if cfg.get("gate_rows_in_q") else 0), D)
        shapes[b + "attn.c_k.weight"] = (Dkv, D)
        shapes[b + "attn.c_v.weight"] = (Dkv, D)
        shapes[b + "attn.proj.weight"] = (D, D)
        if cfg.get("gated_attention") and not cfg.get("gate_rows_in_q"):
            shapes[b + "attn.attn_gate.weight"] = (G, D)
            shapes[b + "attn.attn_gate.bias"] = (G,)
        shapes[b + "mlp.fc.weight"] = (cfg["mlp_mult"] * D, D)
        shapes[b + "mlp.proj.weight"] = (D, cfg["mlp_mult"] * D)
    if cfg.get("ve"):  # #1435's ValueEmbedding and its per-layer scales
        ve_dim, ve_layers = cfg["ve"]
        shapes["ve_shared.scale"] = ()
        shapes["ve_shared.embed.weight"] = (cfg["vocab"], ve_dim)
        if ve_dim != Dkv:
            shapes["ve_shared.proj.weight"] = (Dkv, ve_dim)
        for k in range(len(ve_layers)):
            shapes[f"ve_layer_scales.{k}"] = (1,)
    if not cfg["tie"]:
        shapes["lm_head.weight"] = (cfg["vocab"], D)
    return shapes


def init_params(cfg, gen):
    """Seeded float32 test weights: every parameter away from its (often zero or one) reference init."""
    out = {}
    for name, shape in param_shapes(cfg).items():
        n = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name == "tok_emb.weight":
            v = 0.5 * n
        elif name.endswith("q_gain"):
            v = cfg["qk_gain"] + 0.2 * n
        elif name.endswith("attn_scale") or name.endswith("mlp_scale") or name == "skip_weights":
            v = 1.0 + 0.2 * n
        elif name in ("bigram.scale", "ve_shared.scale", "lane_merge"):
            v = 0.3 + 0.1 * n
        elif name.startswith("ve_layer_scales"):
            v = 1.0 + 0.2 * n
        elif name in ("smear.gate", "bigram.embed.weight", "skip_gates", "ve_shared.embed.weight") or name.endswith("vrl_alpha"):
            v = 0.5 * n
        elif name.endswith("vr_lambda"):
            v = 0.5 + 0.2 * n
        elif name.endswith("attn_gate.bias"):
            v = 1.0 + 0.5 * n
        elif name.endswith("resid_mix"):
            v = torch.tensor([[1.0], [0.0]]) + 0.2 * n
        else:  # [out, in] matrices
            v = n / math.sqrt(shape[1])
        out[name] = v.contiguous()
    return out


def rms_norm(x):
    # x / sqrt(mean(x^2) + eps) over the last dim, no weight
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + RMS_EPS)


def rope_tables(T, Dh, base, dtype):
    """cos, sin [T, Dh/2]. Computed in float32 like train_gpt.py's Rotary cache, then cast."""
    inv_freq = 1.0 / (base ** (torch.arange(0, Dh, 2, dtype=torch.float32) / Dh))
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    return freqs.cos().to(dtype), freqs.sin().to(dtype)


def apply_rope(x, cos, sin):
    # x [B,nh,T,Dh]; rotate-half over the first 2 * cos.size(-1) dims (partial RoPE), the rest pass through
    rd = 2 * cos.size(-1)
    h = rd // 2
    x1, x2 = x[..., :h], x[..., h:rd]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin, x[..., rd:]), dim=-1)


def causal_attention(q, k, v):
    """q [B,H,T,Dh], k/v [B,Hkv,T,Dh] -> [B,H,T,Dh]; head h reads KV head h // (H/Hkv)."""
    H, Hkv, T, Dh = q.size(1), k.size(1), q.size(2), q.size(3)
    if Hkv != H:
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(Dh)  # [B,H,T,T]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def xsa(y, v):
    """#1435's _xsa_efficient: y [B,H,T,Dh] minus its projection on the normalized own value v [B,Hkv,T,Dh]."""
    B, H, T, Dh = y.shape
    Hkv = v.size(1)
    y_g = y.reshape(B, Hkv, H // Hkv, T, Dh)
    vn = F.normalize(v, dim=-1).unsqueeze(2)
    return (y_g - (y_g * vn).sum(-1, keepdim=True) * vn).reshape(B, H, T, Dh)


def attention(p, b, x, cfg, cos, sin, use_xsa=False, v0=None, ve=None):
    """x [B,T,D] (already normed) -> ([B,T,D], this layer's raw v). v0: layer 0's raw v (value residual)."""
    B, T, D = x.shape
    H, Hkv = cfg["heads"], cfg["kv_heads"]
    Dh = D // H
    q = F.linear(x, p[b + "attn.c_q.weight"])
    if cfg.get("gate_rows_in_q"):  # #2005: q_raw, gate_logits = c_q(x).split([dim, gates])
        q, gate_logits = q.split([D, q.size(-1) - D], dim=-1)
    q = q.reshape(B, T, H, Dh).transpose(1, 2)
    k = F.linear(x, p[b + "attn.c_k.weight"]).view(B, T, Hkv, Dh).transpose(1, 2)
    v = F.linear(x, p[b + "attn.c_v.weight"])
    if ve is not None:  # #1435: v = c_v(x) + v_embed, before the reshape
        v = v + ve
    v = v.view(B, T, Hkv, Dh).transpose(1, 2)
    raw_v = v
    if v0 is not None and cfg.get("value_residual") == "scalar":  # #413
        lam = p[b + "attn.vr_lambda"]
        v = lam[0] * v0 + lam[1] * v
    elif v0 is not None:  # #638
        v = v + torch.sigmoid(p[b + "attn.vrl_alpha"]) * v0
    q = apply_rope(rms_norm(q), cos, sin) * p[b + "attn.q_gain"][None, :, None, None]
    k = apply_rope(rms_norm(k), cos, sin)
    y = causal_attention(q, k, v)
    if use_xsa:
        y = xsa(y, v)
    y = y.transpose(1, 2)  # [B,T,H,Dh]
    if cfg.get("gated_attention"):  # sigmoid(x W^T + b), per head or per channel
        if cfg.get("gate_rows_in_q"):
            gate = torch.sigmoid(gate_logits)
        else:
            gate = torch.sigmoid(F.linear(x, p[b + "attn.attn_gate.weight"], p[b + "attn.attn_gate.bias"]))
        y = y * (gate.view(B, T, H, Dh) if cfg.get("gate_elementwise") else gate.unsqueeze(-1))
    y = y.reshape(B, T, D)
    return F.linear(y, p[b + "attn.proj.weight"]), raw_v


def block(p, i, x, x0, cfg, cos, sin, v0=None, ve=None):
    """-> (x_out, raw v of this layer). GPT-J parallel from cfg["parallel_from"]: one input for both branches."""
    b = f"blocks.{i}."
    mix = p[b + "resid_mix"]
    s = 1.0 / math.sqrt(i + 1) if cfg["ln_scale"] else 1.0
    x = mix[0] * x + mix[1] * x0
    use_xsa = i >= cfg["layers"] - cfg["xsa_last_n"]
    a, raw_v = attention(p, b, rms_norm(x) * s, cfg, cos, sin, use_xsa, v0, ve)
    parallel = 0 <= cfg.get("parallel_from", -1) <= i
    mlp_in = x if parallel else x + p[b + "attn_scale"] * a
    h = F.leaky_relu(F.linear(rms_norm(mlp_in) * s, p[b + "mlp.fc.weight"]), cfg["negative_slope"]).square()
    return x + p[b + "attn_scale"] * a + p[b + "mlp_scale"] * F.linear(h, p[b + "mlp.proj.weight"]), raw_v


def bigram_hash(ids, buckets):
    """The records' hash in int32: h[0] = buckets-1, h[t] = (36313 t_t xor 27191 t_{t-1}) mod (buckets-1)."""
    t = ids.to(torch.int32)
    mod = buckets - 1
    out = torch.empty_like(t)
    out[..., 0] = mod
    out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
    return out.long()


def bigram(p, ids, cfg):
    h = F.embedding(bigram_hash(ids, cfg["bigram"][0]), p["bigram.embed.weight"])
    if "bigram.proj.weight" in p:
        h = F.linear(h, p["bigram.proj.weight"])
    return h * p["bigram.scale"]


def gpt_loss(p, x_ids, y_ids, cfg):
    """Mean next-token cross-entropy. p: name -> tensor (all one float dtype); x_ids, y_ids [B,T] int64."""
    T = x_ids.size(1)
    E = p["tok_emb.weight"]
    rd, base, L = cfg["rope_dims"] or cfg["dim"] // cfg["heads"], cfg["rope_base"], cfg.get("rope_train_seq_len", 0)
    if L and T > L:  # #638's Rotary: base * (T / train_seq_len) ** (rd / (rd - 2))
        base = base * (T / L) ** (rd / (rd - 2))
    cos, sin = rope_tables(T, rd, base, E.dtype)
    x = F.embedding(x_ids, E)
    if "bigram.scale" in p:  # the records' BigramHashEmbedding, added before the norm
        x = x + bigram(p, x_ids, cfg)
    x = rms_norm(x)
    if cfg.get("smear"):  # SmearGate: (1 - g) x_t + g x_{t-1}
        g = torch.sigmoid(p["smear.gate"])
        x = (1 - g) * x + g * torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
    x0 = x
    ve_base, ve_layers = None, []
    if cfg.get("ve"):
        ve_layers = cfg["ve"][1]
        h = F.embedding(x_ids, p["ve_shared.embed.weight"])
        if "ve_shared.proj.weight" in p:
            h = F.linear(h, p["ve_shared.proj.weight"])
        ve_base = h * p["ve_shared.scale"]

    def ve_for(i):
        return ve_base * p[f"ve_layer_scales.{ve_layers.index(i)}"] if i in ve_layers else None
    order = layer_order(cfg)
    enc = len(order) // 2
    rows = p["skip_weights"].size(0)
    skips = []
    v0 = None  # value residual: layer 0's raw v, mixed into every later layer
    vr = bool(cfg.get("value_residual"))
    for i in order[:enc]:  # U-Net: the first half stores its outputs ...
        x, raw_v = block(p, i, x, x0, cfg, cos, sin, v0, ve_for(i))
        if vr and v0 is None:
            v0 = raw_v
        skips.append(x)
    lanes = None  # #1435: (attention lane, MLP lane) once a decoder layer >= lanes_from is reached
    for j, i in enumerate(order[enc:]):  # ... the second half adds them back, last stored first
        if skips and j < rows and cfg.get("skip_gates"):  # #1435/#2005: torch.lerp(w * skip, x, sigmoid(gate))
            x = torch.lerp(p["skip_weights"][j] * skips.pop(), x, torch.sigmoid(p["skip_gates"][j]))
        elif skips and j < rows:
            x = x + p["skip_weights"][j] * skips.pop()
        if cfg.get("lanes_from") and i >= cfg["lanes_from"] and lanes is None:
            lanes = (x, x)
        if lanes is not None:  # #1435's forward_logits: attention on lane 0 (with x0), MLP on lane 1
            b, s = f"blocks.{i}.", 1.0 / math.sqrt(i + 1) if cfg["ln_scale"] else 1.0
            mix = p[b + "resid_mix"]
            attn_in = mix[0] * lanes[0] + mix[1] * x0
            a, raw_v = attention(p, b, rms_norm(attn_in) * s, cfg, cos, sin, i >= cfg["layers"] - cfg["xsa_last_n"], v0,
                                 ve_for(i))
            h = F.leaky_relu(F.linear(rms_norm(lanes[1]) * s, p[b + "mlp.fc.weight"]), cfg["negative_slope"]).square()
            lanes = (attn_in + p[b + "attn_scale"] * a, lanes[1] + p[b + "mlp_scale"] * F.linear(h, p[b + "mlp.proj.weight"]))
            continue
        x, raw_v = block(p, i, x, x0, cfg, cos, sin, v0, ve_for(i))
        if vr and v0 is None:
            v0 = raw_v
    if lanes is not None:
        x = p["lane_merge"] * lanes[0] + (1 - p["lane_merge"]) * lanes[1]
    x = rms_norm(x).reshape(-1, cfg["dim"])
    z = F.linear(x, E if cfg["tie"] else p["lm_head.weight"])
    logits = cfg["softcap"] * torch.tanh(z / cfg["softcap"])
    return F.cross_entropy(logits, y_ids.reshape(-1))


# ---------------------------------------------------------------- optimizers

def newton_schulz5(G, steps, eps=1e-7):
    """train_gpt.py's zeropower_via_newtonschulz5 in G's own dtype (the reference runs it in bf16)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + eps)
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if transposed else X


class Muon:
    """Nesterov momentum, then orthogonalized update scaled by sqrt(max(1, rows/cols))."""

    def __init__(self, params, backend_steps, weight_decay=0.0, row_normalize=False, normalize_update_rows=False):
        self.params = params
        self.normalize_update_rows = normalize_update_rows  # #413's NorMuon, after Newton-Schulz
        self.steps = backend_steps
        self.wd = weight_decay  # the records' Muon: p *= 1 - lr * wd before the update
        self.row_normalize = row_normalize  # MuonEq-R
        self.bufs = [torch.zeros_like(q) for q in params]

    @torch.no_grad()
    def step(self, lr, momentum):
        for q, buf in zip(self.params, self.bufs):
            buf.mul_(momentum).add_(q.grad)
            g = q.grad + momentum * buf
            if self.row_normalize:
                g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-7)
            g = newton_schulz5(g, self.steps) * max(1.0, q.size(0) / q.size(1)) ** 0.5
            if self.normalize_update_rows:
                g = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-7)
            if self.wd > 0:
                q.mul_(1.0 - lr * self.wd)
            q.add_(g, alpha=-lr)


def is_control(name, cfg=None):
    """cfg["control_patterns"] overrides the default list, as CONTROL_TENSOR_NAME_PATTERNS does."""
    patterns = (cfg or {}).get("control_patterns") or CONTROL_PATTERNS
    return any(pat in name for pat in patterns)


class Optimizers:
    """train_gpt.py's split: tok_emb, lm_head and scalar/control params -> Adam; block matrices -> Muon.
    opt: dict with matrix_lr scalar_lr tied_embed_lr embed_lr head_lr beta1 beta2 adam_eps backend_steps."""

    def __init__(self, p, cfg, opt):
        betas, eps = (opt["beta1"], opt["beta2"]), opt["adam_eps"]
        blocks = [n for n in p if n.startswith("blocks.")]
        matrices = [p[n] for n in blocks if p[n].ndim == 2 and not is_control(n, cfg)]
        scalars = [p[n] for n in blocks if p[n].ndim < 2 or is_control(n, cfg)]
        if "bigram.scale" in p:  # the records: bigram.embed with tok_emb, bigram.proj to Muon, scale a scalar
            scalars.append(p["bigram.scale"])
            matrices += [p["bigram.proj.weight"]] if "bigram.proj.weight" in p else []
        if p["skip_weights"].numel() > 0:
            scalars.append(p["skip_weights"])
        if "skip_gates" in p:
            scalars.append(p["skip_gates"])
        if "lane_merge" in p:
            scalars.append(p["lane_merge"])
        if "smear.gate" in p:  # the records: scalar_params.append(base_model.smear.gate)
            scalars.append(p["smear.gate"])
        tok_lr = opt["tied_embed_lr"] if cfg["tie"] else opt["embed_lr"]
        # the records' AdamW (ADAM_WD) on tok_emb and scalars; lm_head keeps plain Adam
        wd = opt.get("adam_wd", 0.0)
        tok = [p[n] for n in ("tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight") if n in p]
        if "ve_shared.scale" in p:  # #1435: ve_shared.proj to Muon, the scales are scalars
            scalars += [p[n] for n in p if n == "ve_shared.scale" or n.startswith("ve_layer_scales")]
            matrices += [p["ve_shared.proj.weight"]] if "ve_shared.proj.weight" in p else []
        embed_wd = opt.get("embed_wd", -1.0)  # EMBED_WD, -1: ADAM_WD
        groups = [(tok, tok_lr, embed_wd if embed_wd >= 0 else wd), (scalars, opt["scalar_lr"], wd)]
        if not cfg["tie"]:
            groups.append(([p["lm_head.weight"]], opt["head_lr"], 0.0))
        self.adams = [(torch.optim.AdamW(ps, lr=lr, betas=betas, eps=eps, weight_decay=w), lr) for ps, lr, w in groups]
        self.muon = Muon(matrices, opt["backend_steps"], opt.get("muon_wd", 0.0), opt.get("muon_row_normalize", False),
                         opt.get("muon_normalize_update_rows", False))
        self.matrix_lr = opt["matrix_lr"]

    def step(self, lr_mul, momentum):
        """Every group's lr is base_lr * lr_mul (train_gpt.py's warmdown); momentum is Muon's."""
        for adam, base_lr in self.adams:
            for g in adam.param_groups:
                g["lr"] = base_lr * lr_mul
            adam.step()
        self.muon.step(self.matrix_lr * lr_mul, momentum)


# ---------------------------------------------------------------- fixtures

OPT_DEFAULTS = dict(matrix_lr=0.04, scalar_lr=0.03, tied_embed_lr=0.05, embed_lr=0.6, head_lr=0.008,
                    muon_momentum=0.95, backend_steps=5, beta1=0.9, beta2=0.95, adam_eps=1e-8)
STEP_MOMENTUM = 0.9  # what the momentum warmup (0.85 -> 0.95 over 500 steps) sets at step 250
LR_MUL = 0.7  # a warmdown multiplier, so a missing lr_mul shows

CASES = {
    "tied": (model_config(vocab=64, layers=3, dim=32, heads=4, kv_heads=2, mlp_mult=2, tie=True), 16, 3),
    "untied": (model_config(vocab=48, layers=4, dim=32, heads=2, kv_heads=1, mlp_mult=3, tie=False), 12, 2),
    "mha": (model_config(vocab=64, layers=2, dim=48, heads=4, kv_heads=4, mlp_mult=2, tie=True, softcap=5.0,
                         rope_base=500.0), 20, 2),
    # partial RoPE (4 of 8 head dims), LN scale, LeakyReLU(0.5)^2, XSA on the last 2 of 3 layers, SmearGate,
    # headwise gated attention, #413's value residual, BigramHash, RoPE stretched for 16 > 8 positions
    "techniques": (model_config(vocab=64, layers=3, dim=32, heads=4, kv_heads=2, mlp_mult=3, tie=True, rope_dims=4,
                                ln_scale=True, negative_slope=0.5, xsa_last_n=2, smear=True, gated_attention=True,
                                value_residual="scalar", bigram=(16, 8), rope_train_seq_len=8), 16, 3),
    # elementwise gated attention, the sigmoid value residual, XSA on every layer, unprojected BigramHash,
    # gated U-Net skips, untied head
    "gates_vr_sigmoid": (model_config(vocab=48, layers=4, dim=32, heads=4, kv_heads=2, mlp_mult=2, tie=False,
                                      xsa_last_n=4, gated_attention=True, gate_elementwise=True,
                                      value_residual="sigmoid", bigram=(10, 32), skip_gates=True), 12, 3),
    # #2005's shape in small: layers 2-3 run three times (0 1 2 3 2 3 2 3 4), GPT-J parallel blocks from 3,
    # gated skips sized from the looped layout (4 rows), XSA everywhere, value residual across the loops,
    # headwise gates from extra rows of c_q, #1435's value embedding on a looped layer and the last
    "recurrence": (model_config(vocab=64, layers=5, dim=32, heads=4, kv_heads=2, mlp_mult=2, tie=True, rope_dims=4,
                                ln_scale=True, negative_slope=0.5, xsa_last_n=5, value_residual="scalar",
                                skip_gates=True, recur=(2, 3, 2), parallel_from=3, virtual_skips=True,
                                gated_attention=True, gate_rows_in_q=True, ve=(4, [3, 4])), 16, 2),
    # #1435's shape in small: 0 1 2 1 2 3 4, two lanes from layer 3 merged by lane_merge, VE (no projection) on a
    # lane layer, BigramHash, SmearGate, gated skips sized from the looped layout
    "lanes": (model_config(vocab=64, layers=5, dim=32, heads=4, kv_heads=2, mlp_mult=2, tie=True, rope_dims=4,
                           ln_scale=True, negative_slope=0.5, xsa_last_n=5, smear=True, bigram=(16, 8),
                           skip_gates=True, recur=(1, 2, 1), virtual_skips=True, lanes_from=3, ve=(16, [4])), 16, 2),
    # #413's optimizer: NorMuon rows after Newton-Schulz, weight decay, and its control list without
    # attn_gate, so the gate's weight trains with Muon
    "pr413_optimizer": (dict(model_config(vocab=64, layers=3, dim=32, heads=4, kv_heads=2, mlp_mult=2, tie=True,
                                          smear=True, gated_attention=True, value_residual="scalar", bigram=(16, 8)),
                             control_patterns=("attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix",
                                               "resid_mixes", "q_gain", "skip_weight", "skip_weights", "smear",
                                               "bigram.scale")),
                        16, 2, dict(muon_normalize_update_rows=True, muon_wd=0.04, adam_wd=0.04)),
}


def _write_atomic(path, data: bytes):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _config_text(cfg, T, B, o):
    kv = [("VOCAB_SIZE", cfg["vocab"]), ("NUM_LAYERS", cfg["layers"]), ("MODEL_DIM", cfg["dim"]),
          ("NUM_HEADS", cfg["heads"]), ("NUM_KV_HEADS", cfg["kv_heads"]), ("MLP_MULT", cfg["mlp_mult"]),
          ("TIE_EMBEDDINGS", int(cfg["tie"])), ("ROPE_BASE", repr(cfg["rope_base"])),
          ("LOGIT_SOFTCAP", repr(cfg["softcap"])), ("QK_GAIN_INIT", repr(cfg["qk_gain"])), ("TRAIN_SEQ_LEN", T),
          ("ROPE_DIMS", cfg["rope_dims"]), ("LN_SCALE", int(cfg["ln_scale"])), ("NEGATIVE_SLOPE", repr(cfg["negative_slope"])),
          ("XSA_LAST_N", cfg["xsa_last_n"]), ("SMEAR_GATE", int(cfg["smear"])),
          ("GATED_ATTENTION", int(cfg["gated_attention"] and not cfg["gate_rows_in_q"])),
          ("GATED_ATTENTION_ELEMENTWISE", int(cfg["gate_elementwise"])),
          ("GATED_ATTN", ("elementwise" if cfg["gate_elementwise"] else "headwise") if cfg["gate_rows_in_q"] else "none"),
          ("VALUE_RESIDUAL", int(bool(cfg["value_residual"]))), ("VALUE_RESIDUAL_FORM", cfg["value_residual"] or "scalar"),
          ("SKIP_GATES_ENABLED", int(cfg["skip_gates"])), ("PARALLEL_RESIDUAL_START", cfg["parallel_from"]),
          ("RECUR_LAYERS", f"{cfg['recur'][0]}-{cfg['recur'][1]}" if cfg["recur"] else ""),
          ("NUM_LOOPS", cfg["recur"][2] if cfg["recur"] else 1), ("RECUR_VIRTUAL_SKIPS", int(cfg["virtual_skips"])),
          ("PARALLEL_START_LAYER", cfg["lanes_from"]), ("ROPE_TRAIN_SEQ_LEN", cfg["rope_train_seq_len"]), ("VE_ENABLED", int(bool(cfg["ve"]))), ("VE_DIM", cfg["ve"][0] if cfg["ve"] else 128),
          ("VE_LAYERS", ",".join(map(str, cfg["ve"][1])) if cfg["ve"] else "9,10"), ("BIGRAM_VOCAB_SIZE", cfg["bigram"][0]), ("BIGRAM_DIM", cfg["bigram"][1] or 128),
          ("BATCH_SEQS", B), ("MATRIX_LR", o["matrix_lr"]), ("SCALAR_LR", o["scalar_lr"]),
          ("TIED_EMBED_LR", o["tied_embed_lr"]), ("EMBED_LR", o["embed_lr"]), ("HEAD_LR", o["head_lr"]),
          ("MUON_MOMENTUM", o["muon_momentum"]), ("MUON_BACKEND_STEPS", o["backend_steps"]),
          ("BETA1", o["beta1"]), ("BETA2", o["beta2"]), ("ADAM_EPS", o["adam_eps"]),
          ("MUON_WD", o.get("muon_wd", 0.0)), ("ADAM_WD", o.get("adam_wd", 0.0)),
          ("MUON_ROW_NORMALIZE", int(o.get("muon_row_normalize", False))),
          ("MUON_NORMALIZE_UPDATE_ROWS", int(o.get("muon_normalize_update_rows", False))),
          ("CONTROL_TENSOR_NAME_PATTERNS", ",".join(cfg.get("control_patterns") or CONTROL_PATTERNS)),
          ("STEP_MOMENTUM", STEP_MOMENTUM), ("LR_MUL", LR_MUL)]
    return "".join(f"{k}={v}\n" for k, v in kv)


def run_two_steps(w32, x, y, cfg, dtype, opt):
    """loss, grads, step1, loss2, step2 (the expected.safetensors entries) computed in dtype."""
    p = {n: t.detach().to(dtype, copy=True).requires_grad_() for n, t in w32.items()}
    loss = gpt_loss(p, x, y, cfg)
    loss.backward()
    exp = {"loss": loss.detach().reshape(1)}
    # layer 0's value-residual mix is unused: no gradient, so the optimizers skip it (pgolf too); its
    # expected gradient is zero
    exp.update({f"grad.{n}": t.grad.clone() if t.grad is not None else torch.zeros_like(t) for n, t in p.items()})
    opts = Optimizers(p, cfg, opt)
    opts.step(LR_MUL, STEP_MOMENTUM)
    exp.update({f"step1.{n}": t.detach().clone() for n, t in p.items()})
    for t in p.values():
        t.grad = None
    loss2 = gpt_loss(p, x, y, cfg)
    loss2.backward()
    opts.step(LR_MUL, STEP_MOMENTUM)
    exp["loss2"] = loss2.detach().reshape(1)
    exp.update({f"step2.{n}": t.detach().clone() for n, t in p.items()})
    return exp


def make_case(out_dir, name, cfg, T, B, seed, opt_overrides=None):
    opt = {**OPT_DEFAULTS, **(opt_overrides or {})}
    gen = torch.Generator().manual_seed(seed)
    w32 = init_params(cfg, gen)
    tok = torch.randint(0, cfg["vocab"], (B * T + 1,), generator=gen, dtype=torch.int64)
    x, y = tok[:-1].view(B, T), tok[1:].view(B, T)

    # The float64 reference runs the exact float32 weights pgolf loads.
    exp = run_two_steps(w32, x, y, cfg, torch.float64, opt)
    # Sanity: the same code in float32 lands within an fp32 implementation's tolerance, so there is no
    # float64-only path, and no Adam step sits on a gradient too close to 0 for fp32 to get its sign.
    e32 = run_two_steps(w32, x, y, cfg, torch.float32, opt)
    for k, ref in exp.items():
        diff = (e32[k].double() - ref).abs().max().item()
        lim = (1e-5 if k.startswith("loss") else 2e-5) * ref.abs().max().item()
        if diff > lim:
            print(f"ref_gpt {name} seed {seed}: {k}: float32 differs from float64 by {diff:.3g} (limit {lim:.3g})")
            return False

    d = os.path.join(out_dir, f"gpt_{name}")
    os.makedirs(d, exist_ok=True)
    _write_atomic(os.path.join(d, "config.txt"), _config_text(cfg, T, B, opt).encode())
    _write_atomic(os.path.join(d, "tokens.i32"), tok.numpy().astype("<i4").tobytes())
    save_safetensors(os.path.join(d, "weights.safetensors"), w32)
    save_safetensors(os.path.join(d, "expected.safetensors"), {k: v.float() for k, v in exp.items()})
    print(f"ref_gpt {name} seed {seed}: loss {exp['loss'].item():.10f} loss2 {exp['loss2'].item():.10f}")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    torch.set_num_threads(2)
    # A case whose draw puts a gradient within fp32 rounding of Adam's eps fails the sanity check on some
    # hosts and not others (BLAS kernels sum in different orders; seen on AMD EPYC with 1000 + 3): such a
    # draw tests the reference's conditioning, not pgolf, so the next seed is taken, at most a few times.
    for i, (name, case) in enumerate(CASES.items()):
        seeds = [1000 + i + 100 * attempt for attempt in range(4)]
        if not any(make_case(out, name, *case[:3], seed, *case[3:]) for seed in seeds):
            sys.exit(f"ref_gpt {name}: no seed of {seeds} passes the float32 sanity check")


if __name__ == "__main__":
    main()
