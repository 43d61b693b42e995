/*
 * `kanaria completion bash|zsh|fish`: a completion script for the shell, made from the command
 * table (names, summaries, and the options each usage line shows) and the topics of `kanaria
 * help`, so that it follows the commands this binary has. The build installs the three.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"

#define MAX_OPTS 16

/* An option a usage line shows: "--repo" (takes "NAME"), "--json", "-c" (takes a file). */
struct opt {
    char name[32];
    int takes_arg;
    int is_file; /* its argument is a path ("kanaria.yaml", "FILE", "DIR") */
};

/* The options of a usage line: a word starting with '-', taking an argument when the next word
 * is not an option and the bracket around it is still open ("[--repo NAME]", "-c FILE"). */
static size_t parse_opts(const char *usage, struct opt *out, size_t max)
{
    char words[24][48];
    size_t nwords = 0, n = 0;
    const char *p = usage;

    while (*p && nwords < 24) {
        size_t len = strcspn(p, " ");
        if (len > 0 && len < sizeof(words[0])) {
            memcpy(words[nwords], p, len);
            words[nwords++][len] = '\0';
        }
        p += len;
        p += strspn(p, " ");
    }
    for (size_t i = 0; i < nwords && n < max; i++) {
        const char *w = words[i] + strspn(words[i], "[(");
        size_t len = strcspn(w, "])|");
        if (w[0] != '-' || len < 2 || len >= sizeof(out[n].name)) {
            continue;
        }
        memcpy(out[n].name, w, len);
        out[n].name[len] = '\0';
        out[n].takes_arg = w[len] == '\0' && i + 1 < nwords && words[i + 1][0] != '-';
        out[n].is_file =
            out[n].takes_arg && (strstr(words[i + 1], "yaml") || strstr(words[i + 1], "FILE") ||
                                 strstr(words[i + 1], "DIR"));
        n++;
    }
    return n;
}

/* A summary cut at its first clause, for the shells' one-line descriptions. */
static int short_len(const char *summary)
{
    size_t len = strcspn(summary, ";:(");
    while (len > 0 && summary[len - 1] == ' ') {
        len--;
    }
    return (int)len;
}

/* s in single quotes for sh, zsh and fish: ' becomes '\'' (fish: \'). */
static void quoted(const char *s, int len, int fish)
{
    putchar('\'');
    for (int i = 0; i < len && s[i]; i++) {
        if (s[i] == '\'') {
            fputs(fish ? "\\'" : "'\\''", stdout);
        } else if (fish && s[i] == '\\') {
            fputs("\\\\", stdout);
        } else {
            putchar(s[i]);
        }
    }
    putchar('\'');
}

/* The words `kanaria help` takes: the commands and the topics. */
static void help_words(const struct kn_cli_command *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%s%s", i ? " " : "", cmds[i].name);
    }
    for (size_t i = 0; kn_cli_help_topic(i); i++) {
        printf(" %s", kn_cli_help_topic(i));
    }
}

/* What follows `help platform` and `help metrics`: the types. */
static void type_words(int metrics)
{
    if (metrics) {
        for (size_t i = 0; kn_metrics_types[i]; i++) {
            printf("%s%s", i ? " " : "", kn_metrics_types[i]->name);
        }
    } else {
        for (size_t i = 0; kn_platform_types[i]; i++) {
            printf("%s%s", i ? " " : "", kn_platform_types[i]->name);
        }
    }
}

static const char *const shells[] = {"bash", "zsh", "fish", NULL};

static void shell_words(void)
{
    for (size_t i = 0; shells[i]; i++) {
        printf("%s%s", i ? " " : "", shells[i]);
    }
}

/* How bash and zsh spell the same `case` of completions: kanaria's commands and their options
 * are walked once (print_cases), in either shell's words. */
struct shell_syntax {
    const char *arg_open;  /* a case label "command option" (an option taking a value) ... */
    const char *arg_close;
    const char *file;      /* what completes a path */
    const char *value;     /* what completes any other value */
    const char *open;      /* a case's list of words: its start ... */
    const char *close;     /* ... and its end */
    const char *any_case;  /* the label of the case of every other word */
    const char *cmd_open;  /* the label of one command's case ... */
    const char *cmd_close;
};

static const struct shell_syntax bash_syntax = {
    .arg_open = "    \"",
    .arg_close = "\")",
    .file = "COMPREPLY=($(compgen -f -- \"$cur\"))",
    .value = "COMPREPLY=()",
    .open = " words=\"",
    .close = "\" ;;\n",
    .any_case = "    *)\n        case \"${COMP_WORDS[1]}\" in\n",
    .cmd_open = "        ",
    .cmd_close = ")",
};

static const struct shell_syntax zsh_syntax = {
    .arg_open = "    (\"",
    .arg_close = "\")",
    .file = "_files",
    .value = "_message 'value'",
    .open = " opts=(",
    .close = ") ;;\n",
    .any_case = "    (*)\n        case $words[2] in\n",
    .cmd_open = "        (",
    .cmd_close = ")",
};

/* The cases of the word after "command option": an option's value (a path, or nothing to
 * offer), the topics of help, the shells of completion, then each command's options. */
static void print_cases(const struct shell_syntax *sh, const struct kn_cli_command *cmds, size_t n)
{
    struct opt opts[MAX_OPTS];

    for (size_t i = 0; i < n; i++) {
        size_t nopts = parse_opts(cmds[i].usage, opts, MAX_OPTS);
        for (size_t j = 0; j < nopts; j++) {
            if (opts[j].takes_arg) {
                printf("%s%s %s%s", sh->arg_open, cmds[i].name, opts[j].name, sh->arg_close);
                printf(" %s; return ;;\n", opts[j].is_file ? sh->file : sh->value);
            }
        }
    }
    printf("%s%s %s%s", sh->arg_open, "help", "help", sh->arg_close);
    printf("%s", sh->open);
    help_words(cmds, n);
    printf("%s", sh->close);
    printf("%s%s %s%s", sh->arg_open, "help", "platform", sh->arg_close);
    printf("%s", sh->open);
    type_words(0);
    printf("%s", sh->close);
    printf("%s%s %s%s", sh->arg_open, "help", "metrics", sh->arg_close);
    printf("%s", sh->open);
    type_words(1);
    printf("%s", sh->close);
    printf("%s%s %s%s", sh->arg_open, "completion", "completion", sh->arg_close);
    printf("%s", sh->open);
    shell_words();
    printf("%s%s", sh->close, sh->any_case);
    for (size_t i = 0; i < n; i++) {
        size_t nopts = parse_opts(cmds[i].usage, opts, MAX_OPTS);
        if (nopts == 0) {
            continue;
        }
        printf("%s%s%s", sh->cmd_open, cmds[i].name, sh->cmd_close);
        printf("%s", sh->open);
        for (size_t j = 0; j < nopts; j++) {
            printf("%s%s", j ? " " : "", opts[j].name);
        }
        printf("%s", sh->close);
    }
    printf("        esac ;;\n"
           "    esac\n");
}

static void print_bash(const struct kn_cli_command *cmds, size_t n)
{
    printf("# bash completion for kanaria (made by `kanaria completion bash`)\n"
           "_kanaria() {\n"
           "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
           "    local words=\"\"\n"
           "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
           "        words=\"");
    for (size_t i = 0; i < n; i++) {
        printf("%s%s", i ? " " : "", cmds[i].name);
    }
    printf(" --help --version\"\n"
           "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
           "        return\n"
           "    fi\n"
           "    case \"${COMP_WORDS[1]} $prev\" in\n");
    print_cases(&bash_syntax, cmds, n);
    printf("    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
           "}\n"
           "complete -o default -F _kanaria kanaria\n");
}

static void print_zsh(const struct kn_cli_command *cmds, size_t n)
{
    printf("#compdef kanaria\n"
           "# zsh completion for kanaria (made by `kanaria completion zsh`)\n"
           "_kanaria() {\n"
           "    local -a commands opts\n"
           "    commands=(\n");
    for (size_t i = 0; i < n; i++) {
        char item[256];
        snprintf(item, sizeof(item), "%s:%.*s", cmds[i].name, short_len(cmds[i].summary),
                 cmds[i].summary);
        printf("        ");
        quoted(item, (int)strlen(item), 0);
        printf("\n");
    }
    printf("    )\n"
           "    if (( CURRENT == 2 )); then\n"
           "        _describe 'command' commands\n"
           "        return\n"
           "    fi\n"
           "    case \"$words[2] $words[CURRENT-1]\" in\n");
    print_cases(&zsh_syntax, cmds, n);
    printf("    compadd -a opts\n"
           "    _files\n"
           "}\n"
           "_kanaria \"$@\"\n");
}

static void print_fish(const struct kn_cli_command *cmds, size_t n)
{
    struct opt opts[MAX_OPTS];

    printf("# fish completion for kanaria (made by `kanaria completion fish`)\n"
           "complete -c kanaria -f\n");
    for (size_t i = 0; i < n; i++) {
        printf("complete -c kanaria -n __fish_use_subcommand -a %s -d ", cmds[i].name);
        quoted(cmds[i].summary, short_len(cmds[i].summary), 1);
        printf("\n");
    }
    for (size_t i = 0; i < n; i++) {
        size_t nopts = parse_opts(cmds[i].usage, opts, MAX_OPTS);
        for (size_t j = 0; j < nopts; j++) {
            const char *name = opts[j].name;
            printf("complete -c kanaria -n '__fish_seen_subcommand_from %s' %s %s%s\n",
                   cmds[i].name, name[1] == '-' ? "-l" : "-s", name + (name[1] == '-' ? 2 : 1),
                   opts[j].takes_arg ? (opts[j].is_file ? " -r -F" : " -r") : "");
        }
    }
    printf("complete -c kanaria -n '__fish_seen_subcommand_from help; and not "
           "__fish_seen_subcommand_from platform metrics' -a '");
    help_words(cmds, n);
    printf("'\ncomplete -c kanaria -n '__fish_seen_subcommand_from help; and "
           "__fish_seen_subcommand_from platform' -a '");
    type_words(0);
    printf("'\ncomplete -c kanaria -n '__fish_seen_subcommand_from help; and "
           "__fish_seen_subcommand_from metrics' -a '");
    type_words(1);
    printf("'\ncomplete -c kanaria -n '__fish_seen_subcommand_from completion' -a '");
    shell_words();
    printf("'\ncomplete -c kanaria -n '__fish_seen_subcommand_from validate plan' -F\n");
}

int kn_cmd_completion(int argc, char **argv)
{
    size_t n;
    const struct kn_cli_command *cmds = kn_cli_commands(&n);

    if (argc != 2) {
        fprintf(stderr, "usage: kanaria completion bash|zsh|fish\n");
        return KN_EXIT_USAGE;
    }
    if (strcmp(argv[1], "bash") == 0) {
        print_bash(cmds, n);
    } else if (strcmp(argv[1], "zsh") == 0) {
        print_zsh(cmds, n);
    } else if (strcmp(argv[1], "fish") == 0) {
        print_fish(cmds, n);
    } else {
        fprintf(stderr, "kanaria: no completion for the shell '%s' (bash, zsh, fish)\n", argv[1]);
        return KN_EXIT_USAGE;
    }
    return fflush(stdout) == 0 && !ferror(stdout) ? KN_EXIT_OK : KN_EXIT_FAILED;
}
