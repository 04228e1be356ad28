/* placeholder: being written */
#ifndef HV_VERSION_H
#define HV_VERSION_H
#endif
