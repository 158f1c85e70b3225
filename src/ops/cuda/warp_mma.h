// Warp-level tensor-core instructions (PTX mma.sync m16n8k16 with bf16 operands and fp32 accumulators,
// ldmatrix), for kernels that keep their tiles in registers. Every call is collective: all 32 lanes
// of a warp make it together. The layouts are PTX's (ISA, "Matrix fragments for mma.m16n8k16 with
// floating point type" and "ldmatrix"), with g = lane / 4 and t = lane % 4:
//   A, 16 x 16, four registers of two bf16 each: a[0] = row g, cols 2t, 2t+1; a[1] = row g + 8, the
//     same cols; a[2], a[3] = the same rows at cols 2t + 8, 2t + 9. (The lower column in the low half.)
//   B, 16 x 8 (k x n), two registers: b[0] = rows (k) 2t, 2t+1 of col (n) g; b[1] = rows 2t + 8, 2t + 9.
//   C, 16 x 8 fp32, four values: c[0], c[1] = row g, cols 2t, 2t+1; c[2], c[3] = row g + 8.
// ldmatrix x4 loads four 8 x 8 bf16 matrices: lane l gives the address of row l % 8 of matrix l / 8
// (16 contiguous bytes, 16-byte aligned, in shared memory), and register i of lane l receives row l / 4,
// cols 2 (l % 4), +1 of matrix i; with .trans it receives rows 2 (l % 4), +1 of col l / 4 instead.
// The CPU emulator (tests/cuda/emu) implements the same calls from this description.
#pragma once
#include <cuda_bf16.h>

#ifdef __CUDACC__
// d += a b (A 16 x 16, B 16 x 8, D 16 x 8)
__device__ __forceinline__ void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Four 8 x 8 matrices from the rows whose addresses the lanes give (row: this lane's).
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const __nv_bfloat16 *row) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// The same, each matrix transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const __nv_bfloat16 *row) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// Two fp32 values rounded to bf16 (nearest even) in one register, lo in the low half.
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(unsigned *)&v;
}
#else
#include <emu_warp_mma.h> // the CPU emulator's versions
#endif
