/*
 * kanaria: a GitOps deployment controller with canary rollout.
 */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return kn_cli_main(argc, argv);
}
