#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presets.h"
#include "tensor.h"
#include "util.h"

typedef enum { K_INT, K_REAL, K_STR, K_BOOL } Kind;

typedef struct {
    Kind kind;
    const char *env;
    const char *def;
    unsigned groups;
    const char *help;
    size_t offset;
} Option;

static const Option OPTIONS[] = {
#define CONFIG_X(kind, field, env, def, groups, help) {K_##kind, env, def, groups, help, offsetof(Config, field)},
    CONFIG_TABLE(CONFIG_X)
#undef CONFIG_X
};

static const Option *find_option(const char *env) {
    for (int i = 0; i < CONFIG_N_OPTIONS; i++)
        if (!strcmp(OPTIONS[i].env, env)) return &OPTIONS[i];
    return NULL;
}

// NUM_LAYERS -> num-layers
static void flag_name(const Option *o, char *out, size_t n) {
    size_t i = 0;
    for (; o->env[i] && i + 1 < n; i++) out[i] = o->env[i] == '_' ? '-' : (char)tolower((unsigned char)o->env[i]);
    out[i] = 0;
}

static void set_value(Config *c, const Option *o, const char *value, const char *source) {
    void *field = (char *)c + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case K_INT: {
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) die("%s: %s=%s is not an integer", source, o->env, value);
        *(int64_t *)field = v;
        break;
    }
    case K_REAL: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) die("%s: %s=%s is not a number", source, o->env, value);
        *(double *)field = v;
        break;
    }
    case K_BOOL: {
        if (!strcmp(value, "1") || !strcmp(value, "true")) *(int *)field = 1;
        else if (!strcmp(value, "0") || !strcmp(value, "false")) *(int *)field = 0;
        else die("%s: %s=%s must be 0 or 1", source, o->env, value);
        break;
    }
    case K_STR: {
        char **s = (char **)field;
        free(*s);
        *s = xstrdup(value);
        break;
    }
    }
}

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CONFIG_N_OPTIONS; i++) set_value(c, &OPTIONS[i], OPTIONS[i].def, "default");
}

// Short flags the evaluation methods are known by (`pgolf eval FILE --stride 64 --ttt 1 --ppm 2`).
static const struct {
    const char *flag, *env;
} ALIASES[] = {{"stride", "EVAL_STRIDE"}, {"ttt", "TTT_ENABLED"}, {"ppm", "PPM_ORDER"}};

// config_apply_text's loop; `from` is what the options it sets count as (a preset's are the user's).
static void apply_text(Config *c, const char *text, const char *source, unsigned forced_groups, ConfigFrom from) {
    char *copy = xstrdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) die("%s: malformed configuration line '%s'", source, line);
        *eq = 0;
        const Option *o = find_option(line);
        if (!o) die("%s: unknown configuration key %s", source, line);
        if ((o->groups & CG_LOCAL) || (!(o->groups & forced_groups) && c->from[o - OPTIONS] == FROM_USER)) continue;
        set_value(c, o, eq + 1, source);
        c->from[o - OPTIONS] = (unsigned char)from;
    }
    free(copy);
}

// PRESET (environment or --preset, the flag winning) replaces the defaults before anything else is read.
static void apply_preset(Config *c, int argc, char **argv) {
    const char *name = getenv("PRESET");
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--preset=", 9)) name = argv[i] + 9;
        else if (!strcmp(argv[i], "--preset") && i + 1 < argc) name = argv[i + 1];
    }
    if (!name || !*name) return;
    const Preset *p = preset_find(name);
    if (!p) preset_die_unknown(name);
    char source[96];
    snprintf(source, sizeof source, "preset %s", p->name);
    apply_text(c, p->settings, source, ~0u, FROM_USER);
}

int config_load(Config *c, int argc, char **argv, unsigned groups, const char *cmd) {
    if (groups & CG_MODEL) apply_preset(c, argc, argv);
    for (int i = 0; i < CONFIG_N_OPTIONS; i++) {
        const char *v = getenv(OPTIONS[i].env);
        if (!v) continue;
        set_value(c, &OPTIONS[i], v, "environment");
        c->from[i] = FROM_USER;
    }
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || !strcmp(arg, "--")) {
            argv[out++] = argv[i];
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const Option *o = NULL;
        char fname[64];
        for (int k = 0; k < CONFIG_N_OPTIONS && !o; k++) {
            flag_name(&OPTIONS[k], fname, sizeof fname);
            if (strlen(fname) == len && !strncmp(fname, name, len)) o = &OPTIONS[k];
            for (size_t a = 0; a < sizeof ALIASES / sizeof *ALIASES && !o; a++)
                if (strlen(ALIASES[a].flag) == len && !strncmp(ALIASES[a].flag, name, len) && !strcmp(ALIASES[a].env, OPTIONS[k].env))
                    o = &OPTIONS[k];
        }
        if (!o) {
            // keep flags the command handles itself (e.g. --help, --preset); it rejects the rest
            argv[out++] = argv[i];
            continue;
        }
        if (!(o->groups & groups)) die("--%.*s is not an option of `pgolf %s` (see pgolf %s --help)", (int)len, name, cmd, cmd);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) die("--%.*s needs a value", (int)len, name);
            value = argv[++i];
        }
        set_value(c, o, value, "flag");
        c->from[o - OPTIONS] = FROM_USER;
    }
    argv[out] = NULL;
    return out;
}

void config_help(const char *cmd, const char *summary, unsigned groups) {
    printf("usage: pgolf %s [options]\n%s\n\noptions (flag / environment variable, default):\n", cmd, summary);
    char fname[64];
    for (int i = 0; i < CONFIG_N_OPTIONS; i++) {
        const Option *o = &OPTIONS[i];
        if (!(o->groups & groups)) continue;
        flag_name(o, fname, sizeof fname);
        printf("  --%-28s %-28s [%s]\n      %s\n", fname, o->env, o->def, o->help);
    }
}

static int format_value(const Config *c, const Option *o, char *out, size_t n) {
    const void *field = (const char *)c + o->offset;
    switch (o->kind) {
    case K_INT: return snprintf(out, n, "%s=%lld", o->env, (long long)*(const int64_t *)field);
    case K_REAL: return snprintf(out, n, "%s=%.17g", o->env, *(const double *)field);
    case K_BOOL: return snprintf(out, n, "%s=%d", o->env, *(const int *)field);
    case K_STR: return snprintf(out, n, "%s=%s", o->env, *(char *const *)field);
    }
    return 0;
}

void config_print(const Config *c, unsigned groups) {
    char line[4096];
    for (int i = 0; i < CONFIG_N_OPTIONS; i++) {
        if (!(OPTIONS[i].groups & groups)) continue;
        format_value(c, &OPTIONS[i], line, sizeof line);
        log_file_only("%s", line);
    }
}

char *config_text(const Config *c, unsigned groups) {
    size_t cap = 256, len = 0;
    char *out = xmalloc(cap), line[4096];
    out[0] = 0;
    for (int i = 0; i < CONFIG_N_OPTIONS; i++) {
        if (!(OPTIONS[i].groups & groups)) continue;
        int n = format_value(c, &OPTIONS[i], line, sizeof line);
        while (len + (size_t)n + 2 > cap) out = xrealloc(out, cap *= 2);
        memcpy(out + len, line, (size_t)n);
        len += (size_t)n;
        out[len++] = '\n';
        out[len] = 0;
    }
    return out;
}

void config_apply_text(Config *c, const char *text, const char *source, unsigned forced_groups) {
    apply_text(c, text, source, forced_groups, FROM_STORED);
}

void config_log_changes(const Config *c, const char *text, const char *what) {
    char *copy = xstrdup(text), *save = NULL, now[4096];
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        const Option *o = eq ? (*eq = 0, find_option(line)) : NULL;
        if (!o || (o->groups & CG_LOCAL)) continue;
        format_value(c, o, now, sizeof now);
        if (strcmp(now + (eq - line) + 1, eq + 1)) log0("%s: %s (the checkpoint's run: %s)", what, now, eq + 1);
    }
    free(copy);
}

ConfigFrom config_from(const Config *c, const char *env) {
    const Option *o = find_option(env);
    if (!o) die("config_from: no option %s", env);
    return (ConfigFrom)c->from[o - OPTIONS];
}

void config_validate_model(const Config *c) {
    tensor_set_control_patterns(c->control_tensor_name_patterns); // one process, one model configuration
    if (c->vocab_size <= 0 || c->vocab_size > 65536) die("VOCAB_SIZE=%lld must be in 1..65536 (tokens are uint16)", (long long)c->vocab_size);
    if (c->num_layers <= 0) die("NUM_LAYERS=%lld must be positive", (long long)c->num_layers);
    if (c->model_dim <= 0 || c->num_heads <= 0 || c->num_kv_heads <= 0) die("MODEL_DIM, NUM_HEADS and NUM_KV_HEADS must be positive");
    if (c->model_dim % c->num_heads) die("MODEL_DIM=%lld must be divisible by NUM_HEADS=%lld", (long long)c->model_dim, (long long)c->num_heads);
    if (c->num_heads % c->num_kv_heads) die("NUM_HEADS=%lld must be divisible by NUM_KV_HEADS=%lld", (long long)c->num_heads, (long long)c->num_kv_heads);
    if ((c->model_dim / c->num_heads) % 2) die("head_dim=%lld must be even for RoPE", (long long)(c->model_dim / c->num_heads));
    if (c->mlp_mult <= 0) die("MLP_MULT=%lld must be positive", (long long)c->mlp_mult);
    if (c->rope_dims < 0 || c->rope_dims % 2 || c->rope_dims > c->model_dim / c->num_heads)
        die("ROPE_DIMS=%lld must be even and at most head_dim=%lld", (long long)c->rope_dims, (long long)(c->model_dim / c->num_heads));
    if (c->xsa_last_n < 0 || c->xsa_last_n > c->num_layers)
        die("XSA_LAST_N=%lld must be in 0..NUM_LAYERS=%lld", (long long)c->xsa_last_n, (long long)c->num_layers);
    if (c->xsa_last_n > 0 && c->model_dim / c->num_heads > 512) die("XSA supports head_dim up to 512");
    if (strcmp(c->gated_attn, "none") && strcmp(c->gated_attn, "headwise") && strcmp(c->gated_attn, "elementwise"))
        die("GATED_ATTN=%s must be none, headwise or elementwise", c->gated_attn);
    if (strcmp(c->gated_attn, "none") && c->gated_attention)
        die("GATED_ATTN=%s (#2005, gate rows in c_q) and GATED_ATTENTION=1 (#413, attn_gate) exclude each other", c->gated_attn);
    // evaluation settings too, so a bad one stops a run before training rather than after
    if (strcmp(c->ttt_optimizer, "sgd") && strcmp(c->ttt_optimizer, "adam"))
        die("TTT_OPTIMIZER=%s is not sgd or adam", c->ttt_optimizer);
    if (strcmp(c->ttt_lr_schedule, "constant") && strcmp(c->ttt_lr_schedule, "cosine"))
        die("TTT_LR_SCHEDULE=%s is not constant or cosine", c->ttt_lr_schedule);
    if (strcmp(c->value_residual_form, "scalar") && strcmp(c->value_residual_form, "sigmoid"))
        die("VALUE_RESIDUAL_FORM=%s must be scalar or sigmoid", c->value_residual_form);
    if (c->bigram_vocab_size == 1 || c->bigram_vocab_size < 0 || (c->bigram_vocab_size && c->bigram_dim <= 0))
        die("BIGRAM_VOCAB_SIZE=%lld must be 0 (off) or at least 2, with BIGRAM_DIM > 0", (long long)c->bigram_vocab_size);
    if (c->parallel_residual_start < -1 || c->parallel_residual_start >= c->num_layers)
        die("PARALLEL_RESIDUAL_START=%lld must be -1 (off) or a layer in 0..%lld", (long long)c->parallel_residual_start,
            (long long)c->num_layers - 1);
    if (c->parallel_start_layer < 0 || c->parallel_start_layer >= c->num_layers)
        die("PARALLEL_START_LAYER=%lld must be 0 (off) or a layer in 1..%lld", (long long)c->parallel_start_layer,
            (long long)c->num_layers - 1);
    if (c->parallel_start_layer > 0 && c->parallel_residual_start >= 0)
        die("PARALLEL_START_LAYER (#1435's lanes) and PARALLEL_RESIDUAL_START (#2005's GPT-J blocks) exclude each other");
    if (c->num_loops < 1) die("NUM_LOOPS=%lld must be at least 1", (long long)c->num_loops);
    if (c->negative_slope < 0) die("NEGATIVE_SLOPE must not be negative, got %g", c->negative_slope);
    if (c->logit_softcap <= 0) die("LOGIT_SOFTCAP must be positive, got %g", c->logit_softcap);
}

void config_validate_train(const Config *c) {
    config_validate_model(c);
    if (c->train_seq_len <= 0) die("TRAIN_SEQ_LEN must be positive");
    if (c->grad_accum_steps <= 0) die("GRAD_ACCUM_STEPS must be positive");
    int64_t per_micro = c->train_batch_tokens / c->grad_accum_steps;
    if (c->train_batch_tokens % c->grad_accum_steps || per_micro % c->train_seq_len || per_micro <= 0)
        die("TRAIN_BATCH_TOKENS=%lld must split into GRAD_ACCUM_STEPS=%lld micro-batches of whole TRAIN_SEQ_LEN=%lld sequences",
            (long long)c->train_batch_tokens, (long long)c->grad_accum_steps, (long long)c->train_seq_len);
    if (c->iterations < 0 || c->warmup_steps < 0) die("ITERATIONS and WARMUP_STEPS must not be negative");
}
