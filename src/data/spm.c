#include "data/spm.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

// SentencePiece.Type in sentencepiece_model.proto.
enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER_DEFINED = 4, PIECE_UNUSED = 5, PIECE_BYTE = 6 };

typedef struct {
    char *text; // UTF-8, NUL-terminated
    int type;
} Piece;

struct SpmModel {
    Piece *pieces;
    int64_t n;
    // NormalizerSpec flags that decide whether decoding drops the first piece's "▁".
    int add_dummy_prefix, remove_extra_whitespaces;
};

static const char SPACE_SYMBOL[] = "\xE2\x96\x81"; // U+2581 "▁"
static const char UNK_SURFACE[] = " \xE2\x81\x87 "; // " ⁇ ", sentencepiece's default unk_surface

// A bounds-checked cursor over protobuf wire data; every read failure names the model file.
typedef struct {
    const uint8_t *p, *end;
    const char *path;
} Wire;

static uint64_t wire_varint(Wire *w) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (w->p >= w->end) die("tokenizer %s is truncated or not a SentencePiece model (varint past end)", w->path);
        uint8_t b = *w->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    die("tokenizer %s is not a SentencePiece model (varint too long)", w->path);
}

// Length-delimited field: a sub-cursor over its bytes.
static Wire wire_bytes(Wire *w) {
    uint64_t len = wire_varint(w);
    if (len > (uint64_t)(w->end - w->p))
        die("tokenizer %s is truncated or not a SentencePiece model (field past end)", w->path);
    Wire sub = {w->p, w->p + len, w->path};
    w->p += len;
    return sub;
}

static void wire_skip(Wire *w, int wire_type) {
    size_t fixed = wire_type == 1 ? 8 : wire_type == 5 ? 4 : 0;
    if (wire_type == 0) wire_varint(w);
    else if (wire_type == 2) wire_bytes(w);
    else if (fixed) {
        if (fixed > (size_t)(w->end - w->p)) die("tokenizer %s is truncated (fixed field past end)", w->path);
        w->p += fixed;
    } else die("tokenizer %s is not a SentencePiece model (wire type %d)", w->path, wire_type);
}

static Piece parse_piece(Wire w) {
    Piece pc = {NULL, PIECE_NORMAL};
    while (w.p < w.end) {
        uint64_t key = wire_varint(&w);
        int field = (int)(key >> 3), type = (int)(key & 7);
        if (field == 1 && type == 2) {
            Wire s = wire_bytes(&w);
            free(pc.text);
            pc.text = xmalloc((size_t)(s.end - s.p) + 1);
            memcpy(pc.text, s.p, (size_t)(s.end - s.p));
            pc.text[s.end - s.p] = 0;
        } else if (field == 3 && type == 0) {
            pc.type = (int)wire_varint(&w);
        } else wire_skip(&w, type);
    }
    if (!pc.text) pc.text = xstrdup("");
    return pc;
}

static void parse_normalizer(Wire w, SpmModel *sp) {
    while (w.p < w.end) {
        uint64_t key = wire_varint(&w);
        int field = (int)(key >> 3), type = (int)(key & 7);
        if (field == 3 && type == 0) sp->add_dummy_prefix = wire_varint(&w) != 0;
        else if (field == 4 && type == 0) sp->remove_extra_whitespaces = wire_varint(&w) != 0;
        else wire_skip(&w, type);
    }
}

SpmModel *spm_load(const char *path) {
    size_t len;
    uint8_t *data = read_file(path, &len);
    SpmModel *sp = xcalloc(1, sizeof *sp);
    sp->add_dummy_prefix = sp->remove_extra_whitespaces = 1; // proto defaults
    int64_t cap = 0;
    Wire w = {data, data + len, path};
    while (w.p < w.end) {
        uint64_t key = wire_varint(&w);
        int field = (int)(key >> 3), type = (int)(key & 7);
        if (field == 1 && type == 2) {
            if (sp->n == cap) sp->pieces = xrealloc(sp->pieces, sizeof(Piece) * (size_t)(cap = cap ? 2 * cap : 1024));
            sp->pieces[sp->n++] = parse_piece(wire_bytes(&w));
        } else if (field == 3 && type == 2) {
            parse_normalizer(wire_bytes(&w), sp);
        } else wire_skip(&w, type);
    }
    free(data);
    if (sp->n == 0) die("tokenizer %s has no pieces: not a SentencePiece model", path);
    for (int64_t i = 0; i < sp->n; i++)
        if (sp->pieces[i].type < PIECE_NORMAL || sp->pieces[i].type > PIECE_BYTE)
            die("tokenizer %s: piece %lld has unknown type %d", path, (long long)i, sp->pieces[i].type);
    return sp;
}

void spm_free(SpmModel *sp) {
    if (!sp) return;
    for (int64_t i = 0; i < sp->n; i++) free(sp->pieces[i].text);
    free(sp->pieces);
    free(sp);
}

int64_t spm_vocab_size(const SpmModel *sp) { return sp->n; }

void spm_check_vocab(const SpmModel *sp, int64_t vocab, const char *path) {
    if (sp->n != vocab)
        die("VOCAB_SIZE=%lld does not match tokenizer vocab_size=%lld (%s)", (long long)vocab, (long long)sp->n, path);
}

static int starts_with_space(const char *s) { return strncmp(s, SPACE_SYMBOL, 3) == 0; }

void spm_byte_tables(const SpmModel *sp, int64_t vocab, int16_t *base_bytes, uint8_t *has_leading_space,
                     uint8_t *is_boundary) {
    int64_t size = vocab > sp->n ? vocab : sp->n;
    for (int64_t i = 0; i < size; i++) {
        base_bytes[i] = 0;
        has_leading_space[i] = 0;
        is_boundary[i] = 1;
    }
    for (int64_t i = 0; i < sp->n; i++) {
        const Piece *pc = &sp->pieces[i];
        if (pc->type == PIECE_CONTROL || pc->type == PIECE_UNKNOWN || pc->type == PIECE_UNUSED) continue;
        is_boundary[i] = 0;
        if (pc->type == PIECE_BYTE) {
            base_bytes[i] = 1;
            continue;
        }
        const char *text = pc->text;
        if (starts_with_space(text)) {
            has_leading_space[i] = 1;
            text += 3;
        }
        base_bytes[i] = (int16_t)strlen(text);
    }
}

// "<0xAB>" -> 0xAB; the byte pieces' fixed spelling.
static int byte_piece_value(const char *s) {
    unsigned v;
    if (strlen(s) != 6 || sscanf(s, "<0x%2X>", &v) != 1) return -1;
    return (int)v;
}

typedef struct {
    char *s;
    size_t len, cap;
} Text;

static void text_add(Text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) t->s = xrealloc(t->s, t->cap = 2 * (t->len + n + 1));
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

// Appends a piece's surface, "▁" -> " ", dropping one leading "▁" when `strip_space`.
static void add_surface(Text *t, const char *piece, int strip_space) {
    if (strip_space && starts_with_space(piece)) piece += 3;
    for (const char *p = piece; *p;) {
        if (starts_with_space(p)) {
            text_add(t, " ", 1);
            p += 3;
        } else text_add(t, p++, 1);
    }
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid.
static size_t utf8_valid_len(const uint8_t *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t len = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xC2)) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

// Runs of byte pieces become their bytes; bytes that do not form valid UTF-8 read U+FFFD each.
static void add_bytes(Text *t, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_valid_len(b + i, n - i);
        if (k) {
            text_add(t, (const char *)b + i, k);
            i += k;
        } else {
            text_add(t, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
}

char *spm_decode(const SpmModel *sp, const int32_t *ids, int64_t n) {
    Text t = {NULL, 0, 0};
    text_add(&t, "", 0);
    uint8_t *bytes = xmalloc((size_t)(n > 0 ? n : 1));
    size_t nbytes = 0;
    int at_start = 1; // no visible piece yet: the first one loses its dummy-prefix space
    int strip = sp->add_dummy_prefix || sp->remove_extra_whitespaces;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= sp->n) die("cannot decode id %d: tokenizer has %lld pieces", ids[i], (long long)sp->n);
        const Piece *pc = &sp->pieces[ids[i]];
        int b = pc->type == PIECE_BYTE ? byte_piece_value(pc->text) : -1;
        if (b >= 0) {
            bytes[nbytes++] = (uint8_t)b;
            at_start = 0;
            continue;
        }
        add_bytes(&t, bytes, nbytes);
        nbytes = 0;
        if (pc->type == PIECE_CONTROL) continue;
        if (pc->type == PIECE_UNKNOWN) text_add(&t, UNK_SURFACE, strlen(UNK_SURFACE));
        else add_surface(&t, pc->text, at_start && strip);
        at_start = 0;
    }
    add_bytes(&t, bytes, nbytes);
    free(bytes);
    return t.s;
}
