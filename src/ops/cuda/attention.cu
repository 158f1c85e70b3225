// Causal GQA attention in tiles (the FlashAttention-2 schedule, fp32 on CUDA cores; in bf16 mode the same
// schedule runs on tensor cores, attention_tc.cu, or cuDNN's fused attention, attention_cudnn.cu, where
// the head size allows): a block holds
// a tile of query rows (forward, dQ) or key rows (dK, dV) of one head in shared memory and walks the
// other side's tiles, so K and V are read once per query tile instead of once per query row, and the
// forward never holds more than a tile of scores (online softmax). Deterministic: every sum runs in
// a fixed order, and dK/dV are owned by one block each (no atomics).
// Layouts as the CPU op: q, y [B,T,H,Dh]; k, v [B,T,Hkv,Dh]; lse [B,H,T] (of the scaled scores).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
extern "C" {
#include "ops/ops.h"
}

#define ATT_THREADS 128
#define ACC_MAX 16 // accumulator values per thread: tile * Dh / ATT_THREADS, at most 32 * 64 / 128

// Tile rows: 32 up to Dh 64, 16 up to Dh 128, so that tile * Dh stays within ACC_MAX per thread and
// the backward's four operand tiles within the 48 KiB of shared memory every GPU gives a block.
static int att_tile(int Dh) {
    if (Dh > 128) die("CUDA attention: head dimension %d; the tiled kernels take up to 128", Dh);
    return Dh <= 64 ? 32 : 16;
}

// Rows [r0, r0 + rows) of head `head` of x [B,T,heads,Dh] into the shared tile dst [rows, ld]; zeros past T.
__device__ static void load_head_rows(float *dst, int ld, const float *x, int b, int r0, int rows, int head, int T, int heads,
                                      int Dh) {
    for (int e = threadIdx.x; e < rows * Dh; e += blockDim.x) {
        int r = e / Dh, d = e % Dh;
        dst[r * ld + d] = r0 + r < T ? x[(((size_t)b * T + r0 + r) * heads + head) * Dh + d] : 0.0f;
    }
}

__device__ static float dot_rows(const float *a, const float *b, int Dh) {
    float s = 0;
    for (int d = 0; d < Dh; d++) s += a[d] * b[d];
    return s;
}

// grid (query tiles, H, B). Shared: Q, K, V tiles, the score tile S [tile, tile + 1], and per row the
// running max m, sum l and rescale factor.
__global__ static void attn_fwd(float *y, float *lse, const float *q, const float *k, const float *v, int T, int H, int Hkv,
                                int Dh, int tile, float scale) {
    extern __shared__ float sh[];
    float *Qs = sh, *Ks = Qs + tile * Dh, *Vs = Ks + tile * Dh, *S = Vs + tile * Dh;
    float *m = S + tile * (tile + 1), *l = m + tile, *alpha = l + tile;
    int t0 = blockIdx.x * tile, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv), sw = tile + 1;
    int rows = T - t0 < tile ? T - t0 : tile, n_acc = (tile * Dh + blockDim.x - 1) / blockDim.x;
    float acc[ACC_MAX];
    for (int i = 0; i < n_acc; i++) acc[i] = 0;
    load_head_rows(Qs, Dh, q, b, t0, tile, h, T, H, Dh);
    for (int r = threadIdx.x; r < tile; r += blockDim.x) m[r] = -INFINITY, l[r] = 0;
    for (int j0 = 0; j0 < t0 + rows; j0 += tile) {
        load_head_rows(Ks, Dh, k, b, j0, tile, g, T, Hkv, Dh);
        load_head_rows(Vs, Dh, v, b, j0, tile, g, T, Hkv, Dh);
        __syncthreads();
        for (int e = threadIdx.x; e < tile * tile; e += blockDim.x) {
            int r = e / tile, c = e % tile;
            S[r * sw + c] = r < rows && j0 + c <= t0 + r ? dot_rows(Qs + r * Dh, Ks + c * Dh, Dh) * scale : -INFINITY;
        }
        __syncthreads();
        for (int r = threadIdx.x; r < tile; r += blockDim.x) { // online softmax, one thread per row
            float mx = m[r], sum = 0;
            for (int c = 0; c < tile; c++) mx = fmaxf(mx, S[r * sw + c]);
            for (int c = 0; c < tile; c++) {
                float p = mx == -INFINITY ? 0.0f : expf(S[r * sw + c] - mx);
                S[r * sw + c] = p;
                sum += p;
            }
            alpha[r] = mx == -INFINITY ? 1.0f : expf(m[r] - mx);
            l[r] = l[r] * alpha[r] + sum;
            m[r] = mx;
        }
        __syncthreads();
        for (int i = 0; i < n_acc; i++) {
            int e = threadIdx.x + i * blockDim.x, r = e / Dh, d = e % Dh;
            if (e >= tile * Dh) break;
            float s = acc[i] * alpha[r];
            for (int c = 0; c < tile; c++) s += S[r * sw + c] * Vs[c * Dh + d];
            acc[i] = s;
        }
        __syncthreads(); // before the next tile overwrites K, V and S
    }
    for (int i = 0; i < n_acc; i++) {
        int e = threadIdx.x + i * blockDim.x, r = e / Dh, d = e % Dh;
        if (e < tile * Dh && r < rows) y[(((size_t)b * T + t0 + r) * H + h) * Dh + d] = acc[i] / l[r];
    }
    for (int r = threadIdx.x; r < rows; r += blockDim.x) lse[((size_t)b * H + h) * T + t0 + r] = m[r] + logf(l[r]);
}

// Whether tensor-core attention is cuDNN's (PGOLF_CUDA_ATTENTION: cudnn, the default where it is linked,
// or pgolf), read once.
static int use_cudnn(void) {
    static int chosen = -1;
    if (chosen < 0) {
        const char *e = getenv("PGOLF_CUDA_ATTENTION");
        int linked = cuda_attention_cudnn_version != nullptr;
        if (!e || !*e) chosen = linked;
        else if (!strcmp(e, "pgolf")) chosen = 0;
        else if (!strcmp(e, "cudnn") && linked) chosen = 1;
        else if (!strcmp(e, "cudnn"))
            die("PGOLF_CUDA_ATTENTION=cudnn: this pgolf-cuda was built without cuDNN (make cuda $(bash scripts/cudnn.sh))");
        else die("PGOLF_CUDA_ATTENTION=%s: expected cudnn or pgolf", e);
    }
    return chosen;
}

extern "C" const char *cuda_attention_name(void) { return use_cudnn() ? cuda_attention_cudnn_version() : "pgolf"; }

// bf16 mode (ops_set_matmul_bf16) runs attention on tensor cores where the head size allows (cuDNN's
// or ours, use_cudnn); fp32 mode on the fp32 kernels below.
static int on_tensor_cores(int Dh) { return cuda_matmul_bf16() && cuda_attention_tc_supports(Dh); }

// An operand x [n] (r: its RoundedInput, or NULL) as the fp32 kernels read it: x itself, or, kept only
// rounded (bf16 mode with a head size the tensor cores do not take), its rounded values widened into
// the scratch buffer `use` (one of the tensor-core operand buffers, unused on this path).
static const float *fp32_operand(CudaScratch use, const float *x, const RoundedInput *r, size_t n) {
    const __nv_bfloat16 *rounded = cuda_input_rounded("attention", x, r, n); // checked
    if (x) return x;
    float *wide = (float *)cuda_scratch(use, n * sizeof(float));
    cuda_bf16_to_float(wide, rounded, n);
    return wide;
}

static void fp32_operands(const float **q, const float **k, const float **v, const RoundedInput *r, size_t nq, size_t nk) {
    *q = fp32_operand(SCRATCH_ATTN_Q, *q, r ? &r[0] : nullptr, nq);
    *k = fp32_operand(SCRATCH_ATTN_K, *k, r ? &r[1] : nullptr, nk);
    *v = fp32_operand(SCRATCH_ATTN_V, *v, r ? &r[2] : nullptr, nk);
}

static void check_v_rows(int Hkv, int Dh, int ldv) {
    if (ldv < Hkv * Dh) die("CUDA attention: v's rows %d values apart, fewer than their %d values", ldv, Hkv * Dh);
}

// pgolf's kernels read v, and write dv, packed [B,T,Hkv,Dh] (cuDNN takes the strides). A v whose rows
// are ldv > kv apart (ops.h's: a column block of the fused q/k/v product) is copied packed into scratch
// first, as the values the products read (the rounded ones where qkv_r holds them); the result is
// qkv_r with v's entry describing that copy (in `packed`; NULL without qkv_r), and *v the copy's fp32
// values (NULL where only rounded).
static const RoundedInput *pack_v(const float **v, const RoundedInput *qkv_r, RoundedInput packed[3], int rows, int kv,
                                  int ldv) {
    if (ldv == kv) return qkv_r;
    size_t n = (size_t)rows * kv;
    const __nv_bfloat16 *rounded = cuda_input_rounded("attention", *v, qkv_r ? &qkv_r[2] : nullptr,
                                                      gemm_operand_extent(rows, kv, ldv)); // checked
    void *to = cuda_scratch(SCRATCH_ATTN_PACKED_V, n * (rounded ? sizeof(__nv_bfloat16) : sizeof(float)));
    if (rounded) cuda_copy_columns(nullptr, (__nv_bfloat16 *)to, kv, rounded, ldv, rows, kv);
    else cuda_copy_columns((float *)to, nullptr, kv, *v, ldv, rows, kv);
    *v = rounded ? nullptr : (const float *)to;
    if (!qkv_r) return nullptr;
    packed[0] = qkv_r[0], packed[1] = qkv_r[1];
    packed[2] = RoundedInput{*v, n, rounded != nullptr, rounded ? to : nullptr, rounded ? n : 0, 1};
    return packed;
}

// cuDNN reads v, and writes dv, with their rows ldv apart in place where each row starts 16-byte
// aligned, as its kernels load them (every preset's fused product is so: the v block starts a multiple
// of 8 columns in); else (said once on stderr), or where cuDNN has no plan for the strides, v is copied
// packed for it and dv spread after. vr, dvr: the bf16 values where given (NULL: cuDNN's own aligned
// scratch).
static int cudnn_takes_v(const void *vr, const void *dvr, int ldv, int kv) {
    if (ldv == kv || (ldv % 8 == 0 && (uintptr_t)vr % 16 == 0 && (uintptr_t)dvr % 16 == 0)) return 1;
    static int said;
    if (!said++) fprintf(stderr, "cuDNN attention: v's rows (%d apart) are not 16-byte aligned: v copied packed for it\n", ldv);
    return 0;
}

extern "C" void cuda_attention_forward(float *y, float *lse, const float *q, const float *k, const float *v,
                                       const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv,
                                       RoundedInput *y_r) {
    check_v_rows(Hkv, Dh, ldv);
    size_t ny = (size_t)B * T * H * Dh;
    __nv_bfloat16 *yr = cuda_rounded_output(__func__, y, y_r, ny);
    int cudnn = on_tensor_cores(Dh) && use_cudnn(), kv = Hkv * Dh;
    if (cudnn && cudnn_takes_v(qkv_r ? qkv_r[2].rounded : nullptr, nullptr, ldv, kv) &&
        cuda_attention_cudnn_forward(y, yr, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh, ldv))
        return;
    RoundedInput packed[3];
    qkv_r = pack_v(&v, qkv_r, packed, B * T, kv, ldv);
    if (cudnn && ldv != kv && cuda_attention_cudnn_forward(y, yr, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh, kv)) return;
    if (on_tensor_cores(Dh)) {
        cuda_attention_tc_forward(y, yr, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh);
        return;
    } // the fp32 kernels read q, k, v themselves, and write y (into scratch where it is kept only rounded)
    fp32_operands(&q, &k, &v, qkv_r, ny, (size_t)B * T * Hkv * Dh);
    float *out = y ? y : (float *)cuda_scratch(SCRATCH_ATTN_O, ny * sizeof(float));
    int tile = att_tile(Dh);
    size_t shared = sizeof(float) * ((size_t)3 * tile * Dh + (size_t)tile * (tile + 1) + 3 * (size_t)tile);
    attn_fwd<<<dim3(blocks_for((size_t)T, tile), H, B), ATT_THREADS, shared>>>(out, lse, q, k, v, T, H, Hkv, Dh, tile,
                                                                               (float)(1.0 / sqrt((double)Dh)));
    CUDA_CHECK_LAUNCH();
    if (yr) cuda_round_to_bf16(yr, out, ny);
}

// D [B,H,T] = rowsum(dy * y) of each (token, head) row of [B,T,H,Dh], lanes across the row; and, for
// the tensor cores, dy rounded to bf16 into dyr in the same pass (dyr NULL: not needed). dy, y fp32 or
// bf16 (kept only rounded).
template <class Dy, class Y>
__global__ static void attn_rowdot(float *D, __nv_bfloat16 *dyr, const Dy *dy, const Y *y, int rows, int T, int H, int Dh) {
    int row = warp_row(); // (b T + t) H + h
    if (row >= rows) return; // the whole warp
    double s = 0;
    for (int d = threadIdx.x % 32; d < Dh; d += 32) {
        size_t i = (size_t)row * Dh + d;
        float g = as_float(dy[i]);
        s += (double)g * as_float(y[i]);
        if (dyr) dyr[i] = __float2bfloat16_rn(g);
    }
    s = warp_sum(s);
    int h = row % H, t = row / H % T, b = row / H / T;
    if (threadIdx.x % 32 == 0) D[((size_t)b * H + h) * T + t] = (float)s;
}

template <class Dy, class Y>
static void launch_rowdot(float *D, __nv_bfloat16 *dyr, const Dy *dy, const Y *y, int rows, int T, int H, int Dh) {
    auto kernel = attn_rowdot<Dy, Y>; // through a variable: the emulator's launch rewrite needs a plain name
    kernel<<<warp_row_blocks((size_t)rows), WARP_ROW_THREADS>>>(D, dyr, dy, y, rows, T, H, Dh);
    CUDA_CHECK_LAUNCH_AT("cuda_attention_backward");
}

template <class Dy> // y, or yb where given
static void launch_rowdot(float *D, __nv_bfloat16 *dyr, const Dy *dy, const float *y, const __nv_bfloat16 *yb, int rows, int T,
                          int H, int Dh) {
    if (yb) launch_rowdot(D, dyr, dy, yb, rows, T, H, Dh);
    else launch_rowdot(D, dyr, dy, y, rows, T, H, Dh);
}

// The (query tile at t0, key tile at j0) block of P = exp(scale q k^T - lse) and dS = P (dY V^T - D),
// causal and cut at T, into [tile, tile + 1] tiles (P may be null). Qs, dYs hold the query tile,
// Ks, Vs the key tile; lse_s, D_s the query rows' values.
__device__ static void score_tiles(float *P, float *dS, const float *Qs, const float *dYs, const float *Ks, const float *Vs,
                                   const float *lse_s, const float *D_s, int t0, int j0, int T, int Dh, int tile, float scale) {
    for (int e = threadIdx.x; e < tile * tile; e += blockDim.x) {
        int r = e / tile, c = e % tile;
        float p = 0, ds = 0;
        if (t0 + r < T && j0 + c <= t0 + r) {
            p = expf(dot_rows(Qs + r * Dh, Ks + c * Dh, Dh) * scale - lse_s[r]);
            ds = p * (dot_rows(dYs + r * Dh, Vs + c * Dh, Dh) - D_s[r]);
        }
        if (P) P[r * (tile + 1) + c] = p;
        dS[r * (tile + 1) + c] = ds;
    }
}

// grid (query tiles, H, B): dq_t = scale sum_j<=t dS[t, j] k_j
__global__ static void attn_dq(float *dq, const float *dy, const float *lse, const float *D, const float *q, const float *k,
                               const float *v, int T, int H, int Hkv, int Dh, int tile, float scale) {
    extern __shared__ float sh[];
    float *Qs = sh, *dYs = Qs + tile * Dh, *Ks = dYs + tile * Dh, *Vs = Ks + tile * Dh, *dS = Vs + tile * Dh;
    float *lse_s = dS + tile * (tile + 1), *D_s = lse_s + tile;
    int t0 = blockIdx.x * tile, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv), sw = tile + 1;
    int rows = T - t0 < tile ? T - t0 : tile, n_acc = (tile * Dh + blockDim.x - 1) / blockDim.x;
    float acc[ACC_MAX];
    for (int i = 0; i < n_acc; i++) acc[i] = 0;
    load_head_rows(Qs, Dh, q, b, t0, tile, h, T, H, Dh);
    load_head_rows(dYs, Dh, dy, b, t0, tile, h, T, H, Dh);
    load_row_stats(lse_s, D_s, lse, D, b, h, t0, tile, T, H);
    for (int j0 = 0; j0 < t0 + rows; j0 += tile) {
        load_head_rows(Ks, Dh, k, b, j0, tile, g, T, Hkv, Dh);
        load_head_rows(Vs, Dh, v, b, j0, tile, g, T, Hkv, Dh);
        __syncthreads();
        score_tiles(nullptr, dS, Qs, dYs, Ks, Vs, lse_s, D_s, t0, j0, T, Dh, tile, scale);
        __syncthreads();
        for (int i = 0; i < n_acc; i++) {
            int e = threadIdx.x + i * blockDim.x, r = e / Dh, d = e % Dh;
            if (e >= tile * Dh) break;
            float s = acc[i];
            for (int c = 0; c < tile; c++) s += dS[r * sw + c] * Ks[c * Dh + d];
            acc[i] = s;
        }
        __syncthreads();
    }
    for (int i = 0; i < n_acc; i++) {
        int e = threadIdx.x + i * blockDim.x, r = e / Dh, d = e % Dh;
        if (e < tile * Dh && r < rows) dq[(((size_t)b * T + t0 + r) * H + h) * Dh + d] = acc[i] * scale;
    }
}

// grid (key tiles, Hkv, B): for the keys of KV head g, over the query heads of its group and the query
// tiles at or after the key tile: dk_j = scale sum dS[t, j] q_t, dv_j = sum P[t, j] dy_t.
__global__ static void attn_dkv(float *dk, float *dv, const float *dy, const float *lse, const float *D, const float *q,
                                const float *k, const float *v, int T, int H, int Hkv, int Dh, int tile, float scale) {
    extern __shared__ float sh[];
    float *Ks = sh, *Vs = Ks + tile * Dh, *Qs = Vs + tile * Dh, *dYs = Qs + tile * Dh, *P = dYs + tile * Dh;
    float *dS = P + tile * (tile + 1), *lse_s = dS + tile * (tile + 1), *D_s = lse_s + tile;
    int j0 = blockIdx.x * tile, g = blockIdx.y, b = blockIdx.z, group = H / Hkv, sw = tile + 1;
    int keys = T - j0 < tile ? T - j0 : tile, n_acc = (tile * Dh + blockDim.x - 1) / blockDim.x;
    float acc_k[ACC_MAX], acc_v[ACC_MAX];
    for (int i = 0; i < n_acc; i++) acc_k[i] = acc_v[i] = 0;
    load_head_rows(Ks, Dh, k, b, j0, tile, g, T, Hkv, Dh);
    load_head_rows(Vs, Dh, v, b, j0, tile, g, T, Hkv, Dh);
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int t0 = j0; t0 < T; t0 += tile) {
            load_head_rows(Qs, Dh, q, b, t0, tile, h, T, H, Dh);
            load_head_rows(dYs, Dh, dy, b, t0, tile, h, T, H, Dh);
            load_row_stats(lse_s, D_s, lse, D, b, h, t0, tile, T, H);
            __syncthreads();
            score_tiles(P, dS, Qs, dYs, Ks, Vs, lse_s, D_s, t0, j0, T, Dh, tile, scale);
            __syncthreads();
            for (int i = 0; i < n_acc; i++) {
                int e = threadIdx.x + i * blockDim.x, c = e / Dh, d = e % Dh;
                if (e >= tile * Dh) break;
                float sk = acc_k[i], sv = acc_v[i];
                for (int r = 0; r < tile; r++) sk += dS[r * sw + c] * Qs[r * Dh + d], sv += P[r * sw + c] * dYs[r * Dh + d];
                acc_k[i] = sk, acc_v[i] = sv;
            }
            __syncthreads();
        }
    for (int i = 0; i < n_acc; i++) {
        int e = threadIdx.x + i * blockDim.x, c = e / Dh, d = e % Dh;
        if (e >= tile * Dh || c >= keys) continue;
        size_t o = (((size_t)b * T + j0 + c) * Hkv + g) * Dh + d;
        dk[o] = acc_k[i] * scale;
        dv[o] = acc_v[i];
    }
}

// pgolf's kernels (tensor-core or fp32): fp32 dq, dk, dv
static void pgolf_attention_backward(float *dq, float *dk, float *dv, const float *dy, const RoundedInput *dy_r,
                                     const __nv_bfloat16 *dyb, const float *y, const __nv_bfloat16 *yb, const float *lse,
                                     const float *q, const float *k, const float *v, const RoundedInput *qkv_r, int B, int T,
                                     int H, int Hkv, int Dh) {
    int tc = on_tensor_cores(Dh), rows = B * T * H;
    size_t nq = (size_t)rows * Dh;
    float *D = (float *)cuda_scratch(SCRATCH_ATTN_ROWDOT, sizeof(float) * B * H * T);
    if (tc) { // dy as bf16: as given, or rounded in the pass that forms D
        __nv_bfloat16 *dyr = dyb ? nullptr : (__nv_bfloat16 *)cuda_scratch(SCRATCH_ATTN_DY, sizeof(__nv_bfloat16) * nq);
        if (dyb) launch_rowdot(D, dyr, dyb, y, yb, rows, T, H, Dh);
        else launch_rowdot(D, dyr, dy, y, yb, rows, T, H, Dh);
        cuda_attention_tc_backward(dq, dk, dv, dyb ? dyb : dyr, lse, D, q, k, v, qkv_r, B, T, H, Hkv, Dh);
        return;
    }
    dy = fp32_operand(SCRATCH_ATTN_DY, dy, dy_r, nq);
    launch_rowdot(D, nullptr, dy, y, yb, rows, T, H, Dh);
    fp32_operands(&q, &k, &v, qkv_r, nq, (size_t)B * T * Hkv * Dh);
    int tile = att_tile(Dh);
    float scale = (float)(1.0 / sqrt((double)Dh));
    size_t operands = (size_t)tile * Dh, scores = (size_t)tile * (tile + 1);
    size_t shared_dq = sizeof(float) * (4 * operands + scores + 2 * (size_t)tile);
    size_t shared_dkv = sizeof(float) * (4 * operands + 2 * scores + 2 * (size_t)tile);
    dim3 tiles_q(blocks_for((size_t)T, tile), H, B), tiles_k(blocks_for((size_t)T, tile), Hkv, B);
    attn_dq<<<tiles_q, ATT_THREADS, shared_dq>>>(dq, dy, lse, D, q, k, v, T, H, Hkv, Dh, tile, scale);
    CUDA_CHECK_LAUNCH();
    attn_dkv<<<tiles_k, ATT_THREADS, shared_dkv>>>(dk, dv, dy, lse, D, q, k, v, T, H, Hkv, Dh, tile, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dy, const RoundedInput *dy_r,
                                        const float *y, const RoundedInput *y_r, const float *lse, const float *q, const float *k,
                                        const float *v, const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh,
                                        int ldv, RoundedInput *dq_r, RoundedInput *dk_r, RoundedInput *dv_r) {
    check_v_rows(Hkv, Dh, ldv);
    int rows = B * T, kv = Hkv * Dh;
    size_t nq = (size_t)rows * H * Dh, nk = (size_t)rows * kv, nv = gemm_operand_extent(rows, kv, ldv);
    const __nv_bfloat16 *dyb = cuda_input_rounded(__func__, dy, dy_r, nq), *yb = cuda_input_rounded(__func__, y, y_r, nq);
    __nv_bfloat16 *dqr = cuda_rounded_output(__func__, dq, dq_r, nq), *dkr = cuda_rounded_output(__func__, dk, dk_r, nk);
    __nv_bfloat16 *dvr = cuda_rounded_output(__func__, dv, dv_r, nv);
    int cudnn = on_tensor_cores(Dh) && use_cudnn();
    if (cudnn && cudnn_takes_v(qkv_r ? qkv_r[2].rounded : nullptr, dvr, ldv, kv) &&
        cuda_attention_cudnn_backward(dq, dk, dv, dqr, dkr, dvr, dy, dyb, y, yb, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh, ldv))
        return; // it forms D itself, and writes dQ, dK, dV as bf16
    RoundedInput packed[3];
    qkv_r = pack_v(&v, qkv_r, packed, rows, kv, ldv);
    if (cudnn && ldv != kv) { // on v packed, dV packed into scratch, then spread to dv's rows
        __nv_bfloat16 *gv = (__nv_bfloat16 *)cuda_scratch(SCRATCH_ATTN_DV, nk * sizeof(__nv_bfloat16));
        if (cuda_attention_cudnn_backward(dq, dk, nullptr, dqr, dkr, gv, dy, dyb, y, yb, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh,
                                          kv)) {
            cuda_copy_columns(dv, dvr, ldv, gv, kv, rows, kv);
            return;
        }
    }
    // pgolf's kernels write fp32, packed: into dq, dk, dv, or, kept only rounded (or dv strided), into
    // scratch, rounded (and dv spread to its rows) after
    float *gq = dq ? dq : (float *)cuda_scratch(SCRATCH_ATTN_DQ, sizeof(float) * nq);
    float *gk = dk ? dk : (float *)cuda_scratch(SCRATCH_ATTN_DK, sizeof(float) * nk);
    float *gv = dv && ldv == kv ? dv : (float *)cuda_scratch(SCRATCH_ATTN_DV, sizeof(float) * nk);
    pgolf_attention_backward(gq, gk, gv, dy, dy_r, dyb, y, yb, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh);
    if (dqr) cuda_round_to_bf16(dqr, gq, nq);
    if (dkr) cuda_round_to_bf16(dkr, gk, nk);
    if (gv != dv || dvr) cuda_copy_columns(gv != dv ? dv : nullptr, dvr, ldv, gv, kv, rows, kv);
}
