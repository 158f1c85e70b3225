"""Writes st_ref.safetensors with refio (as PyTorch-side code would) for tests/test_safetensors.c:
one tensor per dtype pgolf reads, values the C test knows independently, and metadata with escapes."""
import argparse
import os

import torch

from refio import save_safetensors

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
out = p.parse_args().out
os.makedirs(out, exist_ok=True)

tensors = {
    "f32.mat": torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1.5,
    # 0.1 rounds to 0.0999755859375 in fp16; 2**-24 is the smallest fp16 subnormal
    "f16.vec": torch.tensor([1.0, -2.5, 0.1, 65504.0, 2.0**-24], dtype=torch.float16),
    # 0.1 rounds to 0.10009765625 in bf16; -3.140625 and 2**100 are exact
    "bf16.vec": torch.tensor([1.0, -3.140625, 0.1, 2.0**100], dtype=torch.bfloat16),
    "i32.vec": torch.tensor([-7, 0, 2147483647], dtype=torch.int32),
    "i64.scalar": torch.tensor((1 << 40) + 5, dtype=torch.int64),
    "i8.mat": torch.tensor([[-128, -1], [0, 127]], dtype=torch.int8),
    "f32.empty": torch.zeros(0, 3),
    "blocks.0.attn.c_q.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
}
meta = {"step": "123", "note": 'quote " backslash \\ newline \n tab \t e-acute \u00e9 smile \U0001F642'}
save_safetensors(os.path.join(out, "st_ref.safetensors"), tensors, meta)
