/*
 * Evacuation plans from the replicated state: pure functions that turn the
 * cluster's view (members, inventories, maintenance phases, reservations of
 * pending moves) into placement input, run the placement and produce the
 * PLAN command to commit. No I/O: the caller passes the time.
 */
#ifndef HV_PLAN_H
#define HV_PLAN_H

#include "../consensus/state.h"

/*
 * Plan the evacuation of holder's running guests onto the other members
 * that are not in maintenance, not removed, have reported an inventory
 * within stale_ms of now_ms and are not `exclude` (a failed target; may be
 * NULL). With only_guest, plan that guest alone. Fills cmd (type PLAN, name,
 * moves; the caller sets the token). Returns HV_OK, HV_NOMEMBER, or the
 * placement's refusal (HV_FULL, HV_INVAL) with a reason in why. A holder
 * with no running guest gets HV_OK and no moves.
 */
int hv_plan_evacuation(const struct hv_state *s, const char *holder, uint64_t now_ms,
                       uint64_t stale_ms, const char *exclude, const char *only_guest,
                       struct hv_cmd *cmd, char *why, size_t whylen);

/*
 * Plan the return home of what holder's evacuation moved away: one MIGRATE
 * move back to holder for each migration that is done. Save and shutdown
 * moves need no plan (their guests are started again on the holder).
 */
int hv_plan_return(const struct hv_state *s, const char *holder, struct hv_cmd *cmd);

/*
 * Plan the rebalance that can end a maintenance instead of the return home:
 * the guests holder's evacuation moved away (and that are not back yet) are
 * placed again over every member not in maintenance plus holder itself, as
 * if they were nowhere, so they land where there is the most room. Guests
 * that would stay where they are get no move. Returns HV_OK or the
 * placement's refusal with a reason in why.
 */
int hv_plan_rebalance(const struct hv_state *s, const char *holder, struct hv_cmd *cmd,
                      char *why, size_t whylen);

/*
 * May cand take a lease beside the holders now (max-concurrent above 1)?
 * Only when every holder's evacuation is planned and committed (the room
 * its guests need is reserved), no holder's plan put a guest on cand (the
 * two would need each other as targets), and cand's own running guests
 * all live-migrate onto hosts that hold no lease (the capacity plan, in
 * scratch). HV_OK, or HV_LEASEFULL (wait) / the placement's refusal with why.
 */
int hv_plan_admit(const struct hv_state *s, const char *cand, uint64_t now_ms,
                  uint64_t stale_ms, struct hv_cmd *scratch, char *why, size_t whylen);

#endif
