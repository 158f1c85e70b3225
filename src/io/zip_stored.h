// Zip archives whose entries are stored uncompressed, read from memory: the container torch.save
// writes (PyTorch's zip serialization: <archive>/data.pkl, <archive>/data/<key>, ...). The central
// directory is the index; each entry's data starts after its local header, whose extra field torch
// uses to align the data, so the two headers' lengths differ. ZIP64 and compressed entries are refused.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;
    const uint8_t *data; // into the archive's buffer
    uint64_t size;
} ZipEntry;

typedef struct {
    ZipEntry *entries;
    int count;
} ZipArchive;

// Dies naming `path` on anything malformed; the entries point into buf, which must outlive them.
ZipArchive zip_read(const uint8_t *buf, size_t len, const char *path);
const ZipEntry *zip_find(const ZipArchive *z, const char *name); // NULL if absent
void zip_free(ZipArchive *z);
