// libFuzzer target for the SentencePiece model reader (TOKENIZER_PATH: its protobuf is parsed by hand):
// any byte string must either load, with its byte tables and a decode of every piece computable, or be
// rejected through die().
#include <stdlib.h>

#include "data/spm.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size, ".model");
    if (FUZZ_ACCEPTED) {
        SpmModel *sp = spm_load(path);
        int64_t n = spm_vocab_size(sp);
        int16_t *base = malloc(sizeof(int16_t) * (size_t)n);
        uint8_t *space = malloc((size_t)n), *boundary = malloc((size_t)n);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
        spm_byte_tables(sp, n, base, space, boundary);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)i;
        free(spm_decode(sp, ids, n));
        free(base), free(space), free(boundary), free(ids);
        spm_free(sp);
    }
    return 0;
}
