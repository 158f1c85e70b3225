// The initial weights: train_gpt.py's kaiming-uniform and zero projections by default, and the records'
// OrthoInit (ORTHO_INIT) with its bigram.proj scale, checked through W W^T (or W^T W for tall W).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model/gpt.h"
#include "test.h"

// max |G - gain^2 I| of the Gram matrix of the shorter side of W [rows, cols]
static double gram_error(const real *w, int rows, int cols, double gain) {
    int tall = rows > cols, n = tall ? cols : rows;
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double d = 0;
            int len = tall ? rows : cols;
            for (int k = 0; k < len; k++)
                d += tall ? (double)w[(size_t)k * cols + i] * w[(size_t)k * cols + j]
                          : (double)w[(size_t)i * cols + k] * w[(size_t)j * cols + k];
            worst = worse_of(worst, fabs(d - (i == j ? gain * gain : 0)));
        }
    return worst;
}

static const real *param(const GPT *m, const char *name) {
    const TensorView *t = tensor_list_find(&m->param_list, name);
    CHECK(t != NULL, "no tensor %s", name);
    return t ? t->data : NULL;
}

static void init_model(GPT *m, int ortho, int proj_scale) {
    Config c;
    config_defaults(&c);
    c.num_layers = 2, c.model_dim = 128, c.num_heads = 2, c.num_kv_heads = 1, c.mlp_mult = 2, c.vocab_size = 64;
    c.bigram_vocab_size = 32, c.bigram_dim = 64, c.ortho_init = ortho, c.ortho_proj_scale = proj_scale;
    GPTConfig g = gpt_config_from(&c);
    gpt_init(m, &g);
    gpt_init_weights(m, 7);
}

// bf16 rounding (8 significant bits) leaves Gram entries within a few 1e-3 of the identity.
#define ORTHO_TOL 2e-2

TEST(init_ortho_matrices_are_orthogonal) {
    GPT m;
    init_model(&m, 1, 1);
    double e_q = gram_error(param(&m, "blocks.0.attn.c_q.weight"), 128, 128, 1);
    double e_k = gram_error(param(&m, "blocks.1.attn.c_k.weight"), 64, 128, 1); // wide: orthonormal rows
    double e_fc = gram_error(param(&m, "blocks.0.mlp.fc.weight"), 256, 128, 1); // tall: orthonormal columns
    double gain = 1 / sqrt(4.0); // 1/sqrt(2 NUM_LAYERS)
    double e_b = gram_error(param(&m, "bigram.proj.weight"), 128, 64, gain);
    CHECK(e_q < ORTHO_TOL && e_k < ORTHO_TOL && e_fc < ORTHO_TOL, "Gram errors c_q %.3g c_k %.3g fc %.3g", e_q, e_k, e_fc);
    CHECK(e_b < ORTHO_TOL * gain * gain, "bigram.proj Gram error %.3g (gain %.3g)", e_b, gain);
    const real *proj = param(&m, "blocks.0.attn.proj.weight");
    int zero = 1;
    for (int i = 0; i < 128 * 128; i++) zero &= proj[i] == 0;
    CHECK(zero, "attn.proj must stay zero (_zero_init) under OrthoInit");
    gpt_free(&m);
    init_model(&m, 1, 0); // #1435/#2005: no scale on bigram.proj
    double e_b1 = gram_error(param(&m, "bigram.proj.weight"), 128, 64, 1);
    CHECK(e_b1 < ORTHO_TOL, "unscaled bigram.proj Gram error %.3g", e_b1);
    gpt_free(&m);
}

TEST(init_default_is_kaiming_uniform_and_zero_bigram_proj) {
    GPT m;
    init_model(&m, 0, 1);
    const real *q = param(&m, "blocks.0.attn.c_q.weight"), *bp = param(&m, "bigram.proj.weight");
    double bound = 1 / sqrt(128.0), big = 0;
    for (int i = 0; i < 128 * 128; i++) big = worse_of(big, fabs(q[i]));
    CHECK(big <= bound * 1.004 && big > 0.9 * bound, "c_q max %.4g, bound %.4g", big, bound); // bf16 may round up
    CHECK(gram_error(q, 128, 128, 1) > 0.1, "kaiming-uniform c_q should not be orthogonal");
    int zero = 1;
    for (int i = 0; i < 128 * 64; i++) zero &= bp[i] == 0;
    CHECK(zero, "bigram.proj is zero without ORTHO_INIT (the records' constructor)");
    CHECK(param(&m, "bigram.scale")[0] == (real)0.05f, "bigram.scale init %g", (double)param(&m, "bigram.scale")[0]);
    gpt_free(&m);
}
