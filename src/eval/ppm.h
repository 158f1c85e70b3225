// PPM-C over tokens (Moffat 1990, "method C" escapes, with exclusion), the context mixer of #413:
// from the longest context down, a symbol seen c times in a context with n counts and d distinct
// symbols gets c / (n + d); the escape d / (n + d) passes the rest of the mass to the next shorter
// context, where symbols already offered are excluded; order -1 is uniform over what remains.
// Contexts the model has never seen are skipped without an escape, and a context whose symbols already
// cover every remaining one keeps all the mass (no escape), so the distribution always sums to one.
#pragma once
#include <stdint.h>

#define PPM_MAX_ORDER 3

typedef struct Ppm Ppm;

Ppm *ppm_new(int order, int vocab); // dies unless 0 <= order <= PPM_MAX_ORDER
void ppm_free(Ppm *p);
// P(sym | the last min(order, n) tokens of hist[0..n)), from the counts seen so far.
double ppm_prob(Ppm *p, const uint16_t *hist, int64_t n, int sym);
// The whole distribution (out: [vocab]); it sums to one.
void ppm_distribution(Ppm *p, const uint16_t *hist, int64_t n, double *out);
// Counts sym after hist in every context order 0..order.
void ppm_update(Ppm *p, const uint16_t *hist, int64_t n, int sym);
