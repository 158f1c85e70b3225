"""SentencePiece references for tests/test_spm.c, from the `sentencepiece` Python package on the
official tokenizer models in ../shared/data/tokenizers: train_gpt.py's build_sentencepiece_luts tables
and decoded text for id sequences that exercise every piece type. Writes spm_ref.safetensors:
  <model>.base_bytes / .has_leading_space / .is_boundary   (I32, table_size = max(sp vocab, VOCAB_SIZE))
  <model>.decode.<k>.ids / .text                          (I32 ids; I32 UTF-8 bytes of sp.decode)
"""
import argparse
import os
import random

import numpy as np
import sentencepiece as spm

from refio import save_safetensors

MODELS = ["fineweb_1024_bpe", "fineweb_2048_bpe", "fineweb_4096_bpe", "fineweb_8192_bpe"]
TEXTS = [
    "Hello, world! The year 2024 had 366 days.",
    "  leading and   repeated   spaces, trailing  ",
    "Unicode: café, naïve, Straße, 東京, emoji 🙂 and ½ fraction.",
    "tabs\tand\nnewlines",
]


def build_sentencepiece_luts(sp, vocab_size):  # train_gpt.py's function, numpy only
    sp_vocab_size = int(sp.vocab_size())
    table_size = max(sp_vocab_size, vocab_size)
    base_bytes = np.zeros((table_size,), dtype=np.int16)
    has_leading_space = np.zeros((table_size,), dtype=np.bool_)
    is_boundary = np.ones((table_size,), dtype=np.bool_)
    for token_id in range(sp_vocab_size):
        if sp.is_control(token_id) or sp.is_unknown(token_id) or sp.is_unused(token_id):
            continue
        is_boundary[token_id] = False
        if sp.is_byte(token_id):
            base_bytes[token_id] = 1
            continue
        piece = sp.id_to_piece(token_id)
        if piece.startswith("\u2581"):
            has_leading_space[token_id] = True
            piece = piece[1:]
        base_bytes[token_id] = len(piece.encode("utf-8"))
    return base_bytes, has_leading_space, is_boundary


def id_sequences(sp, rng):
    n = sp.vocab_size()
    seqs = [sp.encode(t) for t in TEXTS]
    seqs.append([1] + sp.encode(TEXTS[0]) + [2, 0, 3] + sp.encode(TEXTS[2]))  # control and unknown pieces
    seqs.append([rng.randrange(n) for _ in range(200)])  # anything, in any order
    space = [i for i in range(n) if sp.id_to_piece(i).startswith("\u2581")]
    seqs.append([space[0], space[1], space[2]])  # a leading "▁" on the first piece
    byte_ids = [i for i in range(n) if sp.is_byte(i)]
    if byte_ids:  # valid and invalid UTF-8 spelled with byte pieces
        b = {sp.id_to_piece(i): i for i in byte_ids}
        seqs.append([b["<0xC3>"], b["<0xA9>"], space[0], b["<0xFF>"], b["<0xE6>"], b["<0x9D>"], space[1], b["<0xC3>"]])
        seqs.append([b["<0xF0>"], b["<0x9F>"], b["<0x99>"], b["<0x82>"], b["<0x41>"], b["<0x80>"], b["<0x80>"]])
    return seqs


p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--shared", default=os.environ.get("PGOLF_SHARED_DATA", os.path.join("..", "shared", "data")))
args = p.parse_args()
os.makedirs(args.out, exist_ok=True)
rng = random.Random(1234)
tensors, meta = {}, {}
for name in MODELS:
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.shared, "tokenizers", name + ".model"))
    vocab = sp.vocab_size() + 16  # VOCAB_SIZE may exceed the tokenizer's: the tables pad with boundaries
    for key, table in zip(("base_bytes", "has_leading_space", "is_boundary"), build_sentencepiece_luts(sp, vocab)):
        tensors[f"{name}.{key}"] = table.astype(np.int32)
    seqs = id_sequences(sp, rng)
    for k, ids in enumerate(seqs):
        tensors[f"{name}.decode.{k}.ids"] = np.array(ids, dtype=np.int32)
        tensors[f"{name}.decode.{k}.text"] = np.frombuffer(sp.decode(ids).encode("utf-8"), dtype=np.uint8).astype(np.int32)
    meta[f"{name}.vocab"] = vocab
    meta[f"{name}.decode_count"] = len(seqs)
save_safetensors(os.path.join(args.out, "spm_ref.safetensors"), tensors, meta)
