/*
 * hvpeer subcommands that work on local files and need no daemon:
 * `hvpeer bundle ...` (patchfsm/bundle_cli.c) and `hvpeer bootbank ...`
 * (patchfsm/bootbank_cli.c). argv[0] is the subcommand's name ("bundle");
 * json asks for JSON output (the global --json). Each returns the process
 * exit status: 0 done, 1 refused (e.g. a bundle that fails verification),
 * 2 usage error, 5 internal or I/O error.
 */
#ifndef HV_PATCH_CLI_H
#define HV_PATCH_CLI_H

#include <stdbool.h>

int hv_bundle_main(int argc, char **argv, bool json);
int hv_bootbank_main(int argc, char **argv, bool json);

#endif
