// Training and encoding through Debian's `sentencepiece` command-line tools. pgolf reads .model
// files itself (data/spm.h) but leaves BPE training and encoding to the official implementation.
#pragma once
#include <stdint.h>

// spm_train with the options of parameter-golf's tokenizer export (download_hf_docs_and_tokenize.py):
// BPE, character_coverage 0.999, byte_fallback, split_digits, nmt_nfkc, no dummy prefix, ids
// pad/bos/eos/unk = 0/1/2/3, hard_vocab_limit off. One sentence per line of `input`; lines up to
// max_line_bytes are kept (spm_train's default 4192 would drop whole documents). Writes
// <prefix>.model and <prefix>.vocab; the tool's chatter goes to log_path.
void spm_train_bpe(const char *input, const char *prefix, int64_t vocab, int64_t max_line_bytes, const char *log_path);

// spm_encode --output_format=id over a text file: on_line gets the ids of each input line in order.
typedef void (*SpmLineFn)(const int32_t *ids, int64_t n, void *ctx);
void spm_encode_file(const char *model, const char *text_path, SpmLineFn on_line, void *ctx);
