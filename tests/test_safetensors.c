// safetensors: round trip, the writer's exact bytes, a file written by Python (tests/ref_st.py),
// and every malformed-file case dying with one line that names the file.
#include <dirent.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/export/artifact.h"
#include "../src/io/safetensors.h"
#include "../src/io/torch_file.h"
#include "../src/util.h"
#include "test.h"

static TensorView make_view(const char *name, int ndim, const int64_t *shape, float *data) {
    TensorView v = {.ndim = ndim, .data = data};
    snprintf(v.name, sizeof v.name, "%s", name);
    for (int d = 0; d < ndim; d++) v.shape[d] = shape[d];
    return v;
}

TEST(st_roundtrip) {
    const char *dir = test_tmpdir("st_roundtrip");
    char path[600];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    float w[128], s = -0.75f, v[5] = {1e-30f, -0.0f, 3.5f, 1e30f, -7.25f}, e[1];
    Rng rng;
    rng_seed(&rng, 7);
    for (int k = 0; k < 128; k++) w[k] = (float)rng_normal(&rng);
    TensorView items[4] = {make_view("blocks.0.attn.c_q.weight", 2, (int64_t[]){16, 8}, w),
                           make_view("scalar", 0, NULL, &s), make_view("empty", 2, (int64_t[]){0, 4}, e),
                           make_view("v", 1, (int64_t[]){5}, v)};
    TensorList list = {items, 4};
    const char *keys[] = {"step", "config", "odd"}, *vals[] = {"42", "A=1\nB=two\n", "q\"\\\x01\t\xc3\xa9/"};
    st_save(path, &list, keys, vals, 3);

    SafeTensors *st = st_load(path);
    CHECK(st_count(st) == 4, "count %d", st_count(st));
    for (int k = 0; k < 4 && k < st_count(st); k++) {
        CHECK(!strcmp(st_name(st, k), items[k].name), "name %d: %s", k, st_name(st, k));
        const StTensor *t = st_find(st, items[k].name);
        CHECK(t && t->dtype == ST_F32 && t->ndim == items[k].ndim, "%s: dtype/ndim", items[k].name);
        if (!t) continue;
        CHECK(t->numel == tensor_numel(&items[k]), "%s: numel", items[k].name);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == items[k].shape[d], "%s: shape", items[k].name);
        CHECK(!memcmp(t->f, items[k].data, sizeof(float) * (size_t)t->numel), "%s: values", items[k].name);
    }
    for (int k = 0; k < 3; k++) CHECK(st_meta(st, keys[k]) && !strcmp(st_meta(st, keys[k]), vals[k]), "meta %s", keys[k]);
    CHECK(!st_meta(st, "absent") && !st_find(st, "absent"), "absent names");
    for (int k = 0; k < 3; k++) { // the same values from the header alone
        char *v = st_read_meta(path, keys[k]);
        CHECK(v && !strcmp(v, vals[k]), "st_read_meta %s: %s", keys[k], v ? v : "(null)");
        free(v);
    }
    CHECK(!st_read_meta(path, "absent"), "st_read_meta of an absent key");
    float back[128];
    TensorView dst = make_view("blocks.0.attn.c_q.weight", 2, (int64_t[]){16, 8}, back);
    st_copy_into(st, &dst, path);
    CHECK(!memcmp(back, w, sizeof w), "st_copy_into values");
    st_free(st);
}

// The writer's exact output: compact JSON, metadata first, data 8-aligned (huggingface's layout,
// which tests/refio.py also writes).
TEST(st_writer_bytes) {
    const char *dir = test_tmpdir("st_writer_bytes");
    char path[600];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float a[2] = {1.0f, -2.0f}, b = 0.5f;
    TensorView items[2] = {make_view("a", 1, (int64_t[]){2}, a), make_view("b.c", 0, NULL, &b)};
    TensorList list = {items, 2};
    const char *keys[] = {"k"}, *vals[] = {"v\"q"};
    st_save(path, &list, keys, vals, 1);

    const char *json = "{\"__metadata__\":{\"k\":\"v\\\"q\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b.c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}";
    size_t n = strlen(json), padded = n + (8 - (8 + n) % 8) % 8;
    uint8_t expect[512];
    uint64_t n64 = padded;
    memcpy(expect, &n64, 8);
    memcpy(expect + 8, json, n);
    memset(expect + 8 + n, ' ', padded - n);
    memcpy(expect + 8 + padded, a, 8);
    memcpy(expect + 16 + padded, &b, 4);
    size_t len;
    uint8_t *got = read_file(path, &len);
    CHECK(len == 20 + padded, "file is %zu bytes, expected %zu", len, 20 + padded);
    CHECK(len == 20 + padded && !memcmp(got, expect, len), "bytes differ: header %.*s", (int)(len > 8 ? len - 8 : 0),
          (const char *)got + 8);
    free(got);
}

static char *fixture(const char *file) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_fixture_dir(), file);
    if (file_size(path) < 0) {
        test_fail(__FILE__, __LINE__, "missing %s: run /usr/bin/python3 tests/ref_st.py --out %s", path,
                  test_fixture_dir());
        return NULL;
    }
    return path;
}

static const StTensor *expect_tensor(const SafeTensors *st, const char *name, StDtype dtype, int ndim,
                                     const int64_t *shape) {
    const StTensor *t = st_find(st, name);
    CHECK(t != NULL, "%s missing", name);
    if (!t) return NULL;
    CHECK(t->dtype == dtype, "%s: dtype %s", name, st_dtype_name(t->dtype));
    CHECK(t->ndim == ndim, "%s: ndim %d", name, t->ndim);
    for (int d = 0; d < ndim && d < t->ndim; d++) CHECK(t->shape[d] == shape[d], "%s: shape[%d]", name, d);
    return t;
}

// Values are what tests/ref_st.py stores, written here independently (fp16/bf16 roundings by hand).
TEST(st_reads_python_file) {
    char *path = fixture("st_ref.safetensors");
    if (!path) return;
    SafeTensors *st = st_load(path);
    CHECK(st_count(st) == 8, "count %d", st_count(st));
    CHECK(!strcmp(st_name(st, 0), "f32.mat") && !strcmp(st_name(st, 7), "blocks.0.attn.c_q.weight"), "header order");
    const StTensor *t = expect_tensor(st, "f32.mat", ST_F32, 2, (int64_t[]){3, 4});
    for (int k = 0; t && k < 12; k++) CHECK(t->f[k] == k * 0.25f - 1.5f, "f32.mat[%d] = %g", k, t->f[k]);
    const float f16[] = {1.0f, -2.5f, 0.0999755859375f, 65504.0f, 0x1p-24f};
    t = expect_tensor(st, "f16.vec", ST_F16, 1, (int64_t[]){5});
    for (int k = 0; t && k < 5; k++) CHECK(t->f[k] == f16[k], "f16.vec[%d] = %.10g", k, t->f[k]);
    const float bf16[] = {1.0f, -3.140625f, 0.10009765625f, 0x1p100f};
    t = expect_tensor(st, "bf16.vec", ST_BF16, 1, (int64_t[]){4});
    for (int k = 0; t && k < 4; k++) CHECK(t->f[k] == bf16[k], "bf16.vec[%d] = %.10g", k, t->f[k]);
    const int64_t i32[] = {-7, 0, 2147483647};
    t = expect_tensor(st, "i32.vec", ST_I32, 1, (int64_t[]){3});
    for (int k = 0; t && k < 3; k++) CHECK(t->i[k] == i32[k] && !t->f, "i32.vec[%d] = %lld", k, (long long)t->i[k]);
    t = expect_tensor(st, "i64.scalar", ST_I64, 0, NULL);
    CHECK(t && t->numel == 1 && t->i[0] == (1ll << 40) + 5, "i64.scalar");
    const int64_t i8[] = {-128, -1, 0, 127};
    t = expect_tensor(st, "i8.mat", ST_I8, 2, (int64_t[]){2, 2});
    for (int k = 0; t && k < 4; k++) CHECK(t->i[k] == i8[k], "i8.mat[%d] = %lld", k, (long long)t->i[k]);
    t = expect_tensor(st, "f32.empty", ST_F32, 2, (int64_t[]){0, 3});
    CHECK(t && t->numel == 0, "f32.empty numel");
    CHECK(st_meta(st, "step") && !strcmp(st_meta(st, "step"), "123"), "meta step");
    const char *note = "quote \" backslash \\ newline \n tab \t e-acute \xc3\xa9 smile \xf0\x9f\x99\x82";
    CHECK(st_meta(st, "note") && !strcmp(st_meta(st, "note"), note), "meta note: %s", st_meta(st, "note"));
    st_free(st);
}

// ---------------------------------------------------------------- errors

typedef struct {
    const char *path;
    const char *name;
    int ndim;
    int64_t shape[2];
} CopyCase;

static void copy_case(void *arg) {
    const CopyCase *c = arg;
    float buf[64];
    SafeTensors *st = st_load(c->path);
    TensorView v = make_view(c->name, c->ndim, c->shape, buf);
    st_copy_into(st, &v, c->path);
}

TEST(st_copy_into_errors) {
    char *path = fixture("st_ref.safetensors");
    if (!path) return;
    char expect[1024];
    CopyCase shape = {path, "blocks.0.attn.c_q.weight", 2, {3, 2}};
    snprintf(expect, sizeof expect, "checkpoint %s: tensor blocks.0.attn.c_q.weight has shape [2, 3], model expects [3, 2]",
             path);
    CHECK(test_dies_with(copy_case, &shape, expect), "shape mismatch");
    CopyCase rank = {path, "blocks.0.attn.c_q.weight", 1, {6}};
    snprintf(expect, sizeof expect, "has shape [2, 3], model expects [6]");
    CHECK(test_dies_with(copy_case, &rank, expect), "rank mismatch");
    CopyCase missing = {path, "blocks.1.attn.c_q.weight", 2, {2, 3}};
    snprintf(expect, sizeof expect, "checkpoint %s: tensor blocks.1.attn.c_q.weight is missing", path);
    CHECK(test_dies_with(copy_case, &missing, expect), "missing tensor");
    CopyCase ints = {path, "i32.vec", 1, {3}};
    CHECK(test_dies_with(copy_case, &ints, "tensor i32.vec has dtype I32, model expects a float tensor"), "int dtype");
}

static void save_duplicate(void *arg) {
    float x[2] = {0};
    TensorView items[2] = {make_view("w", 1, (int64_t[]){2}, x), make_view("w", 1, (int64_t[]){2}, x)};
    TensorList list = {items, 2};
    st_save(arg, &list, NULL, NULL, 0);
}

TEST(st_save_rejects_duplicate_names) {
    const char *dir = test_tmpdir("st_save_dup");
    char path[600];
    snprintf(path, sizeof path, "%s/d.safetensors", dir);
    CHECK(test_dies_with(save_duplicate, path, "two tensors are named w"), "duplicate names");
}

// One malformed file: header text, data buffer length, and the message expected after "<path>: ".
typedef struct {
    const char *header;
    int buf_len;
    const char *expect;
} BadCase;

static const BadCase BAD_CASES[] = {
    {"[1,2]", 0, "bad safetensors header: header is not a JSON object"},
    {"{\"a\":", 0, "bad safetensors header: unexpected end of header"},
    {"{\"a\":{}} x", 0, "bad safetensors header: trailing characters"},
    {"{\"a\" 1}", 0, "bad safetensors header: expected ':' after a key"},
    {"{\"a\":1,}", 0, "bad safetensors header: expected a string key"},
    {"{\"a\":1 \"b\":2}", 0, "bad safetensors header: expected ',' or '}'"},
    {"{\"a\":[1 2]}", 0, "bad safetensors header: expected ',' or ']'"},
    {"{\"a\\q\":1}", 0, "bad safetensors header: bad escape in a string"},
    {"{\"a\\u12G4\":1}", 0, "bad safetensors header: bad \\u escape"},
    {"{\"a\\ud800\":1}", 0, "bad safetensors header: unpaired high surrogate"},
    {"{\"a\\udc00\":1}", 0, "bad safetensors header: unpaired low surrogate"},
    {"{\"a\\u0000\":1}", 0, "bad safetensors header: \\u0000 in a string"},
    {"{\"a\":\"x", 0, "bad safetensors header: unterminated string"},
    {"{\"a\":\"x\ty\"}", 0, "bad safetensors header: control character in a string"},
    {"{\"a\":-}", 0, "bad safetensors header: bad number"},
    {"{\"a\":1.}", 0, "bad safetensors header: bad number"},
    {"{\"a\":1e+}", 0, "bad safetensors header: bad number"},
    {"{\"a\":tru}", 0, "bad safetensors header: unexpected character"},
    {"{\"a\":@}", 0, "bad safetensors header: unexpected character"},
    {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     0, "bad safetensors header: nested too deeply"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"a\":1}", 0,
     "bad safetensors header: duplicate key \"a\""},
    {"{\"a\":1}", 0, "tensor a: header entry is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "tensor a: unknown field \"x\""},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor a: missing or non-string \"dtype\""},
    {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor a: missing or non-string \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor a: missing or non-array \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor a: \"data_offsets\" must be an array [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8,
     "tensor a: \"data_offsets\" must be an array [begin, end]"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "tensor a has dtype F64"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "tensor a: shape must hold non-negative integers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "tensor a: shape must hold non-negative integers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8,
     "tensor a: data_offsets must hold non-negative integers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "tensor a has 5 dimensions"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
     "tensor a: shape is too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
     "tensor a: data_offsets [0, 16] lie outside the 8-byte data buffer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
     "tensor a: data_offsets [8, 0] lie outside the 8-byte data buffer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor a: F32 [3] needs 12 bytes but data_offsets span 8"},
    {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 4, "tensor a: BF16 [2, 2] needs 8 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[4,12]}}",
     12, "tensor b: data_offsets begin at 4 but the previous tensor ends at 8 (overlap)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[0,8]}}",
     20, "tensor a: data_offsets begin at 12 but the previous tensor ends at 8 (gap)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
     "the data buffer has 12 bytes but the tensors cover 8"},
    {"{\"__metadata__\":[1]}", 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of \"k\" is not a string"},
};

typedef struct {
    const char *path;
} LoadArg;

static void load_case(void *arg) { st_load(((LoadArg *)arg)->path); }

static void write_case(const char *path, uint64_t header_len, const char *header, size_t n_header, size_t buf_len) {
    uint8_t *bytes = calloc(1, 8 + n_header + buf_len);
    memcpy(bytes, &header_len, 8);
    memcpy(bytes + 8, header, n_header);
    write_file_atomic(path, bytes, 8 + n_header + buf_len);
    free(bytes);
}

TEST(st_malformed_files_die_cleanly) {
    const char *dir = test_tmpdir("st_malformed");
    char path[600], expect[1024];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    LoadArg arg = {path};
    // the well-formed variant loads (so the cases below fail for the reason they name)
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_case(path, strlen(good), good, strlen(good), 8);
    st_free(st_load(path));
    for (size_t k = 0; k < sizeof BAD_CASES / sizeof BAD_CASES[0]; k++) {
        const BadCase *c = &BAD_CASES[k];
        write_case(path, strlen(c->header), c->header, strlen(c->header), (size_t)c->buf_len);
        snprintf(expect, sizeof expect, "%s: %s", path, c->expect);
        CHECK(test_dies_with(load_case, &arg, expect), "case %zu: %s", k, c->header);
    }
    write_file_atomic(path, "\x05\0\0\0\0", 5);
    snprintf(expect, sizeof expect, "%s: not a safetensors file (5 bytes, need at least 8)", path);
    CHECK(test_dies_with(load_case, &arg, expect), "short file");
    write_case(path, 1000, "{}", 2, 10);
    snprintf(expect, sizeof expect, "%s: header length 1000 runs past the end of the 20-byte file", path);
    CHECK(test_dies_with(load_case, &arg, expect), "header length beyond the file");
    write_case(path, 8, "{\"a\":\0}", 8, 0);
    snprintf(expect, sizeof expect, "%s: bad safetensors header: unexpected character", path);
    CHECK(test_dies_with(load_case, &arg, expect), "NUL in the header");
    CHECK(test_dies_with(load_case, &(LoadArg){"build/tmp/st_malformed/absent.safetensors"}, "cannot open"),
          "missing file");
}

// A reader that dies on a bad file has closed it first: the fuzzers and this runner go on after die(),
// and a descriptor left per rejected file ran a long fuzzing job out of them.
static jmp_buf g_reader_died;
static void reader_died(const char *msg) {
    (void)msg;
    longjmp(g_reader_died, 1);
}

static int open_descriptors(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static int dies_reading(void (*reader)(const char *), const char *path) { // its own frame for the setjmp
    if (setjmp(g_reader_died)) return 1;
    reader(path);
    return 0;
}

static void read_meta(const char *path) { free(st_read_meta(path, "pgolf_config")); }
static void load_st(const char *path) { st_free(st_load(path)); }
static void load_torch(const char *path) { st_free(torch_file_load(path, NULL)); }
static void load_artifact(const char *path) { artifact_free(artifact_load(path)); }

TEST(readers_close_their_file_when_they_die) {
    const char *dir = test_tmpdir("readers_die");
    struct {
        const char *name, *bytes;
        size_t len;
    } bad[] = {{"short.bin", "abc", 3},
               {"long_header.bin", "\xff\xff\x00\x00\x00\x00\x00\x00{}", 10},
               {"bad_json.bin", "\x02\x00\x00\x00\x00\x00\x00\x00[]", 10}};
    void (*readers[])(const char *) = {read_meta, load_st, load_torch, load_artifact};
    int before = open_descriptors(), deaths = 0;
    DieHook runner = die_set_hook(reader_died);
    for (int b = 0; b < 3; b++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, bad[b].name);
        write_file_atomic(path, bad[b].bytes, bad[b].len);
        for (int r = 0; r < 4; r++) deaths += dies_reading(readers[r], path);
    }
    die_set_hook(runner);
    CHECK(deaths == 12, "%d of 12 bad reads died", deaths);
    CHECK(before > 0 && open_descriptors() == before, "%d descriptors open before, %d after", before, open_descriptors());
}
