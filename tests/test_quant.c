// int8 export against train_gpt.py's quantize/dequantize (fixtures from tests/ref_int8.py).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/export/quant_int8.h"
#include "../src/io/safetensors.h"
#include "../src/util.h"
#include "test.h"

static SafeTensors *load_fixture(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_fixture_dir(), file);
    if (file_size(path) < 0) {
        test_fail(__FILE__, __LINE__, "missing %s: run /usr/bin/python3 tests/ref_int8.py --out %s", path,
                  test_fixture_dir());
        return NULL;
    }
    return st_load(path);
}

static TensorView view_of(const StTensor *t, float *data) {
    TensorView v = {.ndim = t->ndim, .data = data};
    snprintf(v.name, sizeof v.name, "%s", t->name);
    memcpy(v.shape, t->shape, sizeof v.shape);
    return v;
}

static const float *in_data(const SafeTensors *in, const char *name) { return st_find(in, name)->f; }

static int64_t meta_i64(const SafeTensors *st, const char *key) {
    const char *v = st_meta(st, key);
    return v ? strtoll(v, NULL, 10) : -1;
}

static const char *kind_label(QuantKind k) {
    return k == QUANT_INT8_ROW ? "per_row" : k == QUANT_INT8_TENSOR ? "per_tensor" : k == QUANT_FP16 ? "fp16" : "fp32";
}

// Every clip value, int8 value and scale must equal the reference's exactly: pgolf computes the
// percentile the way torch 1.13's CPU quantile does (fp32 rank, fused lerp; the fixture has rows that
// tell a fused lerp from an unfused one), so no tolerance is needed. Dequantized values then match
// to 1e-6 relative (they are exact products in fp32).
TEST(quant_int8_matches_reference) {
    SafeTensors *in = load_fixture("int8_inputs.safetensors"), *ex = load_fixture("int8_expected.safetensors");
    if (!in || !ex) return;
    int n = st_count(in);
    TensorView *views = calloc((size_t)n, sizeof(TensorView));
    for (int k = 0; k < n; k++) views[k] = view_of(st_find(in, st_name(in, k)), st_find(in, st_name(in, k))->f);
    TensorList state = {views, n};
    QuantState qs;
    QuantStats stats;
    quant_int8_state(&state, &qs, &stats);
    CHECK(qs.count == n, "count %d vs %d", qs.count, n);
    for (int k = 0; k < qs.count; k++) {
        const QuantTensor *qt = &qs.items[k];
        int64_t numel = quant_tensor_numel(qt);
        char key[256];
        snprintf(key, sizeof key, "kind.%s", qt->name);
        const char *kind = st_meta(ex, key);
        CHECK(kind && !strcmp(kind, kind_label(qt->kind)), "%s: kind %s, reference %s", qt->name, kind_label(qt->kind),
              kind ? kind : "(none)");
        if (qt->kind == QUANT_INT8_ROW || qt->kind == QUANT_INT8_TENSOR) {
            snprintf(key, sizeof key, "%s.q", qt->name);
            const StTensor *q = st_find(ex, key);
            snprintf(key, sizeof key, "%s.scale", qt->name);
            const StTensor *s = st_find(ex, key);
            if (!q || !s || q->numel != numel) {
                CHECK(0, "%s: reference q/scale missing or wrong size", qt->name);
                continue;
            }
            snprintf(key, sizeof key, "%s.clip", qt->name);
            const StTensor *clip = st_find(ex, key);
            int64_t rows = qt->kind == QUANT_INT8_ROW ? qt->shape[0] : 1, cols = numel / rows;
            CHECK(clip && clip->numel == rows, "%s: reference clip values missing", qt->name);
            float *scratch = malloc(sizeof(float) * (size_t)cols);
            for (int64_t r = 0; clip && r < rows; r++) {
                float c = quant_quantile_abs(in_data(in, qt->name) + r * cols, cols, QUANT_CLIP_PERCENTILE / 100.0, scratch);
                if (c != clip->f[r]) {
                    CHECK(0, "%s: row %lld clip %.9g vs torch.quantile %.9g", qt->name, (long long)r, c, clip->f[r]);
                    break;
                }
            }
            free(scratch);
            int64_t bad = 0, first = -1;
            for (int64_t j = 0; j < numel; j++)
                if (qt->q[j] != q->i[j] && bad++ == 0) first = j;
            CHECK(bad == 0, "%s: %lld int8 values differ (first at %lld: %d vs %lld)", qt->name, (long long)bad,
                  (long long)first, first >= 0 ? qt->q[first] : 0, first >= 0 ? (long long)q->i[first] : 0);
            if (qt->kind == QUANT_INT8_ROW) {
                CHECK(s->dtype == ST_F16 && s->numel == qt->shape[0], "%s: reference scales", qt->name);
                for (int64_t r = 0; r < s->numel; r++)
                    if (f16_to_f32(qt->row_scales[r]) != s->f[r]) {
                        CHECK(0, "%s: row %lld scale %.9g vs %.9g", qt->name, (long long)r,
                              f16_to_f32(qt->row_scales[r]), s->f[r]);
                        break;
                    }
            } else {
                CHECK(s->numel == 1 && qt->scale == s->f[0], "%s: scale %.9g vs %.9g", qt->name, qt->scale, s->f[0]);
            }
        } else {
            snprintf(key, sizeof key, "%s.kept", qt->name);
            const StTensor *kept = st_find(ex, key);
            CHECK(kept && kept->numel == numel, "%s: reference passthrough missing", qt->name);
            if (!kept) continue;
            CHECK(kept->dtype == (qt->kind == QUANT_FP16 ? ST_F16 : ST_F32), "%s: stored dtype", qt->name);
            for (int64_t j = 0; j < numel; j++) {
                float v = qt->kind == QUANT_FP16 ? f16_to_f32(qt->f16[j]) : qt->f32[j];
                if (v != kept->f[j]) {
                    CHECK(0, "%s[%lld]: kept %.9g vs %.9g", qt->name, (long long)j, v, kept->f[j]);
                    break;
                }
            }
        }
        snprintf(key, sizeof key, "%s.deq", qt->name);
        const StTensor *deq = st_find(ex, key);
        CHECK(deq && deq->numel == numel, "%s: reference dequantized tensor missing", qt->name);
        if (!deq) continue;
        float *out = malloc(sizeof(float) * (size_t)numel);
        dequant_int8_tensor(qt, out);
        double worst = 0;
        for (int64_t j = 0; j < numel; j++) {
            double d = fabs((double)out[j] - deq->f[j]) / (fabs(deq->f[j]) + 1e-30);
            if (out[j] != deq->f[j] && d > worst) worst = d;
        }
        CHECK(worst <= 1e-6, "%s: dequantized values differ by %.3g relative", qt->name, worst);
        free(out);
    }
    CHECK(stats.param_count == meta_i64(ex, "param_count"), "param_count %lld", (long long)stats.param_count);
    CHECK(stats.num_tensors == meta_i64(ex, "num_tensors"), "num_tensors %lld", (long long)stats.num_tensors);
    CHECK(stats.num_float_tensors == meta_i64(ex, "num_float_tensors"), "num_float_tensors %lld",
          (long long)stats.num_float_tensors);
    CHECK(stats.baseline_tensor_bytes == meta_i64(ex, "baseline_tensor_bytes"), "baseline %lld",
          (long long)stats.baseline_tensor_bytes);
    CHECK(stats.int8_payload_bytes == meta_i64(ex, "int8_payload_bytes"), "payload %lld vs %lld",
          (long long)stats.int8_payload_bytes, (long long)meta_i64(ex, "int8_payload_bytes"));
    quant_state_free(&qs);
    free(views);
    st_free(in);
    st_free(ex);
}

TEST(quant_int8_kind_rules) {
    CHECK(quant_int8_kind("blocks.0.mlp.fc.weight", 2, 65536) == QUANT_FP16, "65,536 elements stay float");
    CHECK(quant_int8_kind("blocks.0.mlp.fc.weight", 2, 65537) == QUANT_INT8_ROW, "65,537 elements, 2-D: per row");
    CHECK(quant_int8_kind("blocks.0.mlp.fc.weight", 3, 65537) == QUANT_INT8_TENSOR, "3-D: per tensor");
    CHECK(quant_int8_kind("v", 1, 1 << 20) == QUANT_INT8_TENSOR, "1-D: per tensor");
    const char *control[] = {"blocks.3.attn_scale", "blocks.3.mlp_scale", "blocks.3.resid_mix", "blocks.3.attn.q_gain",
                             "skip_weights", "x.attn_scales", "x.mlp_scales", "x.resid_mixes", "skip_weight"};
    for (int k = 0; k < 9; k++) {
        CHECK(quant_int8_kind(control[k], 1, 512) == QUANT_FP32, "%s is a control tensor", control[k]);
        CHECK(quant_int8_kind(control[k], 2, 100000) == QUANT_INT8_ROW, "large %s is still quantized", control[k]);
    }
    CHECK(quant_int8_kind("blocks.3.attn.proj.bias", 1, 512) == QUANT_FP16, "small non-control: fp16");
}

// Hand-computed case independent of torch: clip = 31.75 (the two largest |w| are equal), so the row
// scale is exactly 0.25 and w / scale lands on halves, which round to even like torch.round.
TEST(quant_int8_round_half_even) {
    enum { COLS = 65600 };
    float *w = calloc(COLS, sizeof(float));
    w[0] = 31.75f, w[1] = -31.75f, w[2] = 0.625f, w[3] = 0.875f, w[4] = -0.625f, w[5] = -0.875f, w[6] = 0.125f;
    TensorView t = {.name = "w", .ndim = 2, .shape = {1, COLS}, .data = w};
    QuantTensor qt;
    quant_int8_tensor(&t, &qt);
    CHECK(qt.kind == QUANT_INT8_ROW, "kind");
    CHECK(f16_to_f32(qt.row_scales[0]) == 0.25f, "scale %.9g", f16_to_f32(qt.row_scales[0]));
    const int expect[] = {127, -127, 2, 4, -2, -4, 0};
    for (int k = 0; k < 7; k++) CHECK(qt.q[k] == expect[k], "q[%d] = %d, expected %d", k, qt.q[k], expect[k]);
    quant_tensor_free(&qt);
    free(w);
}

static void quantize_nan(void *arg) {
    float *w = calloc(70000, sizeof(float));
    w[123] = NAN;
    TensorView t = {.name = "blocks.0.mlp.fc.weight", .ndim = 1, .shape = {70000}, .data = w};
    QuantTensor qt;
    quant_int8_tensor(&t, &qt);
}

TEST(quant_int8_rejects_nan) {
    CHECK(test_dies_with(quantize_nan, NULL, "cannot quantize tensor blocks.0.mlp.fc.weight: element 123 is nan"),
          "NaN weight");
}
