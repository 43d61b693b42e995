/*
 * kanaria — validating apps beside the model: the checks that need stage kinds and platform
 * types together, which manifests/ leaves to the loader it is handed (struct kn_app_loader).
 *
 * For one app: the stage kinds' options shared by the repository (ANALYSIS templates), the app's
 * platform from the controller config (or, without one, the built-in type of that name), the
 * pipeline walked stage by stage (traffic to a variant that does not run, a pipeline that ends
 * split or never replaces the primary), the stages its platform cannot do, and traffic percents
 * finer than the platform's weight step; then the manifest kinds and `spec.<type>` options of
 * the platform type, which kn_app_load checks from the tables handed to it; once loaded, the
 * type's check_app (its options with the pipeline). Across the apps of a repository: each
 * platform type's check_apps over the apps of each of its platforms.
 *
 * `kanaria validate`, `kanaria plan`, serve's detection and reconciliation, and the API all load
 * apps through here, so they report the same located errors.
 */
#ifndef KANARIA_VALIDATE_H
#define KANARIA_VALIDATE_H

#include <stddef.h>

#include "kanaria/app.h"
#include "kanaria/config.h"

/*
 * kn_app_load with every check above. `controller` may be NULL: the platform is then the
 * built-in type named by spec.platform, and names of metrics providers are not checked. Same
 * returns as kn_app_load; the app (kn_app_free) is valid when app->diags.count == 0.
 */
int kn_validate_app_load(struct kn_app **out, struct kn_source *src, const char *config_path,
                         const struct kn_config *controller);

/*
 * The checks across apps: for each platform the apps name (resolved as above), its type's
 * check_apps over those apps in the order given (the later app of a conflict gets the error).
 * Apps of an unknown platform are left alone (reported by the load already).
 */
void kn_validate_check_apps(struct kn_app *const *apps, size_t n,
                            const struct kn_config *controller);

#endif /* KANARIA_VALIDATE_H */
