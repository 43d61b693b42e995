/*
 * The `local` platform: an app's instances run as processes on the controller's host behind
 * HAProxy. Private to controller/platforms; the rest of the code reaches it through
 * kn_platform_types[] (include/kanaria/platform.h).
 */
#ifndef KANARIA_PLATFORMS_LOCAL_H
#define KANARIA_PLATFORMS_LOCAL_H

#include <uv.h>

#include "kanaria/error.h"
#include "kanaria/platform.h"

extern const struct kn_platform_type kn_platform_local;

struct kn_platform_config;
struct kn_http_client;

/*
 * A local platform instance for `cfg`, keeping its state under data_dir/local/NAME. It adopts the
 * instances a previous kanaria left running (their pid files) and the apps it served (apps.json),
 * and, in managed mode, uses the HAProxy that still runs or starts one with a generated config.
 * On the loop thread; the loop and the HTTP client are borrowed.
 */
int kn_local_platform_new(struct kn_platform **out, uv_loop_t *loop,
                          const struct kn_platform_config *cfg, const char *data_dir,
                          struct kn_http_client *http, struct kn_error *err);

#endif /* KANARIA_PLATFORMS_LOCAL_H */
