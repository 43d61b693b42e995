/* Unit tests for controller/util/sdnotify.c: the datagrams a service manager receives, read from
 * a unix datagram socket bound the way systemd binds $NOTIFY_SOCKET. */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/sdnotify.h"

/* Bind a datagram socket at `name` (a path, or "@abstract"); returns the descriptor. */
static int bind_notify(const char *name)
{
    struct sockaddr_un sa;
    size_t len = strlen(name);
    socklen_t salen;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@') {
        sa.sun_path[0] = '\0';
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        salen = (socklen_t)sizeof(sa);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
    return fd;
}

/* The next datagram, within 5 s; "" when none came. */
static void recv_msg(int fd, char *buf, size_t size)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n = 0;

    buf[0] = '\0';
    if (poll(&p, 1, 5000) == 1) {
        n = recv(fd, buf, size - 1, 0);
    }
    buf[n > 0 ? n : 0] = '\0';
}

static void test_path_socket(void **state)
{
    (void)state;
    char *dir = kn_test_tmpdir();
    char *path = NULL;
    char msg[256];
    int fd;

    path = kn_asprintf("%s/notify", dir);
    fd = bind_notify(path);
    setenv("NOTIFY_SOCKET", path, 1);

    assert_int_equal(kn_sd_notify("READY=1"), 1);
    recv_msg(fd, msg, sizeof(msg));
    assert_string_equal(msg, "READY=1");

    assert_int_equal(kn_sd_notify("STOPPING=1\nSTATUS=stopping"), 1);
    recv_msg(fd, msg, sizeof(msg));
    assert_string_equal(msg, "STOPPING=1\nSTATUS=stopping");

    assert_int_equal(kn_sd_notify_reloading(), 1);
    recv_msg(fd, msg, sizeof(msg));
    assert_true(strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    assert_true(strtoull(msg + 27, NULL, 10) > 0);

    /* nobody listens any more: an error, never a hang */
    close(fd);
    unlink(path);
    assert_int_equal(kn_sd_notify("WATCHDOG=1"), KN_EIO);

    unsetenv("NOTIFY_SOCKET");
    free(path);
    kn_test_rmtree(dir);
    free(dir);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    char msg[64];
    int fd;

    snprintf(name, sizeof(name), "@kanaria-test-notify-%ld", (long)getpid());
    fd = bind_notify(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(kn_sd_notify("WATCHDOG=1"), 1);
    recv_msg(fd, msg, sizeof(msg));
    assert_string_equal(msg, "WATCHDOG=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_no_or_bad_socket(void **state)
{
    (void)state;
    char longname[200];

    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(kn_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(kn_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    assert_int_equal(kn_sd_notify("READY=1"), KN_EINVAL);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    assert_int_equal(kn_sd_notify("READY=1"), KN_EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void **state)
{
    (void)state;
    char pid[32];

    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(kn_sd_watchdog_ms(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    assert_int_equal(kn_sd_watchdog_ms(), 30000);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(kn_sd_watchdog_ms(), 30000);
    /* meant for another process (kanaria's parent, say) */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(kn_sd_watchdog_ms(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "500", 1);
    assert_int_equal(kn_sd_watchdog_ms(), 1);
    setenv("WATCHDOG_USEC", "12s", 1);
    assert_int_equal(kn_sd_watchdog_ms(), 0);
    setenv("WATCHDOG_USEC", "0", 1);
    assert_int_equal(kn_sd_watchdog_ms(), 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_no_or_bad_socket),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
