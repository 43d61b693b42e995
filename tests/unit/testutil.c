#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kanaria/alloc.h"

const char *kn_test_source_dir(void)
{
    const char *d = getenv("KANARIA_SOURCE_DIR");
    return d ? d : ".";
}

char *kn_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = kn_asprintf("%s/kanaria-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        fail_msg("mkdtemp: %s", strerror(errno));
    }
    return tmpl;
}

void kn_test_rmtree(const char *dir)
{
    char *cmd = kn_asprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fail_msg("could not remove %s", dir);
    }
    free(cmd);
}

void kn_test_git(const char *dir, const char *fmt, ...)
{
    va_list ap;
    char *args;
    char *cmd;

    va_start(ap, fmt);
    args = kn_vasprintf(fmt, ap);
    va_end(ap);
    cmd = kn_asprintf("git -c user.name=t -c user.email=t@e -c commit.gpgsign=false "
                      "-c core.symlinks=true -C '%s' %s >/dev/null 2>&1",
                      dir, args);
    if (system(cmd) != 0) {
        fail_msg("failed: %s", cmd);
    }
    free(cmd);
    free(args);
}

void kn_test_write(const char *dir, const char *relpath, const char *content)
{
    char *path = kn_asprintf("%s/%s", dir, relpath);
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        fail_msg("open %s: %s", path, strerror(errno));
    }
    fputs(content, f);
    fclose(f);
    free(path);
}
