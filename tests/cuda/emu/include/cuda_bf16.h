// The part of CUDA's bfloat16 header that src/ops/cuda uses, for the CPU emulator: the storage type
// and its conversions (round to nearest even; NaN stays NaN, as the device's __float2bfloat16_rn).
#pragma once
#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    uint16_t bits;
};

static inline __nv_bfloat16 __float2bfloat16_rn(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) h.bits = 0x7fff; // canonical NaN
    else h.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}

static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.bits << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}
