// torch.save files (io/torch_file.h) against what PyTorch wrote and read back (tests/ref_torch.py): a
// state_dict with every dtype, views and a shared storage; train_gpt.py's int8+zlib export and the
// records' mixed int6 export, dequantized bit for bit as their code does; and the files pgolf refuses,
// each with its reason.
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export/compress.h"
#include "io/safetensors.h"
#include "io/torch_file.h"
#include "test.h"
#include "util.h"

static char *fixture(const char *file) {
    static char path[8][512]; // a ring: a test holds up to 8 fixture paths at once
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", test_fixture_dir(), file);
    if (file_size(p) < 0) {
        test_fail(__FILE__, __LINE__, "missing %s: run /usr/bin/python3 tests/ref_torch.py --out %s", p, test_fixture_dir());
        return NULL;
    }
    return p;
}

// Same names in the same order, same shapes and exactly the same values.
static void check_same_tensors(const SafeTensors *got, const SafeTensors *want, const char *what) {
    CHECK(st_count(got) == st_count(want), "%s: %d tensors, expected %d", what, st_count(got), st_count(want));
    for (int k = 0; k < st_count(got) && k < st_count(want); k++) {
        const char *name = st_name(want, k);
        CHECK(!strcmp(st_name(got, k), name), "%s: tensor %d is %s, expected %s", what, k, st_name(got, k), name);
        const StTensor *g = st_find(got, name), *w = st_find(want, name);
        if (!g) continue;
        int same_shape = g->ndim == w->ndim && g->numel == w->numel;
        for (int d = 0; same_shape && d < g->ndim; d++) same_shape = g->shape[d] == w->shape[d];
        CHECK(same_shape && !g->f == !w->f, "%s: %s has another shape or kind", what, name);
        if (!same_shape || !g->f != !w->f) continue;
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < g->numel; i++)
            if (g->f ? memcmp(&g->f[i], &w->f[i], 4) != 0 : g->i[i] != w->i[i]) bad++, first = first < 0 ? i : first;
        CHECK(bad == 0, "%s: %s: %lld values differ, the first at %lld (%.9g vs %.9g)", what, name, (long long)bad,
              (long long)first, g->f ? g->f[first] : (double)g->i[first], w->f ? w->f[first] : (double)w->i[first]);
    }
}

TEST(torch_file_reads_state_dict) {
    char *path = fixture("torch_state.pt"), *want_path = fixture("torch_state_expected.safetensors");
    if (!path || !want_path) return;
    CHECK(torch_file_sniff(path) == TORCH_ZIP && torch_file_sniff(want_path) == TORCH_NONE, "sniff");
    int quantized = -1;
    SafeTensors *got = torch_file_load(path, &quantized), *want = st_load(want_path);
    CHECK(quantized == 0, "a state_dict reported as quantized");
    check_same_tensors(got, want, "torch_state.pt");
    // dtypes as stored: the reader widens, it does not round
    const char *names[] = {"f16.vec", "bf16.mat", "i32.vec", "i8.mat", "f32.transposed"};
    StDtype dtypes[] = {ST_F16, ST_BF16, ST_I32, ST_I8, ST_F32};
    for (int k = 0; k < 5; k++) {
        const StTensor *t = st_find(got, names[k]);
        CHECK(t && t->dtype == dtypes[k], "%s: dtype %s", names[k], t ? st_dtype_name(t->dtype) : "(missing)");
    }
    // the same archive compressed as the records compress their exports (zlib, zstd) reads the same
    const char *dir = test_tmpdir("torch_compressed");
    size_t n, packed_len;
    uint8_t *raw = read_file(path, &n);
    for (Compressor c = COMPRESS_ZLIB; c <= COMPRESS_ZSTD; c++) {
        char packed[600];
        snprintf(packed, sizeof packed, "%s/state.pt.%s", dir, compressor_name(c));
        uint8_t *bytes = compress_bytes(c, compressor_default_level(c), raw, n, &packed_len);
        write_file_atomic(packed, bytes, packed_len);
        free(bytes);
        CHECK(torch_file_sniff(packed) == (c == COMPRESS_ZLIB ? TORCH_ZLIB : TORCH_ZSTD), "%s: sniffed wrong", packed);
        SafeTensors *again = torch_file_load(packed, NULL);
        check_same_tensors(again, want, packed);
        st_free(again);
    }
    free(raw);
    st_free(got);
    st_free(want);
    path = fixture("torch_param.pt");
    if (!path) return;
    got = torch_file_load(path, NULL);
    const StTensor *w = st_find(got, "w");
    CHECK(w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3, "nn.Parameter w: shape");
    for (int k = 0; w && k < 6; k++) CHECK(w->f[k] == (float)k, "w[%d] = %g", k, w->f[k]);
    st_free(got);
}

TEST(torch_file_dequantizes_int8_export) {
    char *path = fixture("torch_int8.ptz"), *want_path = fixture("torch_int8_expected.safetensors");
    if (!path || !want_path) return;
    CHECK(torch_file_sniff(path) == TORCH_ZLIB, "a .ptz is a zlib stream");
    int quantized = -1;
    SafeTensors *got = torch_file_load(path, &quantized), *want = st_load(want_path);
    CHECK(quantized == 1, "the int8 export not reported as quantized");
    check_same_tensors(got, want, "torch_int8.ptz");
    // bf16 tensors come back as bf16: quantized (rounded), and kept as fp16 (exact, so only the dtype shows it)
    const StTensor *emb = st_find(got, "tok_emb.weight"), *fc = st_find(got, "blocks.0.mlp.fc.weight");
    CHECK(emb && emb->dtype == ST_BF16, "tok_emb.weight (bf16 in the reference) not rounded to bf16");
    CHECK(fc && fc->dtype == ST_BF16, "blocks.0.mlp.fc.weight not restored to bf16 (passthrough_orig_dtypes)");
    st_free(got);
    st_free(want);
}

// #638's and #1435's export: uncompressed, zstd'd (#638), and byte-shuffled (stride 3 by PyTorch's side,
// as #1435's _byte_shuffle) then brotli'd (#1435) or lzma'd by Python (the records that use lzma); the bf16
// embeddings come back as bf16.
TEST(torch_file_dequantizes_mixed_int6_export) {
    char *path = fixture("torch_mixed.pt"), *bshf = fixture("torch_mixed.bshf"), *xz = fixture("torch_mixed.bshf.xz");
    char *want_path = fixture("torch_mixed_expected.safetensors");
    if (!path || !bshf || !xz || !want_path) return;
    SafeTensors *want = st_load(want_path);
    const char *dir = test_tmpdir("torch_mixed");
    struct {
        const char *src, *name;
        Compressor c; // 0: as it is
        TorchFileKind kind;
    } cases[] = {{path, "raw.pt", 0, TORCH_ZIP},
                 {path, "zstd.ptz", COMPRESS_ZSTD, TORCH_ZSTD},
                 {bshf, "bshf_brotli.ptz", COMPRESS_BROTLI, TORCH_BROTLI},
                 {xz, "bshf_lzma.ptz", 0, TORCH_XZ}};
    for (int k = 0; k < 4; k++) {
        char file[600];
        snprintf(file, sizeof file, "%s/%s", dir, cases[k].name);
        size_t n, packed_len = 0;
        uint8_t *raw = read_file(cases[k].src, &n);
        uint8_t *packed = cases[k].c ? compress_bytes(cases[k].c, 5, raw, n, &packed_len) : NULL;
        write_file_atomic(file, packed ? packed : raw, packed ? packed_len : n);
        free(raw);
        free(packed);
        CHECK(torch_file_sniff(file) == cases[k].kind, "%s: sniffed %d", file, (int)torch_file_sniff(file));
        int quantized = -1;
        SafeTensors *got = torch_file_load(file, &quantized);
        CHECK(quantized == 1, "%s: the export not reported as quantized", file);
        check_same_tensors(got, want, file);
        const char *names[] = {"tok_emb.weight", "bigram.embed.weight", "blocks.0.attn.c_q.weight", "step.count"};
        StDtype dtypes[] = {ST_BF16, ST_BF16, ST_F32, ST_I64};
        for (int i = 0; i < 4; i++) {
            const StTensor *t = st_find(got, names[i]);
            CHECK(t && t->dtype == dtypes[i], "%s: %s is %s", file, names[i], t ? st_dtype_name(t->dtype) : "(missing)");
        }
        st_free(got);
    }
    st_free(want);
}

// `pgolf inspect`'s summary of a file: its text (caller frees).
static char *summary_of(const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    torch_file_print_summary(path, f);
    fclose(f);
    return text;
}

// The summary names the object and compression, each tensor's storage, and totals the tensors' bytes as
// the scripts count their payload, and the torch.save bytes as their raw_torch.
TEST(torch_file_summary_for_inspect) {
    char *ptz = fixture("torch_int8.ptz"), *int8_want = fixture("torch_int8_expected.safetensors");
    char *bshf = fixture("torch_mixed.bshf"), *mixed_want = fixture("torch_mixed_expected.safetensors");
    if (!ptz || !int8_want || !bshf || !mixed_want) return;
    const char *dir = test_tmpdir("torch_summary");
    char brotli[600];
    snprintf(brotli, sizeof brotli, "%s/mixed.ptz", dir);
    size_t n, packed_len;
    uint8_t *raw = read_file(bshf, &n), *packed = compress_bytes(COMPRESS_BROTLI, 5, raw, n, &packed_len);
    write_file_atomic(brotli, packed, packed_len);
    free(raw);
    free(packed);
    struct {
        const char *path, *want, *lines[3];
    } cases[] = {{ptz,
                  int8_want,
                  {"train_gpt.py's int8_clean_per_row_v1 export, zlib\n", "int8 per-row + fp16 scales",
                   "int8 per-tensor + fp32 scale"}},
                 {brotli,
                  mixed_want,
                  {"a record's mixed int6 export {\"w\", \"m\"}, brotli, byte-shuffled (BSHF, stride 3)\n",
                   "int6 per-tensor + fp16 scale ", "gptq (int6) per-row + fp16 scales"}}};
    for (int k = 0; k < 2; k++) {
        SafeTensors *want = st_load(cases[k].want);
        char *text = summary_of(cases[k].path), totals[256];
        snprintf(totals, sizeof totals, "payload: %s bytes of tensors, %s bytes torch.save; file: %lld bytes\n",
                 st_meta(want, "payload_bytes"), st_meta(want, "torch_bytes"), (long long)file_size(cases[k].path));
        CHECK(strstr(text, totals), "%s: no line %s in:\n%s", cases[k].path, totals, text);
        for (int i = 0; i < 3; i++)
            CHECK(strstr(text, cases[k].lines[i]), "%s: no %s in:\n%s", cases[k].path, cases[k].lines[i], text);
        free(text);
        st_free(want);
    }
}

static void load_case(void *path) { st_free(torch_file_load(path, NULL)); }

static void write_bytes(const char *path, const uint8_t *data, size_t n) { write_file_atomic(path, data, n); }

TEST(torch_file_bad_files_die) {
    char *pt = fixture("torch_state.pt"), *ptz = fixture("torch_int8.ptz");
    char *other = fixture("torch_other_format.ptz"), *list = fixture("torch_list.pt"), *wm = fixture("torch_wm_export.ptz");
    if (!pt || !ptz || !other || !list || !wm) return;
    const char *dir = test_tmpdir("torch_bad");
    char path[600], expect[1024];
    snprintf(path, sizeof path, "%s/bad.pt", dir);
    size_t n;
    uint8_t *bytes = read_file(pt, &n);
    write_bytes(path, bytes, n / 2);
    snprintf(expect, sizeof expect, "%s: no zip end-of-central-directory record (truncated?)", path);
    CHECK(test_dies_with(load_case, path, expect), "a torch.save file cut in half");
    uint8_t *proto = memmem(bytes, n, "\x80\x02" "c", 3); // the pickle's first opcode after PROTO 2
    CHECK(proto != NULL, "no PROTO 2 in torch_state.pt");
    if (proto) {
        proto[2] = 0xff;
        write_bytes(path, bytes, n);
        snprintf(expect, sizeof expect, "%s (torch_state/data.pkl): pickle byte 2: unsupported opcode 0xff", path);
        CHECK(test_dies_with(load_case, path, expect), "an unknown pickle opcode");
    }
    free(bytes);
    bytes = read_file(ptz, &n);
    write_bytes(path, bytes, n - 100);
    snprintf(expect, sizeof expect, "%s: corrupt or truncated zlib stream", path);
    CHECK(test_dies_with(load_case, path, expect), "a truncated .ptz");
    size_t zn;
    uint8_t *z = compress_bytes(COMPRESS_ZSTD, 3, bytes, n, &zn); // a zstd stream of compressed bytes: about as long
    write_bytes(path, z, zn / 2);
    snprintf(expect, sizeof expect, "%s: truncated zstd stream", path);
    CHECK(test_dies_with(load_case, path, expect), "a truncated zstd stream");
    free(z);
    free(bytes);
    snprintf(expect, sizeof expect, "%s: quantization format int6_gptq_v2 is not one pgolf reads", other);
    CHECK(test_dies_with(load_case, other, expect), "another export format");
    snprintf(expect, sizeof expect, "%s: holds a list, not a state_dict", list);
    CHECK(test_dies_with(load_case, list, expect), "a pickled list");
    snprintf(expect, sizeof expect, "%s: tensor a: a.q or a.scale is missing from the export's \"w\"", wm);
    CHECK(test_dies_with(load_case, wm, expect), "a {w, m} export without a scale");
    char *xz = fixture("torch_mixed.pt.xz");
    if (!xz) return;
    bytes = read_file(xz, &n);
    write_bytes(path, bytes, n - 20);
    snprintf(expect, sizeof expect, "%s: truncated xz stream", path);
    CHECK(test_dies_with(load_case, path, expect), "a truncated xz stream");
    bytes[n / 2] ^= 0x5a;
    write_bytes(path, bytes, n);
    snprintf(expect, sizeof expect, "%s: corrupt xz stream", path);
    CHECK(test_dies_with(load_case, path, expect), "a corrupt xz stream");
    bytes[n / 2] ^= 0x5a;
    // the first block's header (12 bytes at 12: size, flags, LZMA2's id, property size, dictionary size,
    // padding, CRC-32) asking for a 4 GiB dictionary, its CRC made right
    CHECK(bytes[12] == 2 && bytes[14] == 0x21, "torch_mixed.pt.xz: not the block header expected");
    bytes[16] = 40;
    uint32_t crc = (uint32_t)crc32(0, bytes + 12, 8);
    for (int i = 0; i < 4; i++) bytes[20 + i] = (uint8_t)(crc >> 8 * i);
    write_bytes(path, bytes, n);
    snprintf(expect, sizeof expect, "%s: an xz stream that needs more than 1 GiB to decode", path);
    CHECK(test_dies_with(load_case, path, expect), "an xz stream asking for a 4 GiB dictionary");
    free(bytes);
}

// pgolf's lzma (COMPRESSOR=lzma, and what it reads) writes what Python's lzma.compress(data, preset=6)
// writes, byte for byte: an export's bytes are the records' bytes.
TEST(torch_file_lzma_is_pythons) {
    char *pt = fixture("torch_mixed.pt"), *xz = fixture("torch_mixed.pt.xz");
    if (!pt || !xz) return;
    size_t n, want_len, got_len;
    uint8_t *raw = read_file(pt, &n), *want = read_file(xz, &want_len);
    uint8_t *got = compress_bytes(COMPRESS_LZMA, compressor_default_level(COMPRESS_LZMA), raw, n, &got_len);
    CHECK(got_len == want_len && !memcmp(got, want, want_len), "lzma preset 6: %zu bytes, Python's %zu%s", got_len,
          want_len, got_len == want_len ? " (different bytes)" : "");
    uint8_t *back = xmalloc(n);
    const char *err = decompress_bytes(COMPRESS_LZMA, want, want_len, back, n);
    CHECK(!err && !memcmp(back, raw, n), "Python's .xz read back: %s", err ? err : "different bytes");
    free(raw), free(want), free(got), free(back);
}
