// The CUDA implementation of the op interface (ops/ops.h) for NVIDIA GPUs: fp32 kernels and fp32
// master weights, the linear layers' products on bf16 tensor cores (dense.cu). Same math and the same
// argument order as the CPU ops; every pointer is device memory. Built only by `make cuda`.
//
// State (2026-11-26): every op of ops.h has a kernel here; bridge.cu binds them to the ops.h names for
// pgolf-cuda. Tested against the CPU ops by tests/cuda, on the CPU emulator (tests/cuda/emu) in CI
// and on an H200 (2026-11-25, before the mma.sync attention, the rounding changes, the bf16 linear
// outputs and cuDNN's attention).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- device and memory
int cuda_device_count(void); // 0 where there is no driver or no device (never dies)
float *cuda_alloc(size_t n); // zeroed
int32_t *cuda_alloc_i32(size_t n);
void cuda_free(void *p);
void cuda_upload(void *dst, const void *src, size_t bytes);
void cuda_download(void *dst, const void *src, size_t bytes);
void cuda_sync(void);

// ---------------------------------------------------------------- dense algebra (cuBLAS)
// The linear layers' operands: bf16 on tensor cores (default) or fp32 without TF32 (as ops.h's
// ops_set_matmul_bf16), and so is cuda_matmul_gemm; cuda_gram_upper is always fp32.
void cuda_set_matmul_bf16(int on);
int cuda_matmul_bf16(void);
// inp_r: NULL or inp rounded once (ops.h's RoundedInput, filled by cuda_matmul_input_round: bf16 storage).
struct RoundedInput;
void cuda_matmul_input_round(struct RoundedInput *r, const float *inp, size_t n);
void cuda_matmul_input_free(struct RoundedInput *r);
void cuda_matmul_input_hold(struct RoundedInput *r, const float *x, size_t n);
struct RoundedInput cuda_matmul_input_columns(const struct RoundedInput *r, size_t col);
void cuda_matmul_input_values(float *out, const struct RoundedInput *r, int rows, int cols, int ld);
void cuda_copy_into_columns(float *dst, int ld, const float *x, int rows, int cols, struct RoundedInput *dst_r);
void cuda_matmul_forward(float *out, const float *inp, const struct RoundedInput *inp_r, const float *w, int N, int C_in,
                         int C_out, struct RoundedInput *out_r);
void cuda_matmul_backward(float *dinp, float *dw, const float *dout, const struct RoundedInput *dout_r, const float *inp,
                          const struct RoundedInput *inp_r, const float *w, int N, int C_in, int C_out, int accumulate,
                          struct RoundedInput *dinp_r);

// ---------------------------------------------------------------- rows: norm and head
void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int rows, int C, float eps, float scale,
                          struct RoundedInput *out_r);
void cuda_rmsnorm_backward(float *dinp, const float *dout, const struct RoundedInput *dout_r, const float *out,
                           const float *rstd, int rows, int C, float scale, int accumulate);
void cuda_softcap_xent_forward(float *loss, const float *z, const struct RoundedInput *z_r, const int32_t *targets, int N,
                               int V, float cap);
void cuda_softcap_xent_backward(float *dz, struct RoundedInput *dz_r, const float *z, const struct RoundedInput *z_r,
                                const int32_t *targets, int N, int V, float cap, float scale);

// ---------------------------------------------------------------- elementwise and per-channel
void cuda_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int D);
void cuda_relu2_forward(float *out, const float *inp, const struct RoundedInput *inp_r, size_t n, float slope,
                        struct RoundedInput *out_r);
void cuda_relu2_backward(float *dinp, const float *dout, const struct RoundedInput *dout_r, const float *inp,
                         const struct RoundedInput *inp_r, size_t n, float slope, struct RoundedInput *dinp_r);
void cuda_resid_mix_rmsnorm_forward(float *xm, const float *x, const float *x0, const float *mix, int N, int C, float *n,
                                    float *rstd, float eps, float scale, struct RoundedInput *n_r);
void cuda_scaled_add_rmsnorm_forward(float *x, const float *scale, const float *y, const struct RoundedInput *y_r, int N, int C,
                                     float *n, float *rstd, float eps, float ln, struct RoundedInput *n_r);
void cuda_scaled_add_rmsnorm_backward(float *dx, float *dy, float *dscale, const float *dn, const struct RoundedInput *dn_r,
                                      const float *x, const float *rstd, const float *scale, const float *y,
                                      const struct RoundedInput *y_r, int N, int C, float ln, struct RoundedInput *dy_r);
void cuda_rmsnorm_resid_mix_backward(float *dx_in, float *dx0, float *dmix, const float *dn, const struct RoundedInput *dn_r,
                                     const float *dxm, const float *x_in, const float *x0, const float *mix, const float *rstd,
                                     int N, int C, float scale);
void cuda_scaled_add_forward(float *out, const float *x, const float *scale, const float *y, const struct RoundedInput *y_r,
                             int N, int C);
void cuda_scaled_add_backward(float *dy, float *dscale, const float *dout, const float *scale, const float *y,
                              const struct RoundedInput *y_r, int N, int C, int accumulate, struct RoundedInput *dy_r);

// ---------------------------------------------------------------- attention (causal GQA, lse saved)
// FlashAttention-2's schedule: on tensor cores in bf16 mode (attention_tc.cu, or cuDNN's fused attention
// where the build links it and PGOLF_CUDA_ATTENTION is not pgolf; qkv_r: NULL or q, k, v rounded, as
// ops.h's), else fp32 tiles on CUDA cores (head dimension up to 128).
void cuda_attention_forward(float *y, float *lse, const float *q, const float *k, const float *v,
                            const struct RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv,
                            struct RoundedInput *y_r);
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dy, const struct RoundedInput *dy_r, const float *y,
                             const struct RoundedInput *y_r, const float *lse, const float *q, const float *k, const float *v,
                             const struct RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv,
                             struct RoundedInput *dq_r, struct RoundedInput *dk_r, struct RoundedInput *dv_r);
// Whose tensor-core attention runs: "pgolf", or cuDNN's with its version ("cudnn-9.13.0").
const char *cuda_attention_name(void);

// ---------------------------------------------------------------- query/key preparation and the seed techniques
void cuda_qk_prep_forward(float *out, float *rstd, const float *x, const struct RoundedInput *x_r, int ldx,
                          const float *gain, const float *cos_t, const float *sin_t, int B, int T, int nh, int Dh, int rot,
                          float eps, struct RoundedInput *out_r);
void cuda_qk_prep_backward(float *dx, int ld_dx, float *dgain, const float *dout, const struct RoundedInput *dout_r,
                           const float *x, const struct RoundedInput *x_r, int ldx, const float *rstd, const float *gain,
                           const float *cos_t, const float *sin_t, int B, int T, int nh, int Dh, int rot,
                           struct RoundedInput *dx_r);
void cuda_xsa_forward(float *out, const float *y, const float *v, int N, int H, int Hkv, int Dh);
void cuda_xsa_backward(float *dy, float *dv, const float *y, const float *v, int N, int H, int Hkv, int Dh);
void cuda_attn_gate_forward(float *out, float *gate, const float *y, const float *z, const float *bias, int N, int H, int Dh,
                            int G, float gain);
void cuda_attn_gate_backward(float *dy, float *dz, float *dbias, const float *dout, const float *y, const float *gate, int N,
                             int H, int Dh, int G, float gain);
void cuda_smear_forward(float *out, const float *x, const float *gate, int B, int T, int C);
void cuda_smear_backward(float *dx, float *dgate, const float *dout, const float *x, const float *gate, int B, int T, int C);
void cuda_skip_lerp_forward(float *out, const float *x, const float *y, const float *w, const float *gate, int N, int C);
void cuda_skip_lerp_backward(float *dx, float *dy, float *dw, float *dgate, const float *dout, const float *x, const float *y,
                             const float *w, const float *gate, int N, int C);
// lam: host values; dlam: written on the host
void cuda_value_mix_forward(float *out, const float *v, const float *v0, const float lam[2], size_t n);
void cuda_value_mix_backward(float *dv, float *dv0, double dlam[2], const float *dout, const float *v, const float *v0,
                             const float lam[2], size_t n);
void cuda_axpy_forward(float *x, float a, const float *y, size_t n);
double cuda_axpy_backward(float *dy, const float *dout, float a, const float *y, size_t n);
void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int D); // ids: host array

// ---------------------------------------------------------------- optimizer work and reductions (as ops.h)
void cuda_matmul_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, size_t stride_a,
                      const float *B, int ldb, size_t stride_b, float beta, float *C, int ldc, size_t stride_c, int count);
void cuda_gram_upper(int n, int N, const float *X, int ldx, float beta, float *C);
void cuda_nesterov_momentum(float *update, float *buf, const float *g, size_t n, float momentum);
void cuda_normalize_rows(float *x, int rows, int cols, double s);
void cuda_transpose(float *out, const float *in, int rows, int cols);
void cuda_adam_step(float *p, const float *g, float *m, float *v, size_t n, float b1, float b2, float eps, float step_size,
                    float bc2_sqrt);
void cuda_ema_step(float *ema, const float *w, size_t n, double decay);
void cuda_scale_inplace(float *x, float s, size_t n);
void cuda_scale_to_unit_norm(float *x, size_t n, double eps);
void cuda_sgd_momentum_step(float *p, const float *g, float *buf, size_t n, float momentum, float lr);
void cuda_fake_quantize_rows(float *w, int rows, int cols);
double cuda_sum_squares(const float *x, size_t n);
double cuda_sum_values(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
