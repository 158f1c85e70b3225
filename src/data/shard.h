// Token shards in the format of parameter-golf's FineWeb export, and the training/validation
// readers of train_gpt.py (TokenStream, DistributedTokenLoader, load_validation_tokens).
//
// A shard: 256 little-endian int32 header words (magic 20240520, version 1, token count, zeros),
// then `count` little-endian uint16 tokens; the file is exactly 1024 + 2 * count bytes.
#pragma once
#include <stdint.h>

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_WORDS 256

// Whole shard into memory; dies naming the file on a bad header, size mismatch or short read.
uint16_t *shard_read(const char *path, int64_t *count);
// Writes a shard atomically (temp + rename).
void shard_write(const char *path, const uint16_t *tokens, int64_t count);
// Dies if any token is >= vocab, naming `what` (a file or pattern) and the first offending index.
void tokens_check_vocab(const uint16_t *tokens, int64_t n, int64_t vocab, const char *what);

// Position in the stream: the shard and the offset of the next token inside it.
typedef struct {
    int file_idx;
    int64_t pos;
} TokenStreamPos;

// Shards matching a pattern, read in sorted order and wrapped around forever.
typedef struct TokenStream TokenStream;
TokenStream *token_stream_open(const char *pattern, int64_t vocab); // dies if no file matches
void token_stream_close(TokenStream *s);
int token_stream_num_files(const TokenStream *s);
TokenStreamPos token_stream_tell(const TokenStream *s);
void token_stream_seek(TokenStream *s, TokenStreamPos pos); // dies if pos is outside the shards
// The next n tokens, crossing shard boundaries as needed.
void token_stream_take(TokenStream *s, int64_t n, uint16_t *out);

// One micro-batch as the reference loader makes it (single rank): takes
// global_tokens / grad_accum + 1 contiguous tokens; x = span[:-1], y = span[1:], both
// (global_tokens / grad_accum / seq_len) x seq_len. The extra token is not given back to the stream.
void loader_next_batch(TokenStream *s, int64_t global_tokens, int64_t seq_len, int64_t grad_accum, int32_t *x,
                       int32_t *y);

// All shards matching pattern, concatenated and truncated to whole sequences plus one token.
// max_tokens > 0 first caps the text to max_tokens + 1 tokens (VAL_MAX_TOKENS, a pgolf addition).
uint16_t *load_validation_tokens(const char *pattern, int64_t seq_len, int64_t max_tokens, int64_t *n_out);
