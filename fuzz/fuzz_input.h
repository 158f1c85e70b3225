// What the libFuzzer targets share (`make fuzz`): pgolf's readers take paths, so each input is written to
// this process's input file first; die() jumps back into the target (FUZZ_REJECTED) instead of exiting.
// A rejection through die() is fine; a crash, sanitizer report, hang or timeout is a failure.
#pragma once
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

static jmp_buf g_fuzz_rejected;
static void fuzz_on_die(const char *msg) {
    (void)msg;
    longjmp(g_fuzz_rejected, 1);
}

// Writes the input to /tmp/pgolf_fuzz_<pid><suffix> (removed when the fuzzer exits) and returns its path.
static const char *fuzz_input_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[256];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/pgolf_fuzz_%d%s", temp_dir(), (int)getpid(), suffix);
        remove_at_exit(path);
        die_set_hook(fuzz_on_die);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

// Runs `load` unless it is rejected: if (FUZZ_ACCEPTED) { use it } else { clean up }
#define FUZZ_ACCEPTED (setjmp(g_fuzz_rejected) == 0)
