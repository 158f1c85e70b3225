// The learning-rate multiplier in its three forms (train_gpt.py's WARMDOWN_ITERS by steps and by
// wallclock, the records' WARMDOWN_FRAC with MIN_LR) and the weight-decay settings, against values
// worked out by hand from the reference formulas.
#include "config.h"
#include "optim/optim.h"
#include "test.h"

TEST(lr_schedule_warmdown_iters) {
    Config c;
    config_defaults(&c);
    c.max_wallclock_seconds = 0; // iterations 20000, warmdown 1200: linear from step 18800
    CHECK_CLOSE(lr_schedule(&c, 18799, 0), 1.0, 0, 1e-12, "before the warmdown");
    CHECK_CLOSE(lr_schedule(&c, 19400, 0), 0.5, 0, 1e-12, "halfway");
    c.max_wallclock_seconds = 600, c.warmdown_iters = 100; // 573 ms/step: 57.3 s of warmdown, 27 s left
    CHECK_CLOSE(lr_schedule(&c, 1000, 540000), 1.0, 0, 1e-12, "60 s left of 54 s warmdown");
    CHECK_CLOSE(lr_schedule(&c, 1000, 573000), 27000.0 / 57300.0, 0, 1e-12, "wallclock warmdown");
}

TEST(lr_schedule_warmdown_frac_and_min_lr) {
    Config c;
    config_defaults(&c);
    c.warmdown_frac = 0.72; // #2005, 600 s budget
    CHECK_CLOSE(lr_schedule(&c, 5, 168000), 1.0, 0, 1e-12, "28%% of the run");
    CHECK_CLOSE(lr_schedule(&c, 5, 300000), 0.5 / 0.72, 0, 1e-12, "half the run");
    c.min_lr = 0.1;
    CHECK_CLOSE(lr_schedule(&c, 5, 599000), 0.1, 0, 1e-12, "floored at MIN_LR");
    c.max_wallclock_seconds = 0, c.iterations = 1000, c.min_lr = 0; // by steps without a wallclock cap
    CHECK_CLOSE(lr_schedule(&c, 640, 1e9), 0.36 / 0.72, 0, 1e-12, "step 640 of 1000");
}

TEST(embed_wd_defaults_to_adam_wd) {
    Config c;
    config_defaults(&c);
    c.adam_wd = 0.04;
    CHECK(optim_settings(&c).embed_wd == 0.04, "EMBED_WD=-1 must follow ADAM_WD");
    c.embed_wd = 0.085;
    OptimSettings o = optim_settings(&c);
    CHECK(o.embed_wd == 0.085 && o.adam_wd == 0.04, "EMBED_WD=0.085: embed %g scalar %g", o.embed_wd, o.adam_wd);
}
