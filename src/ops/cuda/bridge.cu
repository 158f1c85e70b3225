// The CUDA backend of the op interface: each function of ops/ops.h, by its own name, on device memory,
// so `make pgolf-cuda` links the unchanged model, optimizers and CLI against it instead of src/ops/cpu.
// Token ids and targets arrive as host arrays and are uploaded here.
#include <stdio.h>
#include <string.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
extern "C" {
#include "ops/ops.h"
}

// A device copy of host int32 ids, valid until the next call (the default stream orders the copy
// after the kernels that read the previous ids).
static const int32_t *device_ids(const int32_t *host, size_t n) {
    int32_t *dev = (int32_t *)cuda_scratch(SCRATCH_IDS, sizeof(int32_t) * n);
    cuda_upload(dev, host, sizeof(int32_t) * n);
    return dev;
}

extern "C" {

const char *ops_backend(void) {
    static char text[300];
    cudaDeviceProp prop;
    if (!text[0] && cuda_device_count() && cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(text, sizeof text, "cuda device:%s attention:%s", prop.name, cuda_attention_name());
    return text[0] ? text : "cuda device:none";
}

real *ops_alloc(size_t n) {
    static int checked = 0;
    if (!checked && !cuda_device_count()) die("pgolf-cuda needs an NVIDIA GPU and its driver; none is usable here (./pgolf runs on the CPU)");
    checked = 1;
    return cuda_alloc(n);
}
size_t ops_activation_budget(PassKind kind) { // the process has the GPU to itself; a forward gains from size
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return total / 2;
}
void ops_free(real *p) { cuda_free(p); }
void ops_zero(real *p, size_t n) {
    CUDA_CHECK(cudaMemset(p, 0, n * sizeof(real)));
    cuda_profile_mark(__func__);
}
void ops_copy(real *dst, const real *src, size_t n) {
    if (dst != src) CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(real), cudaMemcpyDeviceToDevice));
    cuda_profile_mark(__func__);
}
void ops_to_host(real *host, const real *src, size_t n) { cuda_download(host, src, n * sizeof(real)); }
void ops_from_host(real *dst, const real *host, size_t n) { cuda_upload(dst, host, n * sizeof(real)); }
void ops_add_from_host(real *dst, const real *host, size_t n) {
    real *tmp = (real *)cuda_scratch(SCRATCH_HOST_ADD, n * sizeof(real));
    cuda_upload(tmp, host, n * sizeof(real));
    cuda_axpy_forward(dst, 1, tmp, n);
}

void ops_set_matmul_bf16(int on) { cuda_set_matmul_bf16(on); }
int ops_matmul_bf16(void) { return cuda_matmul_bf16(); }
void gram_upper(int n, int N, const real *X, int ldx, real beta, real *C) { cuda_gram_upper(n, N, X, ldx, beta, C); }
void matmul_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, size_t stride_a,
                 const real *B, int ldb, size_t stride_b, real beta, real *C, int ldc, size_t stride_c, int count) {
    cuda_matmul_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, count);
}
void matmul_input_round(RoundedInput *r, const real *x, size_t n) { cuda_matmul_input_round(r, x, n); }
void matmul_input_free(RoundedInput *r) { cuda_matmul_input_free(r); }
void matmul_input_hold(RoundedInput *r, const real *x, size_t n) { cuda_matmul_input_hold(r, x, n); }
RoundedInput matmul_input_columns(const RoundedInput *r, size_t col) { return cuda_matmul_input_columns(r, col); }
void matmul_input_values(real *out, const RoundedInput *r, int rows, int cols, int ld) {
    cuda_matmul_input_values(out, r, rows, cols, ld);
}
void copy_into_columns(real *dst, int ld, const real *x, int rows, int cols, RoundedInput *dst_r) {
    cuda_copy_into_columns(dst, ld, x, rows, cols, dst_r);
}
void matmul_forward(real *out, const real *inp, const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out,
                    RoundedInput *out_r) {
    cuda_matmul_forward(out, inp, inp_r, w, N, C_in, C_out, out_r);
}
void matmul_backward(real *dinp, real *dw, const real *dout, const RoundedInput *dout_r, const real *inp,
                     const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out, int accumulate, RoundedInput *dinp_r) {
    cuda_matmul_backward(dinp, dw, dout, dout_r, inp, inp_r, w, N, C_in, C_out, accumulate, dinp_r);
}

void embedding_forward(real *out, const int32_t *ids, const real *table, int N, int D) {
    cuda_embedding_forward(out, device_ids(ids, (size_t)N), table, N, D);
}
void embedding_backward(real *dtable, const real *dout, const int32_t *ids, int N, int D) {
    cuda_embedding_backward(dtable, dout, ids, N, D);
}

void rmsnorm_forward(real *out, real *rstd, const real *inp, int rows, int C, real eps, real scale, RoundedInput *out_r) {
    cuda_rmsnorm_forward(out, rstd, inp, rows, C, eps, scale, out_r);
}
void rmsnorm_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *out, const real *rstd, int rows,
                      int C, real scale, int accumulate) {
    cuda_rmsnorm_backward(dinp, dout, dout_r, out, rstd, rows, C, scale, accumulate);
}

void qk_prep_forward(real *out, real *rstd, const real *x, const RoundedInput *x_r, int ldx, const real *gain,
                     const real *cos_t, const real *sin_t, int B, int T, int nh, int Dh, int rot, real eps, RoundedInput *out_r) {
    cuda_qk_prep_forward(out, rstd, x, x_r, ldx, gain, cos_t, sin_t, B, T, nh, Dh, rot, eps, out_r);
}
void qk_prep_backward(real *dx, int ld_dx, real *dgain, const real *dout, const RoundedInput *dout_r, const real *x,
                      const RoundedInput *x_r, int ldx, const real *rstd, const real *gain, const real *cos_t,
                      const real *sin_t, int B, int T, int nh, int Dh, int rot, RoundedInput *dx_r) {
    cuda_qk_prep_backward(dx, ld_dx, dgain, dout, dout_r, x, x_r, ldx, rstd, gain, cos_t, sin_t, B, T, nh, Dh, rot, dx_r);
}

void attention_forward(real *y, real *lse, const real *q, const real *k, const real *v, const RoundedInput *qkv_r, int B,
                       int T, int H, int Hkv, int Dh, int ldv, RoundedInput *y_r) {
    cuda_attention_forward(y, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh, ldv, y_r);
}
void attention_backward(real *dq, real *dk, real *dv, const real *dy, const RoundedInput *dy_r, const real *y,
                        const RoundedInput *y_r, const real *lse, const real *q, const real *k, const real *v,
                        const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv, RoundedInput *dq_r,
                        RoundedInput *dk_r, RoundedInput *dv_r) {
    cuda_attention_backward(dq, dk, dv, dy, dy_r, y, y_r, lse, q, k, v, qkv_r, B, T, H, Hkv, Dh, ldv, dq_r, dk_r, dv_r);
}
void xsa_forward(real *out, const real *y, const real *v, int N, int H, int Hkv, int Dh) {
    cuda_xsa_forward(out, y, v, N, H, Hkv, Dh);
}
void xsa_backward(real *dy, real *dv, const real *y, const real *v, int N, int H, int Hkv, int Dh) {
    cuda_xsa_backward(dy, dv, y, v, N, H, Hkv, Dh);
}
void attn_gate_forward(real *out, real *gate, const real *y, const real *z, const real *bias, int N, int H, int Dh, int G,
                       real gain) {
    cuda_attn_gate_forward(out, gate, y, z, bias, N, H, Dh, G, gain);
}
void attn_gate_backward(real *dy, real *dz, real *dbias, const real *dout, const real *y, const real *gate, int N, int H,
                        int Dh, int G, real gain) {
    cuda_attn_gate_backward(dy, dz, dbias, dout, y, gate, N, H, Dh, G, gain);
}

void smear_forward(real *out, const real *x, const real *gate, int B, int T, int C) {
    cuda_smear_forward(out, x, gate, B, T, C);
}
void smear_backward(real *dx, real *dgate, const real *dout, const real *x, const real *gate, int B, int T, int C) {
    cuda_smear_backward(dx, dgate, dout, x, gate, B, T, C);
}
void relu2_forward(real *out, const real *inp, const RoundedInput *inp_r, size_t n, real slope, RoundedInput *out_r) {
    cuda_relu2_forward(out, inp, inp_r, n, slope, out_r);
}
void relu2_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *inp, const RoundedInput *inp_r,
                    size_t n, real slope, RoundedInput *dinp_r) {
    cuda_relu2_backward(dinp, dout, dout_r, inp, inp_r, n, slope, dinp_r);
}
void resid_mix_rmsnorm_forward(real *out, const real *x, const real *x0, const real *mix, int N, int C, real *n, real *rstd,
                               real eps, real scale, RoundedInput *n_r) {
    cuda_resid_mix_rmsnorm_forward(out, x, x0, mix, N, C, n, rstd, eps, scale, n_r);
}
void scaled_add_rmsnorm_forward(real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C, real *n,
                                real *rstd, real eps, real ln, RoundedInput *n_r) {
    cuda_scaled_add_rmsnorm_forward(x, scale, y, y_r, N, C, n, rstd, eps, ln, n_r);
}
void scaled_add_rmsnorm_backward(real *dx, real *dy, real *dscale, const real *dn, const RoundedInput *dn_r, const real *x,
                                 const real *rstd, const real *scale, const real *y, const RoundedInput *y_r, int N, int C,
                                 real ln, RoundedInput *dy_r) {
    cuda_scaled_add_rmsnorm_backward(dx, dy, dscale, dn, dn_r, x, rstd, scale, y, y_r, N, C, ln, dy_r);
}
void rmsnorm_resid_mix_backward(real *dx_in, real *dx0, real *dmix, const real *dn, const RoundedInput *dn_r, const real *dxm,
                                const real *x_in, const real *x0, const real *mix, const real *rstd, int N, int C, real scale) {
    cuda_rmsnorm_resid_mix_backward(dx_in, dx0, dmix, dn, dn_r, dxm, x_in, x0, mix, rstd, N, C, scale);
}
void value_mix_forward(real *out, const real *v, const real *v0, const real lam[2], size_t n) {
    cuda_value_mix_forward(out, v, v0, lam, n);
}
void value_mix_backward(real *dv, real *dv0, double dlam[2], const real *dout, const real *v, const real *v0,
                        const real lam[2], size_t n) {
    cuda_value_mix_backward(dv, dv0, dlam, dout, v, v0, lam, n);
}
void axpy_forward(real *x, real a, const real *y, size_t n) { cuda_axpy_forward(x, a, y, n); }
double axpy_backward(real *dy, const real *dout, real a, const real *y, size_t n) {
    return cuda_axpy_backward(dy, dout, a, y, n);
}
void skip_lerp_forward(real *out, const real *x, const real *y, const real *w, const real *gate, int N, int C) {
    cuda_skip_lerp_forward(out, x, y, w, gate, N, C);
}
void skip_lerp_backward(real *dx, real *dy, real *dw, real *dgate, const real *dout, const real *x, const real *y,
                        const real *w, const real *gate, int N, int C) {
    cuda_skip_lerp_backward(dx, dy, dw, dgate, dout, x, y, w, gate, N, C);
}
void scaled_add_forward(real *out, const real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C) {
    cuda_scaled_add_forward(out, x, scale, y, y_r, N, C);
}
void scaled_add_backward(real *dy, real *dscale, const real *dout, const real *scale, const real *y, const RoundedInput *y_r,
                         int N, int C, int accumulate, RoundedInput *dy_r) {
    cuda_scaled_add_backward(dy, dscale, dout, scale, y, y_r, N, C, accumulate, dy_r);
}
void add_inplace(real *dst, const real *src, size_t n) { cuda_axpy_forward(dst, 1, src, n); }

void softcap_xent_forward(real *loss, const real *z, const RoundedInput *z_r, const int32_t *targets, int N, int V, real cap) {
    cuda_softcap_xent_forward(loss, z, z_r, device_ids(targets, (size_t)N), N, V, cap);
}
void softcap_xent_backward(real *dz, RoundedInput *dz_r, const real *z, const RoundedInput *z_r, const int32_t *targets, int N,
                           int V, real cap, real scale) {
    cuda_softcap_xent_backward(dz, dz_r, z, z_r, device_ids(targets, (size_t)N), N, V, cap, scale);
}

double sum_squares(const real *x, size_t n) { return cuda_sum_squares(x, n); }
void scale_inplace(real *x, real s, size_t n) { cuda_scale_inplace(x, s, n); }
void scale_to_unit_norm(real *x, size_t n, double eps) { cuda_scale_to_unit_norm(x, n, eps); }
double sum_values(const real *x, size_t n) { return cuda_sum_values(x, n); }
void nesterov_momentum(real *update, real *buf, const real *g, size_t n, real momentum) {
    cuda_nesterov_momentum(update, buf, g, n, momentum);
}
void normalize_rows(real *x, int rows, int cols, double s) { cuda_normalize_rows(x, rows, cols, s); }
void transpose(real *out, const real *in, int rows, int cols) { cuda_transpose(out, in, rows, cols); }
void adam_step(real *p, const real *g, real *m, real *v, size_t n, real b1, real b2, real eps, real step_size,
               real bc2_sqrt) {
    cuda_adam_step(p, g, m, v, n, b1, b2, eps, step_size, bc2_sqrt);
}
void ema_step(real *ema, const real *w, size_t n, double decay) { cuda_ema_step(ema, w, n, decay); }
void sgd_momentum_step(real *p, const real *g, real *buf, size_t n, real momentum, real lr) {
    cuda_sgd_momentum_step(p, g, buf, n, momentum, lr);
}
void fake_quantize_rows(real *w, int rows, int cols) { cuda_fake_quantize_rows(w, rows, cols); }

// The CPU profile counts gemm FLOPs and attention time for bench/; the CUDA build reports nothing yet.
void ops_profile_start(void) {}
OpsProfile ops_profile_stop(void) {
    OpsProfile p;
    memset(&p, 0, sizeof p);
    return p;
}

} // extern "C"
