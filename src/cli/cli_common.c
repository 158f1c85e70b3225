#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "io/host_copy.h"
#include "ops/ops.h"
#include "util.h"

void cli_load_artifact_weights(const Artifact *a, GPT *m) {
    HostTensors h = host_alloc_like(&m->param_list);
    artifact_dequantize_into(a, &h.list);
    host_upload(&h, &m->param_list);
    host_free(&h);
}

int cli_setup(Config *c, int argc, char **argv, unsigned groups, const char *cmd, const char *summary,
              int max_positional) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_help(cmd, summary, groups);
            exit(0);
        }
    config_defaults(c);
    argc = config_load(c, argc, argv, groups, cmd);
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--", 2)) die("unknown option %s for `pgolf %s` (see pgolf %s --help)", argv[i], cmd, cmd);
    if (argc - 1 > max_positional) die("unexpected argument '%s' for `pgolf %s`", argv[1 + max_positional], cmd);
    cli_apply_process_settings(c);
    return argc - 1;
}

void cli_apply_process_settings(const Config *c) {
    if (c->num_threads > 0) omp_set_num_threads((int)c->num_threads);
    if (!strcmp(c->matmul_precision, "fp32") || !strcmp(c->matmul_precision, "bf16"))
        ops_set_matmul_bf16(!strcmp(c->matmul_precision, "bf16"));
    else if (strcmp(c->matmul_precision, "auto"))
        die("MATMUL_PRECISION=%s must be fp32, bf16 or auto", c->matmul_precision);
    if (c->max_pass_tokens < 0) die("MAX_PASS_TOKENS=%lld must not be negative (0: automatic)", (long long)c->max_pass_tokens);
}
