// Export schemes: which storage each tensor of a state dict gets (QUANT_SCHEME).
//   int8       train_gpt.py's quantize_state_dict_int8 (int8_clean_per_row_v1), the default.
//   int6       #638's mixed_quantize_int6: attention and MLP matrices at ATTN_BITS / MLP_BITS (default
//              MATRIX_BITS) per row with s = amax / qmax (clamp [-qmax-1, qmax]); embeddings int8 as the
//              reference unless EMBED_BITS < 8; other large tensors int8 as the reference.
//   int6-lite  the same routing with GPTQ-lite's per-matrix percentile search (symmetric clamp).
//   gptq       #1435/#2005: attention and MLP matrices (MATRIX_BITS) and the tied embedding / head
//              (EMBED_BITS) through GPTQ with SDClip scales (GPTQ_CLIP=search: #1435's percentile search).
// In every non-int8 scheme, tensors of <= 65,536 elements are fp16 (control tensors included, as the
// records do), larger control tensors fp32.
#pragma once
#include "config.h"
#include "export/quant_int8.h"
#include "tensor.h"

#define QUANT_SCHEME_NAMES "int8_clean_per_row_v1, int6_amax_per_row_v1, int6_lite_per_row_v1, gptq_per_row_v1"
int quant_scheme_known(const char *artifact_scheme);

typedef enum { SCHEME_INT8, SCHEME_INT6, SCHEME_INT6_LITE, SCHEME_GPTQ } SchemeId;
typedef struct {
    SchemeId id;
    int attn_bits, mlp_bits, embed_bits;
    double matrix_clip_sigmas, embed_clip_sigmas;
    int clip_search; // gptq: percentile search instead of SDClip
} QuantScheme;

QuantScheme quant_scheme_from_config(const Config *c); // dies on an unknown scheme or bit width
const char *quant_scheme_artifact_name(const QuantScheme *s);
const char *quant_scheme_label(const QuantScheme *s); // "int8", "int6", ... for log lines

typedef enum { CLASS_ATTN, CLASS_MLP, CLASS_EMBED, CLASS_OTHER } TensorClass;
TensorClass quant_tensor_class(const char *name); // #638's _classify_param

// The Hessian [cols x cols] of a tensor's inputs, or NULL when there is none (then GPTQ falls back to rounding).
typedef const double *(*HessianFn)(const char *name, void *ctx);
void quant_scheme_state(const QuantScheme *s, const TensorList *state, HessianFn hessian, void *ctx, QuantState *out,
                        QuantStats *stats);
