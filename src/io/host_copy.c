#include "io/host_copy.h"

#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util.h"

HostTensors host_alloc_like(const TensorList *src) {
    size_t total = 0;
    for (int i = 0; i < src->count; i++) total += (size_t)tensor_numel(&src->items[i]);
    HostTensors h = {{xcalloc((size_t)src->count + 1, sizeof(TensorView)), src->count}, xcalloc(total + 1, sizeof(real))};
    size_t off = 0;
    for (int i = 0; i < src->count; i++) {
        h.list.items[i] = src->items[i];
        h.list.items[i].data = h.block + off;
        off += (size_t)tensor_numel(&src->items[i]);
    }
    return h;
}

HostTensors host_copy(const TensorList *src) {
    HostTensors h = host_alloc_like(src);
    for (int i = 0; i < src->count; i++)
        ops_to_host(h.list.items[i].data, src->items[i].data, (size_t)tensor_numel(&src->items[i]));
    return h;
}

void host_upload(const HostTensors *h, const TensorList *dst) {
    for (int i = 0; i < dst->count; i++)
        ops_from_host(dst->items[i].data, h->list.items[i].data, (size_t)tensor_numel(&dst->items[i]));
}

void host_free(HostTensors *h) {
    free(h->list.items);
    free(h->block);
    memset(h, 0, sizeof *h);
}
