/* placeholder: being written */
#ifndef HV_BOOTBANK_H
#define HV_BOOTBANK_H
#endif
