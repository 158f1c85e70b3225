// safetensors files (the format of huggingface/safetensors): an 8-byte little-endian header length
// N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "value"}}, then the data buffer (offsets are relative to its start).
//
// pgolf writes every tensor as F32 under the names it is given (train_gpt.py's state_dict names),
// so PyTorch loads the model tensors with load_state_dict. Counters such as the optimizer step are
// kept in __metadata__ as decimal strings (safetensors metadata is string -> string), not as tensors.
// Reading accepts F32, F16 and BF16 (widened to float) and I8, I32 and I64 (widened to int64), and
// validates the whole file first: any problem is one error line naming the file.
#pragma once
#include <stdint.h>

#include "tensor.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I8, ST_I32, ST_I64 } StDtype;

typedef struct {
    char *name;
    StDtype dtype; // as stored in the file
    int ndim;      // 0 for a scalar
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t numel;
    float *f;   // [numel] for float dtypes, else NULL
    int64_t *i; // [numel] for integer dtypes, else NULL
} StTensor;

typedef struct SafeTensors SafeTensors;

// Writes `tensors` as F32 and the metadata pairs, atomically (temp file + rename).
void st_save(const char *path, const TensorList *tensors, const char *const *meta_keys, const char *const *meta_values,
             int n_meta);

SafeTensors *st_load(const char *path); // dies with a one-line reason on any malformed input
// One __metadata__ value of a file, reading only its header (caller frees; NULL where absent).
char *st_read_meta(const char *path, const char *key);
// A tensor set read from another format (io/torch_file.h): takes ownership of tensors[0..count), whose
// names must differ; it has no metadata.
SafeTensors *st_from_tensors(const char *path, StTensor *tensors, int count);
// Fills t->f (float dtypes) or t->i from t->numel little-endian elements of t->dtype at src.
void st_convert(StTensor *t, const uint8_t *src);
int st_count(const SafeTensors *st);    // tensors, in header order
const char *st_name(const SafeTensors *st, int i);
const StTensor *st_find(const SafeTensors *st, const char *name); // NULL if absent
const char *st_meta(const SafeTensors *st, const char *key);      // NULL if absent
// Whether the file's tensor t has the model tensor v's shape.
int st_same_shape(const StTensor *t, const TensorView *v);
// Copies tensor dst->name into dst->data; dies if it is missing, not a float tensor or shaped
// differently: "checkpoint <path>: tensor X has shape [8, 16], model expects [16, 16]".
void st_copy_into(const SafeTensors *st, const TensorView *dst, const char *path);
void st_free(SafeTensors *st);

const char *st_dtype_name(StDtype dtype);
int st_dtype_size(StDtype dtype); // bytes per element
