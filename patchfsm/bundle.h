/* placeholder: being written */
#ifndef HV_BUNDLE_H
#define HV_BUNDLE_H
#endif
