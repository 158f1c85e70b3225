// torch.save files read as a tensor set, so `pgolf eval`, `pgolf sample` and INIT_CHECKPOINT take what
// train_gpt.py writes: final_model.pt (torch.save of the state_dict) and final_model.int8.ptz (zlib, or zstd
// in some records, of torch.save of quantize_state_dict_int8's "int8_clean_per_row_v1" object), the latter
// dequantized as
// dequantize_state_dict_int8 does (values rounded to each tensor's recorded dtype, then widened to float).
// Tensors may be F32, F16, BF16, I8, I32 or I64, views with any strides and storage offset. Nothing in
// the pickle is run: only dicts of tensors (plain or OrderedDict) are understood.
#pragma once
#include "io/safetensors.h"

typedef enum { TORCH_NONE, TORCH_ZIP, TORCH_ZLIB, TORCH_ZSTD } TorchFileKind;
// What the file's first bytes say: a torch.save zip archive, a zlib or zstd stream (of one, presumably: the
// records compress their int8 export either way), or neither (safetensors is neither).
TorchFileKind torch_file_sniff(const char *path);
// Dies with one line naming the file on anything malformed or unsupported. *quantized (if not NULL) is
// set when the file held the int8 export object rather than a state_dict.
SafeTensors *torch_file_load(const char *path, int *quantized);
