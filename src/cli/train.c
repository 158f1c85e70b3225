// `pgolf train`: train_gpt.py's main() on the CPU, with the same environment, schedule and log lines,
// plus resumable checkpoints.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/commands.h"
#include "data/shard.h"
#include "eval/eval_final.h"
#include "eval/eval_val.h"
#include "export/artifact.h"
#include "export/calib.h"
#include "export/quant_scheme.h"
#include "io/checkpoint.h"
#include "io/host_copy.h"
#include "model/gpt.h"
#include "ops/ops.h"
#include "optim/optim.h"
#include "optim/qat.h"
#include "util.h"

#define TRAIN_GROUPS (CG_DATA | CG_MODEL | CG_TRAIN | CG_EVAL | CG_RUN)

typedef struct {
    Config c;
    GPT m;
    OptimState os;
    OptimSettings o;
    TokenStream *stream;
    ByteTables bt;
    uint16_t *val;
    int64_t n_val, micro_tokens;
    int pass_seqs; // sequences per pass of a micro-batch (gpt_pass_seqs)
    int32_t *x, *y;
    char *config_text, *run_config_text, *checkpoint_path;
    QatState qat;
    int qat_on; // QAT_ENABLED, or latched by LATE_QAT
} Trainer;

static char *out_path(const Config *c, const char *name) {
    size_t n = strlen(c->out_dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", c->out_dir, name);
    return p;
}

static char *data_glob(const Config *c, const char *split) {
    size_t n = strlen(c->data_path) + 64;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/fineweb_%s_*.bin", c->data_path, split);
    return p;
}

// What artifacts and checkpoints record: the model's options, and the sequence length it was trained at
// (the default length `pgolf eval` and `pgolf sample` use, so an evaluation repeats the run's own).
static char *stored_config_text(const Config *c) {
    char *model = config_text(c, CG_MODEL), *text = xmalloc(strlen(model) + 64);
    sprintf(text, "%sTRAIN_SEQ_LEN=%lld\n", model, (long long)c->train_seq_len);
    free(model);
    return text;
}

// One optimizer step's gradients: GRAD_ACCUM_STEPS micro-batches, each scaled by 1/GRAD_ACCUM_STEPS
// (each in passes where its activations would not fit: MAX_PASS_TOKENS).
static double accumulate_gradients(Trainer *t) {
    const Config *c = &t->c;
    int T = (int)c->train_seq_len, B = (int)(t->micro_tokens / T);
    double loss = 0;
    gpt_zero_grad(&t->m);
    for (int64_t micro = 0; micro < c->grad_accum_steps; micro++) {
        loader_next_batch(t->stream, c->train_batch_tokens, c->train_seq_len, c->grad_accum_steps, t->x, t->y);
        loss += gpt_train_batch(&t->m, t->x, t->y, B, T, t->pass_seqs, (real)(1.0 / (double)c->grad_accum_steps));
    }
    return loss / (double)c->grad_accum_steps;
}

static void optimizer_step(Trainer *t, int64_t step, double lr_mul) {
    t->o.muon_momentum = muon_momentum_at(&t->c, step);
    if (t->c.grad_clip_norm > 0) clip_grad_norm(&t->m, t->c.grad_clip_norm);
    optim_step(&t->os, &t->m, &t->o, lr_mul);
}

// Warmup runs real steps and then restores the initial weights, optimizer state and data position,
// as the reference does to prime torch.compile; here it only costs time, and keeps semantics equal.
static void warmup(Trainer *t) {
    const Config *c = &t->c;
    // The reference warms up even with ITERATIONS=0; the steps change nothing (weights, optimizer state and
    // data position are restored), so an export-only run skips them.
    if (c->warmup_steps <= 0 || c->iterations == 0) return;
    real *initial = ops_alloc(t->m.n_params);
    ops_copy(initial, t->m.params, t->m.n_params);
    TokenStreamPos start = token_stream_tell(t->stream);
    for (int64_t i = 0; i < c->warmup_steps; i++) {
        accumulate_gradients(t);
        optimizer_step(t, 0, 1.0);
        if (c->warmup_steps <= 20 || (i + 1) % 10 == 0 || i + 1 == c->warmup_steps)
            log0("warmup_step:%lld/%lld", (long long)(i + 1), (long long)c->warmup_steps);
    }
    ops_copy(t->m.params, initial, t->m.n_params);
    ops_free(initial);
    optim_reset(&t->os);
    token_stream_seek(t->stream, start);
}

static void validate(Trainer *t, double *loss, double *bpb) {
    eval_val(&t->m, &t->c, t->val, t->n_val, &t->bt, t->micro_tokens, loss, bpb);
}

static void save_checkpoint(Trainer *t, int64_t step, double training_time_ms) {
    TrainPosition pos = {step, training_time_ms, token_stream_tell(t->stream)};
    checkpoint_save_train(t->checkpoint_path, &t->m, &t->os, &pos, t->config_text, t->run_config_text);
}

// The end of train_gpt.py: raw weights, the int8+zlib artifact, and its round-trip evaluation.
static void export_and_roundtrip(Trainer *t) {
    const Config *c = &t->c;
    long long code = pgolf_code_bytes();
    QuantScheme scheme = quant_scheme_from_config(c);
    // named as the scripts name theirs: train_gpt.py's int8 export, the records' (#638, #1435, #2005) int6 one
    char *weights = out_path(c, "final_model.safetensors");
    char *art = out_path(c, scheme.id == SCHEME_INT8 ? "final_model.int8.ptz" : "final_model.int6.ptz");
    checkpoint_save_weights(weights, &t->m, t->config_text);
    long long model_bytes = file_size(weights);
    log0("Serialized model: %lld bytes", model_bytes);
    log0("Code size: %lld bytes (source bundle, xz; the files themselves: %lld)", code, pgolf_source_bytes());
    log0("Total submission size: %lld bytes", model_bytes + code);

    ArtifactCompression comp = {compressor_from_name(c->compressor), (int)c->compressor_level, (int)c->byte_shuffle};
    if (comp.level <= 0) comp.level = compressor_default_level(comp.compressor);
    const char *cname = compressor_name(comp.compressor), *qname = quant_scheme_label(&scheme);
    double t_export = now_seconds();
    Hessians *h = NULL;
    int64_t calib_cap = gpt_pass_token_cap(&t->m.cfg, c->max_pass_tokens, PASS_FORWARD); // forwards only
    if (scheme.id == SCHEME_GPTQ && !strcmp(c->gptq_calibration_source, "generated")) {
        h = hessians_from_generated(&t->m, (int)c->gptq_calibration_batches, (int)(t->micro_tokens / c->train_seq_len),
                                    (int)c->train_seq_len, c->gptq_calibration_temperature, (uint64_t)c->seed, calib_cap);
    } else if (scheme.id == SCHEME_GPTQ) { // training data, read afresh from its first shard
        char *pattern = data_glob(c, "train");
        TokenStream *calib = token_stream_open(pattern, c->vocab_size);
        h = hessians_from_stream(&t->m, calib, (int)c->gptq_calibration_batches, t->micro_tokens, (int)c->train_seq_len,
                                 calib_cap);
        token_stream_close(calib);
        free(pattern);
    }
    QuantState qs;
    QuantStats q;
    HostTensors weights_host = host_copy(&t->m.param_list); // quantization reads the weights on the host
    quant_scheme_state(&scheme, &weights_host.list, h ? hessians_for : NULL, h, &qs, &q);
    host_free(&weights_host);
    ArtifactStats st;
    artifact_save(art, t->config_text, quant_scheme_artifact_name(&scheme), &qs, &q, comp, &st);
    quant_state_free(&qs);
    hessians_free(h);
    long long art_bytes = file_size(art);
    log0("Serialized model %s+%s: %lld bytes (payload:%lld raw_uncompressed:%lld payload_ratio:%.2fx)", qname, cname, art_bytes,
         (long long)st.payload_bytes, (long long)st.raw_bytes,
         (double)st.baseline_tensor_bytes / (double)(st.payload_bytes > 0 ? st.payload_bytes : 1));
    log0("Total submission size %s+%s: %lld bytes", qname, cname, art_bytes + code);
    log0("export_time:%.0fms", 1000 * (now_seconds() - t_export));

    Artifact *a = artifact_load(art);
    cli_load_artifact_weights(a, &t->m);
    artifact_free(a);
    double t0 = now_seconds();
    EvalReport r;
    eval_final(&t->m, c, t->val, t->n_val, &t->bt, t->micro_tokens, &r);
    double loss = r.val_loss, bpb = r.val_bpb;
    log0("final_%s_%s_roundtrip val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", qname, cname, loss, bpb,
         1000 * (now_seconds() - t0));
    log0("final_%s_%s_roundtrip_exact val_loss:%.8f val_bpb:%.8f", qname, cname, loss, bpb);
    log0("artifact_bytes:%lld code_bytes:%lld total_bytes:%lld limit:%lld %s", art_bytes, code, art_bytes + code,
         ARTIFACT_LIMIT_BYTES, art_bytes + code <= ARTIFACT_LIMIT_BYTES ? "fits" : "OVER_LIMIT");
    free(weights);
    free(art);
}

static void setup(Trainer *t) {
    Config *c = &t->c;
    // A resumed run goes on as the checkpoint's: its stored configuration fills every option this one leaves
    // unset (RUN_ID and OUT_DIR too: the same log file goes on).
    char *run = c->resume[0] ? checkpoint_read_meta(c->resume, "pgolf_run_config") : NULL;
    if (run) config_apply_text(c, run, c->resume, 0);
    // INIT_CHECKPOINT's weights are a model: the options stored with them fill those this run leaves unset.
    char *stored = c->init_checkpoint[0] ? checkpoint_read_meta(c->init_checkpoint, "pgolf_config") : NULL;
    if (stored) config_apply_text(c, stored, c->init_checkpoint, 0);
    if (run) cli_apply_process_settings(c); // its MATMUL_PRECISION
    config_validate_train(c);
    GPTConfig g = gpt_config_from(c);
    if (!c->run_id[0]) {
        Rng r;
        rng_seed(&r, (uint64_t)(now_seconds() * 1e9) ^ (uint64_t)getpid());
        char id[40];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)rng_u64(&r));
        free(c->run_id);
        c->run_id = xstrdup(id);
    }
    char *logs = out_path(c, "logs");
    mkdir_p(logs);
    size_t n = strlen(logs) + strlen(c->run_id) + 8;
    char *logfile = xmalloc(n);
    snprintf(logfile, n, "%s/%s.txt", logs, c->run_id);
    log_open(logfile);
    log0("%s", logfile);
    if (run) {
        log0("resume:%s options this run leaves unset are the checkpoint's run's", c->resume);
        config_log_changes(c, run, "resume");
    }
    if (stored) log0("init_checkpoint:%s model options this run leaves unset are the checkpoint's", c->init_checkpoint);
    free(run);
    free(stored);
    config_print(c, TRAIN_GROUPS);
    log_file_only("====================================================================================================");
    free(logs);
    free(logfile);

    t->bt = byte_tables_load(c->tokenizer_path, c->vocab_size);
    char *train_pat = data_glob(c, "train"), *val_pat = data_glob(c, "val");
    t->val = load_validation_tokens(val_pat, c->train_seq_len, c->val_max_tokens, &t->n_val);
    tokens_check_vocab(t->val, t->n_val, c->vocab_size, val_pat);
    t->stream = token_stream_open(train_pat, c->vocab_size);
    log0("val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=%s", c->tokenizer_path);
    const char *ds = strrchr(c->data_path, '/');
    log0("train_loader:dataset:%s train_shards:%d", ds && ds[1] ? ds + 1 : c->data_path, token_stream_num_files(t->stream));
    log0("val_loader:shards pattern=%s tokens:%lld", val_pat, (long long)(t->n_val - 1));
    free(train_pat);
    free(val_pat);

    gpt_init(&t->m, &g);
    gpt_init_weights(&t->m, (uint64_t)c->seed);
    if (c->init_checkpoint[0]) checkpoint_load(c->init_checkpoint, &t->m, NULL, NULL);
    optim_init(&t->os, &t->m);
    if (c->ema_enabled) {
        if (!(c->ema_decay >= 0 && c->ema_decay < 1)) die("EMA_DECAY=%g must lie in [0, 1)", c->ema_decay);
        ema_enable(&t->os);
    }
    t->o = optim_settings(c);
    t->config_text = stored_config_text(c);
    t->run_config_text = config_text(c, TRAIN_GROUPS);
    t->checkpoint_path = out_path(c, "checkpoint.safetensors");
    t->micro_tokens = c->train_batch_tokens / c->grad_accum_steps;
    t->x = xmalloc(sizeof(int32_t) * (size_t)t->micro_tokens);
    t->y = xmalloc(sizeof(int32_t) * (size_t)t->micro_tokens);
    t->pass_seqs = gpt_pass_seqs((int)(t->micro_tokens / c->train_seq_len), (int)c->train_seq_len,
                                 gpt_pass_token_cap(&t->m.cfg, c->max_pass_tokens, PASS_TRAIN));

    log0("model_params:%lld", (long long)t->m.n_params);
    log0("world_size:1 grad_accum_steps:%lld", (long long)c->grad_accum_steps);
    int64_t pass_tokens = t->pass_seqs * c->train_seq_len;
    if (pass_tokens < t->micro_tokens)
        log0("micro_batch_passes:%lld tokens_per_pass:%lld activations_per_pass:%.2fGB (MAX_PASS_TOKENS=%lld)",
             (long long)(t->micro_tokens / pass_tokens), (long long)pass_tokens,
             gpt_activation_bytes(&t->m.cfg, pass_tokens) / 1e9, (long long)c->max_pass_tokens);
    log0("backend:%s matmul:%s", ops_backend(), ops_matmul_bf16() ? "bf16" : "fp32");
    log0("attention_mode:gqa num_heads:%lld num_kv_heads:%lld", (long long)c->num_heads, (long long)c->num_kv_heads);
    char f[4][32];
    log0("tie_embeddings:%s embed_lr:%s head_lr:%s matrix_lr:%s scalar_lr:%s", c->tie_embeddings ? "True" : "False",
         py_float_repr(f[0], c->tie_embeddings ? c->tied_embed_lr : c->embed_lr),
         py_float_repr(f[1], c->tie_embeddings ? 0.0 : c->head_lr), py_float_repr(f[2], c->matrix_lr),
         py_float_repr(f[3], c->scalar_lr));
    log0("train_batch_tokens:%lld train_seq_len:%lld iterations:%lld warmup_steps:%lld max_wallclock_seconds:%.3f",
         (long long)c->train_batch_tokens, (long long)c->train_seq_len, (long long)c->iterations,
         (long long)c->warmup_steps, c->max_wallclock_seconds);
    log0("seed:%lld", (long long)c->seed);
}

int cmd_train(int argc, char **argv) {
    Trainer t = {0};
    Config *c = &t.c;
    cli_setup(c, argc, argv, TRAIN_GROUPS, "train",
              "Train the GPT (train_gpt.py semantics, the seeds' techniques as switches or --preset), export the artifact and evaluate the round trip.", 0);
    Compressor comp = compressor_from_name(c->compressor); // bad export settings fail now, not after training
    if (c->compressor_level > 0) compressor_check_level(comp, (int)c->compressor_level);
    quant_scheme_from_config(c);
    setup(&t);
    int64_t step = 0;
    double training_time_ms = 0;
    gpt_set_recurrence(&t.m, recurrence_active(c, 0, 0)); // the warmup steps run step 0's layout
    if (c->resume[0]) {
        TrainPosition pos;
        checkpoint_load(c->resume, &t.m, &t.os, &pos);
        step = pos.step;
        training_time_ms = pos.training_time_ms;
        token_stream_seek(t.stream, pos.data_pos);
        log0("resumed:%s step:%lld train_time:%.0fms", c->resume, (long long)step, training_time_ms);
    } else {
        warmup(&t);
        if (c->ema_enabled) ema_start(&t.os, &t.m); // from the weights training starts with, as #638 does
    }

    gpt_set_recurrence(&t.m, recurrence_active(c, step, training_time_ms));
    const double max_ms = c->max_wallclock_seconds > 0 ? 1000.0 * c->max_wallclock_seconds : 0;
    int64_t stop_after = -1, first_step = step;
    double t0 = now_seconds();
    for (;;) {
        int last = step == c->iterations || (stop_after >= 0 && step >= stop_after);
        if (last || (c->val_loss_every > 0 && step % c->val_loss_every == 0)) {
            training_time_ms += 1000.0 * (now_seconds() - t0);
            double loss, bpb;
            validate(&t, &loss, &bpb);
            log0("step:%lld/%lld val_loss:%.4f val_bpb:%.4f train_time:%.0fms step_avg:%.2fms", (long long)step,
                 (long long)c->iterations, loss, bpb, training_time_ms, training_time_ms / (double)(step > 1 ? step : 1));
            t0 = now_seconds();
        }
        if (last) {
            if (stop_after >= 0 && step < c->iterations)
                log0("stopping_early: wallclock_cap train_time:%.0fms step:%lld/%lld", training_time_ms, (long long)step,
                     (long long)c->iterations);
            break;
        }
        double elapsed_ms = training_time_ms + 1000.0 * (now_seconds() - t0);
        double lr_mul = lr_schedule(c, step, elapsed_ms);
        if (t.m.cfg.looped_len > t.m.cfg.layers && recurrence_active(c, step, elapsed_ms) != t.m.recur_on) {
            gpt_set_recurrence(&t.m, !t.m.recur_on);
            log0("recurrence:%s step:%lld virtual_layers:%d", t.m.recur_on ? "on" : "off", (long long)step, t.m.n_order);
        }
        if (!t.qat_on && (c->qat_enabled || (c->late_qat && lr_mul < c->qat_threshold))) {
            t.qat_on = 1;
            log0("late_qat:enabled step:%lld scale:%.4f", (long long)step, lr_mul);
        }
        if (t.qat_on) qat_begin(&t.qat, &t.m); // forward and backward on the fake-quantized weights
        double train_loss = accumulate_gradients(&t);
        if (t.qat_on) qat_end(&t.qat, &t.m); // the float weights take the update
        if (!isfinite(train_loss)) die("train_loss is %f at step %lld: training diverged", train_loss, (long long)step);
        if (c->dump_grads[0] && step == first_step) { // testing: the gradients as the backward left them
            checkpoint_save_tensors(c->dump_grads, &t.m.grad_list, NULL, NULL, 0);
            log0("dump_grads:%s", c->dump_grads);
        }
        optimizer_step(&t, step, lr_mul);
        if (c->ema_enabled) ema_update(&t.os, &t.m, c->ema_decay);
        step++;
        double approx_ms = training_time_ms + 1000.0 * (now_seconds() - t0);
        if (c->train_log_every > 0 && (step <= 10 || step % c->train_log_every == 0 || stop_after >= 0))
            log0("step:%lld/%lld train_loss:%.4f train_time:%.0fms step_avg:%.2fms", (long long)step,
                 (long long)c->iterations, train_loss, approx_ms, approx_ms / (double)step);
        if (c->checkpoint_every > 0 && step % c->checkpoint_every == 0) {
            training_time_ms += 1000.0 * (now_seconds() - t0);
            save_checkpoint(&t, step, training_time_ms);
            t0 = now_seconds();
            if (step == c->kill_after_step) raise(SIGKILL); // fault injection for the resume test
        }
        if (stop_after < 0 && max_ms > 0 && approx_ms >= max_ms) stop_after = step;
    }
    save_checkpoint(&t, step, training_time_ms);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    log0("peak memory: %ld MiB (max resident set size)", ru.ru_maxrss / 1024);
    if (c->ema_enabled) {
        log0("ema:applying EMA weights");
        ema_apply(&t.os, &t.m);
    }
    export_and_roundtrip(&t);
    log_close();
    return 0;
}
