#include "export/compress.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <limits.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "util.h"

// xz's decoder allocates what the stream's header asks for (its dictionary: 64 MiB at preset 9); a crafted
// header may ask for gigabytes, so decoding refuses above this
#define LZMA_DECODER_MEMLIMIT ((uint64_t)1 << 30)

// Why liblzma's decoder stopped. LZMA_OK and LZMA_BUF_ERROR: all input read, the stream unfinished (or,
// for the one-call decoder, the output full before it ended).
static const char *lzma_reason(lzma_ret r) {
    return r == LZMA_OK || r == LZMA_BUF_ERROR ? "truncated xz stream"
           : r == LZMA_FORMAT_ERROR            ? "not an xz stream"
           : r == LZMA_DATA_ERROR              ? "corrupt xz stream"
           : r == LZMA_MEMLIMIT_ERROR          ? "an xz stream that needs more than 1 GiB to decode"
           : r == LZMA_MEM_ERROR               ? "out of memory in lzma"
                                               : "lzma decoding failed";
}

const char *compressor_name(uint32_t id) {
    switch (id) {
    case COMPRESS_ZLIB: return "zlib";
    case COMPRESS_ZSTD: return "zstd";
    case COMPRESS_BROTLI: return "brotli";
    case COMPRESS_LZMA: return "lzma";
    default: return "unknown";
    }
}

Compressor compressor_from_name(const char *name) {
    for (uint32_t id = COMPRESS_ZLIB; id <= COMPRESS_LAST; id++)
        if (!strcmp(name, compressor_name(id))) return (Compressor)id;
    die("unknown compressor \"%s\" (choose zlib, zstd, brotli or lzma)", name);
}

// lzma: Python's lzma.compress default and the records' _compress(data, "lzma")
int compressor_default_level(Compressor c) {
    return c == COMPRESS_ZLIB ? 9 : c == COMPRESS_ZSTD ? 22 : c == COMPRESS_BROTLI ? 11 : 6;
}

void compressor_check_level(Compressor c, int level) {
    int lo = c == COMPRESS_ZSTD ? 1 : 0;
    int hi = c == COMPRESS_ZLIB ? 9 : c == COMPRESS_ZSTD ? ZSTD_maxCLevel() : c == COMPRESS_BROTLI ? BROTLI_MAX_QUALITY : 9;
    if (level < lo || level > hi) die("%s level %d is outside %d..%d", compressor_name(c), level, lo, hi);
}

uint8_t *compress_bytes(Compressor c, int level, const uint8_t *src, size_t n, size_t *out_len) {
    compressor_check_level(c, level);
    if (c == COMPRESS_ZLIB) {
        uLongf len = compressBound((uLong)n);
        uint8_t *out = xmalloc(len);
        int rc = compress2(out, &len, src, (uLong)n, level);
        if (rc != Z_OK) die("zlib compression failed (%s)", zError(rc));
        *out_len = len;
        return out;
    }
    if (c == COMPRESS_ZSTD) {
        size_t cap = ZSTD_compressBound(n);
        uint8_t *out = xmalloc(cap);
        size_t len = ZSTD_compress(out, cap, src, n, level);
        if (ZSTD_isError(len)) die("zstd compression failed (%s)", ZSTD_getErrorName(len));
        *out_len = len;
        return out;
    }
    if (c == COMPRESS_LZMA) { // Python's lzma.compress(src, preset=level): FORMAT_XZ, CHECK_CRC64, and its
        // streaming encoder (the one-call lzma_easy_buffer_encode also stores the block's sizes: 4 bytes more)
        size_t cap = lzma_stream_buffer_bound(n);
        uint8_t *out = xmalloc(cap);
        lzma_stream s = LZMA_STREAM_INIT;
        lzma_ret rc = lzma_easy_encoder(&s, (uint32_t)level, LZMA_CHECK_CRC64);
        s.next_in = src, s.avail_in = n, s.next_out = out, s.avail_out = cap;
        while (rc == LZMA_OK) rc = lzma_code(&s, LZMA_FINISH);
        *out_len = cap - s.avail_out;
        lzma_end(&s);
        if (rc != LZMA_STREAM_END) die("lzma compression failed (liblzma error %d)", (int)rc);
        return out;
    }
    size_t len = BrotliEncoderMaxCompressedSize(n);
    if (len == 0) len = n + 1024; // the bound is 0 for very large inputs
    uint8_t *out = xmalloc(len);
    if (!BrotliEncoderCompress(level, BROTLI_MAX_WINDOW_BITS, BROTLI_MODE_GENERIC, n, src, &len, out))
        die("brotli compression failed");
    *out_len = len;
    return out;
}

const char *decompress_bytes(Compressor c, const uint8_t *src, size_t n, uint8_t *dst, size_t raw_len) {
    if (c == COMPRESS_ZLIB) {
        uLongf len = (uLongf)raw_len;
        int rc = uncompress(dst, &len, src, (uLong)n);
        if (rc != Z_OK) return zError(rc);
        return len == raw_len ? NULL : "wrong decompressed size";
    }
    if (c == COMPRESS_ZSTD) {
        size_t len = ZSTD_decompress(dst, raw_len, src, n);
        if (ZSTD_isError(len)) return ZSTD_getErrorName(len);
        return len == raw_len ? NULL : "wrong decompressed size";
    }
    if (c == COMPRESS_BROTLI) {
        size_t len = raw_len;
        if (BrotliDecoderDecompress(n, src, &len, dst) != BROTLI_DECODER_RESULT_SUCCESS) return "corrupt brotli stream";
        return len == raw_len ? NULL : "wrong decompressed size";
    }
    if (c == COMPRESS_LZMA) { // one .xz stream, as compress_bytes writes it
        uint64_t memlimit = LZMA_DECODER_MEMLIMIT;
        size_t in_pos = 0, len = 0;
        lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, NULL, src, &in_pos, n, dst, &len, raw_len);
        if (r != LZMA_OK) return lzma_reason(r);
        return len == raw_len && in_pos == n ? NULL : "wrong decompressed size";
    }
    return "unknown compressor";
}

// Position p's bytes are the p-th run of the shuffled buffer: n / stride of them, one more for p < n % stride.
void byte_shuffle(const uint8_t *src, uint8_t *dst, size_t n, int stride) {
    size_t s = (size_t)stride, at = 0;
    for (size_t p = 0; p < s; p++)
        for (size_t i = p; i < n; i += s) dst[at++] = src[i];
}

void byte_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, int stride) {
    size_t s = (size_t)stride, at = 0;
    for (size_t p = 0; p < s; p++)
        for (size_t i = p; i < n; i += s) dst[i] = src[at++];
}

// Doubles *cap up to max_len; 0 when the buffer is already max_len bytes.
static int grow_output(uint8_t **buf, size_t *cap, size_t max_len) {
    if (*cap >= max_len) return 0;
    *cap = *cap * 2 < max_len ? *cap * 2 : max_len;
    *buf = xrealloc(*buf, *cap);
    return 1;
}

static const char *inflate_zlib(const uint8_t *src, size_t n, size_t max_len, uint8_t **buf, size_t *cap, size_t *len) {
    if (n >= UINT_MAX) return "compressed stream of 4 GiB or more";
    z_stream zs = {.next_in = (Bytef *)src, .avail_in = (uInt)n};
    if (inflateInit(&zs) != Z_OK) return "zlib cannot start";
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (*len == *cap && !grow_output(buf, cap, max_len)) break;
        size_t room = *cap - *len < UINT_MAX ? *cap - *len : UINT_MAX;
        zs.next_out = *buf + *len;
        zs.avail_out = (uInt)room;
        rc = inflate(&zs, Z_NO_FLUSH);
        *len += room - zs.avail_out;
        if (rc == Z_BUF_ERROR) rc = zs.avail_out ? Z_DATA_ERROR : Z_OK; // input ended inside the stream, or output full
    }
    size_t left = zs.avail_in;
    inflateEnd(&zs);
    if (rc == Z_OK) return "decompresses to more than the limit";
    if (rc == Z_DATA_ERROR) return "corrupt or truncated zlib stream";
    if (rc != Z_STREAM_END) return zError(rc);
    return left ? "bytes after the end of the zlib stream" : NULL;
}

// Frame after frame (concatenated zstd frames are one stream).
static const char *inflate_zstd(const uint8_t *src, size_t n, size_t max_len, uint8_t **buf, size_t *cap, size_t *len) {
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) return "zstd cannot start";
    ZSTD_inBuffer in = {src, n, 0};
    const char *err = NULL;
    for (;;) {
        if (*len == *cap && !grow_output(buf, cap, max_len)) {
            err = "decompresses to more than the limit";
            break;
        }
        ZSTD_outBuffer out = {*buf + *len, *cap - *len, 0};
        size_t r = ZSTD_decompressStream(d, &out, &in);
        *len += out.pos;
        if (ZSTD_isError(r)) err = ZSTD_getErrorName(r);
        else if (r == 0 && in.pos == in.size) break; // the last frame is complete
        else if (in.pos == in.size && out.pos < out.size) err = "truncated zstd stream";
        if (err) break;
    }
    ZSTD_freeDCtx(d);
    return err;
}

static const char *inflate_brotli(const uint8_t *src, size_t n, size_t max_len, uint8_t **buf, size_t *cap, size_t *len) {
    BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!d) return "brotli cannot start";
    size_t avail_in = n;
    const uint8_t *next_in = src;
    const char *err = NULL;
    for (;;) {
        if (*len == *cap && !grow_output(buf, cap, max_len)) {
            err = "decompresses to more than the limit";
            break;
        }
        size_t avail_out = *cap - *len;
        uint8_t *next_out = *buf + *len;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, NULL);
        *len = (size_t)(next_out - *buf);
        if (r == BROTLI_DECODER_RESULT_SUCCESS) err = avail_in ? "bytes after the end of the brotli stream" : NULL;
        else if (r == BROTLI_DECODER_RESULT_ERROR) err = "corrupt brotli stream";
        else if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) err = "truncated brotli stream";
        else continue; // needs more output: grow
        break;
    }
    BrotliDecoderDestroyInstance(d);
    return err;
}

// .xz streams, concatenated ones too (as Python's lzma.decompress reads them).
static const char *inflate_lzma(const uint8_t *src, size_t n, size_t max_len, uint8_t **buf, size_t *cap, size_t *len) {
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, LZMA_DECODER_MEMLIMIT, LZMA_CONCATENATED) != LZMA_OK) return "lzma cannot start";
    s.next_in = src;
    s.avail_in = n;
    const char *err = NULL;
    for (;;) {
        if (*len == *cap && !grow_output(buf, cap, max_len)) {
            err = "decompresses to more than the limit";
            break;
        }
        s.next_out = *buf + *len;
        s.avail_out = *cap - *len;
        lzma_ret r = lzma_code(&s, LZMA_FINISH);
        *len = (size_t)(s.next_out - *buf);
        if (r == LZMA_STREAM_END) break;
        if (r == LZMA_OK && s.avail_out == 0) continue; // needs more output: grow
        err = lzma_reason(r);
        break;
    }
    lzma_end(&s);
    return err;
}

size_t brotli_head(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!d) return 0;
    size_t avail_in = n, avail_out = cap;
    const uint8_t *next_in = src;
    uint8_t *next_out = dst;
    BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, NULL);
    BrotliDecoderDestroyInstance(d);
    return r == BROTLI_DECODER_RESULT_ERROR ? 0 : cap - avail_out;
}

const char *decompress_unsized(Compressor c, const uint8_t *src, size_t n, size_t max_len, uint8_t **out, size_t *out_len) {
    size_t cap = n < max_len / 4 ? n * 4 + 1024 : max_len, len = 0;
    if (cap > max_len) cap = max_len;
    uint8_t *buf = xmalloc(cap ? cap : 1);
    const char *err = c == COMPRESS_ZLIB     ? inflate_zlib(src, n, max_len, &buf, &cap, &len)
                      : c == COMPRESS_ZSTD   ? inflate_zstd(src, n, max_len, &buf, &cap, &len)
                      : c == COMPRESS_BROTLI ? inflate_brotli(src, n, max_len, &buf, &cap, &len)
                                             : inflate_lzma(src, n, max_len, &buf, &cap, &len);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *out_len = len;
    return NULL;
}
