/*
 * awsQuery XML replies read into JSON with libxml2: no network, no entity expansion, no DTD,
 * bounded size and depth. The rules (see aws.h): an element of text is a string, an element of
 * elements an object, an element whose children are all <member> an array, an empty element "".
 * A name repeated among an element's children collects its values in an array.
 */
#include "cloud/aws/aws_int.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#include "kanaria/alloc.h"

#define KN_AWS_XML_DEPTH 64

static int kn_aws_xml_is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *kn_aws_xml_child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (kn_aws_xml_is(c, name)) {
            return c;
        }
    }
    return NULL;
}

static json_t *kn_aws_xml_value(const xmlNode *n, int depth)
{
    size_t elements = 0, members = 0;
    json_t *repeated = NULL;
    json_t *v = NULL;

    if (depth > KN_AWS_XML_DEPTH) {
        goto out;
    }
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            elements++;
            members += strcmp((const char *)c->name, "member") == 0;
        }
    }
    if (elements == 0) {
        struct kn_buf text;
        kn_buf_init(&text, KN_AWS_MAX_REPLY);
        for (const xmlNode *c = n->children; c; c = c->next) {
            if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
                kn_buf_adds(&text, (const char *)c->content);
            }
        }
        v = json_stringn(text.data ? text.data : "", text.len);
        kn_buf_release(&text);
        goto out;
    }
    v = members == elements ? json_array() : json_object();
    repeated = json_object();
    for (const xmlNode *c = n->children; c; c = c->next) {
        json_t *sub, *prev;
        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (!(sub = kn_aws_xml_value(c, depth + 1))) {
            json_decref(v);
            v = NULL;
            goto out;
        }
        if (json_is_array(v)) {
            json_array_append_new(v, sub);
        } else if (!(prev = json_object_get(v, (const char *)c->name))) {
            json_object_set_new(v, (const char *)c->name, sub);
        } else if (json_object_get(repeated, (const char *)c->name)) {
            json_array_append_new(prev, sub);
        } else {
            json_t *list = json_array();
            json_array_append(list, prev);
            json_array_append_new(list, sub);
            json_object_set_new(v, (const char *)c->name, list);
            json_object_set_new(repeated, (const char *)c->name, json_true());
        }
    }
out:
    json_decref(repeated);
    return v;
}

json_t *kn_aws__xml_parse(const char *xml, size_t len, int *is_error)
{
    const xmlNode *root, *n = NULL;
    xmlDoc *doc = NULL;
    json_t *v = NULL;
    size_t root_len;

    *is_error = 0;
    if (!xml || len == 0 || len > KN_AWS_MAX_REPLY) {
        goto out;
    }
    xmlInitParser();
    doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                            XML_PARSE_NOCDATA);
    if (!doc || doc->intSubset || doc->extSubset || !(root = xmlDocGetRootElement(doc))) {
        goto out;
    }
    root_len = strlen((const char *)root->name);
    if (kn_aws_xml_is(root, "ErrorResponse") || kn_aws_xml_is(root, "Response")) {
        /* <ErrorResponse><Error>, moto's <ErrorResponse><Errors><Error>, EC2's
         * <Response><Errors><Error> */
        n = kn_aws_xml_child(root, "Error");
        if (!n) {
            n = kn_aws_xml_child(kn_aws_xml_child(root, "Errors"), "Error");
        }
        if (!n) {
            goto out;
        }
        *is_error = 1;
        v = kn_aws_xml_value(n, 0);
        if (v && !json_is_object(v)) {
            json_decref(v);
            v = json_object();
        }
    } else if (root_len > 8 && strcmp((const char *)root->name + root_len - 8, "Response") == 0) {
        for (const xmlNode *c = root->children; c; c = c->next) {
            size_t l = c->type == XML_ELEMENT_NODE ? strlen((const char *)c->name) : 0;
            if (l > 6 && strcmp((const char *)c->name + l - 6, "Result") == 0) {
                n = c;
                break;
            }
        }
        v = n ? kn_aws_xml_value(n, 0) : json_object();
        if (v && !json_is_object(v)) {
            /* <OpResult/>: nothing to say, which is {} */
            json_decref(v);
            v = json_object();
        }
    }
out:
    xmlFreeDoc(doc);
    return v;
}

json_t *kn_aws_xml_to_json(const char *xml, size_t len)
{
    int is_error;

    return kn_aws__xml_parse(xml, len, &is_error);
}
