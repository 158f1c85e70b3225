// SentencePiece models read in C against the `sentencepiece` Python package (tests/ref_spm.py): the
// val_bpb byte tables of train_gpt.py and decoded text, for all four official tokenizers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/spm.h"
#include "io/safetensors.h"
#include "test.h"
#include "util.h"

static const char *const MODELS[] = {"fineweb_1024_bpe", "fineweb_2048_bpe", "fineweb_4096_bpe", "fineweb_8192_bpe"};

static SafeTensors *load_ref(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/spm_ref.safetensors", test_fixture_dir());
    if (file_size(path) < 0) {
        test_fail(__FILE__, __LINE__, "missing %s: run /usr/bin/python3 tests/ref_spm.py --out %s", path, test_fixture_dir());
        return NULL;
    }
    return st_load(path);
}

static const StTensor *ref_tensor(const SafeTensors *ref, const char *model, const char *key) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", model, key);
    const StTensor *t = st_find(ref, name);
    if (!t) test_fail(__FILE__, __LINE__, "fixture lacks %s", name);
    return t;
}

static int64_t ref_meta(const SafeTensors *ref, const char *model, const char *key) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", model, key);
    const char *v = st_meta(ref, name);
    return v ? strtoll(v, NULL, 10) : -1;
}

static SpmModel *load_model(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s.model", test_shared_data(), name);
    return spm_load(path);
}

TEST(spm_byte_tables_match_sentencepiece) {
    SafeTensors *ref = load_ref();
    if (!ref) return;
    for (size_t m = 0; m < sizeof MODELS / sizeof *MODELS; m++) {
        SpmModel *sp = load_model(MODELS[m]);
        int64_t vocab = ref_meta(ref, MODELS[m], "vocab");
        const StTensor *base = ref_tensor(ref, MODELS[m], "base_bytes"), *lead = ref_tensor(ref, MODELS[m], "has_leading_space"),
                       *bound = ref_tensor(ref, MODELS[m], "is_boundary");
        if (!base || !lead || !bound) break;
        CHECK(spm_vocab_size(sp) + 16 == vocab, "%s: vocab %lld", MODELS[m], (long long)spm_vocab_size(sp));
        CHECK(base->numel == vocab, "%s: reference table has %lld entries", MODELS[m], (long long)base->numel);
        int16_t *b = xmalloc(sizeof(int16_t) * (size_t)vocab);
        uint8_t *l = xmalloc((size_t)vocab), *y = xmalloc((size_t)vocab);
        spm_byte_tables(sp, vocab, b, l, y);
        int bad = 0;
        for (int64_t i = 0; i < vocab && bad < 5; i++)
            if (b[i] != base->i[i] || l[i] != lead->i[i] || y[i] != bound->i[i]) {
                bad++;
                test_fail(__FILE__, __LINE__, "%s id %lld: pgolf (%d, %d, %d) vs sentencepiece (%lld, %lld, %lld)", MODELS[m],
                          (long long)i, b[i], l[i], y[i], (long long)base->i[i], (long long)lead->i[i], (long long)bound->i[i]);
            }
        free(b);
        free(l);
        free(y);
        spm_free(sp);
    }
    st_free(ref);
}

TEST(spm_decode_matches_sentencepiece) {
    SafeTensors *ref = load_ref();
    if (!ref) return;
    for (size_t m = 0; m < sizeof MODELS / sizeof *MODELS; m++) {
        SpmModel *sp = load_model(MODELS[m]);
        int64_t count = ref_meta(ref, MODELS[m], "decode_count");
        CHECK(count >= 7, "%s: %lld decode samples", MODELS[m], (long long)count);
        for (int64_t k = 0; k < count; k++) {
            char key[64];
            snprintf(key, sizeof key, "decode.%lld.ids", (long long)k);
            const StTensor *ids = ref_tensor(ref, MODELS[m], key);
            snprintf(key, sizeof key, "decode.%lld.text", (long long)k);
            const StTensor *text = ref_tensor(ref, MODELS[m], key);
            if (!ids || !text) break;
            int32_t *id32 = xmalloc(sizeof(int32_t) * (size_t)(ids->numel + 1));
            for (int64_t i = 0; i < ids->numel; i++) id32[i] = (int32_t)ids->i[i];
            char *want = xmalloc((size_t)text->numel + 1);
            for (int64_t i = 0; i < text->numel; i++) want[i] = (char)text->i[i];
            want[text->numel] = 0;
            char *got = spm_decode(sp, id32, ids->numel);
            CHECK(!strcmp(got, want), "%s sample %lld:\n  pgolf:         \"%s\"\n  sentencepiece: \"%s\"", MODELS[m], (long long)k,
                  got, want);
            free(got);
            free(want);
            free(id32);
        }
        spm_free(sp);
    }
    st_free(ref);
}

static void load_path(void *path) { spm_free(spm_load(path)); }

// A truncated model, a file of another kind and a missing file die naming the file.
TEST(spm_bad_model_files_die) {
    char src[1024];
    snprintf(src, sizeof src, "%s/tokenizers/fineweb_1024_bpe.model", test_shared_data());
    size_t len;
    uint8_t *data = read_file(src, &len);
    const char *dir = test_tmpdir("spm_bad");
    char truncated[1100], garbage[1100];
    snprintf(truncated, sizeof truncated, "%s/truncated.model", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.model", dir);
    write_file_atomic(truncated, data, len / 2);
    write_file_atomic(garbage, "\xff\xff\xff\xff this is not a protobuf", 28);
    CHECK(test_dies_with(load_path, truncated, truncated), "truncated model");
    CHECK(test_dies_with(load_path, garbage, garbage), "garbage model");
    CHECK(test_dies_with(load_path, "/nonexistent.model", "/nonexistent.model"), "missing model");
    free(data);
}

static void check_vocab_512(void *path) {
    SpmModel *sp = spm_load(path);
    spm_check_vocab(sp, 512, path);
}

TEST(spm_vocab_mismatch_dies) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/fineweb_1024_bpe.model", test_shared_data());
    CHECK(test_dies_with(check_vocab_512, path, "VOCAB_SIZE=512 does not match tokenizer vocab_size=1024"), "mismatch");
}
