#!/bin/bash
# scripts/check-default-build.sh TEST_BUILD_DIR: proves that the default build
# of gsb has no test hooks (issue: fault points and selftest functions that a
# superuser could switch on by accident in production).
#
# Builds the default build (no GSB_TEST_HOOKS) from a copy of the tree in
# TEST_BUILD_DIR, then checks that its gsb.so exports no gsb_selftest_*
# function and holds no "fault_injection" setting, and that none of its SQL
# scripts (the install script of this version, the released versions' install
# scripts and the update scripts: every gsb--*.sql that make installs)
# declares a selftest function. The same checks run against the test build
# already made in TEST_BUILD_DIR must find the hooks there, in gsb.so and in
# every one of its scripts: a check that cannot find them proves nothing.
# Needs PG_CONFIG, make, nm, perl (make's update script).
#
# Not for: building anything that is installed (the copy is thrown away).
set -uo pipefail

test_dir=${1:?usage: check-default-build.sh TEST_BUILD_DIR}
for tool in make nm grep perl; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "check-default-build.sh: $tool is missing" >&2
		exit 1
	}
done

# The SQL scripts that the build in DIR made (make generates every one of
# DATA_built, which `make install` installs), by name.
scripts_of() {
	(cd "$1" && compgen -G 'gsb--*.sql' | sort)
}

# hooks_in DIR: prints what test hooks the build in DIR has, one per line
# (a script's as SCRIPT:FUNCTION gsb.selftest_...).
hooks_in() {
	local dir=$1 f
	nm -D --defined-only "$dir/gsb.so" | awk '{print $NF}' | grep -E '^gsb_selftest_' || true
	grep -a -o 'gsb\.fault_injection' "$dir/gsb.so" | sort -u || true
	for f in $(scripts_of "$dir"); do
		grep -E -o 'FUNCTION gsb\.selftest_[a-z_]+' "$dir/$f" | sed "s|^|$f:|" || true
	done
}

copy=$(mktemp -d "${TMPDIR:-/tmp}/gsb-default-build.XXXXXX") || exit 1
trap 'rm -rf "$copy"' EXIT
tar -C "$test_dir" --exclude='*.o' --exclude='*.so' --exclude='*.d' --exclude='*.bc' \
	--exclude=.gsb-build --exclude=tmp_check --exclude=tmp_regress \
	--exclude=results --exclude=log --exclude='test/unit/*_test' --exclude=test/fuzz/protocol_fuzz \
	-cf - src bgworker Makefile gsb.control scripts | tar -xf - -C "$copy" || exit 1
echo "building the default build in $copy"
if ! make -C "$copy" -j2 -s PG_CONFIG="${PG_CONFIG:-pg_config}" >"$copy/build.log" 2>&1; then
	tail -n 30 "$copy/build.log"
	echo "check-default-build.sh: the default build failed" >&2
	exit 1
fi

in_test=$(hooks_in "$test_dir")
in_default=$(hooks_in "$copy")
echo "test build's hooks: $(echo $in_test)"
echo "default build's hooks: ${in_default:-none}"
status=0
if [[ -z $in_test ]]; then
	echo "FAIL: the checks found no hook in the test build either: they prove nothing" >&2
	status=1
fi
# Each script of the test build must show the hooks, or the check of that
# script in the default build proves nothing.
test_scripts=$(scripts_of "$test_dir")
default_scripts=$(scripts_of "$copy")
if [[ -z $test_scripts || $test_scripts != "$default_scripts" ]]; then
	echo "FAIL: the builds install different scripts: test build '$test_scripts', default build '$default_scripts'" >&2
	status=1
fi
for f in $test_scripts; do
	if ! grep -q "^$f:" <<<"$in_test"; then
		echo "FAIL: the check found no selftest function in the test build's $f: it proves nothing there" >&2
		status=1
	fi
done
echo "scripts checked: $(echo $default_scripts)"
if [[ -n $in_default ]]; then
	echo "FAIL: the default build has test hooks: $(echo $in_default)" >&2
	status=1
fi
((status == 0)) && echo "the default build has no test hooks"
exit $status
