#!/bin/bash
# scripts/check-default-build.sh TEST_BUILD_DIR: proves that the default build
# of gsb has no test hooks (issue: fault points and selftest functions that a
# superuser could switch on by accident in production).
#
# Builds the default build (no GSB_TEST_HOOKS) from a copy of the tree in
# TEST_BUILD_DIR, then checks that its gsb.so exports no gsb_selftest_*
# function and holds no "fault_injection" setting, and that its install
# script declares no selftest function. The same checks run against the test
# build already made in TEST_BUILD_DIR must find the hooks there: a check that
# cannot find them proves nothing. Needs PG_CONFIG, make, nm.
#
# Not for: building anything that is installed (the copy is thrown away).
set -uo pipefail

test_dir=${1:?usage: check-default-build.sh TEST_BUILD_DIR}
for tool in make nm grep; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "check-default-build.sh: $tool is missing" >&2
		exit 1
	}
done

# hooks_in DIR: prints what test hooks the build in DIR has, one per line.
hooks_in() {
	local dir=$1
	nm -D --defined-only "$dir/gsb.so" | awk '{print $NF}' | grep -E '^gsb_selftest_' || true
	grep -a -o 'gsb\.fault_injection' "$dir/gsb.so" | sort -u || true
	grep -E -o 'FUNCTION gsb\.selftest_[a-z_]+' "$dir/gsb--0.1.sql" || true
}

copy=$(mktemp -d "${TMPDIR:-/tmp}/gsb-default-build.XXXXXX") || exit 1
trap 'rm -rf "$copy"' EXIT
tar -C "$test_dir" --exclude='*.o' --exclude='*.so' --exclude='*.d' --exclude='*.bc' \
	--exclude=.gsb-build --exclude=gsb--0.1.sql --exclude=tmp_check --exclude=tmp_regress \
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
if [[ -n $in_default ]]; then
	echo "FAIL: the default build has test hooks: $(echo $in_default)" >&2
	status=1
fi
((status == 0)) && echo "the default build has no test hooks"
exit $status
