// Causal GQA attention on tensor cores (wmma, bf16 operands, fp32 accumulation): the schedule of
// attention.cu's fp32 kernels (a block owns a tile of query rows for the forward and dQ, or of key
// rows for dK/dV, and walks the other side's tiles; no atomics, fixed summation order) with each
// tile product on tensor cores. q, k, v, dy are rounded to bf16 once per call (into scratch
// buffers, so tiles load 8 values per 16-byte access), and so are the probabilities P and dS before
// they multiply V, K, Q or dY, as in FlashAttention under the reference's autocast; softmax
// statistics, scores and every sum stay fp32.
//
// A block is 4 warps and owns OWN = 64 rows, 16 per warp. All threads load the tiles of the other
// side; from there on each warp works alone on its 16 rows (their scores, softmax or dS, products),
// so the block meets at a barrier only around tile loads, and a warp skips a tile the causal mask
// hides from all its rows. The owned rows' operands (Q, or K and V) and the outputs stay in the
// warp's fragments (registers) for the whole walk; the forward rescales its output fragments row by
// row through the fragment layout, read once from a tile of row numbers (wmma leaves the layout
// unspecified, but load, mma and element access agree on it). Head dimension: a multiple of 16 up to
// 128.
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

#include <type_traits>

#include "ops/cuda/cuda_check.h"

using namespace nvcuda;

#define WARPS 4
#define THREADS (32 * WARPS)
#define OWN (16 * WARPS) // rows a block owns
#define WALK 32          // rows of the other side per step
#define MAX_DH 128
// Row padding: bf16 rows 8 elements (16 bytes), fp32 rows 4, so that consecutive rows start in
// different shared-memory banks while every 16 x 16 tile stays 32-byte aligned, as wmma requires,
// and every bf16 row 16-byte aligned for the vector copies.
#define PAD_H 8
#define PAD_F 4

typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBt; // B from the rows of B^T
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

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
__device__ static void next_kv_tile(bf16 *Ks, bf16 *Vs, int ldh, const bf16 *k, const bf16 *v, int b, int j0, int g, int T,
                                    int Hkv, int Dh) {
    __syncthreads();
    copy_head_rows(Ks, ldh, k, b, j0, WALK, g, T, Hkv, Dh);
    copy_head_rows(Vs, ldh, v, b, j0, WALK, g, T, Hkv, Dh);
    __syncthreads();
}

// The warp's 16 rows of A [16, 16 * N_K] (rows lda apart) as matrix_a fragments, one per 16 columns.
template <int N_K> __device__ static void load_rows_a(FragA *a, const bf16 *A, int lda) {
#pragma unroll
    for (int k = 0; k < N_K; k++) wmma::load_matrix_sync(a[k], A + k * 16, lda);
}

// The warp's C [16, 16 * n_tiles] (fp32, ldc) = A B^T, with A in fragments (16 x 16 N_K) and B
// [16 * n_tiles, 16 N_K] bf16 rows.
template <int N_K>
__device__ static void warp_abt(float *C, int ldc, const FragA *a, const bf16 *B, int ldb, int n_tiles) {
    for (int n = 0; n < n_tiles; n++) {
        FragC c;
        wmma::fill_fragment(c, 0.0f);
#pragma unroll
        for (int k = 0; k < N_K; k++) {
            FragBt bt;
            wmma::load_matrix_sync(bt, B + (size_t)n * 16 * ldb + k * 16, ldb);
            wmma::mma_sync(c, a[k], bt, c);
        }
        wmma::store_matrix_sync(C + n * 16, c, ldc, wmma::mem_row_major);
    }
}

// The warp's acc[n] (the 16 x 16 column tiles of a 16 x 16 N_TILES result) += A [16, K] B [K, 16 N_TILES],
// bf16 rows.
template <int N_TILES> __device__ static void warp_ab_add(FragC *acc, const bf16 *A, int lda, const bf16 *B, int ldb, int K) {
    for (int k = 0; k < K; k += 16) {
        FragA a;
        wmma::load_matrix_sync(a, A + k, lda);
#pragma unroll
        for (int n = 0; n < N_TILES; n++) {
            FragB bm;
            wmma::load_matrix_sync(bm, B + (size_t)k * ldb + n * 16, ldb);
            wmma::mma_sync(acc[n], a, bm, acc[n]);
        }
    }
}

// Writes the warp's acc (its 16 rows from row0 + 16 warp, Dh columns) times `scale` to rows of head
// `head` of x [B,T,heads,Dh], through the warp's 16 x 16 staging tile; rows at or past `rows` skipped.
template <int Dh>
__device__ static void write_rows(float *x, const FragC *acc, float *stage, float scale, int b, int row0, int rows, int head,
                                  int T, int heads) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *mine = stage + warp * 256;
#pragma unroll
    for (int n = 0; n < Dh / 16; n++) {
        wmma::store_matrix_sync(mine, acc[n], 16, wmma::mem_row_major);
        __syncwarp(); // the other lanes' parts of the tile are visible
        for (int e = lane; e < 256; e += 32) {
            int r = warp * 16 + e / 16, d = n * 16 + e % 16;
            if (r < rows) x[(((size_t)b * T + row0 + r) * heads + head) * Dh + d] = mine[e] * scale;
        }
        __syncwarp(); // read before the next tile overwrites it
    }
}

// grid (query tiles of OWN, H, B); q, k, v bf16. Shared: a 16 x 16 tile of row numbers (the fragment
// layout), Q [OWN], K, V [WALK] (bf16, ldh), P [OWN, WALK] (bf16), S [OWN, WALK] (fp32; at the end the
// warps' staging tiles), the running max m and sum l, each row's rescale factor alpha, and each row's
// two half-row partials (part [OWN, 2]): the softmax gives every row two lanes of its warp.
template <int Dh>
__global__ static void attn_fwd_tc(float *y, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int T, int H, int Hkv,
                                   float scale) {
    extern __shared__ __align__(128) float sh[]; // wmma tiles need 32-byte alignment
    int ldh = Dh + PAD_H, ldp = WALK + PAD_H, lds = WALK + PAD_F;
    float *row_ids = sh;
    bf16 *Qs = (bf16 *)(row_ids + 256), *Ks = Qs + OWN * ldh, *Vs = Ks + WALK * ldh, *P = Vs + WALK * ldh;
    float *S = (float *)(P + OWN * ldp), *m = S + OWN * lds, *l = m + OWN, *alpha = l + OWN, *part = alpha + OWN;
    int t0 = blockIdx.x * OWN, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv), w0 = threadIdx.x / 32 * 16;
    int rows = T - t0 < OWN ? T - t0 : OWN;
    int r = w0 + threadIdx.x % 32 / 2, half = threadIdx.x % 2; // this lane's row and half of the columns
    for (int e = threadIdx.x; e < 256; e += blockDim.x) row_ids[e] = (float)(e / 16);
    copy_head_rows(Qs, ldh, q, b, t0, OWN, h, T, H, Dh);
    for (int i = threadIdx.x; i < OWN; i += blockDim.x) m[i] = -INFINITY, l[i] = 0;
    __syncthreads();
    FragA qa[Dh / 16];
    FragC o[Dh / 16], row_of; // row_of.x[i]: the row (0..15) of element i of an accumulator fragment
    load_rows_a<Dh / 16>(qa, Qs + w0 * ldh, ldh);
    wmma::load_matrix_sync(row_of, row_ids, 16, wmma::mem_row_major);
    for (int n = 0; n < Dh / 16; n++) wmma::fill_fragment(o[n], 0.0f);
    for (int j0 = 0; j0 < t0 + rows; j0 += WALK) {
        next_kv_tile(Ks, Vs, ldh, k, v, b, j0, g, T, Hkv, Dh);
        if (j0 > t0 + w0 + 15) continue; // the tile is past all the warp's rows
        warp_abt<Dh / 16>(S + w0 * lds, lds, qa, Ks, ldh, WALK / 16);
        __syncwarp();
        float *s = S + r * lds + half * (WALK / 2), m_old = m[r], mx = m_old, sum = 0;
        bf16 *p = P + r * ldp + half * (WALK / 2);
        for (int c = 0; c < WALK / 2; c++) { // online softmax: this lane's half row
            int col = j0 + half * (WALK / 2) + c;
            s[c] = r < rows && col <= t0 + r ? s[c] * scale : -INFINITY;
            mx = fmaxf(mx, s[c]);
        }
        part[2 * r + half] = mx;
        __syncwarp();
        mx = fmaxf(part[2 * r], part[2 * r + 1]);
        for (int c = 0; c < WALK / 2; c++) {
            float e = mx == -INFINITY ? 0.0f : expf(s[c] - mx);
            p[c] = __float2bfloat16_rn(e);
            sum += e;
        }
        float a = mx == -INFINITY ? 1.0f : expf(m_old - mx);
        __syncwarp(); // both maxima read before the sums take their place
        part[2 * r + half] = sum;
        if (half == 0) alpha[r] = a;
        __syncwarp(); // P, the sums and alpha visible to the whole warp
        if (half == 0) l[r] = l[r] * a + part[2 * r] + part[2 * r + 1], m[r] = mx;
        for (int n = 0; n < Dh / 16; n++)
            for (int i = 0; i < o[n].num_elements; i++) o[n].x[i] *= alpha[w0 + (int)row_of.x[i]];
        warp_ab_add<Dh / 16>(o, P + w0 * ldp, ldp, Vs, ldh, WALK); // the warp's output rows += P V
    }
    __syncthreads(); // l final; S free for the staging tiles
    for (int n = 0; n < Dh / 16; n++)
        for (int i = 0; i < o[n].num_elements; i++) {
            float li = l[w0 + (int)row_of.x[i]];
            o[n].x[i] = li > 0 ? o[n].x[i] / li : 0.0f; // rows past T have l = 0 and are not written
        }
    write_rows<Dh>(y, o, S, 1.0f, b, t0, rows, h, T, H);
    for (int i = threadIdx.x; i < rows; i += blockDim.x) lse[((size_t)b * H + h) * T + t0 + i] = m[i] + logf(l[i]);
}

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

void cuda_attention_tc_forward(float *y, float *lse, const float *q, const float *k, const float *v, int B, int T, int H,
                               int Hkv, int Dh) {
    size_t ldh = Dh + PAD_H, ldp = WALK + PAD_H, lds = WALK + PAD_F, nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    size_t shared = sizeof(float) * 256 + sizeof(bf16) * ((OWN + 2 * WALK) * ldh + OWN * ldp) + sizeof(float) * (OWN * lds + 5 * OWN);
    float scale = (float)(1.0 / sqrt((double)Dh));
    const bf16 *qh = cuda_bf16_copy(SCRATCH_ATTN_Q, q, nq), *kh = cuda_bf16_copy(SCRATCH_ATTN_K, k, nk),
               *vh = cuda_bf16_copy(SCRATCH_ATTN_V, v, nk);
    with_head_dim(Dh, [&](auto dh) {
        auto kernel = attn_fwd_tc<decltype(dh)::value>;
        allow_shared(kernel, shared);
        kernel<<<dim3(blocks_for((size_t)T, OWN), H, B), THREADS, shared>>>(y, lse, qh, kh, vh, T, H, Hkv, scale);
        CUDA_CHECK_LAUNCH_AT("attention_tc forward");
    });
}

// grid (query tiles of OWN, H, B): dq_t = scale sum_j<=t dS[t, j] k_j with dS = P (dY V^T - D); q, k,
// v, dy bf16. Shared: Q, dY [OWN] and K, V [WALK] (bf16, ldh), dS [OWN, WALK] (bf16), S and dP
// [OWN, WALK] (fp32), the warps' staging tiles, lse and D of the rows.
template <int Dh>
__global__ static void attn_dq_tc(float *dq, const bf16 *dy, const float *lse, const float *D, const bf16 *q, const bf16 *k,
                                  const bf16 *v, int T, int H, int Hkv, float scale) {
    extern __shared__ __align__(128) float sh[]; // wmma tiles need 32-byte alignment
    int ldh = Dh + PAD_H, ldp = WALK + PAD_H, lds = WALK + PAD_F;
    bf16 *Qs = (bf16 *)sh, *dYs = Qs + OWN * ldh, *Ks = dYs + OWN * ldh, *Vs = Ks + WALK * ldh, *dSb = Vs + WALK * ldh;
    float *S = (float *)(dSb + OWN * ldp), *dP = S + OWN * lds, *stage = dP + OWN * lds, *lse_s = stage + WARPS * 256,
          *D_s = lse_s + OWN;
    int t0 = blockIdx.x * OWN, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv), w0 = threadIdx.x / 32 * 16;
    int rows = T - t0 < OWN ? T - t0 : OWN;
    copy_head_rows(Qs, ldh, q, b, t0, OWN, h, T, H, Dh);
    copy_head_rows(dYs, ldh, dy, b, t0, OWN, h, T, H, Dh);
    load_row_stats(lse_s, D_s, lse, D, b, h, t0, OWN, T, H);
    __syncthreads();
    FragA qa[Dh / 16], dya[Dh / 16];
    FragC acc[Dh / 16];
    load_rows_a<Dh / 16>(qa, Qs + w0 * ldh, ldh);
    load_rows_a<Dh / 16>(dya, dYs + w0 * ldh, ldh);
    for (int n = 0; n < Dh / 16; n++) wmma::fill_fragment(acc[n], 0.0f);
    for (int j0 = 0; j0 < t0 + rows; j0 += WALK) {
        next_kv_tile(Ks, Vs, ldh, k, v, b, j0, g, T, Hkv, Dh);
        if (j0 > t0 + w0 + 15) continue; // the tile is past all the warp's rows
        warp_abt<Dh / 16>(S + w0 * lds, lds, qa, Ks, ldh, WALK / 16);
        warp_abt<Dh / 16>(dP + w0 * lds, lds, dya, Vs, ldh, WALK / 16);
        __syncwarp();
        for (int e = threadIdx.x % 32; e < 16 * WALK; e += 32) {
            int r = w0 + e / WALK, c = e % WALK;
            float p = r < rows && j0 + c <= t0 + r ? expf(S[r * lds + c] * scale - lse_s[r]) : 0.0f;
            dSb[r * ldp + c] = __float2bfloat16_rn(p * (dP[r * lds + c] - D_s[r]));
        }
        __syncwarp();
        warp_ab_add<Dh / 16>(acc, dSb + w0 * ldp, ldp, Ks, ldh, WALK);
    }
    write_rows<Dh>(dq, acc, stage, scale, b, t0, rows, h, T, H);
}

// grid (key tiles of OWN, Hkv, B): for the keys of KV head g, over the query heads of its group and
// the query tiles from the key tile on: dk_j = scale sum_t dS[t, j] q_t, dv_j = sum_t P[t, j] dy_t;
// q, k, v, dy bf16. Shared: K, V [OWN] and Q, dY [WALK] (bf16, ldh), P^T and dS^T [OWN, WALK] (bf16),
// S^T and dP^T [OWN, WALK] (fp32), the staging tiles, lse and D of the query rows.
template <int Dh>
__global__ static void attn_dkv_tc(float *dk, float *dv, const bf16 *dy, const float *lse, const float *D, const bf16 *q,
                                   const bf16 *k, const bf16 *v, int T, int H, int Hkv, float scale) {
    extern __shared__ __align__(128) float sh[]; // wmma tiles need 32-byte alignment
    int ldh = Dh + PAD_H, ldp = WALK + PAD_H, lds = WALK + PAD_F;
    bf16 *Ks = (bf16 *)sh, *Vs = Ks + OWN * ldh, *Qs = Vs + OWN * ldh, *dYs = Qs + WALK * ldh, *Pt = dYs + WALK * ldh,
         *dSt = Pt + OWN * ldp;
    float *St = (float *)(dSt + OWN * ldp), *dPt = St + OWN * lds, *stage = dPt + OWN * lds, *lse_s = stage + WARPS * 256,
          *D_s = lse_s + WALK;
    int j0 = blockIdx.x * OWN, g = blockIdx.y, b = blockIdx.z, group = H / Hkv, w0 = threadIdx.x / 32 * 16;
    int keys = T - j0 < OWN ? T - j0 : OWN;
    copy_head_rows(Ks, ldh, k, b, j0, OWN, g, T, Hkv, Dh);
    copy_head_rows(Vs, ldh, v, b, j0, OWN, g, T, Hkv, Dh);
    __syncthreads();
    FragA ka[Dh / 16], va[Dh / 16];
    FragC acc_k[Dh / 16], acc_v[Dh / 16];
    load_rows_a<Dh / 16>(ka, Ks + w0 * ldh, ldh);
    load_rows_a<Dh / 16>(va, Vs + w0 * ldh, ldh);
    for (int n = 0; n < Dh / 16; n++) wmma::fill_fragment(acc_k[n], 0.0f), wmma::fill_fragment(acc_v[n], 0.0f);
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = j0; t0 < T; t0 += WALK) {
            __syncthreads(); // every warp done with the previous Q, dY and stats
            copy_head_rows(Qs, ldh, q, b, t0, WALK, h, T, H, Dh);
            copy_head_rows(dYs, ldh, dy, b, t0, WALK, h, T, H, Dh);
            load_row_stats(lse_s, D_s, lse, D, b, h, t0, WALK, T, H);
            __syncthreads();
            if (t0 + WALK <= j0 + w0) continue; // the tile's queries all precede the warp's keys
            warp_abt<Dh / 16>(St + w0 * lds, lds, ka, Qs, ldh, WALK / 16);
            warp_abt<Dh / 16>(dPt + w0 * lds, lds, va, dYs, ldh, WALK / 16);
            __syncwarp();
            for (int e = threadIdx.x % 32; e < 16 * WALK; e += 32) {
                int c = w0 + e / WALK, r = e % WALK; // key row c, query row r
                float p = t0 + r < T && j0 + c <= t0 + r ? expf(St[c * lds + r] * scale - lse_s[r]) : 0.0f;
                Pt[c * ldp + r] = __float2bfloat16_rn(p);
                dSt[c * ldp + r] = __float2bfloat16_rn(p * (dPt[c * lds + r] - D_s[r]));
            }
            __syncwarp();
            warp_ab_add<Dh / 16>(acc_v, Pt + w0 * ldp, ldp, dYs, ldh, WALK);
            warp_ab_add<Dh / 16>(acc_k, dSt + w0 * ldp, ldp, Qs, ldh, WALK);
        }
    write_rows<Dh>(dk, acc_k, stage, scale, b, j0, keys, g, T, Hkv);
    write_rows<Dh>(dv, acc_v, stage, 1.0f, b, j0, keys, g, T, Hkv);
}

void cuda_attention_tc_backward(float *dq, float *dk, float *dv, const float *dy, const float *lse, const float *D,
                                const float *q, const float *k, const float *v, int B, int T, int H, int Hkv, int Dh) {
    float scale = (float)(1.0 / sqrt((double)Dh));
    size_t ldh = Dh + PAD_H, ldp = WALK + PAD_H, lds = WALK + PAD_F, nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    size_t stats = WARPS * 256 + 2 * OWN; // staging tiles, lse and D
    size_t shared_dq = sizeof(bf16) * ((2 * OWN + 2 * WALK) * ldh + OWN * ldp) + sizeof(float) * (2 * OWN * lds + stats);
    size_t shared_dkv = sizeof(bf16) * ((2 * OWN + 2 * WALK) * ldh + 2 * OWN * ldp) + sizeof(float) * (2 * OWN * lds + stats);
    const bf16 *qh = cuda_bf16_copy(SCRATCH_ATTN_Q, q, nq), *kh = cuda_bf16_copy(SCRATCH_ATTN_K, k, nk),
               *vh = cuda_bf16_copy(SCRATCH_ATTN_V, v, nk), *dyh = cuda_bf16_copy(SCRATCH_ATTN_DY, dy, nq);
    with_head_dim(Dh, [&](auto dh) {
        auto dq_kernel = attn_dq_tc<decltype(dh)::value>;
        auto dkv_kernel = attn_dkv_tc<decltype(dh)::value>;
        allow_shared(dq_kernel, shared_dq);
        allow_shared(dkv_kernel, shared_dkv);
        dq_kernel<<<dim3(blocks_for((size_t)T, OWN), H, B), THREADS, shared_dq>>>(dq, dyh, lse, D, qh, kh, vh, T, H, Hkv, scale);
        CUDA_CHECK_LAUNCH_AT("attention_tc dq");
        dkv_kernel<<<dim3(blocks_for((size_t)T, OWN), Hkv, B), THREADS, shared_dkv>>>(dk, dv, dyh, lse, D, qh, kh, vh, T, H,
                                                                                      Hkv, scale);
        CUDA_CHECK_LAUNCH_AT("attention_tc dk dv");
    });
}
