/*
 * hvpeer-bundle: `hvpeer bundle ...` in a program of its own.
 *
 * Reading a bundle means reading an untrusted archive (libarchive, which
 * pulls in libxml2, ICU and more). Keeping that here keeps it out of the
 * daemon, which runs this program to check a bundle (a crash or a bug in
 * an archive reader then takes down one short-lived process, not the
 * host's hvpeerd), and out of the `hvpeer` every status call starts.
 *
 * usage: hvpeer-bundle [--json] COMMAND [ARGS]   (see `hvpeer bundle --help`)
 */
#include <stdbool.h>
#include <string.h>

#include "../patchfsm/cli.h"

int main(int argc, char **argv)
{
	bool json = false;

	if (argc > 1 && (!strcmp(argv[1], "--json") || !strcmp(argv[1], "-j"))) {
		json = true;
		argv++;
		argc--;
	}
	argv[0] = "bundle";
	return hv_bundle_main(argc, argv, json);
}
