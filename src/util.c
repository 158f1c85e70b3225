#include "util.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------- errors and checked calls

static DieHook g_die_hook;
static FILE *g_log; // the run's log file (logging, below), where open

DieHook die_set_hook(DieHook hook) {
    DieHook old = g_die_hook;
    g_die_hook = hook;
    return old;
}

// The error line goes to stderr and, during a run, to its log too: the log says why the run stopped.
void die(const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_die_hook) g_die_hook(msg); // a fuzzer's or the test runner's way out
    fflush(stdout);
    for (FILE *f = stderr; f; f = f == stderr ? g_log : NULL) fprintf(f, "pgolf: error: %s\n", msg);
    exit(1);
}

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory allocating %zu bytes (%s:%d)", n, file, line);
    return p;
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die("out of memory allocating %zu x %zu bytes (%s:%d)", count, size, file, line);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die("out of memory reallocating %zu bytes (%s:%d)", n, file, line);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

FILE *xfopen_at(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) die("cannot open %s (mode %s): %s (%s:%d)", path, mode, strerror(errno), file, line);
    return f;
}

void xfread_at(void *dst, size_t size, size_t count, FILE *f, const char *path, const char *file, int line) {
    if (fread(dst, size, count, f) != count)
        die("%s: truncated or unreadable (wanted %zu x %zu bytes) (%s:%d)", path, count, size, file, line);
}

void xfwrite_at(const void *src, size_t size, size_t count, FILE *f, const char *path, const char *file, int line) {
    if (fwrite(src, size, count, f) != count)
        die("%s: write failed: %s (%s:%d)", path, strerror(errno), file, line);
}

uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = xfopen(path, "rb");
    if (fseek(f, 0, SEEK_END) != 0) die("%s: cannot seek", path);
    long n = ftell(f);
    if (n < 0) die("%s: cannot tell size", path);
    rewind(f);
    uint8_t *buf = xmalloc((size_t)n + 1);
    xfread(buf, 1, (size_t)n, f, path);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int64_t file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

// ---------------------------------------------------------------- temporary paths

#define EXIT_REMOVALS 16 // at once: prep holds its directory, the files in it and a file being written
static char *volatile g_exit_removals[EXIT_REMOVALS];

// Files first, then directories (a directory goes once the files registered in it are gone): unlink and
// rmdir only, the calls a signal handler may make, so exit and the signals share it.
static void remove_registered(void) {
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < EXIT_REMOVALS; i++) {
            char *p = g_exit_removals[i];
            if (p && pass) rmdir(p);
            else if (p) unlink(p);
        }
}

// Child processes (ablate's training runs, spm_train) end with pgolf: a `kill` of pgolf alone must not
// leave a training run going for hours or spm_train writing into a removed directory.
#define EXIT_CHILDREN 4
static volatile pid_t g_exit_children[EXIT_CHILDREN];

// kill and waitpid only (signal-safe); waiting lets a child finish its writes before the removals.
static void end_children(int sig) {
    for (int i = 0; i < EXIT_CHILDREN; i++) {
        pid_t pid = g_exit_children[i];
        if (pid > 0 && kill(pid, sig) == 0) waitpid(pid, NULL, 0);
        g_exit_children[i] = 0;
    }
}

static void end_children_and_remove(void) {
    end_children(SIGTERM);
    remove_registered();
}

// SIGINT, SIGTERM, SIGHUP: passed on to the children, the removals, then the signal's default action, so
// the process still ends by it.
static void end_children_and_remove_on_signal(int sig) {
    end_children(sig);
    remove_registered();
    signal(sig, SIG_DFL);
    raise(sig);
}

// At the first registration of either kind.
static void hook_exit_cleanup(void) {
    static int hooked;
    if (hooked) return;
    hooked = 1;
    atexit(end_children_and_remove);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction old, sa = {.sa_handler = end_children_and_remove_on_signal};
        sigemptyset(&sa.sa_mask);
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) // nohup's stay ignored
            sigaction(sigs[i], &sa, NULL);
    }
}

void remove_at_exit(const char *path) {
    hook_exit_cleanup();
    for (int i = 0; i < EXIT_REMOVALS; i++)
        if (!g_exit_removals[i]) {
            g_exit_removals[i] = xstrdup(path);
            return;
        }
    die("internal: more than %d temporary paths at once (%s)", EXIT_REMOVALS, path);
}

void keep_at_exit(const char *path) {
    for (int i = 0; i < EXIT_REMOVALS; i++) {
        char *p = g_exit_removals[i];
        if (p && !strcmp(p, path)) {
            g_exit_removals[i] = NULL; // before the free: a signal handler may read the list at any time
            free(p);
            return;
        }
    }
}

void end_child_at_exit(pid_t pid) {
    hook_exit_cleanup();
    for (int i = 0; i < EXIT_CHILDREN; i++)
        if (!g_exit_children[i]) {
            g_exit_children[i] = pid;
            return;
        }
    die("internal: more than %d child processes at once", EXIT_CHILDREN);
}

void child_reaped(pid_t pid) {
    for (int i = 0; i < EXIT_CHILDREN; i++)
        if (g_exit_children[i] == pid) g_exit_children[i] = 0;
}

const char *temp_dir(void) {
    const char *dir = getenv("TMPDIR");
    return dir && dir[0] ? dir : "/tmp";
}

// ---------------------------------------------------------------- atomic writes

AtomicFile atomic_open(const char *path) {
    AtomicFile af;
    size_t n = strlen(path) + 32;
    af.path = xstrdup(path);
    af.tmp_path = xmalloc(n);
    snprintf(af.tmp_path, n, "%s.tmp.%d", path, (int)getpid());
    af.f = xfopen(af.tmp_path, "wb");
    remove_at_exit(af.tmp_path);
    return af;
}

void atomic_write(AtomicFile *af, const void *src, size_t n) {
    xfwrite(src, 1, n, af->f, af->tmp_path);
}

void atomic_commit(AtomicFile *af) {
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) die("%s: flush failed: %s", af->tmp_path, strerror(errno));
    if (fclose(af->f) != 0) die("%s: close failed: %s", af->tmp_path, strerror(errno));
    if (rename(af->tmp_path, af->path) != 0) die("cannot rename %s to %s: %s", af->tmp_path, af->path, strerror(errno));
    keep_at_exit(af->tmp_path); // (the name is gone; the list must not remove a later file of that name)
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
}

void write_file_atomic(const char *path, const void *src, size_t n) {
    AtomicFile af = atomic_open(path);
    atomic_write(&af, src, n);
    atomic_commit(&af);
}

// ---------------------------------------------------------------- paths

int glob_sorted(const char *pattern, char ***paths) {
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g); // glob sorts by default
    if (rc == GLOB_NOMATCH) {
        *paths = NULL;
        return 0;
    }
    if (rc != 0) die("glob failed for pattern %s", pattern);
    char **out = xmalloc(sizeof(char *) * g.gl_pathc);
    for (size_t i = 0; i < g.gl_pathc; i++) out[i] = xstrdup(g.gl_pathv[i]);
    int n = (int)g.gl_pathc;
    globfree(&g);
    *paths = out;
    return n;
}

void free_paths(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

void mkdir_p(const char *dir) {
    char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) die("cannot create directory %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die("cannot create directory %s: %s", p, strerror(errno));
    free(p);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------- random numbers

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// ---------------------------------------------------------------- float formats

char *py_float_repr(char *buf, double x) {
    if (!isfinite(x)) return strcpy(buf, isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
    int digits = 1;
    for (; digits < 17; digits++) { // fewest significant digits that read back as x
        snprintf(buf, 32, "%.*e", digits - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    snprintf(buf, 32, "%.*e", digits - 1, x);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 < -4 || exp10 >= 16) return buf; // repr switches to exponent form here, as %e writes it
    snprintf(buf, 32, "%.*f", digits - 1 - exp10 > 0 ? digits - 1 - exp10 : 0, x);
    if (!strchr(buf, '.')) strcat(buf, ".0");
    return buf;
}

float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

// IEEE binary16 conversions in portable C (round to nearest even, like torch's .half()); not every
// compiler offers _Float16 (clang 14 on x86 does not).
uint16_t f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u)); // NaN, Inf
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                               // >= 65520: Inf
    if (a < 0x38800000u) { // below 2^-14: a subnormal half, in units of 2^-24 (exact scaling)
        float f;
        memcpy(&f, &a, 4);
        return (uint16_t)(sign | (uint32_t)rintf(f * 16777216.0f));
    }
    uint32_t r = a - 0x38000000u; // rebias the exponent (127 -> 15)
    r += 0x0fffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    float f;
    if (e == 0) {
        f = (float)m * 5.9604644775390625e-8f; // m * 2^-24
        memcpy(&u, &f, 4);
        u |= sign;
    } else if (e == 31) {
        u = sign | 0x7f800000u | (m << 13);
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}

// ---------------------------------------------------------------- logging

void log_open(const char *path) {
    if (g_log) fclose(g_log);
    g_log = xfopen(path, "a");
}

void log_close(void) {
    if (g_log) fclose(g_log);
    g_log = NULL;
}

static void log_v(int console, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    if (console) {
        vprintf(fmt, ap);
        putchar('\n');
        fflush(stdout);
    }
    if (g_log) {
        vfprintf(g_log, fmt, ap2);
        fputc('\n', g_log);
        fflush(g_log);
    }
    va_end(ap2);
}

void log0(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(1, fmt, ap);
    va_end(ap);
}

void log_file_only(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(0, fmt, ap);
    va_end(ap);
}

void progress(const char *label, int64_t done, int64_t total) {
    static double last;
    double t = now_seconds();
    if (done < total && t - last < 0.5) return; // at most twice a second
    last = t;
    if (!isatty(fileno(stderr))) {
        if (done == total) fprintf(stderr, "%s: %lld/%lld\n", label, (long long)done, (long long)total);
        return;
    }
    fprintf(stderr, "\r%s: %lld/%lld (%.0f%%)%s", label, (long long)done, (long long)total,
            total ? 100.0 * (double)done / (double)total : 100.0, done == total ? "\n" : "");
}
