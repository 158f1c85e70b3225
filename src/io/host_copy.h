// Host copies of tensors that live in backend memory (parameters, optimizer state): what file I/O and
// export read and write. On the CPU backend this costs one copy; on a GPU it is the download/upload.
#pragma once
#include "tensor.h"

typedef struct {
    TensorList list; // same names and shapes as the source, data in `block`
    real *block;
} HostTensors;

HostTensors host_copy(const TensorList *src);                   // downloads every tensor
HostTensors host_alloc_like(const TensorList *src);             // the same layout, zeroed, nothing copied
void host_upload(const HostTensors *h, const TensorList *dst);  // h's values into dst's tensors (same order)
void host_free(HostTensors *h);
