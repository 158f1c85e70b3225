// End-to-end tests through the ./pgolf binary: a tiny training run on synthetic shards, resume after a
// SIGKILL giving the same result as an uninterrupted run, and bad input failing with a clear message.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/commands.h"
#include "config.h"
#include "data/shard.h"
#include "data/spm.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "presets.h"
#include "test.h"
#include "util.h"

// The environment of a tiny run; `extra` is appended (later settings win).
static void tiny_env(char *out, size_t n, const char *data, const char *out_dir, const char *extra) {
    snprintf(out, n,
             "DATA_PATH=%s TOKENIZER_PATH=%s/tokenizers/fineweb_1024_bpe.model OUT_DIR=%s RUN_ID=t VOCAB_SIZE=1024 "
             "NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 TRAIN_SEQ_LEN=64 TRAIN_BATCH_TOKENS=1024 "
             "GRAD_ACCUM_STEPS=2 WARMDOWN_ITERS=10 MAX_WALLCLOCK_SECONDS=0 TRAIN_LOG_EVERY=1 NUM_THREADS=2 %s",
             data, test_shared_data(), out_dir, extra);
}

static double find_value(const char *text, const char *prefix, const char *key) {
    const char *line = strstr(text, prefix);
    if (!line) return NAN;
    const char *k = strstr(line, key);
    return k ? atof(k + strlen(key)) : NAN;
}

// An environment with the data's settings only, none of a run's (format arguments: DATA_PATH, the shared
// data folder).
#define BARE_ENV "env -u TRAIN_SEQ_LEN DATA_PATH=%s TOKENIZER_PATH=%s/tokenizers/fineweb_1024_bpe.model NUM_THREADS=2 "

// `pgolf eval DIR/FILE ARGS` in BARE_ENV: its final_eval_exact val_bpb (NaN if it failed); its output in
// *out (caller frees).
static double bare_eval(const char *data, const char *dir, const char *file, const char *args, char **out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, BARE_ENV "./pgolf eval %s/%s %s", data, test_shared_data(), dir, file, args);
    return test_run(cmd, out) == 0 ? find_value(*out, "final_eval_exact", "val_bpb:") : NAN;
}

TEST(cli_train_end_to_end) {
    const char *data = test_markov_dataset("e2e_data");
    char env[4096], cmd[8192], *out;
    char *out_dir = xstrdup(test_tmpdir("e2e_out"));
    tiny_env(env, sizeof env, data, out_dir, "ITERATIONS=40 WARMUP_STEPS=2 VAL_LOSS_EVERY=40");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0, "pgolf train exited %d:\n%s", rc, out);
    double v0 = find_value(out, "step:0/40 val_loss", "val_bpb:"), v1 = find_value(out, "step:40/40 val_loss", "val_bpb:");
    double rt = find_value(out, "final_int8_zlib_roundtrip_exact", "val_bpb:");
    CHECK(isfinite(v0) && isfinite(v1) && isfinite(rt), "missing val_bpb lines:\n%s", out);
    CHECK(v1 < v0 - 0.5, "val_bpb did not fall: %.4f -> %.4f", v0, v1);
    CHECK(fabs(rt - v1) < 0.02, "int8 round trip moved val_bpb from %.4f to %.4f", v1, rt);
    CHECK(strstr(out, "warmup_step:2/2") && strstr(out, "model_params:") && strstr(out, "Serialized model int8+zlib:"),
          "expected log lines missing:\n%s", out);
    const char *files[] = {"final_model.safetensors", "final_model.int8.ptz", "checkpoint.safetensors", "logs/t.txt"};
    for (int i = 0; i < 4; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", out_dir, files[i]);
        CHECK(file_size(p) > 0, "%s was not written", p);
    }
    free(out);
    // PyTorch's view of the weights: train_gpt.py's state_dict names and shapes, nothing else.
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tests/torch_load_check.py %s/final_model.safetensors --layers 2 --dim 64 --heads 4 "
             "--kv-heads 2 --vocab 1024 --resave %s/torch_state_dict.safetensors --torch-save %s/torch",
             out_dir, out_dir, out_dir);
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "torch_load_check: ok 22 tensors"), "PyTorch-side check failed (%d):\n%s", rc, out);
    free(out);
    snprintf(cmd, sizeof cmd, "env %s ./pgolf eval %s/final_model.int8.ptz", env, out_dir);
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && fabs(find_value(out, "final_eval_exact", "val_bpb:") - rt) < 1e-6,
          "pgolf eval disagrees with the training round trip (%.8f):\n%s", rt, out);
    free(out);
    // Without the run's settings the artifact's stored TRAIN_SEQ_LEN (64, not the default 1024) is the
    // length; a flag still overrides it.
    CHECK(fabs(bare_eval(data, out_dir, "final_model.int8.ptz", "", &out) - rt) < 1e-6 &&
              strstr(out, "train_seq_len:64 (stored with the model)"),
          "pgolf eval without the run's environment disagrees with the round trip (%.8f):\n%s", rt, out);
    free(out);
    CHECK(fabs(bare_eval(data, out_dir, "final_model.int8.ptz", "--train-seq-len 32", &out) - rt) > 1e-4 &&
              strstr(out, "train_seq_len:32 (set here)"),
          "pgolf eval --train-seq-len 32 did not evaluate at 32:\n%s", out);
    free(out);
    // The weights before quantization: pgolf's safetensors (its stored options) gives the last validation's
    // val_bpb; the same state_dict as PyTorch wrote it (no metadata) needs the model options, and agrees.
    double fp = bare_eval(data, out_dir, "final_model.safetensors", "", &out);
    CHECK(fabs(fp - v1) < 6e-5 && strstr(out, "weights_bytes:"),
          "pgolf eval of final_model.safetensors disagrees with the last validation (%.4f):\n%s", v1, out);
    free(out);
    // An export-only run from those weights needs no model options either (the checkpoint's fill them) and
    // writes the same artifact.
    snprintf(cmd, sizeof cmd, BARE_ENV "INIT_CHECKPOINT=%s/final_model.safetensors ITERATIONS=0 OUT_DIR=%s/export ./pgolf train",
             data, test_shared_data(), out_dir, out_dir);
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && fabs(find_value(out, "final_int8_zlib_roundtrip_exact", "val_bpb:") - rt) < 1e-6 &&
              strstr(out, "model options this run leaves unset are the checkpoint's") && !strstr(out, "warmup_step:"),
          "export-only run from final_model.safetensors (round trip %.8f):\n%s", rt, out);
    free(out);
    // `pgolf sample` reads the same weights as FILE or as INIT_CHECKPOINT (both by their stored options).
    char *text[2];
    snprintf(cmd, sizeof cmd, BARE_ENV "SAMPLE_TOKENS=8 ./pgolf sample %s/final_model.safetensors", data,
             test_shared_data(), out_dir);
    CHECK(test_run(cmd, &text[0]) == 0 && strlen(text[0]) > 1, "pgolf sample FILE failed:\n%s", text[0]);
    snprintf(cmd, sizeof cmd, BARE_ENV "SAMPLE_TOKENS=8 INIT_CHECKPOINT=%s/final_model.safetensors ./pgolf sample", data,
             test_shared_data(), out_dir);
    CHECK(test_run(cmd, &text[1]) == 0 && !strcmp(text[0], text[1]), "pgolf sample FILE and INIT_CHECKPOINT=FILE differ:\n%s\n%s",
          text[0], text[1]);
    free(text[0]);
    free(text[1]);
    const char *model = "--vocab-size 1024 --num-layers 2 --model-dim 64 --num-heads 4 --num-kv-heads 2 --train-seq-len 64";
    CHECK(bare_eval(data, out_dir, "torch_state_dict.safetensors", model, &out) == fp,
          "pgolf eval of PyTorch's state_dict differs from the checkpoint's %.8f:\n%s", fp, out);
    free(out);
    // train_gpt.py's own files (torch.save; the int8 export zlib'd) hold the weights PyTorch loads from them.
    double pt = bare_eval(data, out_dir, "torch/final_model_pt.safetensors", model, &out);
    free(out);
    CHECK(bare_eval(data, out_dir, "torch/final_model.pt", model, &out) == pt && isfinite(pt) && strstr(out, "weights_bytes:"),
          "pgolf eval of train_gpt.py's final_model.pt differs from its weights' %.8f:\n%s", pt, out);
    free(out);
    double ptz = bare_eval(data, out_dir, "torch/final_model_int8.safetensors", model, &out);
    free(out);
    CHECK(bare_eval(data, out_dir, "torch/final_model.int8.ptz", model, &out) == ptz && isfinite(ptz) &&
              strstr(out, "artifact_bytes:") && strstr(out, "a compressed torch.save file, as train_gpt.py"),
          "pgolf eval of train_gpt.py's final_model.int8.ptz differs from its dequantized weights' %.8f:\n%s", ptz, out);
    free(out);
    snprintf(cmd, sizeof cmd, "./pgolf inspect %s/torch/final_model.int8.ptz", out_dir);
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "train_gpt.py's int8_clean_per_row_v1 export, zlib") && strstr(out, "tensors: 22,"),
          "pgolf inspect of train_gpt.py's .ptz:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd,
             BARE_ENV "INIT_CHECKPOINT=%s/torch/final_model.pt ITERATIONS=0 VAL_LOSS_EVERY=0 OUT_DIR=%s/torch_export "
                      "./pgolf train %s",
             data, test_shared_data(), out_dir, out_dir, model);
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "final_int8_zlib_roundtrip_exact"), "export-only run from train_gpt.py's final_model.pt:\n%s",
          out);
    free(out);

    // An export-only run (ITERATIONS=0) of a wider model, so matrices exceed the 65,536-element float
    // threshold: GPTQ int6 matrices, int7 embedding, calibrated on text the model generates, brotli,
    // byte-shuffled.
    char *gptq_dir = xstrdup(test_tmpdir("e2e_gptq"));
    snprintf(cmd, sizeof cmd,
             "env %s OUT_DIR=%s NUM_LAYERS=1 MODEL_DIM=256 ITERATIONS=0 VAL_LOSS_EVERY=0 QUANT_SCHEME=gptq EMBED_BITS=7 "
             "EMBED_CLIP_SIGMAS=15 GPTQ_CALIBRATION_BATCHES=1 GPTQ_CALIBRATION_SOURCE=generated COMPRESSOR=brotli "
             "BYTE_SHUFFLE=1 ./pgolf train",
             env, gptq_dir);
    rc = test_run(cmd, &out);
    double g0 = find_value(out, "step:0/0 val_loss", "val_bpb:"), g = find_value(out, "final_gptq_brotli_roundtrip_exact", "val_bpb:");
    CHECK(rc == 0 && fabs(g - g0) < 0.02, "gptq export moved val_bpb from %.4f to %.4f:\n%s", g0, g, out);
    free(out);
    snprintf(cmd, sizeof cmd, "env %s ./pgolf inspect %s/final_model.int6.ptz", env, gptq_dir); // the records' name
    rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "scheme gptq_per_row_v1, brotli payload (byte-shuffled)") && strstr(out, "int7 per-row") &&
              strstr(out, "int6 per-row"),
          "inspect of the gptq artifact:\n%s", out);
    free(out);
    free(gptq_dir);
    free(out_dir);
}

// The tail of `text` from the first line starting with `prefix`.
static const char *from_line(const char *text, const char *prefix) {
    const char *p = strstr(text, prefix);
    return p ? p : "";
}

TEST(cli_resume_after_kill_is_identical) {
    const char *data = test_markov_dataset("resume_data");
    char env[4096], cmd[8192], *full, *killed, *resumed;
    char *dir_a = xstrdup(test_tmpdir("resume_a")), *dir_b = xstrdup(test_tmpdir("resume_b"));
    // (bf16 matmuls: a setting cli_setup applies before the resumed run reads the checkpoint's configuration)
    const char *common = "ITERATIONS=8 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 CHECKPOINT_EVERY=4 EMA_ENABLED=1 EMA_DECAY=0.9 "
                         "MATMUL_PRECISION=bf16";
    tiny_env(env, sizeof env, data, dir_a, common);
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    CHECK(test_run(cmd, &full) == 0, "uninterrupted run failed:\n%s", full);

    char extra[256];
    snprintf(extra, sizeof extra, "%s KILL_AFTER_STEP=4", common);
    tiny_env(env, sizeof env, data, dir_b, extra);
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    int rc = test_run(cmd, &killed);
    CHECK(rc == 128 + 9, "the run to be killed exited %d, expected SIGKILL:\n%s", rc, killed);
    CHECK(!strstr(killed, "step:5/8"), "the killed run went past step 4");

    // The resumed run is given nothing but the checkpoint: its stored run configuration is the run's.
    snprintf(cmd, sizeof cmd, "env -u TRAIN_SEQ_LEN NUM_THREADS=2 ./pgolf train --resume %s/checkpoint.safetensors", dir_b);
    CHECK(test_run(cmd, &resumed) == 0, "resumed run failed:\n%s", resumed);
    CHECK(!strstr(resumed, "resume: "), "a resume without settings changed some:\n%s", resumed);
    // Steps 5..8 and everything after (final losses, export) must be the same text.
    const char *a = from_line(full, "step:5/8 train_loss"), *b = from_line(resumed, "step:5/8 train_loss");
    for (int i = 5; i <= 8; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "step:%d/8 train_loss:", i);
        double la = find_value(a, prefix, "train_loss:"), lb = find_value(b, prefix, "train_loss:");
        CHECK(la == lb, "step %d: train_loss %.6f uninterrupted vs %.6f resumed", i, la, lb);
    }
    CHECK(find_value(full, "final_int8_zlib_roundtrip_exact", "val_loss:") ==
              find_value(resumed, "final_int8_zlib_roundtrip_exact", "val_loss:"),
          "final val_loss differs after resume");
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/final_model.safetensors", dir_a);
    snprintf(pb, sizeof pb, "%s/final_model.safetensors", dir_b);
    size_t la, lb;
    uint8_t *wa = read_file(pa, &la), *wb = read_file(pb, &lb);
    CHECK(la == lb && !memcmp(wa, wb, la), "final weights differ between the uninterrupted and the resumed run");
    free(wa);
    free(wb);
    // A setting given on resuming wins, and the log says what changed.
    snprintf(cmd, sizeof cmd, "env NUM_THREADS=2 ./pgolf train --resume %s/checkpoint.safetensors --train-log-every 2", dir_b);
    char *again;
    CHECK(test_run(cmd, &again) == 0 && strstr(again, "resume: TRAIN_LOG_EVERY=2 (the checkpoint's run: 1)"),
          "resuming with a changed setting:\n%s", again);
    free(again);
    free(full);
    free(killed);
    free(resumed);
    free(dir_a);
    free(dir_b);
}

// Trains 12 steps with pgolf and with tests/torch_train.py (train_gpt.py's loop in PyTorch, float64) from
// the same weights on the same shards under `settings`; checks every step's train_loss within 2e-3
// (pgolf logs 4 decimals; fp32 drift stays well under it). Returns pgolf's output; dir keeps the files
// (torch's final weights in dir/torch_final.safetensors).
static char *loss_curve_vs_torch(const char *name, const char *settings, char **dir_out) {
    char data_name[64];
    snprintf(data_name, sizeof data_name, "%s_data", name);
    const char *data = test_markov_dataset(data_name);
    char *dir = xstrdup(test_tmpdir(name));
    char env[4096], cmd[8192], *ref, *out;
    tiny_env(env, sizeof env, data, dir, settings);
    snprintf(cmd, sizeof cmd, "env %s /usr/bin/python3 tests/torch_train.py --write-init %s/init.safetensors", env, dir);
    CHECK(test_run(cmd, &ref) == 0, "torch_train --write-init failed:\n%s", ref);
    free(ref);
    snprintf(cmd, sizeof cmd, "env %s /usr/bin/python3 tests/torch_train.py --init %s/init.safetensors --final-out %s/torch_final.safetensors",
             env, dir, dir);
    CHECK(test_run(cmd, &ref) == 0, "torch_train failed:\n%s", ref);
    snprintf(cmd, sizeof cmd, "env %s INIT_CHECKPOINT=%s/init.safetensors ./pgolf train", env, dir);
    CHECK(test_run(cmd, &out) == 0, "pgolf train failed:\n%s", out);
    double worst = 0;
    for (int i = 1; i <= 12; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "step:%d/12 train_loss:", i);
        double a = find_value(out, prefix, "train_loss:"), b = find_value(ref, prefix, "train_loss:");
        CHECK(fabs(a - b) < 2e-3, "step %d: pgolf train_loss %.4f, PyTorch %.6f", i, a, b);
        if (fabs(a - b) > worst) worst = fabs(a - b);
    }
    printf("    %s: worst |pgolf - torch| over 12 steps = %.2e\n", name, worst);
    free(ref);
    *dir_out = dir;
    return out;
}

// Data order, gradient accumulation, Muon momentum warmup, LR warmdown, gradient clipping, the records'
// Muon/AdamW weight decay and MuonEq-R, with #413/#638's model techniques switched on; the exported
// weights are the EMA (decay 0.8) of both runs: every tensor within 1e-3 of its largest value. pgolf
// runs each 512-token micro-batch as 4 passes of 128 tokens (MAX_PASS_TOKENS; PyTorch in one).
TEST(cli_loss_curve_matches_pytorch) {
    char *dir, *out = loss_curve_vs_torch(
        "curve", "ITERATIONS=12 WARMDOWN_ITERS=5 WARMUP_STEPS=0 MUON_MOMENTUM_WARMUP_STEPS=6 GRAD_CLIP_NORM=0.5 "
                 "VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=1024 EMA_ENABLED=1 EMA_DECAY=0.8 MUON_WD=0.5 ADAM_WD=0.3 "
                 "MUON_ROW_NORMALIZE=1 ROPE_DIMS=8 LN_SCALE=1 NEGATIVE_SLOPE=0.5 XSA_LAST_N=1 SMEAR_GATE=1 "
                 "GATED_ATTENTION=1 VALUE_RESIDUAL=1 BIGRAM_VOCAB_SIZE=64 BIGRAM_DIM=16 MAX_PASS_TOKENS=128",
        &dir);
    CHECK(strstr(out, "micro_batch_passes:4 tokens_per_pass:128"), "no passes logged:\n%s", out);
    char path_a[1100], path_b[1100];
    snprintf(path_a, sizeof path_a, "%s/final_model.safetensors", dir);
    snprintf(path_b, sizeof path_b, "%s/torch_final.safetensors", dir);
    SafeTensors *mine = st_load(path_a), *theirs = st_load(path_b);
    double worst_w = 0;
    for (int k = 0; k < st_count(theirs); k++) {
        const StTensor *b = st_find(theirs, st_name(theirs, k)), *a = st_find(mine, st_name(theirs, k));
        CHECK(a && a->numel == b->numel, "%s missing or reshaped", st_name(theirs, k));
        if (!a || a->numel != b->numel) continue;
        double big = 1e-12, diff = 0;
        for (int64_t i = 0; i < b->numel; i++) big = fmax(big, fabs(b->f[i])), diff = worse_of(diff, fabs(a->f[i] - b->f[i]));
        worst_w = fmax(worst_w, diff / big);
    }
    CHECK(strstr(out, "ema:applying EMA weights") && worst_w < 1e-3, "EMA weights differ by %.3g (relative)", worst_w);
    printf("    EMA weights: worst relative difference %.2e\n", worst_w);
    st_free(mine);
    st_free(theirs);
    free(out);
    free(dir);
}

// Each case: extra environment and arguments, and a piece of the expected error line.
TEST(cli_bad_input_fails_clearly) {
    const char *data = test_markov_dataset("bad_data");
    char *out_dir = xstrdup(test_tmpdir("bad_out"));
    char corrupt[1024];
    snprintf(corrupt, sizeof corrupt, "%s/corrupt", out_dir);
    mkdir_p(corrupt);
    char path[1100];
    snprintf(path, sizeof path, "%s/fineweb_val_000000.bin", corrupt);
    write_file_atomic(path, "not a shard", 11);
    struct {
        const char *extra, *expect;
    } cases[] = {
        {"ITERATIONS=1 ./pgolf train --no-such-flag 1", "unknown option --no-such-flag"},
        {"NUM_HEADS=3 ./pgolf train", "must be divisible by NUM_HEADS=3"},
        {"NUM_KV_HEADS=3 ./pgolf train", "must be divisible by NUM_KV_HEADS=3"},
        {"VOCAB_SIZE=512 ./pgolf train", "does not match tokenizer"},
        {"ITERATIONS=abc ./pgolf train", "ITERATIONS=abc is not an integer"},
        {"DATA_PATH=/nonexistent ./pgolf train", "/nonexistent"},
        {"./pgolf eval /nonexistent.ptz", "/nonexistent.ptz"},
        {"./pgolf frobnicate", "unknown command"},
        {"COMPRESSOR=lz4 ./pgolf train", "unknown compressor \"lz4\""},
        {"COMPRESSOR=brotli COMPRESSOR_LEVEL=12 ./pgolf train", "brotli level 12 is outside 0..11"},
        {"./pgolf train --preset pr999", "unknown preset 'pr999' (presets: pr413-control"},
        {"RECUR_LAYERS=0,1 ./pgolf train", "RECUR_LAYERS=0,1 must lie within layers 1..1"},
        {"NUM_LAYERS=4 RECUR_LAYERS=1,3 ./pgolf train", "RECUR_LAYERS=1,3 must list consecutive layers"},
        {"VE_ENABLED=1 VE_LAYERS=7 ./pgolf train", "VE_LAYERS=7 must list layers in 0..1"},
        {"GATED_ATTN=channel ./pgolf train", "GATED_ATTN=channel must be none, headwise or elementwise"},
        {"GATED_ATTN=headwise GATED_ATTENTION=1 ./pgolf train", "exclude each other"},
        {"PARALLEL_START_LAYER=1 PARALLEL_RESIDUAL_START=1 ./pgolf train", "exclude each other"},
        {"VALUE_RESIDUAL_FORM=gate ./pgolf train", "VALUE_RESIDUAL_FORM=gate must be scalar or sigmoid"},
        {"BIGRAM_VOCAB_SIZE=1 ./pgolf train", "BIGRAM_VOCAB_SIZE=1 must be 0 (off) or at least 2"},
        {"TTT_LR_SCHEDULE=linear ./pgolf train", "TTT_LR_SCHEDULE=linear is not constant or cosine"},
        {"MATMUL_PRECISION=fp16 ./pgolf train", "MATMUL_PRECISION=fp16 must be fp32, bf16 or auto"},
        {"MAX_PASS_TOKENS=-1 ./pgolf train", "MAX_PASS_TOKENS=-1 must not be negative"},
        {"./pgolf eval --max-pass-tokens -5 /nonexistent.ptz", "MAX_PASS_TOKENS=-5 must not be negative"},
    };
    char env[4096], cmd[8192], *out;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tiny_env(env, sizeof env, data, out_dir, "");
        snprintf(cmd, sizeof cmd, "env %s %s", env, cases[i].extra);
        int rc = test_run(cmd, &out);
        CHECK(rc != 0 && strstr(out, cases[i].expect), "`%s` gave exit %d and:\n%s", cases[i].extra, rc, out);
        free(out);
    }
    // the run's log ends with the error line, as stderr does
    tiny_env(env, sizeof env, data, out_dir, "RUN_ID=bad_vocab VOCAB_SIZE=512");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    int rc = test_run(cmd, &out);
    free(out);
    snprintf(path, sizeof path, "%s/logs/bad_vocab.txt", out_dir);
    size_t len;
    char *log = (char *)read_file(path, &len), *last = log + len;
    while (last > log && last[-1] == '\n') last--;
    while (last > log && last[-1] != '\n') last--;
    CHECK(rc != 0 && !strncmp(last, "pgolf: error: VOCAB_SIZE=512 does not match tokenizer", 53),
          "the log of a failed run ends with \"%.100s\"", last);
    free(log);
    snprintf(path, sizeof path, "%s/fineweb_val_000000.bin", corrupt);
    snprintf(cmd, sizeof cmd, "env DATA_PATH=%s TOKENIZER_PATH=%s/tokenizers/fineweb_1024_bpe.model ./pgolf train",
             corrupt, test_shared_data());
    rc = test_run(cmd, &out);
    CHECK(rc != 0 && strstr(out, path), "a corrupt val shard gave exit %d and:\n%s", rc, out);
    free(out);
    snprintf(cmd, sizeof cmd, "./pgolf eval %s", path);
    rc = test_run(cmd, &out);
    CHECK(rc != 0 && strstr(out, "is neither a pgolf artifact (magic PGOLFART), a safetensors file nor a torch.save file"),
          "pgolf eval of a text file gave exit %d and:\n%s", rc, out);
    free(out);
    // a torch.save file of another model's tensors (names, then shapes): the error says the options make the model
    const char *hint = ": the file stores no model options, so the model is the one the options make; give a record's "
                       "file its --preset";
    struct {
        const char *file, *expect;
    } foreign[] = {{"torch_state.pt", "tensor skip_weights is missing ("},
                   {"torch_mixed_small.ptz", "tensor tok_emb.weight has shape [16, 64], the model's is [1024, "}};
    for (int i = 0; i < 2; i++) {
        tiny_env(env, sizeof env, data, out_dir, "");
        snprintf(cmd, sizeof cmd, "env %s ./pgolf eval %s/%s", env, test_fixture_dir(), foreign[i].file);
        rc = test_run(cmd, &out);
        CHECK(rc != 0 && strstr(out, foreign[i].expect) && strstr(out, hint), "pgolf eval of %s gave exit %d and:\n%s",
              foreign[i].file, rc, out);
        free(out);
    }
    free(out_dir);
}

// Weights of a record's shape saved without pgolf's configuration, evaluated without its preset: the
// error names the preset whose model the file fits.
TEST(cli_eval_names_the_preset_a_file_fits) {
    const char *data = test_markov_dataset("fit_data"), *dir = test_tmpdir("fit_preset");
    Config pc;
    config_defaults(&pc);
    config_apply_text(&pc, preset_find("pr413-control")->settings, "pr413-control", CG_MODEL);
    GPTConfig g = gpt_config_from(&pc);
    real *zeros = xcalloc((size_t)gpt_count_params(&g), sizeof(real));
    TensorList list;
    ModelTensors ptrs;
    gpt_views(&g, zeros, &list, &ptrs);
    char path[600], env[4096], cmd[8192], *out;
    snprintf(path, sizeof path, "%s/record.safetensors", dir);
    checkpoint_save_tensors(path, &list, NULL, NULL, 0); // no pgolf_config: PyTorch's save_file writes none
    gpt_views_free(&list, &ptrs);
    free(zeros);
    tiny_env(env, sizeof env, data, dir, "");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf eval %s", env, path);
    int rc = test_run(cmd, &out);
    CHECK(rc != 0 && strstr(out, "the file stores no model options, so the model is the one the options make; the file "
                                 "fits --preset pr413-control\n"),
          "pgolf eval of pr413-control's weights without the preset gave exit %d and:\n%s", rc, out);
    free(out);
}

// ---- pgolf prep ----

static int64_t count_token(const uint16_t *t, int64_t n, uint16_t id) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += t[i] == id;
    return c;
}

// Documents are separated by blank lines; each becomes BOS + its ids, the first PREP_VAL_DOCS go to
// validation, and decoding a document's ids gives its text back (lines joined with a space).
TEST(cli_prep_text_corpus) {
    const char *dir = test_tmpdir("prep_text");
    char corpus[1024], cmd[8192], *out;
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    FILE *f = xfopen(corpus, "w");
    Rng r;
    rng_seed(&r, 5);
    const char *words[] = {"golf", "parameter", "tiny", "model", "bytes", "train", "compress", "the", "of", "a", "42", "café"};
    for (int d = 0; d < 60; d++) {
        fprintf(f, "Document %d\n", d);
        for (int w = 0; w < 200; w++) fprintf(f, "%s%s", words[rng_u64(&r) % 12], w % 20 == 19 ? "\n" : " ");
        fprintf(f, "\n\n\n");
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "env PREP_INPUT=%s DATA_PATH=%s/data TOKENIZER_PATH=%s/tok/t.model VOCAB_SIZE=300 PREP_VAL_DOCS=7 ./pgolf prep",
             corpus, dir, dir);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "60 documents: 53 train"), "prep exited %d:\n%s", rc, out);
    free(out);
    char path[1100];
    int64_t n_val, n_train;
    snprintf(path, sizeof path, "%s/data/fineweb_val_000000.bin", dir);
    uint16_t *val = shard_read(path, &n_val);
    snprintf(path, sizeof path, "%s/data/fineweb_train_000000.bin", dir);
    uint16_t *train = shard_read(path, &n_train);
    CHECK(val[0] == 1 && count_token(val, n_val, 1) == 7, "val shard holds %lld documents", (long long)count_token(val, n_val, 1));
    CHECK(train[0] == 1 && count_token(train, n_train, 1) == 53, "train shard holds %lld documents",
          (long long)count_token(train, n_train, 1));
    snprintf(path, sizeof path, "%s/tok/t.model", dir);
    SpmModel *sp = spm_load(path);
    CHECK(spm_vocab_size(sp) == 300, "tokenizer has %lld pieces", (long long)spm_vocab_size(sp));
    int64_t end = 1;
    while (end < n_train && train[end] != 1) end++;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)end);
    for (int64_t i = 0; i < end; i++) ids[i] = train[i];
    char *text = spm_decode(sp, ids + 1, end - 1);
    CHECK(!strncmp(text, "Document 7 ", 11) && !strchr(text, '\n') && !strstr(text, "  "),
          "first training document decodes to \"%.60s...\"", text);
    snprintf(path, sizeof path, "%s/tok/t.vocab", dir);
    CHECK(file_size(path) > 0, "%s was not written", path);
    free(text);
    free(ids);
    spm_free(sp);
    free(val);
    free(train);

    struct {
        const char *env, *expect;
    } bad[] = {
        {"PREP_VAL_DOCS=60", "leaves none for training"},
        {"VOCAB_SIZE=4000", "too small for this vocabulary"},
        {"PREP_INPUT=/nonexistent.txt", "/nonexistent.txt"},
    };
    char scratch[1100], pattern[1200], **left;
    snprintf(scratch, sizeof scratch, "%s/scratch", dir); // TMPDIR: prep's temporary directory goes there
    mkdir_p(scratch);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "env TMPDIR=%s PREP_INPUT=%s DATA_PATH=%s/bad TOKENIZER_PATH=%s/bad/t.model VOCAB_SIZE=300 "
                 "PREP_VAL_DOCS=7 %s ./pgolf prep", scratch, corpus, dir, dir, bad[i].env);
        rc = test_run(cmd, &out);
        CHECK(rc != 0 && strstr(out, bad[i].expect), "`%s` gave exit %d and:\n%s", bad[i].env, rc, out);
        free(out);
    }
    // a tokenizer path that is a directory: the atomic write fails at its rename, and removes its file
    snprintf(path, sizeof path, "%s/bad/dir.model", dir);
    mkdir_p(path);
    snprintf(cmd, sizeof cmd, "env TMPDIR=%s PREP_INPUT=%s DATA_PATH=%s/bad TOKENIZER_PATH=%s VOCAB_SIZE=300 PREP_VAL_DOCS=7 ./pgolf prep",
             scratch, corpus, dir, path);
    rc = test_run(cmd, &out);
    CHECK(rc != 0 && strstr(out, "cannot rename"), "a directory as TOKENIZER_PATH gave exit %d and:\n%s", rc, out);
    free(out);
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path);
    int n = glob_sorted(pattern, &left);
    CHECK(n == 0, "the failed write left %s", n ? left[0] : "");
    free_paths(left, n);
    snprintf(pattern, sizeof pattern, "%s/*", scratch);
    n = glob_sorted(pattern, &left);
    CHECK(n == 0, "failed preps left %d paths in TMPDIR, the first %s", n, n ? left[0] : "");
    free_paths(left, n);
}

// The default corpus: 1189 chapters of the King James Bible (bible-kjv), 200 held out.
TEST(cli_prep_default_corpus) {
    const char *dir = test_tmpdir("prep_kjv");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "env DATA_PATH=%s/data TOKENIZER_PATH=%s/kjv.model VOCAB_SIZE=1024 ./pgolf prep", dir, dir);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "1189 documents: 989 train"), "prep exited %d:\n%s", rc, out);
    free(out);
    char path[1100];
    int64_t n;
    snprintf(path, sizeof path, "%s/data/fineweb_val_000000.bin", dir);
    uint16_t *val = shard_read(path, &n);
    CHECK(count_token(val, n, 1) == 200 && n > 200000, "val: %lld tokens, %lld documents", (long long)n,
          (long long)count_token(val, n, 1));
    free(val);
}

// `pgolf ablate` end to end on tiny runs: 2 seeds x (control, one variant), then the table.
TEST(cli_ablate_table) {
    const char *data = test_markov_dataset("ablate_data");
    char *dir = xstrdup(test_tmpdir("ablate_out"));
    char env[4096], cmd[8192], *out;
    tiny_env(env, sizeof env, data, dir, "ITERATIONS=6 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=2048 ABLATE_SEEDS=1,2");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf ablate hi_lr:MATRIX_LR=0.08,SCALAR_LR=0.08", env);
    int rc = test_run(cmd, &out);
    const char *row = strstr(out, "\nhi_lr ");
    double p = row ? atof(strrchr(strtok(xstrdup(row + 1), "\n"), ' ') + 1) : NAN;
    CHECK(rc == 0 && strstr(out, "ablate: hi_lr seed:2 val_loss:") && strstr(out, "\ncontrol ") && row && p >= 0 && p <= 1,
          "ablate exited %d, p %g:\n%s", rc, p, out);
    free(out);
    snprintf(cmd, sizeof cmd, "env %s ./pgolf ablate 'broken:MATRIX_LR'", env);
    rc = test_run(cmd, &out);
    CHECK(rc != 0 && strstr(out, "setting 'MATRIX_LR' is not ENV=VALUE"), "bad arm gave %d:\n%s", rc, out);
    free(out);
    free(dir);
}

// `pgolf info`: the parameter count, and how a micro-step of 8 sequences of 64 runs under MAX_PASS_TOKENS.
TEST(cli_info_prints_params_and_passes) {
    char env[4096], cmd[8192], *out;
    tiny_env(env, sizeof env, "unused", "unused", "");
    const char *cases[][2] = {{"--max-pass-tokens 128", "passes:4 tokens_per_pass:128"},
                              {"--max-pass-tokens 200", "passes:4 tokens_per_pass:128"},
                              {"--max-pass-tokens 10", "passes:8 tokens_per_pass:64"},
                              {"", "passes:1 tokens_per_pass:512"}};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "env %s ./pgolf info %s", env, cases[i][0]);
        int rc = test_run(cmd, &out);
        CHECK(rc == 0 && strstr(out, "micro_batch_tokens:512 activations:") && strstr(out, cases[i][1]) &&
                  strstr(out, "model_params:"),
              "pgolf info %s (rc %d), expected %s:\n%s", cases[i][0], rc, cases[i][1], out);
        free(out);
    }
}

// The code bytes pgolf counts against the limit are its source bundle's: the files that build it (src's .c
// and .h outside src/ops/cuda, the Makefile, scripts/bundle.sh) as an xz'd tar behind a header that unpacks
// and builds them into a pgolf, whose build writes the same bundle (pgolf-cuda: tests/cuda/test_cuda_ops.c).
TEST(cli_code_bytes_are_the_source_bundle) {
    long long files = test_code_bytes("src/ops/cuda/", 0, NULL), bundle = file_size("build/pgolf_bundle.sh");
    CHECK(files > 0 && pgolf_source_bytes() == files, "pgolf counts %lld source bytes, its files hold %lld",
          pgolf_source_bytes(), files);
    CHECK(pgolf_code_bytes() == bundle && bundle < files / 3, "pgolf counts %lld code bytes, build/pgolf_bundle.sh holds %lld",
          pgolf_code_bytes(), bundle);
    const char *dir = test_tmpdir("bundle");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "sh build/pgolf_bundle.sh %s/src && cmp build/pgolf_bundle.sh %s/src/build/pgolf_bundle.sh && "
             "%s/src/pgolf inspect --help", dir, dir, dir);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "usage: pgolf inspect"), "the bundle did not unpack, build and bundle itself again "
          "(exit %d):\n%s", rc, out);
    free(out);
}

// Depth recurrence switches on at RECUR_START_STEP (#1435) and the run stays finite through the switch.
TEST(cli_recurrence_switches_on_at_its_step) {
    const char *data = test_markov_dataset("recur_data");
    char env[4096], cmd[8192], *out;
    tiny_env(env, sizeof env, data, test_tmpdir("recur_out"),
             "NUM_LAYERS=3 RECUR_LAYERS=1 RECUR_START_STEP=3 ITERATIONS=5 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=1024");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "recurrence:on step:3 virtual_layers:4") && !strstr(out, "recurrence:on step:2"),
          "rc %d, expected the switch at step 3:\n%s", rc, out);
    CHECK(isfinite(find_value(out, "step:5/5 train_loss:", "train_loss:")), "no finite loss after the switch");
    free(out);
}

// LATE_QAT latches on at the first step whose lr multiplier is below QAT_THRESHOLD, as #638 logs it.
TEST(cli_late_qat_switches_on_below_threshold) {
    const char *data = test_markov_dataset("qat_data");
    char env[4096], cmd[8192], *out;
    tiny_env(env, sizeof env, data, test_tmpdir("qat_out"),
             "ITERATIONS=10 WARMDOWN_ITERS=10 LATE_QAT=1 QAT_THRESHOLD=0.5 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=1024");
    snprintf(cmd, sizeof cmd, "env %s ./pgolf train", env);
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && strstr(out, "late_qat:enabled step:6 scale:0.4000"), "rc %d, expected QAT from step 6:\n%s", rc, out);
    CHECK(isfinite(find_value(out, "step:10/10 train_loss:", "train_loss:")), "no finite loss under QAT");
    free(out);
}

// The loop's later switches: depth recurrence switched on at a step with two lanes, VE and gated skips,
// #2005's gate rows, the warmdown by fraction with MIN_LR, late QAT (straight-through), NorMuon, EMBED_WD.
TEST(cli_loss_curve_records_stack_matches_pytorch) {
    char *dir, *out = loss_curve_vs_torch(
        "curve2", "NUM_LAYERS=4 ITERATIONS=12 WARMUP_STEPS=0 MUON_MOMENTUM_WARMUP_STEPS=6 GRAD_CLIP_NORM=0.5 VAL_LOSS_EVERY=0 "
                  "VAL_MAX_TOKENS=1024 RECUR_LAYERS=1-2 RECUR_START_STEP=4 RECUR_VIRTUAL_SKIPS=1 SKIP_GATES_ENABLED=1 "
                  "PARALLEL_START_LAYER=2 VE_ENABLED=1 VE_DIM=16 VE_LAYERS=3 GATED_ATTN=headwise ROPE_DIMS=8 LN_SCALE=1 "
                  "WARMDOWN_FRAC=0.5 MIN_LR=0.2 LATE_QAT=1 QAT_THRESHOLD=0.7 MUON_NORMALIZE_UPDATE_ROWS=1 MUON_WD=0.3 "
                  "ADAM_WD=0.2 EMBED_WD=0.4 NEGATIVE_SLOPE=0.5",
        &dir);
    CHECK(strstr(out, "recurrence:on step:4") && strstr(out, "late_qat:enabled"), "switches missing:\n%s", out);
    free(out);
    free(dir);
}
