/* placeholder: being written */
#include <stdio.h>
#include "cli.h"
int hv_bootbank_main(int argc, char **argv, bool json)
{
	(void)argc; (void)argv; (void)json;
	fprintf(stderr, "hvpeer bootbank: not built yet\n");
	return 5;
}
