// libFuzzer target for the safetensors reader (checkpoints, `pgolf eval` of weights, INIT_CHECKPOINT and
// --resume read it): any byte string must either load, with every tensor and metadata value readable, or
// be rejected through die(). Its hand-written JSON parser takes the header as it comes.
#include "fuzz_input.h"
#include "io/safetensors.h"

static volatile double g_sink; // every value read lands here, so no read is optimized away

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size, ".safetensors");
    if (FUZZ_ACCEPTED) {
        free(st_read_meta(path, "pgolf_config")); // the header-only reader
        SafeTensors *st = st_load(path);
        double sum = 0;
        for (int i = 0; i < st_count(st); i++) {
            const StTensor *t = st_find(st, st_name(st, i));
            for (int64_t k = 0; k < t->numel; k++) sum += t->f ? t->f[k] : (double)t->i[k];
        }
        if (st_meta(st, "pgolf_config")) sum += 1;
        st_free(st);
        g_sink = sum;
    }
    return 0;
}
