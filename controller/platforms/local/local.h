/*
 * The `local` platform: an app's instances run as processes on the controller's host behind
 * HAProxy. Private to controller/platforms; the rest of the code reaches it through
 * kn_platform_types[] (include/kanaria/platform.h) and the front end.
 */
#ifndef KANARIA_PLATFORMS_LOCAL_H
#define KANARIA_PLATFORMS_LOCAL_H

#include "kanaria/error.h"
#include "kanaria/plugin/platform.h"

extern const struct kn_platform_type kn_platform_local;
extern const struct kn_platform_provider_ops kn_local_ops;

/*
 * The type's create: a local platform instance for `config` (for now the kanaria.yaml entry
 * itself, a const struct kn_platform_config *), keeping its state under DATA_DIR/local/NAME. It
 * adopts the instances a previous kanaria left running (their pid files) and the apps it served
 * (apps.json), and, in managed mode, uses the HAProxy that still runs or starts one with a
 * generated config. On the loop thread; the loop and the HTTP client are borrowed.
 */
int kn_local_create(void **out, const struct kn_platform_env *env, const void *config,
                    struct kn_error *err);

#endif /* KANARIA_PLATFORMS_LOCAL_H */
