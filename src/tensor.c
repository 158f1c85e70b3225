#include "tensor.h"

#include <stdio.h>
#include <string.h>

const TensorView *tensor_list_find(const TensorList *list, const char *name) {
    for (int i = 0; i < list->count; i++)
        if (!strcmp(list->items[i].name, name)) return &list->items[i];
    return NULL;
}

// CONTROL_TENSOR_NAME_PATTERNS, comma-separated (config.h has the default list). Process-wide like
// the reference's module constant; set whenever a model configuration is validated.
static char g_patterns[1024] = TENSOR_CONTROL_PATTERNS_DEFAULT;

void tensor_set_control_patterns(const char *csv) { snprintf(g_patterns, sizeof g_patterns, "%s", csv); }

int tensor_is_control(const char *name) {
    for (const char *p = g_patterns; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        for (const char *at = name; len && *at; at++) // is p[0..len) a substring of name?
            if (!strncmp(at, p, len)) return 1;
        p = end ? end + 1 : p + len;
    }
    return 0;
}
