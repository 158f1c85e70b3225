// Host-side work of the model: BigramHash ids and RoPE tables, computed in host memory.
#pragma once
#include <stdint.h>

#include "real.h"

// BigramHash ids of x [B,T]: h[b,0] = buckets-1; h[b,t] = ((36313 x_t) xor (27191 x_{t-1})) mod (buckets-1)
// in int32 arithmetic as the records' torch code (wrapping products, a non-negative remainder).
void bigram_hash(int32_t *h, const int32_t *x, int B, int T, int buckets);
// cos/sin tables [T, rot/2] with angle = pos * base^(-2j/rot); bf16 = round like the bf16 reference.
void rope_tables(real *cos_t, real *sin_t, int T, int rot, double base, int bf16);
