// Little-endian byte buffers shared by pgolf's binary formats (safetensors, the int8 artifact):
// a growable writer and a bounds-checked reader that dies naming the file instead of overrunning.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

// Tensor data is written and read with memcpy, which is only little-endian on little-endian hosts.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pgolf's file formats are little-endian and copied with memcpy: big-endian hosts need byte swaps in src/io/bytes.h"
#endif

static inline uint32_t le_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t le_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

// ---------------------------------------------------------------- writer

typedef struct {
    uint8_t *data;
    size_t len, cap;
} ByteBuf;

void bb_put(ByteBuf *b, const void *src, size_t n);
void bb_put_u8(ByteBuf *b, uint8_t v);
void bb_put_u32(ByteBuf *b, uint32_t v);
void bb_put_u64(ByteBuf *b, uint64_t v);
void bb_put_str(ByteBuf *b, const char *s); // u32 byte length, then the bytes (no NUL)
void bb_printf(ByteBuf *b, const char *fmt, ...) PG_PRINTF(2, 3);
void bb_free(ByteBuf *b);

// ---------------------------------------------------------------- reader

// Reads data[pos..len) of the file `path`; every overrun dies with "<path>: truncated ...".
typedef struct {
    const uint8_t *data;
    size_t len, pos;
    const char *path;
} ByteReader;

const uint8_t *br_take(ByteReader *r, size_t n, const char *what); // the next n bytes
uint8_t br_u8(ByteReader *r, const char *what);
uint32_t br_u32(ByteReader *r, const char *what);
uint64_t br_u64(ByteReader *r, const char *what);
// A bb_put_str string of at most max_len bytes without NUL bytes, as a NUL-terminated copy (caller frees).
char *br_str(ByteReader *r, size_t max_len, const char *what);

// ---------------------------------------------------------------- formatting

// "[8, 16]" into buf (for error messages and summaries); returns buf.
const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape);
