// Checked system helpers, timing, randomness and atomic file writes.
// Every failure is reported once, where it happens, with file/line and a reason, then exit(1).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define PG_NORETURN __attribute__((noreturn))
#define PG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PG_NORETURN
#define PG_PRINTF(a, b)
#endif

// Print "pgolf: error: <msg>" and exit(1). Use for bad input and failed system calls.
PG_NORETURN void die(const char *fmt, ...) PG_PRINTF(1, 2);
// Fuzzers and tests only: die() first calls hook with its message (without "pgolf: error: "). The hook
// may longjmp away; if it returns, die() prints and exits as usual. Returns the hook it replaces.
typedef void (*DieHook)(const char *msg);
DieHook die_set_hook(DieHook hook);

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
FILE *xfopen_at(const char *path, const char *mode, const char *file, int line);
void xfread_at(void *dst, size_t size, size_t count, FILE *f, const char *path, const char *file, int line);
void xfwrite_at(const void *src, size_t size, size_t count, FILE *f, const char *path, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(c, s) xcalloc_at((c), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
#define xfopen(p, m) xfopen_at((p), (m), __FILE__, __LINE__)
#define xfread(d, s, c, f, path) xfread_at((d), (s), (c), (f), (path), __FILE__, __LINE__)
#define xfwrite(d, s, c, f, path) xfwrite_at((d), (s), (c), (f), (path), __FILE__, __LINE__)

// Whole-file read; dies with the path on failure. *len receives the size.
uint8_t *read_file(const char *path, size_t *len);
// Size of a file in bytes, or -1 if it cannot be stat'ed.
int64_t file_size(const char *path);

// Temporary paths removed when the process exits, by exit() or die(), or is stopped by SIGINT, SIGTERM or
// SIGHUP (which then end it as they would): a failed or interrupted command leaves no half-written file or
// scratch directory behind (SIGKILL still may). A directory is removed once empty: register the files it
// will hold too. keep_at_exit takes a path off the list (once it is renamed into place).
void remove_at_exit(const char *path);
void keep_at_exit(const char *path);
// Where temporary files go: $TMPDIR (the system's convention, not a pgolf setting), or /tmp.
const char *temp_dir(void);
// Child processes ended with the process: at exit by SIGTERM, on SIGINT/SIGTERM/SIGHUP by the same
// signal, each waited for before the removals above. child_reaped takes a pid off once waitpid returned it.
void end_child_at_exit(pid_t pid);
void child_reaped(pid_t pid);

// Atomic file writes: everything goes to "<path>.tmp.<pid>", and only atomic_commit renames it
// over <path>, so a killed process never leaves a half-written file under the real name; a process that
// dies before the commit removes the temporary file (remove_at_exit).
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
} AtomicFile;
AtomicFile atomic_open(const char *path);
void atomic_write(AtomicFile *af, const void *src, size_t n);
void atomic_commit(AtomicFile *af); // fflush + fsync + rename; dies on failure
void write_file_atomic(const char *path, const void *src, size_t n);

// Sorted list of paths matching a glob pattern. Returns count; *paths owned by caller (free_paths).
int glob_sorted(const char *pattern, char ***paths);
void free_paths(char **paths, int n);
void mkdir_p(const char *dir);

double now_seconds(void); // monotonic clock

// Deterministic random numbers (splitmix64 seeded xoshiro256**); independent of libc.
typedef struct {
    uint64_t s[4];
} Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r); // [0, 1)
double rng_normal(Rng *r);  // N(0, 1)

// Round a float to the nearest bfloat16 (round-to-nearest-even), returned as float.
float bf16_round(float x);
// A double as Python's repr prints it in f-strings (shortest round-trip digits, "0.0" not "0"), so
// log lines match the reference's text. buf needs 32 bytes.
char *py_float_repr(char *buf, double x);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);

// Log to stdout and, if set, to the run's log file (like the reference's log0).
void log_open(const char *path);
void log_close(void);
void log0(const char *fmt, ...) PG_PRINTF(1, 2);
void log_file_only(const char *fmt, ...) PG_PRINTF(1, 2);

// One-line progress on stderr for long phases: "label: done/total (pct%)".
void progress(const char *label, int64_t done, int64_t total);
