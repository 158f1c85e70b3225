#include "io/pickle.h"

#include <stdlib.h>
#include <string.h>

#include "io/bytes.h"
#include "util.h"

struct Pickle {
    ByteReader r;
    PkValue **values; // every node, for pickle_free
    size_t n_values, values_cap;
    PkValue **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    PkValue **memo;
    size_t memo_cap, memo_count;
};

#define GROW(ptr, cap, need)                                                                                           \
    do {                                                                                                               \
        if ((need) > (cap)) {                                                                                          \
            size_t c_ = (cap) ? (cap) : 16;                                                                            \
            while (c_ < (need)) c_ *= 2;                                                                               \
            (ptr) = xrealloc((ptr), c_ * sizeof *(ptr));                                                               \
            (cap) = c_;                                                                                                \
        }                                                                                                              \
    } while (0)

static PG_NORETURN void fail(const Pickle *p, const char *msg) {
    die("%s: pickle byte %zu: %s", p->r.path, p->r.pos ? p->r.pos - 1 : 0, msg);
}

static PkValue *new_value(Pickle *p, PkType type) {
    GROW(p->values, p->values_cap, p->n_values + 1);
    PkValue *v = xcalloc(1, sizeof *v);
    v->type = type;
    return p->values[p->n_values++] = v;
}

static void add_item(PkValue *c, PkValue *v) {
    size_t cap = (size_t)c->cap;
    GROW(c->items, cap, (size_t)c->n + 1);
    c->cap = (int64_t)cap;
    c->items[c->n++] = v;
}

static void push(Pickle *p, PkValue *v) {
    GROW(p->stack, p->stack_cap, p->sp + 1);
    p->stack[p->sp++] = v;
}

static PkValue *pop(Pickle *p) {
    if (p->sp == 0 || (p->n_marks && p->sp == p->marks[p->n_marks - 1])) fail(p, "stack underflow");
    return p->stack[--p->sp];
}

static PkValue *top(Pickle *p) {
    if (p->sp == 0 || (p->n_marks && p->sp == p->marks[p->n_marks - 1])) fail(p, "stack underflow");
    return p->stack[p->sp - 1];
}

// The stack position of the last MARK, removed from the mark stack; the items above it are the operands.
static size_t pop_mark(Pickle *p) {
    if (!p->n_marks) fail(p, "no MARK for this opcode");
    return p->marks[--p->n_marks];
}

static PkValue *new_str(Pickle *p, const uint8_t *src, size_t n) {
    PkValue *v = new_value(p, PK_STR);
    v->s = xmalloc(n + 1);
    memcpy(v->s, src, n);
    v->s[n] = 0;
    v->len = n;
    return v;
}

static PkValue *new_int(Pickle *p, int64_t i) {
    PkValue *v = new_value(p, PK_INT);
    v->i = i;
    return v;
}

// A sequence from the stack items at [from, sp), which are removed.
static PkValue *collect(Pickle *p, PkType type, size_t from) {
    PkValue *v = new_value(p, type);
    for (size_t k = from; k < p->sp; k++) add_item(v, p->stack[k]);
    p->sp = from;
    return v;
}

// The container below stack position `at`, which must lie above the current MARK.
static PkValue *need_container(Pickle *p, size_t at, PkType type) {
    size_t floor = p->n_marks ? p->marks[p->n_marks - 1] : 0;
    if (at <= floor || p->stack[at - 1]->type != type)
        fail(p, type == PK_DICT ? "SETITEM(S) on a non-dict" : "APPEND(S) on a non-list");
    return p->stack[at - 1];
}

static void memo_put(Pickle *p, size_t idx) {
    if (idx > p->r.len) fail(p, "memo index beyond the pickle's length");
    if (idx >= p->memo_cap) {
        size_t old = p->memo_cap;
        GROW(p->memo, p->memo_cap, idx + 1);
        memset(p->memo + old, 0, (p->memo_cap - old) * sizeof *p->memo);
    }
    if (!p->memo[idx]) p->memo_count++;
    p->memo[idx] = top(p);
}

static PkValue *memo_get(Pickle *p, size_t idx) {
    if (idx >= p->memo_cap || !p->memo[idx]) fail(p, "memo GET of an unset index");
    return p->memo[idx];
}

// GLOBAL's "module\nname\n" operand line.
static const char *global_line(Pickle *p, size_t *n) {
    const char *start = (const char *)p->r.data + p->r.pos;
    const char *nl = memchr(start, '\n', p->r.len - p->r.pos < 512 ? p->r.len - p->r.pos : 512);
    if (!nl) fail(p, "GLOBAL name without a newline");
    *n = (size_t)(nl - start);
    br_take(&p->r, *n + 1, "GLOBAL name");
    return start;
}

static PkValue *new_global(Pickle *p, const char *module, size_t mn, const char *name, size_t nn) {
    PkValue *v = new_value(p, PK_GLOBAL);
    v->s = xmalloc(mn + nn + 2);
    memcpy(v->s, module, mn);
    v->s[mn] = '.';
    memcpy(v->s + mn + 1, name, nn);
    v->s[mn + 1 + nn] = 0;
    v->len = mn + 1 + nn;
    return v;
}

static uint64_t take_uint(Pickle *p, int bytes) {
    const uint8_t *b = br_take(&p->r, (size_t)bytes, "opcode argument");
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; k--) v = v << 8 | b[k];
    return v;
}

static void run(Pickle *p, const PkValue **root) {
    for (;;) {
        uint8_t op = br_u8(&p->r, "pickle opcode (no STOP)");
        switch (op) {
        case 0x80: // PROTO
            if (br_u8(&p->r, "protocol") > 5) fail(p, "pickle protocol above 5");
            break;
        case 0x95: take_uint(p, 8); break; // FRAME: a length hint
        case '.':                          // STOP
            *root = pop(p);
            return;
        case '(':
            GROW(p->marks, p->marks_cap, p->n_marks + 1);
            p->marks[p->n_marks++] = p->sp;
            break;
        case '0': pop(p); break;
        case '1': p->sp = pop_mark(p); break; // POP_MARK
        case '2': push(p, top(p)); break;     // DUP
        case 'N': push(p, new_value(p, PK_NONE)); break;
        case 0x88:
        case 0x89: { // NEWTRUE, NEWFALSE
            PkValue *v = new_value(p, PK_BOOL);
            v->i = op == 0x88;
            push(p, v);
            break;
        }
        case 'J': push(p, new_int(p, (int32_t)(uint32_t)take_uint(p, 4))); break;
        case 'K': push(p, new_int(p, (int64_t)take_uint(p, 1))); break;
        case 'M': push(p, new_int(p, (int64_t)take_uint(p, 2))); break;
        case 0x8a: { // LONG1: n-byte two's complement
            int n = br_u8(&p->r, "LONG1 length");
            if (n > 8) fail(p, "integer wider than 64 bits");
            uint64_t u = n ? take_uint(p, n) : 0;
            if (n && n < 8 && (u >> (8 * n - 1) & 1)) u |= ~0ull << (8 * n); // sign-extend
            push(p, new_int(p, (int64_t)u));
            break;
        }
        case 'G': { // BINFLOAT, big-endian
            const uint8_t *b = br_take(&p->r, 8, "BINFLOAT");
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = u << 8 | b[k];
            PkValue *v = new_value(p, PK_FLOAT);
            memcpy(&v->f, &u, 8);
            push(p, v);
            break;
        }
        case 'X':    // BINUNICODE
        case 0x8c:   // SHORT_BINUNICODE
        case 0x8d: { // BINUNICODE8
            uint64_t n = take_uint(p, op == 'X' ? 4 : op == 0x8c ? 1 : 8);
            if (n > p->r.len - p->r.pos) fail(p, "string runs past the end");
            push(p, new_str(p, br_take(&p->r, (size_t)n, "string"), (size_t)n));
            break;
        }
        case ')': push(p, new_value(p, PK_TUPLE)); break;
        case ']': push(p, new_value(p, PK_LIST)); break;
        case '}': push(p, new_value(p, PK_DICT)); break;
        case 't': push(p, collect(p, PK_TUPLE, pop_mark(p))); break;
        case 'l': push(p, collect(p, PK_LIST, pop_mark(p))); break;
        case 0x85:
        case 0x86:
        case 0x87: { // TUPLE1..3
            size_t n = (size_t)(op - 0x84);
            if (p->sp < n || (p->n_marks && p->sp - n < p->marks[p->n_marks - 1])) fail(p, "stack underflow");
            push(p, collect(p, PK_TUPLE, p->sp - n));
            break;
        }
        case 'd': { // DICT from the marked key/value pairs
            size_t from = pop_mark(p);
            if ((p->sp - from) % 2) fail(p, "DICT with an odd number of items");
            push(p, collect(p, PK_DICT, from));
            break;
        }
        case 'a': {
            PkValue *v = pop(p);
            add_item(need_container(p, p->sp, PK_LIST), v);
            break;
        }
        case 'e': {
            size_t from = pop_mark(p);
            PkValue *list = need_container(p, from, PK_LIST);
            for (size_t k = from; k < p->sp; k++) add_item(list, p->stack[k]);
            p->sp = from;
            break;
        }
        case 's': {
            PkValue *v = pop(p), *k = pop(p);
            PkValue *d = need_container(p, p->sp, PK_DICT);
            add_item(d, k), add_item(d, v);
            break;
        }
        case 'u': {
            size_t from = pop_mark(p);
            if ((p->sp - from) % 2) fail(p, "SETITEMS with an odd number of items");
            PkValue *d = need_container(p, from, PK_DICT);
            for (size_t k = from; k < p->sp; k++) add_item(d, p->stack[k]);
            p->sp = from;
            break;
        }
        case 'c': { // GLOBAL
            size_t mn, nn;
            const char *module = global_line(p, &mn), *name = global_line(p, &nn);
            push(p, new_global(p, module, mn, name, nn));
            break;
        }
        case 0x93: { // STACK_GLOBAL
            PkValue *name = pop(p), *module = pop(p);
            if (name->type != PK_STR || module->type != PK_STR) fail(p, "STACK_GLOBAL of non-strings");
            push(p, new_global(p, module->s, module->len, name->s, name->len));
            break;
        }
        case 'R':    // REDUCE
        case 0x81: { // NEWOBJ
            PkValue *args = pop(p), *fn = pop(p);
            if (args->type != PK_TUPLE) fail(p, "REDUCE/NEWOBJ arguments are not a tuple");
            if (pk_is_global(fn, "collections.OrderedDict") && args->n == 0) {
                push(p, new_value(p, PK_DICT));
                break;
            }
            PkValue *call = new_value(p, PK_CALL);
            add_item(call, fn), add_item(call, args);
            push(p, call);
            break;
        }
        case 'b': pop(p), top(p); break; // BUILD: the state is dropped (see pickle.h)
        case 'Q': {                      // BINPERSID
            PkValue *id = new_value(p, PK_PERSID);
            add_item(id, pop(p));
            push(p, id);
            break;
        }
        case 'q': memo_put(p, (size_t)take_uint(p, 1)); break;
        case 'r': memo_put(p, (size_t)take_uint(p, 4)); break;
        case 0x94: memo_put(p, p->memo_count); break; // MEMOIZE
        case 'h': push(p, memo_get(p, (size_t)take_uint(p, 1))); break;
        case 'j': push(p, memo_get(p, (size_t)take_uint(p, 4))); break;
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "unsupported opcode 0x%02x", op);
            fail(p, msg);
        }
        }
    }
}

Pickle *pickle_read(const uint8_t *buf, size_t len, const char *what, const PkValue **root) {
    Pickle *p = xcalloc(1, sizeof *p);
    p->r = (ByteReader){buf, len, 0, what};
    run(p, root);
    return p;
}

void pickle_free(Pickle *p) {
    if (!p) return;
    for (size_t k = 0; k < p->n_values; k++) {
        free(p->values[k]->s);
        free(p->values[k]->items);
        free(p->values[k]);
    }
    free(p->values);
    free(p->stack);
    free(p->marks);
    free(p->memo);
    free(p);
}

const PkValue *pk_dict_get(const PkValue *d, const char *key) {
    for (int64_t k = d->n - 2; k >= 0; k -= 2)
        if (pk_is_str(d->items[k], key)) return d->items[k + 1];
    return NULL;
}

int pk_is_str(const PkValue *v, const char *s) { return v->type == PK_STR && v->len == strlen(s) && !memcmp(v->s, s, v->len); }

int pk_is_global(const PkValue *v, const char *name) { return v->type == PK_GLOBAL && !strcmp(v->s, name); }

const char *pk_type_name(PkType t) {
    static const char *names[] = {"None", "bool", "int",    "float", "str",          "tuple",
                                  "list", "dict", "global", "call",  "persistent id"};
    return names[t];
}
