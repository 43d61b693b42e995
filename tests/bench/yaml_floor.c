/*
 * The floor of the plan benchmark: parse every file named on stdin (one path a line) with
 * libyaml's event parser and nothing else, so that the cost of `kanaria plan` can be stated as a
 * multiple of the YAML parse it cannot avoid. Prints the number of files and events.
 *
 *     find REPO -name '*.yaml' | kanaria_bench_yaml
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Events in one file, or -1 when it cannot be read or parsed. */
static long parse_file(const char *path)
{
    yaml_parser_t parser;
    yaml_event_t event;
    FILE *f = fopen(path, "rb");
    long events = 0;
    int done = 0;

    if (!f) {
        return -1;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    while (!done) {
        if (!yaml_parser_parse(&parser, &event)) {
            events = -1;
            break;
        }
        done = event.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&event);
        events++;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return events;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long files = 0;
    long events = 0;
    int rc = 0;

    while ((len = getline(&line, &cap, stdin)) > 0) {
        long n;
        if (line[len - 1] == '\n') {
            line[len - 1] = '\0';
        }
        if (line[0] == '\0') {
            continue;
        }
        if ((n = parse_file(line)) < 0) {
            fprintf(stderr, "kanaria_bench_yaml: cannot parse '%s'\n", line);
            rc = 1;
            continue;
        }
        files++;
        events += n;
    }
    free(line);
    printf("%ld files, %ld events\n", files, events);
    return rc;
}
