#include "data/shard.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

// Shards are little-endian on disk; pgolf assumes a little-endian host (x86-64, aarch64).
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pgolf reads shards on little-endian hosts only");

uint16_t *shard_read(const char *path, int64_t *count) {
    int64_t size = file_size(path);
    if (size < 0) die("cannot open shard %s", path);
    if (size < SHARD_HEADER_WORDS * 4)
        die("shard %s is truncated: %lld bytes, shorter than its %d-byte header", path, (long long)size,
            SHARD_HEADER_WORDS * 4);
    FILE *f = xfopen(path, "rb");
    int32_t header[SHARD_HEADER_WORDS];
    xfread(header, sizeof header, 1, f, path);
    if (header[0] != SHARD_MAGIC)
        die("shard %s has wrong magic %d (expected %d): not a token shard", path, header[0], SHARD_MAGIC);
    if (header[1] != SHARD_VERSION)
        die("shard %s has unsupported version %d (expected %d)", path, header[1], SHARD_VERSION);
    int64_t n = header[2];
    if (n < 0) die("shard %s has a negative token count %lld", path, (long long)n);
    int64_t expected = SHARD_HEADER_WORDS * 4 + 2 * n;
    if (size != expected)
        die("shard %s size mismatch: header says %lld tokens (%lld bytes), file has %lld bytes", path, (long long)n,
            (long long)expected, (long long)size);
    uint16_t *tokens = xmalloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
    xfread(tokens, sizeof(uint16_t), (size_t)n, f, path);
    fclose(f);
    *count = n;
    return tokens;
}

void shard_write(const char *path, const uint16_t *tokens, int64_t count) {
    if (count < 0 || count > INT32_MAX) die("cannot write shard %s: %lld tokens do not fit the header", path, (long long)count);
    int32_t header[SHARD_HEADER_WORDS] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)count};
    AtomicFile af = atomic_open(path);
    atomic_write(&af, header, sizeof header);
    atomic_write(&af, tokens, sizeof(uint16_t) * (size_t)count);
    atomic_commit(&af);
}

void tokens_check_vocab(const uint16_t *tokens, int64_t n, int64_t vocab, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] >= vocab)
            die("%s: token id %d at position %lld is out of range for VOCAB_SIZE=%lld", what, tokens[i], (long long)i,
                (long long)vocab);
}

struct TokenStream {
    char **files;
    int num_files;
    int64_t vocab;
    int file_idx; // shard currently in `tokens`
    uint16_t *tokens;
    int64_t count, pos;
};

static void stream_load(TokenStream *s, int file_idx) {
    free(s->tokens);
    s->file_idx = file_idx;
    s->tokens = shard_read(s->files[file_idx], &s->count);
    tokens_check_vocab(s->tokens, s->count, s->vocab, s->files[file_idx]);
    s->pos = 0;
}

TokenStream *token_stream_open(const char *pattern, int64_t vocab) {
    TokenStream *s = xcalloc(1, sizeof *s);
    s->num_files = glob_sorted(pattern, &s->files);
    if (s->num_files == 0) die("no files found for pattern: %s", pattern);
    s->vocab = vocab;
    stream_load(s, 0);
    return s;
}

void token_stream_close(TokenStream *s) {
    if (!s) return;
    free_paths(s->files, s->num_files);
    free(s->tokens);
    free(s);
}

int token_stream_num_files(const TokenStream *s) { return s->num_files; }

TokenStreamPos token_stream_tell(const TokenStream *s) { return (TokenStreamPos){s->file_idx, s->pos}; }

void token_stream_seek(TokenStream *s, TokenStreamPos pos) {
    if (pos.file_idx < 0 || pos.file_idx >= s->num_files)
        die("data position refers to shard %d, but only %d shards match", pos.file_idx, s->num_files);
    if (pos.file_idx != s->file_idx) stream_load(s, pos.file_idx);
    if (pos.pos < 0 || pos.pos > s->count)
        die("data position %lld is outside shard %s (%lld tokens)", (long long)pos.pos, s->files[pos.file_idx],
            (long long)s->count);
    s->pos = pos.pos;
}

// Like TokenStream.take: an exhausted shard is replaced by the next one only when more is needed.
void token_stream_take(TokenStream *s, int64_t n, uint16_t *out) {
    int empty_in_a_row = 0;
    while (n > 0) {
        int64_t avail = s->count - s->pos;
        if (avail <= 0) {
            if (++empty_in_a_row > s->num_files) die("every shard matching the training pattern is empty");
            stream_load(s, (s->file_idx + 1) % s->num_files);
            continue;
        }
        empty_in_a_row = 0;
        int64_t k = n < avail ? n : avail;
        memcpy(out, s->tokens + s->pos, sizeof(uint16_t) * (size_t)k);
        s->pos += k;
        out += k;
        n -= k;
    }
}

void loader_next_batch(TokenStream *s, int64_t global_tokens, int64_t seq_len, int64_t grad_accum, int32_t *x,
                       int32_t *y) {
    int64_t local = global_tokens / grad_accum;
    if (local % seq_len != 0)
        die("TRAIN_BATCH_TOKENS / GRAD_ACCUM_STEPS = %lld is not a multiple of TRAIN_SEQ_LEN=%lld", (long long)local,
            (long long)seq_len);
    uint16_t *span = xmalloc(sizeof(uint16_t) * (size_t)(local + 1));
    token_stream_take(s, local + 1, span);
    for (int64_t i = 0; i < local; i++) {
        x[i] = span[i];
        y[i] = span[i + 1];
    }
    free(span);
}

uint16_t *load_validation_tokens(const char *pattern, int64_t seq_len, int64_t max_tokens, int64_t *n_out) {
    char **files;
    int nf = glob_sorted(pattern, &files);
    if (nf == 0) die("no files found for pattern: %s", pattern);
    int64_t n = 0, cap = max_tokens > 0 ? max_tokens + 1 : INT64_MAX;
    uint16_t *all = NULL;
    for (int i = 0; i < nf && n < cap; i++) {
        int64_t count;
        uint16_t *t = shard_read(files[i], &count);
        int64_t k = count < cap - n ? count : cap - n;
        all = xrealloc(all, sizeof(uint16_t) * (size_t)(n + k + 1));
        memcpy(all + n, t, sizeof(uint16_t) * (size_t)k);
        n += k;
        free(t);
    }
    int64_t usable = n > 0 ? ((n - 1) / seq_len) * seq_len : 0;
    if (usable <= 0)
        die("validation split %s is too short for TRAIN_SEQ_LEN=%lld (%lld tokens)", pattern, (long long)seq_len,
            (long long)n);
    free_paths(files, nf);
    *n_out = usable + 1;
    return all;
}
