#include "tensor.h"

#include <string.h>

const TensorView *tensor_list_find(const TensorList *list, const char *name) {
    for (int i = 0; i < list->count; i++)
        if (!strcmp(list->items[i].name, name)) return &list->items[i];
    return NULL;
}
