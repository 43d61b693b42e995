/*
 * The web UI's files, embedded in the binary at build time (ui/build.mjs bundles ui/src,
 * tools/embed_assets.py writes the table below into the build dir) and served on the API
 * listener by ui.c: `GET /` (index.html), `GET /app.js`, `GET /app.css`. Nothing is read from
 * disk at run time. Pure functions beside the table, for the handler and its unit tests.
 */
#ifndef KANARIA_API_UI_H
#define KANARIA_API_UI_H

#include <stddef.h>

/* One file: its bytes, the same gzip-compressed, and how it is described. All static. */
struct kn_ui_asset {
    const char *path;         /* the URL path: "/", "/app.js", "/app.css" */
    const char *content_type; /* with its charset */
    const char *etag;         /* strong, quoted: "\"HEX\"" (a sha256 prefix of body) */
    const char *etag_gzip;    /* the gzip representation's: "\"HEX-gzip\"" */
    const unsigned char *body;
    size_t len;
    const unsigned char *gzip;
    size_t gzip_len;
};

/* The generated table (the build dir's ui/ui_assets.c), kn_ui_nassets entries. */
extern const struct kn_ui_asset kn_ui_assets[];
extern const size_t kn_ui_nassets;

/* The asset served at path[0..len) (normalized, without the query), or NULL. */
const struct kn_ui_asset *kn_ui_asset_find(const char *path, size_t len);

/* Whether an Accept-Encoding value (NULL: the header is absent) takes gzip: "gzip" or "x-gzip"
 * listed, or "*", with a q-value above 0 (an explicit gzip;q=0 wins over *). */
int kn_ui_takes_gzip(const char *value, size_t len);

/* Whether an If-None-Match value matches the entity-tag etag (quoted): "*", or one of its
 * comma-separated tags compared weakly (a W/ prefix is ignored), as RFC 9110 13.1.2 says. */
int kn_ui_etag_matches(const char *value, size_t len, const char *etag);

#endif /* KANARIA_API_UI_H */
