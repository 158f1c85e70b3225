// The fragment layouts src/ops/cuda/warp_mma.h describes, checked where the instructions run: on a GPU
// this says whether the description matches the hardware (the attention kernels rest on it), and on
// the CPU emulator, which implements the same description, that the emulation is self-consistent.
// Each piece is checked alone, so a failure names it: ldmatrix's A, B and transposed B registers
// against the description, mma.sync on fragments built by hand from the description, and the two
// together. Operands are small integers: every product is exact.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "ops/cuda/warp_mma.h"

extern "C" {
#include "../test.h"
}

#define LD 24 // shared rows: 16 values and 8 of padding, 16-byte aligned

// What one warp reports: per lane whether ldmatrix's A, B (rows of Y) and transposed B (columns of Y)
// registers are the described ones, and the 16 x 16 products A Y^T and A Y from hand-built fragments
// and from ldmatrix's, each written back through the described accumulator layout.
struct Report {
    int same_a[32], same_b[32], same_bt[32];
    float hand_abt[256], hand_ab[256], loaded_abt[256], loaded_ab[256];
};

// Two 16 x 8 accumulator tiles (columns 0-7, 8-15) into out [16 x 16].
__device__ static void store_tiles(float *out, const float (*d)[4]) {
    int g = threadIdx.x / 4, t = threadIdx.x % 4;
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 4; i++) out[(g + 8 * (i / 2)) * 16 + 8 * n + 2 * t + i % 2] = d[n][i];
}

// One warp; a, y [16 x 16] bf16 row-major.
__global__ static void warp_layouts(Report *rep, const __nv_bfloat16 *a, const __nv_bfloat16 *y) {
    extern __shared__ __align__(16) __nv_bfloat16 tiles[];
    __nv_bfloat16 *As = tiles, *Ys = tiles + 16 * LD;
    int lane = threadIdx.x, g = lane / 4, t2 = 2 * (lane % 4);
    for (int e = lane; e < 256; e += 32) As[e / 16 * LD + e % 16] = a[e], Ys[e / 16 * LD + e % 16] = y[e];
    __syncthreads();
    auto A = [&](int r, int c) { return __bfloat162float(a[r * 16 + c]); };
    auto Y = [&](int r, int c) { return __bfloat162float(y[r * 16 + c]); };
    // The description: A rows g, g + 8 at columns t2, t2 + 8; B (k x n) rows t2, t2 + 8 at column g,
    // for n-tiles 0 and 1. For A Y^T, B(k, n) = Y[n][k]; for A Y, B(k, n) = Y[k][n].
    unsigned ha[4] = {pack_bf16(A(g, t2), A(g, t2 + 1)), pack_bf16(A(g + 8, t2), A(g + 8, t2 + 1)),
                      pack_bf16(A(g, t2 + 8), A(g, t2 + 9)), pack_bf16(A(g + 8, t2 + 8), A(g + 8, t2 + 9))};
    unsigned hb[4] = {pack_bf16(Y(g, t2), Y(g, t2 + 1)), pack_bf16(Y(g, t2 + 8), Y(g, t2 + 9)),
                      pack_bf16(Y(g + 8, t2), Y(g + 8, t2 + 1)), pack_bf16(Y(g + 8, t2 + 8), Y(g + 8, t2 + 9))};
    unsigned hbt[4] = {pack_bf16(Y(t2, g), Y(t2 + 1, g)), pack_bf16(Y(t2 + 8, g), Y(t2 + 9, g)),
                       pack_bf16(Y(t2, g + 8), Y(t2 + 1, g + 8)), pack_bf16(Y(t2 + 8, g + 8), Y(t2 + 9, g + 8))};
    // The same through ldmatrix, addressed as attention_tc.cu addresses its tiles.
    unsigned la[4], lb[4], lbt[4];
    ldmatrix_x4(la, As + (lane % 16) * LD + 8 * (lane / 16));
    ldmatrix_x4(lb, Ys + (lane % 8 + 8 * (lane / 16)) * LD + 8 * (lane / 8 % 2));
    ldmatrix_x4_trans(lbt, Ys + (lane % 16) * LD + 8 * (lane / 16));
    auto same = [](const unsigned *x, const unsigned *w) { return x[0] == w[0] && x[1] == w[1] && x[2] == w[2] && x[3] == w[3]; };
    rep->same_a[lane] = same(la, ha), rep->same_b[lane] = same(lb, hb), rep->same_bt[lane] = same(lbt, hbt);
    const unsigned *ops[2][3] = {{ha, hb, hbt}, {la, lb, lbt}};
    float *outs[2][2] = {{rep->hand_abt, rep->hand_ab}, {rep->loaded_abt, rep->loaded_ab}};
    for (int src = 0; src < 2; src++)
        for (int p = 0; p < 2; p++) { // p 0: A Y^T with B, 1: A Y with transposed B
            float d[2][4] = {};
            mma_bf16_16816(d[0], ops[src][0], ops[src][1 + p]);
            mma_bf16_16816(d[1], ops[src][0], ops[src][1 + p] + 2);
            store_tiles(outs[src][p], d);
        }
}

static int lanes_differing(const int *same) {
    int n = 0;
    for (int i = 0; i < 32; i++) n += !same[i];
    return n;
}

// The largest error of out against A Y^T (transposed) or A Y.
static double product_error(const float *out, const float *a, const float *y, int transposed) {
    double err = 0;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            double want = 0;
            for (int k = 0; k < 16; k++) want += (double)a[r * 16 + k] * (transposed ? y[c * 16 + k] : y[k * 16 + c]);
            err = fmax(err, fabs(out[r * 16 + c] - want));
        }
    return err;
}

TEST(cuda_warp_mma_layouts) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || !devices) {
        test_skip("no CUDA device");
        return;
    }
    float fa[256], fy[256];
    __nv_bfloat16 ha[256], hy[256];
    for (int i = 0; i < 256; i++) {
        fa[i] = (float)(i % 7 - 3), fy[i] = (float)(i * 3 % 11 - 5); // Y is not symmetric: Y and Y^T differ
        ha[i] = __float2bfloat16_rn(fa[i]), hy[i] = __float2bfloat16_rn(fy[i]);
    }
    __nv_bfloat16 *a, *y;
    Report *rep, *h = (Report *)malloc(sizeof(Report));
    cudaMalloc(&a, sizeof ha), cudaMalloc(&y, sizeof hy), cudaMalloc(&rep, sizeof(Report));
    cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(y, hy, sizeof hy, cudaMemcpyHostToDevice);
    warp_layouts<<<1, 32, 2 * 16 * LD * sizeof(__nv_bfloat16)>>>(rep, a, y);
    CHECK(cudaGetLastError() == cudaSuccess && cudaMemcpy(h, rep, sizeof(Report), cudaMemcpyDeviceToHost) == cudaSuccess,
          "the layout kernel ran");
    int la = lanes_differing(h->same_a), lb = lanes_differing(h->same_b), lbt = lanes_differing(h->same_bt);
    double e[4] = {product_error(h->hand_abt, fa, fy, 1), product_error(h->hand_ab, fa, fy, 0),
                   product_error(h->loaded_abt, fa, fy, 1), product_error(h->loaded_ab, fa, fy, 0)};
    printf("    lanes whose ldmatrix registers differ from the description: A %d, B %d, transposed B %d\n", la, lb, lbt);
    printf("    mma.sync errors: hand-built A Y^T %g, A Y %g; through ldmatrix A Y^T %g, A Y %g\n", e[0], e[1], e[2], e[3]);
    CHECK(la == 0 && lb == 0 && lbt == 0, "ldmatrix gives the registers warp_mma.h describes");
    CHECK(e[0] == 0 && e[1] == 0, "mma.sync on fragments laid out as warp_mma.h describes gives exact products");
    CHECK(e[2] == 0 && e[3] == 0, "mma.sync on ldmatrix's fragments gives exact products");
    cudaFree(a), cudaFree(y), cudaFree(rep);
    free(h);
}
