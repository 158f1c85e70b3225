"""train_gpt.py's training loop on the PyTorch reference model (tests/ref_gpt.py), in float64, for
comparing whole loss curves with `pgolf train` from the same weights on the same shards.

Reads the same environment variables as train_gpt.py (DATA_PATH, VOCAB_SIZE, NUM_LAYERS, MODEL_DIM,
NUM_HEADS, NUM_KV_HEADS, MLP_MULT, TIE_EMBEDDINGS, ITERATIONS, WARMDOWN_ITERS, TRAIN_BATCH_TOKENS,
TRAIN_SEQ_LEN, GRAD_ACCUM_STEPS, learning rates, Muon momentum warmup, GRAD_CLIP_NORM, ...). No
wallclock cap, no warmup steps, no validation.

  /usr/bin/python3 tests/torch_train.py --write-init FILE    seeded weights for INIT_CHECKPOINT
  /usr/bin/python3 tests/torch_train.py --init FILE          prints step:N/M train_loss:X.XXXXXXXX per step
      [--final-out FILE]   and writes the final weights (the EMA when EMA_ENABLED=1, as #638 exports)
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_gpt import Optimizers, gpt_loss, init_params, model_config  # noqa: E402
from refio import load_safetensors, save_safetensors  # noqa: E402


def env(name, default, kind=float):
    return kind(os.environ.get(name, default))


def load_shard(path):
    header = np.fromfile(path, dtype="<i4", count=256)
    if header[0] != 20240520 or header[1] != 1:
        sys.exit(f"torch_train: {path} is not a shard")
    return np.fromfile(path, dtype="<u2", offset=1024)[: header[2]].astype(np.int64)


class TokenStream:  # train_gpt.py's: sorted shards, sequential, wrapping
    def __init__(self, pattern):
        self.files = sorted(glob.glob(pattern))
        self.idx, self.tokens, self.pos = 0, load_shard(self.files[0]), 0

    def take(self, n):
        parts = []
        while n > 0:
            if self.pos >= len(self.tokens):
                self.idx = (self.idx + 1) % len(self.files)
                self.tokens, self.pos = load_shard(self.files[self.idx]), 0
                continue
            k = min(n, len(self.tokens) - self.pos)
            parts.append(self.tokens[self.pos : self.pos + k])
            self.pos += k
            n -= k
        return torch.from_numpy(np.concatenate(parts))


def recurrence_setting():
    """RECUR_LAYERS "a-b" or "a,...,b" and NUM_LOOPS as ref_gpt's recur=(first, last, loops), or None."""
    layers = env("RECUR_LAYERS", "", str)
    if not layers:
        return None
    ends = [int(v) for v in layers.replace("-", ",").split(",")]
    return ends[0], ends[-1], env("NUM_LOOPS", 1, int)


def fake_quantize(w):
    """#638's CastedLinear QAT: int6 per row, s = max(row_max / 31, 1 / 31), q in [-32, 31]."""
    s = (w.abs().amax(dim=1, keepdim=True) / 31.0).clamp_min(1.0 / 31.0)
    return torch.clamp(torch.round(w / s), -32, 31) * s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-init")
    ap.add_argument("--init")
    ap.add_argument("--final-out")
    a = ap.parse_args()
    cfg = model_config(vocab=env("VOCAB_SIZE", 1024, int), layers=env("NUM_LAYERS", 9, int), dim=env("MODEL_DIM", 512, int),
                       heads=env("NUM_HEADS", 8, int), kv_heads=env("NUM_KV_HEADS", 4, int), mlp_mult=env("MLP_MULT", 2, int),
                       tie=bool(env("TIE_EMBEDDINGS", 1, int)), rope_base=env("ROPE_BASE", 10000.0),
                       softcap=env("LOGIT_SOFTCAP", 30.0), qk_gain=env("QK_GAIN_INIT", 1.5), rope_dims=env("ROPE_DIMS", 0, int),
                       ln_scale=bool(env("LN_SCALE", 0, int)), negative_slope=env("NEGATIVE_SLOPE", 0.0),
                       xsa_last_n=env("XSA_LAST_N", 0, int), smear=bool(env("SMEAR_GATE", 0, int)),
                       gated_attention=bool(env("GATED_ATTENTION", 0, int)),
                       gate_elementwise=bool(env("GATED_ATTENTION_ELEMENTWISE", 0, int)),
                       value_residual=env("VALUE_RESIDUAL_FORM", "scalar", str) if env("VALUE_RESIDUAL", 0, int) else "",
                       bigram=(env("BIGRAM_VOCAB_SIZE", 0, int), env("BIGRAM_DIM", 128, int)),
                       skip_gates=bool(env("SKIP_GATES_ENABLED", 0, int)), recur=recurrence_setting(),
                       parallel_from=env("PARALLEL_RESIDUAL_START", -1, int),
                       virtual_skips=bool(env("RECUR_VIRTUAL_SKIPS", 0, int)),
                       lanes_from=env("PARALLEL_START_LAYER", 0, int), rope_train_seq_len=env("ROPE_TRAIN_SEQ_LEN", 0, int),
                       ve=(env("VE_DIM", 128, int), [int(v) for v in env("VE_LAYERS", "9,10", str).split(",")])
                       if env("VE_ENABLED", 0, int) else None)
    gated_attn = env("GATED_ATTN", "none", str)  # #2005's gate rows in c_q
    if gated_attn != "none":
        cfg.update(gated_attention=True, gate_rows_in_q=True, gate_elementwise=gated_attn == "elementwise")
    if a.write_init:
        save_safetensors(a.write_init, init_params(cfg, torch.Generator().manual_seed(env("SEED", 1337, int))))
        return
    p = {n: t.double().requires_grad_() for n, t in load_safetensors(a.init).items()}
    opt = dict(matrix_lr=env("MATRIX_LR", 0.04), scalar_lr=env("SCALAR_LR", 0.04), tied_embed_lr=env("TIED_EMBED_LR", 0.05),
               embed_lr=env("EMBED_LR", 0.6), head_lr=env("HEAD_LR", 0.008), backend_steps=env("MUON_BACKEND_STEPS", 5, int),
               beta1=env("BETA1", 0.9), beta2=env("BETA2", 0.95), adam_eps=env("ADAM_EPS", 1e-8),
               muon_wd=env("MUON_WD", 0.0), adam_wd=env("ADAM_WD", 0.0), embed_wd=env("EMBED_WD", -1.0),
               muon_row_normalize=bool(env("MUON_ROW_NORMALIZE", 0, int)),
               muon_normalize_update_rows=bool(env("MUON_NORMALIZE_UPDATE_ROWS", 0, int)))
    opts = Optimizers(p, cfg, opt)
    # the linear layers QAT fake-quantizes: Muon's matrices and an untied head
    qat_names = {n for n, t in p.items() if any(t is m for m in opts.muon.params) or n == "lm_head.weight"}
    qat_on, late_qat, qat_threshold = bool(env("QAT_ENABLED", 0, int)), env("LATE_QAT", 0, int), env("QAT_THRESHOLD", 0.1)
    warmdown_frac, min_lr = env("WARMDOWN_FRAC", 0.0), env("MIN_LR", 0.0)
    recur_start = env("RECUR_START_STEP", 0, int)
    iterations, warmdown = env("ITERATIONS", 20000, int), env("WARMDOWN_ITERS", 1200, int)
    batch, seq, accum = env("TRAIN_BATCH_TOKENS", 524288, int), env("TRAIN_SEQ_LEN", 1024, int), env("GRAD_ACCUM_STEPS", 8, int)
    mom, mom_start, mom_steps = env("MUON_MOMENTUM", 0.95), env("MUON_MOMENTUM_WARMUP_START", 0.85), env("MUON_MOMENTUM_WARMUP_STEPS", 500, int)
    clip = env("GRAD_CLIP_NORM", 0.0)
    stream = TokenStream(os.path.join(env("DATA_PATH", "./data/datasets/fineweb10B_sp1024", str), "fineweb_train_*.bin"))
    local = batch // accum
    ema = {n: t.detach().clone() for n, t in p.items()} if env("EMA_ENABLED", 0, int) else None
    decay = env("EMA_DECAY", 0.997)
    for step in range(iterations):
        warmdown_start = max(iterations - warmdown, 0)
        scale = max((iterations - step) / max(warmdown, 1), 0.0) if warmdown > 0 and warmdown_start <= step else 1.0
        if warmdown_frac > 0:  # the records' lr_mul(frac), frac = step / iterations without a wallclock cap
            frac = step / max(iterations, 1)
            scale = max((1 - frac) / warmdown_frac, min_lr) if frac >= 1 - warmdown_frac else 1.0
        qat_on = qat_on or (late_qat and scale < qat_threshold)
        step_cfg = cfg if step >= recur_start else {**cfg, "recur": None}  # recurrence from RECUR_START_STEP
        train_loss = 0.0
        for _ in range(accum):
            chunk = stream.take(local + 1)
            x, y = chunk[:-1].reshape(-1, seq), chunk[1:].reshape(-1, seq)
            # QAT's straight-through estimator: the forward sees fake-quantized weights, the gradient
            # goes to the float ones
            pf = {n: t + (fake_quantize(t) - t).detach() if qat_on and n in qat_names else t for n, t in p.items()}
            loss = gpt_loss(pf, x, y, step_cfg)
            train_loss += loss.item()
            (loss / accum).backward()
        frac = min(step / mom_steps, 1.0) if mom_steps > 0 else 1.0
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(list(p.values()), clip)
        opts.step(scale, (1 - frac) * mom_start + frac * mom)
        for t in p.values():
            t.grad = None
        if ema is not None:
            with torch.no_grad():
                for n, t in p.items():
                    ema[n].mul_(decay).add_(t, alpha=1.0 - decay)
        print(f"step:{step + 1}/{iterations} train_loss:{train_loss / accum:.8f}", flush=True)
    if a.final_out:
        final = ema if ema is not None else {n: t.detach() for n, t in p.items()}
        save_safetensors(a.final_out, {n: t.float() for n, t in final.items()})


if __name__ == "__main__":
    main()
