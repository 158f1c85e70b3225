// Host-side integer and table work the model hands to the backend: BigramHash bucket ids (token ids
// stay host arrays in the op interface) and the RoPE cos/sin tables.
#include "model/host_tables.h"

#include <math.h>
#include <stddef.h>

#include "util.h"

void bigram_hash(int32_t *h, const int32_t *x, int B, int T, int buckets) {
    int32_t mod = buckets - 1;
    for (int b = 0; b < B; b++) {
        const int32_t *xs = x + (size_t)b * T;
        int32_t *hs = h + (size_t)b * T;
        hs[0] = mod;
        for (int t = 1; t < T; t++) {
            // torch multiplies int32 tensors with wraparound; unsigned arithmetic does the same without UB
            int32_t v = (int32_t)((36313u * (uint32_t)xs[t]) ^ (27191u * (uint32_t)xs[t - 1]));
            int32_t r = v % mod;
            hs[t] = r < 0 ? r + mod : r; // torch's % takes the divisor's sign
        }
    }
}

// Same float32 steps as train_gpt.py's Rotary: inv_freq = 1 / base^(2j/rot), angle = pos * inv_freq.
// With bf16 set, positions, inv_freq, angles and results are rounded to bf16 as happens on GPU after
// model.bfloat16() (parity aid only; fp32 is the intended math).
void rope_tables(real *cos_t, real *sin_t, int T, int rot, double base, int bf16) {
    int half = rot / 2;
    for (int j = 0; j < half; j++) {
        float inv = 1.0f / powf((float)base, (float)(2 * j) / (float)rot);
        if (bf16) inv = bf16_round(inv);
        for (int t = 0; t < T; t++) {
            float pos = bf16 ? bf16_round((float)t) : (float)t;
            float ang = pos * inv;
            if (bf16) ang = bf16_round(ang);
            float c = (float)cos((double)ang), s = (float)sin((double)ang);
            cos_t[(size_t)t * half + j] = bf16 ? bf16_round(c) : c;
            sin_t[(size_t)t * half + j] = bf16 ? bf16_round(s) : s;
        }
    }
}
