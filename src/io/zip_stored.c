#include "io/zip_stored.h"

#include <stdlib.h>
#include <string.h>

#include "io/bytes.h"
#include "util.h"

#define EOCD_SIG 0x06054b50u
#define CENTRAL_SIG 0x02014b50u
#define LOCAL_SIG 0x04034b50u
#define EOCD_SIZE 22
#define MAX_COMMENT 65535

static uint16_t le_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

// The end-of-central-directory record: the last EOCD_SIG whose comment reaches the end of the buffer.
static size_t find_eocd(const uint8_t *buf, size_t len, const char *path) {
    if (len < EOCD_SIZE) die("%s: not a zip archive (%zu bytes)", path, len);
    size_t lowest = len - EOCD_SIZE > MAX_COMMENT ? len - EOCD_SIZE - MAX_COMMENT : 0;
    for (size_t at = len - EOCD_SIZE + 1; at-- > lowest;)
        if (le_u32(buf + at) == EOCD_SIG && at + EOCD_SIZE + le_u16(buf + at + 20) == len) return at;
    die("%s: no zip end-of-central-directory record (truncated?)", path);
}

ZipArchive zip_read(const uint8_t *buf, size_t len, const char *path) {
    size_t eocd = find_eocd(buf, len, path);
    uint16_t count = le_u16(buf + eocd + 10);
    uint32_t dir_size = le_u32(buf + eocd + 12), dir_at = le_u32(buf + eocd + 16);
    if (count == 0xFFFF || dir_at == 0xFFFFFFFFu) die("%s: ZIP64 archives are not supported", path);
    if ((uint64_t)dir_at + dir_size > eocd) die("%s: zip central directory lies outside the file", path);
    ByteReader dir = {buf + dir_at, dir_size, 0, path};
    ZipArchive z = {xcalloc(count ? count : 1, sizeof(ZipEntry)), 0};
    for (int k = 0; k < count; k++) {
        const uint8_t *h = br_take(&dir, 46, "zip central directory entry");
        if (le_u32(h) != CENTRAL_SIG) die("%s: zip central directory entry %d has a bad signature", path, k);
        uint16_t method = le_u16(h + 10), name_len = le_u16(h + 28), extra_len = le_u16(h + 30), comment_len = le_u16(h + 32);
        uint32_t csize = le_u32(h + 20), usize = le_u32(h + 24), local_at = le_u32(h + 42);
        const uint8_t *name = br_take(&dir, name_len, "zip entry name");
        br_take(&dir, (size_t)extra_len + comment_len, "zip entry extra field");
        ZipEntry *e = &z.entries[z.count++];
        e->name = xmalloc((size_t)name_len + 1);
        memcpy(e->name, name, name_len);
        e->name[name_len] = 0;
        if (memchr(name, 0, name_len)) die("%s: zip entry name with a NUL byte", path);
        if (method != 0 || csize != usize)
            die("%s: zip entry %s is compressed (method %u); torch.save stores entries uncompressed", path, e->name, method);
        if (usize == 0xFFFFFFFFu || local_at == 0xFFFFFFFFu)
            die("%s: zip entry %s needs ZIP64, which is not supported", path, e->name);
        if ((uint64_t)local_at + 30 > dir_at) die("%s: zip entry %s: local header outside the file", path, e->name);
        const uint8_t *lh = buf + local_at;
        if (le_u32(lh) != LOCAL_SIG) die("%s: zip entry %s: bad local header signature", path, e->name);
        uint64_t data_at = (uint64_t)local_at + 30 + le_u16(lh + 26) + le_u16(lh + 28);
        if (data_at + usize > dir_at) die("%s: zip entry %s: data runs past the central directory (truncated?)", path, e->name);
        e->data = buf + data_at;
        e->size = usize;
    }
    return z;
}

const ZipEntry *zip_find(const ZipArchive *z, const char *name) {
    for (int k = 0; k < z->count; k++)
        if (!strcmp(z->entries[k].name, name)) return &z->entries[k];
    return NULL;
}

void zip_free(ZipArchive *z) {
    for (int k = 0; k < z->count; k++) free(z->entries[k].name);
    free(z->entries);
    z->entries = NULL;
    z->count = 0;
}
