// Every CUDA op against the CPU op on the same random inputs (`make cuda-test`). Both compute in fp32
// (the linear layers also with bf16 operands, against the CPU's bf16 mode); they differ only in
// summation order, so results agree to 1e-4 of the tensor's largest magnitude (the attention's softmax
// and the reductions over a few thousand terms stay well inside it). Without a GPU every test reports
// itself skipped.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "ops/cuda/ops_cuda.h"
#include "model/host_tables.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "util.h"

#define TOL 1e-4
#ifndef PGOLF_CUDA
#define PGOLF_CUDA "./pgolf-cuda" // the emulator's test build names its own pgolf-cuda
#endif
#ifndef PGOLF_CUDA_BUNDLES // the source bundles its code bytes may be (plain or cuDNN build; the emulator's own)
#define PGOLF_CUDA_BUNDLES "build/cuda/pgolf-cuda_bundle.sh", "build/cuda/pgolf-cuda_cudnn_bundle.sh"
#endif

static Rng g_rng;

static int have_gpu(void) {
    static int n = -1;
    if (n < 0) n = cuda_device_count();
    if (!n) test_skip("no CUDA device");
    return n > 0;
}

static float *host_randn(size_t n, double std) {
    float *p = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = (float)(rng_normal(&g_rng) * std);
    return p;
}

// Floats every device buffer of a check starts past its allocation's start: 0, or 1 to give the
// kernels buffers off 16-byte alignment (vectors_fit must then pick single values; a vector access
// there faults on a GPU and on the emulator).
static size_t g_misalign;
static float *dev_alloc(size_t n) { return cuda_alloc(n + g_misalign) + g_misalign; }
static void dev_free(float *p) { cuda_free(p - g_misalign); }

static float *to_device(const float *h, size_t n) {
    float *d = dev_alloc(n);
    cuda_upload(d, h, sizeof(float) * n);
    return d;
}

// max |a - b| relative to max |b|
static double max_relative_difference(const float *a, const float *b, size_t n) {
    double big = 1e-30, diff = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(b[i])), diff = worse_of(diff, fabs((double)a[i] - b[i]));
    return diff / big;
}

// Checks the device result against the CPU's within tol (relative to the CPU's largest magnitude);
// returns the relative difference.
static double compare_within(const char *what, const float *dev, const float *cpu, size_t n, double tol) {
    float *h = xmalloc(sizeof(float) * n);
    cuda_download(h, dev, sizeof(float) * n);
    double r = max_relative_difference(h, cpu, n);
    CHECK(r <= tol, "%s: relative difference %.3g, tolerance %.3g", what, r, tol);
    printf("    %-24s relative difference %.2e\n", what, r);
    free(h);
    return r;
}

static void compare(const char *what, const float *dev, const float *cpu, size_t n) { compare_within(what, dev, cpu, n, TOL); }

// A result kept only rounded on the device (r holds NULL) against the CPU's fp32 result rounded, within
// 1e-2 of its largest magnitude (one bf16 step where the summation orders round differently).
static void rounded_only_within(const char *what, const RoundedInput *r, const float *cpu, size_t n) {
    CHECK(r->of == NULL && r->n == n && r->bf16, "%s: the RoundedInput does not hold a rounded-only result", what);
    float *rounded = xmalloc(sizeof(float) * n), *values = dev_alloc(n);
    for (size_t i = 0; i < n; i++) rounded[i] = bf16_round(cpu[i]);
    cuda_matmul_input_values(values, r, 1, (int)n, (int)n);
    compare_within(what, values, rounded, n, 1e-2);
    free(rounded), dev_free(values);
}

// The linear layers in both precisions: fp32, and bf16 operands (the CUDA default) against the CPU's
// bf16 mode (the same rounded operands, so only summation orders differ); bf16 must differ from fp32 by
// about bf16's precision (2^-8), proving the operands were rounded. `shift` places the device operands
// that many floats into their allocations (the bf16 rounding's unaligned path).
static void matmul_case(int bf16, float *out, float *dx, float *dw, const float *x, const float *w, const float *dout, int N,
                        int I, int O, int shift) {
    ops_set_matmul_bf16(bf16);
    cuda_set_matmul_bf16(bf16);
    memset(dw, 0, sizeof(float) * O * I);
    matmul_forward(out, x, NULL, w, N, I, O, NULL);
    matmul_backward(dx, dw, dout, NULL, x, NULL, w, N, I, O, 0, NULL);
    float *gx = dev_alloc((size_t)N * I + shift), *gw = dev_alloc((size_t)O * I + shift), *gd = dev_alloc((size_t)N * O + shift);
    cuda_upload(gx + shift, x, sizeof(float) * N * I);
    cuda_upload(gw + shift, w, sizeof(float) * O * I);
    cuda_upload(gd + shift, dout, sizeof(float) * N * O);
    float *gout = dev_alloc((size_t)N * O), *gdx = dev_alloc((size_t)N * I), *gdw = dev_alloc((size_t)O * I);
    cuda_matmul_forward(gout, gx + shift, NULL, gw + shift, N, I, O, NULL);
    cuda_matmul_backward(gdx, gdw, gd + shift, NULL, gx + shift, NULL, gw + shift, N, I, O, 0, NULL);
    printf("    %s operands, [%d x %d] x [%d x %d]^T, %d floats into their buffers:\n", bf16 ? "bf16" : "fp32", N, I, O, I,
           shift);
    compare("matmul out", gout, out, (size_t)N * O);
    compare("matmul dinp", gdx, dx, (size_t)N * I);
    compare("matmul dw", gdw, dw, (size_t)O * I);
    // the input and the output gradient rounded once (RoundedInput) give the same bits as rounding on use
    RoundedInput ri = {0}, rd = {0};
    float *rout = dev_alloc((size_t)N * O), *rdx = dev_alloc((size_t)N * I), *rdw = dev_alloc((size_t)O * I);
    cuda_matmul_input_round(&ri, gx + shift, (size_t)N * I);
    cuda_matmul_input_round(&rd, gd + shift, (size_t)N * O);
    cuda_matmul_forward(rout, gx + shift, &ri, gw + shift, N, I, O, NULL);
    cuda_matmul_backward(rdx, rdw, gd + shift, &rd, gx + shift, &ri, gw + shift, N, I, O, 0, NULL);
    float *h = xmalloc(sizeof(float) * N * O), *hr = xmalloc(sizeof(float) * N * O);
    cuda_download(h, gout, sizeof(float) * N * O), cuda_download(hr, rout, sizeof(float) * N * O);
    CHECK(!memcmp(h, hr, sizeof(float) * N * O), "matmul out through a RoundedInput differs from rounding on use");
    h = xrealloc(h, sizeof(float) * O * I), hr = xrealloc(hr, sizeof(float) * O * I);
    cuda_download(h, gdw, sizeof(float) * O * I), cuda_download(hr, rdw, sizeof(float) * O * I);
    CHECK(!memcmp(h, hr, sizeof(float) * O * I), "matmul dw through RoundedInputs differs from rounding on use");
    h = xrealloc(h, sizeof(float) * N * I), hr = xrealloc(hr, sizeof(float) * N * I);
    cuda_download(h, gdx, sizeof(float) * N * I), cuda_download(hr, rdx, sizeof(float) * N * I);
    CHECK(!memcmp(h, hr, sizeof(float) * N * I), "matmul dinp through a rounded dout differs from rounding on use");
    if (bf16) { // results kept only rounded: the tensor cores' sums rounded, within a bf16 step of the CPU's
        RoundedInput ro = {0}, rdi = {0};
        cuda_matmul_forward(NULL, gx + shift, &ri, gw + shift, N, I, O, &ro);
        cuda_matmul_backward(NULL, rdw, gd + shift, &rd, gx + shift, &ri, gw + shift, N, I, O, 0, &rdi);
        rounded_only_within("matmul out, rounded only", &ro, out, (size_t)N * O);
        rounded_only_within("matmul dinp, rounded only", &rdi, dx, (size_t)N * I);
        cuda_matmul_input_free(&ro), cuda_matmul_input_free(&rdi);
    }
    cuda_matmul_input_free(&ri), cuda_matmul_input_free(&rd);
    free(h), free(hr);
    dev_free(gx), dev_free(gw), dev_free(gd), dev_free(gout), dev_free(gdx), dev_free(gdw), dev_free(rout), dev_free(rdx);
    dev_free(rdw);
}

TEST(cuda_matmul) {
    if (!have_gpu()) return;
    int N = 37, I = 64, O = 48;
    float *x = host_randn((size_t)N * I, 1), *w = host_randn((size_t)O * I, 1), *dout = host_randn((size_t)N * O, 1);
    float *out[2], *dx[2], *dw[2];
    for (int bf16 = 0; bf16 < 2; bf16++) {
        out[bf16] = xmalloc(sizeof(float) * N * O), dx[bf16] = xmalloc(sizeof(float) * N * I);
        dw[bf16] = xmalloc(sizeof(float) * O * I);
        matmul_case(bf16, out[bf16], dx[bf16], dw[bf16], x, w, dout, N, I, O, 0);
    }
    ops_set_matmul_bf16(0); // the backends' defaults
    cuda_set_matmul_bf16(1);
    double r = max_relative_difference(out[1], out[0], (size_t)N * O);
    printf("    bf16 vs fp32 forward: relative difference %.2e\n", r);
    CHECK(r > 1e-4 && r < 2e-2, "bf16 vs fp32 forward: relative difference %.3g, expected about 2^-8", r);
    r = max_relative_difference(dw[1], dw[0], (size_t)O * I);
    CHECK(r > 1e-4 && r < 2e-2, "bf16 vs fp32 dw: relative difference %.3g, expected about 2^-8", r);
    matmul_case(1, out[1], dx[1], dw[1], x, w, dout, 5, 18, 6, 1); // sizes not multiples of 4, unaligned
    // matmul_gemm (Muon's Newton-Schulz) in both precisions: A [13, 21] in rows 25 apart times B [9, 21]^T,
    // and A A^T (one operand rounded once)
    int M = 13, K = 21, LD = 25, Nb = 9;
    float *a = host_randn((size_t)M * LD, 1), *b = host_randn((size_t)Nb * K, 1), *c = xmalloc(sizeof(float) * M * M);
    float *ga = to_device(a, (size_t)M * LD), *gb = to_device(b, (size_t)Nb * K), *gc = dev_alloc((size_t)M * M);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        ops_set_matmul_bf16(bf16);
        cuda_set_matmul_bf16(bf16);
        printf("    matmul_gemm, %s operands:\n", bf16 ? "bf16" : "fp32");
        matmul_gemm(0, 1, M, Nb, K, 1.5f, a, LD, 0, b, K, 0, 0, c, Nb, 0, 1);
        cuda_matmul_gemm(0, 1, M, Nb, K, 1.5f, ga, LD, 0, gb, K, 0, 0, gc, Nb, 0, 1);
        compare("matmul_gemm A B^T", gc, c, (size_t)M * Nb);
        matmul_gemm(0, 1, M, M, K, 1, a, LD, 0, a, LD, 0, 0, c, M, 0, 1);
        cuda_matmul_gemm(0, 1, M, M, K, 1, ga, LD, 0, ga, LD, 0, 0, gc, M, 0, 1);
        compare("matmul_gemm A A^T", gc, c, (size_t)M * M);
        // a batch: the two row blocks of A ([6, 21] each, 6 * 25 apart) times B^T, into C 60 apart
        matmul_gemm(0, 1, 6, Nb, K, 1.5f, a, LD, 6 * LD, b, K, 0, 0, c, Nb, 60, 2);
        cuda_matmul_gemm(0, 1, 6, Nb, K, 1.5f, ga, LD, 6 * LD, gb, K, 0, 0, gc, Nb, 60, 2);
        compare("matmul_gemm, a batch of 2", gc, c, 60 + 6 * (size_t)Nb);
    }
    ops_set_matmul_bf16(0);
    cuda_set_matmul_bf16(1);
    free(a), free(b), free(c);
    dev_free(ga), dev_free(gb), dev_free(gc);
}

// An op's fused rounding (cuda_rounded_storage): r holds dev [n], and its bf16 values are dev's, rounded.
static void check_rounded(const char *what, const RoundedInput *r, const float *dev, size_t n) {
    CHECK(r->of == dev && r->n == n && r->bf16 && r->rounded, "%s: the RoundedInput does not hold the output", what);
    float *values = xmalloc(sizeof(float) * n);
    uint16_t *bits = xmalloc(sizeof(uint16_t) * n);
    cuda_download(values, dev, sizeof(float) * n);
    cuda_download(bits, r->rounded, sizeof(uint16_t) * n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float v = bf16_round(values[i]);
        uint32_t u;
        memcpy(&u, &v, sizeof u);
        wrong += bits[i] != (uint16_t)(u >> 16);
    }
    CHECK(!wrong, "%s: %zu of %zu rounded values differ from the output's rounding", what, wrong, n);
    printf("    %-24s rounded copy exact (%zu values)\n", what, n);
    free(values), free(bits);
}

// An op run without its fp32 output (alone, holding NULL) rounded the same values as with it (full).
static void check_same_rounding(const char *what, const RoundedInput *alone, const RoundedInput *full, size_t n) {
    uint16_t *a = xmalloc(sizeof(uint16_t) * n), *b = xmalloc(sizeof(uint16_t) * n);
    cuda_download(a, alone->rounded, sizeof(uint16_t) * n), cuda_download(b, full->rounded, sizeof(uint16_t) * n);
    CHECK(alone->of == NULL && !memcmp(a, b, sizeof(uint16_t) * n), "%s: the rounded copy alone differs", what);
    printf("    %-24s rounded copy alone exact\n", what);
    free(a), free(b);
}

// RMSNorm forward and backward on R rows of C values.
static void check_rmsnorm(int R, int C) {
    float *x = host_randn((size_t)R * C, 2), *dy = host_randn((size_t)R * C, 1), *dx = host_randn((size_t)R * C, 1);
    float *y = xmalloc(sizeof(float) * R * C), *rstd = xmalloc(sizeof(float) * R);
    float *gx = to_device(x, (size_t)R * C), *gdy = to_device(dy, (size_t)R * C), *gdx = to_device(dx, (size_t)R * C);
    float *gy = dev_alloc((size_t)R * C), *grstd = dev_alloc((size_t)R);
    rmsnorm_forward(y, rstd, x, R, C, 1.1920929e-07f, 0.5f, NULL);
    rmsnorm_backward(dx, dy, NULL, y, rstd, R, C, 0.5f, 1); // accumulate onto the random dx both sides start from
    RoundedInput ry = {0};
    cuda_rmsnorm_forward(gy, grstd, gx, R, C, 1.1920929e-07f, 0.5f, &ry);
    cuda_rmsnorm_backward(gdx, gdy, NULL, gy, grstd, R, C, 0.5f, 1);
    compare("rmsnorm out", gy, y, (size_t)R * C);
    check_rounded("rmsnorm out", &ry, gy, (size_t)R * C);
    cuda_matmul_input_free(&ry);
    compare("rmsnorm dinp (accum.)", gdx, dx, (size_t)R * C);
    // from dout kept only rounded (a linear layer's input gradient in bf16 mode)
    RoundedInput rdy = {0};
    cuda_matmul_input_round(&rdy, gdy, (size_t)R * C);
    rdy.of = NULL;
    for (size_t i = 0; i < (size_t)R * C; i++) dy[i] = bf16_round(dy[i]);
    rmsnorm_backward(dx, dy, NULL, y, rstd, R, C, 0.5f, 0);
    cuda_rmsnorm_backward(gdx, NULL, &rdy, gy, grstd, R, C, 0.5f, 0);
    compare("rmsnorm dinp, rounded dout", gdx, dx, (size_t)R * C);
    cuda_matmul_input_free(&rdy);
    float *host[] = {x, dy, dx, y, rstd}, *dev[] = {gx, gdy, gdx, gy, grstd};
    for (int i = 0; i < 5; i++) free(host[i]), dev_free(dev[i]);
}

TEST(cuda_rmsnorm) {
    if (!have_gpu()) return;
    // 19 rows: a partial block of warps; 1 to 10 values per lane, 170 single, 40 and 300 in vectors of 4
    for (int C = 40; C <= 300; C += 130) check_rmsnorm(19, C);
    g_misalign = 1; // a vectors' width off alignment: single values
    check_rmsnorm(19, 40);
    g_misalign = 0;
}

// The softcapped cross-entropy on R rows of V logits (a warp per row: V below 32 leaves lanes without
// values), from fp32 logits with the gradient written over them, and from logits kept only rounded (the
// bf16 head's) with the gradient rounded in place, against the CPU's on the same rounded values.
static void check_xent(int R, int V) {
    size_t n = (size_t)R * V;
    float *z = host_randn(n, 20), *dz = xmalloc(sizeof(float) * n), *loss = xmalloc(sizeof(float) * R);
    int32_t *t = xmalloc(sizeof(int32_t) * R), *gt = cuda_alloc_i32((size_t)R);
    for (int i = 0; i < R; i++) t[i] = (int32_t)(rng_u64(&g_rng) % V);
    cuda_upload(gt, t, sizeof(int32_t) * R);
    float *gz = to_device(z, n), *gloss = dev_alloc((size_t)R);
    softcap_xent_forward(loss, z, NULL, t, R, V, 30);
    softcap_xent_backward(dz, NULL, z, NULL, t, R, V, 30, 0.25f);
    cuda_softcap_xent_forward(gloss, gz, NULL, gt, R, V, 30);
    compare("softcap xent loss", gloss, loss, (size_t)R);
    cuda_softcap_xent_backward(gz, NULL, gz, NULL, gt, R, V, 30, 0.25f);
    compare("softcap xent dz (in place)", gz, dz, n);
    RoundedInput rz = {0};
    cuda_upload(gz, z, sizeof(float) * n);
    cuda_matmul_input_round(&rz, gz, n);
    rz.of = NULL;
    for (size_t i = 0; i < n; i++) z[i] = bf16_round(z[i]);
    softcap_xent_forward(loss, z, NULL, t, R, V, 30);
    softcap_xent_backward(dz, NULL, z, NULL, t, R, V, 30, 0.25f);
    cuda_softcap_xent_forward(gloss, NULL, &rz, gt, R, V, 30);
    compare("softcap xent loss, bf16", gloss, loss, (size_t)R);
    cuda_softcap_xent_backward(NULL, &rz, NULL, &rz, gt, R, V, 30, 0.25f);
    rounded_only_within("softcap xent dz, bf16", &rz, dz, n);
    cuda_matmul_input_free(&rz);
    free(z), free(dz), free(loss), free(t);
    dev_free(gz), dev_free(gloss), cuda_free(gt);
}

TEST(cuda_softcap_xent) {
    if (!have_gpu()) return;
    check_xent(19, 77);
    check_xent(11, 13); // lanes 13-15 and 29-31 meet with no values
    check_xent(9, 1100);
}

// The residual stream's updates fused with their norms on N x C: the mix and its norm forward, and
// their backward (dn fp32 and kept only rounded); the scaled add of a rounded-only y and its norm, kept
// only rounded.
static void check_norm_mix(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = host_randn(n, 1), *x0 = host_randn(n, 1), *dn = host_randn(n, 1), *dxm = host_randn(n, 1);
    float *mix = host_randn(2 * (size_t)C, 1), *dx0 = host_randn(n, 1), *xm = xmalloc(sizeof(float) * n);
    float *y = xmalloc(sizeof(float) * n), *rstd = xmalloc(sizeof(float) * N), *dx = xmalloc(sizeof(float) * n);
    float *dmix = calloc(2 * (size_t)C, sizeof(float));
    resid_mix_rmsnorm_forward(xm, x, x0, mix, N, C, y, rstd, 1.1920929e-07f, 0.7f, NULL);
    float *gx = to_device(x, n), *gx0 = to_device(x0, n), *gdn = to_device(dn, n), *gdxm = to_device(dxm, n);
    float *gmix = to_device(mix, 2 * (size_t)C), *grstd = dev_alloc((size_t)N), *gdx0 = to_device(dx0, n);
    float *gdx = dev_alloc(n), *gdmix = dev_alloc(2 * (size_t)C), *gxm = dev_alloc(n), *gy = dev_alloc(n);
    RoundedInput ry = {0};
    cuda_resid_mix_rmsnorm_forward(gxm, gx, gx0, gmix, N, C, gy, grstd, 1.1920929e-07f, 0.7f, &ry);
    compare("mix+norm xm", gxm, xm, n);
    compare("mix+norm n", gy, y, n);
    compare("mix+norm rstd", grstd, rstd, (size_t)N);
    check_rounded("mix+norm n", &ry, gy, n);
    cuda_upload(grstd, rstd, sizeof(float) * N); // the backward from the same rstd on both sides
    for (int rounded = 0; rounded < 2; rounded++) {
        RoundedInput rdn = {0};
        if (rounded) {
            cuda_matmul_input_round(&rdn, gdn, n);
            rdn.of = NULL; // only rounded, as the model's dn in bf16 mode
            for (size_t i = 0; i < n; i++) dn[i] = bf16_round(dn[i]);
        }
        rmsnorm_resid_mix_backward(dx, dx0, dmix, dn, NULL, dxm, x, x0, mix, rstd, N, C, 0.7f);
        cuda_rmsnorm_resid_mix_backward(gdx, gdx0, gdmix, rounded ? NULL : gdn, rounded ? &rdn : NULL, gdxm, gx, gx0, gmix,
                                        grstd, N, C, 0.7f);
        compare(rounded ? "norm+mix dx_in, rounded dn" : "norm+mix dx_in", gdx, dx, n);
        compare(rounded ? "norm+mix dx0 (accum.), rounded dn" : "norm+mix dx0 (accum.)", gdx0, dx0, n);
        compare(rounded ? "norm+mix dmix (accum.), rounded dn" : "norm+mix dmix", gdmix, dmix, 2 * (size_t)C);
        cuda_matmul_input_free(&rdn);
    }
    // x_mid = xm + mix[0..C) dxm (dxm kept only rounded, as a projection's output), its norm only rounded
    RoundedInput radd = {0}, alone = {0};
    cuda_matmul_input_round(&radd, gdxm, n);
    radd.of = NULL;
    for (size_t i = 0; i < n; i++) dxm[i] = bf16_round(dxm[i]);
    scaled_add_rmsnorm_forward(xm, mix, dxm, NULL, N, C, y, rstd, 1.1920929e-07f, 0.7f, NULL);
    cuda_scaled_add_rmsnorm_forward(gxm, gmix, NULL, &radd, N, C, NULL, grstd, 1.1920929e-07f, 0.7f, &alone);
    compare("add+norm x", gxm, xm, n);
    compare("add+norm rstd", grstd, rstd, (size_t)N);
    rounded_only_within("add+norm n, only rounded", &alone, y, n);
    // and its backward from the same x_mid, rstd and dn on both sides (the norm recomputed): dy kept only rounded
    float *dxs = host_randn(n, 1), *dys = xmalloc(sizeof(float) * n), *ds = calloc((size_t)C, sizeof(float));
    float *gdxs = to_device(dxs, n), *gds = dev_alloc((size_t)C);
    cuda_upload(gxm, xm, sizeof(float) * n), cuda_upload(grstd, rstd, sizeof(float) * N);
    cuda_upload(gdn, dn, sizeof(float) * n);
    scaled_add_rmsnorm_backward(dxs, dys, ds, dn, NULL, xm, rstd, mix, dxm, NULL, N, C, 0.7f, NULL);
    RoundedInput dyo = {0};
    cuda_scaled_add_rmsnorm_backward(gdxs, NULL, gds, gdn, NULL, gxm, grstd, gmix, NULL, &radd, N, C, 0.7f, &dyo);
    compare("add+norm dx", gdxs, dxs, n);
    compare("add+norm dscale", gds, ds, (size_t)C);
    rounded_only_within("add+norm dy, only rounded", &dyo, dys, n);
    free(dxs), free(dys), free(ds), dev_free(gdxs), dev_free(gds), cuda_matmul_input_free(&dyo);
    cuda_matmul_input_free(&ry), cuda_matmul_input_free(&radd), cuda_matmul_input_free(&alone);
    float *host[] = {x, x0, dn, dxm, mix, dx0, xm, y, rstd, dx, dmix};
    float *dev[] = {gx, gx0, gdn, gdxm, gmix, grstd, gdx0, gdx, gdmix, gxm, gy};
    for (int i = 0; i < 11; i++) free(host[i]);
    for (int i = 0; i < 11; i++) dev_free(dev[i]);
}

TEST(cuda_norm_updates) {
    if (!have_gpu()) return;
    // the backward kernels' three instances: single columns (a width vectors cannot cover; rows past
    // two SUM_CHUNK_ROWS chunks, the last one partial), vectors of 4 in the fewest registers (up to the
    // presets' 512; at 192 half the lanes have no second group), and in more (600: the last group partial)
    check_norm_mix(601, 33);
    check_norm_mix(300, 192);
    check_norm_mix(300, 600);
    g_misalign = 1; // a vectors' width off alignment: single values
    check_norm_mix(300, 192);
    g_misalign = 0;
}

static void check_elementwise(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = host_randn(n, 1), *x0 = host_randn(n, 1), *dout = host_randn(n, 1), *mix = host_randn(2 * (size_t)C, 1);
    float *out = xmalloc(sizeof(float) * n), *dx = xmalloc(sizeof(float) * n);
    float *gx = to_device(x, n), *gx0 = to_device(x0, n), *gdout = to_device(dout, n), *gmix = to_device(mix, 2 * (size_t)C);
    float *gout = dev_alloc(n), *gdx = dev_alloc(n);
    RoundedInput rout = {0};
    relu2_forward(out, x, NULL, n, 0.5f, NULL);
    cuda_relu2_forward(gout, gx, NULL, n, 0.5f, &rout);
    compare("leaky relu^2", gout, out, n);
    check_rounded("leaky relu^2", &rout, gout, n);
    relu2_backward(dx, dout, NULL, x, NULL, n, 0.5f, NULL);
    cuda_relu2_backward(gdx, gdout, NULL, gx, NULL, n, 0.5f, &rout);
    compare("leaky relu^2 dinp", gdx, dx, n);
    check_rounded("leaky relu^2 dinp", &rout, gdx, n);
    RoundedInput alone = {0}; // bf16 mode without the fp32 results: the same rounded values
    cuda_relu2_backward(NULL, gdout, NULL, gx, NULL, n, 0.5f, &alone);
    check_same_rounding("leaky relu^2 dinp", &alone, &rout, n);
    cuda_relu2_forward(NULL, gx, NULL, n, 0.5f, &alone);
    cuda_relu2_forward(gout, gx, NULL, n, 0.5f, &rout);
    check_same_rounding("leaky relu^2", &alone, &rout, n);
    // inputs read rounded (bf16 mode, through their RoundedInputs): as the CPU op on the rounded values
    RoundedInput rx = {0}, rdout = {0};
    cuda_matmul_input_round(&rx, gx, n), cuda_matmul_input_round(&rdout, gdout, n);
    float *xb = xmalloc(sizeof(float) * n), *doutb = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) xb[i] = bf16_round(x[i]), doutb[i] = bf16_round(dout[i]);
    relu2_forward(out, xb, NULL, n, 0.5f, NULL);
    cuda_relu2_forward(gout, gx, &rx, n, 0.5f, NULL);
    compare("leaky relu^2, rounded input", gout, out, n);
    relu2_backward(dx, doutb, NULL, xb, NULL, n, 0.5f, NULL);
    cuda_relu2_backward(gdx, gdout, &rdout, gx, &rx, n, 0.5f, NULL);
    compare("leaky relu^2 dinp, rounded inputs", gdx, dx, n);
    float *ds = calloc((size_t)C, sizeof(float)), *gds = dev_alloc((size_t)C);
    memcpy(out, x0, sizeof(float) * n);
    cuda_upload(gout, x0, sizeof(float) * n);
    scaled_add_forward(out, out, mix, xb, NULL, N, C);
    cuda_scaled_add_forward(gout, gout, gmix, gx, &rx, N, C);
    compare("scaled_add, rounded y", gout, out, n);
    scaled_add_backward(dx, ds, dout, mix, xb, NULL, N, C, 0, NULL);
    cuda_scaled_add_backward(gdx, gds, gdout, gmix, gx, &rx, N, C, 0, NULL);
    compare("scaled_add dy, rounded y", gdx, dx, n);
    compare("scaled_add dscale, rounded y", gds, ds, (size_t)C);
    free(ds), dev_free(gds);
    cuda_matmul_input_free(&rx), cuda_matmul_input_free(&rdout);
    free(xb), free(doutb);
    float *dscale = calloc((size_t)C, sizeof(float)), *gdscale = dev_alloc((size_t)C);
    scaled_add_forward(out, x, mix, x0, NULL, N, C); // out of place
    cuda_scaled_add_forward(gout, gx, gmix, gx0, NULL, N, C);
    compare("scaled_add", gout, out, n);
    scaled_add_backward(dx, dscale, dout, mix, x0, NULL, N, C, 0, NULL);
    cuda_scaled_add_backward(gdx, gdscale, gdout, gmix, gx0, NULL, N, C, 0, &rout);
    compare("scaled_add dy", gdx, dx, n);
    compare("scaled_add dscale", gdscale, dscale, (size_t)C);
    check_rounded("scaled_add dy", &rout, gdx, n);
    cuda_scaled_add_backward(NULL, gdscale, gdout, gmix, gx0, NULL, N, C, 0, &alone);
    check_same_rounding("scaled_add dy", &alone, &rout, n);
    cuda_matmul_input_free(&alone);
    cuda_matmul_input_free(&rout);
    int32_t ids[5] = {3, 0, 3, 9, 1};
    int32_t *gids = cuda_alloc_i32(5);
    cuda_upload(gids, ids, sizeof ids);
    embedding_forward(out, ids, x, 5, C);
    cuda_embedding_forward(gout, gids, gx, 5, C);
    compare("embedding", gout, out, 5 * (size_t)C);
}

TEST(cuda_elementwise) {
    if (!have_gpu()) return;
    check_elementwise(601, 33); // single values; rows past two SUM_CHUNK_ROWS chunks, the last one partial
    check_elementwise(601, 36); // vectors of 4
    g_misalign = 1; // the same width off alignment: single values
    check_elementwise(601, 36);
    g_misalign = 0;
}

// bf16: the CUDA default, on tensor cores when the head size allows (a multiple of 16 up to 128), then
// within BF16_ATT_TOL of the fp32 CPU op (operands and probabilities rounded to bf16) and, as proof
// that the tensor-core kernels ran, further than TOL; otherwise (fp32, or a head size that falls back
// to the fp32 kernels) within TOL.
#define BF16_ATT_TOL 2e-2
static void check_attention(int B, int T, int H, int Hkv, int Dh, int bf16) {
    int tc = bf16 && Dh % 16 == 0 && Dh <= 128;
    const char *kernels = !tc ? "fp32" : strcmp(cuda_attention_name(), "pgolf") ? cuda_attention_name() : "tensor cores (bf16)";
    printf("    B=%d T=%d H=%d Hkv=%d Dh=%d %s\n", B, T, H, Hkv, Dh, kernels);
    size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh, nl = (size_t)B * H * T;
    float *q = host_randn(nq, 1), *k = host_randn(nk, 1), *v = host_randn(nk, 1), *dy = host_randn(nq, 1);
    float *y = xmalloc(sizeof(float) * nq), *lse = xmalloc(sizeof(float) * nl);
    float *dq = xmalloc(sizeof(float) * nq), *dk = xmalloc(sizeof(float) * nk), *dv = xmalloc(sizeof(float) * nk);
    attention_forward(y, lse, q, k, v, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL);
    attention_backward(dq, dk, dv, dy, NULL, y, NULL, lse, q, k, v, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL, NULL, NULL);
    float *gq = to_device(q, nq), *gk = to_device(k, nk), *gv = to_device(v, nk), *gdy = to_device(dy, nq);
    float *gy = dev_alloc(nq), *glse = dev_alloc(nl), *gdq = dev_alloc(nq), *gdk = dev_alloc(nk), *gdv = dev_alloc(nk);
    cuda_set_matmul_bf16(bf16);
    cuda_attention_forward(gy, glse, gq, gk, gv, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL);
    cuda_attention_backward(gdq, gdk, gdv, gdy, NULL, gy, NULL, glse, gq, gk, gv, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL, NULL,
                            NULL);
    if (tc) { // q, k, v rounded beforehand (RoundedInput, as the model passes them): the same bits, except
              // from cuDNN's backward, which adds dQ with atomics (then within tolerance of the CPU)
        int exact = !strcmp(cuda_attention_name(), "pgolf");
        RoundedInput r[3] = {{0}};
        cuda_matmul_input_round(&r[0], gq, nq), cuda_matmul_input_round(&r[1], gk, nk), cuda_matmul_input_round(&r[2], gv, nk);
        float *ry = dev_alloc(nq), *rlse = dev_alloc(nl), *rdq = dev_alloc(nq), *rdk = dev_alloc(nk), *rdv = dev_alloc(nk);
        cuda_attention_forward(ry, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh, NULL);
        cuda_attention_backward(rdq, rdk, rdv, gdy, NULL, ry, NULL, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh, NULL,
                                NULL, NULL);
        const float *plain[] = {gy, gdq, gdk, gdv}, *pre[] = {ry, rdq, rdk, rdv}, *cpu[] = {y, dq, dk, dv};
        size_t sizes[] = {nq, nq, nk, nk};
        for (int i = 0; i < 4; i++) {
            if (i > 0 && !exact) {
                compare_within("attention gradient from pre-rounded q, k, v", pre[i], cpu[i], sizes[i], BF16_ATT_TOL);
                continue;
            }
            float *a = xmalloc(sizeof(float) * sizes[i]), *b = xmalloc(sizeof(float) * sizes[i]);
            cuda_download(a, plain[i], sizeof(float) * sizes[i]), cuda_download(b, pre[i], sizeof(float) * sizes[i]);
            CHECK(!memcmp(a, b, sizeof(float) * sizes[i]), "attention output %d from pre-rounded q, k, v differs", i);
            free(a), free(b);
        }
        // y rounded too, and kept only rounded: the same bits, and a backward reading it so stays close
        RoundedInput yfull = {0}, yonly = {0};
        cuda_attention_forward(ry, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh, &yfull);
        check_rounded("attention y", &yfull, ry, nq);
        cuda_attention_forward(NULL, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh, &yonly);
        check_same_rounding("attention y", &yonly, &yfull, nq);
        cuda_attention_backward(rdq, rdk, rdv, gdy, NULL, NULL, &yonly, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh, NULL,
                                NULL, NULL);
        compare_within("attention dq, y only rounded", rdq, dq, nq, BF16_ATT_TOL);
        compare_within("attention dk, y only rounded", rdk, dk, nk, BF16_ATT_TOL);
        compare_within("attention dv, y only rounded", rdv, dv, nk, BF16_ATT_TOL);
        RoundedInput dyonly = {0}; // and dy too
        cuda_matmul_input_round(&dyonly, gdy, nq);
        dyonly.of = NULL; // as a result kept only rounded holds (matmul_backward's dinp_r)
        cuda_attention_backward(rdq, rdk, rdv, NULL, &dyonly, NULL, &yonly, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh,
                                NULL, NULL, NULL);
        compare_within("attention dq, dy y only rounded", rdq, dq, nq, BF16_ATT_TOL);
        compare_within("attention dk, dy y only rounded", rdk, dk, nk, BF16_ATT_TOL);
        compare_within("attention dv, dy y only rounded", rdv, dv, nk, BF16_ATT_TOL);
        RoundedInput dqo = {0}, dko = {0}; // and dq, dk kept only rounded, as q's and k's preparation reads them
        cuda_attention_backward(NULL, NULL, rdv, NULL, &dyonly, NULL, &yonly, rlse, gq, gk, gv, r, B, T, H, Hkv, Dh, Hkv * Dh,
                                &dqo, &dko, NULL);
        cuda_matmul_input_values(rdq, &dqo, 1, (int)nq, (int)nq), cuda_matmul_input_values(rdk, &dko, 1, (int)nk, (int)nk);
        compare_within("attention dq, only rounded", rdq, dq, nq, BF16_ATT_TOL);
        compare_within("attention dk, only rounded", rdk, dk, nk, BF16_ATT_TOL);
        compare_within("attention dv, dq dk only rounded", rdv, dv, nk, BF16_ATT_TOL);
        cuda_matmul_input_free(&dqo), cuda_matmul_input_free(&dko);
        cuda_matmul_input_free(&yfull), cuda_matmul_input_free(&yonly), cuda_matmul_input_free(&dyonly);
        for (int i = 0; i < 3; i++) cuda_matmul_input_free(&r[i]);
        dev_free(ry), dev_free(rlse), dev_free(rdq), dev_free(rdk), dev_free(rdv);
    }
    if (bf16 && !tc) { // only rounded q, k, v given: the fp32 kernels widen them, as the CPU op on the rounded values
        RoundedInput r[3] = {{0}};
        cuda_matmul_input_round(&r[0], gq, nq), cuda_matmul_input_round(&r[1], gk, nk), cuda_matmul_input_round(&r[2], gv, nk);
        for (int i = 0; i < 3; i++) r[i].of = NULL; // as results kept only rounded hold them
        float *qb = xmalloc(sizeof(float) * nq), *kb = xmalloc(sizeof(float) * nk), *vb = xmalloc(sizeof(float) * nk);
        for (size_t i = 0; i < nq; i++) qb[i] = bf16_round(q[i]);
        for (size_t i = 0; i < nk; i++) kb[i] = bf16_round(k[i]), vb[i] = bf16_round(v[i]);
        float *ry = xmalloc(sizeof(float) * nq), *rlse = xmalloc(sizeof(float) * nl);
        attention_forward(ry, rlse, qb, kb, vb, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL);
        float *gry = dev_alloc(nq), *grlse = dev_alloc(nl);
        RoundedInput yr = {0};
        cuda_attention_forward(gry, grlse, NULL, NULL, NULL, r, B, T, H, Hkv, Dh, Hkv * Dh, &yr);
        compare("attention y, only rounded q k v", gry, ry, nq);
        compare("attention lse, only rounded q k v", grlse, rlse, nl);
        check_rounded("attention y, fp32 kernels", &yr, gry, nq);
        // the backward from dy and y kept only rounded: the fp32 kernels on the widened values
        RoundedInput dyr = {0};
        cuda_matmul_input_round(&dyr, gdy, nq);
        dyr.of = NULL, yr.of = NULL; // as results kept only rounded hold them
        float *dyb = xmalloc(sizeof(float) * nq), *yb = xmalloc(sizeof(float) * nq), *rd[3], *grd[3];
        size_t sz[3] = {nq, nk, nk};
        float *gyb = dev_alloc(nq); // y's rounding as the device made it (a rounding boundary must not decide the test)
        cuda_matmul_input_values(gyb, &yr, 1, (int)nq, (int)nq);
        cuda_download(yb, gyb, sizeof(float) * nq);
        dev_free(gyb);
        for (size_t i = 0; i < nq; i++) dyb[i] = bf16_round(dy[i]);
        for (int i = 0; i < 3; i++) rd[i] = xmalloc(sizeof(float) * sz[i]), grd[i] = dev_alloc(sz[i]);
        attention_backward(rd[0], rd[1], rd[2], dyb, NULL, yb, NULL, rlse, qb, kb, vb, NULL, B, T, H, Hkv, Dh, Hkv * Dh, NULL,
                           NULL, NULL);
        cuda_attention_backward(grd[0], grd[1], grd[2], NULL, &dyr, NULL, &yr, grlse, NULL, NULL, NULL, r, B, T, H, Hkv, Dh,
                                Hkv * Dh, NULL, NULL, NULL);
        compare("attention dq, all only rounded", grd[0], rd[0], nq);
        compare("attention dk, all only rounded", grd[1], rd[1], nk);
        compare("attention dv, all only rounded", grd[2], rd[2], nk);
        RoundedInput dqo = {0}, dko = {0}; // dq, dk kept only rounded too: the fp32 kernels' results rounded
        cuda_attention_backward(NULL, NULL, grd[2], NULL, &dyr, NULL, &yr, grlse, NULL, NULL, NULL, r, B, T, H, Hkv, Dh,
                                Hkv * Dh, &dqo, &dko, NULL);
        rounded_only_within("attention dq, fp32 kernels, only rounded", &dqo, rd[0], nq);
        rounded_only_within("attention dk, fp32 kernels, only rounded", &dko, rd[1], nk);
        cuda_matmul_input_free(&dqo), cuda_matmul_input_free(&dko);
        for (int i = 0; i < 3; i++) free(rd[i]), dev_free(grd[i]);
        free(dyb), free(yb);
        cuda_matmul_input_free(&yr), cuda_matmul_input_free(&dyr);
        for (int i = 0; i < 3; i++) cuda_matmul_input_free(&r[i]);
        free(qb), free(kb), free(vb), free(ry), free(rlse), dev_free(gry), dev_free(grlse);
    }
    cuda_set_matmul_bf16(1);
    double tol = tc ? BF16_ATT_TOL : TOL;
    double ry = compare_within("attention y", gy, y, nq, tol);
    compare_within("attention lse", glse, lse, nl, tol);
    compare_within("attention dq", gdq, dq, nq, tol);
    compare_within("attention dk", gdk, dk, nk, tol);
    compare_within("attention dv", gdv, dv, nk, tol);
    if (tc) CHECK(ry > TOL, "attention y within %.3g of fp32 (%.3g): the tensor-core kernels did not run", TOL, ry);
    float *host[] = {q, k, v, dy, y, lse, dq, dk, dv}, *dev[] = {gq, gk, gv, gdy, gy, glse, gdq, gdk, gdv};
    for (int i = 0; i < 9; i++) free(host[i]), dev_free(dev[i]);
}

// v as a column block of a wider matrix (rows ldv apart, from column `at`: the fused q/k/v product's v),
// and dv written into the same columns of another, whose other columns keep their values: against the
// CPU op on packed v, and, from pgolf's kernels, to the bit as the same call on packed v. In bf16 mode
// q, k, v and dv only rounded (v a column view of the wide matrix's rounding, dv of a held gradient's).
static void check_attention_strided_v(int B, int T, int H, int Hkv, int Dh, int ldv, int at, int bf16) {
    int rows = B * T, kv = Hkv * Dh, exact = !bf16 || !strcmp(cuda_attention_name(), "pgolf");
    size_t nq = (size_t)rows * H * Dh, nk = (size_t)rows * kv, nw = (size_t)rows * ldv, nl = (size_t)B * H * T;
    printf("    B=%d T=%d H=%d Hkv=%d Dh=%d, v's rows %d apart, %s\n", B, T, H, Hkv, Dh, ldv, bf16 ? "bf16" : "fp32");
    float *q = host_randn(nq, 1), *k = host_randn(nk, 1), *v = host_randn(nk, 1), *dy = host_randn(nq, 1);
    float *wide = host_randn(nw, 1), *marks = xmalloc(sizeof(float) * nw);
    for (size_t i = 0; i < nw; i++) marks[i] = 7;
    for (int t = 0; t < rows; t++) memcpy(wide + (size_t)t * ldv + at, v + (size_t)t * kv, sizeof(float) * kv);
    if (bf16) // the CPU reference on the values the products read
        for (size_t i = 0; i < nk; i++) v[i] = bf16_round(v[i]);
    float *y = xmalloc(sizeof(float) * nq), *lse = xmalloc(sizeof(float) * nl), *dq = xmalloc(sizeof(float) * nq);
    float *dk = xmalloc(sizeof(float) * nk), *dv = xmalloc(sizeof(float) * nk);
    float *qc = xmalloc(sizeof(float) * nq), *kc = xmalloc(sizeof(float) * nk);
    for (size_t i = 0; i < nq; i++) qc[i] = bf16 ? bf16_round(q[i]) : q[i];
    for (size_t i = 0; i < nk; i++) kc[i] = bf16 ? bf16_round(k[i]) : k[i];
    attention_forward(y, lse, qc, kc, v, NULL, B, T, H, Hkv, Dh, kv, NULL);
    attention_backward(dq, dk, dv, dy, NULL, y, NULL, lse, qc, kc, v, NULL, B, T, H, Hkv, Dh, kv, NULL, NULL, NULL);
    float *gq = to_device(q, nq), *gk = to_device(k, nk), *gv = to_device(v, nk), *gw = to_device(wide, nw);
    float *gdy = to_device(dy, nq), *gdw = to_device(marks, nw), *gy = dev_alloc(nq), *glse = dev_alloc(nl);
    float *gdq = dev_alloc(nq), *gdk = dev_alloc(nk), *py = dev_alloc(nq), *pdv = dev_alloc(nk);
    cuda_set_matmul_bf16(bf16);
    RoundedInput r[3] = {{0}}, rw = {0}, packed[3] = {{0}}, grad = {0};
    cuda_matmul_input_round(&r[0], gq, nq), cuda_matmul_input_round(&r[1], gk, nk), cuda_matmul_input_round(&rw, gw, nw);
    r[2] = cuda_matmul_input_columns(&rw, (size_t)at);
    packed[0] = r[0], packed[1] = r[1];
    cuda_matmul_input_round(&packed[2], gv, nk);
    const float *vin = bf16 ? NULL : gw + at;
    float *dvw = bf16 ? NULL : gdw + at;
    if (bf16) { // only rounded: q, k, v as results kept only rounded hold them, dv into a held gradient's view
        r[0].of = r[1].of = r[2].of = packed[2].of = NULL;
        packed[0] = r[0], packed[1] = r[1];
        cuda_matmul_input_round(&grad, gdw, nw);
        cuda_matmul_input_hold(&grad, NULL, nw);
    }
    RoundedInput dv_view = bf16 ? cuda_matmul_input_columns(&grad, (size_t)at) : (RoundedInput){0};
    cuda_attention_forward(gy, glse, bf16 ? NULL : gq, bf16 ? NULL : gk, vin, r, B, T, H, Hkv, Dh, ldv, NULL);
    cuda_attention_backward(gdq, gdk, dvw, gdy, NULL, gy, NULL, glse, bf16 ? NULL : gq, bf16 ? NULL : gk, vin, r, B, T, H, Hkv,
                            Dh, ldv, NULL, NULL, bf16 ? &dv_view : NULL);
    float *got = xmalloc(sizeof(float) * nw), *block = xmalloc(sizeof(float) * nk), *gblock = dev_alloc(nk);
    if (bf16) {
        float *gall = dev_alloc(nw);
        cuda_matmul_input_values(gall, &grad, 1, (int)nw, (int)nw);
        cuda_download(got, gall, sizeof(float) * nw);
        dev_free(gall);
    } else {
        cuda_download(got, gdw, sizeof(float) * nw);
    }
    int kept = 1;
    for (int t = 0; t < rows; t++)
        for (int c = 0; c < ldv; c++) {
            float x = got[(size_t)t * ldv + c];
            if (c >= at && c < at + kv) block[(size_t)t * kv + c - at] = x;
            else kept &= x == 7;
        }
    CHECK(kept, "attention backward wrote dv outside its columns");
    cuda_upload(gblock, block, sizeof(float) * nk);
    double tol = bf16 ? BF16_ATT_TOL : TOL;
    compare_within("attention y, strided v", gy, y, nq, tol);
    compare_within("attention dq, strided v", gdq, dq, nq, tol);
    compare_within("attention dv, strided", gblock, dv, nk, tol);
    if (exact) { // the same call on packed v
        cuda_attention_forward(py, glse, bf16 ? NULL : gq, bf16 ? NULL : gk, bf16 ? NULL : gv, packed, B, T, H, Hkv, Dh, kv,
                               NULL);
        cuda_attention_backward(gdq, gdk, pdv, gdy, NULL, py, NULL, glse, bf16 ? NULL : gq, bf16 ? NULL : gk,
                                bf16 ? NULL : gv, packed, B, T, H, Hkv, Dh, kv, NULL, NULL, NULL);
        float *a = xmalloc(sizeof(float) * nq), *b = xmalloc(sizeof(float) * nq);
        cuda_download(a, gy, sizeof(float) * nq), cuda_download(b, py, sizeof(float) * nq);
        CHECK(!memcmp(a, b, sizeof(float) * nq), "attention y from a strided v differs from packed v's");
        cuda_download(a, pdv, sizeof(float) * nk);
        for (size_t i = 0; i < nk; i++) a[i] = bf16 ? bf16_round(a[i]) : a[i];
        CHECK(!memcmp(a, block, sizeof(float) * nk), "attention dv into a column block differs from packed dv");
        free(a), free(b);
    }
    cuda_set_matmul_bf16(1);
    for (int i = 0; i < 2; i++) cuda_matmul_input_free(&r[i]);
    cuda_matmul_input_free(&rw), cuda_matmul_input_free(&packed[2]), cuda_matmul_input_free(&grad);
    float *host[] = {q, k, v, dy, wide, marks, y, lse, dq, dk, dv, qc, kc, got, block};
    for (int i = 0; i < 15; i++) free(host[i]);
    float *dev[] = {gq, gk, gv, gw, gdy, gdw, gy, glse, gdq, gdk, py, pdv, gblock};
    for (int i = 0; i < 13; i++) dev_free(dev[i]);
}

// fp32: the tiled kernels at both tile sizes (32 rows up to Dh 64, 16 above); bf16: the tensor-core
// kernels (64-row tiles) over several tiles, and a head size they leave to the fp32 kernels. Sequences
// ending mid-tile, one shorter than a tile, GQA and MHA.
TEST(cuda_attention) {
    if (!have_gpu()) return;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        check_attention(2, 70, 4, 2, 16, bf16);
        check_attention(1, 37, 2, 1, 80, bf16);
        check_attention(1, 5, 3, 3, 64, bf16);
    }
    check_attention(1, 150, 4, 2, 64, 1);
    check_attention(1, 70, 2, 1, 128, 1); // the largest head: over 48 KiB of shared memory (the opt-in)
    check_attention(1, 40, 2, 2, 24, 1);
    for (int bf16 = 0; bf16 < 2; bf16++) check_attention_strided_v(2, 37, 4, 2, 16, 56, 8, bf16);
    check_attention_strided_v(1, 21, 2, 1, 12, 20, 4, 1); // a head size the tensor cores leave to the fp32 kernels
    check_attention_strided_v(2, 37, 4, 2, 16, 52, 4, 1); // bf16 rows 104 bytes apart: cuDNN gets v copied packed
}

// x [B T, nh Dh] (on the host) as a column block of a wider matrix, as the
// fused q/k/v projection's output holds it (rows `ld` apart), read in fp32 and kept only rounded; dx
// written into such a block, fp32 and only rounded, and copy_into_columns next to it. The columns
// around the blocks keep their values.
static void check_qk_prep_column_block(const float *x, const float *dout, const float *gain, const float *cs, const float *sn,
                                       const float *ggain, const float *gcs, const float *gsn, int B, int T, int nh, int Dh,
                                       int rot) {
    int rows = B * T * nh, w = nh * Dh, ld = 2 * w + 3, at = 3, bt = B * T;
    size_t n = (size_t)rows * Dh, nw = (size_t)bt * ld;
    float *wide = host_randn(nw, 1), *rstd = xmalloc(sizeof(float) * rows);
    float *dx = xmalloc(sizeof(float) * n), *got = xmalloc(sizeof(float) * nw), *block = xmalloc(sizeof(float) * n);
    for (int t = 0; t < bt; t++) memcpy(wide + (size_t)t * ld + at, x + (size_t)t * w, sizeof(float) * w);
    float *o = xmalloc(sizeof(float) * n);
    qk_prep_forward(o, rstd, x, NULL, w, gain, cs, sn, B, T, nh, Dh, rot, 1e-6f, NULL);
    qk_prep_backward(dx, w, NULL, dout, NULL, x, NULL, w, rstd, gain, cs, sn, B, T, nh, Dh, rot, NULL);
    float *gwide = to_device(wide, nw), *gout = dev_alloc(n), *grstd = dev_alloc((size_t)rows), *gdw = dev_alloc(nw);
    float *gdout = to_device(dout, n), *gvals = dev_alloc(n);
    cuda_qk_prep_forward(gout, grstd, gwide + at, NULL, ld, ggain, gcs, gsn, B, T, nh, Dh, rot, 1e-6f, NULL);
    compare("qk_prep out, column block", gout, o, n);
    RoundedInput rw = {0}, alone = {0};
    cuda_matmul_input_round(&rw, gwide, nw);
    rw.of = NULL; // only rounded, as the model keeps it in bf16 mode
    RoundedInput view = cuda_matmul_input_columns(&rw, at);
    cuda_qk_prep_forward(NULL, grstd, NULL, &view, ld, ggain, gcs, gsn, B, T, nh, Dh, rot, 1e-6f, &alone);
    rounded_only_within("qk_prep out, rounded column block", &alone, o, n);
    // backward from the block (the forward's input) into the block of an fp32 wide gradient (a copy of
    // the wide matrix): the block is dx, the rest untouched
    cuda_upload(gdw, wide, sizeof(float) * nw);
    cuda_qk_prep_backward(gdw + at, ld, NULL, gdout, NULL, gwide + at, NULL, ld, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot,
                          NULL);
    cuda_download(got, gdw, sizeof(float) * nw);
    int kept = 1;
    for (int t = 0; t < bt; t++) {
        memcpy(block + (size_t)t * w, got + (size_t)t * ld + at, sizeof(float) * w);
        for (int j = 0; j < ld; j++)
            if (j < at || j >= at + w) kept &= got[(size_t)t * ld + j] == wide[(size_t)t * ld + j];
    }
    CHECK(kept, "qk_prep_backward into a column block wrote outside it");
    float *gblock = to_device(block, n);
    compare("qk_prep dx, column block", gblock, dx, n);
    // only rounded: the gradient's block from qk_prep_backward, the next one copied, read back by values
    RoundedInput grad = {0};
    cuda_matmul_input_hold(&grad, NULL, nw);
    RoundedInput dx_view = cuda_matmul_input_columns(&grad, at), copy_view = cuda_matmul_input_columns(&grad, at + w);
    cuda_qk_prep_backward(NULL, ld, NULL, gdout, NULL, NULL, &view, ld, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot, &dx_view);
    cuda_copy_into_columns(NULL, ld, gdout, bt, w, &copy_view);
    CHECK(grad.of == NULL && grad.n == nw && grad.bf16, "the held gradient changed what it holds");
    float *rounded = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) rounded[i] = bf16_round(dx[i]);
    dx_view = cuda_matmul_input_columns(&grad, at);
    cuda_matmul_input_values(gvals, &dx_view, bt, w, ld);
    compare_within("qk_prep dx, rounded column block", gvals, rounded, n, 1e-2);
    for (size_t i = 0; i < n; i++) rounded[i] = bf16_round(dout[i]);
    copy_view = cuda_matmul_input_columns(&grad, at + w);
    cuda_matmul_input_values(gvals, &copy_view, bt, w, ld);
    compare_within("copy_into_columns, rounded", gvals, rounded, n, 0);
    cuda_matmul_input_free(&rw), cuda_matmul_input_free(&alone), cuda_matmul_input_free(&grad);
    float *host[] = {wide, rstd, dx, got, block, o, rounded};
    for (int i = 0; i < 7; i++) free(host[i]);
    float *dev[] = {gwide, gout, grstd, gdout, gvals, gblock, gdw};
    for (int i = 0; i < 7; i++) dev_free(dev[i]);
}

// rows = B T nh not a multiple of a block's 8 warp-rows; rot / 2 below and above one pass of 32 lanes;
// the backward also in place (dx == dout)
static void check_qk_prep(int B, int T, int nh, int Dh, int rot) {
    int rows = B * T * nh;
    size_t n = (size_t)rows * Dh;
    float *x = host_randn(n, 1), *dout = host_randn(n, 1), *gain = host_randn((size_t)nh, 1);
    float *cs = xmalloc(sizeof(float) * T * rot / 2), *sn = xmalloc(sizeof(float) * T * rot / 2);
    rope_tables(cs, sn, T, rot, 10000, 0);
    float *out = xmalloc(sizeof(float) * n), *rstd = xmalloc(sizeof(float) * rows);
    float *dx = xmalloc(sizeof(float) * n), *dgain = calloc((size_t)nh, sizeof(float));
    int w = nh * Dh;
    qk_prep_forward(out, rstd, x, NULL, w, gain, cs, sn, B, T, nh, Dh, rot, 1e-6f, NULL);
    qk_prep_backward(dx, w, dgain, dout, NULL, x, NULL, w, rstd, gain, cs, sn, B, T, nh, Dh, rot, NULL);
    float *gx = to_device(x, n), *gdout = to_device(dout, n), *ggain = to_device(gain, (size_t)nh);
    float *gcs = to_device(cs, (size_t)T * rot / 2), *gsn = to_device(sn, (size_t)T * rot / 2);
    float *gout = dev_alloc(n), *grstd = dev_alloc((size_t)rows), *gdx = dev_alloc(n);
    float *gdgain = dev_alloc((size_t)nh);
    RoundedInput rout = {0};
    cuda_qk_prep_forward(gout, grstd, gx, NULL, w, ggain, gcs, gsn, B, T, nh, Dh, rot, 1e-6f, &rout);
    cuda_qk_prep_backward(gdx, w, gdgain, gdout, NULL, gx, NULL, w, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot, NULL);
    compare("qk_prep out", gout, out, n);
    check_rounded("qk_prep out", &rout, gout, n);
    compare("qk_prep dx", gdx, dx, n);
    compare("qk_prep dgain", gdgain, dgain, (size_t)nh);
    cuda_qk_prep_backward(gdout, w, NULL, gdout, NULL, gx, NULL, w, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot,
                          &rout); // in place
    compare("qk_prep dx in place", gdout, dx, n);
    check_rounded("qk_prep dx in place", &rout, gdout, n);
    // from a raw projection kept only rounded, into an output kept only rounded (bf16 mode, as the model)
    RoundedInput rx = {0}, alone = {0};
    cuda_matmul_input_round(&rx, gx, n);
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
    qk_prep_forward(out, rstd, x, NULL, w, gain, cs, sn, B, T, nh, Dh, rot, 1e-6f, NULL);
    cuda_qk_prep_forward(NULL, grstd, gx, &rx, w, ggain, gcs, gsn, B, T, nh, Dh, rot, 1e-6f, &alone);
    compare("qk_prep rstd, rounded in", grstd, rstd, (size_t)rows);
    rounded_only_within("qk_prep out, rounded in", &alone, out, n);
    qk_prep_backward(dx, w, NULL, dout, NULL, x, NULL, w, rstd, gain, cs, sn, B, T, nh, Dh, rot, NULL); // xn from the rounded x
    float *gdout2 = to_device(dout, n);
    cuda_qk_prep_backward(gdx, w, NULL, gdout2, NULL, gx, &rx, w, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot, NULL);
    compare("qk_prep dx, rounded in", gdx, dx, n);
    RoundedInput rd = {0}; // dout kept only rounded too (the attention's dq in bf16 mode)
    cuda_matmul_input_round(&rd, gdout2, n);
    rd.of = NULL;
    float *doutb = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) doutb[i] = bf16_round(dout[i]);
    qk_prep_backward(dx, w, NULL, doutb, NULL, x, NULL, w, rstd, gain, cs, sn, B, T, nh, Dh, rot, NULL);
    cuda_qk_prep_backward(gdx, w, NULL, NULL, &rd, gx, &rx, w, grstd, ggain, gcs, gsn, B, T, nh, Dh, rot, NULL);
    compare("qk_prep dx, rounded dout and x", gdx, dx, n);
    free(doutb), cuda_matmul_input_free(&rd);
    dev_free(gdout2);
    check_qk_prep_column_block(x, dout, gain, cs, sn, ggain, gcs, gsn, B, T, nh, Dh, rot);
    cuda_matmul_input_free(&rout), cuda_matmul_input_free(&rx), cuda_matmul_input_free(&alone);
    float *host[] = {x, dout, gain, cs, sn, out, rstd, dx, dgain};
    float *dev[] = {gx, gdout, ggain, gcs, gsn, gout, grstd, gdx, gdgain};
    for (int i = 0; i < 9; i++) free(host[i]), dev_free(dev[i]);
}

// XSA on N tokens: the warp-per-row kernels with Dh below, at and above a warp's width.
static void check_xsa(int N, int H, int Hkv, int Dh) {
    size_t ny = (size_t)N * H * Dh, nv = (size_t)N * Hkv * Dh;
    float *y = host_randn(ny, 1), *v = host_randn(nv, 1), *dy = host_randn(ny, 1), *xo = xmalloc(sizeof(float) * ny);
    float *dv = xmalloc(sizeof(float) * nv), *gy = to_device(y, ny), *gv = to_device(v, nv), *gdy = to_device(dy, ny);
    float *gxo = dev_alloc(ny), *gdv = dev_alloc(nv);
    printf("    xsa N=%d H=%d Hkv=%d Dh=%d\n", N, H, Hkv, Dh);
    xsa_forward(xo, y, v, N, H, Hkv, Dh);
    cuda_xsa_forward(gxo, gy, gv, N, H, Hkv, Dh);
    compare("xsa out", gxo, xo, ny);
    xsa_backward(dy, dv, y, v, N, H, Hkv, Dh);
    cuda_xsa_backward(gdy, gdv, gy, gv, N, H, Hkv, Dh);
    compare("xsa dy", gdy, dy, ny);
    compare("xsa dv", gdv, dv, nv);
    free(y), free(v), free(dy), free(xo), free(dv);
    dev_free(gy), dev_free(gv), dev_free(gdy), dev_free(gxo), dev_free(gdv);
}

TEST(cuda_qk_prep_and_xsa) {
    if (!have_gpu()) return;
    check_qk_prep(2, 9, 3, 16, 8);
    check_qk_prep(1, 5, 3, 128, 96);
    check_qk_prep(2, 5, 4, 64, 64); // the presets' heads: 8 lanes per row, 4 rows per warp
    check_qk_prep(1, 5, 3, 64, 16); // partial RoPE: 2 rotated units and 12 of the tail on 16 lanes
    check_qk_prep(1, 5, 3, 20, 6); // halves of 3: single values
    g_misalign = 1; // the presets' heads off alignment: single values
    check_qk_prep(2, 5, 4, 64, 64);
    g_misalign = 0;
    check_xsa(11, 4, 2, 16);
    check_xsa(7, 6, 2, 80);
}

// The attention gate over [N, H Dh] with G gates per token, on the device as the model calls it: z and
// the gates in one buffer, dout and dy in one buffer (the CPU op out of place).
static void check_attn_gate(int N, int H, int Dh, int G) {
    size_t n = (size_t)N * H * Dh, ng = (size_t)N * G;
    float *y = host_randn(n, 1), *dout = host_randn(n, 1), *z = host_randn(ng, 1), *bias = host_randn((size_t)G, 1);
    float *out = xmalloc(sizeof(float) * n), *gt = xmalloc(sizeof(float) * ng), *dy = xmalloc(sizeof(float) * n);
    float *dz = xmalloc(sizeof(float) * ng), *db = calloc((size_t)G, sizeof(float));
    attn_gate_forward(out, gt, y, z, bias, N, H, Dh, G, 2);
    attn_gate_backward(dy, dz, db, dout, y, gt, N, H, Dh, G, 2);
    float *gy = to_device(y, n), *gzt = to_device(z, ng), *gb = to_device(bias, (size_t)G), *gout = dev_alloc(n);
    float *gd = to_device(dout, n), *gdz = dev_alloc(ng), *gdb = dev_alloc((size_t)G);
    printf("    attn_gate: %d gates of %d values per token\n", G, H * Dh / G);
    cuda_attn_gate_forward(gout, gzt, gy, gzt, gb, N, H, Dh, G, 2);
    compare("attn_gate", gout, out, n);
    compare("attn_gate gates", gzt, gt, ng);
    cuda_attn_gate_backward(gd, gdz, gdb, gd, gy, gzt, N, H, Dh, G, 2);
    compare("attn_gate dy", gd, dy, n);
    compare("attn_gate dz", gdz, dz, ng);
    compare("attn_gate dbias", gdb, db, (size_t)G);
    float *host[] = {y, dout, z, bias, out, gt, dy, dz, db}, *dev[] = {gy, gzt, gb, gout, gd, gdz, gdb};
    for (int i = 0; i < 9; i++) free(host[i]);
    for (int i = 0; i < 7; i++) dev_free(dev[i]);
}

TEST(cuda_technique_ops) {
    if (!have_gpu()) return;
    int B = 3, T = 201, C = 24, N = B * T, H = 3, Dh = 8, G = 3; // N: three row chunks, the last one partial
    size_t n = (size_t)N * C;
    float *x = host_randn(n, 1), *y = host_randn(n, 1), *dout = host_randn(n, 1), *gate = host_randn((size_t)C, 1);
    float *w = host_randn((size_t)C, 1), *out = xmalloc(sizeof(float) * n), *dx = xmalloc(sizeof(float) * n);
    float *dy = xmalloc(sizeof(float) * n), *dw = calloc((size_t)C, sizeof(float)), *dg = calloc((size_t)C, sizeof(float));
    float *gx = to_device(x, n), *gy = to_device(y, n), *gd = to_device(dout, n), *ggate = to_device(gate, (size_t)C);
    float *gw = to_device(w, (size_t)C), *gout = dev_alloc(n), *gdx = dev_alloc(n), *gdy = dev_alloc(n);
    float *gdw = dev_alloc((size_t)C), *gdg = dev_alloc((size_t)C);
    smear_forward(out, x, gate, B, T, C);
    cuda_smear_forward(gout, gx, ggate, B, T, C);
    compare("smear", gout, out, n);
    smear_backward(dx, dg, dout, x, gate, B, T, C);
    cuda_smear_backward(gdx, gdg, gd, gx, ggate, B, T, C);
    compare("smear dx", gdx, dx, n);
    compare("smear dgate", gdg, dg, (size_t)C);
    skip_lerp_forward(out, x, y, w, gate, N, C);
    cuda_skip_lerp_forward(gout, gx, gy, gw, ggate, N, C);
    compare("skip_lerp", gout, out, n);
    skip_lerp_backward(dx, dy, dw, dg, dout, x, y, w, gate, N, C);
    cuda_skip_lerp_backward(gdx, gdy, gdw, gdg, gd, gx, gy, gw, ggate, N, C);
    compare("skip_lerp dx", gdx, dx, n);
    compare("skip_lerp dy", gdy, dy, n);
    compare("skip_lerp dw", gdw, dw, (size_t)C);
    compare("skip_lerp dgate (accum.)", gdg, dg, (size_t)C);
    check_attn_gate(N, H, Dh, G);      // a gate per head of 8 values
    check_attn_gate(N, H, Dh, H * Dh); // a gate per value
    check_attn_gate(N, 2, 40, 2);      // heads wider than a warp
    const float lam[2] = {0.7f, -0.4f};
    double dl[2], gdl[2];
    float *dv0 = host_randn(n, 1), *gdv0 = to_device(dv0, n);
    value_mix_forward(out, x, y, lam, n);
    cuda_value_mix_forward(gout, gx, gy, lam, n);
    compare("value_mix", gout, out, n);
    value_mix_backward(dx, dv0, dl, dout, x, y, lam, n);
    cuda_value_mix_backward(gdx, gdv0, gdl, gd, gx, gy, lam, n);
    compare("value_mix dv", gdx, dx, n);
    compare("value_mix dv0 (accum.)", gdv0, dv0, n);
    CHECK(fabs(dl[0] - gdl[0]) <= TOL * fabs(dl[0]) && fabs(dl[1] - gdl[1]) <= TOL * fabs(dl[1]), "dlam %g %g vs %g %g",
          gdl[0], gdl[1], dl[0], dl[1]);
    double da = axpy_backward(dx, dout, 0.3f, y, n), gda = cuda_axpy_backward(gdx, gd, 0.3f, gy, n);
    compare("axpy dy", gdx, dx, n);
    CHECK(fabs(da - gda) <= TOL * fabs(da), "axpy da %g vs %g", gda, da);
    int32_t *ids = xmalloc(sizeof(int32_t) * N); // host ids, as the op takes them
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rng_u64(&g_rng) % 7) * 2; // repeated rows, and rows never hit
    float *table = host_randn(14 * (size_t)C, 1), *gtable = to_device(table, 14 * (size_t)C);
    embedding_backward(table, dout, ids, N, C);
    cuda_embedding_backward(gtable, gd, ids, N, C);
    compare("embedding dtable", gtable, table, 14 * (size_t)C);
}

// The ops optim/ runs Muon, Adam and the EMA with, and the reductions, against the CPU ops.
TEST(cuda_optimizer_ops) {
    if (!have_gpu()) return;
    int M = 24, N = 40;
    { // GPTQ's X^T X: the upper triangle of a row-major C from X's rows 28 apart, the lower one untouched
        float *X = host_randn((size_t)N * 28, 1), *G = host_randn((size_t)M * M, 1);
        float *gX = to_device(X, (size_t)N * 28), *gG = to_device(G, (size_t)M * M);
        gram_upper(M, N, X, 28, 0, G);
        cuda_gram_upper(M, N, gX, 28, 0, gG);
        compare("gram_upper", gG, G, (size_t)M * M);
        gram_upper(M, N, X, 28, 1, G);
        cuda_gram_upper(M, N, gX, 28, 1, gG);
        compare("gram_upper, added", gG, G, (size_t)M * M);
        free(X), free(G), dev_free(gX), dev_free(gG);
    }
    int rows = 48, cols = 32;
    size_t n = (size_t)rows * cols;
    float *g = host_randn(n, 1), *buf = host_randn(n, 0.5), *u = xmalloc(sizeof(float) * n), *t = xmalloc(sizeof(float) * n);
    float *gg = to_device(g, n), *gbuf = to_device(buf, n), *gu = dev_alloc(n), *gt = dev_alloc(n);
    nesterov_momentum(u, buf, g, n, 0.9f);
    cuda_nesterov_momentum(gu, gbuf, gg, n, 0.9f);
    compare("nesterov update", gu, u, n);
    compare("nesterov buffer", gbuf, buf, n);
    normalize_rows(u, rows, cols, 1.2247);
    cuda_normalize_rows(gu, rows, cols, 1.2247);
    compare("normalize_rows", gu, u, n);
    transpose(t, u, rows, cols);
    cuda_transpose(gt, gu, rows, cols);
    compare("transpose", gt, t, n);
    scale_inplace(t, 0.37f, n);
    cuda_scale_inplace(gt, 0.37f, n);
    compare("scale_inplace", gt, t, n);
    double ss = sum_squares(t, n), gss = cuda_sum_squares(gt, n), sv = sum_values(t, n), gsv = cuda_sum_values(gt, n);
    CHECK(fabs(ss - gss) <= 1e-6 * ss && fabs(sv - gsv) <= 1e-6 * fmax(1, fabs(sv)), "sums %g/%g and %g/%g", gss, ss, gsv, sv);
    scale_to_unit_norm(t, n, 1e-7);
    cuda_scale_to_unit_norm(gt, n, 1e-7);
    compare("scale_to_unit_norm", gt, t, n);
    float *p = host_randn(n, 1), *m = host_randn(n, 0.1), *v = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = (float)fabs(rng_normal(&g_rng)) * 0.01f;
    float *gp = to_device(p, n), *gm = to_device(m, n), *gv = to_device(v, n);
    adam_step(p, g, m, v, n, 0.9f, 0.95f, 1e-8f, 0.02f, 0.3f);
    cuda_adam_step(gp, gg, gm, gv, n, 0.9f, 0.95f, 1e-8f, 0.02f, 0.3f);
    compare("adam p", gp, p, n);
    compare("adam v", gv, v, n);
    ema_step(m, p, n, 0.997);
    cuda_ema_step(gm, gp, n, 0.997);
    compare("ema", gm, m, n);
    sgd_momentum_step(p, g, m, n, 0.9f, 0.005f);
    cuda_sgd_momentum_step(gp, gg, gm, n, 0.9f, 0.005f);
    compare("sgd momentum p", gp, p, n);
    fake_quantize_rows(p, rows, cols);
    cuda_fake_quantize_rows(gp, rows, cols);
    compare("fake_quantize_rows", gp, p, n);
}

// The whole model on the GPU: pgolf-cuda (the same model and loop on src/ops/cuda) against pgolf on the CPU
// from the same weights and shards, every technique family on, GPTQ's export (its calibration reads
// the activations), both computing the linear layers at `precision` (the CPU's bf16 mode rounds the
// same operands and results; its attention reads the rounded q, k, v but keeps its probabilities
// fp32): 8 training steps' losses within loss_tol, the round-trip val_bpb within bpb_tol, every
// gradient tensor of the first step within grad_tol (DUMP_GRADS) and, where weight_tol > 0, every final
// weight tensor within weight_tol.
static double value_after(const char *text, const char *prefix, const char *key) {
    const char *line = strstr(text, prefix);
    const char *k = line ? strstr(line, key) : NULL;
    return k ? atof(k + strlen(key)) : NAN;
}

// The largest difference between two runs' tensors (weights, gradients), tensor by tensor, relative to
// the CPU tensor's largest magnitude.
static double tensors_difference(const char *gpu_path, const char *cpu_path) {
    SafeTensors *g = st_load(gpu_path), *c = st_load(cpu_path);
    double worst = 0;
    CHECK(st_count(g) == st_count(c), "%s has %d tensors, %s %d", gpu_path, st_count(g), cpu_path, st_count(c));
    for (int i = 0; i < st_count(c); i++) {
        const StTensor *b = st_find(c, st_name(c, i)), *a = st_find(g, st_name(c, i));
        CHECK(a && a->numel == b->numel, "tensor %s differs in shape or is missing", st_name(c, i));
        if (a && a->numel == b->numel) worst = fmax(worst, max_relative_difference(a->f, b->f, (size_t)b->numel));
    }
    st_free(g);
    st_free(c);
    return worst;
}

// Every technique family (`techniques`, its round trip evaluated by sliding windows: the head only where
// they score), or the baseline, whose layers are the plain ones (no XSA, no gate: the attention's output
// and its gradient exist only rounded in bf16 mode).
#define MODEL_TECHNIQUES                                                                                         \
    "ROPE_DIMS=8 LN_SCALE=1 NEGATIVE_SLOPE=0.5 XSA_LAST_N=4 SMEAR_GATE=1 GATED_ATTENTION=1 VALUE_RESIDUAL=1 "     \
    "BIGRAM_VOCAB_SIZE=64 BIGRAM_DIM=16 SKIP_GATES_ENABLED=1 RECUR_LAYERS=1-2 PARALLEL_RESIDUAL_START=3 VE_ENABLED=1 " \
    "VE_DIM=16 VE_LAYERS=3 EMA_ENABLED=1 MUON_WD=0.04 ADAM_WD=0.04 MUON_ROW_NORMALIZE=1 LATE_QAT=1 QAT_THRESHOLD=0.5 " \
    "EVAL_STRIDE=24 "
static void model_tracks_cpu(const char *precision, int techniques, double loss_tol, double bpb_tol, double grad_tol,
                             double weight_tol) {
    const char *data = test_markov_dataset("cuda_curve_data");
    char name[64];
    snprintf(name, sizeof name, "cuda_curve_%s%s", precision, techniques ? "" : "_baseline");
    const char *dir = test_tmpdir(name);
    char env[4096], cmd[8192], *cpu, *gpu;
    snprintf(env, sizeof env,
             "DATA_PATH=%s TOKENIZER_PATH=%s/tokenizers/fineweb_1024_bpe.model RUN_ID=c VOCAB_SIZE=1024 NUM_LAYERS=4 "
             "MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 TRAIN_SEQ_LEN=64 TRAIN_BATCH_TOKENS=2048 GRAD_ACCUM_STEPS=2 "
             "ITERATIONS=8 WARMDOWN_ITERS=4 WARMUP_STEPS=0 MAX_WALLCLOCK_SECONDS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=2048 "
             "TRAIN_LOG_EVERY=1 %sQUANT_SCHEME=gptq GPTQ_CALIBRATION_BATCHES=2 MATMUL_PRECISION=%s",
             data, test_shared_data(), techniques ? MODEL_TECHNIQUES : "", precision);
    // one set of initial weights for both: an export-only run writes them
    snprintf(cmd, sizeof cmd, "env %s OUT_DIR=%s/init ITERATIONS=0 ./pgolf train", env, dir);
    CHECK(test_run(cmd, &cpu) == 0, "writing the initial weights failed:\n%s", cpu);
    free(cpu);
    snprintf(cmd, sizeof cmd,
             "env %s OUT_DIR=%s/cpu INIT_CHECKPOINT=%s/init/final_model.safetensors DUMP_GRADS=%s/cpu/grads.safetensors "
             "./pgolf train", env, dir, dir, dir);
    CHECK(test_run(cmd, &cpu) == 0, "pgolf (CPU) failed:\n%s", cpu);
    snprintf(cmd, sizeof cmd,
             "env %s OUT_DIR=%s/gpu INIT_CHECKPOINT=%s/init/final_model.safetensors DUMP_GRADS=%s/gpu/grads.safetensors "
             "%s train", env, dir, dir, dir, PGOLF_CUDA);
    CHECK(test_run(cmd, &gpu) == 0, "pgolf-cuda failed:\n%s", gpu);
    char expect[64];
    snprintf(expect, sizeof expect, "matmul:%s", precision);
    CHECK(strstr(cpu, expect) && strstr(gpu, expect), "both runs should log %s", expect);
    if (techniques) CHECK(strstr(gpu, "final_eval_mode:sliding_window"), "the GPU run's round trip should slide its windows");
    double worst = 0;
    for (int i = 1; i <= 8; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "step:%d/8 train_loss:", i);
        double a = value_after(gpu, prefix, "train_loss:"), b = value_after(cpu, prefix, "train_loss:");
        CHECK(fabs(a - b) < loss_tol, "step %d: GPU train_loss %.4f, CPU %.4f", i, a, b);
        worst = worse_of(worst, fabs(a - b));
    }
    // pgolf-cuda's code: its source bundle, of src's .c/.h outside src/ops/cpu, its .cu files (cuDNN's in a cuDNN
    // build), the Makefile and scripts/bundle.sh
    double code = value_after(gpu, "Code size:", "Code size:"), files = value_after(gpu, "themselves:", "themselves:");
    long long plain = test_code_bytes("src/ops/cpu/", 1, "src/ops/cuda/attention_cudnn.cu");
    long long cudnn = test_code_bytes("src/ops/cpu/", 1, NULL);
    CHECK(plain > 0 && (files == plain || files == cudnn), "pgolf-cuda's source files: %.0f bytes, they hold %lld (%lld "
          "with cuDNN's attention)", files, plain, cudnn);
    const char *bundles[] = {PGOLF_CUDA_BUNDLES};
    int bundled = 0;
    for (size_t i = 0; i < sizeof bundles / sizeof *bundles; i++) bundled |= file_size(bundles[i]) == (int64_t)code;
    CHECK(bundled, "pgolf-cuda counts %.0f code bytes, the size of none of its source bundles (%s)", code, bundles[0]);
    double a = value_after(gpu, "_roundtrip_exact", "val_bpb:"), b = value_after(cpu, "_roundtrip_exact", "val_bpb:");
    CHECK(fabs(a - b) < bpb_tol, "round-trip val_bpb: GPU %.6f, CPU %.6f", a, b);
    char gpu_file[1024], cpu_file[1024];
    snprintf(gpu_file, sizeof gpu_file, "%s/gpu/grads.safetensors", dir);
    snprintf(cpu_file, sizeof cpu_file, "%s/cpu/grads.safetensors", dir);
    double gr = tensors_difference(gpu_file, cpu_file);
    CHECK(gr < grad_tol, "first step's gradients: relative difference %.3g, tolerance %.3g", gr, grad_tol);
    snprintf(gpu_file, sizeof gpu_file, "%s/gpu/final_model.safetensors", dir);
    snprintf(cpu_file, sizeof cpu_file, "%s/cpu/final_model.safetensors", dir);
    double w = tensors_difference(gpu_file, cpu_file);
    if (weight_tol > 0) CHECK(w < weight_tol, "final weights: relative difference %.3g, tolerance %.3g", w, weight_tol);
    printf("    %s: largest train_loss difference %.2e, round-trip val_bpb %.2e, first gradients %.2e, final weights "
           "%.2e\n", precision, worst, fabs(a - b), gr, w);
    free(cpu);
    free(gpu);
}

TEST(cuda_model_tracks_cpu_loss_curve_fp32) {
    if (!have_gpu()) return;
    model_tracks_cpu("fp32", 1, 2e-3, 1e-3, 1e-4, 1e-3); // measured on the emulator: 0, 0, 3e-7, 3e-5
}

TEST(cuda_model_tracks_cpu_loss_curve_bf16) {
    if (!have_gpu()) return;
    // bf16 rounding turns summation-order differences into 2^-8 steps, and the GPU's attention rounds
    // its probabilities where the CPU's does not (measured on the emulator: loss 5e-4, bpb 4e-6,
    // gradients 1.1e-3). The weights are not compared: tensors still near their zero init (attn_gate)
    // differ by up to 30% of their own small size after Adam's normalized steps, while the losses agree.
    model_tracks_cpu("bf16", 1, 5e-3, 2e-3, 2e-2, 0);
}

// The baseline's plain layers in bf16: the attention's output and its gradient kept only rounded.
TEST(cuda_model_tracks_cpu_loss_curve_bf16_baseline) {
    if (!have_gpu()) return;
    model_tracks_cpu("bf16", 0, 5e-3, 2e-3, 2e-2, 0);
}

__attribute__((constructor)) static void seed_rng(void) { rng_seed(&g_rng, 7); }
