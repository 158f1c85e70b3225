#include "io/process.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

Child child_start(char *const argv[], char *const envp[], const char *stdin_path, const char *stderr_path,
                  const char *install_hint) {
    int pipefd[2];
    if (pipe(pipefd) != 0) die("pipe failed: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    if (stderr_path) posix_spawn_file_actions_addopen(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Child c = {.name = argv[0]};
    int rc = posix_spawnp(&c.pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc == ENOENT) die("%s not found in PATH (%s)", argv[0], install_hint);
    if (rc != 0) die("cannot start %s: %s", argv[0], strerror(rc));
    end_child_at_exit(c.pid);
    c.out = fdopen(pipefd[0], "r");
    if (!c.out) die("fdopen failed: %s", strerror(errno));
    return c;
}

void child_finish(Child *c, const char *what) {
    fclose(c->out);
    int status;
    while (waitpid(c->pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid for %s failed: %s", c->name, strerror(errno));
    child_reaped(c->pid);
    if (WIFSIGNALED(status)) die("%s: %s was killed by signal %d", what, c->name, WTERMSIG(status));
    if (WEXITSTATUS(status) != 0) die("%s: %s exited with status %d", what, c->name, WEXITSTATUS(status));
}
