// Minimal test framework: TEST(name) { ... CHECK(cond, fmt, ...) ... } registers itself at startup.
// The runner prints each failure with file:line and closes with "N passed, N failed".
#pragma once
#include <math.h>
#include <stdio.h>

typedef void (*TestFn)(void);
// The larger of a running worst difference and d, where a NaN d counts as infinite (fmax would drop
// it, and a comparison of NaN results would pass).
static inline double worse_of(double worst, double d) { return d <= worst ? worst : isnan(d) ? INFINITY : d; }
void test_register(const char *name, TestFn fn, const char *file);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Directory of ../shared/data (PGOLF_SHARED_DATA overrides) and of fixtures written by tests/ref_gpt.py.
const char *test_shared_data(void);
const char *test_fixture_dir(void);
// A fresh empty directory under build/tmp for this test's files (the string stays valid).
const char *test_tmpdir(const char *name);
// Marks the running test skipped (it must return without checks), e.g. "no CUDA device".
void test_skip(const char *why);
// Runs `cmd` with stderr merged; returns its exit status (128+signal when killed) and the output (tests/test_cli.c).
int test_run(const char *cmd, char **output);
// The bytes of the files a build bundles as its code (Makefile, CODE_FILES), walked from the repository
// root: every .c and .h file under src/ outside skip_dir, with `cu` every .cu file but skip_cu (a path, or
// NULL), the Makefile and scripts/bundle.sh; -1 if the walk fails (tests/test_helpers.c).
long long test_code_bytes(const char *skip_dir, int cu, const char *skip_cu);
// A directory of small train/val shards from a fixed Markov chain: learnable, so loss must fall (tests/test_cli.c).
const char *test_markov_dataset(const char *name);

#define TEST(fn)                                                                   \
    static void fn(void);                                                          \
    __attribute__((constructor)) static void register_##fn(void) { test_register(#fn, fn, __FILE__); } \
    static void fn(void)

#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

// |a - b| <= atol + rtol * |b|
#define CHECK_CLOSE(a, b, atol, rtol, what)                                                                   \
    do {                                                                                                      \
        double a_ = (double)(a), b_ = (double)(b);                                                            \
        if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_)))                                                   \
            test_fail(__FILE__, __LINE__, "%s: %.9g vs %.9g (diff %.3g)", (what), a_, b_, fabs(a_ - b_)); \
    } while (0)

// Runs fn in a child process and reports whether it exited non-zero with stderr containing `expect`.
// Used for "bad input dies with a clear message" tests.
int test_dies_with(void (*fn)(void *), void *arg, const char *expect);
