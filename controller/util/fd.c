/*
 * File descriptors handed to child processes (see kanaria/fd.h).
 */
#include "kanaria/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>

void kn_fd_cloexec_all(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        int flags;
        if (*end != '\0' || end == e->d_name || fd <= 2 || fd == dirfd(d)) {
            continue;
        }
        flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) {
            fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    if (d) {
        closedir(d);
    }
}
