/* placeholder: being written */
#include "bundle.h"
typedef int hv_placeholder_bundle;
