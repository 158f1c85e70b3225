// src/ops/cuda/warp_mma.h for the CPU emulator: mma.sync m16n8k16 and ldmatrix x4 built on the
// warp's exchange slots (emu::exchange), each lane computing its own registers from the fragment
// layouts that warp_mma.h describes. Products of bf16 values are exact in fp32 and summed in k order
// onto the accumulator; a tensor core's summation order differs. Each ldmatrix row address must be
// 16-byte aligned, as PTX requires (reported otherwise).
#pragma once
#include <stdint.h>

#include "../emu.h"
#include "cuda_bf16.h"

extern "C" void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

namespace emu {
// One mma.sync's operands as each lane holds them, and what lane `lane` computes from them: its four
// accumulators += A B (emu.cpp, optimized and uninstrumented: the emulated kernels' hottest loop).
struct MmaOperands {
    unsigned a[4], b[2];
};
void mma_lane(float d[4], const MmaOperands *lanes, unsigned lane);
} // namespace emu

inline unsigned pack_bf16(float lo, float hi) {
    return (unsigned)__float2bfloat16_rn(lo).bits | (unsigned)__float2bfloat16_rn(hi).bits << 16;
}

inline void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2]) {
    emu::MmaOperands mine = {{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
    emu::exchange(mine, "mma.sync", [&](emu::Published<emu::MmaOperands> published) {
        emu::MmaOperands lanes[32];
        for (unsigned i = 0; i < 32; i++) lanes[i] = published[i];
        emu::mma_lane(d, lanes, emu::lane_id());
        return 0;
    });
}

namespace emu {
inline void ldmatrix(unsigned r[4], const __nv_bfloat16 *row, bool trans, const char *call) {
    if ((uintptr_t)row % 16) die("CUDA emulator: %s: row address %p is not 16-byte aligned", call, (const void *)row);
    unsigned lane = lane_id();
    exchange(row, call, [&](Published<const __nv_bfloat16 *> rows) {
        for (int i = 0; i < 4; i++) { // element (row, col) of matrix i is rows[8 i + row][col]
            auto at = [&](unsigned row, unsigned col) { return __bfloat162float(rows[8 * i + row][col]); };
            unsigned g = lane / 4, t2 = 2 * (lane % 4);
            r[i] = trans ? pack_bf16(at(t2, g), at(t2 + 1, g)) : pack_bf16(at(g, t2), at(g, t2 + 1)); // exact: bf16 already
        }
        return 0;
    });
}
} // namespace emu

inline void ldmatrix_x4(unsigned r[4], const __nv_bfloat16 *row) { emu::ldmatrix(r, row, false, "ldmatrix"); }
inline void ldmatrix_x4_trans(unsigned r[4], const __nv_bfloat16 *row) { emu::ldmatrix(r, row, true, "ldmatrix.trans"); }
