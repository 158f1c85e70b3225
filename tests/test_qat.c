// Late QAT: #638's int6 fake quantization rule on hand-worked rows, and the straight-through bracket
// (the forward sees quantized weights, the float weights come back untouched for the update).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model/gpt.h"
#include "ops/ops.h"
#include "optim/qat.h"
#include "test.h"
#include "util.h"

TEST(qat_fake_quantize_matches_the_rule) {
    // row 0: amax 1.55 -> s = 0.05; row 1: amax 0.02 -> s floored at 1/31; row 2: -4 -> -31 s, 1 -> round(7.75) = 8
    real w[3][4] = {{0.5f, -0.2f, 0.04f, 1.55f}, {0.01f, -0.02f, 0, 0}, {-4, 1, 0, 0}};
    const double want[3][4] = {{0.5, -0.2, 0.05, 1.55}, {0, -1 / 31.0, 0, 0}, {-4, 8 * 4 / 31.0, 0, 0}};
    fake_quantize_rows(&w[0][0], 3, 4);
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++) CHECK_CLOSE(w[r][k], want[r][k], 1e-6, 1e-6, "fake-quantized value");
}

TEST(qat_bracket_quantizes_matrices_and_restores_them) {
    Config c;
    config_defaults(&c);
    c.num_layers = 2, c.model_dim = 32, c.num_heads = 2, c.num_kv_heads = 1, c.vocab_size = 40, c.tie_embeddings = 0;
    GPTConfig g = gpt_config_from(&c);
    GPT m;
    gpt_init(&m, &g);
    gpt_init_weights(&m, 3);
    Rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] = (real)(0.3 * rng_normal(&r));
    real *before = xmalloc(sizeof(real) * m.n_params);
    memcpy(before, m.params, sizeof(real) * m.n_params);
    QatState q = {0};
    qat_begin(&q, &m);
    const TensorView *fc = tensor_list_find(&m.param_list, "blocks.0.mlp.fc.weight");
    const TensorView *head = tensor_list_find(&m.param_list, "lm_head.weight");
    const TensorView *gain = tensor_list_find(&m.param_list, "blocks.0.attn.q_gain");
    real copy[64];
    memcpy(copy, before + (fc->data - m.params), sizeof copy);
    fake_quantize_rows(copy, 2, 32);
    CHECK(!memcmp(copy, fc->data, sizeof copy), "mlp.fc is not its fake-quantized copy inside the bracket");
    CHECK(head->data[0] != before[head->data - m.params] || head->data[1] != before[head->data - m.params + 1],
          "an untied lm_head is a linear layer too");
    CHECK(!memcmp(gain->data, before + (gain->data - m.params), sizeof(real) * 2), "q_gain is not a linear weight");
    qat_end(&q, &m);
    CHECK(!memcmp(before, m.params, sizeof(real) * m.n_params), "the float weights must come back bit for bit");
    qat_free(&q);
    free(before);
    gpt_free(&m);
}
