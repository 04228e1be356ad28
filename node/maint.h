/* Maintenance of this host (enter: evacuate; exit: bring guests back). */
#ifndef HV_MAINT_H
#define HV_MAINT_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc.h"

struct hv_node;

/* Start entering (exit_op false) or leaving maintenance on a worker thread;
 * leaving with rebalance spreads the guests instead of bringing them home.
 * conn, when not NULL, gets the outcome. Returns HV_OK or an error with a
 * message in err (conn then untouched). */
int hv_maint_start(struct hv_node *n, bool exit_op, bool rebalance,
                   struct hv_rpc_conn *conn, char *err, size_t errlen);

/* The node stops: end the job (waits for a libvirt call in progress). */
void hv_maint_cancel(struct hv_node *n);

#endif
