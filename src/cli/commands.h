// Subcommands of the pgolf binary and the helpers they share.
#pragma once
#include "config.h"
#include "export/artifact.h"
#include "model/gpt.h"

#define ARTIFACT_LIMIT_BYTES 16000000LL // decimal, as the challenge counts

int cmd_train(int argc, char **argv);
int cmd_prep(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_ablate(int argc, char **argv);

// Code bytes: the source bundle's (counted against the limit), and its files' uncompressed sizes.
long long pgolf_code_bytes(void);
long long pgolf_source_bytes(void);
// The artifact's dequantized weights into the model (through a host copy: the model's memory is the backend's).
void cli_load_artifact_weights(const Artifact *a, GPT *m);
// Loads the config for `cmd` (env, then flags), handles --help, rejects leftover flags and
// arguments beyond max_positional; applies NUM_THREADS and MATMUL_PRECISION. Returns the number of
// positional args left in argv[1..].
int cli_setup(Config *c, int argc, char **argv, unsigned groups, const char *cmd, const char *summary,
              int max_positional);
// What cli_setup applies to the process (NUM_THREADS, MATMUL_PRECISION; MAX_PASS_TOKENS checked), again
// for a command that takes more options from a file afterwards (a resumed run's stored configuration).
void cli_apply_process_settings(const Config *c);
