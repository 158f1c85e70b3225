// The byte compressors an artifact's payload can use: zlib (the reference's), zstd (#638: level 22),
// brotli (#1435: quality 11) and lzma (the records' `lzma.compress(data, preset=6)`: an .xz stream with
// a CRC64 check, byte for byte what Python writes). Ids are stored in artifacts; never renumber them.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { COMPRESS_ZLIB = 1, COMPRESS_ZSTD = 2, COMPRESS_BROTLI = 3, COMPRESS_LZMA = 4 } Compressor;
#define COMPRESS_LAST COMPRESS_LZMA

const char *compressor_name(uint32_t id);          // "zlib", "zstd", "brotli", "lzma", or "unknown"
Compressor compressor_from_name(const char *name); // dies listing the choices
int compressor_default_level(Compressor c);        // zlib 9, zstd 22, brotli 11, lzma 6
// Dies naming the compressor and its range when level is outside it (zlib 0-9, zstd 1-22, brotli 0-11,
// lzma 0-9: xz's presets).
void compressor_check_level(Compressor c, int level);

// Returns a malloc'd buffer of *out_len compressed bytes.
uint8_t *compress_bytes(Compressor c, int level, const uint8_t *src, size_t n, size_t *out_len);
// Fills dst with exactly raw_len bytes. Returns NULL on success, else a reason (corrupt or short input).
const char *decompress_bytes(Compressor c, const uint8_t *src, size_t n, uint8_t *dst, size_t raw_len);
// #1435's byte shuffle (BSHF) with stride s: the bytes at 0, s, 2s, ..., then those at 1, 1 + s, ...; fp16
// scales and small ints compress better so. pgolf's artifacts use stride 2; #1435's files say theirs.
void byte_shuffle(const uint8_t *src, uint8_t *dst, size_t n, int stride);
void byte_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, int stride);

// A stream of unknown decompressed size (at most max_len bytes) into *out (malloc'd, *out_len bytes).
// Returns NULL on success, else a reason.
const char *decompress_unsized(Compressor c, const uint8_t *src, size_t n, size_t max_len, uint8_t **out, size_t *out_len);
// The first (at most cap) bytes a brotli stream decodes to, from its first n bytes; 0 if it is not brotli.
// Brotli has no magic number: this is how a file is recognized as brotli'd.
size_t brotli_head(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
