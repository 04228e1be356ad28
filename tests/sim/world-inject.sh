#!/bin/sh
# The simulation's invariants can fail: tests/sim/test_world --inject-bug
# runs seeds 1-200 with a driver that skips its fencing check (no barrier, no
# token, no pause check before a side effect) and passes only when the
# fencing invariant caught it in at least one seed.
exec "${HVPEER_BUILDDIR:-.}/tests/sim/test_world" --inject-bug
