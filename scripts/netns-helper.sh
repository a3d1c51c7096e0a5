#!/usr/bin/env bash
# scripts/netns-helper.sh: the root side of the link-fault tests (t/309).
#
# For: putting each of two test sites in its own network namespace, joined by
# one veth pair, and cutting that link on request (interface down, packets
# dropped in one or both directions, TCP resets), for a TAP test that runs as
# an unprivileged user. Not for: anything outside the namespaces it made; it
# never touches the machine's own interfaces or firewall.
#
#   scripts/netns-helper.sh check
#       exit 0 when this user can make network namespaces, veth pairs and
#       nftables rules here (root with ip and nft), else print why and exit 1
#   scripts/netns-helper.sh serve DIR RUNNER
#       as root: serve requests from RUNNER through the FIFOs DIR/req and
#       DIR/resp until killed (scripts/test.sh starts and stops it)
#
# A request is one line of tab-separated words; the answer is "rc N" and the
# output of what ran. Requests (TAG: 1-8 lower-case letters or digits; SIDE:
# a or b; site a has 10.77.0.1/24, site b 10.77.0.2/24, on interface "site"):
#   setup TAG                make namespaces gsb-TAG-a and gsb-TAG-b and the link
#   run TAG SIDE ARG...      run ARG... in SIDE's namespace as RUNNER, with an
#                            empty environment (give it with env-style ARGs)
#   link TAG up|down         set site a's end of the link up or down
#   block TAG a2b|b2a|both   drop the packets going that way
#   reset TAG                answer every TCP segment between the sites with a
#                            reset (both ways)
#   clear TAG                remove every block and reset rule
#   show TAG                 the link state and rules, for diagnostics
#   teardown TAG             stop RUNNER's processes in them, delete both
# The helper does only these things and runs commands only as RUNNER, so the
# FIFOs (which only RUNNER and root can open) give RUNNER no root powers.
set -u

die() {
	echo "netns-helper: $*" >&2
	exit 1
}

check() {
	[[ $EUID -eq 0 ]] || {
		echo "not root: network namespaces need root"
		return 1
	}
	command -v ip >/dev/null || {
		echo "ip (package iproute2) is not installed"
		return 1
	}
	command -v nft >/dev/null || {
		echo "nft (package nftables) is not installed"
		return 1
	}
	local ns=gsb-check-$$ out
	if ! out=$(ip netns add "$ns" 2>&1); then
		echo "cannot make a network namespace: $out"
		return 1
	fi
	if ! out=$(ip netns exec "$ns" nft add table inet gsb_check 2>&1); then
		ip netns del "$ns"
		echo "cannot use nftables in a network namespace: $out"
		return 1
	fi
	if ! out=$(ip -n "$ns" link add x type veth peer name y 2>&1); then
		ip netns del "$ns"
		echo "cannot make a veth pair: $out"
		return 1
	fi
	ip netns del "$ns"
	return 0
}

ns_of() { echo "gsb-$1-$2"; }

setup() {
	local tag=$1 a b side
	a=$(ns_of "$tag" a)
	b=$(ns_of "$tag" b)
	teardown "$tag" >/dev/null 2>&1
	ip netns add "$a" && ip netns add "$b" || return 1
	ip link add site netns "$a" type veth peer name site netns "$b" || return 1
	ip -n "$a" addr add 10.77.0.1/24 dev site || return 1
	ip -n "$b" addr add 10.77.0.2/24 dev site || return 1
	for side in "$a" "$b"; do
		ip -n "$side" link set lo up || return 1
		ip -n "$side" link set site up || return 1
		ip netns exec "$side" nft -f - <<-'EOF' || return 1
			table inet gsb {
				chain input { type filter hook input priority 0; policy accept; }
				chain output { type filter hook output priority 0; policy accept; }
			}
		EOF
	done
	echo "site a: $a 10.77.0.1; site b: $b 10.77.0.2"
}

# Processes of RUNNER left in the namespaces (a test that died) are stopped;
# a namespace with none left goes away with ip netns del.
teardown() {
	local tag=$1 side ns pid
	for side in a b; do
		ns=$(ns_of "$tag" "$side")
		[[ -e /run/netns/$ns ]] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			[[ $(stat -c %U "/proc/$pid" 2>/dev/null) == "$runner" ]] && kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns"
	done
	return 0
}

rules() {
	local tag=$1 side=$2 rule=$3
	ip netns exec "$(ns_of "$tag" "$side")" nft add rule inet gsb $rule
}

handle() {
	local verb=${1:-} tag=${2:-}
	[[ $tag =~ ^[a-z0-9]{1,8}$ ]] || {
		echo "bad tag '$tag'"
		return 2
	}
	case $verb in
	setup) setup "$tag" ;;
	teardown) teardown "$tag" ;;
	run)
		local side=${3:-}
		[[ $side == a || $side == b ]] || {
			echo "bad side '$side'"
			return 2
		}
		shift 3
		(($#)) || {
			echo "nothing to run"
			return 2
		}
		timeout -k 10 120 ip netns exec "$(ns_of "$tag" "$side")" \
			runuser -u "$runner" -- env -i "$@" </dev/null
		;;
	link)
		[[ ${3:-} == up || ${3:-} == down ]] || {
			echo "link up or link down"
			return 2
		}
		ip -n "$(ns_of "$tag" a)" link set site "$3"
		;;
	block)
		case ${3:-} in
		a2b) rules "$tag" b "input ip saddr 10.77.0.1 drop" ;;
		b2a) rules "$tag" a "input ip saddr 10.77.0.2 drop" ;;
		both)
			rules "$tag" b "input ip saddr 10.77.0.1 drop" &&
				rules "$tag" a "input ip saddr 10.77.0.2 drop"
			;;
		*)
			echo "block a2b, b2a or both"
			return 2
			;;
		esac
		;;
	reset)
		# Resets themselves pass, so that each side hears the other's.
		rules "$tag" a "input ip saddr 10.77.0.2 tcp flags rst accept" &&
			rules "$tag" a "input ip saddr 10.77.0.2 meta l4proto tcp reject with tcp reset" &&
			rules "$tag" b "input ip saddr 10.77.0.1 tcp flags rst accept" &&
			rules "$tag" b "input ip saddr 10.77.0.1 meta l4proto tcp reject with tcp reset"
		;;
	clear)
		ip netns exec "$(ns_of "$tag" a)" nft flush chain inet gsb input &&
			ip netns exec "$(ns_of "$tag" b)" nft flush chain inet gsb input
		;;
	show)
		local s
		for s in a b; do
			echo "== site $s"
			ip -n "$(ns_of "$tag" "$s")" -br addr show dev site
			ip netns exec "$(ns_of "$tag" "$s")" nft list table inet gsb
		done
		;;
	*)
		echo "unknown request '$verb'"
		return 2
		;;
	esac
}

serve() {
	local dir=$1 line rc out tags=() t
	[[ $EUID -eq 0 ]] || die "serve needs root"
	id -u "$runner" >/dev/null 2>&1 || die "no user '$runner'"
	mkdir -p "$dir" && rm -f "$dir/req" "$dir/resp" || die "cannot use $dir"
	mkfifo -m 600 "$dir/req" "$dir/resp" || die "cannot make FIFOs in $dir"
	chown "$runner:" "$dir" "$dir/req" "$dir/resp" || die "cannot give $dir to $runner"
	trap 'for t in "${tags[@]}"; do teardown "$t"; done; exit 0' TERM INT
	while :; do
		line=
		IFS= read -r line <"$dir/req" || continue
		local -a words=()
		IFS=$'\t' read -r -a words <<<"$line"
		[[ ${words[0]:-} == setup ]] && tags+=("${words[1]:-}")
		out=$(handle "${words[@]}" 2>&1)
		rc=$?
		# A client that went away must not hold the helper forever.
		printf 'rc %d\n%s\n' "$rc" "$out" | timeout 30 tee "$dir/resp" >/dev/null
	done
}

case ${1:-} in
check) check ;;
serve)
	[[ $# -eq 3 ]] || die "usage: $0 serve DIR RUNNER"
	runner=$3
	serve "$2"
	;;
*) die "usage: $0 check | serve DIR RUNNER" ;;
esac
