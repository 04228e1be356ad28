/* placeholder: being written */
#include "version.h"
typedef int hv_placeholder_version;
