#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/util.h"
#include "test.h"

#define MAX_TESTS 512
static struct {
    const char *name, *file;
    TestFn fn;
} g_tests[MAX_TESTS];
static int g_ntests, g_failures_in_test;
static const char *g_skip_reason; // set by test_skip for the running test

void test_register(const char *name, TestFn fn, const char *file) {
    if (g_ntests == MAX_TESTS) abort();
    g_tests[g_ntests].name = name;
    g_tests[g_ntests].fn = fn;
    g_tests[g_ntests].file = file;
    g_ntests++;
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    if (g_failures_in_test++ >= 10) return; // one broken test should not flood the log
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

void test_skip(const char *why) { g_skip_reason = why; }

// A die() inside a test (a reader refusing a fixture, a failed system call) fails that test with its
// message, and the run goes on. Only in the runner's own process: a forked child (test_dies_with,
// the process tests) dies as pgolf does.
static jmp_buf g_test_died;
static pid_t g_runner_pid;
static void test_on_die(const char *msg) {
    if (getpid() != g_runner_pid) return;
    g_failures_in_test++;
    fprintf(stdout, "    died: pgolf: error: %s\n", msg);
    longjmp(g_test_died, 1);
}

static void run_test_fn(TestFn fn) { // its own frame: main's counters are not live across the setjmp
    if (setjmp(g_test_died) == 0) fn();
}

const char *test_shared_data(void) {
    const char *d = getenv("PGOLF_SHARED_DATA");
    return d ? d : "../shared/data";
}

const char *test_fixture_dir(void) {
    const char *d = getenv("PGOLF_FIXTURES");
    return d ? d : "build/fixtures";
}

const char *test_tmpdir(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "build/tmp/%s", name);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) die("cannot clean %s", path);
    mkdir_p(path);
    return xstrdup(path); // kept for the whole run: tests hold several directories at once
}

int test_dies_with(void (*fn)(void *), void *arg, const char *expect) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) dup2(devnull, 1);
        close(fds[0]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    char rest[4096]; // read to the end, past what is kept: a child blocked on a full pipe would die of SIGPIPE
    while ((r = n < sizeof buf - 1 ? read(fds[0], buf + n, sizeof buf - 1 - n) : read(fds[0], rest, sizeof rest)) > 0)
        if (n < sizeof buf - 1) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int died = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    if (!died || !strstr(buf, expect)) {
        fprintf(stdout, "    expected death with \"%s\", got %s: %s", expect, died ? "death" : "no death", buf);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    const char *skip_why = NULL;
    g_runner_pid = getpid();
    die_set_hook(test_on_die);
    for (int i = 0; i < g_ntests; i++) {
        if (filter && !strstr(g_tests[i].name, filter) && !strstr(g_tests[i].file, filter)) continue;
        g_failures_in_test = 0;
        g_skip_reason = NULL;
        double t0 = now_seconds();
        run_test_fn(g_tests[i].fn);
        double dt = now_seconds() - t0;
        int skip = g_skip_reason && !g_failures_in_test;
        printf("%s %s (%.2fs)%s%s\n", g_failures_in_test ? "FAIL" : skip ? "skip" : "ok  ", g_tests[i].name, dt,
               skip ? ": " : "", skip ? g_skip_reason : "");
        fflush(stdout);
        if (g_failures_in_test) failed++;
        else if (skip) skipped++, skip_why = g_skip_reason;
        else passed++;
    }
    if (skipped) printf("%d skipped (%s)\n", skipped, skip_why);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
