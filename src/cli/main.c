// pgolf: the Parameter Golf system in C. Dispatches to the subcommands.
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "presets.h"
#include "util.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} COMMANDS[] = {
    {"prep", cmd_prep, "turn a text corpus into a SentencePiece tokenizer and train/val shards"},
    {"train", cmd_train, "train a model (train_gpt.py semantics, or a seed's stack), export it and evaluate the round trip"},
    {"eval", cmd_eval, "evaluate an artifact on the validation shards"},
    {"inspect", cmd_inspect, "print an artifact's configuration, tensors and bytes against the limit"},
    {"info", cmd_info, "print the model configuration and parameter count"},
    {"sample", cmd_sample, "generate text from an artifact or checkpoint"},
    {"ablate", cmd_ablate, "train a control and variants over several seeds; Welch t-test table"},
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof *COMMANDS))

static void usage(FILE *f) {
    fprintf(f, "usage: pgolf <command> [options]   (pgolf <command> --help lists its options)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\nEvery option is also read from the environment variable of train_gpt.py's name (NUM_LAYERS=4 ...).\n");
    fprintf(f, "\npresets (--preset NAME sets a seed's whole configuration; pgolf info --preset NAME shows it):\n");
    for (int i = 0; preset_at(i); i++) fprintf(f, "  %-14s %s\n", preset_at(i)->name, preset_at(i)->summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "pgolf: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
