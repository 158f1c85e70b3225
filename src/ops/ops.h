// The op interface: every computation the model and the optimizers do goes through these functions,
// so a backend (CPU: OpenBLAS + OpenMP; CUDA: src/ops/cuda) can be swapped without touching the model's
// logic. Token ids and targets (int32) are host arrays; everything else is backend memory.
// Pointers are backend memory; shapes are in the comments. Row-major; matrices act as y = x W^T
// with W stored [out, in], like torch's F.linear.
// Backward functions accumulate (+=) into parameter gradients; activation gradients are written
// (=) unless the function says it accumulates.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "real.h"

// What computes, for the log: "cpu threads:2 blas:openblas", "cuda device:NVIDIA H100 80GB HBM3".
const char *ops_backend(void);

// ---------------------------------------------------------------- memory
real *ops_alloc(size_t n); // zeroed
// What one pass of the model computes: a forward and a backward (training, TTT's steps) or a forward
// only (evaluation, GPTQ's calibration).
typedef enum { PASS_TRAIN, PASS_FORWARD } PassKind;
// The bytes of activations one pass may take when MAX_PASS_TOKENS is automatic (gpt_pass_token_cap):
// on the CPU a quarter of the machine's RAM for training passes and at most 1 GiB for forward-only ones;
// half of the GPU's memory for either.
size_t ops_activation_budget(PassKind kind);
void ops_free(real *p);
void ops_zero(real *p, size_t n);
void ops_copy(real *dst, const real *src, size_t n);
// Between host memory and backend memory (the CPU backend: plain copies). The model reads its few
// scalar parameters and adds their gradients through these, never by dereferencing backend memory.
void ops_to_host(real *host, const real *src, size_t n);
void ops_from_host(real *dst, const real *host, size_t n);
void ops_add_from_host(real *dst, const real *host, size_t n); // dst += host

// ---------------------------------------------------------------- dense algebra
// C = X^T X + beta C for X [N x n] (rows ldx apart) in fp32, only C's upper triangle (row i, columns
// j >= i of the n x n row-major C; the rest left as it was): half a full product's work, for GPTQ's Hessians.
void gram_upper(int n, int N, const real *X, int ldx, real beta, real *C);
// The linear layers' operand precision (matmul_forward/backward, matmul_gemm; gram_upper is always fp32):
// bf16 on rounds both operands to bfloat16 (nearest even) and accumulates in fp32 with fp32 results,
// as tensor cores do under the reference's autocast. Default: off on the CPU, on for CUDA.
void ops_set_matmul_bf16(int on);
int ops_matmul_bf16(void);
// Elements a row-major gemm operand of `rows` rows of `cols` values, `ld` apart, spans.
static inline size_t gemm_operand_extent(int rows, int cols, int ld) { return rows > 0 ? (size_t)(rows - 1) * ld + cols : 0; }
// Elements `count` operands `stride` apart span, each op(X) of `rows` x `cols` (X itself transposed when
// trans), X's rows `ld` apart (matmul_gemm's batches).
static inline size_t gemm_batch_extent(int count, size_t stride, int trans, int rows, int cols, int ld) {
    return (size_t)(count - 1) * stride + (trans ? gemm_operand_extent(cols, rows, ld) : gemm_operand_extent(rows, cols, ld));
}
// `count` gemm products in the linear layers' precision: with bf16 on, A and B are rounded to bf16 first
// (fp32 sums and results), as the reference's Newton-Schulz multiplies bf16 matrices (Muon's is the
// caller). Product i reads A + i stride_a and B + i stride_b and writes C + i stride_c: Muon
// orthogonalizes every matrix of one shape in one batch (on a GPU one batched call, not count launches).
void matmul_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, size_t stride_a,
                 const real *B, int ldb, size_t stride_b, real beta, real *C, int ldc, size_t stride_c, int count);
// An operand rounded once to the products' precision, for every product that reads it: a block's
// normed input feeds q, k, v (and the gate) forward and backward, which would otherwise round it up to
// eight times; attention's q, k, v are read by its forward and its backward. The caller (or the op
// that writes the values, given an out_r) rounds after writing them and before the products that take
// it; those check that it holds their operand (same buffer, size, precision), not that it is current.
// Zero-initialized is empty; storage grows on demand and only in bf16 mode.
typedef struct RoundedInput {
    const real *of; // the values it holds rounded
    size_t n;
    int bf16;       // rounded in bf16 mode (else it holds nothing)
    void *rounded;  // backend memory: bf16 on CUDA, floats holding bf16 values on the CPU
    size_t capacity;
    int view;       // a column view (matmul_input_columns): owns nothing, cannot grow
} RoundedInput;
void matmul_input_round(RoundedInput *r, const real *x, size_t n);
void matmul_input_free(RoundedInput *r);
// Makes r hold x [n] without writing it: the ops given its column views write the values (the fused
// q/k/v projection's output gradient is assembled that way, one column block per op).
void matmul_input_hold(RoundedInput *r, const real *x, size_t n);
// The part of r from value `col` on, for an op that reads or writes one column block of a wider row-major
// matrix r holds (the op is given the row stride): of and rounded shifted by col. Owns nothing.
RoundedInput matmul_input_columns(const RoundedInput *r, size_t col);
// out [rows, cols] (contiguous) = the values r holds as its products read them, rows `ld` apart: rounded
// in bf16 mode, else r->of's. For readers of a result kept only rounded (GPTQ's calibration reads the MLP
// activation) and for one column block of a wider result (v from the fused q/k/v projection).
void matmul_input_values(real *out, const RoundedInput *r, int rows, int cols, int ld);
// dst [rows, cols] at row stride ld (one column block of a wider matrix) = x [rows, cols] (contiguous);
// dst_r: NULL, or a column view (matmul_input_columns) made to hold dst's block with x rounded into it.
// dst may be NULL in bf16 mode with dst_r, as relu2_forward's out.
void copy_into_columns(real *dst, int ld, const real *x, int rows, int cols, RoundedInput *dst_r);
static inline int rounded_input_holds(const RoundedInput *r, const real *x, size_t n, int bf16) {
    return r->of == x && r->n >= n && (!bf16 || r->bf16);
}
// out[N,C_out] = inp[N,C_in] w[C_out,C_in]^T; inp_r: NULL, or inp rounded by matmul_input_round. out_r:
// NULL, or made to hold out rounded (as rmsnorm_forward's); in bf16 mode out may then be NULL, and the
// result exists only rounded (on CUDA the product writes bf16 itself), as the reference's linear outputs
// are bf16: for a result that only ops taking its RoundedInput read (the MLP's pre-activation).
void matmul_forward(real *out, const real *inp, const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out,
                    RoundedInput *out_r);
// dinp[N,C_in] = dout w (+= when accumulate), dw[C_out,C_in] += dout^T inp; dout_r, inp_r: NULL or their
// RoundedInputs (the ops that write gradients fill dout_r in their pass); dinp_r as matmul_forward's out_r
// (dinp NULL: accumulating adds to the rounded values).
void matmul_backward(real *dinp, real *dw, const real *dout, const RoundedInput *dout_r, const real *inp,
                     const RoundedInput *inp_r, const real *w, int N, int C_in, int C_out, int accumulate, RoundedInput *dinp_r);

// ---------------------------------------------------------------- embedding
// out[N,D] = table[ids[n]]
void embedding_forward(real *out, const int32_t *ids, const real *table, int N, int D);
// dtable[V,D] += scatter of dout[N,D]
void embedding_backward(real *dtable, const real *dout, const int32_t *ids, int N, int D);

// ---------------------------------------------------------------- normalization
// out = scale * inp / sqrt(mean(inp^2) + eps) per row of C; rstd[rows] saved for backward. out_r: NULL,
// or out rounded for the matmuls that read it, as matmul_input_round(out_r, out) (CUDA: in the same pass);
// out may then be NULL in bf16 mode, as relu2_forward's out (for a norm whose backward recomputes it,
// as a block's first norm: resid_mix_rmsnorm_forward, whose n and n_r are these).
void rmsnorm_forward(real *out, real *rstd, const real *inp, int rows, int C, real eps, real scale, RoundedInput *out_r);
// dinp = rstd * (scale dout - (out / scale) mean(dout * out)); accumulates into dinp when accumulate.
// dout_r as relu2_forward's inp_r: a linear layer's input gradient kept only rounded (the reference's is
// bf16 too).
void rmsnorm_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *out, const real *rstd, int rows,
                      int C, real scale, int accumulate);

// ---------------------------------------------------------------- rotary + query/key preparation
// (the cos/sin tables the rotary ops read come from model/host_tables.h, uploaded)
// For q (gain != NULL) or k (gain == NULL), x is [B,T,nh,Dh], its B*T rows `ldx` apart (a column block
// of the fused q/k/v projection's output; nh*Dh when alone):
//   xn = rmsnorm(x) over Dh (rstd[B*T*nh] saved); out = rope(xn) * gain[h], where rope rotates the
//   first `rot` dims of each head (rotate-half within them) and passes the rest through.
// x_r as relu2_forward's inp_r (the raw projection kept only rounded; a column view of it); out_r: NULL,
// or out rounded for the attention (as rmsnorm_forward's), out may then be NULL in bf16 mode as
// relu2_forward's out. out contiguous.
void qk_prep_forward(real *out, real *rstd, const real *x, const RoundedInput *x_r, int ldx, const real *gain,
                     const real *cos_t, const real *sin_t, int B, int T, int nh, int Dh, int rot, real eps, RoundedInput *out_r);
// dx from dout (contiguous; dout_r as relu2_forward's inp_r: the attention's gradient kept only
// rounded), with x, x_r, ldx and rstd as the forward had them (xn = x rstd is recomputed, the same
// values: the raw projection is kept instead of its normed copy). dx's B*T rows `ld_dx` apart, as x's
// (a column block of the fused projection's output gradient), aliasing dout only when ld_dx is nh*Dh;
// dx_r: NULL, or a column view made to hold dx rounded (dx may then be NULL in bf16 mode, as
// relu2_forward's out); dgain[nh] += sum(dout * rope(xn)) when gain != NULL.
void qk_prep_backward(real *dx, int ld_dx, real *dgain, const real *dout, const RoundedInput *dout_r, const real *x,
                      const RoundedInput *x_r, int ldx, const real *rstd, const real *gain, const real *cos_t,
                      const real *sin_t, int B, int T, int nh, int Dh, int rot, RoundedInput *dx_r);

// ---------------------------------------------------------------- attention
// Causal GQA softmax attention. q [B,T,H,Dh], k/v [B,T,Hkv,Dh], y [B,T,H,Dh]; head h reads KV head
// h / (H/Hkv). v's B*T rows (tokens) are ldv apart: Hkv*Dh when alone, wider where v is a column block
// of the fused q/k/v product's output, read in place (qkv_r[2] then a column view of its RoundedInput).
// lse [B,H,T] (log-sum-exp of each score row) is saved so backward recomputes the probabilities instead
// of storing B*H*T*T of them. qkv_r: NULL, or q, k, v rounded ([3], checked), which in bf16 mode it
// reads instead of q, k, v (any of which may then be NULL, kept only rounded; CUDA's tensor cores
// multiply them as they are, the CPU and the fp32 kernels widen them). y_r as matmul_forward's out_r: y
// rounded too, or, in bf16 mode with y NULL, only rounded (for an output read only by the projection's
// matmuls and the backward).
void attention_forward(real *y, real *lse, const real *q, const real *k, const real *v, const RoundedInput *qkv_r, int B,
                       int T, int H, int Hkv, int Dh, int ldv, RoundedInput *y_r);
// dq, dk, dv written (not accumulated; dv's rows ldv apart as v's, the columns between untouched: the
// v block of the fused product's output gradient). dy_r, y_r as relu2_forward's inp_r (dy, y kept only
// rounded). dq_r, dk_r, dv_r as rmsnorm_forward's out_r: dq, dk, dv rounded too, or, in bf16 mode with
// dq (dk, dv) NULL, only rounded (for q's and k's preparation and the product's backward, which take
// them so; the reference's are bf16; cuDNN's come so); dv_r a column view where ldv is wider.
void attention_backward(real *dq, real *dk, real *dv, const real *dy, const RoundedInput *dy_r, const real *y,
                        const RoundedInput *y_r, const real *lse, const real *q, const real *k, const real *v,
                        const RoundedInput *qkv_r, int B, int T, int H, int Hkv, int Dh, int ldv, RoundedInput *dq_r,
                        RoundedInput *dk_r, RoundedInput *dv_r);

// XSA: out = y - (y . u) u per head, u = v / |v| of the token's own KV head ([N, H, Dh], v [N, Hkv, Dh]).
void xsa_forward(real *out, const real *y, const real *v, int N, int H, int Hkv, int Dh);
// dy: d(out) in, d(y) out (in place); dv = d(v) through u (overwritten). Dh <= XSA_MAX_HEAD_DIM.
#define XSA_MAX_HEAD_DIM 512
void xsa_backward(real *dy, real *dv, const real *y, const real *v, int N, int H, int Hkv, int Dh);

// Gated attention: gate = sigmoid(z + bias) [N, G] (saved), out = gain * gate * y, one gate per head
// (G = H) or per channel (G = H * Dh); y, out [N, H, Dh], z [N, G] (= x W_g^T), bias [G] or NULL.
void attn_gate_forward(real *out, real *gate, const real *y, const real *z, const real *bias, int N, int H, int Dh,
                       int G, real gain);
// dy (written; may alias dout), dz (written), dbias (accumulated, when not NULL).
void attn_gate_backward(real *dy, real *dz, real *dbias, const real *dout, const real *y, const real *gate, int N,
                        int H, int Dh, int G, real gain);

// ---------------------------------------------------------------- elementwise
// SmearGate: out[b,t] = (1 - g) x[b,t] + g x[b,t-1] (x[b,-1] = 0), g = sigmoid(gate[C]); x, out [B, T, C].
void smear_forward(real *out, const real *x, const real *gate, int B, int T, int C);
// dx (overwritten) and dgate (accumulated) from dout.
void smear_backward(real *dx, real *dgate, const real *dout, const real *x, const real *gate, int B, int T, int C);
// out = leaky_relu(inp, slope)^2 (slope 0: relu^2); out_r as rmsnorm_forward's. In bf16 mode with out_r,
// out may be NULL: only the rounded copy is written, for a result that only matmuls read (it is then
// the NULL buffer that out_r holds, so a reader of the fp32 values fails instead of reading stale ones).
// inp_r: NULL, or inp's RoundedInput, whose values are read instead in bf16 mode (inp may then be NULL:
// an input kept only rounded, as matmul_forward's out_r leaves it).
void relu2_forward(real *out, const real *inp, const RoundedInput *inp_r, size_t n, real slope, RoundedInput *out_r);
// dinp = dout * 2 leaky_relu(inp) * (1 or slope); dout_r, inp_r as relu2_forward's inp_r; dinp_r as
// rmsnorm_forward's out_r, dinp may be NULL as relu2_forward's out; dinp may alias dout.
void relu2_backward(real *dinp, const real *dout, const RoundedInput *dout_r, const real *inp, const RoundedInput *inp_r,
                    size_t n, real slope, RoundedInput *dinp_r);
// out[N,C] = mix[0] * x + mix[1] * x0, mix [2,C] (a block's residual mix), and its norm n (rmsnorm_forward's
// out, with rstd, eps, scale and n_r as there): one pass over each row.
void resid_mix_rmsnorm_forward(real *out, const real *x, const real *x0, const real *mix, int N, int C, real *n, real *rstd,
                               real eps, real scale, RoundedInput *n_r);
// resid_mix_rmsnorm_forward's backward, in one pass: xm = mix[0] x_in + mix[1] x0, y = rmsnorm(xm) scale
// with the forward's rstd (xm and y are recomputed, not read, so the forward may keep y only as its
// matmuls' RoundedInput, and xm may have been overwritten). dxm: dL/dxm through the residual stream;
// dn: dL/dy (dn_r as rmsnorm_backward's dout_r). With g = dxm + rmsnorm's backward of dn:
// dx_in = mix[0] g (written), dx0 += mix[1] g, dmix += the column sums of g x_in and g x0.
// dx_in and dx0 alias no input.
void rmsnorm_resid_mix_backward(real *dx_in, real *dx0, real *dmix, const real *dn, const RoundedInput *dn_r, const real *dxm,
                                const real *x_in, const real *x0, const real *mix, const real *rstd, int N, int C, real scale);
// Value residual: out[n] = lam[0] v + lam[1] v0
void value_mix_forward(real *out, const real *v, const real *v0, const real lam[2], size_t n);
// dv = lam[0] dout (written; may alias dout), dv0 += lam[1] dout, dlam = (sum dout v, sum dout v0) (written)
void value_mix_backward(real *dv, real *dv0, double dlam[2], const real *dout, const real *v, const real *v0,
                        const real lam[2], size_t n);
// x[n] += a y[n] with one scalar a
void axpy_forward(real *x, real a, const real *y, size_t n);
// dy = a dout (written); returns sum(dout * y), the gradient of a
double axpy_backward(real *dy, const real *dout, real a, const real *y, size_t n);
// Gated U-Net skip (#1435/#2005's lerp(w y, x, s)): out = s x + (1 - s) w y, s = sigmoid(gate[C]); [N, C]
void skip_lerp_forward(real *out, const real *x, const real *y, const real *w, const real *gate, int N, int C);
// dx, dy written (dx may alias dout); dw, dgate accumulated.
void skip_lerp_backward(real *dx, real *dy, real *dw, real *dgate, const real *dout, const real *x, const real *y,
                        const real *w, const real *gate, int N, int C);
// out[N,C] = x + scale[C] * y (out may be x); y_r as relu2_forward's inp_r (the projections' outputs kept
// only rounded)
void scaled_add_forward(real *out, const real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C);
// x += scale * y and the norm of the result (rmsnorm_forward's, scale ln): one pass over each row (the
// attention's output added to the residual stream, and the MLP's norm of it).
void scaled_add_rmsnorm_forward(real *x, const real *scale, const real *y, const RoundedInput *y_r, int N, int C, real *n,
                                real *rstd, real eps, real ln, RoundedInput *n_r);
// Its backward in one pass: dx holds dL/dx through the stream after the add, and gets the norm's
// backward of dn added (dn_r as rmsnorm_backward's dout_r; the norm's output recomputed from x, the
// stream after the add, and the forward's rstd, the same values: in bf16 mode the forward may keep it
// only rounded): dL/dx, before the add as after it; then scaled_add_backward from it (dy written, dy_r,
// y_r as there; dscale accumulated).
void scaled_add_rmsnorm_backward(real *dx, real *dy, real *dscale, const real *dn, const RoundedInput *dn_r, const real *x,
                                 const real *rstd, const real *scale, const real *y, const RoundedInput *y_r, int N, int C,
                                 real ln, RoundedInput *dy_r);
// dy = dout * scale (written, or += when accumulate; aliasing no input), dscale += sum_n dout * y; y_r as
// scaled_add_forward's; dy_r: NULL, or the final dy rounded in the same pass (as rmsnorm_forward's
// out_r); dy may be NULL (not accumulating) as relu2_forward's out.
void scaled_add_backward(real *dy, real *dscale, const real *dout, const real *scale, const real *y, const RoundedInput *y_r,
                         int N, int C, int accumulate, RoundedInput *dy_r);
void add_inplace(real *dst, const real *src, size_t n); // dst += src

// ---------------------------------------------------------------- head
// z [N,V] are the raw logits x E^T; z_r as relu2_forward's inp_r (in bf16 mode the logits come out of the
// product only rounded, as the reference's are bf16). Per token: l = cap * tanh(z / cap);
// loss[n] = logsumexp(l) - l[target].
void softcap_xent_forward(real *loss, const real *z, const RoundedInput *z_r, const int32_t *targets, int N, int V, real cap);
// dz = dL/dz for L = scale * sum_n loss[n], from z, z_r as the forward's. dz_r as rmsnorm_forward's out_r
// (for the head's matmuls; dz may then be NULL in bf16 mode). In place: dz may be z, and dz_r z_r.
void softcap_xent_backward(real *dz, RoundedInput *dz_r, const real *z, const RoundedInput *z_r, const int32_t *targets, int N,
                           int V, real cap, real scale);

// ---------------------------------------------------------------- reductions
double sum_squares(const real *x, size_t n); // in double, for norms
void scale_inplace(real *x, real s, size_t n);
// x *= 1 / (sqrt(sum_squares(x)) + eps), the scale in double; the norm never leaves the backend (on a
// GPU, no round trip through the host)
void scale_to_unit_norm(real *x, size_t n, double eps);

double sum_values(const real *x, size_t n); // in double, in order

// ---------------------------------------------------------------- optimizer work (optim/ drives it)
// buf = m buf + g; update = g + m buf (Nesterov)
void nesterov_momentum(real *update, real *buf, const real *g, size_t n, real momentum);
// each row of x [rows, cols] times s / max(s |row|, 1e-7)
void normalize_rows(real *x, int rows, int cols, double s);
void transpose(real *out, const real *in, int rows, int cols); // out [cols, rows]
// torch.optim.Adam's arithmetic with the bias corrections folded into step_size and bc2_sqrt
void adam_step(real *p, const real *g, real *m, real *v, size_t n, real b1, real b2, real eps, real step_size,
               real bc2_sqrt);
void ema_step(real *ema, const real *w, size_t n, double decay); // ema = decay ema + (1 - decay) w
// torch.optim.SGD with momentum: buf = momentum buf + g; p -= lr buf
void sgd_momentum_step(real *p, const real *g, real *buf, size_t n, real momentum, real lr);
// QAT's int6 fake quantization of each row (#638): s = max(row_max|w| / 31, 1/31), w = clamp(round(w/s), -32, 31) s
void fake_quantize_rows(real *w, int rows, int cols);

// ---------------------------------------------------------------- profiling (for bench/)
// While on, time spent in top-level gemm calls (with their FLOPs) and in attention is summed.
typedef struct {
    double gemm_seconds, gemm_flops, attention_seconds;
} OpsProfile;
void ops_profile_start(void);
OpsProfile ops_profile_stop(void);
