#!/bin/bash
# scripts/deps.sh [--bench]: makes sure the Debian 12 packages that gsb's build,
# tests and tour need are installed. As root it installs what is missing; as any
# other user it prints the command to run and fails. Silent when all is present.
# --bench adds pglogical, which the benchmark compares against.
#
# Not for: building or configuring anything (test.sh and tour.sh do that).
# Note: installing postgresql-15 makes Debian create (and maybe start) a cluster
# 15/main on port 5432. gsb's scripts neither use nor touch it.
set -euo pipefail

# perl: prove (the TAP runner) is in it, not in perl-base.
# clang and libclang-rt-14-dev: the fuzz suite (libFuzzer). haproxy: the
# routing test. iproute2 and nftables: network-fault tests. faketime: the
# clock-skew test (libfaketime under one site).
pkgs=(make g++ perl postgresql-15 postgresql-server-dev-15 libipc-run-perl libgtest-dev clang-format
	clang libclang-rt-14-dev haproxy iproute2 nftables curl faketime)
for arg; do
	case $arg in
	--bench) pkgs+=(postgresql-15-pglogical) ;;
	-h | --help)
		sed -n '2,9s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "deps.sh: unknown argument '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh knows Debian's packages only; this system needs the equivalents of: ${pkgs[*]}" >&2
	for tool in make g++ prove pg_config clang-format; do
		command -v "$tool" >/dev/null 2>&1 || {
			echo "missing: $tool" >&2
			exit 1
		}
	done
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || status=
	[[ $status == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $EUID -ne 0 ]]; then
	echo "gsb needs these packages, which are not installed: ${missing[*]}" >&2
	echo "Install them with:" >&2
	echo "    apt-get install -y --no-install-recommends ${missing[*]}   # as root (or with sudo)" >&2
	echo "(or run this script as root, which does it)" >&2
	exit 1
fi

echo "==> installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
