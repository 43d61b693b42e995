/*
 * sd_notify's datagram protocol (see kanaria/sdnotify.h). Kept to the protocol as systemd
 * documents it in sd_notify(3): no fd passing, no credentials beyond what the kernel adds.
 */
#include "kanaria/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kanaria/error.h"

int kn_sd_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    size_t len;
    ssize_t n;
    int fd = -1;
    int rc = 1;

    if (!name || !name[0]) {
        return 0;
    }
    len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len < 2 || len > sizeof(sa.sun_path)) {
        return KN_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@') {
        sa.sun_path[0] = '\0'; /* an abstract socket: no NUL after the name */
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        if (len == sizeof(sa.sun_path)) {
            return KN_EINVAL; /* no room for the NUL */
        }
        salen = (socklen_t)sizeof(sa);
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = KN_EIO;
        goto out;
    }
    do {
        n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        rc = KN_EIO;
    }
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

int kn_sd_notify_reloading(void)
{
    struct timespec ts;
    char msg[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return kn_sd_notify(msg);
}

long long kn_sd_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    unsigned long long v;
    char *end;

    if (!usec || !usec[0]) {
        return 0;
    }
    if (pid && pid[0]) {
        errno = 0;
        v = strtoull(pid, &end, 10);
        if (errno || *end || v != (unsigned long long)getpid()) {
            return 0;
        }
    }
    errno = 0;
    v = strtoull(usec, &end, 10);
    if (errno || *end || v == 0) {
        return 0;
    }
    return v < 1000 ? 1 : (long long)(v / 1000);
}
