// Commands that read a model back: `pgolf eval`, `pgolf inspect`, `pgolf info`, `pgolf sample`.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "data/shard.h"
#include "data/spm_tools.h"
#include "data/spm.h"
#include "eval/eval_final.h"
#include "eval/eval_val.h"
#include "export/artifact.h"
#include "io/bytes.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/torch_file.h"
#include "model/gpt.h"
#include "presets.h"
#include "util.h"

// The artifact comes from --artifact/ARTIFACT or the first positional argument.
static const char *artifact_arg(const Config *c, int npos, char **argv, const char *cmd) {
    if (npos > 0) return argv[1];
    if (c->artifact[0]) return c->artifact;
    die("`pgolf %s` needs an artifact: pgolf %s FILE (or --artifact FILE)", cmd, cmd);
}

// MODEL_TORCH_PACKED: a compressed torch.save file, as the scripts write their artifacts.
typedef enum { MODEL_ARTIFACT, MODEL_WEIGHTS, MODEL_TORCH, MODEL_TORCH_PACKED } ModelFileKind;

// The model in FILE, as `pgolf eval` and `pgolf sample` read it: an artifact (dequantized), weights in
// safetensors such as final_model.safetensors (the model before quantization), or a torch.save file of
// train_gpt.py's or a record's (io/torch_file.h: final_model.pt, or an export, dequantized as its script
// does). The options stored with a pgolf file override the model options; a file without them (a
// state_dict PyTorch saved, either format) takes those set here.
static ModelFileKind load_model_file(Config *c, const char *path, GPT *m) {
    uint8_t head[9] = {0};
    FILE *f = xfopen(path, "rb");
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    TorchFileKind torch = torch_file_sniff(path);
    ModelFileKind kind = got >= 8 && !memcmp(head, ARTIFACT_MAGIC, 8) ? MODEL_ARTIFACT
                         : torch == TORCH_ZIP                        ? MODEL_TORCH
                         : torch != TORCH_NONE                       ? MODEL_TORCH_PACKED
                                                                     : MODEL_WEIGHTS;
    if (kind == MODEL_WEIGHTS && !(got == 9 && head[8] == '{'))
        die("%s is neither a pgolf artifact (magic %s), a safetensors file nor a torch.save file", path, ARTIFACT_MAGIC);
    Artifact *a = kind == MODEL_ARTIFACT ? artifact_load(path) : NULL;
    char *stored = a ? xstrdup(artifact_config_text(a)) : kind == MODEL_WEIGHTS ? st_read_meta(path, "pgolf_config") : NULL;
    if (stored) config_apply_text(c, stored, path, CG_MODEL);
    GPTConfig g = gpt_config_from(c);
    gpt_init(m, &g);
    if (a) cli_load_artifact_weights(a, m);
    else checkpoint_load(path, m, NULL, NULL);
    artifact_free(a);
    free(stored);
    return kind;
}

int cmd_eval(int argc, char **argv) {
    Config c;
    int npos = cli_setup(&c, argc, argv, CG_DATA | CG_EVAL | CG_RUN | CG_TRAIN | CG_MODEL, "eval",
                         "Evaluate an artifact, safetensors weights or the torch.save files of train_gpt.py and the "
                         "records (final_model.pt, their .ptz) on DATA_PATH's validation shards (val_loss, val_bpb).\n"
                         "The model options apply only to a file saved without pgolf_config (PyTorch's).",
                         1);
    const char *path = artifact_arg(&c, npos, argv, "eval");
    GPT m;
    ModelFileKind kind = load_model_file(&c, path, &m);
    static const char *FROM[] = {[FROM_DEFAULT] = "default", [FROM_STORED] = "stored with the model", [FROM_USER] = "set here"};
    log0("train_seq_len:%lld (%s)", (long long)c.train_seq_len, FROM[config_from(&c, "TRAIN_SEQ_LEN")]);
    ByteTables bt = byte_tables_load(c.tokenizer_path, c.vocab_size);
    char pattern[4096];
    snprintf(pattern, sizeof pattern, "%s/fineweb_val_*.bin", c.data_path);
    int64_t n;
    uint16_t *val = load_validation_tokens(pattern, c.train_seq_len, c.val_max_tokens, &n);
    tokens_check_vocab(val, n, c.vocab_size, pattern);
    double t0 = now_seconds();
    EvalReport r;
    eval_final(&m, &c, val, n, &bt, c.train_batch_tokens / c.grad_accum_steps, &r);
    double loss = r.val_loss, bpb = r.val_bpb;
    long long bytes = file_size(path), code = pgolf_code_bytes();
    printf("final_eval val_loss:%.4f val_bpb:%.4f eval_time:%.0fms tokens:%lld\n", loss, bpb, 1000 * (now_seconds() - t0),
           (long long)(n - 1));
    printf("final_eval_exact val_loss:%.8f val_bpb:%.8f\n", loss, bpb);
    if (c.ppm_order > 0) printf("final_eval_ppm_exact val_loss:%.8f val_bpb:%.8f\n", r.ppm_val_loss, r.ppm_val_bpb);
    if (kind == MODEL_ARTIFACT)
        printf("artifact_bytes:%lld code_bytes:%lld total_bytes:%lld limit:%lld %s\n", bytes, code, bytes + code,
               ARTIFACT_LIMIT_BYTES, bytes + code <= ARTIFACT_LIMIT_BYTES ? "fits" : "OVER_LIMIT");
    else if (kind == MODEL_TORCH_PACKED) // the scripts compress their artifacts only
        printf("artifact_bytes:%lld (a compressed torch.save file, as train_gpt.py and the records write: its submission "
               "adds the script's code bytes)\n", bytes);
    else
        printf("weights_bytes:%lld (%s, not an artifact)\n", bytes,
               kind == MODEL_TORCH ? "an uncompressed torch.save file" : "unquantized weights");
    free(val);
    byte_tables_free(&bt);
    gpt_free(&m);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    Config c;
    int npos = cli_setup(&c, argc, argv, CG_EXPORT, "inspect",
                         "Print an artifact's format, configuration, tensor table and bytes against 16,000,000\n"
                         "(or what a torch.save file of train_gpt.py's or a record's holds).",
                         1);
    const char *path = artifact_arg(&c, npos, argv, "inspect");
    if (torch_file_sniff(path) != TORCH_NONE) { // train_gpt.py's or a record's
        torch_file_print_summary(path, stdout);
        return 0;
    }
    Artifact *a = artifact_load(path);
    artifact_print_summary(a, stdout);
    long long bytes = file_size(path), code = pgolf_code_bytes();
    printf("artifact_bytes:%lld code_bytes:%lld total_bytes:%lld limit:%lld %s\n", bytes, code, bytes + code,
           ARTIFACT_LIMIT_BYTES, bytes + code <= ARTIFACT_LIMIT_BYTES ? "fits" : "OVER_LIMIT");
    printf("code bytes = the size of the source bundle `make bundle` writes: every file that builds this binary "
           "(src/**/*.c and *.h but the other backend's ops, its .cu files for pgolf-cuda, Makefile, scripts/bundle.sh: "
           "%lld bytes) as an xz'd tar behind a 3-line sh header that unpacks and builds them\n",
           pgolf_source_bytes());
    artifact_free(a);
    return 0;
}

int cmd_info(int argc, char **argv) {
    Config c;
    cli_setup(&c, argc, argv, CG_MODEL | CG_TRAIN | CG_DATA | CG_RUN, "info",
              "Print the model configuration, its tensors and the parameter count.", 0);
    GPTConfig g = gpt_config_from(&c);
    GPT m;
    gpt_init(&m, &g);
    char *text = config_text(&c, CG_MODEL | CG_DATA | CG_TRAIN | CG_EVAL); // the full configuration
    fputs(text, stdout);
    free(text);
    static const char *GROUP_NAMES[] = {"muon", "adam_scalar", "adam_embed", "adam_head", "unused"};
    for (int i = 0; i < m.param_list.count; i++) {
        const TensorView *t = &m.param_list.items[i];
        char shape[64];
        printf("  %-32s %-14s %s\n", t->name, shape_str(shape, sizeof shape, t->ndim, t->shape), GROUP_NAMES[m.groups[i]]);
    }
    printf("model_params:%lld\n", (long long)m.n_params);
    int64_t T = c.train_seq_len, micro = c.grad_accum_steps > 0 ? c.train_batch_tokens / c.grad_accum_steps : 0;
    if (T > 0 && micro >= T) { // what a training micro-step's activations take here, and its passes (MAX_PASS_TOKENS)
        int per = gpt_pass_seqs((int)(micro / T), (int)T, gpt_pass_token_cap(&g, c.max_pass_tokens, PASS_TRAIN));
        printf("micro_batch_tokens:%lld activations:%.2fGB passes:%lld tokens_per_pass:%lld (%s)\n", (long long)micro,
               gpt_activation_bytes(&g, micro) / 1e9, (long long)(micro / (per * T)), (long long)(per * T), ops_backend());
    }
    const Preset *p = *c.preset ? preset_find(c.preset) : NULL;
    if (p) printf("preset:%s reference_model_params:%lld (%s)\n", p->name, (long long)p->reference_params, p->summary);
    gpt_free(&m);
    return 0;
}

// Prompt text -> ids with Debian's spm_encode. An empty prompt starts from BOS.
typedef struct {
    int32_t *ids;
    int n, cap;
} Prompt;

static void append_prompt_ids(const int32_t *ids, int64_t n, void *ctx) {
    Prompt *p = ctx;
    for (int64_t i = 0; i < n && p->n < p->cap; i++) p->ids[p->n++] = ids[i];
}

static int encode_prompt(const char *model, const char *prompt, int32_t *ids, int cap) {
    Prompt p = {ids, 1, cap};
    ids[0] = 1;
    if (!prompt[0]) return 1;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/pgolf_prompt_XXXXXX", temp_dir());
    int fd = mkstemp(tmp);
    if (fd < 0) die("cannot create a temporary file for the prompt under %s: %s", temp_dir(), strerror(errno));
    remove_at_exit(tmp);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s\n", prompt);
    fclose(f);
    spm_encode_file(model, tmp, append_prompt_ids, &p);
    remove(tmp);
    keep_at_exit(tmp);
    return p.n;
}

int cmd_sample(int argc, char **argv) {
    Config c;
    int npos = cli_setup(&c, argc, argv, CG_DATA | CG_EVAL | CG_MODEL | CG_TRAIN | CG_RUN, "sample",
                         "Greedy text generation from an artifact (or INIT_CHECKPOINT weights) for a quick look.", 1);
    if (!npos && !c.artifact[0] && !c.init_checkpoint[0])
        die("`pgolf sample` needs an artifact (pgolf sample FILE) or --init-checkpoint FILE");
    GPT m; // (INIT_CHECKPOINT's weights are a safetensors file as any other)
    load_model_file(&c, npos || c.artifact[0] ? artifact_arg(&c, npos, argv, "sample") : c.init_checkpoint, &m);
    SpmModel *sp = spm_load(c.tokenizer_path);
    spm_check_vocab(sp, c.vocab_size, c.tokenizer_path);
    int cap = (int)c.train_seq_len;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    int n = encode_prompt(c.tokenizer_path, c.prompt, ids, cap);
    real *z = xmalloc(sizeof(real) * (size_t)c.vocab_size);
    for (int64_t k = 0; k < c.sample_tokens && n < cap; k++) {
        gpt_forward_scored(&m, ids, NULL, 1, n, n - 1); // the head at the last position only
        gpt_logits_row(&m, 0, z);
        int best = 0;
        for (int v = 1; v < c.vocab_size; v++)
            if (z[v] > z[best]) best = v;
        ids[n++] = best;
    }
    char *text = spm_decode(sp, ids, n);
    printf("%s\n", text);
    free(text);
    free(ids);
    free(z);
    spm_free(sp);
    gpt_free(&m);
    return 0;
}
