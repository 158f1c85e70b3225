// The part of CUDA's warp matrix API (nvcuda::wmma, tensor cores) that src/ops/cuda uses, for the CPU
// emulator: 16x16x16 tiles, bf16 operands, fp32 accumulators. On a GPU a fragment is spread over the
// warp's 32 lanes in an unspecified layout; here every lane holds the whole tile, which gives the
// GPU's results as long as kernels touch fragments through these calls, or element-wise through
// fragment.x[i] for i < num_elements with an operation that does not depend on the lane (the layout
// can be read from a fragment loaded from a tile of known values), and every lane of the warp makes
// the same calls, as the API requires anyway
// (lanes passing different pointers are reported). Each call happens once per warp, as on a GPU:
// loads and stores first pass a barrier of the warp's lanes (emu::warp_sync), and the first lane's
// load, product or store is the warp's (emu::warp_memo). Not caught here: a missing __syncwarp
// between a store and other lanes' plain reads of it (every lane holds the whole tile).
// The products are exact in fp32 and summed in k order; a tensor core's summation order differs.
#pragma once
#include <stdint.h>

#include <type_traits>

#include "../emu.h"
#include "cuda_bf16.h"

extern "C" void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator knows the 16x16x16 shape only");
    static constexpr int num_elements = 256; // this lane's elements: here the whole tile, row-major
    union {
        float v[16][16]; // [row][col] of the tile this fragment holds (A: M x K, B: K x N, C: M x N)
        float x[256];
    };
};

// The alignment and leading-dimension rules of load/store_matrix_sync (CUDA's wmma documentation).
template <class T> inline void check_matrix_pointer(const T *p, unsigned ldm, const char *call) {
    if ((uintptr_t)p % 32) die("CUDA emulator: wmma::%s: pointer %p is not 256-bit aligned", call, (const void *)p);
    if (ldm % (16 / sizeof(T))) die("CUDA emulator: wmma::%s: ldm %u is not a multiple of %zu elements", call, ldm, 16 / sizeof(T));
}

// The warp's memo slot for this call (emu::warp_memo) after checking that this lane's arguments are the
// ones its warp's first lane gave: a load or store happens once per warp, with the first lane's.
inline emu::WarpMemo *collective(const char *call, const void *p, unsigned ldm, int layout) {
    emu::warp_sync(call);
    emu::WarpMemo *memo = emu::warp_memo();
    uint64_t args = ((uint64_t)(uintptr_t)p * 31 + ldm) * 31 + (uint64_t)layout;
    if (memo && memo->filled && memo->args != args)
        die("CUDA emulator: %s: the lanes of a warp passed different pointers or leading dimensions", call);
    if (memo) memo->args = args;
    return memo;
}

// Loads the 16x16 tile at p (leading dimension ldm) into v, once per warp.
template <class T> inline void load_tile(float (&v)[16][16], const T *p, unsigned ldm, bool row_major) {
    const char *call = "wmma::load_matrix_sync";
    emu::WarpMemo *memo = collective(call, p, ldm, row_major);
    if (memo && memo->filled) {
        memcpy(v, memo->out, sizeof v);
        return;
    }
    check_matrix_pointer(p, ldm, call);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            T x = row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
            if constexpr (sizeof(T) == 2) v[r][c] = __bfloat162float(x);
            else v[r][c] = x;
        }
    if (memo) memo->filled = true, memcpy(memo->out, v, sizeof v);
}

template <class Use, class Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f, const __nv_bfloat16 *p, unsigned ldm) {
    load_tile(f.v, p, ldm, std::is_same_v<Layout, row_major>);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t layout) {
    load_tile(f.v, p, ldm, layout == mem_row_major);
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t layout) {
    const char *call = "wmma::store_matrix_sync";
    emu::WarpMemo *memo = collective(call, p, ldm, layout);
    if (memo && memo->filled) return;
    check_matrix_pointer(p, ldm, call);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) (layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.v[r][c];
    if (memo) memo->filled = true;
}

template <class Use, class T, class Layout> inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, T value) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = (float)value;
}

// d = a b + c, once per warp (the lanes hold the same fragments: they come from once-per-warp loads).
template <class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    emu::WarpMemo *memo = emu::warp_memo();
    if (memo && memo->filled) {
        memcpy(d.v, memo->out, sizeof d.v);
        return;
    }
    float out[16][16];
    for (int r = 0; r < 16; r++)
        for (int col = 0; col < 16; col++) {
            float s = c.v[r][col];
            for (int k = 0; k < 16; k++) s += a.v[r][k] * b.v[k][col];
            out[r][col] = s;
        }
    memcpy(d.v, out, sizeof d.v);
    if (memo) memo->filled = true, memcpy(memo->out, out, sizeof out);
}

} // namespace wmma
} // namespace nvcuda
