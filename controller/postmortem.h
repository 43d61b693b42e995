/*
 * kanaria — postmortem drafts: for a deployment that failed or was rolled back, a blameless
 * record built from what the store holds (the deployment, its stages, analysis records and
 * events): summary, timeline, detection, impact, resolution, and empty root-cause and
 * follow-up sections for people to fill in. Built as one JSON object, rendered as Markdown
 * from that object, so the two forms always agree. Reads the store only; runs on the loop
 * thread that owns it.
 */
#ifndef KANARIA_POSTMORTEM_H
#define KANARIA_POSTMORTEM_H

#include <jansson.h>

#include "kanaria/error.h"
#include "kanaria/store.h"

/*
 * The postmortem of deployment `id`, a new JSON object into *out (the caller decrefs it):
 *   {"deployment", "title", "summary": {repo, app, commit, author, message, trigger, strategy,
 *    outcome, rolled_back, reason, commit_time, planned_at, started_at, finished_at},
 *    "timeline": [{"at" (ms since the epoch), "time" (UTC, ISO 8601), "what"}] oldest first,
 *    "detection": the failing evaluation that decided (the last FAIL of the check the reason
 *    names, else the first FAIL of all) {"check", "stage", "stage_name", "at", "verdict",
 *    "bound", "why" (the numbers as the analysis said them), "query", "values", "threshold",
 *    "first_failed_at", "failed_evaluations" (of that check)} or null when no analysis
 *    evaluation failed, "detected_by" (text),
 *    "impact": {"canary_served_ms", "canary_share_percent", "requests", "errors",
 *    "error_budget_spent"} (null each when not known) and "notes" [text],
 *    "resolution": {"rollback": {"started_at", "finished_at", "duration_ms", "status"} or null,
 *    "steps": [{"what", "at", "duration_ms"}]},
 *    "root_cause": "", "follow_ups": []}.
 * Errors, with why in err: KN_ENOTFOUND for an unknown id; KN_EINVAL for a deployment that
 * neither failed nor was rolled back (not final yet, SUCCESS, SUPERSEDED, or CANCELLED before
 * any rollback); another code when the store cannot be read.
 */
int kn_postmortem_build(struct kn_store *st, long long id, json_t **out, struct kn_error *err);

/* The postmortem `pm` (what kn_postmortem_build made) as Markdown; the caller frees it. */
char *kn_postmortem_markdown(const json_t *pm);

#endif /* KANARIA_POSTMORTEM_H */
