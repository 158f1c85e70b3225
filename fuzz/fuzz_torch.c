// libFuzzer target for the torch.save reader (`pgolf eval`, `pgolf inspect`, `pgolf sample` and
// INIT_CHECKPOINT take train_gpt.py's and the records' files): any byte string must either load, with every
// tensor readable and a summary printable, or be rejected through die(). Its decompressors, zip
// directory, pickle machine, storage views and both exports' dequantization take the bytes as they come.
#include "fuzz_input.h"
#include "io/torch_file.h"

static volatile double g_sink; // every value read lands here, so no read is optimized away
static FILE *g_devnull;        // where `pgolf inspect`'s summary of an accepted input goes

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size, ".pt");
    if (FUZZ_ACCEPTED) {
        int quantized;
        SafeTensors *st = torch_file_load(path, &quantized);
        double sum = quantized;
        for (int i = 0; i < st_count(st); i++) {
            const StTensor *t = st_find(st, st_name(st, i));
            for (int64_t k = 0; k < t->numel; k++) sum += t->f ? t->f[k] : (double)t->i[k];
        }
        st_free(st);
        g_sink = sum;
        if (!g_devnull) g_devnull = fopen("/dev/null", "w");
        torch_file_print_summary(path, g_devnull); // the same load, with the storage notes
    }
    return 0;
}
