// Child processes without a shell (no quoting of paths): pgolf drives Debian's `sentencepiece`
// tools and `bible` this way.
#pragma once
#include <stdio.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    FILE *out; // the child's stdout
    const char *name;
} Child;

// Starts argv[0] (searched in PATH) with stdin from `stdin_path` (NULL: /dev/null), stderr to
// `stderr_path` (NULL: inherited) and environment envp (NULL: ours); its stdout is read through
// child.out. Dies naming the program and `install_hint` if it cannot be found. The child ends with pgolf
// (end_child_at_exit) unless child_finish reaped it.
Child child_start(char *const argv[], char *const envp[], const char *stdin_path, const char *stderr_path,
                  const char *install_hint);
// Closes the pipe, waits, and dies with `what` if the child failed (non-zero exit or signal).
void child_finish(Child *c, const char *what);
