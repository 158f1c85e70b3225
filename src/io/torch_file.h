// torch.save files read as a tensor set, so `pgolf eval`, `pgolf sample` and INIT_CHECKPOINT take what
// train_gpt.py writes: final_model.pt (torch.save of the state_dict) and final_model.int8.ptz (zlib, or
// zstd in some records, of torch.save of quantize_state_dict_int8's "int8_clean_per_row_v1" object),
// dequantized as dequantize_state_dict_int8 does (each tensor rounded to its recorded dtype, then widened
// to float); and the later records' final_model.int6.ptz (mixed_quantize_int6's {"w", "m"}: zstd in #638,
// byte-shuffled brotli in #1435 and #2005, lzma (.xz) in others), dequantized as dequantize_mixed_int6 does. Tensors may be
// F32, F16, BF16, I8, I32 or I64, views with any strides and storage offset. Nothing in the pickle is
// run: only dicts of tensors (plain or OrderedDict) and those two objects are understood.
#pragma once
#include <stdio.h>

#include "io/safetensors.h"

typedef enum { TORCH_NONE, TORCH_ZIP, TORCH_ZLIB, TORCH_ZSTD, TORCH_BROTLI, TORCH_XZ } TorchFileKind;
// What the file's first bytes say: a torch.save zip archive (also #1435's byte-shuffled "BSHF" one), a
// zlib, zstd or xz stream (of one, presumably: the records compress their exports each way), a brotli
// stream that decodes to one, or none of these (safetensors is none).
TorchFileKind torch_file_sniff(const char *path);
// Dies with one line naming the file on anything malformed or unsupported. *quantized (if not NULL) is
// set when the file held one of the two export objects rather than a state_dict.
SafeTensors *torch_file_load(const char *path, int *quantized);
// `pgolf inspect` of such a file: what it holds and how it is compressed, each tensor's shape, storage
// ("int6 per-row + fp16 scales", "fp16", ...) and bytes, and the totals.
void torch_file_print_summary(const char *path, FILE *f);
