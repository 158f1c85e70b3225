"""Reference fixtures for tests/test_quant.c: train_gpt.py's int8 export applied to seeded tensors.

Writes, with refio:
  int8_inputs.safetensors    the fp32 input state dict (pgolf's model is fp32 everywhere)
  int8_expected.safetensors  per tensor: <name>.q (I8), <name>.scale (F16 per row / F32 scalar) and
                             <name>.clip (torch.quantile's clip values, F32) for quantized tensors, <name>.kept (F16/F32) for passthrough tensors, and
                             <name>.deq (F32) from the reference dequantization; metadata holds each
                             tensor's scheme ("kind.<name>") and the reference's stats.
The quantization below repeats train_gpt.py's quantize_float_tensor / quantize_state_dict_int8 /
dequantize_state_dict_int8 with the same torch calls and constants (tests/ref_torch.py saves the whole
export object as train_gpt.py does).
"""
import argparse
import os

import numpy as np
import torch

from refio import save_safetensors

CONTROL_PATTERNS = (
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes", "q_gain", "skip_weight",
    "skip_weights",
)
KEEP_FLOAT_MAX_NUMEL = 65_536
CLIP_Q = 99.99984 / 100.0


def quantize_float_tensor(t):
    t32 = t.float()
    if t32.ndim == 2:
        clip_abs = torch.quantile(t32.abs(), CLIP_Q, dim=1)
        clipped = torch.maximum(torch.minimum(t32, clip_abs[:, None]), -clip_abs[:, None])
        scale = (clip_abs / 127.0).clamp_min(1.0 / 127.0)
        q = torch.clamp(torch.round(clipped / scale[:, None]), -127, 127).to(torch.int8).contiguous()
        return q, scale.to(dtype=torch.float16).contiguous()
    clip_abs = float(torch.quantile(t32.abs().flatten(), CLIP_Q).item())
    scale = torch.tensor(clip_abs / 127.0 if clip_abs > 0 else 1.0, dtype=torch.float32)
    q = torch.clamp(torch.round(torch.clamp(t32, -clip_abs, clip_abs) / scale), -127, 127).to(torch.int8).contiguous()
    return q, scale


def quantize_and_dequantize(state):
    """Returns (expected tensors, metadata) following the reference's export and import."""
    expected, meta = {}, {}
    stats = dict.fromkeys(("param_count", "num_tensors", "num_float_tensors", "baseline_tensor_bytes",
                           "int8_payload_bytes"), 0)
    for name, t in state.items():
        stats["param_count"] += t.numel()
        stats["num_tensors"] += 1
        stats["baseline_tensor_bytes"] += t.numel() * t.element_size()
        if t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            if any(p in name for p in CONTROL_PATTERNS):
                kept, meta["kind." + name] = t.float().contiguous(), "fp32"
            else:
                kept, meta["kind." + name] = t.to(dtype=torch.float16).contiguous(), "fp16"
            stats["int8_payload_bytes"] += kept.numel() * kept.element_size()
            expected[name + ".kept"] = kept
            expected[name + ".deq"] = kept.to(dtype=torch.float32)
            continue
        stats["num_float_tensors"] += 1
        q, s = quantize_float_tensor(t)
        stats["int8_payload_bytes"] += q.numel() * q.element_size() + s.numel() * s.element_size()
        meta["kind." + name] = "per_row" if s.ndim > 0 else "per_tensor"
        expected[name + ".q"] = q
        expected[name + ".scale"] = s
        t32 = t.float()
        expected[name + ".clip"] = (torch.quantile(t32.abs(), CLIP_Q, dim=1) if t32.ndim == 2
                                    else torch.quantile(t32.abs().flatten(), CLIP_Q))
        if s.ndim > 0:
            s32 = s.to(dtype=torch.float32)
            deq = (q.float() * s32.view(q.shape[0], *([1] * (q.ndim - 1)))).to(dtype=torch.float32)
        else:
            deq = (q.float() * float(s.item())).to(dtype=torch.float32)
        expected[name + ".deq"] = deq.contiguous()
    meta.update({k: str(v) for k, v in stats.items()})
    return expected, meta


def keep_float_tensor(name, t, passthrough_orig_dtypes):
    if any(p in name for p in CONTROL_PATTERNS):
        return t.float().contiguous()
    if t.dtype in {torch.float32, torch.bfloat16}:
        passthrough_orig_dtypes[name] = str(t.dtype).removeprefix("torch.")
        return t.to(dtype=torch.float16).contiguous()
    return t


def quantize_state_dict_int8(state_dict):
    """train_gpt.py's export object ("int8_clean_per_row_v1"), which it torch.saves and zlib-compresses into
    final_model.int8.ptz; tensors of any float dtype, as the reference's bf16 model has."""
    quantized, scales, dtypes, passthrough, passthrough_orig_dtypes, qmeta = {}, {}, {}, {}, {}, {}
    for name, tensor in state_dict.items():
        t = tensor.detach().to("cpu").contiguous()
        if not t.is_floating_point():
            passthrough[name] = t
            continue
        if t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            passthrough[name] = keep_float_tensor(name, t, passthrough_orig_dtypes)
            continue
        q, s = quantize_float_tensor(t)
        if s.ndim > 0:
            qmeta[name] = {"scheme": "per_row", "axis": 0}
        quantized[name] = q
        scales[name] = s
        dtypes[name] = str(t.dtype).removeprefix("torch.")
    obj = {"__quant_format__": "int8_clean_per_row_v1", "quantized": quantized, "scales": scales, "dtypes": dtypes,
           "passthrough": passthrough}
    if qmeta:
        obj["qmeta"] = qmeta
    if passthrough_orig_dtypes:
        obj["passthrough_orig_dtypes"] = passthrough_orig_dtypes
    return obj


def dequantize_state_dict_int8(obj):
    out = {}
    qmeta = obj.get("qmeta", {})
    passthrough_orig_dtypes = obj.get("passthrough_orig_dtypes", {})
    for name, q in obj["quantized"].items():
        dtype = getattr(torch, obj["dtypes"][name])
        s = obj["scales"][name]
        if qmeta.get(name, {}).get("scheme") == "per_row" or s.ndim > 0:
            s = s.to(dtype=torch.float32)
            out[name] = (q.float() * s.view(q.shape[0], *([1] * (q.ndim - 1)))).to(dtype=dtype).contiguous()
        else:
            out[name] = (q.float() * float(s.item())).to(dtype=dtype).contiguous()
    for name, t in obj["passthrough"].items():
        out_t = t.detach().to("cpu").contiguous()
        orig_dtype = passthrough_orig_dtypes.get(name)
        if isinstance(orig_dtype, str):
            out_t = out_t.to(dtype=getattr(torch, orig_dtype)).contiguous()
        out[name] = out_t
    return out


def quantize_int6_per_row(t):
    """#638's int6 rows: scale = max|row| / 31 (at least 1/31) in fp16, q in [-32, 31]; one scale otherwise."""
    t32 = t.float()
    if t32.ndim == 2:
        row_max = t32.abs().amax(dim=1)
        scale = (row_max / 31.0).clamp_min(1.0 / 31.0).to(torch.float16)
        q = torch.clamp(torch.round(t32 / scale.float()[:, None]), -32, 31).to(torch.int8)
        return q, scale
    amax = t32.abs().max().item()
    scale = torch.tensor(amax / 31.0 if amax > 0 else 1.0, dtype=torch.float16)
    q = torch.clamp(torch.round(t32 / scale.float()), -32, 31).to(torch.int8)
    return q, scale


def classify_param(name):
    if "tok_emb" in name or "lm_head" in name:
        return "embed"
    if ".mlp." in name:
        return "mlp"
    if ".attn." in name or (".proj." in name and ".mlp." not in name):
        return "attn"
    return "other"


def mixed_quantize_int6(state_dict, int6_cats):
    """#638's export ({"w": result, "m": meta}, which its train_gpt.py torch.saves and compresses)."""
    result, meta = {}, {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        if not t.is_floating_point() or t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            result[name] = t.to(torch.float16) if t.is_floating_point() else t
            meta[name] = "passthrough"
            continue
        if any(p in name for p in CONTROL_PATTERNS):
            result[name] = t.float()
            meta[name] = "passthrough_ctrl"
            continue
        q, s = quantize_int6_per_row(t) if classify_param(name) in int6_cats and t.ndim >= 1 else quantize_float_tensor(t)
        result[name + ".q"] = q
        result[name + ".scale"] = s
        meta[name] = {"type": "int6" if classify_param(name) in int6_cats else "int8"}
    return result, meta


def dequantize_mixed_int6(result, meta, template_sd):
    """#638's and #1435's (#2005's dequantize_mixed, whose test `"passthrough" in info` also takes its
    "passthrough (float16)"): each tensor back in the dtype the live model (template_sd) holds it in."""
    out = {}
    for name, orig in template_sd.items():
        info = meta.get(name)
        if info is None:
            continue
        if "passthrough" in info:
            t = result[name]
            if t.dtype == torch.float16 and orig.dtype in (torch.float32, torch.bfloat16):
                t = t.to(orig.dtype)
            out[name] = t
            continue
        q, s = result[name + ".q"], result[name + ".scale"]
        if s.ndim > 0:
            out[name] = (q.float() * s.float().view(q.shape[0], *([1] * (q.ndim - 1)))).to(orig.dtype)
        else:
            out[name] = (q.float() * float(s.item())).to(orig.dtype)
    return out


def lerp_probe(n, scale, g):
    """A vector of n values whose clip (torch.quantile's lerp between the two largest |x|) differs
    between a fused multiply-add and an unfused one, so the C test can tell them apart."""
    rank = np.float32(CLIP_Q) * np.float32(n - 1)
    w = np.float32(rank - np.float32(int(rank)))
    lo = (torch.rand(100_000, generator=g) * scale + scale).numpy()
    hi = (lo + torch.rand(100_000, generator=g).numpy() * scale).astype(np.float32)
    d = (hi - lo).astype(np.float32)
    if w < 0.5:
        unfused = (lo + (w * d).astype(np.float32)).astype(np.float32)
        fused = (lo.astype(np.float64) + np.float64(w) * d.astype(np.float64)).astype(np.float32)
    else:
        om = np.float32(1) - w
        unfused = (hi - (d * om).astype(np.float32)).astype(np.float32)
        fused = (hi.astype(np.float64) - d.astype(np.float64) * np.float64(om)).astype(np.float32)
    k = int(np.nonzero(unfused != fused)[0][0])
    x = (torch.rand(n, generator=g) * 2 - 1) * float(lo[k]) * 0.9
    pos = torch.randperm(n, generator=g)[:2]
    x[pos[0]], x[pos[1]] = float(lo[k]), -float(hi[k])
    assert torch.quantile(x.abs(), CLIP_Q).item() != unfused[k], "probe does not separate fused from unfused lerp"
    return x


def build_state():
    g = torch.Generator().manual_seed(1234)
    randn = lambda *shape: torch.randn(*shape, generator=g)

    emb = randn(1024, 512) * 0.02
    idx = torch.randint(0, emb.numel(), (64,), generator=g)
    emb.view(-1)[idx] *= torch.rand(64, generator=g) * 80 + 20  # scattered outliers
    emb[0] = 0  # clip 0: scale clamps to 1/127
    emb[1] = randn(512) * 3  # clip > 1: scale above the 1/127 floor
    # clip = 31.75 exactly (two equal top values), so scale = 0.25 and w / scale = k + 0.5: round half to even
    emb[2] = (torch.arange(512) % 201 - 100 + 0.5) * 0.25
    emb[2, 7], emb[2, 300] = 31.75, -31.75
    emb[3] = randn(512) * 0.01
    emb[3, 10:20] = 0.5  # ties at the top
    emb[4] = randn(512) * 0.01
    emb[4, 77] = 100.0  # one huge outlier: clipped to the interpolated percentile
    emb[5] = lerp_probe(512, 0.05, g)  # rank fraction > 0.5 branch of lerp

    big = lerp_probe(400_000, 10.0, g)  # 1-D, per tensor; rank fraction < 0.5 (the other lerp branch)
    return {
        "tok_emb.weight": emb,
        "blocks.0.mlp.fc.weight": randn(128, 512) * 0.1,  # exactly 65,536 elements: kept as fp16
        "blocks.0.attn_scale": 1 + randn(512) * 0.1,  # control pattern: kept as fp32
        "skip_weights": randn(4, 512),  # 2-D control tensor: fp32
        "blocks.0.resid_mix": randn(2, 40_000),  # control name but > 65,536 elements: int8 per row
        "big.vec": big,
        "mid.vec": randn(70_000) * 0.3,  # per tensor, rank fraction > 0.5
        "cube.weight": randn(3, 200, 200) * 0.02,  # 3-D: per tensor
        "odd.weight": randn(257, 513) * 0.05,  # odd row length
        "tiny.weight": randn(300, 300) * 1e-4,  # every row below the 1/127 scale floor
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    out = p.parse_args().out
    os.makedirs(out, exist_ok=True)
    state = build_state()
    expected, meta = quantize_and_dequantize(state)
    save_safetensors(os.path.join(out, "int8_inputs.safetensors"), state)
    save_safetensors(os.path.join(out, "int8_expected.safetensors"), expected, meta)


if __name__ == "__main__":
    main()
