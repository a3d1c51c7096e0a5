#!/bin/bash
# bench/conflicts.sh [SECONDS [ROUNDS [CLIENTS]]]: two-way pgbench tps with
# gsb.record_conflicts on and off (README, Conflicts).
#
#   sudo bash bench/conflicts.sh            # 3 rounds of (on, off), 20 s each, 2 clients per site
#   sudo bash bench/conflicts.sh 10 1       # a quick look
#   GSB_BENCH_MODES=default ...            # a build without gsb.record_conflicts (see t/401)
#
# It runs t/401_conflict_tps.pl through scripts/test.sh, so the sites are a
# throwaway TAP pair in a private PostgreSQL copy (the system's PostgreSQL is
# left alone): pgbench -i on both sites (the same accounts), the four pgbench
# tables replicated, then pgbench's default TPC-B-like script on both sites
# at once, alternating recording on and off. Prints each run's tps, conflicts
# recorded and lost increments, then the medians. Without GSB_BENCH_CONFLICTS=1
# (which this script sets) the TAP file skips itself.
#
# Not for: comparing numbers across machines; the two sites share this
# machine's cores with each other and with both pgbench clients.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GSB_BENCH_CONFLICTS=1
export GSB_BENCH_SECONDS=${1:-20} GSB_BENCH_ROUNDS=${2:-3} GSB_BENCH_CLIENTS=${3:-2}
log=$(mktemp /tmp/gsb-conflicts-bench.XXXXXX.log)
rc=0
PROVE_TESTS=t/401_conflict_tps.pl bash scripts/test.sh tap >"$log" 2>&1 || rc=$?
grep -E '^# bench: ' "$log" | sed 's/^# //' || true
if ((rc != 0)); then
	echo "the measurement failed (exit code $rc); its output: $log" >&2
	exit "$rc"
fi
rm -f "$log"
