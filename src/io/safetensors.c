#include "io/safetensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/bytes.h"
#include "util.h"

struct SafeTensors {
    char *path;
    StTensor *tensors;
    int count;
    char **meta_keys, **meta_values;
    int n_meta;
};

static const struct {
    const char *name;
    int size;
} DTYPES[] = {[ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
              [ST_I8] = {"I8", 1},   [ST_I32] = {"I32", 4}, [ST_I64] = {"I64", 8}};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

const char *st_dtype_name(StDtype dtype) { return DTYPES[dtype].name; }
int st_dtype_size(StDtype dtype) { return DTYPES[dtype].size; }

// ---------------------------------------------------------------- JSON header parser

// A parsed JSON value. Numbers keep an exact int64 when written as an integer that fits.
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JsonType;

typedef struct Json {
    JsonType type;
    int is_int;
    int64_t i;
    double num;
    char *str;          // J_STR
    int n;              // J_ARR, J_OBJ: children
    struct Json *items; // [n]
    char **keys;        // [n], J_OBJ
} Json;

typedef struct {
    const char *s;
    size_t len, pos;
    const char *path;
    int depth;
} JsonParser;

#define JSON_MAX_DEPTH 64

static PG_NORETURN void json_fail(const JsonParser *p, const char *msg) {
    die("%s: bad safetensors header: %s at header byte %zu", p->path, msg, p->pos);
}

static void json_ws(JsonParser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') break;
        p->pos++;
    }
}

static int json_peek(const JsonParser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static void json_expect(JsonParser *p, char c, const char *msg) {
    if (json_peek(p) != (unsigned char)c) json_fail(p, msg);
    p->pos++;
}

static unsigned json_hex4(JsonParser *p) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int c = json_peek(p), d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else json_fail(p, "bad \\u escape");
        v = v * 16 + (unsigned)d;
        p->pos++;
    }
    return v;
}

static void put_utf8(ByteBuf *b, unsigned cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) u[0] = (uint8_t)(0xC0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (uint8_t)(0xE0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), u[2] = (uint8_t)(0x80 | (cp & 0x3F)),
        n = 3;
    else
        u[0] = (uint8_t)(0xF0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F)),
        u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F)), n = 4;
    bb_put(b, u, n);
}

// A string after its opening quote, as a NUL-terminated copy. NUL characters are refused because
// names and metadata become C strings.
static char *json_string(JsonParser *p) {
    ByteBuf b = {0};
    for (;;) {
        int c = json_peek(p);
        if (c < 0) json_fail(p, "unterminated string");
        p->pos++;
        if (c == '"') break;
        if (c < 0x20) json_fail(p, "control character in a string");
        if (c != '\\') {
            bb_put_u8(&b, (uint8_t)c);
            continue;
        }
        int e = json_peek(p);
        p->pos++;
        switch (e) {
        case '"': bb_put_u8(&b, '"'); break;
        case '\\': bb_put_u8(&b, '\\'); break;
        case '/': bb_put_u8(&b, '/'); break;
        case 'b': bb_put_u8(&b, '\b'); break;
        case 'f': bb_put_u8(&b, '\f'); break;
        case 'n': bb_put_u8(&b, '\n'); break;
        case 'r': bb_put_u8(&b, '\r'); break;
        case 't': bb_put_u8(&b, '\t'); break;
        case 'u': {
            unsigned cp = json_hex4(p);
            if (cp >= 0xDC00 && cp <= 0xDFFF) json_fail(p, "unpaired low surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) { // a UTF-16 pair encodes one code point above U+FFFF
                if (json_peek(p) != '\\') json_fail(p, "unpaired high surrogate in a \\u escape");
                p->pos++;
                if (json_peek(p) != 'u') json_fail(p, "unpaired high surrogate in a \\u escape");
                p->pos++;
                unsigned lo = json_hex4(p);
                if (lo < 0xDC00 || lo > 0xDFFF) json_fail(p, "unpaired high surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) json_fail(p, "\\u0000 in a string");
            put_utf8(&b, cp);
            break;
        }
        default: p->pos--; json_fail(p, "bad escape in a string");
        }
    }
    bb_put_u8(&b, 0);
    return (char *)b.data;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static void json_number(JsonParser *p, Json *v) {
    size_t start = p->pos;
    if (json_peek(p) == '-') p->pos++;
    if (json_peek(p) == '0') p->pos++;
    else if (is_digit(json_peek(p)))
        while (is_digit(json_peek(p))) p->pos++;
    else json_fail(p, "bad number");
    v->type = J_NUM;
    v->is_int = 1;
    if (json_peek(p) == '.') {
        p->pos++;
        if (!is_digit(json_peek(p))) json_fail(p, "bad number");
        while (is_digit(json_peek(p))) p->pos++;
        v->is_int = 0;
    }
    if (json_peek(p) == 'e' || json_peek(p) == 'E') {
        p->pos++;
        if (json_peek(p) == '+' || json_peek(p) == '-') p->pos++;
        if (!is_digit(json_peek(p))) json_fail(p, "bad number");
        while (is_digit(json_peek(p))) p->pos++;
        v->is_int = 0;
    }
    char text[64];
    size_t n = p->pos - start;
    if (n >= sizeof text) json_fail(p, "number too long");
    memcpy(text, p->s + start, n);
    text[n] = 0;
    v->num = strtod(text, NULL);
    if (v->is_int) {
        errno = 0;
        v->i = strtoll(text, NULL, 10);
        if (errno == ERANGE) v->is_int = 0;
    }
}

static void json_literal(JsonParser *p, const char *word, Json *v, JsonType type, int truth) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n)) json_fail(p, "unexpected character");
    p->pos += n;
    v->type = type;
    v->i = truth;
}

static void json_value(JsonParser *p, Json *v);

static Json *json_push(Json *v) {
    v->items = xrealloc(v->items, sizeof(Json) * (size_t)(v->n + 1));
    Json *item = &v->items[v->n++];
    memset(item, 0, sizeof *item);
    return item;
}

static void json_object(JsonParser *p, Json *v) {
    v->type = J_OBJ;
    json_ws(p);
    if (json_peek(p) == '}') {
        p->pos++;
        return;
    }
    for (;;) {
        json_ws(p);
        json_expect(p, '"', "expected a string key");
        char *key = json_string(p);
        for (int k = 0; k < v->n; k++)
            if (!strcmp(v->keys[k], key)) die("%s: bad safetensors header: duplicate key \"%s\"", p->path, key);
        v->keys = xrealloc(v->keys, sizeof(char *) * (size_t)(v->n + 1));
        v->keys[v->n] = key;
        json_ws(p);
        json_expect(p, ':', "expected ':' after a key");
        json_value(p, json_push(v));
        json_ws(p);
        if (json_peek(p) == '}') {
            p->pos++;
            return;
        }
        json_expect(p, ',', "expected ',' or '}' in an object");
    }
}

static void json_array(JsonParser *p, Json *v) {
    v->type = J_ARR;
    json_ws(p);
    if (json_peek(p) == ']') {
        p->pos++;
        return;
    }
    for (;;) {
        json_value(p, json_push(v));
        json_ws(p);
        if (json_peek(p) == ']') {
            p->pos++;
            return;
        }
        json_expect(p, ',', "expected ',' or ']' in an array");
    }
}

static void json_value(JsonParser *p, Json *v) {
    json_ws(p);
    int c = json_peek(p);
    if (c < 0) json_fail(p, "unexpected end of header");
    if (c == '{' || c == '[') {
        if (++p->depth > JSON_MAX_DEPTH) json_fail(p, "nested too deeply");
        p->pos++;
        if (c == '{') json_object(p, v);
        else json_array(p, v);
        p->depth--;
    } else if (c == '"') {
        p->pos++;
        v->type = J_STR;
        v->str = json_string(p);
    } else if (c == '-' || is_digit(c)) {
        json_number(p, v);
    } else if (c == 't') {
        json_literal(p, "true", v, J_BOOL, 1);
    } else if (c == 'f') {
        json_literal(p, "false", v, J_BOOL, 0);
    } else if (c == 'n') {
        json_literal(p, "null", v, J_NULL, 0);
    } else {
        json_fail(p, "unexpected character");
    }
}

static void json_free(Json *v) {
    free(v->str);
    for (int k = 0; k < v->n; k++) {
        json_free(&v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
}

static const Json *json_get(const Json *obj, const char *key) {
    for (int k = 0; k < obj->n; k++)
        if (!strcmp(obj->keys[k], key)) return &obj->items[k];
    return NULL;
}

// ---------------------------------------------------------------- writing

static void put_json_string(ByteBuf *b, const char *s) {
    bb_put_u8(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') bb_printf(b, "\\%c", *c);
        else if (*c == '\n') bb_printf(b, "\\n");
        else if (*c == '\t') bb_printf(b, "\\t");
        else if (*c == '\r') bb_printf(b, "\\r");
        else if (*c < 0x20) bb_printf(b, "\\u%04x", *c);
        else bb_put_u8(b, *c);
    }
    bb_put_u8(b, '"');
}

void st_save(const char *path, const TensorList *tensors, const char *const *meta_keys, const char *const *meta_values,
             int n_meta) {
    ByteBuf h = {0};
    bb_put_u8(&h, '{');
    if (n_meta > 0) {
        bb_printf(&h, "\"__metadata__\":{");
        for (int k = 0; k < n_meta; k++) {
            if (k) bb_put_u8(&h, ',');
            put_json_string(&h, meta_keys[k]);
            bb_put_u8(&h, ':');
            put_json_string(&h, meta_values[k]);
        }
        bb_put_u8(&h, '}');
    }
    uint64_t offset = 0;
    for (int k = 0; k < tensors->count; k++) {
        const TensorView *t = &tensors->items[k];
        if (!strcmp(t->name, "__metadata__")) die("%s: a tensor cannot be named __metadata__", path);
        for (int j = 0; j < k; j++)
            if (!strcmp(tensors->items[j].name, t->name)) die("%s: two tensors are named %s", path, t->name);
        if (n_meta > 0 || k) bb_put_u8(&h, ',');
        put_json_string(&h, t->name);
        bb_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) bb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        uint64_t end = offset + 4 * (uint64_t)tensor_numel(t);
        bb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)end);
        offset = end;
    }
    bb_put_u8(&h, '}');
    while ((8 + h.len) % 8) bb_put_u8(&h, ' '); // like huggingface's writer: the data starts 8-aligned

    AtomicFile af = atomic_open(path);
    uint64_t n = h.len;
    atomic_write(&af, &n, 8);
    atomic_write(&af, h.data, h.len);
    float chunk[4096];
    for (int k = 0; k < tensors->count; k++) {
        const TensorView *t = &tensors->items[k];
        int64_t numel = tensor_numel(t);
        for (int64_t j = 0; j < numel; j += 4096) {
            int64_t m = numel - j < 4096 ? numel - j : 4096;
            for (int64_t x = 0; x < m; x++) chunk[x] = (float)t->data[j + x];
            atomic_write(&af, chunk, (size_t)m * 4);
        }
    }
    atomic_commit(&af);
    bb_free(&h);
}

// ---------------------------------------------------------------- reading

static int64_t json_int(const Json *v, const char *path, const char *tensor, const char *field) {
    if (v->type != J_NUM || !v->is_int || v->i < 0)
        die("%s: tensor %s: %s must hold non-negative integers", path, tensor, field);
    return v->i;
}

// Fills t from its header entry; returns the entry's [begin, end) in the data buffer.
static void parse_entry(const char *path, const char *name, const Json *e, uint64_t buf_len, StTensor *t,
                        uint64_t *begin, uint64_t *end) {
    if (e->type != J_OBJ) die("%s: tensor %s: header entry is not an object", path, name);
    for (int k = 0; k < e->n; k++)
        if (strcmp(e->keys[k], "dtype") && strcmp(e->keys[k], "shape") && strcmp(e->keys[k], "data_offsets"))
            die("%s: tensor %s: unknown field \"%s\"", path, name, e->keys[k]);
    const Json *dtype = json_get(e, "dtype"), *shape = json_get(e, "shape"), *offs = json_get(e, "data_offsets");
    if (!dtype || dtype->type != J_STR) die("%s: tensor %s: missing or non-string \"dtype\"", path, name);
    if (!shape || shape->type != J_ARR) die("%s: tensor %s: missing or non-array \"shape\"", path, name);
    if (!offs || offs->type != J_ARR || offs->n != 2)
        die("%s: tensor %s: \"data_offsets\" must be an array [begin, end]", path, name);
    t->name = xstrdup(name);
    int d = 0;
    while (d < N_DTYPES && strcmp(DTYPES[d].name, dtype->str)) d++;
    if (d == N_DTYPES) die("%s: tensor %s has dtype %s; pgolf reads F32, F16, BF16, I8, I32, I64", path, name, dtype->str);
    t->dtype = (StDtype)d;
    if (shape->n > TENSOR_MAX_DIMS)
        die("%s: tensor %s has %d dimensions (pgolf supports up to %d)", path, name, shape->n, TENSOR_MAX_DIMS);
    t->ndim = shape->n;
    t->numel = 1;
    for (int k = 0; k < t->ndim; k++) {
        t->shape[k] = json_int(&shape->items[k], path, name, "shape");
        if (t->shape[k] > 0 && t->numel > INT64_MAX / t->shape[k]) die("%s: tensor %s: shape is too large", path, name);
        t->numel *= t->shape[k];
    }
    *begin = (uint64_t)json_int(&offs->items[0], path, name, "data_offsets");
    *end = (uint64_t)json_int(&offs->items[1], path, name, "data_offsets");
    if (*begin > *end || *end > buf_len)
        die("%s: tensor %s: data_offsets [%llu, %llu] lie outside the %llu-byte data buffer", path, name,
            (unsigned long long)*begin, (unsigned long long)*end, (unsigned long long)buf_len);
    uint64_t size = (uint64_t)DTYPES[d].size;
    if ((uint64_t)t->numel > buf_len / size || (uint64_t)t->numel * size != *end - *begin) {
        char s[128];
        die("%s: tensor %s: %s %s needs %llu bytes but data_offsets span %llu", path, name, dtype->str,
            shape_str(s, sizeof s, t->ndim, t->shape), (unsigned long long)t->numel * size,
            (unsigned long long)(*end - *begin));
    }
}

void st_convert(StTensor *t, const uint8_t *src) {
    int64_t n = t->numel;
    if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) t->f = xmalloc(sizeof(float) * (size_t)n);
    else t->i = xmalloc(sizeof(int64_t) * (size_t)n);
    for (int64_t k = 0; k < n; k++) {
        switch (t->dtype) {
        case ST_F32: memcpy(&t->f[k], src + 4 * k, 4); break;
        case ST_F16: t->f[k] = f16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8)); break;
        case ST_BF16: { // bf16 is the top half of an fp32
            uint32_t u = (uint32_t)(src[2 * k] | src[2 * k + 1] << 8) << 16;
            memcpy(&t->f[k], &u, 4);
            break;
        }
        case ST_I8: t->i[k] = (int8_t)src[k]; break;
        case ST_I32: t->i[k] = (int32_t)le_u32(src + 4 * k); break;
        case ST_I64: t->i[k] = (int64_t)le_u64(src + 8 * k); break;
        }
    }
}

typedef struct {
    uint64_t begin, end;
    int tensor;
} Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

// The spans must tile the data buffer exactly: no overlap, no gap, no unclaimed bytes at the end.
static void check_coverage(const SafeTensors *st, Span *spans, uint64_t buf_len) {
    qsort(spans, (size_t)st->count, sizeof *spans, span_cmp);
    uint64_t expect = 0;
    for (int k = 0; k < st->count; k++) {
        if (spans[k].begin != expect)
            die("%s: tensor %s: data_offsets begin at %llu but the previous tensor ends at %llu (%s)", st->path,
                st->tensors[spans[k].tensor].name, (unsigned long long)spans[k].begin, (unsigned long long)expect,
                spans[k].begin < expect ? "overlap" : "gap");
        expect = spans[k].end;
    }
    if (expect != buf_len)
        die("%s: the data buffer has %llu bytes but the tensors cover %llu", st->path, (unsigned long long)buf_len,
            (unsigned long long)expect);
}

// The header's length from a file of len bytes starting with `first8`; dies where it cannot be one.
static uint64_t header_length(const uint8_t *first8, size_t len, const char *path) {
    if (len < 8) die("%s: not a safetensors file (%zu bytes, need at least 8)", path, len);
    uint64_t hlen = le_u64(first8);
    if (hlen > len - 8)
        die("%s: header length %llu runs past the end of the %zu-byte file", path, (unsigned long long)hlen, len);
    return hlen;
}

// The JSON header (hlen bytes of text) into root, an object.
static void parse_header(const char *text, uint64_t hlen, const char *path, Json *root) {
    JsonParser p = {text, (size_t)hlen, 0, path, 0};
    json_ws(&p);
    if (json_peek(&p) != '{') json_fail(&p, "header is not a JSON object");
    json_value(&p, root);
    json_ws(&p);
    if (p.pos != p.len) json_fail(&p, "trailing characters after the JSON object");
}

char *st_read_meta(const char *path, const char *key) {
    size_t size = (size_t)file_size(path), avail = size >= 8 ? size - 8 : 0;
    FILE *f = xfopen(path, "rb");
    uint8_t first8[8] = {0};
    size_t got = fread(first8, 1, 8, f);
    uint64_t hlen = got == 8 ? le_u64(first8) : 0;
    char *text = xmalloc((hlen <= avail ? (size_t)hlen : 0) + 1);
    size_t read = hlen <= avail ? fread(text, 1, (size_t)hlen, f) : 0;
    fclose(f); // before anything can die: the fuzzer goes on after die(), and would run out of descriptors
    hlen = header_length(first8, got < 8 ? got : size, path);
    if (read != hlen) die("%s: truncated or unreadable header", path);
    Json root = {0};
    parse_header(text, hlen, path, &root);
    char *value = NULL;
    for (int k = 0; k < root.n && !value; k++) {
        const Json *meta = &root.items[k];
        if (strcmp(root.keys[k], "__metadata__") || meta->type != J_OBJ) continue;
        for (int m = 0; m < meta->n && !value; m++)
            if (!strcmp(meta->keys[m], key) && meta->items[m].type == J_STR) value = xstrdup(meta->items[m].str);
    }
    json_free(&root);
    free(text);
    return value;
}

SafeTensors *st_load(const char *path) {
    size_t len;
    uint8_t *file = read_file(path, &len);
    uint64_t hlen = header_length(file, len, path);
    Json root = {0};
    parse_header((const char *)file + 8, hlen, path, &root);

    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    st->tensors = xcalloc((size_t)root.n, sizeof(StTensor));
    Span *spans = xcalloc((size_t)root.n, sizeof(Span));
    uint64_t buf_len = len - 8 - hlen;
    for (int k = 0; k < root.n; k++) {
        const char *key = root.keys[k];
        const Json *v = &root.items[k];
        if (!strcmp(key, "__metadata__")) {
            if (v->type != J_OBJ) die("%s: __metadata__ is not an object", path);
            st->meta_keys = xcalloc((size_t)v->n, sizeof(char *));
            st->meta_values = xcalloc((size_t)v->n, sizeof(char *));
            for (int m = 0; m < v->n; m++) {
                if (v->items[m].type != J_STR) die("%s: __metadata__ value of \"%s\" is not a string", path, v->keys[m]);
                st->meta_keys[m] = xstrdup(v->keys[m]);
                st->meta_values[m] = xstrdup(v->items[m].str);
            }
            st->n_meta = v->n;
            continue;
        }
        Span *s = &spans[st->count];
        parse_entry(path, key, v, buf_len, &st->tensors[st->count], &s->begin, &s->end);
        s->tensor = st->count++;
    }
    check_coverage(st, spans, buf_len);
    const uint8_t *buf = file + 8 + hlen;
    for (int k = 0; k < st->count; k++) st_convert(&st->tensors[spans[k].tensor], buf + spans[k].begin);
    free(spans);
    json_free(&root);
    free(file);
    return st;
}

SafeTensors *st_from_tensors(const char *path, StTensor *tensors, int count) {
    for (int a = 0; a < count; a++)
        for (int b = 0; b < a; b++)
            if (!strcmp(tensors[a].name, tensors[b].name)) die("%s: tensor %s appears twice", path, tensors[a].name);
    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    st->tensors = tensors;
    st->count = count;
    return st;
}

int st_count(const SafeTensors *st) { return st->count; }

const char *st_name(const SafeTensors *st, int i) { return st->tensors[i].name; }

const StTensor *st_find(const SafeTensors *st, const char *name) {
    for (int k = 0; k < st->count; k++)
        if (!strcmp(st->tensors[k].name, name)) return &st->tensors[k];
    return NULL;
}

const char *st_meta(const SafeTensors *st, const char *key) {
    for (int k = 0; k < st->n_meta; k++)
        if (!strcmp(st->meta_keys[k], key)) return st->meta_values[k];
    return NULL;
}

int st_same_shape(const StTensor *t, const TensorView *v) {
    int same = t->ndim == v->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == v->shape[d];
    return same;
}

void st_copy_into(const SafeTensors *st, const TensorView *dst, const char *path) {
    const StTensor *t = st_find(st, dst->name);
    if (!t) die("checkpoint %s: tensor %s is missing", path, dst->name);
    if (!t->f) die("checkpoint %s: tensor %s has dtype %s, model expects a float tensor", path, dst->name,
                   st_dtype_name(t->dtype));
    if (!st_same_shape(t, dst)) {
        char a[128], b[128];
        die("checkpoint %s: tensor %s has shape %s, model expects %s", path, dst->name,
            shape_str(a, sizeof a, t->ndim, t->shape), shape_str(b, sizeof b, dst->ndim, dst->shape));
    }
    for (int64_t k = 0; k < t->numel; k++) dst->data[k] = (real)t->f[k];
}

void st_free(SafeTensors *st) {
    if (!st) return;
    for (int k = 0; k < st->count; k++) {
        free(st->tensors[k].name);
        free(st->tensors[k].f);
        free(st->tensors[k].i);
    }
    for (int k = 0; k < st->n_meta; k++) {
        free(st->meta_keys[k]);
        free(st->meta_values[k]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    free(st);
}
