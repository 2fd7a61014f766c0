/* gnuplot.c — running gnuplot on a script in a directory (plots.h). The
 * library never prints: gnuplot's stdout goes to /dev/null and its stderr to
 * a log file whose last line becomes the error message when gnuplot fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "plots/plots.h"

extern char **environ;

/* Last non-empty line of a log (for the error message). */
static void last_line(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    char *text = NULL;
    size_t len = 0;
    if (bp_read_file(path, &text, &len))
        return;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = 0;
    char *p = strrchr(text, '\n');
    snprintf(buf, n, "%s", p ? p + 1 : text);
    free(text);
}

bp_status bp_gnuplot_run(const char *dir, const char *script)
{
    char log[4096];
    if (snprintf(log, sizeof log, "%s/gnuplot.log", dir) >= (int)sizeof log)
        return bp_error(BP_ERR_ARG, "%s: path too long", dir);
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa))
        return bp_error(BP_ERR_NOMEM, "gnuplot: cannot set up the process");
    /* chdir first so the script's relative file names resolve in dir. */
    int rc = posix_spawn_file_actions_addchdir_np(&fa, dir);
    rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    rc = rc ? rc : posix_spawn_file_actions_addopen(&fa, 2, "gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return bp_error(BP_ERR_IO, "gnuplot: cannot set up the process: %s", strerror(rc));
    }
    const char *gp = getenv("BP_GNUPLOT");
    if (!gp || !gp[0])
        gp = "gnuplot";
    char *argv[] = {(char *)gp, (char *)script, NULL};
    pid_t pid;
    rc = posix_spawnp(&pid, gp, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        unlink(log);
        return bp_error(BP_ERR_IO, "%s: cannot run '%s' (%s): install gnuplot (Debian: gnuplot-nox)",
                        script, gp, strerror(rc));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return bp_error(BP_ERR_IO, "gnuplot: wait failed: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char line[512];
        last_line(log, line, sizeof line);
        unlink(log);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            return bp_error(BP_ERR_IO, "%s: cannot run '%s': install gnuplot (Debian: gnuplot-nox)", script, gp);
        return bp_error(BP_ERR_IO, "%s/%s: gnuplot failed (%s%d): %s", dir, script,
                        WIFEXITED(status) ? "exit " : "signal ",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), line);
    }
    unlink(log);
    return BP_OK;
}
