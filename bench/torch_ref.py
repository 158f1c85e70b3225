"""CPU float32 timing of the PyTorch reference model (tests/ref_gpt.py) for comparison with pgolf's bench:
forward + backward + optimizer step (Muon + Adam, as train_gpt.py splits them), 2 threads by default.

  /usr/bin/python3 bench/torch_ref.py [--shape small|baseline] [--steps N] [--micro M] [--tokens N] ...

Prints: torch_ref shape=<name> tokens_per_step=... ms_per_step=... tokens_per_s=...
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from ref_gpt import OPT_DEFAULTS, Optimizers, gpt_loss, init_params, model_config  # noqa: E402

SHAPES = {
    "small": dict(layers=4, dim=256, heads=4, kv_heads=2, mlp_mult=2, vocab=1024, seq=256, tokens=8192, steps=10),
    "baseline": dict(layers=9, dim=512, heads=8, kv_heads=4, mlp_mult=2, vocab=1024, seq=1024, tokens=8192, steps=3),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    for k in ("layers", "dim", "heads", "kv_heads", "mlp_mult", "vocab", "seq", "tokens", "steps"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, help="overrides the shape's value")
    ap.add_argument("--micro", type=int, default=1, help="micro-batches per step (gradient accumulation)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    s = dict(SHAPES[a.shape])
    s.update({k: v for k, v in vars(a).items() if k in s and v is not None})
    if s["tokens"] % (a.micro * s["seq"]):
        sys.exit(f"torch_ref: --tokens {s['tokens']} is not a whole number of {a.micro} micro-batches of "
                 f"{s['seq']}-token sequences")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    cfg = model_config(vocab=s["vocab"], layers=s["layers"], dim=s["dim"], heads=s["heads"],
                       kv_heads=s["kv_heads"], mlp_mult=s["mlp_mult"])
    p = {n: t.requires_grad_() for n, t in init_params(cfg, torch.Generator().manual_seed(0)).items()}
    opts = Optimizers(p, cfg, OPT_DEFAULTS)
    B = s["tokens"] // (a.micro * s["seq"])  # sequences per micro-batch
    data = torch.randint(0, s["vocab"], (a.micro, B * s["seq"] + 1))

    def step():
        for t in p.values():
            t.grad = None
        for m in range(a.micro):
            x, y = data[m, :-1].view(B, s["seq"]), data[m, 1:].view(B, s["seq"])
            (gpt_loss(p, x, y, cfg) / a.micro).backward()
        opts.step(1.0, OPT_DEFAULTS["muon_momentum"])

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(s["steps"]):
        step()
    ms = 1000.0 * (time.perf_counter() - t0) / s["steps"]
    print(f"torch_ref shape={a.shape} tokens_per_step={s['tokens']} micro_batches={a.micro} steps={s['steps']} "
          f"threads={a.threads} ms_per_step={ms:.1f} tokens_per_s={s['tokens'] / ms * 1000.0:.0f}")


if __name__ == "__main__":
    main()
