// Causal GQA attention, direct kernels: one thread block per query row (forward, dQ) or per key row
// (dK, dV), the row's T scores in shared memory. Exact, deterministic, O(T^2 Dh) per head like the
// CPU op, and slow next to a fused flash-attention kernel, which is the planned replacement.
// Layouts as the CPU op: q, y [B,T,H,Dh]; k, v [B,T,Hkv,Dh]; lse [B,H,T] (of the scaled scores).
#include <math.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define ATT_THREADS 128

__device__ static float block_reduce(float v, float *buf, int is_max) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            buf[threadIdx.x] = is_max ? fmaxf(buf[threadIdx.x], buf[threadIdx.x + s]) : buf[threadIdx.x] + buf[threadIdx.x + s];
        __syncthreads();
    }
    float r = buf[0];
    __syncthreads();
    return r;
}

// grid (T, H, B): scores of query t against keys 0..t, softmax, y = P V.
__global__ static void attn_fwd(float *y, float *lse, const float *q, const float *k, const float *v, int T, int H, int Hkv,
                                int Dh, float scale) {
    extern __shared__ float sh[]; // T scores, then ATT_THREADS reduction slots
    float *S = sh, *red = sh + T;
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    const float *qr = q + (((size_t)b * T + t) * H + h) * Dh;
    float m = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        const float *kr = k + (((size_t)b * T + j) * Hkv + g) * Dh;
        float s = 0;
        for (int d = 0; d < Dh; d++) s += qr[d] * kr[d];
        S[j] = s * scale;
        m = fmaxf(m, S[j]);
    }
    m = block_reduce(m, red, 1);
    float sum = 0;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) sum += expf(S[j] - m);
    sum = block_reduce(sum, red, 0);
    float l = m + logf(sum);
    if (threadIdx.x == 0) lse[((size_t)b * H + h) * T + t] = l;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) S[j] = expf(S[j] - l);
    __syncthreads();
    float *yr = y + (((size_t)b * T + t) * H + h) * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0;
        for (int j = 0; j <= t; j++) acc += S[j] * v[(((size_t)b * T + j) * Hkv + g) * Dh + d];
        yr[d] = acc;
    }
}

extern "C" void cuda_attention_forward(float *y, float *lse, const float *q, const float *k, const float *v, int B, int T,
                                       int H, int Hkv, int Dh) {
    dim3 grid(T, H, B);
    size_t shared = sizeof(float) * ((size_t)T + ATT_THREADS);
    attn_fwd<<<grid, ATT_THREADS, shared>>>(y, lse, q, k, v, T, H, Hkv, Dh, (float)(1.0 / sqrt((double)Dh)));
    CUDA_CHECK_LAUNCH();
}

// P[t, j] = exp(scale q_t . k_j - lse_t); dP[t, j] = dy_t . v_j; dS = P (dP - D_t), D_t = dy_t . y_t.
__device__ static float dscore(const float *q, const float *k, const float *v, const float *dy, const float *lse,
                               const float *D, int b, int h, int g, int t, int j, int T, int H, int Hkv, int Dh, float scale) {
    const float *qr = q + (((size_t)b * T + t) * H + h) * Dh, *dyr = dy + (((size_t)b * T + t) * H + h) * Dh;
    const float *kr = k + (((size_t)b * T + j) * Hkv + g) * Dh, *vr = v + (((size_t)b * T + j) * Hkv + g) * Dh;
    float s = 0, dp = 0;
    for (int d = 0; d < Dh; d++) s += qr[d] * kr[d], dp += dyr[d] * vr[d];
    float p = expf(s * scale - lse[((size_t)b * H + h) * T + t]);
    return p * (dp - D[((size_t)b * H + h) * T + t]);
}

// grid (T, H, B), one thread per (row): D_t = dy_t . y_t
__global__ static void attn_rowdot(float *D, const float *dy, const float *y, int T, int H, int Dh) {
    int t = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (t >= T) return;
    const float *a = dy + (((size_t)b * T + t) * H + h) * Dh, *c = y + (((size_t)b * T + t) * H + h) * Dh;
    float s = 0;
    for (int d = 0; d < Dh; d++) s += a[d] * c[d];
    D[((size_t)b * H + h) * T + t] = s;
}

// grid (T, H, B): dq_t = scale sum_j<=t dS[t, j] k_j
__global__ static void attn_dq(float *dq, const float *dy, const float *lse, const float *D, const float *q, const float *k,
                               const float *v, int T, int H, int Hkv, int Dh, float scale) {
    extern __shared__ float dS[];
    int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (H / Hkv);
    for (int j = threadIdx.x; j <= t; j += blockDim.x) dS[j] = dscore(q, k, v, dy, lse, D, b, h, g, t, j, T, H, Hkv, Dh, scale);
    __syncthreads();
    float *dqr = dq + (((size_t)b * T + t) * H + h) * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0;
        for (int j = 0; j <= t; j++) acc += dS[j] * k[(((size_t)b * T + j) * Hkv + g) * Dh + d];
        dqr[d] = acc * scale;
    }
}

// grid (T, Hkv, B): for key j of KV head g, over the query heads of its group and queries t >= j:
// dk_j = scale sum dS[t, j] q_t, dv_j = sum P[t, j] dy_t.
__global__ static void attn_dkv(float *dk, float *dv, const float *dy, const float *lse, const float *D, const float *q,
                                const float *k, const float *v, int T, int H, int Hkv, int Dh, float scale) {
    extern __shared__ float sh[]; // dS and P for one query head, T - j values each
    int j = blockIdx.x, g = blockIdx.y, b = blockIdx.z, group = H / Hkv, n = T - j;
    float *dS = sh, *P = sh + n;
    float *dkr = dk + (((size_t)b * T + j) * Hkv + g) * Dh, *dvr = dv + (((size_t)b * T + j) * Hkv + g) * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) dkr[d] = dvr[d] = 0;
    const float *kr = k + (((size_t)b * T + j) * Hkv + g) * Dh;
    for (int h = g * group; h < (g + 1) * group; h++) {
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            int t = j + i;
            const float *qr = q + (((size_t)b * T + t) * H + h) * Dh;
            float s = 0;
            for (int d = 0; d < Dh; d++) s += qr[d] * kr[d];
            P[i] = expf(s * scale - lse[((size_t)b * H + h) * T + t]);
            dS[i] = dscore(q, k, v, dy, lse, D, b, h, g, t, j, T, H, Hkv, Dh, scale);
        }
        __syncthreads();
        for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
            float ak = 0, av = 0;
            for (int i = 0; i < n; i++) {
                size_t o = (((size_t)b * T + j + i) * H + h) * Dh + d;
                ak += dS[i] * q[o];
                av += P[i] * dy[o];
            }
            dkr[d] += ak * scale;
            dvr[d] += av;
        }
    }
}

extern "C" void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dy, const float *y, const float *lse,
                                        const float *q, const float *k, const float *v, int B, int T, int H, int Hkv,
                                        int Dh) {
    float scale = (float)(1.0 / sqrt((double)Dh));
    float *D = cuda_alloc((size_t)B * H * T);
    attn_rowdot<<<dim3(blocks_for((size_t)T, ATT_THREADS), H, B), ATT_THREADS>>>(D, dy, y, T, H, Dh);
    CUDA_CHECK_LAUNCH();
    attn_dq<<<dim3(T, H, B), ATT_THREADS, sizeof(float) * T>>>(dq, dy, lse, D, q, k, v, T, H, Hkv, Dh, scale);
    CUDA_CHECK_LAUNCH();
    attn_dkv<<<dim3(T, Hkv, B), ATT_THREADS, 2 * sizeof(float) * T>>>(dk, dv, dy, lse, D, q, k, v, T, H, Hkv, Dh, scale);
    CUDA_CHECK_LAUNCH();
    cuda_free(D); // cudaFree synchronizes: the kernels are done with D
}
