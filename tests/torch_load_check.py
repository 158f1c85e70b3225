"""Loads a safetensors file written by pgolf as PyTorch would load it into train_gpt.py's GPT: the
tensor names and shapes must be exactly the reference state_dict's (load_state_dict(strict=True)
semantics) and every value finite. Used by tests/test_cli.c on final_model.safetensors.

  /usr/bin/python3 tests/torch_load_check.py FILE --layers 2 --dim 64 --heads 4 --kv-heads 2 --vocab 1024 [--untied]
Prints "torch_load_check: ok N tensors" or one line naming the problem (exit 1). With --resave OUT it
then writes the state_dict back to OUT as PyTorch code would, without pgolf's metadata. With --torch-save DIR
it writes DIR/final_model.pt and DIR/final_model.int8.ptz as train_gpt.py does (its embedding in bf16), and
the weights each holds, as PyTorch loads them, to DIR/final_model_pt.safetensors and
DIR/final_model_int8.safetensors (F32).
"""
import argparse
import io
import os
import sys
import zlib
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_gpt import model_config, param_shapes  # noqa: E402
from ref_int8 import dequantize_state_dict_int8, quantize_state_dict_int8  # noqa: E402
from refio import load_safetensors, save_safetensors  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("file")
for k in ("layers", "dim", "heads", "kv_heads", "vocab"):
    ap.add_argument("--" + k.replace("_", "-"), type=int, required=True)
ap.add_argument("--mlp-mult", type=int, default=2)
ap.add_argument("--untied", action="store_true")
ap.add_argument("--resave")
ap.add_argument("--torch-save")
a = ap.parse_args()
cfg = model_config(vocab=a.vocab, layers=a.layers, dim=a.dim, heads=a.heads, kv_heads=a.kv_heads,
                   mlp_mult=a.mlp_mult, tie=not a.untied)
want = param_shapes(cfg)
got = {k: v for k, v in load_safetensors(a.file).items() if not k.startswith("optim.")}
missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
if missing or unexpected:
    sys.exit(f"torch_load_check: {a.file}: missing keys {missing}, unexpected keys {unexpected}")
for name, shape in want.items():
    t = got[name]
    if tuple(t.shape) != tuple(shape) or t.dtype != torch.float32:
        sys.exit(f"torch_load_check: {name} is {t.dtype} {list(t.shape)}, the reference expects float32 {list(shape)}")
    if not torch.isfinite(t).all():
        sys.exit(f"torch_load_check: {name} has non-finite values")
print(f"torch_load_check: ok {len(want)} tensors")
if a.resave:
    save_safetensors(a.resave, {name: got[name] for name in want})
if a.torch_save:
    d = a.torch_save
    os.makedirs(d, exist_ok=True)
    sd = OrderedDict((n, got[n].bfloat16() if n == "tok_emb.weight" else got[n]) for n in want)
    torch.save(sd, os.path.join(d, "final_model.pt"))
    obj = quantize_state_dict_int8(sd)
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(os.path.join(d, "final_model.int8.ptz"), "wb") as f:
        f.write(zlib.compress(buf.getvalue(), level=9))
    loaded = torch.load(os.path.join(d, "final_model.pt"))
    save_safetensors(os.path.join(d, "final_model_pt.safetensors"), {n: t.float() for n, t in loaded.items()})
    save_safetensors(os.path.join(d, "final_model_int8.safetensors"),
                     {n: t.float() for n, t in dequantize_state_dict_int8(obj).items()})
