// Training checkpoints as safetensors. Weights use train_gpt.py's state_dict names, so PyTorch
// loads final_model.safetensors into the reference GPT directly; the resumable checkpoint adds
// "optim.*" tensors and the loop's position in __metadata__.
#pragma once
#include <stdint.h>

#include "data/shard.h"
#include "model/gpt.h"
#include "optim/optim.h"

typedef struct {
    int64_t step;
    double training_time_ms;
    TokenStreamPos data_pos;
} TrainPosition;

// Backend tensors (parameters, gradients, optimizer state) to safetensors through a host copy, with
// n_meta __metadata__ pairs, atomically.
void checkpoint_save_tensors(const char *path, const TensorList *tensors, const char *const *meta_keys,
                             const char *const *meta_values, int n_meta);
// Weights only (what PyTorch loads with load_state_dict); config_text goes to __metadata__ as
// "pgolf_config" (the model's options and TRAIN_SEQ_LEN; st_read_meta reads it back).
void checkpoint_save_weights(const char *path, const GPT *m, const char *config_text);
// Weights, optimizer state and position, atomically; run_config (the run's whole configuration) goes to
// __metadata__ as "pgolf_run_config".
void checkpoint_save_train(const char *path, const GPT *m, const OptimState *os, const TrainPosition *pos,
                           const char *config_text, const char *run_config);
// One __metadata__ value of a checkpoint (caller frees); NULL where absent, and for a torch.save file.
char *checkpoint_read_meta(const char *path, const char *key);
// Loads weights into m from safetensors or a torch.save file (io/torch_file.h: train_gpt.py's or a
// record's final_model.pt or .ptz); with os/pos also the optimizer state and position (dies if absent).
// Every model tensor must be present with its shape; unexpected non-"optim." tensors are an error.
void checkpoint_load(const char *path, GPT *m, OptimState *os, TrainPosition *pos);
