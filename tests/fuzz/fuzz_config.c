/*
 * libFuzzer target: kanaria.yaml as `kanaria serve` and `kanaria validate -c` load it
 * (kn_config_load). kn_config_load reads a path: each input is written to an in-memory file.
 */
#include <stdint.h>

#include "kanaria/config.h"
#include "kanaria/error.h"

#include "fuzz_file.h"

static char fz_path[KN_FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kn_fuzz_file_init(fz_path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;
    char line[2048];

    kn_fuzz_file_set(data, size);
    kn_diags_init(&diags, 0);
    if (kn_config_load(&cfg, fz_path, &diags) == 0) {
        /* the lookups `serve` and `validate` make with names from the config */
        const struct kn_platform_config *p = cfg->platforms.items;
        const struct kn_metrics_provider_config *m = cfg->metrics_providers.items;
        for (size_t i = 0; i < cfg->platforms.count; i++) {
            (void)kn_config_platform(cfg, p[i].name);
        }
        for (size_t i = 0; i < cfg->metrics_providers.count; i++) {
            (void)kn_config_metrics_provider(cfg, m[i].name);
        }
    }
    for (size_t i = 0; i < diags.count; i++) {
        kn_diag_format(&diags.items[i], line, sizeof(line));
    }
    kn_diags_release(&diags);
    kn_config_free(cfg);
    return 0;
}
