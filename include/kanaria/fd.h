/*
 * File descriptors handed to child processes.
 */
#ifndef KANARIA_FD_H
#define KANARIA_FD_H

/* Mark every open descriptor above stderr close-on-exec, before a spawn. libuv (1.44) does not
 * close descriptors in the child, and not every library opens its own with O_CLOEXEC (curl's
 * wakeup socketpair and connections do not): without this a child (an instance or HAProxy,
 * which may live for months, or a script) would hold kanaria's sockets open. The flag is
 * harmless to kanaria itself; a descriptor opened by another thread between this and the fork
 * can still slip through. Loop thread only. */
void kn_fd_cloexec_all(void);

#endif /* KANARIA_FD_H */
