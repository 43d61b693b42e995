/*
 * The `local` platform: an app's instances run as processes on the controller's host behind
 * HAProxy. Private to controller/platforms; the rest of the code reaches it through
 * kn_platform_types[] (include/kanaria/platform.h).
 */
#ifndef KANARIA_PLATFORMS_LOCAL_H
#define KANARIA_PLATFORMS_LOCAL_H

#include "kanaria/platform.h"

extern const struct kn_platform_type kn_platform_local;

#endif /* KANARIA_PLATFORMS_LOCAL_H */
