/* placeholder: being written */
#include "bootbank.h"
typedef int hv_placeholder_bootbank;
