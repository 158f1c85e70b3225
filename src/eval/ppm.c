#include "eval/ppm.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    uint64_t key; // 0: empty slot
    uint16_t *sym;
    uint32_t *count;
    int n_sym, cap;
} Node;

struct Ppm {
    int order, vocab;
    Node *slots;
    uint64_t n_slots, used;
    uint32_t *stamp, gen; // exclusion marks: stamp[s] == gen means excluded in this query
    double *scratch;      // [vocab] for ppm_prob
};

Ppm *ppm_new(int order, int vocab) {
    if (order < 0 || order > PPM_MAX_ORDER) die("PPM order %d is outside 0..%d", order, PPM_MAX_ORDER);
    Ppm *p = xcalloc(1, sizeof *p);
    p->order = order, p->vocab = vocab;
    p->n_slots = 1 << 12;
    p->slots = xcalloc(p->n_slots, sizeof(Node));
    p->stamp = xcalloc((size_t)vocab, sizeof(uint32_t));
    p->scratch = xmalloc(sizeof(double) * (size_t)vocab);
    return p;
}

void ppm_free(Ppm *p) {
    if (!p) return;
    for (uint64_t i = 0; i < p->n_slots; i++) {
        free(p->slots[i].sym);
        free(p->slots[i].count);
    }
    free(p->slots);
    free(p->stamp);
    free(p->scratch);
    free(p);
}

// Context of order k: its length and its k most recent tokens, packed (never 0: bit 63 is set).
static uint64_t context_key(const uint16_t *hist, int64_t n, int k) {
    uint64_t key = (1ull << 63) | ((uint64_t)k << 48);
    for (int i = 0; i < k; i++) key ^= (uint64_t)hist[n - 1 - i] << (16 * i);
    return key;
}

static uint64_t slot_of(const Ppm *p, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull, i = h & (p->n_slots - 1);
    while (p->slots[i].key && p->slots[i].key != key) i = (i + 1) & (p->n_slots - 1);
    return i;
}

static Node *find(const Ppm *p, uint64_t key) {
    Node *nd = &p->slots[slot_of(p, key)];
    return nd->key ? nd : NULL;
}

static void grow(Ppm *p) {
    Node *old = p->slots;
    uint64_t n_old = p->n_slots;
    p->n_slots *= 2;
    p->slots = xcalloc(p->n_slots, sizeof(Node));
    for (uint64_t i = 0; i < n_old; i++)
        if (old[i].key) p->slots[slot_of(p, old[i].key)] = old[i];
    free(old);
}

// Mass and distinct count of the symbols of nd not yet excluded.
static void live_counts(const Ppm *p, const Node *nd, double *n, double *d) {
    *n = 0, *d = 0;
    for (int i = 0; i < nd->n_sym; i++)
        if (p->stamp[nd->sym[i]] != p->gen) *n += nd->count[i], *d += 1;
}

static void exclude(Ppm *p, const Node *nd) {
    for (int i = 0; i < nd->n_sym; i++) p->stamp[nd->sym[i]] = p->gen;
}

static int max_order(const Ppm *p, int64_t n) { return n < p->order ? (int)n : p->order; }

void ppm_distribution(Ppm *p, const uint16_t *hist, int64_t n, double *out) {
    p->gen++;
    memset(out, 0, sizeof(double) * (size_t)p->vocab);
    double escape = 1.0;
    int excluded = 0;
    for (int k = max_order(p, n); k >= 0; k--) {
        const Node *nd = find(p, context_key(hist, n, k));
        if (!nd) continue;
        double cn, cd;
        live_counts(p, nd, &cn, &cd);
        if (cd == 0) continue;
        double esc = cd == p->vocab - excluded ? 0.0 : cd;
        for (int i = 0; i < nd->n_sym; i++)
            if (p->stamp[nd->sym[i]] != p->gen) out[nd->sym[i]] = escape * nd->count[i] / (cn + esc), excluded++;
        if (esc == 0) return;
        escape *= cd / (cn + cd);
        exclude(p, nd);
    }
    for (int s = 0; s < p->vocab; s++)
        if (p->stamp[s] != p->gen) out[s] = escape / (double)(p->vocab - excluded);
}

// The whole distribution is one walk over at most order + 1 contexts and the vocabulary; asking for a
// single symbol costs the same order of work, so ppm_prob reuses it rather than walking twice.
double ppm_prob(Ppm *p, const uint16_t *hist, int64_t n, int sym) {
    ppm_distribution(p, hist, n, p->scratch);
    return p->scratch[sym];
}

void ppm_update(Ppm *p, const uint16_t *hist, int64_t n, int sym) {
    for (int k = max_order(p, n); k >= 0; k--) {
        if (2 * (p->used + 1) > p->n_slots) grow(p);
        uint64_t key = context_key(hist, n, k);
        Node *nd = &p->slots[slot_of(p, key)];
        if (!nd->key) nd->key = key, p->used++;
        int i = 0;
        while (i < nd->n_sym && nd->sym[i] != sym) i++;
        if (i == nd->n_sym) {
            if (nd->n_sym == nd->cap) {
                nd->cap = nd->cap ? 2 * nd->cap : 4;
                nd->sym = xrealloc(nd->sym, sizeof(uint16_t) * (size_t)nd->cap);
                nd->count = xrealloc(nd->count, sizeof(uint32_t) * (size_t)nd->cap);
            }
            nd->sym[i] = (uint16_t)sym, nd->count[i] = 0, nd->n_sym++;
        }
        nd->count[i]++;
    }
}
