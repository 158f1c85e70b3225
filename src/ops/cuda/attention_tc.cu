// Causal GQA attention on tensor cores: the FlashAttention-2 schedule with mma.sync m16n8k16 (bf16
// operands, fp32 accumulation; warp_mma.h). A block owns a tile of rows (queries for the forward and
// dQ, keys for dK/dV) and walks the other side's tiles; no atomics, a fixed summation order. q, k,
// v, dy are read as bf16 (so tiles load 8 values per 16-byte access): q, k, v as the caller rounded
// them (RoundedInput, written by the ops that produce them, read by forward and backward) or rounded
// here into scratch buffers; dy by the caller's pass that forms D = rowsum(dy y). The probabilities P
// and dS are rounded before they multiply V, K, Q or dY, as in FlashAttention under the reference's
// autocast; softmax statistics, scores and sums stay fp32.
//
// A block is 4 warps and owns OWN = 64 rows, 16 per warp. All threads copy the other side's next
// WALK rows into shared memory; from there each warp works alone on its 16 rows, and everything a
// warp computes stays in its registers: its rows' operands (A fragments, loaded once), the scores of
// a tile (mma accumulators), the softmax or dS (element-wise on those accumulators, row statistics
// through shuffles within the 4 lanes that share a row), and the products with the tile, whose A
// operand is the accumulators themselves (the C layout of two 16 x 8 tiles is the A layout of one
// 16 x 16 tile). Shared memory holds only the operand tiles, read by ldmatrix. Scores are kept in
// log2 units (scaled by log2(e) / sqrt(Dh)) so that each exponential is one exp2f. Head dimension: a
// multiple of 16 up to 128.
#include <cuda_bf16.h>
#include <math.h>

#include <type_traits>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/warp_mma.h"
extern "C" {
#include "ops/ops.h"
}

#define WARPS 4
#define THREADS (32 * WARPS)
#define OWN (16 * WARPS) // rows a block owns
// Rows of the other side per step. Equal to OWN, the causal walks never give a warp a tile wholly
// masked for its rows (the diagonal tile is the last, and holds some of every warp's rows), so no
// warp checks for one; with other sizes the masks would still be right, only slower.
#define WALK OWN
#define MAX_DH 128
// bf16 rows padded by 8 values (16 bytes): the 8 rows an ldmatrix matrix reads then start in
// different banks, and every row stays 16-byte aligned.
#define PAD 8
#define FULL_WARP 0xffffffffu
#define LOG2E 1.4426950408889634f

typedef __nv_bfloat16 bf16;

int cuda_attention_tc_supports(int Dh) { return Dh % 16 == 0 && Dh <= MAX_DH; }

// Rows [r0, r0 + rows) of head `head` of x [B,T,heads,Dh] (bf16) into the shared tile dst [rows, ld],
// 8 values per access; zeros past T.
__device__ static void copy_head_rows(bf16 *dst, int ld, const bf16 *x, int b, int r0, int rows, int head, int T, int heads,
                                      int Dh) {
    int chunks = Dh / 8; // 16-byte pieces of a row
    for (int e = threadIdx.x; e < rows * chunks; e += blockDim.x) {
        int r = e / chunks, c = e % chunks;
        uint4 piece = make_uint4(0, 0, 0, 0);
        if (r0 + r < T) piece = *(const uint4 *)(x + (((size_t)b * T + r0 + r) * heads + head) * Dh + c * 8);
        *(uint4 *)(dst + (size_t)r * ld + c * 8) = piece;
    }
}

// The forward's and dQ's next tile of keys and values, rows [j0, j0 + WALK) of KV head g, once every
// warp is done with the previous one.
__device__ static void next_kv_tile(bf16 *Ks, bf16 *Vs, int ld, const bf16 *k, const bf16 *v, int b, int j0, int g, int T,
                                    int Hkv, int Dh) {
    __syncthreads();
    copy_head_rows(Ks, ld, k, b, j0, WALK, g, T, Hkv, Dh);
    copy_head_rows(Vs, ld, v, b, j0, WALK, g, T, Hkv, Dh);
    __syncthreads();
}

// ---- warp-level products (every lane of the warp calls them together)

// The warp's A fragments of rows [0, 16) of X (bf16, ld): a[c] holds columns [16 c, 16 c + 16).
template <int Dh> __device__ static void load_rows_a(unsigned (*a)[4], const bf16 *X, int ld) {
    int lane = threadIdx.x % 32;
    const bf16 *row = X + (lane % 16) * ld + 8 * (lane / 16); // matrices: rows 0-7 | 8-15, then cols 8-15
#pragma unroll
    for (int c = 0; c < Dh / 16; c++) ldmatrix_x4(a[c], row + 16 * c);
}

// s = X Y^T [16, WALK] as WALK / 8 accumulator tiles (s[n]: columns [8 n, 8 n + 8)), X in A fragments
// (16 x Dh), Y rows [0, WALK) (bf16, ld).
template <int Dh> __device__ static void warp_scores(float (*s)[4], const unsigned (*a)[4], const bf16 *Y, int ld) {
    int lane = threadIdx.x % 32;
    const bf16 *row = Y + (lane % 8 + 8 * (lane / 16)) * ld + 8 * (lane / 8 % 2); // rows of Y are columns of B
#pragma unroll
    for (int n = 0; n < WALK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int n = 0; n < WALK / 8; n += 2)
#pragma unroll
        for (int c = 0; c < Dh / 16; c++) {
            unsigned b[4]; // B of tiles n (b[0], b[1]) and n + 1 (b[2], b[3]) over columns [16 c, 16 c + 16)
            ldmatrix_x4(b, row + (size_t)n * 8 * ld + 16 * c);
            mma_bf16_16816(s[n], a[c], b);
            mma_bf16_16816(s[n + 1], a[c], b + 2);
        }
}

// acc += P Z: acc [16, Dh] as Dh / 8 accumulator tiles, P [16, WALK] as warp_scores leaves it (fp32,
// rounded to bf16 here), Z rows [0, WALK) (bf16, ld).
template <int Dh> __device__ static void warp_acc(float (*acc)[4], const float (*p)[4], const bf16 *Z, int ld) {
    int lane = threadIdx.x % 32;
    const bf16 *row = Z + (lane % 16) * ld + 8 * (lane / 16);
#pragma unroll
    for (int c = 0; c < WALK / 16; c++) {
        const float *lo = p[2 * c], *hi = p[2 * c + 1]; // columns [16 c, 16 c + 8) and [16 c + 8, 16 c + 16)
        unsigned a[4] = {pack_bf16(lo[0], lo[1]), pack_bf16(lo[2], lo[3]), pack_bf16(hi[0], hi[1]), pack_bf16(hi[2], hi[3])};
#pragma unroll
        for (int n = 0; n < Dh / 8; n += 2) {
            unsigned b[4]; // B of output tiles n and n + 1 from rows [16 c, 16 c + 16) of Z
            ldmatrix_x4_trans(b, row + (size_t)16 * c * ld + 8 * n);
            mma_bf16_16816(acc[n], a, b);
            mma_bf16_16816(acc[n + 1], a, b + 2);
        }
    }
}

// Writes the warp's acc [16, Dh] times `scale` to rows row0 + [0, 16) of head `head` of x
// [B,T,heads,Dh] and/or (xr, bf16) of its rounding, either may be NULL; rows at or past T skipped.
template <int Dh>
__device__ static void write_rows(float *x, bf16 *xr, const float (*acc)[4], float scale, int b, int row0, int head, int T,
                                  int heads) {
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int half = 0; half < 2; half++) { // rows lane / 4 and lane / 4 + 8 of the tiles
        int r = row0 + lane / 4 + 8 * half;
        if (r >= T) continue;
        size_t at = (((size_t)b * T + r) * heads + head) * Dh + 2 * (lane % 4);
#pragma unroll
        for (int n = 0; n < Dh / 8; n++) {
            float lo = acc[n][2 * half] * scale, hi = acc[n][2 * half + 1] * scale;
            if (x) *(float2 *)(x + at + 8 * n) = make_float2(lo, hi);
            if (xr) *(unsigned *)(xr + at + 8 * n) = pack_bf16(lo, hi);
        }
    }
}

// The sum over the 4 lanes that hold a row (lanes 4 g to 4 g + 3), the same on each of them.
__device__ static float quad_sum(float v) {
    v += __shfl_xor_sync(FULL_WARP, v, 1);
    return v + __shfl_xor_sync(FULL_WARP, v, 2);
}

__device__ static float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(FULL_WARP, v, 1));
    return fmaxf(v, __shfl_xor_sync(FULL_WARP, v, 2));
}

// ---- kernels. In an accumulator tile s[n], element i of this lane is at row lane / 4 + 8 (i / 2),
// column 8 n + 2 (lane % 4) + i % 2.

// grid (query tiles of OWN, H, B), the last tiles (the longest walks) first; q, k, v bf16. Shared: Q
// [OWN], K, V [WALK] (bf16, ld).
template <int Dh>
__global__ static void __launch_bounds__(THREADS) attn_fwd_tc(float *y, bf16 *yr, float *lse, const bf16 *q, const bf16 *k,
                                                              const bf16 *v, int T, int H, int Hkv, float scale_log2) {
    extern __shared__ __align__(16) bf16 sh[];
    const int ld = Dh + PAD;
    bf16 *Qs = sh, *Ks = Qs + OWN * ld, *Vs = Ks + WALK * ld;
    int t0 = (gridDim.x - 1 - blockIdx.x) * OWN, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    int w0 = t0 + 16 * (threadIdx.x / 32), lane = threadIdx.x % 32, end = T < t0 + OWN ? T : t0 + OWN;
    copy_head_rows(Qs, ld, q, b, t0, OWN, h, T, H, Dh);
    __syncthreads();
    unsigned qa[Dh / 16][4];
    load_rows_a<Dh>(qa, Qs + (w0 - t0) * ld, ld);
    float o[Dh / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; // l: this lane's columns only
    for (int j0 = 0; j0 < end; j0 += WALK) {
        next_kv_tile(Ks, Vs, ld, k, v, b, j0, g, T, Hkv, Dh);
        float s[WALK / 8][4];
        warp_scores<Dh>(s, qa, Ks, ld);
#pragma unroll
        for (int half = 0; half < 2; half++) { // online softmax of rows lane / 4 + 8 half
            int t = w0 + lane / 4 + 8 * half;
            float mx = m[half], sum = 0.0f;
#pragma unroll
            for (int n = 0; n < WALK / 8; n++)
#pragma unroll
                for (int i = 2 * half; i < 2 * half + 2; i++) {
                    int j = j0 + 8 * n + 2 * (lane % 4) + i % 2;
                    s[n][i] = t < T && j <= t ? s[n][i] * scale_log2 : -INFINITY;
                    mx = fmaxf(mx, s[n][i]);
                }
            mx = quad_max(mx);
#pragma unroll
            for (int n = 0; n < WALK / 8; n++)
#pragma unroll
                for (int i = 2 * half; i < 2 * half + 2; i++) {
                    s[n][i] = mx == -INFINITY ? 0.0f : exp2f(s[n][i] - mx);
                    sum += s[n][i];
                }
            float alpha = mx == -INFINITY ? 1.0f : exp2f(m[half] - mx);
            l[half] = l[half] * alpha + sum, m[half] = mx;
#pragma unroll
            for (int n = 0; n < Dh / 8; n++) o[n][2 * half] *= alpha, o[n][2 * half + 1] *= alpha;
        }
        warp_acc<Dh>(o, s, Vs, ld); // the warp's output rows += P V
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int t = w0 + lane / 4 + 8 * half;
        float li = quad_sum(l[half]), inv = li > 0 ? 1.0f / li : 0.0f; // rows past T have l = 0
#pragma unroll
        for (int n = 0; n < Dh / 8; n++) o[n][2 * half] *= inv, o[n][2 * half + 1] *= inv;
        if (lane % 4 == 0 && t < T) lse[((size_t)b * H + h) * T + t] = (m[half] + log2f(li)) / LOG2E;
    }
    write_rows<Dh>(y, yr, o, 1.0f, b, w0, h, T, H);
}

// grid (query tiles of OWN, H, B), the last tiles first: dq_t = scale sum_j<=t dS[t, j] k_j with
// dS = P (dY V^T - D); q, k, v, dy bf16. Shared: Q, dY [OWN], K, V [WALK] (bf16, ld).
template <int Dh>
__global__ static void __launch_bounds__(THREADS) attn_dq_tc(float *dq, const bf16 *dy, const float *lse, const float *D,
                                                             const bf16 *q, const bf16 *k, const bf16 *v, int T, int H, int Hkv,
                                                             float scale_log2, float scale) {
    extern __shared__ __align__(16) bf16 sh[];
    const int ld = Dh + PAD;
    bf16 *Qs = sh, *dYs = Qs + OWN * ld, *Ks = dYs + OWN * ld, *Vs = Ks + WALK * ld;
    int t0 = (gridDim.x - 1 - blockIdx.x) * OWN, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    int w0 = t0 + 16 * (threadIdx.x / 32), lane = threadIdx.x % 32, end = T < t0 + OWN ? T : t0 + OWN;
    copy_head_rows(Qs, ld, q, b, t0, OWN, h, T, H, Dh);
    copy_head_rows(dYs, ld, dy, b, t0, OWN, h, T, H, Dh);
    __syncthreads();
    unsigned qa[Dh / 16][4], dya[Dh / 16][4];
    load_rows_a<Dh>(qa, Qs + (w0 - t0) * ld, ld);
    load_rows_a<Dh>(dya, dYs + (w0 - t0) * ld, ld);
    float lse2[2], Dr[2], acc[Dh / 8][4] = {}; // the lane's two rows' lse (log2 units) and D
    for (int half = 0; half < 2; half++) {
        int t = w0 + lane / 4 + 8 * half;
        size_t o = ((size_t)b * H + h) * T + t;
        lse2[half] = t < T ? lse[o] * LOG2E : 0.0f, Dr[half] = t < T ? D[o] : 0.0f;
    }
    for (int j0 = 0; j0 < end; j0 += WALK) {
        next_kv_tile(Ks, Vs, ld, k, v, b, j0, g, T, Hkv, Dh);
        float s[WALK / 8][4], dp[WALK / 8][4];
        warp_scores<Dh>(s, qa, Ks, ld);
        warp_scores<Dh>(dp, dya, Vs, ld);
#pragma unroll
        for (int n = 0; n < WALK / 8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int t = w0 + lane / 4 + 8 * (i / 2), j = j0 + 8 * n + 2 * (lane % 4) + i % 2;
                float p = t < T && j <= t ? exp2f(s[n][i] * scale_log2 - lse2[i / 2]) : 0.0f;
                s[n][i] = p * (dp[n][i] - Dr[i / 2]); // dS
            }
        warp_acc<Dh>(acc, s, Ks, ld);
    }
    write_rows<Dh>(dq, nullptr, acc, scale, b, w0, h, T, H);
}

// grid (key tiles of OWN, Hkv, B): for the keys of KV head g, over the query heads of its group and
// the query tiles from the key tile on: dk_j = scale sum_t dS[t, j] q_t, dv_j = sum_t P[t, j] dy_t;
// q, k, v, dy bf16. The warp's tiles are transposed (rows: its keys, columns: the tile's queries).
// Shared: K, V [OWN], Q, dY [WALK] (bf16, ld), then lse and D of the WALK query rows (fp32).
template <int Dh>
__global__ static void __launch_bounds__(THREADS) attn_dkv_tc(float *dk, float *dv, const bf16 *dy, const float *lse,
                                                              const float *D, const bf16 *q, const bf16 *k, const bf16 *v,
                                                              int T, int H, int Hkv, float scale_log2, float scale) {
    extern __shared__ __align__(16) bf16 sh[];
    const int ld = Dh + PAD;
    bf16 *Ks = sh, *Vs = Ks + OWN * ld, *Qs = Vs + OWN * ld, *dYs = Qs + WALK * ld;
    float *lse_s = (float *)(dYs + WALK * ld), *D_s = lse_s + WALK;
    int j0 = blockIdx.x * OWN, g = blockIdx.y, b = blockIdx.z, group = H / Hkv;
    int w0 = j0 + 16 * (threadIdx.x / 32), lane = threadIdx.x % 32;
    copy_head_rows(Ks, ld, k, b, j0, OWN, g, T, Hkv, Dh);
    copy_head_rows(Vs, ld, v, b, j0, OWN, g, T, Hkv, Dh);
    __syncthreads();
    unsigned ka[Dh / 16][4], va[Dh / 16][4];
    load_rows_a<Dh>(ka, Ks + (w0 - j0) * ld, ld);
    load_rows_a<Dh>(va, Vs + (w0 - j0) * ld, ld);
    float acc_k[Dh / 8][4] = {}, acc_v[Dh / 8][4] = {};
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = j0; t0 < T; t0 += WALK) {
            __syncthreads(); // every warp done with the previous Q, dY and stats
            copy_head_rows(Qs, ld, q, b, t0, WALK, h, T, H, Dh);
            copy_head_rows(dYs, ld, dy, b, t0, WALK, h, T, H, Dh);
            load_row_stats(lse_s, D_s, lse, D, b, h, t0, WALK, T, H);
            __syncthreads();
            float s[WALK / 8][4], dp[WALK / 8][4];
            warp_scores<Dh>(s, ka, Qs, ld);
            warp_scores<Dh>(dp, va, dYs, ld);
#pragma unroll
            for (int n = 0; n < WALK / 8; n++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    int j = w0 + lane / 4 + 8 * (i / 2), c = 8 * n + 2 * (lane % 4) + i % 2, t = t0 + c; // key j, query t
                    float p = t < T && j <= t ? exp2f(s[n][i] * scale_log2 - lse_s[c] * LOG2E) : 0.0f;
                    s[n][i] = p, dp[n][i] = p * (dp[n][i] - D_s[c]); // P^T and dS^T
                }
            warp_acc<Dh>(acc_v, s, dYs, ld);
            warp_acc<Dh>(acc_k, dp, Qs, ld);
        }
    write_rows<Dh>(dk, nullptr, acc_k, scale, b, w0, g, T, Hkv);
    write_rows<Dh>(dv, nullptr, acc_v, 1.0f, b, w0, g, T, Hkv);
}

// ---- launches

// Dynamic shared memory beyond 48 KiB needs the kernel's opt-in (every bf16-capable GPU gives 99 KiB or more).
template <class Kernel> static void allow_shared(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// Calls launch(std::integral_constant<int, Dh>()): the kernels take the head dimension as a template
// argument, so their fragments are registers (a runtime count would put them in memory).
template <int DH = 16, class Launch> static void with_head_dim(int Dh, Launch launch) {
    if constexpr (DH <= MAX_DH) {
        if (Dh == DH) launch(std::integral_constant<int, DH>());
        else with_head_dim<DH + 16>(Dh, launch);
    } else {
        die("CUDA attention on tensor cores: head dimension %d is not a multiple of 16 up to %d", Dh, MAX_DH);
    }
}

const bf16 *cuda_attention_operand(CudaScratch use, const float *x, const RoundedInput *r, size_t n) {
    return r ? cuda_rounded_values(r, x, n, "attention") : cuda_bf16_copy(use, x, n);
}

void cuda_attention_tc_forward(float *y, bf16 *yr, float *lse, const float *q, const float *k, const float *v,
                               const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh) {
    size_t ld = Dh + PAD, nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    size_t shared = sizeof(bf16) * (OWN + 2 * WALK) * ld;
    float scale_log2 = (float)(LOG2E / sqrt((double)Dh));
    const bf16 *qh = cuda_attention_operand(SCRATCH_ATTN_Q, q, qkv_r, nq),
               *kh = cuda_attention_operand(SCRATCH_ATTN_K, k, qkv_r ? qkv_r + 1 : NULL, nk),
               *vh = cuda_attention_operand(SCRATCH_ATTN_V, v, qkv_r ? qkv_r + 2 : NULL, nk);
    with_head_dim(Dh, [&](auto dh) {
        auto kernel = attn_fwd_tc<decltype(dh)::value>;
        allow_shared(kernel, shared);
        kernel<<<dim3(blocks_for((size_t)T, OWN), H, B), THREADS, shared>>>(y, yr, lse, qh, kh, vh, T, H, Hkv, scale_log2);
        CUDA_CHECK_LAUNCH_AT("attention_tc forward");
    });
}

void cuda_attention_tc_backward(float *dq, float *dk, float *dv, const bf16 *dyh, const float *lse, const float *D,
                                const float *q, const float *k, const float *v, const RoundedInput *qkv_r, int B, int T,
                                int H, int Hkv, int Dh) {
    double scale = 1.0 / sqrt((double)Dh);
    size_t ld = Dh + PAD, nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    size_t shared = sizeof(bf16) * (2 * OWN + 2 * WALK) * ld, shared_dkv = shared + sizeof(float) * 2 * WALK;
    const bf16 *qh = cuda_attention_operand(SCRATCH_ATTN_Q, q, qkv_r, nq),
               *kh = cuda_attention_operand(SCRATCH_ATTN_K, k, qkv_r ? qkv_r + 1 : NULL, nk),
               *vh = cuda_attention_operand(SCRATCH_ATTN_V, v, qkv_r ? qkv_r + 2 : NULL, nk);
    with_head_dim(Dh, [&](auto dh) {
        auto dq_kernel = attn_dq_tc<decltype(dh)::value>;
        auto dkv_kernel = attn_dkv_tc<decltype(dh)::value>;
        allow_shared(dq_kernel, shared);
        allow_shared(dkv_kernel, shared_dkv);
        dq_kernel<<<dim3(blocks_for((size_t)T, OWN), H, B), THREADS, shared>>>(dq, dyh, lse, D, qh, kh, vh, T, H, Hkv,
                                                                               (float)(scale * LOG2E), (float)scale);
        CUDA_CHECK_LAUNCH_AT("attention_tc dq");
        dkv_kernel<<<dim3(blocks_for((size_t)T, OWN), Hkv, B), THREADS, shared_dkv>>>(dk, dv, dyh, lse, D, qh, kh, vh, T, H,
                                                                                      Hkv, (float)(scale * LOG2E), (float)scale);
        CUDA_CHECK_LAUNCH_AT("attention_tc dk dv");
    });
}
