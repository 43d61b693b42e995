/*
 * GET /api/v1/repositories and /api/v1/repositories/{repo}: each repository of kanaria.yaml with
 * its fetch status from the state store (head commit, last fetch, last error) and how many apps
 * it declares. The url is shown without any user:password@; no credential is ever shown.
 */
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "git/git.h"

static int kn_api_count_app(const struct kn_app_state *a, void *data)
{
    (void)a;
    (*(long long *)data)++;
    return 0;
}

static json_t *kn_api_repository_json(struct kn_api *api, const struct kn_repo_config *rc)
{
    struct kn_repo_state st;
    char *url = kn_git_redact_url(rc->url);
    long long apps = 0;
    json_t *j;

    memset(&st, 0, sizeof(st));
    kn_store_repo_get(api->deps.store, rc->name, &st); /* never fetched: all empty */
    kn_store_apps(api->deps.store, rc->name, kn_api_count_app, &apps);
    j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I}", "name", rc->name, "url",
                  url ? url : "", "branch", rc->branch ? rc->branch : "", "head", st.head,
                  "fetched_at", (json_int_t)st.fetched_at, "error", st.error, "failing_since",
                  (json_int_t)st.failing_since, "apps", (json_int_t)apps);
    free(url);
    return j;
}

void kn_api_repositories_list(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const struct kn_repo_config *repos = api->config->repositories.items;
    json_t *list = json_array();
    json_t *body;

    (void)call;
    for (size_t i = 0; i < api->config->repositories.count; i++) {
        json_array_append_new(list, kn_api_repository_json(api, &repos[i]));
    }
    body = json_pack("{s:o}", "repositories", list);
    kn_api_reply(req, 200, body);
    json_decref(body);
}

void kn_api_repository_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const struct kn_repo_config *repos = api->config->repositories.items;
    const char *name = kn_api_param(call, "repo");
    json_t *body;

    for (size_t i = 0; i < api->config->repositories.count; i++) {
        if (strcmp(repos[i].name, name) == 0) {
            body = kn_api_repository_json(api, &repos[i]);
            kn_api_reply(req, 200, body);
            json_decref(body);
            return;
        }
    }
    kn_api_reply_error(req, 404, "no repository '%s'", name);
}
