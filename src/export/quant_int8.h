// Post-training int8 quantization, exactly as train_gpt.py's quantize_state_dict_int8 and
// dequantize_state_dict_int8 (format "int8_clean_per_row_v1"):
//   - tensors of <= 65,536 elements stay float: fp32 if the name contains a control pattern
//     (attn_scale, mlp_scale, resid_mix, q_gain, skip_weight and their plurals), else fp16;
//   - larger 2-D tensors: int8 per row; clip = 99.99984th percentile of |w| in the row (torch.quantile,
//     linear interpolation), scale = max(clip / 127, 1 / 127) stored as fp16; q = round(clamp(w) / scale);
//   - other larger tensors: int8 with one fp32 scale (clip / 127 over the whole tensor, 1 if clip is 0).
// Dequantization multiplies by the stored (fp16-rounded for rows) scale, like the reference after
// its save/load round trip.
#pragma once
#include <stdint.h>

#include "tensor.h"

#define QUANT_INT8_SCHEME "int8_clean_per_row_v1"
#define QUANT_KEEP_FLOAT_MAX_NUMEL 65536
#define QUANT_CLIP_PERCENTILE 99.99984

typedef enum {
    QUANT_INT8_ROW = 1,    // int8 [numel] + fp16 scale per row [shape[0]]
    QUANT_INT8_TENSOR = 2, // int8 [numel] + one fp32 scale
    QUANT_FP16 = 3,        // fp16 [numel]
    QUANT_FP32 = 4,        // fp32 [numel]
    QUANT_ROW_NBIT = 5,    // 5..8-bit values in int8 [numel] + fp16 scale per row (export/quant_rows.h)
} QuantKind;

typedef struct {
    char name[TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    QuantKind kind;
    int bits;             // QUANT_ROW_NBIT: 5..8 (values lie in [-2^(bits-1), 2^(bits-1) - 1])
    int8_t *q;            // [numel], int8 kinds
    uint16_t *row_scales; // [shape[0]] fp16 bits, QUANT_INT8_ROW and QUANT_ROW_NBIT
    float scale;          // QUANT_INT8_TENSOR
    uint16_t *f16;        // [numel], QUANT_FP16
    float *f32;           // [numel], QUANT_FP32
} QuantTensor;

typedef struct {
    QuantTensor *items;
    int count;
} QuantState;

// The reference's counters. pgolf's model is fp32 everywhere, so the baseline counts 4 bytes per
// element (the reference keeps tok_emb in bf16 on GPU and counts 2 for it).
typedef struct {
    int64_t param_count, num_tensors;
    int64_t num_float_tensors;     // tensors that were int8-quantized (the reference's name)
    int64_t baseline_tensor_bytes; // numel * 4
    int64_t int8_payload_bytes;    // int8 values + scales + float passthrough bytes
} QuantStats;

QuantKind quant_int8_kind(const char *name, int ndim, int64_t numel);
// "int8 per-row + fp16 scales", "int6 per-row + fp16 scales", "fp16", ...; buf: 48 bytes.
const char *quant_storage_name(const QuantTensor *qt, char *buf);
// Allocates and fills out from t (dies on NaN/Inf, which have no int8 code).
void quant_int8_tensor(const TensorView *t, QuantTensor *out);
void dequant_int8_tensor(const QuantTensor *qt, real *out); // out: [numel]
// torch.quantile(|x|, q) over x[0..n), linear interpolation, bit-exact with torch 1.13 on CPU
// (the reference's clip uses q = 0.9999984). scratch: [n] floats, overwritten.
float quant_quantile_abs(const real *x, int64_t n, double q, float *scratch);
int64_t quant_tensor_bytes(const QuantTensor *qt);          // stored bytes, as int8_payload_bytes counts them
int64_t quant_tensor_numel(const QuantTensor *qt);
void quant_tensor_free(QuantTensor *qt);

// Every tensor of state in order, with the reference's stats.
void quant_int8_state(const TensorList *state, QuantState *out, QuantStats *stats);
void quant_state_free(QuantState *qs);
