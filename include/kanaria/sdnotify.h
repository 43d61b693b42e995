/*
 * systemd's service notifications (sd_notify(3)) without libsystemd: the documented protocol is
 * one datagram of newline-separated "KEY=VALUE" assignments sent to the unix datagram socket
 * named by $NOTIFY_SOCKET (a path, or an abstract socket written "@name"). Outside systemd
 * (no $NOTIFY_SOCKET) every call does nothing, so callers need not ask.
 */
#ifndef KANARIA_SDNOTIFY_H
#define KANARIA_SDNOTIFY_H

/* Send `state` ("READY=1", "RELOADING=1\nMONOTONIC_USEC=...", "WATCHDOG=1", "STOPPING=1",
 * "STATUS=text") as one datagram. 1 sent, 0 no $NOTIFY_SOCKET, KN_EINVAL for a socket name
 * that is not absolute, abstract or that does not fit, KN_EIO when the send failed (errno
 * kept). Never blocks; any thread. */
int kn_sd_notify(const char *state);

/* "RELOADING=1\nMONOTONIC_USEC=N" for now (systemd 253 wants the time with RELOADING=1; older
 * ones ignore it), then kn_sd_notify. Same returns. */
int kn_sd_notify_reloading(void);

/* The watchdog's period asked by the service manager: $WATCHDOG_USEC in milliseconds (at least
 * 1) when it is set and $WATCHDOG_PID is unset or this process; 0 otherwise (no watchdog). The
 * caller sends "WATCHDOG=1" every half of it. */
long long kn_sd_watchdog_ms(void);

#endif /* KANARIA_SDNOTIFY_H */
