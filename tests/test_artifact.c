// The int8+zlib artifact: exact round trip, stats, summary, and every corruption dying with one line.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../src/export/artifact.h"
#include "../src/export/quant_int8.h"
#include "../src/util.h"
#include "test.h"

enum { N_TENSORS = 5 };
static const struct {
    const char *name;
    int ndim;
    int64_t shape[2];
} SPECS[N_TENSORS] = {
    {"tok_emb.weight", 2, {300, 256}},          // int8 per row
    {"big.vec", 1, {70000}},                    // int8 per tensor
    {"blocks.0.attn.c_q.weight", 2, {16, 16}},  // fp16
    {"blocks.0.attn_scale", 1, {16}},           // fp32 (control)
    {"blocks.1.attn_scale", 2, {2, 16}},        // fp32 (control)
};
static const QuantKind KINDS[N_TENSORS] = {QUANT_INT8_ROW, QUANT_INT8_TENSOR, QUANT_FP16, QUANT_FP32, QUANT_FP32};
static const char *CONFIG = "MODEL_DIM=256\nNUM_LAYERS=1\nVOCAB_SIZE=300\n";

// A model-like state with seeded values (zeroed data when seed is 0).
static TensorList make_state(uint64_t seed) {
    TensorList l = {calloc(N_TENSORS, sizeof(TensorView)), N_TENSORS};
    Rng rng;
    rng_seed(&rng, seed);
    for (int k = 0; k < N_TENSORS; k++) {
        TensorView *t = &l.items[k];
        snprintf(t->name, sizeof t->name, "%s", SPECS[k].name);
        t->ndim = SPECS[k].ndim;
        memcpy(t->shape, SPECS[k].shape, sizeof SPECS[k].shape);
        int64_t n = tensor_numel(t);
        t->data = calloc((size_t)n, sizeof(real));
        for (int64_t j = 0; seed && j < n; j++) t->data[j] = (real)(0.05 * rng_normal(&rng));
    }
    return l;
}

static void free_state(TensorList *l) {
    for (int k = 0; k < l->count; k++) free(l->items[k].data);
    free(l->items);
}

static const char *save_fixture_with(const char *test, Compressor comp, ArtifactStats *stats) {
    static char path[600];
    snprintf(path, sizeof path, "%s/model.int8.ptz", test_tmpdir(test));
    TensorList s = make_state(11);
    artifact_save_int8(path, CONFIG, &s, (ArtifactCompression){comp, compressor_default_level(comp), 0}, stats);
    free_state(&s);
    return path;
}

static const char *save_fixture(const char *test, ArtifactStats *stats) { return save_fixture_with(test, COMPRESS_ZLIB, stats); }

TEST(artifact_roundtrip_and_stats) {
    ArtifactStats st;
    const char *path = save_fixture("artifact_roundtrip", &st);
    Artifact *a = artifact_load(path);
    CHECK(!strcmp(artifact_config_text(a), CONFIG), "config text: %s", artifact_config_text(a));
    TensorList src = make_state(11), dst = make_state(0);
    artifact_dequantize_into(a, &dst);
    int64_t params = 0, payload = 0;
    for (int k = 0; k < N_TENSORS; k++) {
        QuantTensor qt;
        quant_int8_tensor(&src.items[k], &qt);
        int64_t n = tensor_numel(&src.items[k]);
        real *expect = malloc(sizeof(real) * (size_t)n);
        dequant_int8_tensor(&qt, expect);
        CHECK(!memcmp(expect, dst.items[k].data, sizeof(real) * (size_t)n), "%s: values differ from quantize->dequantize",
              SPECS[k].name);
        char kind_name[48];
        CHECK(qt.kind == KINDS[k], "%s: kind %s", SPECS[k].name, quant_storage_name(&qt, kind_name));
        params += n;
        payload += quant_tensor_bytes(&qt);
        free(expect);
        quant_tensor_free(&qt);
    }
    // payload by hand: int8 + fp16 row scales, int8 + one fp32 scale, fp16, fp32, fp32
    CHECK(payload == (300 * 256 + 2 * 300) + (70000 + 4) + 2 * 256 + 4 * 16 + 4 * 32, "payload %lld", (long long)payload);
    CHECK(st.param_count == params && params == 147104, "param_count %lld", (long long)st.param_count);
    CHECK(st.num_tensors == N_TENSORS && st.num_float_tensors == 2, "tensor counts %lld %lld", (long long)st.num_tensors,
          (long long)st.num_float_tensors);
    CHECK(st.baseline_tensor_bytes == 4 * params, "baseline %lld", (long long)st.baseline_tensor_bytes);
    CHECK(st.payload_bytes == payload, "payload_bytes %lld", (long long)st.payload_bytes);
    CHECK(st.file_bytes == file_size(path), "file_bytes %lld vs %lld", (long long)st.file_bytes, (long long)file_size(path));
    CHECK(st.compressed_bytes > 0 && st.compressed_bytes < payload, "compressed %lld", (long long)st.compressed_bytes);
    CHECK(st.raw_bytes == st.file_bytes - st.compressed_bytes + payload, "raw_bytes %lld", (long long)st.raw_bytes);
    size_t len;
    uint8_t *bytes = read_file(path, &len);
    uint32_t version, comp;
    memcpy(&version, bytes + 8, 4);
    memcpy(&comp, bytes + 12, 4);
    CHECK(!memcmp(bytes, "PGOLFART", 8) && version == 2 && comp == COMPRESS_ZLIB, "file header");
    free(bytes);
    free_state(&src);
    free_state(&dst);
    artifact_free(a);
}

TEST(artifact_summary) {
    ArtifactStats st;
    const char *path = save_fixture("artifact_summary", &st);
    Artifact *a = artifact_load(path);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    artifact_print_summary(a, f);
    fclose(f);
    const char *want[] = {"int8_clean_per_row_v1", "zlib", "tok_emb.weight", "[300, 256]", "int8 per-row + fp16 scales",
                          "77400", "int8 per-tensor + fp32 scale", "70004", "fp16", "blocks.1.attn_scale",
                          "MODEL_DIM=256", "VOCAB_SIZE=300", "params: 147104"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) CHECK(strstr(text, want[k]), "summary lacks %s", want[k]);
    free(text);
    artifact_free(a);
}

// ---------------------------------------------------------------- model mismatches

typedef struct {
    const char *path;
    int drop;         // index of a tensor the model lacks, or -1
    int extra;        // 1: the model has a tensor the artifact lacks
    int reshape;      // 1: blocks.0.attn.c_q.weight is [16, 8] in the model
} MismatchArg;

static void dequant_mismatch(void *arg) {
    const MismatchArg *m = arg;
    Artifact *a = artifact_load(m->path);
    TensorList l = make_state(0);
    if (m->drop >= 0) l.items[m->drop] = l.items[--l.count];
    if (m->extra) snprintf(l.items[1].name, sizeof l.items[1].name, "lm_head.weight");
    if (m->reshape) l.items[2].shape[1] = 8;
    artifact_dequantize_into(a, &l);
}

TEST(artifact_dequantize_mismatch) {
    ArtifactStats st;
    const char *path = save_fixture("artifact_mismatch", &st);
    char expect[1024];
    snprintf(expect, sizeof expect, "%s: artifact tensor blocks.0.attn_scale is not in the model", path);
    CHECK(test_dies_with(dequant_mismatch, &(MismatchArg){path, 3, 0, 0}, expect), "artifact has an extra tensor");
    snprintf(expect, sizeof expect, "%s: model tensor lm_head.weight is not in the artifact", path);
    CHECK(test_dies_with(dequant_mismatch, &(MismatchArg){path, -1, 1, 0}, expect), "model has an extra tensor");
    snprintf(expect, sizeof expect, "%s: tensor blocks.0.attn.c_q.weight has shape [16, 16] in the artifact, model expects [16, 8]",
             path);
    CHECK(test_dies_with(dequant_mismatch, &(MismatchArg){path, -1, 0, 1}, expect), "shape mismatch");
}

// ---------------------------------------------------------------- corrupt files

// Byte offsets of the fields, found by walking the documented layout (version 2; no QUANT_ROW_NBIT here).
typedef struct {
    size_t scheme, count, kind[N_TENSORS], ndim[N_TENSORS], raw_len, payload, crc;
} Layout;

static uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static Layout layout_of(const uint8_t *b, size_t len) {
    Layout l = {.scheme = 20};
    size_t p = 20 + 4 + u32_at(b + 20); // scheme
    p += 4 + u32_at(b + p);              // config
    l.count = p;
    p += 4;
    for (int k = 0; k < N_TENSORS; k++) {
        p += 4 + u32_at(b + p);
        l.kind[k] = p;
        l.ndim[k] = p + 1;
        p += 2 + 8 * (size_t)b[p + 1];
    }
    l.raw_len = p;
    l.payload = p + 16;
    l.crc = len - 4;
    return l;
}

static void fix_crc(uint8_t *b, size_t len) {
    uint32_t crc = (uint32_t)crc32_z(0, b, len - 4);
    memcpy(b + len - 4, &crc, 4);
}

static void load_bad(void *arg) { artifact_load(arg); }

// Writes `bytes` (len) as bad.ptz and checks that loading dies with "<bad path>: <expect>".
static int dies_on(const char *dir, const uint8_t *bytes, size_t len, const char *expect) {
    char path[700], full[1024];
    snprintf(path, sizeof path, "%s/bad.ptz", dir);
    write_file_atomic(path, bytes, len);
    snprintf(full, sizeof full, "%s: %s", path, expect);
    return test_dies_with(load_bad, path, full);
}

TEST(artifact_corruption_dies_cleanly) {
    ArtifactStats st;
    const char *path = save_fixture("artifact_corrupt", &st);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    size_t len;
    uint8_t *good = read_file(path, &len), *b = malloc(len + 8);
    Layout L = layout_of(good, len);
    CHECK(L.payload < len - 4 && L.count == 20 + 4 + 21 + 4 + strlen(CONFIG), "layout walk");

    const size_t cuts[] = {0, 5, 8, 10, 14, 20, L.count + 2, L.kind[2], L.raw_len + 3, L.payload + 100, len - 4, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
        CHECK(dies_on(dir, good, cuts[k], "truncated"), "truncated at %zu of %zu", cuts[k], len);

#define MUTATE(stmt, expect, what)                \
    do {                                          \
        memcpy(b, good, len);                     \
        stmt;                                     \
        CHECK(dies_on(dir, b, len, expect), what); \
    } while (0)
    MUTATE(b[L.payload + 50] ^= 0x40, "checksum mismatch", "flipped payload byte");
    MUTATE(b[L.kind[0] - 3] ^= 0x01, "checksum mismatch", "flipped name byte");
    MUTATE(b[len - 2] ^= 0x10, "checksum mismatch", "flipped checksum byte");
    MUTATE(b[7] = 'X', "not a pgolf artifact (bad magic", "wrong magic");
    MUTATE(b[8] = 3, "unsupported artifact version 3 (this build reads versions 1..2)", "wrong version");
    MUTATE((b[16] = 7, fix_crc(b, len)), "unknown payload layout 7", "unknown layout");
    MUTATE((b[12] = COMPRESS_ZSTD, fix_crc(b, len)), "zstd decompression failed", "zlib payload labelled zstd");
    MUTATE(b[12] = 99, "unknown payload compression 99", "unknown compression");
    // table and payload inconsistencies behind a valid checksum
    MUTATE((b[L.payload + 50] ^= 0x40, fix_crc(b, len)), "zlib decompression failed", "corrupt zlib stream");
    MUTATE((b[L.scheme + 4 + 20] = '2', fix_crc(b, len)), "unknown quantization scheme \"int8_clean_per_row_v2\"",
           "unknown scheme");
    MUTATE((b[L.scheme + 4 + 3] = '\n', fix_crc(b, len)), "the scheme name contains a non-printable byte 0x0a",
           "control character in the scheme");
    MUTATE((b[L.kind[1] - 2] = 0x80, fix_crc(b, len)), "a tensor name contains a non-printable byte 0x80",
           "non-ASCII tensor name");
    MUTATE((b[L.kind[0]] = 9, fix_crc(b, len)), "tensor tok_emb.weight has unknown storage kind 9", "unknown kind");
    MUTATE((b[L.kind[1]] = QUANT_INT8_ROW, fix_crc(b, len)), "tensor big.vec is stored per row but is not a matrix",
           "per-row 1-D tensor");
    MUTATE((b[L.ndim[3]] = 5, fix_crc(b, len)), "tensor blocks.0.attn_scale has 5 dimensions", "too many dims");
    MUTATE((b[L.raw_len] ^= 1, fix_crc(b, len)), "payload size", "payload size");
    MUTATE((b[L.ndim[0] + 1 + 3] = 0x10, fix_crc(b, len)), "implausible payload size", "a 2^28-row table entry");
    MUTATE((b[L.ndim[4] + 1] = 1, fix_crc(b, len)), "payload size 148108 does not match the tensor table (148044 bytes)",
           "shape changed under the payload");
    MUTATE((b[L.kind[1] - 11] = 200, fix_crc(b, len)), "tensor name is 200 bytes long", "name too long");
    MUTATE((b[L.kind[4] - 19 + 7] = '0', fix_crc(b, len)), "tensor blocks.0.attn_scale appears twice", "duplicate name");
    MUTATE((b[L.count] = 0xff, b[L.count + 1] = 0xff, b[L.count + 2] = 0xff, fix_crc(b, len)),
           "implausible tensor count", "tensor count");
#undef MUTATE
    memcpy(b, good, len);
    memcpy(b + len, "junk", 4);
    CHECK(dies_on(dir, b, len + 4, "4 unexpected bytes after the checksum"), "trailing bytes");
    CHECK(test_dies_with(load_bad, "build/tmp/artifact_corrupt/absent.ptz", "cannot open"), "missing file");
    free(good);
    free(b);
}

// zstd, brotli and lzma payloads load back to exactly the zlib artifact's values; a corrupt stream behind a
// valid checksum is reported by name.
TEST(artifact_every_compressor_round_trips) {
    ArtifactStats st;
    Artifact *ref = artifact_load(save_fixture("artifact_comp_ref", &st));
    TensorList want = make_state(0), got = make_state(0);
    artifact_dequantize_into(ref, &want);
    const Compressor comps[] = {COMPRESS_ZSTD, COMPRESS_BROTLI, COMPRESS_LZMA};
    for (int c = 0; c < 3; c++) {
        char name[64];
        snprintf(name, sizeof name, "artifact_comp_%s", compressor_name(comps[c]));
        const char *path = save_fixture_with(name, comps[c], &st);
        Artifact *a = artifact_load(path);
        artifact_dequantize_into(a, &got);
        for (int k = 0; k < N_TENSORS; k++)
            CHECK(!memcmp(want.items[k].data, got.items[k].data, sizeof(real) * (size_t)tensor_numel(&want.items[k])),
                  "%s: %s differs from the zlib artifact", compressor_name(comps[c]), SPECS[k].name);
        CHECK(st.compressed_bytes > 0 && st.compressed_bytes < st.payload_bytes, "%s compressed %lld of %lld",
              compressor_name(comps[c]), (long long)st.compressed_bytes, (long long)st.payload_bytes);
        artifact_free(a);
        size_t len;
        uint8_t *b = read_file(path, &len);
        Layout L = layout_of(b, len);
        b[L.payload + 40] ^= 0x5a;
        fix_crc(b, len);
        char dir[600], expect[64];
        snprintf(dir, sizeof dir, "%s", path);
        *strrchr(dir, '/') = 0;
        snprintf(expect, sizeof expect, "%s decompression failed", compressor_name(comps[c]));
        CHECK(dies_on(dir, b, len, expect), "corrupt %s stream", compressor_name(comps[c]));
        free(b);
    }
    free_state(&want);
    free_state(&got);
    artifact_free(ref);
}

static void level_23(void *arg) { compressor_check_level(COMPRESS_ZSTD, 23); }
static void lzma_level_10(void *arg) { compressor_check_level(COMPRESS_LZMA, 10); }
static void bad_name(void *arg) { compressor_from_name("lz4"); }

TEST(artifact_compressor_settings_checked) {
    CHECK(test_dies_with(level_23, NULL, "zstd level 23 is outside 1..22"), "zstd level");
    CHECK(test_dies_with(lzma_level_10, NULL, "lzma level 10 is outside 0..9"), "lzma level");
    CHECK(test_dies_with(bad_name, NULL, "unknown compressor \"lz4\" (choose zlib, zstd, brotli or lzma)"), "name");
}
