#include "io/bytes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

// ---------------------------------------------------------------- writer

static void bb_reserve(ByteBuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void bb_put(ByteBuf *b, const void *src, size_t n) {
    bb_reserve(b, n);
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
}

void bb_put_u8(ByteBuf *b, uint8_t v) { bb_put(b, &v, 1); }
void bb_put_u32(ByteBuf *b, uint32_t v) { bb_put(b, &v, 4); }
void bb_put_u64(ByteBuf *b, uint64_t v) { bb_put(b, &v, 8); }

void bb_put_str(ByteBuf *b, const char *s) {
    size_t n = strlen(s);
    if (n > UINT32_MAX) die("string of %zu bytes is too long for a u32 length", n);
    bb_put_u32(b, (uint32_t)n);
    bb_put(b, s, n);
}

void bb_printf(ByteBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) die("bb_printf: bad format %s", fmt);
    bb_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void bb_free(ByteBuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

// ---------------------------------------------------------------- reader

const uint8_t *br_take(ByteReader *r, size_t n, const char *what) {
    if (n > r->len - r->pos)
        die("%s: truncated: %s needs %zu bytes at offset %zu, the file has %zu", r->path, what, n, r->pos, r->len);
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

uint8_t br_u8(ByteReader *r, const char *what) { return *br_take(r, 1, what); }
uint32_t br_u32(ByteReader *r, const char *what) { return le_u32(br_take(r, 4, what)); }
uint64_t br_u64(ByteReader *r, const char *what) { return le_u64(br_take(r, 8, what)); }

char *br_str(ByteReader *r, size_t max_len, const char *what) {
    uint32_t n = br_u32(r, what);
    if (n > max_len) die("%s: %s is %u bytes long (at most %zu allowed)", r->path, what, n, max_len);
    const uint8_t *p = br_take(r, n, what);
    if (memchr(p, 0, n)) die("%s: %s contains a NUL byte", r->path, what);
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

// ---------------------------------------------------------------- formatting

const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}
