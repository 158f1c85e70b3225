// Presets: every setting of a seed submission's stack (its README run command over its script's
// defaults), so `pgolf train --preset pr638` runs that configuration. A preset replaces the defaults;
// the environment and flags still override it.
#pragma once
#include <stdint.h>

typedef struct {
    const char *name, *summary;
    const char *settings;         // "ENV=value\n" lines
    int64_t reference_params;     // model_params of the PyTorch reference model of this stack
} Preset;

const Preset *preset_find(const char *name); // NULL if unknown
const Preset *preset_at(int i);              // the i-th preset, NULL past the end
void preset_die_unknown(const char *name);   // dies listing the presets
