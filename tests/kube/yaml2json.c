/*
 * yaml2json DIR FILE...: every document of each YAML FILE as JSON in DIR/<file>-<N>.json (N from
 * 1), with kanaria's own YAML reader, for tests/kube/schemas/validate.mjs to check manifests
 * written in YAML (the examples' install manifests). Exit 1 with a located message when a file
 * is not YAML.
 */
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"

int main(int argc, char **argv)
{
    int rc = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: yaml2json DIR FILE...\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        struct kn_yaml *y = NULL;
        struct kn_error err;
        char *copy = kn_strdup(argv[i]);
        char *base = basename(copy);

        kn_error_clear(&err);
        if (kn_yaml_load_file(&y, argv[i], NULL, NULL, &err) < 0) {
            char line[1024];
            fprintf(stderr, "%s\n", kn_error_format(&err, line, sizeof(line)));
            rc = 1;
            free(copy);
            continue;
        }
        for (size_t d = 0; d < y->ndocs; d++) {
            json_t *j = kn_node_to_json(y->docs[d]);
            char *out = kn_asprintf("%s/%s-%zu.json", argv[1], base, d + 1);
            if (json_dump_file(j, out, JSON_INDENT(1)) < 0) {
                fprintf(stderr, "cannot write %s\n", out);
                rc = 1;
            }
            free(out);
            json_decref(j);
        }
        kn_yaml_free(y);
        free(copy);
    }
    return rc;
}
