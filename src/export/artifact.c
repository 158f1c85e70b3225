#include "export/artifact.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export/quant_int8.h"
#include "export/quant_scheme.h"
#include "io/bytes.h"
#include "util.h"

struct Artifact {
    char *path;
    uint32_t version;
    Compressor compression;
    int byte_shuffle;
    char *scheme, *config;
    QuantState state; // the tensor table with its quantized data
    int64_t raw_payload_bytes, compressed_bytes, file_bytes;
};

// Limits that keep a corrupt table from asking for absurd allocations before the checksum is read.
#define MAX_SCHEME_BYTES 256
#define MAX_CONFIG_BYTES (1u << 20)
#define MAX_TENSORS 100000u
#define MAX_DIM (1ll << 40)
// A 16 MB artifact cannot hold a model whose raw payload is anywhere near this.
#define MAX_PAYLOAD_BYTES (1ll << 30)

// The load in progress, so a fuzzer that longjmps out of die() can release it (artifact_abandon_load).
static struct {
    Artifact *a;
    uint8_t *file, *raw;
} g_load;

// ---------------------------------------------------------------- writing

static void put_tensor_data(ByteBuf *b, const QuantTensor *qt) {
    size_t n = (size_t)quant_tensor_numel(qt);
    switch (qt->kind) {
    case QUANT_INT8_ROW:
    case QUANT_ROW_NBIT:
        bb_put(b, qt->q, n);
        bb_put(b, qt->row_scales, 2 * (size_t)qt->shape[0]);
        break;
    case QUANT_INT8_TENSOR:
        bb_put(b, qt->q, n);
        bb_put(b, &qt->scale, 4);
        break;
    case QUANT_FP16: bb_put(b, qt->f16, 2 * n); break;
    case QUANT_FP32: bb_put(b, qt->f32, 4 * n); break;
    }
}

void artifact_save_int8(const char *path, const char *config_text, const TensorList *state, ArtifactCompression comp,
                        ArtifactStats *stats) {
    QuantState qs;
    QuantStats q;
    quant_int8_state(state, &qs, &q);
    artifact_save(path, config_text, QUANT_INT8_SCHEME, &qs, &q, comp, stats);
    quant_state_free(&qs);
}

void artifact_save(const char *path, const char *config_text, const char *scheme, const QuantState *qs_in,
                   const QuantStats *qstats, ArtifactCompression comp, ArtifactStats *stats) {
    const QuantState qs = *qs_in;
    const QuantStats q = *qstats;
    ByteBuf file = {0}, raw = {0};
    bb_put(&file, ARTIFACT_MAGIC, 8);
    bb_put_u32(&file, ARTIFACT_VERSION);
    bb_put_u32(&file, (uint32_t)comp.compressor);
    bb_put_u32(&file, comp.byte_shuffle ? 1u : 0u);
    bb_put_str(&file, scheme);
    bb_put_str(&file, config_text);
    bb_put_u32(&file, (uint32_t)qs.count);
    for (int k = 0; k < qs.count; k++) {
        const QuantTensor *qt = &qs.items[k];
        bb_put_str(&file, qt->name);
        bb_put_u8(&file, (uint8_t)qt->kind);
        if (qt->kind == QUANT_ROW_NBIT) bb_put_u8(&file, (uint8_t)qt->bits);
        bb_put_u8(&file, (uint8_t)qt->ndim);
        for (int d = 0; d < qt->ndim; d++) bb_put_u64(&file, (uint64_t)qt->shape[d]);
        put_tensor_data(&raw, qt);
    }

    if (comp.byte_shuffle) {
        uint8_t *shuffled = xmalloc(raw.len + 1);
        byte_shuffle(raw.data, shuffled, raw.len, 2);
        memcpy(raw.data, shuffled, raw.len);
        free(shuffled);
    }
    size_t clen;
    uint8_t *comp_bytes = compress_bytes(comp.compressor, comp.level, raw.data, raw.len, &clen);
    bb_put_u64(&file, raw.len);
    bb_put_u64(&file, clen);
    bb_put(&file, comp_bytes, clen);
    bb_put_u32(&file, (uint32_t)crc32_z(0, file.data, file.len));
    write_file_atomic(path, file.data, file.len);

    *stats = (ArtifactStats){
        .param_count = q.param_count,
        .num_tensors = q.num_tensors,
        .num_float_tensors = q.num_float_tensors,
        .baseline_tensor_bytes = q.baseline_tensor_bytes,
        .payload_bytes = q.int8_payload_bytes,
        .raw_bytes = (int64_t)(file.len - clen + raw.len),
        .compressed_bytes = (int64_t)clen,
        .file_bytes = (int64_t)file.len,
    };
    free(comp_bytes);
    bb_free(&raw);
    bb_free(&file);
}

// ---------------------------------------------------------------- reading

// Names and the scheme are printable ASCII, which keeps every error message on one line.
static void check_printable(const char *s, const char *path, const char *what) {
    for (const char *c = s; *c; c++)
        if (*c < 0x20 || *c > 0x7e) die("%s: %s contains a non-printable byte 0x%02x", path, what, (unsigned char)*c);
}

// One table entry; returns the tensor's stored payload bytes.
static int64_t read_table_entry(ByteReader *r, const Artifact *a, int index, QuantTensor *qt) {
    const char *path = a->path;
    char *name = br_str(r, TENSOR_NAME_MAX - 1, "tensor name");
    check_printable(name, path, "a tensor name");
    for (int k = 0; k < index; k++)
        if (!strcmp(a->state.items[k].name, name)) die("%s: tensor %s appears twice in the table", path, name);
    memcpy(qt->name, name, strlen(name) + 1);
    free(name);
    uint8_t kind = br_u8(r, "tensor storage kind");
    if (kind < QUANT_INT8_ROW || kind > QUANT_ROW_NBIT) die("%s: tensor %s has unknown storage kind %u", path, qt->name, kind);
    if (kind == QUANT_ROW_NBIT) {
        qt->bits = br_u8(r, "tensor bit width");
        if (qt->bits < 5 || qt->bits > 8) die("%s: tensor %s has bit width %d (5..8)", path, qt->name, qt->bits);
    }
    uint8_t ndim = br_u8(r, "tensor ndim");
    if (ndim > TENSOR_MAX_DIMS) die("%s: tensor %s has %u dimensions (at most %d)", path, qt->name, ndim, TENSOR_MAX_DIMS);
    qt->kind = (QuantKind)kind;
    qt->ndim = ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = br_u64(r, "tensor shape");
        if (dim > (uint64_t)MAX_DIM || (dim > 0 && numel > MAX_DIM / (int64_t)dim))
            die("%s: tensor %s has an implausible shape", path, qt->name);
        qt->shape[d] = (int64_t)dim;
        numel *= (int64_t)dim;
    }
    if ((kind == QUANT_INT8_ROW || kind == QUANT_ROW_NBIT) && (ndim != 2 || qt->shape[0] < 1))
        die("%s: tensor %s is stored per row but is not a matrix with rows", path, qt->name);
    return quant_tensor_bytes(qt);
}

static void read_tensor_data(ByteReader *r, QuantTensor *qt) {
    size_t n = (size_t)quant_tensor_numel(qt);
    switch (qt->kind) {
    case QUANT_INT8_ROW:
    case QUANT_ROW_NBIT:
        qt->q = xmalloc(n);
        memcpy(qt->q, br_take(r, n, "int8 values"), n);
        qt->row_scales = xmalloc(2 * (size_t)qt->shape[0]);
        memcpy(qt->row_scales, br_take(r, 2 * (size_t)qt->shape[0], "row scales"), 2 * (size_t)qt->shape[0]);
        break;
    case QUANT_INT8_TENSOR:
        qt->q = xmalloc(n);
        memcpy(qt->q, br_take(r, n, "int8 values"), n);
        memcpy(&qt->scale, br_take(r, 4, "scale"), 4);
        break;
    case QUANT_FP16:
        qt->f16 = xmalloc(2 * n);
        memcpy(qt->f16, br_take(r, 2 * n, "fp16 values"), 2 * n);
        break;
    case QUANT_FP32:
        qt->f32 = xmalloc(4 * n);
        memcpy(qt->f32, br_take(r, 4 * n, "fp32 values"), 4 * n);
        break;
    }
}

Artifact *artifact_load(const char *path) {
    size_t len;
    uint8_t *file = read_file(path, &len);
    g_load.file = file;
    size_t magic_len = len < 8 ? len : 8;
    if (memcmp(file, ARTIFACT_MAGIC, magic_len)) die("%s: not a pgolf artifact (bad magic, expected %s)", path, ARTIFACT_MAGIC);
    ByteReader r = {file, len, 0, path};
    br_take(&r, 8, "magic");

    Artifact *a = xcalloc(1, sizeof *a);
    g_load.a = a;
    a->path = xstrdup(path);
    a->file_bytes = (int64_t)len;
    a->version = br_u32(&r, "format version");
    if (a->version < 1 || a->version > ARTIFACT_VERSION)
        die("%s: unsupported artifact version %u (this build reads versions 1..%u)", path, a->version, ARTIFACT_VERSION);
    uint32_t comp = br_u32(&r, "compression id");
    if (comp < COMPRESS_ZLIB || comp > COMPRESS_LAST) die("%s: unknown payload compression %u", path, comp);
    a->compression = (Compressor)comp;
    if (a->version >= 2) {
        uint32_t layout = br_u32(&r, "payload layout");
        if (layout > 1) die("%s: unknown payload layout %u", path, layout);
        a->byte_shuffle = (int)layout;
    }
    a->scheme = br_str(&r, MAX_SCHEME_BYTES, "scheme");
    check_printable(a->scheme, path, "the scheme name");
    if (!quant_scheme_known(a->scheme))
        die("%s: unknown quantization scheme \"%s\" (this build reads %s)", path, a->scheme, QUANT_SCHEME_NAMES);
    a->config = br_str(&r, MAX_CONFIG_BYTES, "configuration text");
    uint32_t count = br_u32(&r, "tensor count");
    if (count > MAX_TENSORS) die("%s: implausible tensor count %u", path, count);
    a->state.items = xcalloc(count, sizeof(QuantTensor));
    int64_t expect_raw = 0;
    for (uint32_t k = 0; k < count; k++) {
        a->state.count = (int)k + 1;
        expect_raw += read_table_entry(&r, a, (int)k, &a->state.items[k]);
        if (expect_raw > MAX_PAYLOAD_BYTES) die("%s: implausible payload size (over %lld bytes)", path, MAX_PAYLOAD_BYTES);
    }

    uint64_t raw_len = br_u64(&r, "payload size"), clen = br_u64(&r, "compressed payload size");
    if (raw_len != (uint64_t)expect_raw)
        die("%s: payload size %llu does not match the tensor table (%lld bytes)", path, (unsigned long long)raw_len,
            (long long)expect_raw);
    const uint8_t *payload = br_take(&r, (size_t)clen, "compressed payload");
    uint32_t stored = br_u32(&r, "checksum");
    if (r.pos != len) die("%s: %zu unexpected bytes after the checksum", path, len - r.pos);
    uint32_t crc = (uint32_t)crc32_z(0, file, len - 4);
    if (crc != stored) die("%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt", path, stored, crc);

    uint8_t *raw = xmalloc((size_t)raw_len + 1);
    g_load.raw = raw;
    const char *err = decompress_bytes(a->compression, payload, (size_t)clen, raw, (size_t)raw_len);
    if (err) die("%s: %s decompression failed (%s)", path, compressor_name(a->compression), err);
    if (a->byte_shuffle) {
        uint8_t *plain = xmalloc((size_t)raw_len + 1);
        byte_unshuffle(raw, plain, (size_t)raw_len, 2);
        free(raw);
        raw = g_load.raw = plain;
    }
    ByteReader pr = {raw, (size_t)raw_len, 0, path};
    for (int k = 0; k < a->state.count; k++) read_tensor_data(&pr, &a->state.items[k]);
    a->raw_payload_bytes = (int64_t)raw_len;
    a->compressed_bytes = (int64_t)clen;
    free(raw);
    free(file);
    g_load.a = NULL, g_load.file = g_load.raw = NULL;
    return a;
}

void artifact_abandon_load(void) {
    artifact_free(g_load.a);
    free(g_load.file);
    free(g_load.raw);
    g_load.a = NULL, g_load.file = g_load.raw = NULL;
}

const char *artifact_config_text(const Artifact *a) { return a->config; }
const char *artifact_scheme(const Artifact *a) { return a->scheme; }

static const QuantTensor *find_tensor(const Artifact *a, const char *name) {
    for (int k = 0; k < a->state.count; k++)
        if (!strcmp(a->state.items[k].name, name)) return &a->state.items[k];
    return NULL;
}

void artifact_dequantize_into(const Artifact *a, const TensorList *dst) {
    for (int k = 0; k < dst->count; k++) { // check everything before writing anything
        const TensorView *t = &dst->items[k];
        const QuantTensor *qt = find_tensor(a, t->name);
        if (!qt) die("%s: model tensor %s is not in the artifact (was it written for another configuration?)", a->path, t->name);
        int same = qt->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = qt->shape[d] == t->shape[d];
        if (!same) {
            char s1[128], s2[128];
            die("%s: tensor %s has shape %s in the artifact, model expects %s", a->path, t->name,
                shape_str(s1, sizeof s1, qt->ndim, qt->shape), shape_str(s2, sizeof s2, t->ndim, t->shape));
        }
    }
    for (int k = 0; k < a->state.count; k++)
        if (!tensor_list_find(dst, a->state.items[k].name))
            die("%s: artifact tensor %s is not in the model (was it written for another configuration?)", a->path,
                a->state.items[k].name);
    for (int k = 0; k < dst->count; k++) dequant_int8_tensor(find_tensor(a, dst->items[k].name), dst->items[k].data);
}

void artifact_print_summary(const Artifact *a, FILE *f) {
    int64_t params = 0;
    for (int k = 0; k < a->state.count; k++) params += quant_tensor_numel(&a->state.items[k]);
    fprintf(f, "artifact %s: %s version %u, scheme %s, %s payload%s\n", a->path, ARTIFACT_MAGIC, a->version, a->scheme,
            compressor_name(a->compression), a->byte_shuffle ? " (byte-shuffled)" : "");
    fprintf(f, "tensors: %d, params: %lld\n", a->state.count, (long long)params);
    fprintf(f, "  %-40s %-14s %-30s %10s\n", "name", "shape", "storage", "bytes");
    for (int k = 0; k < a->state.count; k++) {
        const QuantTensor *qt = &a->state.items[k];
        char s[128], kind[48];
        fprintf(f, "  %-40s %-14s %-30s %10lld\n", qt->name, shape_str(s, sizeof s, qt->ndim, qt->shape),
                quant_storage_name(qt, kind), (long long)quant_tensor_bytes(qt));
    }
    fprintf(f, "payload: %lld bytes raw, %lld bytes %s; file: %lld bytes\n", (long long)a->raw_payload_bytes,
            (long long)a->compressed_bytes, compressor_name(a->compression), (long long)a->file_bytes);
    fprintf(f, "config:\n");
    for (const char *line = a->config; *line;) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(f, "  %.*s\n", n, line);
        line += n + (nl ? 1 : 0);
    }
}

void artifact_free(Artifact *a) {
    if (!a) return;
    quant_state_free(&a->state);
    free(a->scheme);
    free(a->config);
    free(a->path);
    free(a);
}
