// Helpers whose output users see: Python-style float text in the log lines; temporary files and child
// processes that a stopped command removes and ends.
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/process.h"
#include "test.h"
#include "util.h"

// Expected strings are Python 3's repr() of the same doubles.
TEST(util_py_float_repr_matches_python) {
    struct {
        double x;
        const char *repr;
    } cases[] = {{0.0, "0.0"},     {0.05, "0.05"},   {100.0, "100.0"}, {1e-5, "1e-05"},   {1e16, "1e+16"},
                 {-2.5, "-2.5"},   {1e-8, "1e-08"}, {0.0001, "0.0001"}, {600.0, "600.0"}, {0.1 + 0.2, "0.30000000000000004"},
                 {123456789012345678.0, "1.2345678901234568e+17"}};
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(!strcmp(py_float_repr(buf, cases[i].x), cases[i].repr), "%s, expected %s", buf, cases[i].repr);
}

// The portable fp16 conversions against the compiler's _Float16 (gcc): every half value, and 2^22
// floats spread over the whole range including subnormals, ties and overflow.
TEST(util_f16_conversions_match_float16) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t hh = (uint16_t)h;
        memcpy(&ref, &hh, 2);
        float want = (float)ref, got = f16_to_f32(hh);
        if (want == want ? memcmp(&want, &got, 4) != 0 : got == got) bad++;
        if (want == want && f32_to_f16(got) != hh) bad++;
    }
    CHECK(bad == 0, "%d half values convert differently", bad);
    Rng r;
    rng_seed(&r, 11);
    bad = 0;
    for (int i = 0; i < (1 << 22); i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        if (i & 1) u = (u & 0x80000000u) | (0x33000000u + (u % 0x14800000u)); // |x| in [2^-25, 2^17)
        float x;
        memcpy(&x, &u, 4);
        if (x != x) continue;
        _Float16 ref = (_Float16)x;
        uint16_t want;
        memcpy(&want, &ref, 2);
        bad += f32_to_f16(x) != want;
    }
    CHECK(bad == 0, "%d floats round to a different half", bad);
}

// A process stopped by SIGTERM removes its registered temporary paths (a directory after the files
// registered in it) and still ends by the signal; one that exits removes them too.
static void make_scratch(const char *dir, char *file, char *inner, size_t n) {
    snprintf(file, n, "%s/partial.tmp", dir);
    snprintf(inner, n, "%s/scratch", dir);
    mkdir_p(inner);
    snprintf(inner + strlen(inner), n - strlen(inner), "/train.txt");
    write_file_atomic(file, "x", 1), write_file_atomic(inner, "y", 1);
}

TEST(util_temporary_paths_removed_on_signal_and_exit) {
    const char *dir = test_tmpdir("temp_paths");
    char file[1024], inner[1024], scratch[1024];
    for (int by_signal = 1; by_signal >= 0; by_signal--) {
        make_scratch(dir, file, inner, sizeof file);
        snprintf(scratch, sizeof scratch, "%s/scratch", dir);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            remove_at_exit(scratch), remove_at_exit(inner), remove_at_exit(file);
            if (by_signal) raise(SIGTERM);
            exit(3);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (by_signal)
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "the child did not end by its SIGTERM (status %d)", status);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "the child did not exit with its status (%d)", status);
        CHECK(file_size(file) < 0 && file_size(inner) < 0 && file_size(scratch) < 0,
              "%s: left %s%s%s", by_signal ? "SIGTERM" : "exit", file_size(file) >= 0 ? file : "",
              file_size(inner) >= 0 ? " and the scratch file" : "", file_size(scratch) >= 0 ? " and its directory" : "");
    }
}

// A child process (ablate's training runs, spm_train) ends with pgolf, stopped by SIGTERM or exiting: it
// is not left running on its own (here `sleep 60`, which outlives an unreaped parent).
TEST(util_children_end_with_the_process) {
    for (int by_signal = 1; by_signal >= 0; by_signal--) {
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe failed");
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *argv[] = {"sleep", "60", NULL};
            Child c = child_start(argv, NULL, NULL, NULL, "coreutils");
            if (write(fds[1], &c.pid, sizeof c.pid) != sizeof c.pid) _exit(4);
            if (by_signal) raise(SIGTERM);
            exit(3);
        }
        close(fds[1]);
        pid_t sleeper = 0;
        ssize_t got = read(fds[0], &sleeper, sizeof sleeper);
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(got == sizeof sleeper && sleeper > 0, "the child could not start sleep (status %d)", status);
        if (by_signal)
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "the child did not end by its SIGTERM (status %d)", status);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "the child did not exit with its status (%d)", status);
        int alive = kill(sleeper, 0) == 0;
        if (alive) kill(sleeper, SIGKILL);
        CHECK(!alive, "%s left its child process running", by_signal ? "SIGTERM" : "exit");
    }
}

// The test runner turns a die() inside a test into that test's FAIL line with the message, and goes on
// to its summary. Run here as a child runner of this same binary, where this test dies on purpose.
TEST(util_test_runner_reports_a_death_and_goes_on) {
    if (getenv("PGOLF_TEST_RUNNER_DIE")) die("a death on purpose");
    char self[1024], cmd[1200], *out = NULL;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return test_skip("no /proc/self/exe");
    self[n] = 0;
    snprintf(cmd, sizeof cmd, "PGOLF_TEST_RUNNER_DIE=1 '%s' util_test_runner_reports", self);
    int rc = test_run(cmd, &out);
    CHECK(rc == 1, "the child runner exited %d", rc);
    CHECK(strstr(out, "    died: pgolf: error: a death on purpose\nFAIL util_test_runner_reports_a_death_and_goes_on"),
          "no died line before the FAIL line: %s", out);
    CHECK(strstr(out, "\n0 passed, 1 failed\n"), "the child runner did not reach its summary: %s", out);
    free(out);
}
