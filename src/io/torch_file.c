#include "io/torch_file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/compress.h"
#include "io/bytes.h"
#include "io/pickle.h"
#include "io/zip_stored.h"
#include "util.h"

#define MAX_INFLATED ((size_t)1 << 34)  // 16 GiB: far above any artifact's payload, still a bound
#define MAX_ELEMENTS ((int64_t)1 << 40) // per tensor and storage

// How the file stores one tensor, for `pgolf inspect`.
typedef struct {
    char storage[64];
    int64_t bytes;
} StoredAs;

typedef struct {
    const char *path;
    const ZipArchive *zip;
    char prefix[256]; // "<archive>/", the folder holding data.pkl
    int want_stored;  // a summary asks how each tensor is stored:
    StoredAs *stored; // then per output tensor (else NULL)
} TorchFile;

// torch.save names storages by their legacy classes, also for torch 2's typed storages.
static const struct {
    const char *global;
    StDtype dtype;
} STORAGES[] = {{"torch.FloatStorage", ST_F32}, {"torch.HalfStorage", ST_F16}, {"torch.BFloat16Storage", ST_BF16},
                {"torch.CharStorage", ST_I8},   {"torch.IntStorage", ST_I32},  {"torch.LongStorage", ST_I64}};

// ---------------------------------------------------------------- tensors

static const char *short_dtype(StDtype d) {
    static const char *names[] = {[ST_F32] = "fp32", [ST_F16] = "fp16", [ST_BF16] = "bf16",
                                  [ST_I8] = "int8",  [ST_I32] = "int32", [ST_I64] = "int64"};
    return names[d];
}

static void note_stored(const TorchFile *tf, int k, int64_t bytes, const char *fmt, ...) PG_PRINTF(4, 5);
static void note_stored(const TorchFile *tf, int k, int64_t bytes, const char *fmt, ...) {
    if (!tf->stored) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tf->stored[k].storage, sizeof tf->stored[k].storage, fmt, ap);
    va_end(ap);
    tf->stored[k].bytes = bytes;
}

static int64_t tensor_bytes(const StTensor *t) { return t->numel * st_dtype_size(t->dtype); }

// The n output tensors (and their storage notes, if wanted).
static StTensor *alloc_outputs(TorchFile *tf, int n) {
    if (tf->want_stored) tf->stored = xcalloc((size_t)n + 1, sizeof(StoredAs));
    return xcalloc((size_t)n + 1, sizeof(StTensor));
}

static const char *describe(const PkValue *v, char *buf, size_t n) {
    if (v->type == PK_CALL && v->items[0]->type == PK_GLOBAL) snprintf(buf, n, "a call of %s", v->items[0]->s);
    else snprintf(buf, n, "a %s", pk_type_name(v->type));
    return buf;
}

static int64_t size_arg(const TorchFile *tf, const PkValue *v, const char *name, const char *what) {
    if (v->type != PK_INT || v->i < 0 || v->i > MAX_ELEMENTS)
        die("%s: tensor %s: its %s is not an integer in [0, 2^40]", tf->path, name, what);
    return v->i;
}

static StDtype storage_dtype(const TorchFile *tf, const PkValue *type, const char *name) {
    for (size_t k = 0; k < sizeof STORAGES / sizeof *STORAGES; k++)
        if (pk_is_global(type, STORAGES[k].global)) return STORAGES[k].dtype;
    die("%s: tensor %s: storage %s is not supported (float32, float16, bfloat16, int8, int32 or int64)", tf->path,
        name, type->type == PK_GLOBAL ? type->s : "of no class");
}

// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]), the
// storage a persistent id ('storage', class, key, location, numel) whose bytes are <archive>/data/<key>.
// nn.Parameter's _rebuild_parameter(tensor, ...) wraps one.
static StTensor read_tensor(const TorchFile *tf, const char *name, const PkValue *v) {
    char buf[160];
    if (v->type == PK_CALL && pk_is_global(v->items[0], "torch._utils._rebuild_parameter") && v->items[1]->n >= 1)
        v = v->items[1]->items[0];
    if (v->type != PK_CALL || !pk_is_global(v->items[0], "torch._utils._rebuild_tensor_v2") || v->items[1]->n < 4)
        die("%s: %s is not a tensor (%s)", tf->path, name, describe(v, buf, sizeof buf));
    PkValue **args = v->items[1]->items;
    const PkValue *id = args[0]->type == PK_PERSID ? args[0]->items[0] : NULL;
    if (!id || id->type != PK_TUPLE || id->n != 5 || !pk_is_str(id->items[0], "storage") || id->items[2]->type != PK_STR)
        die("%s: tensor %s: its storage is not a torch.save storage reference", tf->path, name);
    StTensor t = {.name = xstrdup(name), .dtype = storage_dtype(tf, id->items[1], name)};
    int64_t storage_numel = size_arg(tf, id->items[4], name, "storage size");
    int64_t offset = size_arg(tf, args[1], name, "storage offset"), stride[TENSOR_MAX_DIMS];
    const PkValue *size = args[2], *strides = args[3];
    if (size->type != PK_TUPLE || strides->type != PK_TUPLE || size->n != strides->n || size->n > TENSOR_MAX_DIMS)
        die("%s: tensor %s: its size and stride are not tuples of the same length (at most %d)", tf->path, name,
            TENSOR_MAX_DIMS);
    t.ndim = (int)size->n;
    int64_t numel = 1, last = offset, contiguous = 1; // last: the highest storage element the view reads
    for (int d = t.ndim - 1; d >= 0; d--) {
        t.shape[d] = size_arg(tf, size->items[d], name, "size");
        stride[d] = size_arg(tf, strides->items[d], name, "stride");
        if (t.shape[d] > 1 && stride[d] != contiguous) contiguous = -1;
        if (contiguous > 0) contiguous *= t.shape[d];
        if (t.shape[d] && numel > MAX_ELEMENTS / t.shape[d]) die("%s: tensor %s has more than 2^40 elements", tf->path, name);
        numel *= t.shape[d];
        if (t.shape[d] > 1 && stride[d] && t.shape[d] - 1 > (INT64_MAX - last) / stride[d])
            die("%s: tensor %s: its view overflows", tf->path, name);
        if (t.shape[d]) last += (t.shape[d] - 1) * stride[d];
    }
    t.numel = numel;
    if (numel && last >= storage_numel)
        die("%s: tensor %s: its view reaches element %lld of a %lld-element storage", tf->path, name, (long long)last,
            (long long)storage_numel);
    char key[512];
    snprintf(key, sizeof key, "%sdata/%s", tf->prefix, id->items[2]->s);
    const ZipEntry *e = zip_find(tf->zip, key);
    if (!e) die("%s: tensor %s: its storage %s is missing", tf->path, name, key);
    int es = st_dtype_size(t.dtype);
    if (e->size != (uint64_t)storage_numel * (uint64_t)es)
        die("%s: tensor %s: storage %s holds %llu bytes, not %lld %s elements", tf->path, name, key,
            (unsigned long long)e->size, (long long)storage_numel, st_dtype_name(t.dtype));
    if (contiguous >= 0) {
        st_convert(&t, e->data + offset * es);
        return t;
    }
    uint8_t *bytes = xmalloc((size_t)(numel * es));
    int64_t idx[TENSOR_MAX_DIMS] = {0};
    for (int64_t k = 0; k < numel; k++) {
        int64_t at = offset;
        for (int d = 0; d < t.ndim; d++) at += idx[d] * stride[d];
        memcpy(bytes + k * es, e->data + at * es, (size_t)es);
        for (int d = t.ndim - 1; d >= 0 && ++idx[d] == t.shape[d]; d--) idx[d] = 0;
    }
    st_convert(&t, bytes);
    free(bytes);
    return t;
}

static int read_state_dict(TorchFile *tf, const PkValue *d, StTensor **out) {
    int n = (int)(d->n / 2);
    *out = alloc_outputs(tf, n);
    for (int k = 0; k < n; k++) {
        const PkValue *key = d->items[2 * k], *value = d->items[2 * k + 1];
        if (key->type != PK_STR) die("%s: the state_dict has a key that is not a string", tf->path);
        char buf[160];
        if (value->type != PK_CALL) // e.g. a record's own export object, {"w": ..., "m": ...}
            die("%s: entry %s is %s, not a tensor: pgolf reads state_dicts and train_gpt.py's int8_clean_per_row_v1 "
                "export only", tf->path, key->s, describe(value, buf, sizeof buf));
        (*out)[k] = read_tensor(tf, key->s, value);
        note_stored(tf, k, tensor_bytes(&(*out)[k]), "%s", short_dtype((*out)[k].dtype));
    }
    return n;
}

// ---------------------------------------------------------------- train_gpt.py's int8 export

static const PkValue *dict_field(const TorchFile *tf, const PkValue *obj, const char *key, int required) {
    const PkValue *v = pk_dict_get(obj, key);
    if ((v || required) && (!v || v->type != PK_DICT))
        die("%s: the int8 export's \"%s\" is %s", tf->path, key, v ? "not a dict" : "missing");
    return v;
}

static StDtype dtype_named(const TorchFile *tf, const PkValue *v, const char *name) {
    if (v && pk_is_str(v, "float32")) return ST_F32;
    if (v && pk_is_str(v, "bfloat16")) return ST_BF16;
    if (v && pk_is_str(v, "float16")) return ST_F16;
    die("%s: tensor %s: its dtype is %s (float32, bfloat16 or float16 expected)", tf->path, name,
        v && v->type == PK_STR ? v->s : "not a string");
}

// `.to(dtype)` of float values: rounded to the nearest bf16 / fp16 (ties to even).
static void round_to(const TorchFile *tf, StTensor *t, StDtype dtype) {
    if (!t->f) die("%s: tensor %s is %s, not a float tensor", tf->path, t->name, st_dtype_name(t->dtype));
    for (int64_t k = 0; k < t->numel; k++)
        if (dtype == ST_BF16) t->f[k] = bf16_round(t->f[k]);
        else if (dtype == ST_F16) t->f[k] = f16_to_f32(f32_to_f16(t->f[k]));
    t->dtype = dtype;
}

static void st_tensor_free(StTensor *t) {
    free(t->name);
    free(t->f);
    free(t->i);
}

// Both exports' arithmetic: q * scale in float32, one scale per row (scale [rows]) or one for the tensor; the
// int8 values and float scale are read as the tensor `name` for errors. Output tensor k, stored as `label`.
static StTensor dequantize(const TorchFile *tf, int k, const char *name, const char *label, const PkValue *qv,
                           const PkValue *sv, int per_row) {
    StTensor q = read_tensor(tf, name, qv), s = read_tensor(tf, name, sv);
    if (q.dtype != ST_I8) die("%s: quantized tensor %s is %s, not int8", tf->path, name, st_dtype_name(q.dtype));
    if (!s.f) die("%s: tensor %s: its scale is %s, not float", tf->path, name, st_dtype_name(s.dtype));
    per_row |= s.ndim > 0;
    if (per_row && (q.ndim == 0 || s.numel != q.shape[0]))
        die("%s: tensor %s: %lld row scales for %lld rows", tf->path, name, (long long)s.numel,
            (long long)(q.ndim ? q.shape[0] : 0));
    if (!per_row && s.numel != 1)
        die("%s: tensor %s: a per-tensor scale of %lld values", tf->path, name, (long long)s.numel);
    StTensor o = {.name = xstrdup(name), .dtype = ST_F32, .ndim = q.ndim, .numel = q.numel};
    memcpy(o.shape, q.shape, sizeof o.shape);
    o.f = xmalloc(sizeof(float) * (size_t)(q.numel ? q.numel : 1));
    int64_t row = per_row && q.shape[0] ? q.numel / q.shape[0] : 1;
    for (int64_t i = 0; i < q.numel; i++) o.f[i] = (float)q.i[i] * s.f[per_row ? i / row : 0];
    note_stored(tf, k, tensor_bytes(&q) + tensor_bytes(&s), "%s per-%s + %s scale%s", label, per_row ? "row" : "tensor",
                short_dtype(s.dtype), per_row ? "s" : "");
    st_tensor_free(&q);
    st_tensor_free(&s);
    return o;
}

// dequantize_state_dict_int8: q * scale per row (scale [rows], or qmeta's "per_row") or q * one scale, in
// float32, then .to(dtypes[name]); passthrough tensors back to passthrough_orig_dtypes[name] where given.
static int dequantize_int8(TorchFile *tf, const PkValue *obj, StTensor **out) {
    const PkValue *quantized = dict_field(tf, obj, "quantized", 1), *scales = dict_field(tf, obj, "scales", 1);
    const PkValue *dtypes = dict_field(tf, obj, "dtypes", 1), *passthrough = dict_field(tf, obj, "passthrough", 1);
    const PkValue *qmeta = dict_field(tf, obj, "qmeta", 0), *orig = dict_field(tf, obj, "passthrough_orig_dtypes", 0);
    int nq = (int)(quantized->n / 2), np = (int)(passthrough->n / 2);
    *out = alloc_outputs(tf, nq + np);
    for (int k = 0; k < nq; k++) {
        const PkValue *key = quantized->items[2 * k];
        if (key->type != PK_STR) die("%s: the int8 export has a key that is not a string", tf->path);
        const char *name = key->s;
        const PkValue *sv = pk_dict_get(scales, name), *meta = qmeta ? pk_dict_get(qmeta, name) : NULL;
        if (!sv) die("%s: quantized tensor %s has no scale", tf->path, name);
        const PkValue *scheme = meta && meta->type == PK_DICT ? pk_dict_get(meta, "scheme") : NULL;
        (*out)[k] = dequantize(tf, k, name, "int8", quantized->items[2 * k + 1], sv, scheme && pk_is_str(scheme, "per_row"));
        round_to(tf, &(*out)[k], dtype_named(tf, pk_dict_get(dtypes, name), name));
    }
    for (int k = 0; k < np; k++) {
        const PkValue *key = passthrough->items[2 * k];
        if (key->type != PK_STR) die("%s: the int8 export has a key that is not a string", tf->path);
        StTensor *t = &(*out)[nq + k];
        *t = read_tensor(tf, key->s, passthrough->items[2 * k + 1]);
        note_stored(tf, nq + k, tensor_bytes(t), "%s", short_dtype(t->dtype));
        const PkValue *to = orig ? pk_dict_get(orig, key->s) : NULL;
        if (to && to->type == PK_STR) round_to(tf, t, dtype_named(tf, to, key->s)); // the reference skips non-strings
    }
    return nq + np;
}

// ---------------------------------------------------------------- the records' mixed int6 export

// The dtype a record's model holds a tensor in: it is .bfloat16() with CastedLinear weights and low-dim and
// control tensors restored to fp32, which leaves its embedding tables (tok_emb, bigram.embed,
// ve_shared.embed) in bf16.
static StDtype record_dtype(const char *name) {
    size_t n = strlen(name);
    int emb = (n >= 14 && !strcmp(name + n - 14, "tok_emb.weight")) || (n >= 13 && !strcmp(name + n - 13, ".embed.weight"));
    return emb ? ST_BF16 : ST_F32;
}

// mixed_quantize_int6's {"w": tensors, "m": meta} (#638, #1435; #2005's gptq_mixed_quantize): a
// "passthrough" m[name] ("passthrough_ctrl", "passthrough (float16)", ...) keeps w[name], an fp16 copy of
// a float tensor back in the model's dtype; any other ({"type": "int6"}, "gptq (int6)", ...) has
// w[name.q] * w[name.scale] per row or per tensor, in the model's dtype. dequantize_mixed_int6 takes those
// dtypes from the live model; the file does not hold them, so they come from record_dtype.
static int dequantize_mixed(TorchFile *tf, const PkValue *w, const PkValue *m, StTensor **out) {
    int n = (int)(m->n / 2);
    *out = alloc_outputs(tf, n);
    for (int k = 0; k < n; k++) {
        const PkValue *key = m->items[2 * k], *info = m->items[2 * k + 1];
        if (key->type != PK_STR) die("%s: the export's meta has a key that is not a string", tf->path);
        const char *name = key->s;
        char qn[4200], sn[4200];
        snprintf(qn, sizeof qn, "%s.q", name);
        snprintf(sn, sizeof sn, "%s.scale", name);
        const PkValue *tv = pk_dict_get(w, name), *qv = pk_dict_get(w, qn), *sv = pk_dict_get(w, sn);
        StTensor *t = &(*out)[k];
        // Python's `"passthrough" in info`: a substring of a string, a key of a dict
        int passthrough = info->type == PK_STR ? strstr(info->s, "passthrough") != NULL
                          : info->type == PK_DICT ? pk_dict_get(info, "passthrough") != NULL
                                                  : -1;
        if (passthrough < 0)
            die("%s: tensor %s: its meta is a %s, not a string or a dict", tf->path, name, pk_type_name(info->type));
        if (passthrough) {
            if (!tv) die("%s: tensor %s is missing from the export's \"w\"", tf->path, name);
            *t = read_tensor(tf, name, tv);
            note_stored(tf, k, tensor_bytes(t), "%s", short_dtype(t->dtype));
            if (t->dtype == ST_F16) round_to(tf, t, record_dtype(name));
        } else {
            if (!qv || !sv) die("%s: tensor %s: %s or %s is missing from the export's \"w\"", tf->path, name, qn, sn);
            const PkValue *type = info->type == PK_DICT ? pk_dict_get(info, "type") : info;
            *t = dequantize(tf, k, name, type && type->type == PK_STR ? type->s : "quantized", qv, sv, 0);
            round_to(tf, t, record_dtype(name));
        }
    }
    return n;
}

// ---------------------------------------------------------------- the file

static int starts_torch_zip(const uint8_t *p, size_t n) { return n >= 4 && (!memcmp(p, "PK\3\4", 4) || !memcmp(p, "BSHF", 4)); }

#define SNIFF_BYTES ((size_t)1 << 16) // enough of a brotli stream to decode its first bytes

// What a file starting with h[0..got) is (got: up to SNIFF_BYTES).
static TorchFileKind kind_of(const uint8_t *h, size_t got) {
    uint8_t head[8];
    if (got >= 9 && h[8] == '{') return TORCH_NONE; // safetensors: a header length, then its JSON
    if (starts_torch_zip(h, got)) return TORCH_ZIP;
    if (got >= 4 && !memcmp(h, "\x28\xb5\x2f\xfd", 4)) return TORCH_ZSTD;
    if (got >= 6 && !memcmp(h, "\xfd" "7zXZ\0", 6)) return TORCH_XZ;
    if (got >= 2 && h[0] == 0x78 && (h[0] << 8 | h[1]) % 31 == 0) return TORCH_ZLIB;
    return starts_torch_zip(head, brotli_head(h, got, head, sizeof head)) ? TORCH_BROTLI : TORCH_NONE;
}

TorchFileKind torch_file_sniff(const char *path) {
    static uint8_t h[SNIFF_BYTES];
    FILE *f = xfopen(path, "rb");
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    return kind_of(h, got);
}

// #1435's byte shuffle: "BSHF", the stride, then the shuffled bytes (a stride below 2: as they are).
static uint8_t *unshuffle_bshf(uint8_t *data, size_t *len, int *stride_out) {
    if (*len < 5 || memcmp(data, "BSHF", 4)) return NULL;
    int stride = *stride_out = data[4];
    size_t n = *len - 5;
    uint8_t *plain = xmalloc(n ? n : 1);
    if (stride >= 2) byte_unshuffle(data + 5, plain, n, stride);
    else memcpy(plain, data + 5, n);
    *len = n;
    return plain;
}

typedef enum { OBJECT_STATE_DICT, OBJECT_INT8, OBJECT_MIXED } TorchObject;

// What the file held beside its tensors (for a summary).
typedef struct {
    TorchFileKind kind;
    int shuffle_stride; // 0: not byte-shuffled
    size_t file_bytes, torch_bytes;
    TorchObject object;
    StoredAs *stored; // per tensor, when asked for (caller frees)
} TorchLoad;

static SafeTensors *load(const char *path, TorchLoad *l, int want_stored) {
    *l = (TorchLoad){0};
    size_t len;
    uint8_t *file = read_file(path, &l->file_bytes), *zip = file;
    len = l->file_bytes;
    l->kind = kind_of(file, len < SNIFF_BYTES ? len : SNIFF_BYTES);
    if (l->kind != TORCH_ZIP) {
        Compressor c = l->kind == TORCH_ZSTD     ? COMPRESS_ZSTD
                       : l->kind == TORCH_BROTLI ? COMPRESS_BROTLI
                       : l->kind == TORCH_XZ     ? COMPRESS_LZMA
                                                 : COMPRESS_ZLIB;
        const char *err = l->kind == TORCH_NONE ? "not a torch.save file"
                                                : decompress_unsized(c, file, l->file_bytes, MAX_INFLATED, &zip, &len);
        if (err)
            die("%s: %s (expected torch.save's zip archive, or a zlib, zstd, brotli or xz stream of one as the "
                "records' .ptz)", path, err);
    }
    uint8_t *plain = unshuffle_bshf(zip, &len, &l->shuffle_stride);
    if (plain) {
        if (zip != file) free(zip);
        zip = plain;
    }
    l->torch_bytes = len;
    ZipArchive z = zip_read(zip, len, path);
    TorchFile tf = {.path = path, .zip = &z, .want_stored = want_stored};
    const ZipEntry *pkl = NULL;
    for (int k = 0; k < z.count && !pkl; k++) {
        const char *name = z.entries[k].name, *slash = strchr(name, '/');
        if (slash && !strcmp(slash, "/data.pkl") && (size_t)(slash - name) + 2 <= sizeof tf.prefix) pkl = &z.entries[k];
    }
    if (!pkl) die("%s: no <archive>/data.pkl: a zip archive, but not one torch.save wrote", path);
    snprintf(tf.prefix, sizeof tf.prefix, "%.*s/", (int)(strchr(pkl->name, '/') - pkl->name), pkl->name);
    char key[300];
    snprintf(key, sizeof key, "%sbyteorder", tf.prefix);
    const ZipEntry *order = zip_find(&z, key);
    if (order && !(order->size == 6 && !memcmp(order->data, "little", 6)))
        die("%s: saved on a big-endian machine (byteorder), which pgolf does not read", path);
    char what[4400];
    snprintf(what, sizeof what, "%s (%s)", path, pkl->name);
    const PkValue *root;
    Pickle *pk = pickle_read(pkl->data, pkl->size, what, &root);
    char buf[160];
    if (root->type != PK_DICT)
        die("%s: holds %s, not a state_dict or train_gpt.py's int8 export", path, describe(root, buf, sizeof buf));
    const PkValue *format = pk_dict_get(root, "__quant_format__"), *w = pk_dict_get(root, "w"), *m = pk_dict_get(root, "m");
    if (format && !pk_is_str(format, "int8_clean_per_row_v1"))
        die("%s: quantization format %s is not one pgolf reads (train_gpt.py's int8_clean_per_row_v1)", path,
            format->type == PK_STR ? format->s : "(not a string)");
    l->object = format ? OBJECT_INT8 : w && m && w->type == PK_DICT && m->type == PK_DICT ? OBJECT_MIXED : OBJECT_STATE_DICT;
    StTensor *tensors;
    int n = l->object == OBJECT_INT8    ? dequantize_int8(&tf, root, &tensors)
            : l->object == OBJECT_MIXED ? dequantize_mixed(&tf, w, m, &tensors)
                                        : read_state_dict(&tf, root, &tensors);
    l->stored = tf.stored;
    pickle_free(pk);
    zip_free(&z);
    if (zip != file) free(zip);
    free(file);
    return st_from_tensors(path, tensors, n);
}

SafeTensors *torch_file_load(const char *path, int *quantized) {
    TorchLoad l;
    SafeTensors *st = load(path, &l, 0);
    if (quantized) *quantized = l.object != OBJECT_STATE_DICT;
    return st;
}

void torch_file_print_summary(const char *path, FILE *f) {
    static const char *COMPRESSION[] = {[TORCH_ZIP] = "uncompressed", [TORCH_ZLIB] = "zlib", [TORCH_ZSTD] = "zstd",
                                        [TORCH_BROTLI] = "brotli", [TORCH_XZ] = "lzma (xz)"};
    static const char *OBJECT[] = {[OBJECT_STATE_DICT] = "a state_dict",
                                   [OBJECT_INT8] = "train_gpt.py's int8_clean_per_row_v1 export",
                                   [OBJECT_MIXED] = "a record's mixed int6 export {\"w\", \"m\"}"};
    TorchLoad l;
    SafeTensors *st = load(path, &l, 1);
    int64_t params = 0, payload = 0;
    for (int k = 0; k < st_count(st); k++) params += st_find(st, st_name(st, k))->numel, payload += l.stored[k].bytes;
    fprintf(f, "torch.save file %s: %s, %s", path, OBJECT[l.object], COMPRESSION[l.kind]);
    if (l.shuffle_stride) fprintf(f, ", byte-shuffled (BSHF, stride %d)", l.shuffle_stride);
    fprintf(f, "\ntensors: %d, params: %lld\n", st_count(st), (long long)params);
    fprintf(f, "  %-40s %-14s %-30s %10s\n", "name", "shape", "storage", "bytes");
    for (int k = 0; k < st_count(st); k++) {
        const StTensor *t = st_find(st, st_name(st, k));
        char shape[128];
        fprintf(f, "  %-40s %-14s %-30s %10lld\n", t->name, shape_str(shape, sizeof shape, t->ndim, t->shape),
                l.stored[k].storage, (long long)l.stored[k].bytes);
    }
    fprintf(f, "payload: %lld bytes of tensors, %zu bytes torch.save; file: %zu bytes\n", (long long)payload,
            l.torch_bytes, l.file_bytes);
    free(l.stored);
    st_free(st);
}
