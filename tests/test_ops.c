// The CPU ops' bf16 mode for the linear layers (the CUDA backend's default numerics): it must equal
// fp32 math on operands rounded to bf16 beforehand, bit for bit, and differ from fp32 on the raw ones.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "test.h"
#include "util.h"

static void rounded_copy(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

TEST(ops_matmul_bf16_rounds_operands) {
    enum { N = 29, I = 40, O = 24 };
    static float x[N * I], w[O * I], d[N * O], xr[N * I], wr[O * I], dr[N * O];
    static float out[N * O], dx[N * I], dw[O * I], out_ref[N * O], dx_ref[N * I], dw_ref[O * I], out_fp32[N * O];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N * I; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < O * I; i++) w[i] = (float)rng_normal(&r);
    for (int i = 0; i < N * O; i++) d[i] = (float)rng_normal(&r);
    rounded_copy(xr, x, N * I), rounded_copy(wr, w, O * I), rounded_copy(dr, d, N * O);

    CHECK(!ops_matmul_bf16(), "the CPU default is fp32");
    matmul_forward(out_fp32, x, w, N, I, O);
    matmul_forward(out_ref, xr, wr, N, I, O);
    matmul_backward(dx_ref, dw_ref, dr, xr, wr, N, I, O, 0);
    ops_set_matmul_bf16(1);
    matmul_forward(out, x, w, N, I, O);
    matmul_backward(dx, dw, d, x, w, N, I, O, 0);
    ops_set_matmul_bf16(0);
    CHECK(!memcmp(out, out_ref, sizeof out), "bf16 forward differs from fp32 on rounded operands");
    CHECK(!memcmp(dx, dx_ref, sizeof dx), "bf16 dinp differs from fp32 on rounded operands");
    CHECK(!memcmp(dw, dw_ref, sizeof dw), "bf16 dw differs from fp32 on rounded operands");
    double diff = 0;
    for (int i = 0; i < N * O; i++) diff = fmax(diff, fabs((double)out[i] - out_fp32[i]));
    CHECK(diff > 1e-3, "bf16 forward equals fp32 (max difference %g): the operands were not rounded", diff);
}
