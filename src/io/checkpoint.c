#include "io/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "io/bytes.h"
#include "io/host_copy.h"
#include "io/safetensors.h"
#include "io/torch_file.h"
#include "presets.h"
#include "util.h"

void checkpoint_save_tensors(const char *path, const TensorList *tensors, const char *const *meta_keys,
                             const char *const *meta_values, int n_meta) {
    HostTensors h = host_copy(tensors);
    st_save(path, &h.list, meta_keys, meta_values, n_meta);
    host_free(&h);
}

void checkpoint_save_weights(const char *path, const GPT *m, const char *config_text) {
    const char *keys[] = {"format", "pgolf_config"}, *vals[] = {"pt", config_text};
    checkpoint_save_tensors(path, &m->param_list, keys, vals, 2);
}

void checkpoint_save_train(const char *path, const GPT *m, const OptimState *os, const TrainPosition *pos,
                           const char *config_text, const char *run_config) {
    TensorList opt = optim_state_views(os, m);
    TensorList all = {xmalloc(sizeof(TensorView) * (size_t)(m->param_list.count + opt.count)), 0};
    for (int i = 0; i < m->param_list.count; i++) all.items[all.count++] = m->param_list.items[i];
    for (int i = 0; i < opt.count; i++) all.items[all.count++] = opt.items[i];
    char step[32], adam_step[32], time_ms[64], file_idx[32], file_pos[32];
    snprintf(step, sizeof step, "%lld", (long long)pos->step);
    snprintf(adam_step, sizeof adam_step, "%lld", (long long)os->adam_step);
    snprintf(time_ms, sizeof time_ms, "%.17g", pos->training_time_ms);
    snprintf(file_idx, sizeof file_idx, "%d", pos->data_pos.file_idx);
    snprintf(file_pos, sizeof file_pos, "%lld", (long long)pos->data_pos.pos);
    const char *keys[] = {"format", "pgolf_config", "pgolf_run_config", "step", "adam_step", "training_time_ms",
                          "data_file_idx", "data_pos"};
    const char *vals[] = {"pt", config_text, run_config, step, adam_step, time_ms, file_idx, file_pos};
    checkpoint_save_tensors(path, &all, keys, vals, 8);
    free(all.items);
    free(opt.items);
}

static int64_t meta_int(const SafeTensors *st, const char *key, const char *path) {
    const char *v = st_meta(st, key);
    char *end;
    if (!v) die("checkpoint %s has no '%s' in its metadata: not a resumable pgolf checkpoint", path, key);
    long long x = strtoll(v, &end, 10);
    if (*end) die("checkpoint %s: metadata %s=%s is not an integer", path, key, v);
    return x;
}

// Each tensor of `dst` (backend memory) from the file, through a host copy.
static void load_into(const SafeTensors *st, const TensorList *dst, const char *path) {
    HostTensors h = host_alloc_like(dst);
    for (int i = 0; i < h.list.count; i++) st_copy_into(st, &h.list.items[i], path);
    host_upload(&h, dst);
    host_free(&h);
}

char *checkpoint_read_meta(const char *path, const char *key) {
    return torch_file_sniff(path) ? NULL : st_read_meta(path, key);
}

// How a file's tensors differ from a model's: the first of each kind of difference, and counts.
typedef struct {
    const char *missing, *unknown, *misshapen; // NULL: none
    int n_missing, n_unknown;
    const StTensor *file_shape; // of misshapen
    const TensorView *model_shape;
} TensorFit;

static TensorFit fit_of(const SafeTensors *st, const TensorList *params) {
    TensorFit f = {0};
    for (int i = 0; i < params->count; i++) {
        const TensorView *p = &params->items[i];
        const StTensor *t = st_find(st, p->name);
        if (!t && !f.n_missing++) f.missing = p->name;
        if (t && !st_same_shape(t, p) && !f.misshapen) f.misshapen = p->name, f.file_shape = t, f.model_shape = p;
    }
    for (int i = 0; i < st_count(st); i++) {
        const char *name = st_name(st, i);
        if (strncmp(name, "optim.", 6) && !tensor_list_find(params, name) && !f.n_unknown++) f.unknown = name;
    }
    return f;
}

// The presets whose model has exactly the file's tensors, as " --preset A, --preset B"; "" if none.
static void presets_that_fit(const SafeTensors *st, char *out, size_t cap) {
    out[0] = 0;
    for (int i = 0; preset_at(i); i++) {
        const Preset *p = preset_at(i);
        Config pc;
        config_defaults(&pc);
        config_apply_text(&pc, p->settings, p->name, CG_MODEL);
        GPTConfig g = gpt_config_from(&pc);
        real *base = xmalloc((size_t)gpt_count_params(&g) * sizeof(real)); // views need addresses; never touched
        TensorList list;
        ModelTensors ptrs;
        gpt_views(&g, base, &list, &ptrs);
        TensorFit f = fit_of(st, &list);
        if (!f.n_missing && !f.n_unknown && !f.misshapen)
            snprintf(out + strlen(out), cap - strlen(out), "%s --preset %s", out[0] ? "," : "", p->name);
        gpt_views_free(&list, &ptrs);
        free(base);
    }
}

// The file's tensors against the model's, names and shapes, before any is copied. A file without pgolf's
// configuration (train_gpt.py's, a record's, a converted one) is read into the model the options make, so
// a mismatch there says so, and names the presets whose model the file fits.
static void check_same_tensors(const SafeTensors *st, const TensorList *params, const char *path) {
    TensorFit f = fit_of(st, params);
    if (!f.n_missing && !f.n_unknown && !f.misshapen) return;
    char why[1024], fits[512];
    if (st_meta(st, "pgolf_config")) snprintf(why, sizeof why, "is it from a different model configuration?");
    else {
        presets_that_fit(st, fits, sizeof fits);
        snprintf(why, sizeof why, "the file stores no model options, so the model is the one the options make; %s%s",
                 fits[0] ? "the file fits" : "give a record's file its --preset, other files their NUM_LAYERS, "
                                             "MODEL_DIM, ... (`pgolf info` prints the model)", fits);
    }
    char a[128], b[128];
    if (f.misshapen)
        die("checkpoint %s: tensor %s has shape %s, the model's is %s: %s", path, f.misshapen,
            shape_str(a, sizeof a, f.file_shape->ndim, f.file_shape->shape),
            shape_str(b, sizeof b, f.model_shape->ndim, f.model_shape->shape), why);
    if (f.n_missing && f.n_unknown)
        die("checkpoint %s: tensor %s is missing (%d of the model's %d are; %d of the file's are not the model's, e.g. "
            "%s): %s", path, f.missing, f.n_missing, params->count, f.n_unknown, f.unknown, why);
    if (f.n_missing)
        die("checkpoint %s: tensor %s is missing (%d of the model's %d are): %s", path, f.missing, f.n_missing,
            params->count, why);
    die("checkpoint %s: unexpected tensor %s (%d of the file's are not the model's): %s", path, f.unknown, f.n_unknown,
        why);
}

void checkpoint_load(const char *path, GPT *m, OptimState *os, TrainPosition *pos) {
    SafeTensors *st = torch_file_sniff(path) ? torch_file_load(path, NULL) : st_load(path);
    check_same_tensors(st, &m->param_list, path);
    load_into(st, &m->param_list, path);
    if (os) {
        TensorList opt = optim_state_views(os, m);
        load_into(st, &opt, path);
        free(opt.items);
        os->adam_step = meta_int(st, "adam_step", path);
    }
    if (pos) {
        pos->step = meta_int(st, "step", path);
        const char *t = st_meta(st, "training_time_ms");
        pos->training_time_ms = t ? strtod(t, NULL) : 0;
        pos->data_pos.file_idx = (int)meta_int(st, "data_file_idx", path);
        pos->data_pos.pos = meta_int(st, "data_pos", path);
    }
    st_free(st);
}
