// Presets: each sets the seed's stack, its parameter count equals the PyTorch reference model's, and it
// trains on the built-in data (shrunk in width and steps, every technique kept) with finite, falling loss.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model/gpt.h"
#include "presets.h"
#include "test.h"
#include "util.h"

static Config preset_config(const char *name) {
    Config c;
    config_defaults(&c);
    char a0[] = "pgolf", a1[] = "--preset", a2[64];
    snprintf(a2, sizeof a2, "%s", name);
    char *argv[] = {a0, a1, a2, NULL};
    config_load(&c, 3, argv, CG_MODEL | CG_TRAIN | CG_EVAL, "test");
    return c;
}

// The counts of the reference models, summed over their state_dict shapes from the seed PRs' code:
// #413 (refs/pull/413, no logs: computed), #638 (equal to its submission.json num_params 27137223), #1435
// and #2005 (refs/pull/1435 and /2005: model_params:32665181 and :35989592 in their three train logs each).
TEST(preset_parameter_counts_match_the_references) {
    const struct {
        const char *name;
        int64_t params;
    } want[] = {{"pr413-control", 17650249}, {"pr413-ga", 17687185}, {"pr413-vr", 17650267}, {"pr413-gavr", 17687203},
                {"pr638", 27137223}, {"pr1435", 32665181}, {"pr2005", 35989592}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        Config c = preset_config(want[i].name);
        GPTConfig g = gpt_config_from(&c);
        int64_t n = gpt_count_params(&g);
        CHECK(n == want[i].params, "%s: %lld parameters, the reference has %lld", want[i].name, (long long)n,
              (long long)want[i].params);
        CHECK(preset_find(want[i].name)->reference_params == want[i].params, "%s: table disagrees", want[i].name);
    }
    for (int i = 0; preset_at(i); i++) { // every preset is covered above
        int found = 0;
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) found |= !strcmp(want[k].name, preset_at(i)->name);
        CHECK(found, "preset %s has no reference count in this test", preset_at(i)->name);
    }
}

TEST(preset_environment_overrides_it) {
    setenv("NUM_LAYERS", "5", 1);
    Config c = preset_config("pr638");
    unsetenv("NUM_LAYERS");
    CHECK(c.num_layers == 5 && c.mlp_mult == 3 && c.xsa_last_n == 11, "layers %lld mlp %lld", (long long)c.num_layers,
          (long long)c.mlp_mult);
    free(c.preset);
}

static double loss_at(const char *out, int step, int total) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "step:%d/%d train_loss:", step, total);
    const char *p = strstr(out, prefix);
    return p ? atof(p + strlen(prefix)) : NAN;
}

// On the built-in data: the KJV corpus through `pgolf prep` (its own tokenizer, vocabulary 1024).
TEST(presets_train_with_decreasing_loss) {
    const char *kjv = test_tmpdir("preset_kjv");
    char data[600], tokenizer[600], cmd[4096], *out;
    snprintf(data, sizeof data, "%s/data", kjv);
    snprintf(tokenizer, sizeof tokenizer, "%s/kjv.model", kjv);
    snprintf(cmd, sizeof cmd, "env DATA_PATH=%s TOKENIZER_PATH=%s VOCAB_SIZE=1024 ./pgolf prep", data, tokenizer);
    int prep_rc = test_run(cmd, &out);
    CHECK(prep_rc == 0, "prep failed:\n%s", out);
    free(out);
    for (int i = 0; preset_at(i) && prep_rc == 0; i++) {
        const Preset *p = preset_at(i);
        char dir[512];
        snprintf(dir, sizeof dir, "%s", test_tmpdir(p->name));
        // narrower (64 wide, 4 heads of 16 so partial RoPE 16 still fits) and short, every switch kept
        snprintf(cmd, sizeof cmd,
                 "env DATA_PATH=%s TOKENIZER_PATH=%s OUT_DIR=%s RUN_ID=p VOCAB_SIZE=1024 "
                 "MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 TRAIN_SEQ_LEN=64 EVAL_SEQ_LEN=64 EVAL_STRIDE=32 "
                 "TRAIN_BATCH_TOKENS=2048 GRAD_ACCUM_STEPS=1 ITERATIONS=10 WARMDOWN_ITERS=4 WARMUP_STEPS=1 "
                 "MAX_WALLCLOCK_SECONDS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=1024 TRAIN_LOG_EVERY=1 NUM_THREADS=2 "
                 "GPTQ_CALIBRATION_BATCHES=2 "
                 "./pgolf train --preset %s",
                 data, tokenizer, dir, p->name);
        int rc = test_run(cmd, &out);
        double first = loss_at(out, 1, 10), last = loss_at(out, 10, 10);
        CHECK(rc == 0 && isfinite(first) && isfinite(last) && last < first - 0.1,
              "%s: rc %d, train_loss %.4f -> %.4f\n%s", p->name, rc, first, last, rc ? out : "");
        printf("    %-14s train_loss %.4f -> %.4f\n", p->name, first, last);
        free(out);
    }
}
