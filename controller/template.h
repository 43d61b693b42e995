/*
 * Notification templates: a small Mustache subset rendered over a JSON object.
 *
 *   {{name}}                 the field's value: a string as is, a number or true as text;
 *                            false, null or a missing field as nothing
 *   {{#name}}...{{/name}}    the inside, when the field is set (a non-empty string, a number
 *                            other than 0, true, a non-empty array or object)
 *   {{^name}}...{{/name}}    the inside, when it is not
 *
 * Names are letters, digits and '_'; sections nest (at most KN_TEMPLATE_DEPTH deep). Values are
 * escaped for the output: KN_TEMPLATE_JSON escapes them as the inside of a JSON string (so a
 * template writes "message": "{{message}}"), KN_TEMPLATE_TEXT leaves them as they are.
 * Pure functions, any thread.
 */
#ifndef KANARIA_TEMPLATE_H
#define KANARIA_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#define KN_TEMPLATE_DEPTH 16
/* The longest rendered text; more fails the render. */
#define KN_TEMPLATE_MAX ((size_t)256 << 10)

enum kn_template_escape {
    KN_TEMPLATE_TEXT = 0,
    KN_TEMPLATE_JSON,
};

/* Whether tmpl is well formed: 0, or KN_EINVAL with why (NUL-terminated, at most why_size bytes)
 * saying what and at which offset ("unclosed section 'app' opened at offset 12"). */
int kn_template_check(const char *tmpl, char *why, size_t why_size);

/* tmpl rendered over ctx (a JSON object; borrowed) into *out (caller frees): 0, or KN_EINVAL (a
 * malformed template, see kn_template_check) or KN_ETOOBIG (past KN_TEMPLATE_MAX), with why set
 * and *out NULL. */
int kn_template_render(char **out, const char *tmpl, const json_t *ctx,
                       enum kn_template_escape esc, char *why, size_t why_size);

#endif /* KANARIA_TEMPLATE_H */
