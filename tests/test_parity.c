// Parity with the PyTorch reference (tests/ref_gpt.py, computed in float64): same weights and tokens
// give the same loss, gradients, and parameters after one and two Muon/Adam steps.
// Tolerances (fp32 against a float64 reference): loss 1e-5 relative; gradients and updated weights
// 2e-4 of the tensor's largest magnitude (fp32 sums over a few thousand terms).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/gpt.h"
#include "model/host_tables.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "test.h"
#include "util.h"

#define GRAD_TOL 2e-4
#define LOSS_RTOL 1e-5

typedef struct {
    Config c;
    int B;
    double step_momentum, lr_mul;
} Case;

static Case read_case(const char *dir) {
    Case k = {0};
    config_defaults(&k.c);
    char path[1024];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    size_t len;
    char *text = (char *)read_file(path, &len), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        if (!strcmp(line, "BATCH_SEQS")) k.B = atoi(eq + 1);
        else if (!strcmp(line, "STEP_MOMENTUM")) k.step_momentum = atof(eq + 1);
        else if (!strcmp(line, "LR_MUL")) k.lr_mul = atof(eq + 1);
        else {
            *eq = '=';
            config_apply_text(&k.c, line, path, ~0u);
        }
    }
    free(text);
    return k;
}

// max |a - b| over a tensor, relative to max |b|
static void compare_tensor(const char *what, const real *a, const StTensor *ref, size_t n) {
    if (!ref) {
        CHECK(0, "%s: missing in the reference file", what);
        return;
    }
    const float *b = ref->f;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = worse_of(worst, fabs((double)a[i] - b[i]));
    double rel = worst / fmax(scale, 1e-12);
    CHECK(rel <= GRAD_TOL, "%s: max diff %.3g, relative %.3g (scale %.3g)", what, worst, rel, scale);
}

static void compare_all(const GPT *m, const SafeTensors *exp, const char *prefix, int use_grads) {
    const TensorList *list = use_grads ? &m->grad_list : &m->param_list;
    char name[256];
    for (int i = 0; i < list->count; i++) {
        const TensorView *t = &list->items[i];
        snprintf(name, sizeof name, "%s.%s", prefix, t->name);
        compare_tensor(name, t->data, st_find(exp, name), (size_t)tensor_numel(t));
    }
}

static void parity_case(const char *name) {
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/gpt_%s", test_fixture_dir(), name);
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    if (file_size(path) < 0) {
        CHECK(0, "fixture %s missing: run `make test` (it runs tests/ref_gpt.py first)", path);
        return;
    }
    Case k = read_case(dir);
    int T = (int)k.c.train_seq_len, N = k.B * T;
    GPTConfig g = gpt_config_from(&k.c);
    GPT m;
    gpt_init(&m, &g);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    checkpoint_load(path, &m, NULL, NULL);
    snprintf(path, sizeof path, "%s/tokens.i32", dir);
    size_t len;
    int32_t *tok = (int32_t *)read_file(path, &len);
    CHECK(len == sizeof(int32_t) * (size_t)(N + 1), "tokens.i32 has %zu bytes, expected %d tokens", len, N + 1);
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    SafeTensors *exp = st_load(path);

    OptimState os;
    optim_init(&os, &m);
    OptimSettings o = optim_settings(&k.c);
    o.muon_momentum = k.step_momentum;
    const char *loss_names[] = {"loss", "loss2"}, *step_names[] = {"step1", "step2"};
    for (int s = 0; s < 2; s++) {
        gpt_zero_grad(&m);
        double loss = gpt_forward(&m, tok, tok + 1, k.B, T);
        const StTensor *ref = st_find(exp, loss_names[s]);
        CHECK(ref != NULL, "%s missing", loss_names[s]);
        if (ref) CHECK_CLOSE(loss, ref->f[0], 0, LOSS_RTOL, loss_names[s]);
        gpt_backward(&m, tok, 1);
        if (s == 0) compare_all(&m, exp, "grad", 1);
        optim_step(&os, &m, &o, k.lr_mul);
        compare_all(&m, exp, step_names[s], 0);
    }
    st_free(exp);
    optim_free(&os);
    free(tok);
    gpt_free(&m);
}

TEST(parity_torch_tied_gqa) { parity_case("tied"); }
TEST(parity_torch_untied_gqa) { parity_case("untied"); }
TEST(parity_torch_mha_softcap) { parity_case("mha"); }
TEST(parity_torch_techniques) { parity_case("techniques"); } // partial RoPE, LN scale, leaky^2, XSA, SmearGate, GA, #413 VR
TEST(parity_torch_gates_vr_sigmoid) { parity_case("gates_vr_sigmoid"); } // elementwise gates, #638 value residual, untied

// BigramHash ids against torch's int32 arithmetic (values printed by torch 1.13 for these tokens),
// including products that wrap: 36313 * 65535 exceeds 2^31.
TEST(bigram_hash_matches_torch_int32) {
    const int32_t x[8] = {0, 65535, 65534, 1, 40000, 1023, 7, 65535};
    const int32_t want4096[8] = {4095, 3899, 3973, 2591, 523, 1622, 3040, 733};
    const int32_t want1536[8] = {1535, 99, 963, 261, 728, 1422, 1140, 573};
    int32_t h[8];
    bigram_hash(h, x, 1, 8, 4096);
    for (int t = 0; t < 8; t++) CHECK(h[t] == want4096[t], "4096 buckets, t=%d: %d, torch %d", t, h[t], want4096[t]);
    bigram_hash(h, x, 1, 8, 1536);
    for (int t = 0; t < 8; t++) CHECK(h[t] == want1536[t], "1536 buckets, t=%d: %d, torch %d", t, h[t], want1536[t]);
    int32_t two[8]; // each row of a batch starts over
    bigram_hash(two, x, 2, 4, 4096);
    CHECK(two[4] == 4095 && two[5] == want4096[5], "second row: %d %d", two[4], two[5]);
}
TEST(parity_torch_recurrence_parallel) { parity_case("recurrence"); } // loops, GPT-J blocks, virtual skips
TEST(parity_torch_recurrence_lanes) { parity_case("lanes"); } // #1435: loops, two lanes, VE, bigram
TEST(parity_torch_pr413_optimizer) { parity_case("pr413_optimizer"); } // NorMuon, WD, attn_gate in Muon
