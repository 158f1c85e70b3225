// libFuzzer target for the artifact reader: any byte string must either load or be rejected through
// die() -- never crash, read out of bounds or hang. The input's last four bytes are replaced by its
// CRC-32 first, so mutations get past the checksum into the table and payload parsers.
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "export/artifact.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size + 1);
    memcpy(buf, data, size);
    if (size >= 4) {
        uint32_t crc = (uint32_t)crc32_z(0, buf, size - 4);
        memcpy(buf + size - 4, &crc, 4);
    }
    const char *path = fuzz_input_file(buf, size, ".ptz");
    free(buf);
    if (FUZZ_ACCEPTED) {
        Artifact *a = artifact_load(path);
        char *text = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&text, &n);
        artifact_print_summary(a, m); // everything a loaded artifact offers must be safe to read
        fclose(m);
        free(text);
        artifact_free(a);
    } else {
        artifact_abandon_load();
    }
    return 0;
}
