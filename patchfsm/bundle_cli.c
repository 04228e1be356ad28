/* placeholder: being written */
#include <stdio.h>
#include "cli.h"
int hv_bundle_main(int argc, char **argv, bool json)
{
	(void)argc; (void)argv; (void)json;
	fprintf(stderr, "hvpeer bundle: not built yet\n");
	return 5;
}
