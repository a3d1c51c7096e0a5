#!/bin/bash
# scripts/test.sh [SUITE...]: gsb's whole test suite, as CI runs it (.ci/run).
#
#   bash scripts/test.sh            # lint, unit, fuzz, hooks, regress, tap
#   bash scripts/test.sh unit tap   # some of them
#
# Suites: lint (clang-format check), unit (gtest protocol tests, no server),
# fuzz (a 30 s libFuzzer run of the protocol reader; FUZZ_SECONDS changes it),
# hooks (the default build has no test hooks: scripts/check-default-build.sh),
# regress (pg_regress on one temporary cluster: sql/ against expected/), tap
# (t/*.pl, multi-cluster tests with PostgreSQL::Test::Cluster).
#
# It installs missing packages (deps.sh; as another user than root it prints
# the apt-get command and stops), copies the source tree into a fresh work
# directory, builds there, installs gsb into a private copy of PostgreSQL 15 in
# that directory (the system's installation is never written) and runs the
# suites, with the test build (GSB_TEST_HOOKS=1: fault points, selftest
# functions). As root, PostgreSQL (which refuses root) and the build run as the user
# postgres; as another user, everything runs as that user. A suite also fails when a server log shows a crash
# (`terminated by signal` or PANIC). As root, the tap suite also runs
# scripts/netns-helper.sh, so that t/309 can put the sites in network
# namespaces; otherwise that test skips itself and the summary says why.
# The work directory is kept on failure (or
# with KEEP=1); GSB_WORK_ROOT (default /tmp) is where it is made. Also read: PROVE_TESTS='t/001_x.pl ...', PROVE_FLAGS, REGRESS
# (space-separated test names), PG_CONFIG, GSB_TEST_TIMEOUT (seconds for each
# suite; by default lint and unit 300, regress 900, tap 3000, which keeps a run
# within CI's 90 minutes).
#
# Not for: testing against a running server (see README.md, Tests).
set -uo pipefail

all_suites=(lint unit fuzz hooks regress tap)
suites=()
for arg; do
	case $arg in
	lint | unit | fuzz | hooks | regress | tap) suites+=("$arg") ;;
	-h | --help)
		sed -n '2,25s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "test.sh: unknown suite '$arg' (suites: ${all_suites[*]})" >&2
		exit 2
		;;
	esac
done
((${#suites[@]})) || suites=("${all_suites[@]}")

# shellcheck source=scripts/sites.sh
source "$(dirname "${BASH_SOURCE[0]}")/sites.sh"
repo=$GSB_REPO

# Expected outputs assume a UTF-8 C locale: initdb takes its encoding from the
# environment, and psql's column widths depend on that encoding.
unset LC_ALL LC_CTYPE LC_COLLATE LC_MESSAGES LC_MONETARY LC_NUMERIC LC_TIME LANGUAGE
export LANG=C.UTF-8
declare -A suite_timeout=([lint]=300 [unit]=300 [fuzz]=600 [hooks]=600 [regress]=900 [tap]=3000)

bash "$repo/scripts/deps.sh" || exit 1
gsb_pg_init

wants() {
	local s
	for s in "${suites[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}
# Only hooks, regress and tap need gsb built (the test build, GSB_TEST_HOOKS=1)
# and installed into the private server.
needs_install=false
if wants hooks || wants regress || wants tap; then needs_install=true; fi

gsb_choose_runner

work=$(mktemp -d "${GSB_WORK_ROOT:-/tmp}/gsb-test.XXXXXX") || gsb_die "cannot make a work directory"
export GSB_HOME=$work
gsb_say "work directory $work (as ${GSB_RUN_AS:-$(id -un)})"
# The source tree goes to $work/src, gsb is installed into a private copy of
# PostgreSQL in $work/pg: the system's installation is left alone.
[[ -n $GSB_RUN_AS ]] && chown "$GSB_RUN_AS:" "$work"
chmod 755 "$work"
mkdir "$work/src" && gsb_copy_tree "$repo" "$work/src" ||
	gsb_die "could not copy the source tree into $work/src"
if $needs_install; then
	gsb_say "private copy of PostgreSQL in $work/pg"
	gsb_private_pg "$work/pg" || gsb_die "could not copy the PostgreSQL installation into $work/pg"
fi
cd "$work/src" || exit 1

declare -A result note
set_result() {
	result[$1]=$2
	note[$1]=${3:-}
}

# Runs one suite's command as the runner, under a time limit, with its output
# also kept in $work/suite-<suite>.log.
run_suite() {
	local name=$1 rc limit=${GSB_TEST_TIMEOUT:-${suite_timeout[$1]}}
	shift
	gsb_say "$name"
	gsb_as timeout -k 30 "$limit" "$@" </dev/null 2>&1 | tee "$work/suite-$name.log"
	rc=${PIPESTATUS[0]}
	if ((rc == 0)); then
		set_result "$name" passed
	elif ((rc == 124 || rc == 137)); then
		set_result "$name" failed "timed out after ${limit}s"
	else
		set_result "$name" failed "exit code $rc"
	fi
	return "$rc"
}

# Stops every server that a suite left running under the work directory (a
# test killed by the time limit leaves its clusters behind).
stop_leftover_servers() {
	local pidfile
	while IFS= read -r pidfile; do
		gsb_pg_stop "$(dirname "$pidfile")" immediate
	done < <(find "$work" -maxdepth 6 -name postmaster.pid 2>/dev/null)
}

# Fails suite $1 when one of the server logs given shows a crash. A test that
# kills processes on purpose checks its own logs and leaves LOG.expected-signals
# ("PID SIGNAL" per line): exactly those deaths are not crashes.
check_server_logs() {
	local name=$1 hits f
	shift
	hits=$(for f in "$@"; do
		if [[ -f $f.expected-signals ]]; then
			grep -HnE 'terminated by signal|PANIC' "$f" 2>/dev/null |
				awk -v list="$f.expected-signals" '
					BEGIN { while ((getline l < list) > 0) { split(l, a, " "); ok[a[1] " " a[2]] = 1 } }
					match($0, /\(PID [0-9]+\) was terminated by signal [0-9]+/) {
						split(substr($0, RSTART, RLENGTH), w, /[ )]+/)
						if ((w[2] " " w[7]) in ok) next
					}
					{ print }'
		else
			grep -HnE 'terminated by signal|PANIC' "$f" 2>/dev/null
		fi
	done)
	if [[ -n $hits ]]; then
		echo "$name: the server log shows a crash:"
		echo "$hits"
		if [[ ${result[$name]:-} == failed ]]; then
			set_result "$name" failed "${note[$name]}; server log shows a crash"
		else
			set_result "$name" failed "server log shows a crash"
		fi
	fi
}

build_ok=true
if $needs_install; then
	gsb_say "build (make -j2)"
	if ! gsb_build "$work/src" GSB_TEST_HOOKS=1; then
		build_ok=false
		build_note="not run: the build failed"
	else
		gsb_say "install (make install)"
		if ! gsb_install "$work/src" GSB_TEST_HOOKS=1 >"$work/make-install.log" 2>&1; then
			cat "$work/make-install.log"
			build_ok=false
			build_note="not run: make install failed"
		fi
	fi
fi

if wants lint; then
	run_suite lint make lint
fi

if wants unit; then
	if compgen -G 'test/unit/*.cpp' >/dev/null; then
		run_suite unit make unit PG_CONFIG="$PG_CONFIG"
	else
		set_result unit skipped "no tests in test/unit/ yet"
	fi
fi

if wants fuzz; then
	# A short libFuzzer run of the wire-protocol reader on the seed corpus.
	if compgen -G 'test/fuzz/*.cpp' >/dev/null; then
		run_suite fuzz make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
	else
		set_result fuzz skipped "no fuzz target yet"
	fi
fi

if wants hooks; then
	if ! $build_ok; then
		set_result hooks failed "$build_note"
	else
		run_suite hooks bash scripts/check-default-build.sh "$work/src"
	fi
fi

if wants regress; then
	if ! $build_ok; then
		set_result regress failed "$build_note"
	elif ! compgen -G 'sql/*.sql' >/dev/null; then
		set_result regress skipped "no tests in sql/ yet"
	else
		args=(installcheck TAP_TESTS= PG_CONFIG="$PG_CONFIG" GSB_TEST_HOOKS=1)
		[[ -n ${REGRESS:-} ]] && args+=(REGRESS="$REGRESS")
		run_suite regress make "${args[@]}"
		stop_leftover_servers
		check_server_logs regress log/*.log tmp_regress/log/*
		if [[ ${result[regress]} == failed ]]; then
			if [[ -s regression.diffs ]]; then
				gsb_say "regression.diffs (first 400 lines)"
				head -n 400 regression.diffs
			fi
			for f in log/postmaster.log tmp_regress/log/postmaster.log; do
				[[ -f $f ]] || continue
				gsb_say "end of $f"
				tail -n 40 "$f"
			done
		fi
	fi
fi

if wants tap; then
	if ! $build_ok; then
		set_result tap failed "$build_note"
	elif ! compgen -G 't/*.pl' >/dev/null; then
		set_result tap skipped "no tests in t/ yet"
	else
		args=(installcheck REGRESS= PG_CONFIG="$PG_CONFIG" GSB_TEST_HOOKS=1)
		[[ -n ${PROVE_TESTS:-} ]] && args+=(PROVE_TESTS="$PROVE_TESTS")
		[[ -n ${PROVE_FLAGS:-} ]] && args+=(PROVE_FLAGS="$PROVE_FLAGS")
		# The link-fault test (t/309) puts the sites in network namespaces,
		# which only root can make: a small root helper makes them and cuts
		# the link when the test asks (scripts/netns-helper.sh).
		netns_pid= netns_why=
		if netns_why=$(bash scripts/netns-helper.sh check 2>&1); then
			bash scripts/netns-helper.sh serve "$work/netns" "${GSB_RUN_AS:-$(id -un)}" \
				>"$work/netns-helper.log" 2>&1 &
			netns_pid=$!
			for _ in $(seq 50); do
				[[ -p $work/netns/resp ]] && break
				sleep 0.1
			done
			[[ -p $work/netns/resp ]] || netns_why="the helper did not start: $(cat "$work/netns-helper.log")"
		fi
		if [[ -p $work/netns/resp ]]; then
			run_suite tap env GSB_NETNS_HELPER="$work/netns" make "${args[@]}"
		else
			gsb_say "link-fault tests will skip themselves: $netns_why"
			run_suite tap make "${args[@]}"
		fi
		if [[ -n $netns_pid ]]; then
			kill "$netns_pid" 2>/dev/null
			wait "$netns_pid" 2>/dev/null
		else
			note[tap]="${note[tap]:+${note[tap]}; }link faults skipped: $netns_why"
		fi
		stop_leftover_servers
		server_logs=()
		for f in tmp_check/log/*; do
			[[ -f $f && $(basename "$f") != regress_log_* ]] && server_logs+=("$f")
		done
		((${#server_logs[@]})) && check_server_logs tap "${server_logs[@]}"
		if [[ ${result[tap]} == failed ]]; then
			# The tests that prove's summary names; without a summary (time
			# limit), every test that left a log and that prove did not call ok.
			failed_tests=$(sed -nE 's|^t/([^ ]+)\.pl +\(Wstat.*|\1|p' "$work/suite-tap.log" | sort -u)
			if [[ -z $failed_tests ]]; then
				ok_tests=" $(sed -nE 's|^t/([^ ]+)\.pl \.+ ok$|\1|p' "$work/suite-tap.log" | tr '\n' ' ') "
				failed_tests=$(for f in tmp_check/log/regress_log_*; do
					[[ -f $f ]] || continue
					t=${f#tmp_check/log/regress_log_}
					[[ $ok_tests == *" $t "* ]] || echo "$t"
				done)
			fi
			for t in $failed_tests; do
				for f in "tmp_check/log/regress_log_$t" tmp_check/log/"${t}"_*.log; do
					[[ -f $f ]] || continue
					gsb_say "end of $f"
					tail -n 80 "$f"
				done
			done
		fi
	fi
fi

stop_leftover_servers

passed=0 failed=0 skipped=0
echo
for s in "${suites[@]}"; do
	r=${result[$s]:-failed}
	n=${note[$s]:-}
	[[ -z ${result[$s]:-} ]] && n="did not run"
	printf '%-8s %s%s\n' "$s:" "$r" "${n:+ ($n)}"
	case $r in
	passed) passed=$((passed + 1)) ;;
	skipped) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done

if ((failed == 0)) && [[ ${KEEP:-} != 1 ]]; then
	cd / && rm -rf "$work"
else
	echo "work directory kept for inspection: $work"
fi
if ((skipped)); then
	echo "suites: $passed passed, $failed failed, $skipped skipped"
else
	echo "suites: $passed passed, $failed failed"
fi
((failed == 0))
