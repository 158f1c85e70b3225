// Embedding lookup, relu^2 and the per-channel mixes of the residual stream. Per-channel parameter
// gradients sum over tokens, each column's rows walked in order by one thread: deterministic.
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

#define THREADS 256

__global__ static void embedding_fwd(float *out, const int32_t *ids, const float *table, int N, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * D) return;
    size_t n = i / D, d = i % D;
    out[i] = table[(size_t)ids[n] * D + d];
}

extern "C" void cuda_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int D) {
    embedding_fwd<<<blocks_for((size_t)N * D, THREADS), THREADS>>>(out, ids, table, N, D);
    CUDA_CHECK_LAUNCH();
}

// out and/or its bf16 rounding (cuda_rounded_storage), either may be NULL; inp fp32 or bf16. VEC values
// per thread (4 where vectors_fit): memory-bound, so whole vectors move.
template <class In, int VEC>
__global__ static void relu2_fwd(float *out, __nv_bfloat16 *rounded, const In *inp, size_t n, float slope) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float v[VEC];
    load_floats<VEC>(v, inp + i);
    for (int j = 0; j < VEC; j++) {
        float r = v[j] > 0 ? v[j] : slope * v[j];
        v[j] = r * r;
    }
    if (out) store_floats<VEC>(out + i, v);
    if (rounded) store_floats<VEC>(rounded + i, v);
}

template <class Dout, class In, int VEC>
__global__ static void relu2_bwd(float *dinp, __nv_bfloat16 *rounded, const Dout *dout, const In *inp, size_t n, float slope) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float x[VEC], d[VEC];
    load_floats<VEC>(x, inp + i), load_floats<VEC>(d, dout + i);
    for (int j = 0; j < VEC; j++) d[j] = x[j] > 0 ? 2 * x[j] * d[j] : 2 * slope * slope * x[j] * d[j];
    if (dinp) store_floats<VEC>(dinp + i, d);
    if (rounded) store_floats<VEC>(rounded + i, d);
}

// The launches name their template arguments through a variable, as the emulator's launch rewrite
// needs a plain kernel name.
template <class In>
static void launch_relu2_fwd(float *out, __nv_bfloat16 *rounded, const In *inp, size_t n, float slope) {
    int vec = vectors_fit(n, out, rounded, inp) ? 4 : 1;
    auto kernel = vec == 4 ? relu2_fwd<In, 4> : relu2_fwd<In, 1>;
    kernel<<<blocks_for(n / vec, THREADS), THREADS>>>(out, rounded, inp, n, slope);
    CUDA_CHECK_LAUNCH_AT("cuda_relu2_forward");
}

template <class Dout, class In>
static void launch_relu2_bwd(float *dinp, __nv_bfloat16 *rounded, const Dout *dout, const In *inp, size_t n, float slope) {
    int vec = vectors_fit(n, dinp, rounded, dout, inp) ? 4 : 1;
    auto kernel = vec == 4 ? relu2_bwd<Dout, In, 4> : relu2_bwd<Dout, In, 1>;
    kernel<<<blocks_for(n / vec, THREADS), THREADS>>>(dinp, rounded, dout, inp, n, slope);
    CUDA_CHECK_LAUNCH_AT("cuda_relu2_backward");
}

extern "C" void cuda_relu2_forward(float *out, const float *inp, const RoundedInput *inp_r, size_t n, float slope,
                                   RoundedInput *out_r) {
    const __nv_bfloat16 *inp_b = cuda_input_rounded(__func__, inp, inp_r, n); // before out_r is reset: it may be inp_r
    __nv_bfloat16 *rounded = cuda_rounded_output(__func__, out, out_r, n);
    if (inp_b) launch_relu2_fwd(out, rounded, inp_b, n, slope);
    else launch_relu2_fwd(out, rounded, inp, n, slope);
}

extern "C" void cuda_relu2_backward(float *dinp, const float *dout, const RoundedInput *dout_r, const float *inp,
                                    const RoundedInput *inp_r, size_t n, float slope, RoundedInput *dinp_r) {
    const __nv_bfloat16 *dout_b = cuda_input_rounded(__func__, dout, dout_r, n),
                        *inp_b = cuda_input_rounded(__func__, inp, inp_r, n);
    __nv_bfloat16 *rounded = cuda_rounded_output(__func__, dinp, dinp_r, n);
    if (dout_b && inp_b) launch_relu2_bwd(dinp, rounded, dout_b, inp_b, n, slope);
    else if (dout_b) launch_relu2_bwd(dinp, rounded, dout_b, inp, n, slope);
    else if (inp_b) launch_relu2_bwd(dinp, rounded, dout, inp_b, n, slope);
    else launch_relu2_bwd(dinp, rounded, dout, inp, n, slope);
}

// The norms' backward kernels fused with the residual updates around them (ops.h's
// rmsnorm_resid_mix_backward, scaled_add_rmsnorm_backward). A warp per row, as the forward's: lane l
// owns the columns (32 k + l) VEC + j, j < VEC, k < GROUPS, moved VEC at a time; the row's dot a warp
// butterfly, so no block barrier per row (a block per row chunk with one ran at a third of the
// memory's rate). Grid: SUM_CHUNK_ROWS row chunks (blockIdx.y) of NORM_BWD_WARPS warps, warp w taking
// the chunk's rows w, w + NORM_BWD_WARPS, ...; each lane sums its columns' parameter gradients over its
// rows in fp32 registers (a double per column would halve the warps an SM holds), then the warps' sums
// go into the chunk's partials in warp order through shared memory (doubles): deterministic.
#define NORM_BWD_WARPS 8
#define NORM_BWD_MAX_COLS 2048 // 32 lanes x 64 single columns, or x 16 vectors of 4
#define NORM_BWD_FEW_COLS 512  // 32 lanes x 4 vectors of 4: the instance in the fewest registers (the presets)

static void check_norm_row_width(const char *op, int C) {
    if (C > NORM_BWD_MAX_COLS) die("CUDA %s: model_dim %d above the %d its kernel covers", op, C, NORM_BWD_MAX_COLS);
}

// The calling lane's k-th group of columns
template <int VEC> __device__ inline int lane_columns(int k) { return (k * 32 + threadIdx.x % 32) * VEC; }

// Adds the warps' column sums s[nsum][GROUPS][VEC] in warp order into sums[nsum * C] (shared), then
// writes them as this chunk's partials part[blockIdx.y][nsum * C]
template <int VEC, int GROUPS, int NSUM>
__device__ static void chunk_column_sums(double *part, double *sums, const float (&s)[NSUM][GROUPS][VEC], int C) {
    int warp = threadIdx.x / 32;
    for (int w = 0; w < NORM_BWD_WARPS; w++) {
        if (warp == w)
            for (int q = 0; q < NSUM; q++)
#pragma unroll
                for (int k = 0; k < GROUPS; k++) {
                    int c = lane_columns<VEC>(k);
                    if (c >= C) break;
                    for (int j = 0; j < VEC; j++) sums[q * C + c + j] = (w ? sums[q * C + c + j] : 0) + s[q][k][j];
                }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < NSUM * C; c += blockDim.x) part[(size_t)blockIdx.y * NSUM * C + c] = sums[c];
}

// rmsnorm_resid_mix_backward: per row xm = mix0 x_in + mix1 x0 and the norm's output recomputed, the
// norm's dot, then g = dxm + the norm's backward, dx_in = g mix0, dx0 += g mix1, and the column sums
// of g x_in and g x0 (dmix).
template <class Dn, int VEC, int GROUPS>
__global__ static void norm_mix_bwd(float *__restrict__ dx_in, float *__restrict__ dx0, double *part, const Dn *__restrict__ dn,
                                    const float *__restrict__ dxm, const float *__restrict__ x_in, const float *__restrict__ x0,
                                    const float *__restrict__ mix, const float *__restrict__ rstd, int N, int C, float scale) {
    extern __shared__ double norm_bwd_sums[];
    float s[2][GROUPS][VEC] = {};
    for (int n = chunk_begin() + threadIdx.x / 32; n < chunk_end(N); n += NORM_BWD_WARPS) {
        size_t row = (size_t)n * C;
        float r = rstd[n], xi[GROUPS][VEC], xz[GROUPS][VEC], d[GROUPS][VEC];
        double dot = 0;
#pragma unroll
        for (int k = 0; k < GROUPS; k++) {
            int c = lane_columns<VEC>(k);
            if (c >= C) break;
            float m0[VEC], m1[VEC];
            load_floats<VEC>(xi[k], x_in + row + c), load_floats<VEC>(xz[k], x0 + row + c), load_floats<VEC>(d[k], dn + row + c);
            load_floats<VEC>(m0, mix + c), load_floats<VEC>(m1, mix + C + c);
            for (int j = 0; j < VEC; j++) dot += (double)d[k][j] * ((m0[j] * xi[k][j] + m1[j] * xz[k][j]) * r * scale);
        }
        float m = (float)(warp_sum(dot) / C) / scale;
#pragma unroll
        for (int k = 0; k < GROUPS; k++) {
            int c = lane_columns<VEC>(k);
            if (c >= C) break;
            float m0[VEC], m1[VEC], g[VEC], o0[VEC], oi[VEC];
            load_floats<VEC>(m0, mix + c), load_floats<VEC>(m1, mix + C + c);
            load_floats<VEC>(g, dxm + row + c), load_floats<VEC>(o0, dx0 + row + c);
            for (int j = 0; j < VEC; j++) {
                float xm = m0[j] * xi[k][j] + m1[j] * xz[k][j];
                g[j] += r * (scale * d[k][j] - xm * r * scale * m);
                oi[j] = g[j] * m0[j], o0[j] += g[j] * m1[j];
                s[0][k][j] += g[j] * xi[k][j], s[1][k][j] += g[j] * xz[k][j];
            }
            store_floats<VEC>(dx_in + row + c, oi), store_floats<VEC>(dx0 + row + c, o0);
        }
    }
    chunk_column_sums(part, norm_bwd_sums, s, C);
}

// The instance for rows of C values at these buffers: vectors where vectors_fit, as few registers as C allows
template <class Dn>
static void launch_norm_mix_bwd(float *dx_in, float *dx0, double *part, const Dn *dn, const float *dxm, const float *x_in,
                                const float *x0, const float *mix, const float *rstd, int N, int C, float scale) {
    auto kernel = norm_mix_bwd<Dn, 1, 64>; // through a variable: the emulator's launch rewrite needs a plain name
    if (vectors_fit(C, dx_in, dx0, dn, dxm, x_in, x0, mix))
        kernel = C <= NORM_BWD_FEW_COLS ? norm_mix_bwd<Dn, 4, 4> : norm_mix_bwd<Dn, 4, 16>;
    size_t shared = 2 * C * sizeof(double);
    kernel<<<dim3(1, row_chunks(N)), NORM_BWD_WARPS * 32, shared>>>(dx_in, dx0, part, dn, dxm, x_in, x0, mix, rstd, N, C, scale);
    CUDA_CHECK_LAUNCH_AT("cuda_rmsnorm_resid_mix_backward");
}

extern "C" void cuda_rmsnorm_resid_mix_backward(float *dx_in, float *dx0, float *dmix, const float *dn, const RoundedInput *dn_r,
                                                const float *dxm, const float *x_in, const float *x0, const float *mix,
                                                const float *rstd, int N, int C, float scale) {
    check_norm_row_width("rmsnorm_resid_mix_backward", C);
    const __nv_bfloat16 *dnb = cuda_input_rounded(__func__, dn, dn_r, (size_t)N * C);
    double *part = column_partials(N, 2 * C);
    if (dnb) launch_norm_mix_bwd(dx_in, dx0, part, dnb, dxm, x_in, x0, mix, rstd, N, C, scale);
    else launch_norm_mix_bwd(dx_in, dx0, part, dn, dxm, x_in, x0, mix, rstd, N, C, scale);
    column_partials_add(dmix, part, N, 2 * C);
}

// scaled_add_rmsnorm_backward: per row the norm's output recomputed from its input x as the forward
// formed it (x rstd ln), the norm's dot, then g = dx + the norm's backward into dx, dy = scale g and/or
// its rounding dyr, and the column sums of g y (dscale); dn and y fp32 or bf16.
template <class Dn, class Y, int VEC, int GROUPS>
__global__ static void add_norm_bwd(float *__restrict__ dx, float *__restrict__ dy, __nv_bfloat16 *__restrict__ dyr, double *part,
                                    const Dn *__restrict__ dn, const float *__restrict__ x, const float *__restrict__ rstd,
                                    const float *__restrict__ scale, const Y *__restrict__ y, int N, int C, float ln) {
    extern __shared__ double norm_bwd_sums[];
    float s[1][GROUPS][VEC] = {};
    for (int n = chunk_begin() + threadIdx.x / 32; n < chunk_end(N); n += NORM_BWD_WARPS) {
        size_t row = (size_t)n * C;
        float r = rstd[n], d[GROUPS][VEC], v[GROUPS][VEC];
        double dot = 0;
#pragma unroll
        for (int k = 0; k < GROUPS; k++) {
            int c = lane_columns<VEC>(k);
            if (c >= C) break;
            load_floats<VEC>(d[k], dn + row + c), load_floats<VEC>(v[k], x + row + c);
            for (int j = 0; j < VEC; j++) v[k][j] = v[k][j] * r * ln, dot += (double)d[k][j] * v[k][j];
        }
        float m = (float)(warp_sum(dot) / C) / ln;
#pragma unroll
        for (int k = 0; k < GROUPS; k++) {
            int c = lane_columns<VEC>(k);
            if (c >= C) break;
            float g[VEC], sc[VEC], yv[VEC], t[VEC];
            load_floats<VEC>(g, dx + row + c), load_floats<VEC>(sc, scale + c), load_floats<VEC>(yv, y + row + c);
            for (int j = 0; j < VEC; j++) {
                g[j] += r * (ln * d[k][j] - v[k][j] * m), t[j] = g[j] * sc[j];
                s[0][k][j] += g[j] * yv[j];
            }
            store_floats<VEC>(dx + row + c, g);
            if (dy) store_floats<VEC>(dy + row + c, t);
            if (dyr) store_floats<VEC>(dyr + row + c, t);
        }
    }
    chunk_column_sums(part, norm_bwd_sums, s, C);
}

template <class Dn, class Y>
static void launch_add_norm_bwd(float *dx, float *dy, __nv_bfloat16 *dyr, double *part, const Dn *dn, const float *x,
                                const float *rstd, const float *scale, const Y *y, int N, int C, float ln) {
    auto kernel = add_norm_bwd<Dn, Y, 1, 64>;
    if (vectors_fit(C, dx, dy, dyr, dn, x, scale, y))
        kernel = C <= NORM_BWD_FEW_COLS ? add_norm_bwd<Dn, Y, 4, 4> : add_norm_bwd<Dn, Y, 4, 16>;
    size_t shared = C * sizeof(double);
    kernel<<<dim3(1, row_chunks(N)), NORM_BWD_WARPS * 32, shared>>>(dx, dy, dyr, part, dn, x, rstd, scale, y, N, C, ln);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_rmsnorm_backward");
}

extern "C" void cuda_scaled_add_rmsnorm_backward(float *dx, float *dy, float *dscale, const float *dn, const RoundedInput *dn_r,
                                                 const float *x, const float *rstd, const float *scale, const float *y,
                                                 const RoundedInput *y_r, int N, int C, float ln, RoundedInput *dy_r) {
    check_norm_row_width("scaled_add_rmsnorm_backward", C);
    size_t total = (size_t)N * C;
    const __nv_bfloat16 *dnb = cuda_input_rounded(__func__, dn, dn_r, total), *yb = cuda_input_rounded(__func__, y, y_r, total);
    __nv_bfloat16 *dyr = cuda_rounded_output(__func__, dy, dy_r, total);
    double *part = column_partials(N, C);
    if (dnb && yb) launch_add_norm_bwd(dx, dy, dyr, part, dnb, x, rstd, scale, yb, N, C, ln);
    else if (dnb) launch_add_norm_bwd(dx, dy, dyr, part, dnb, x, rstd, scale, y, N, C, ln);
    else if (yb) launch_add_norm_bwd(dx, dy, dyr, part, dn, x, rstd, scale, yb, N, C, ln);
    else launch_add_norm_bwd(dx, dy, dyr, part, dn, x, rstd, scale, y, N, C, ln);
    column_partials_add(dscale, part, N, C);
}

// out = x + scale y (out may be x); y fp32 or bf16 (a projection's output kept only rounded); VEC
// values per thread, within a row (C a multiple of VEC)
template <class Y, int VEC>
__global__ static void scaled_add_fwd(float *out, const float *x, const float *scale, const Y *y, int N, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * C) return;
    float v[VEC], sc[VEC], yv[VEC];
    load_floats<VEC>(v, x + i), load_floats<VEC>(sc, scale + i % C), load_floats<VEC>(yv, y + i);
    for (int j = 0; j < VEC; j++) v[j] += sc[j] * yv[j];
    store_floats<VEC>(out + i, v);
}

// grid (channels, row chunks): one thread per VEC columns of a chunk of rows. dy and/or its bf16 rounding
// dyr; either may be NULL. The outputs alias no input (ops.h, hence restrict), so the loads of later
// rows may be issued before this row's stores (several rows' loads in flight; the sums keep their order).
template <class Y, int VEC>
__global__ static void scaled_add_bwd(float *__restrict__ dy, __nv_bfloat16 *__restrict__ dyr, double *part,
                                      const float *__restrict__ dout, const float *__restrict__ scale, const Y *__restrict__ y,
                                      int N, int C, int accumulate) {
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (c >= C) return;
    double s[VEC] = {};
    float sc[VEC];
    load_floats<VEC>(sc, scale + c);
#pragma unroll 4
    for (int n = chunk_begin(); n < chunk_end(N); n++) {
        size_t o = (size_t)n * C + c;
        float d[VEC], yv[VEC], g[VEC] = {};
        load_floats<VEC>(d, dout + o), load_floats<VEC>(yv, y + o);
        if (accumulate) load_floats<VEC>(g, dy + o);
        for (int j = 0; j < VEC; j++) s[j] += (double)d[j] * yv[j], g[j] += d[j] * sc[j];
        if (dy) store_floats<VEC>(dy + o, g);
        if (dyr) store_floats<VEC>(dyr + o, g);
    }
    for (int j = 0; j < VEC; j++) part[(size_t)blockIdx.y * C + c + j] = s[j];
}

template <class Y> static void launch_scaled_add_fwd(float *out, const float *x, const float *scale, const Y *y, int N, int C) {
    int vec = vectors_fit(C, out, x, scale, y) ? 4 : 1;
    auto kernel = vec == 4 ? scaled_add_fwd<Y, 4> : scaled_add_fwd<Y, 1>;
    kernel<<<blocks_for((size_t)N * C / vec, THREADS), THREADS>>>(out, x, scale, y, N, C);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_forward");
}

template <class Y>
static void launch_scaled_add_bwd(float *dy, __nv_bfloat16 *dyr, double *part, const float *dout, const float *scale, const Y *y,
                                  int N, int C, int accumulate) {
    int vec = vectors_fit(C, dy, dyr, dout, scale, y) ? 4 : 1;
    auto kernel = vec == 4 ? scaled_add_bwd<Y, 4> : scaled_add_bwd<Y, 1>;
    dim3 grid(blocks_for((size_t)C / vec, THREADS), row_chunks(N));
    kernel<<<grid, THREADS>>>(dy, dyr, part, dout, scale, y, N, C, accumulate);
    CUDA_CHECK_LAUNCH_AT("cuda_scaled_add_backward");
}

extern "C" void cuda_scaled_add_forward(float *out, const float *x, const float *scale, const float *y, const RoundedInput *y_r,
                                        int N, int C) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C);
    if (yb) launch_scaled_add_fwd(out, x, scale, yb, N, C);
    else launch_scaled_add_fwd(out, x, scale, y, N, C);
}

extern "C" void cuda_scaled_add_backward(float *dy, float *dscale, const float *dout, const float *scale, const float *y,
                                         const RoundedInput *y_r, int N, int C, int accumulate, RoundedInput *dy_r) {
    const __nv_bfloat16 *yb = cuda_input_rounded(__func__, y, y_r, (size_t)N * C);
    double *part = column_partials(N, C);
    __nv_bfloat16 *dyr = cuda_rounded_output(__func__, dy, dy_r, (size_t)N * C);
    if (!dy && accumulate) die("%s: nothing to accumulate into", __func__);
    if (yb) launch_scaled_add_bwd(dy, dyr, part, dout, scale, yb, N, C, accumulate);
    else launch_scaled_add_bwd(dy, dyr, part, dout, scale, y, N, C, accumulate);
    column_partials_add(dscale, part, N, C);
}
