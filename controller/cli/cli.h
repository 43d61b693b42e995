/*
 * The `kanaria` command line: one function per subcommand, dispatched from one table.
 * Exit codes: 0 ok, 1 the thing asked for failed or was refused, 2 usage error.
 */
#ifndef KANARIA_CLI_H
#define KANARIA_CLI_H

#include <stddef.h>

#define KN_EXIT_OK 0
#define KN_EXIT_FAILED 1
#define KN_EXIT_USAGE 2

struct kn_cli_command {
    const char *name;
    const char *usage;
    const char *summary;
    int (*run)(int argc, char **argv);
};

/* Dispatch argv[1]; returns the process exit code. */
int kn_cli_main(int argc, char **argv);

/* The subcommands in the order `kanaria help` lists them (static); *n gets their count. */
const struct kn_cli_command *kn_cli_commands(size_t *n);

/* The i-th topic of `kanaria help` that is not a command ("config", "app", ...); NULL past the
 * last. Static. */
const char *kn_cli_help_topic(size_t i);

/* `kanaria completion bash|zsh|fish` (completion.c): the shell's completion script, made from
 * the command table and the help topics. */
int kn_cmd_completion(int argc, char **argv);

/* `kanaria help --man PAGE` (man.c, not listed by `kanaria help`): the roff man page
 * kanaria.1, kanaria.yaml.5 or kanaria-app.5, from the command table and the schema tables that
 * `kanaria help` prints; what the build installs as man pages. */
int kn_cli_man(int argc, char **argv);

/* `kanaria validate [DIR] [-c FILE] [--json]` */
int kn_cmd_validate(int argc, char **argv);

/* `kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] [--json]` */
int kn_cmd_plan(int argc, char **argv);

/* `kanaria serve -c kanaria.yaml` */
int kn_cmd_serve(int argc, char **argv);

/* Client commands (client.c): they call a running `kanaria serve` at KANARIA_ADDR with
 * KANARIA_TOKEN. `kanaria status [APP]`, `history APP`, `approve APP`, `reject APP`. */
int kn_cmd_status(int argc, char **argv);
int kn_cmd_history(int argc, char **argv);
int kn_cmd_wait(int argc, char **argv);
int kn_cmd_events(int argc, char **argv);
int kn_cmd_get(int argc, char **argv);
int kn_cmd_postmortem(int argc, char **argv);
int kn_cmd_approve(int argc, char **argv);
int kn_cmd_reject(int argc, char **argv);
/* Operator actions: `kanaria cancel APP [--no-rollback]`, `rollback APP [--to REV]`,
 * `sync APP`, `skip APP --stage N`. */
int kn_cmd_cancel(int argc, char **argv);
int kn_cmd_rollback(int argc, char **argv);
int kn_cmd_sync(int argc, char **argv);
int kn_cmd_skip(int argc, char **argv);
int kn_cmd_retry(int argc, char **argv);
int kn_cmd_promote(int argc, char **argv);
/* `kanaria prune APP`: remove an orphaned app from its platforms. */
int kn_cmd_prune(int argc, char **argv);
/* `kanaria repos [REPO]`: each repository's branch, head, last fetch, last error and apps. */
int kn_cmd_repos(int argc, char **argv);

#endif /* KANARIA_CLI_H */
