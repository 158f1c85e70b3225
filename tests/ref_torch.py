"""torch.save files for tests/test_torch_file.c, written by PyTorch as train_gpt.py writes them:

  torch_state.pt                 torch.save of a state_dict (an OrderedDict with _metadata, as
                                 module.state_dict() returns): every dtype pgolf reads, a transposed view,
                                 a slice at a storage offset sharing its storage, a 0-d and an empty tensor
  torch_state_expected.safetensors  the same tensors, contiguous, floats as F32 and integers as I64
  torch_param.pt                 torch.save({"w": nn.Parameter}) (_rebuild_parameter)
  torch_int8.ptz                 zlib.compress(torch.save(quantize_state_dict_int8(state)), level=9) of
                                 ref_int8's tensors, some of them bf16 as in train_gpt.py's model
  torch_int8_expected.safetensors   dequantize_state_dict_int8 of that object, as F32
  torch_other_format.ptz         an export object of another __quant_format__
  torch_list.pt                  torch.save of a list (not a state_dict)
  torch_mixed.pt                 torch.save of #638's mixed_quantize_int6 export {"w", "m"} of tensors of every
                                 kind it handles (bf16 embeddings as in the records' models), uncompressed
  torch_mixed.bshf               the same bytes byte-shuffled as #1435's _byte_shuffle does (stride 3)
  torch_mixed.pt.xz              lzma.compress(torch_mixed.pt, preset=6), as the records that use lzma write
  torch_mixed.bshf.xz            lzma.compress(torch_mixed.bshf, preset=6): their _compress(data, "lzma")
  torch_mixed_expected.safetensors  dequantize_mixed_int6 of it with the model's dtypes, as F32
  torch_mixed_small.ptz          a small such export, zlib'd (a seed for make fuzz)
  torch_mixed_small.ptz.xz       the same lzma'd (another seed)
  torch_wm_export.ptz            a {"w", "m"} export whose "w" lacks a scale
"""
import argparse
import io
import lzma
import os
import sys
import zlib
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_int8 import (build_state, dequantize_mixed_int6, dequantize_state_dict_int8, mixed_quantize_int6,  # noqa: E402
                      quantize_state_dict_int8)
from refio import save_safetensors  # noqa: E402


def widened(tensors):
    return {n: (t.float() if t.is_floating_point() else t.long()).contiguous() for n, t in tensors.items()}


def write_ptz(path, obj):
    """zlib of torch.save(obj), as train_gpt.py writes its artifact; returns the torch.save bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(zlib.compress(buf.getvalue(), level=9))
    os.replace(tmp, path)
    return buf.getvalue()


def summary(*tensor_dicts, raw):
    """What `pgolf inspect` must total: the tensors' bytes (train_gpt.py's int8_payload_bytes) and the
    torch.save bytes (its raw_torch)."""
    payload = sum(t.numel() * t.element_size() for d in tensor_dicts for t in d.values())
    return {"payload_bytes": payload, "torch_bytes": len(raw)}


def byte_shuffle(data, stride):
    """#1435's _byte_shuffle: "BSHF", the stride, then the bytes at 0, s, 2s, ..., then 1, 1 + s, ..."""
    src = np.frombuffer(data, dtype=np.uint8)
    return b"BSHF" + bytes([stride]) + b"".join(src[pos::stride].tobytes() for pos in range(stride))


def mixed_state(g):
    r = lambda *shape: torch.randn(*shape, generator=g)
    w6 = r(256, 384) * 0.05
    w6[3] = 0  # a zero row: the scale clamps to 1/31
    return {
        "tok_emb.weight": (r(1024, 128) * 0.5).bfloat16(),  # embed: int8 rows, back to bf16
        "bigram.embed.weight": (r(512, 64) * 0.02).bfloat16(),  # small: fp16, back to bf16
        "blocks.0.attn.c_q.weight": r(256, 256),  # exactly 65,536: fp16, back to fp32
        "blocks.0.attn.proj.weight": r(512, 256) * 0.1,  # attn: int6 rows
        "blocks.0.mlp.fc.weight": r(384, 256) * 3.0,  # mlp: int6 rows, scales above 1/31
        "blocks.1.mlp.proj.weight": w6,
        "blocks.1.mlp.w3": r(3, 100, 300),  # mlp, 3-D: int6 with one fp16 scale
        "blocks.0.resid_mix": r(2, 40_000),  # control, large: kept fp32
        "big.vec": r(70_000),  # other: int8 with one fp32 scale
        "step.count": torch.tensor([3, 1 << 33], dtype=torch.int64),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    out = p.parse_args().out
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(77)
    base = torch.randn(6, 10, generator=g)
    sd = OrderedDict()
    sd["f32.mat"] = torch.randn(3, 5, generator=g)
    sd["f32.transposed"] = base.t()  # strides (1, 10)
    sd["f32.rows"] = base[2:5, 1:8]  # storage offset 21, shares base's storage
    sd["f32.base"] = base
    sd["f16.vec"] = torch.tensor([1.0, -2.5, 0.1, 65504.0, 2.0**-24], dtype=torch.float16)
    sd["bf16.mat"] = (torch.randn(4, 3, generator=g) * 100).bfloat16()
    sd["i64.vec"] = torch.tensor([-(1 << 40), 0, 7], dtype=torch.int64)
    sd["i32.vec"] = torch.tensor([-7, 0, 2147483647], dtype=torch.int32)
    sd["i8.mat"] = torch.tensor([[-128, -1], [0, 127]], dtype=torch.int8)
    sd["f32.scalar"] = torch.tensor(3.25)
    sd["f32.empty"] = torch.zeros(0, 4)
    sd._metadata = OrderedDict([("", {"version": 1}), ("f32", {"version": 1})])  # as module.state_dict() sets
    torch.save(sd, os.path.join(out, "torch_state.pt"))
    save_safetensors(os.path.join(out, "torch_state_expected.safetensors"), widened(sd))
    torch.save({"w": torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))}, os.path.join(out, "torch_param.pt"))

    state = build_state()
    state["tok_emb.weight"] = state["tok_emb.weight"].bfloat16()  # train_gpt.py keeps the embedding in bf16
    state["blocks.0.mlp.fc.weight"] = state["blocks.0.mlp.fc.weight"].bfloat16()  # kept as fp16, restored to bf16
    state["step.count"] = torch.tensor([3, 1 << 33], dtype=torch.int64)  # non-float: passed through
    obj = quantize_state_dict_int8(state)
    raw = write_ptz(os.path.join(out, "torch_int8.ptz"), obj)
    save_safetensors(os.path.join(out, "torch_int8_expected.safetensors"), widened(dequantize_state_dict_int8(obj)),
                     summary(obj["quantized"], obj["scales"], obj["passthrough"], raw=raw))
    write_ptz(os.path.join(out, "torch_other_format.ptz"), {"__quant_format__": "int6_gptq_v2", "w": torch.ones(2)})
    torch.save([torch.ones(2)], os.path.join(out, "torch_list.pt"))
    write_ptz(os.path.join(out, "torch_wm_export.ptz"),
              {"w": {"a.q": torch.ones(2, dtype=torch.int8)}, "m": {"a": {"type": "int6"}}})

    template = mixed_state(g)
    result, meta = mixed_quantize_int6(template, {"mlp", "attn"})
    meta["bigram.embed.weight"], meta["blocks.0.attn.proj.weight"] = "passthrough (float16)", "gptq (int6)"  # #2005's
    buf = io.BytesIO()
    torch.save({"w": result, "m": meta}, buf)
    with open(os.path.join(out, "torch_mixed.pt"), "wb") as f:
        f.write(buf.getvalue())
    with open(os.path.join(out, "torch_mixed.bshf"), "wb") as f:
        f.write(byte_shuffle(buf.getvalue(), 3))
    with open(os.path.join(out, "torch_mixed.pt.xz"), "wb") as f:
        f.write(lzma.compress(buf.getvalue(), preset=6))
    with open(os.path.join(out, "torch_mixed.bshf.xz"), "wb") as f:
        f.write(lzma.compress(byte_shuffle(buf.getvalue(), 3), preset=6))
    small = {"tok_emb.weight": template["bigram.embed.weight"][:16],
             "blocks.0.mlp.fc.weight": torch.randn(300, 256, generator=g), "blocks.0.attn_scale": torch.ones(8)}
    small_export = dict(zip("wm", mixed_quantize_int6(small, {"mlp"})))
    small_raw = write_ptz(os.path.join(out, "torch_mixed_small.ptz"), small_export)
    with open(os.path.join(out, "torch_mixed_small.ptz.xz"), "wb") as f:
        f.write(lzma.compress(small_raw))
    save_safetensors(os.path.join(out, "torch_mixed_expected.safetensors"),
                     widened(dequantize_mixed_int6(result, meta, template)), summary(result, raw=buf.getvalue()))


if __name__ == "__main__":
    main()
