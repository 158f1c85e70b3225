// Helpers of the tests that run commands and need data (declared in test.h).
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "data/shard.h"
#include "test.h"
#include "util.h"

int test_run(const char *cmd, char **output) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (len + 1 == cap) buf = xrealloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int status = pclose(p);
    *output = buf;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Tokens from a fixed random Markov chain over the first 200 ids: learnable, so loss must fall.
static void write_markov_shard(const char *path, int64_t n, uint64_t seed) {
    static int next[200][4];
    Rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < 200; i++)
        for (int k = 0; k < 4; k++) next[i][k] = 4 + (int)(rng_u64(&r) % 196);
    rng_seed(&r, seed);
    uint16_t *t = xmalloc(sizeof(uint16_t) * (size_t)n);
    t[0] = 1;
    for (int64_t i = 1; i < n; i++) t[i] = (uint16_t)next[t[i - 1] % 200][rng_u64(&r) % 4];
    shard_write(path, t, n);
    free(t);
}

const char *test_markov_dataset(const char *name) {
    const char *dir = test_tmpdir(name);
    char path[1024];
    snprintf(path, sizeof path, "%s/fineweb_train_000000.bin", dir);
    write_markov_shard(path, 30000, 1);
    snprintf(path, sizeof path, "%s/fineweb_train_000001.bin", dir);
    write_markov_shard(path, 20000, 2);
    snprintf(path, sizeof path, "%s/fineweb_val_000000.bin", dir);
    write_markov_shard(path, 8193, 3);
    return dir;
}

// test_code_bytes' walk: its rules and running sum
static struct {
    const char *skip_dir, *skip_cu;
    int cu;
    long long bytes;
} code_walk;

static int count_code_file(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    const char *ext = strrchr(path, '.');
    if (type != FTW_F || !ext || !strncmp(path, code_walk.skip_dir, strlen(code_walk.skip_dir))) return 0;
    int counted = !strcmp(ext, ".c") || !strcmp(ext, ".h") || (code_walk.cu && !strcmp(ext, ".cu") &&
                                                               (!code_walk.skip_cu || strcmp(path, code_walk.skip_cu)));
    if (counted) code_walk.bytes += st->st_size;
    return 0;
}

long long test_code_bytes(const char *skip_dir, int cu, const char *skip_cu) {
    code_walk.skip_dir = skip_dir, code_walk.skip_cu = skip_cu, code_walk.cu = cu, code_walk.bytes = 0;
    struct stat make, bundle;
    if (nftw("src", count_code_file, 16, FTW_PHYS) != 0 || stat("Makefile", &make) || stat("scripts/bundle.sh", &bundle))
        return -1;
    return code_walk.bytes + make.st_size + bundle.st_size;
}
