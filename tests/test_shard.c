// Token shards: the on-disk format, every malformed-file case, and the reference readers' semantics
// (TokenStream wrap-around, the loader's +1 token, validation truncation).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "test.h"
#include "util.h"

static uint16_t *iota_tokens(int64_t n, int start) {
    uint16_t *t = xmalloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) t[i] = (uint16_t)(start + i);
    return t;
}

static void write_iota(const char *dir, const char *name, int64_t n, int start) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint16_t *t = iota_tokens(n, start);
    shard_write(path, t, n);
    free(t);
}

TEST(shard_round_trip_and_layout) {
    const char *dir = test_tmpdir("shard_rt");
    char path[1024];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    uint16_t tokens[] = {0, 1, 65535, 1023, 7};
    shard_write(path, tokens, 5);
    CHECK(file_size(path) == 1024 + 10, "shard is %lld bytes, expected 1034", (long long)file_size(path));
    size_t len;
    uint8_t *raw = read_file(path, &len);
    int32_t header[3];
    memcpy(header, raw, sizeof header);
    CHECK(header[0] == 20240520 && header[1] == 1 && header[2] == 5, "header %d %d %d", header[0], header[1], header[2]);
    int zeros = 1;
    for (int i = 12; i < 1024; i++) zeros &= raw[i] == 0;
    CHECK(zeros, "header words 3..255 are not zero");
    CHECK(raw[1024 + 4] == 0xff && raw[1024 + 5] == 0xff, "tokens are not little-endian uint16");
    free(raw);
    int64_t n;
    uint16_t *back = shard_read(path, &n);
    CHECK(n == 5 && !memcmp(back, tokens, sizeof tokens), "read back differs");
    free(back);
    snprintf(path, sizeof path, "%s/empty.bin", dir);
    shard_write(path, NULL, 0);
    back = shard_read(path, &n);
    CHECK(n == 0, "empty shard read as %lld tokens", (long long)n);
    free(back);
}

// A shard with a given header and `payload` token bytes, to corrupt on purpose.
static const char *raw_shard(const char *name, int32_t magic, int32_t version, int32_t count, int64_t payload) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s.bin", test_tmpdir(name), name);
    size_t len = payload < 0 ? 100 : 1024 + (size_t)payload; // payload < 0: a file shorter than the header
    uint8_t *buf = xcalloc(1, len);
    int32_t header[3] = {magic, version, count};
    if (payload >= 0) memcpy(buf, header, sizeof header);
    write_file_atomic(path, buf, len);
    free(buf);
    return path;
}

static void read_shard(void *path) {
    int64_t n;
    free(shard_read(path, &n));
}

TEST(shard_bad_files_die_naming_the_file) {
    struct {
        const char *name;
        int32_t magic, version, count;
        int64_t payload;
        const char *expect;
    } cases[] = {
        {"magic", 12345, 1, 4, 8, "wrong magic 12345"},
        {"version", 20240520, 2, 4, 8, "unsupported version 2"},
        {"truncated", 20240520, 1, 4, 6, "size mismatch"},
        {"toolong", 20240520, 1, 4, 10, "size mismatch"},
        {"header", 20240520, 1, 4, -1, "truncated"},
        {"negative", 20240520, 1, -3, 0, "negative token count"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = raw_shard(cases[i].name, cases[i].magic, cases[i].version, cases[i].count, cases[i].payload);
        CHECK(test_dies_with(read_shard, (void *)path, cases[i].expect) && test_dies_with(read_shard, (void *)path, path),
              "case %s", cases[i].name);
    }
    CHECK(test_dies_with(read_shard, "/nonexistent/x.bin", "/nonexistent/x.bin"), "missing file");
}

static void open_pattern(void *pattern) { token_stream_close(token_stream_open(pattern, 1024)); }

TEST(shard_stream_rejects_empty_pattern_and_bad_ids) {
    const char *dir = test_tmpdir("shard_vocab");
    char pattern[1100];
    snprintf(pattern, sizeof pattern, "%s/fineweb_train_*.bin", dir);
    CHECK(test_dies_with(open_pattern, pattern, "no files found for pattern"), "empty pattern");
    write_iota(dir, "fineweb_train_000000.bin", 10, 1020); // ids 1020..1029: 1024 is out of range
    CHECK(test_dies_with(open_pattern, pattern, "token id 1024 at position 4 is out of range for VOCAB_SIZE=1024"),
          "id out of range");
}

// Shards of 5, 0 and 3 tokens, values 0..4 and 100..102: takes cross boundaries, skip the empty
// shard and wrap around; tell/seek restore a position exactly.
TEST(shard_stream_wraps_and_seeks) {
    const char *dir = test_tmpdir("shard_stream");
    write_iota(dir, "fineweb_train_000000.bin", 5, 0);
    write_iota(dir, "fineweb_train_000001.bin", 0, 0);
    write_iota(dir, "fineweb_train_000002.bin", 3, 100);
    char pattern[1100];
    snprintf(pattern, sizeof pattern, "%s/fineweb_train_*.bin", dir);
    TokenStream *s = token_stream_open(pattern, 1024);
    CHECK(token_stream_num_files(s) == 3, "%d files", token_stream_num_files(s));
    uint16_t got[12];
    token_stream_take(s, 4, got);
    TokenStreamPos mark = token_stream_tell(s);
    token_stream_take(s, 6, got + 4);
    uint16_t want[] = {0, 1, 2, 3, 4, 100, 101, 102, 0, 1};
    CHECK(!memcmp(got, want, sizeof want), "stream order: %d %d %d %d %d %d %d %d %d %d", got[0], got[1], got[2], got[3],
          got[4], got[5], got[6], got[7], got[8], got[9]);
    token_stream_seek(s, mark);
    uint16_t again[6];
    token_stream_take(s, 6, again);
    CHECK(!memcmp(again, want + 4, sizeof again), "seek did not restore the position");
    token_stream_close(s);
}

// train_gpt.py: chunk = stream.take(local_tokens + 1); x = chunk[:-1], y = chunk[1:]; the extra token is
// consumed, so the next batch starts one token after this batch's last target.
TEST(shard_loader_takes_the_extra_token) {
    const char *dir = test_tmpdir("shard_loader");
    write_iota(dir, "fineweb_train_000000.bin", 100, 0);
    char pattern[1100];
    snprintf(pattern, sizeof pattern, "%s/fineweb_train_*.bin", dir);
    TokenStream *s = token_stream_open(pattern, 1024);
    int32_t x[8], y[8];
    loader_next_batch(s, 16, 4, 2, x, y); // 16 tokens over 2 micro-steps: 2 rows of 4
    for (int i = 0; i < 8; i++) CHECK(x[i] == i && y[i] == i + 1, "first batch x[%d]=%d y[%d]=%d", i, x[i], i, y[i]);
    loader_next_batch(s, 16, 4, 2, x, y);
    CHECK(x[0] == 9 && y[7] == 17, "second batch starts at %d (expected 9) and ends at %d (expected 17)", x[0], y[7]);
    token_stream_close(s);
}

TEST(shard_validation_truncates_to_whole_sequences) {
    const char *dir = test_tmpdir("shard_val");
    write_iota(dir, "fineweb_val_000000.bin", 7, 0);
    write_iota(dir, "fineweb_val_000001.bin", 7, 7);
    char pattern[1100];
    snprintf(pattern, sizeof pattern, "%s/fineweb_val_*.bin", dir);
    int64_t n;
    uint16_t *v = load_validation_tokens(pattern, 4, 0, &n); // 14 tokens -> 3 sequences of 4, plus 1
    CHECK(n == 13, "kept %lld tokens, expected 13", (long long)n);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= v[i] == i;
    CHECK(ok, "validation tokens are not the shards in order");
    free(v);
    v = load_validation_tokens(pattern, 4, 9, &n); // cap to 9 + 1 tokens -> 2 sequences
    CHECK(n == 9, "VAL_MAX_TOKENS=9 kept %lld tokens, expected 9", (long long)n);
    free(v);
}

static void load_short_validation(void *pattern) {
    int64_t n;
    free(load_validation_tokens(pattern, 1024, 0, &n));
}

TEST(shard_validation_too_short_dies) {
    const char *dir = test_tmpdir("shard_val_short");
    write_iota(dir, "fineweb_val_000000.bin", 1024, 0);
    char pattern[1100];
    snprintf(pattern, sizeof pattern, "%s/fineweb_val_*.bin", dir);
    CHECK(test_dies_with(load_short_validation, pattern, "too short for TRAIN_SEQ_LEN=1024"), "short validation");
}
