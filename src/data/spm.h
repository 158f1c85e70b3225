// SentencePiece .model files read directly (they are a ModelProto protobuf): the pieces, their
// types, and what train_gpt.py derives from them — the byte tables behind val_bpb — plus decoding.
#pragma once
#include <stdint.h>

typedef struct SpmModel SpmModel;

SpmModel *spm_load(const char *path); // dies naming the file if it is not a readable model
void spm_free(SpmModel *sp);
int64_t spm_vocab_size(const SpmModel *sp);
// Dies with "VOCAB_SIZE=X does not match tokenizer vocab_size=Y" as train_gpt.py does.
void spm_check_vocab(const SpmModel *sp, int64_t vocab, const char *path);

// build_sentencepiece_luts: arrays of max(vocab, spm_vocab_size) entries. Control, unknown and
// unused pieces are boundaries with 0 bytes; byte pieces count 1 byte; others the UTF-8 length of
// the piece without its leading "▁", which sets has_leading_space.
void spm_byte_tables(const SpmModel *sp, int64_t vocab, int16_t *base_bytes, uint8_t *has_leading_space,
                     uint8_t *is_boundary);

// Ids to text as SentencePiece decodes them: "▁" becomes a space, byte pieces become their byte,
// control pieces vanish, unknown ones read " ⁇ ". Returns a NUL-terminated string (free it).
char *spm_decode(const SpmModel *sp, const int32_t *ids, int64_t n);
