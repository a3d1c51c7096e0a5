#!/usr/bin/env bash
# scripts/netns-helper.sh: the root side of the link-fault tests (t/309,
# t/314) and of the partition test (t/328, three sites).
#
# For: putting each of two test sites in its own network namespace, joined by
# one veth pair, and cutting that link on request (interface down, packets
# dropped in one or both directions, TCP resets), for a TAP test that runs as
# an unprivileged user; with "setup TAG 3", a third namespace (c, the
# witness) joined to each of a and b by a veth pair of its own, so that every
# link between two of the three can be cut alone. Not for: anything outside
# the namespaces it made; it never touches the machine's own interfaces or
# firewall.
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
# a or b, or c after "setup TAG 3"; site a has 10.77.0.1/24, site b
# 10.77.0.2/24, on interface "site"; with three, the link a-c is 10.77.1.0/24
# (a 10.77.1.1 on "to-c", c 10.77.1.3 on "to-a") and the link b-c is
# 10.77.2.0/24 (b 10.77.2.2 on "to-c", c 10.77.2.3 on "to-b")):
#   setup TAG [3]            make namespaces gsb-TAG-a and gsb-TAG-b and the link
#                            (with 3: also gsb-TAG-c and its links to a and b)
#   run TAG SIDE ARG...      run ARG... in SIDE's namespace as RUNNER, with an
#                            empty environment (give it with env-style ARGs)
#   link TAG up|down         set site a's end of the link a-b up or down
#   block TAG DIR...         drop the packets going each way DIR: a2b, b2a or
#                            both (a-b both ways); with three also a2c, c2a,
#                            b2c, c2b (dropped where they arrive, by the
#                            sender's address on that link)
#   reset TAG                answer every TCP segment between a and b with a
#                            reset (both ways)
#   clear TAG                remove every block and reset rule (all sides)
#   show TAG                 the link state and rules, for diagnostics
#   teardown TAG             stop RUNNER's processes in them, delete them all
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
	local tag=$1 n=${2:-2} a b c side
	[[ $n == 2 || $n == 3 ]] || {
		echo "setup TAG [3]: two or three sites"
		return 2
	}
	a=$(ns_of "$tag" a)
	b=$(ns_of "$tag" b)
	c=$(ns_of "$tag" c)
	teardown "$tag" >/dev/null 2>&1
	ip netns add "$a" && ip netns add "$b" || return 1
	ip link add site netns "$a" type veth peer name site netns "$b" || return 1
	ip -n "$a" addr add 10.77.0.1/24 dev site || return 1
	ip -n "$b" addr add 10.77.0.2/24 dev site || return 1
	local sides=("$a" "$b")
	if [[ $n == 3 ]]; then
		ip netns add "$c" || return 1
		sides+=("$c")
		ip link add to-c netns "$a" type veth peer name to-a netns "$c" || return 1
		ip link add to-c netns "$b" type veth peer name to-b netns "$c" || return 1
		ip -n "$a" addr add 10.77.1.1/24 dev to-c || return 1
		ip -n "$c" addr add 10.77.1.3/24 dev to-a || return 1
		ip -n "$b" addr add 10.77.2.2/24 dev to-c || return 1
		ip -n "$c" addr add 10.77.2.3/24 dev to-b || return 1
		ip -n "$a" link set to-c up && ip -n "$b" link set to-c up || return 1
		ip -n "$c" link set to-a up && ip -n "$c" link set to-b up || return 1
	fi
	for side in "${sides[@]}"; do
		ip -n "$side" link set lo up || return 1
		if [[ $side != "$c" ]]; then
			ip -n "$side" link set site up || return 1
		fi
		ip netns exec "$side" nft -f - <<-'EOF' || return 1
			table inet gsb {
				chain input { type filter hook input priority 0; policy accept; }
				chain output { type filter hook output priority 0; policy accept; }
			}
		EOF
	done
	echo "site a: $a 10.77.0.1; site b: $b 10.77.0.2"
	[[ $n == 3 ]] && echo "site c: $c 10.77.1.3 (from a), 10.77.2.3 (from b); a-c: a 10.77.1.1; b-c: b 10.77.2.2"
	return 0
}

has_c() { [[ -e /run/netns/$(ns_of "$1" c) ]]; }

# block_dir TAG DIR: drop what DIR's sender sends to its receiver, where it
# arrives, by the sender's address on their link.
block_dir() {
	local tag=$1 dir=$2
	case $dir in
	a2b) rules "$tag" b "input ip saddr 10.77.0.1 drop" ;;
	b2a) rules "$tag" a "input ip saddr 10.77.0.2 drop" ;;
	both) block_dir "$tag" a2b && block_dir "$tag" b2a ;;
	a2c | c2a | b2c | c2b)
		has_c "$tag" || {
			echo "no side c: setup $tag 3 first"
			return 2
		}
		case $dir in
		a2c) rules "$tag" c "input ip saddr 10.77.1.1 drop" ;;
		c2a) rules "$tag" a "input ip saddr 10.77.1.3 drop" ;;
		b2c) rules "$tag" c "input ip saddr 10.77.2.2 drop" ;;
		c2b) rules "$tag" b "input ip saddr 10.77.2.3 drop" ;;
		esac
		;;
	*)
		echo "block a2b, b2a, both, a2c, c2a, b2c or c2b"
		return 2
		;;
	esac
}

# Processes of RUNNER left in the namespaces (a test that died) are stopped;
# a namespace with none left goes away with ip netns del.
teardown() {
	local tag=$1 side ns pid
	for side in a b c; do
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
	setup) setup "$tag" "${3:-2}" ;;
	teardown) teardown "$tag" ;;
	run)
		local side=${3:-}
		[[ $side == a || $side == b ]] || { [[ $side == c ]] && has_c "$tag"; } || {
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
		shift 2
		(($#)) || {
			echo "block a2b, b2a, both, a2c, c2a, b2c or c2b"
			return 2
		}
		local dir
		for dir in "$@"; do
			block_dir "$tag" "$dir" || return $?
		done
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
			ip netns exec "$(ns_of "$tag" b)" nft flush chain inet gsb input || return 1
		if has_c "$tag"; then
			ip netns exec "$(ns_of "$tag" c)" nft flush chain inet gsb input
		fi
		;;
	show)
		local s
		for s in a b c; do
			[[ $s != c ]] || has_c "$tag" || continue
			echo "== site $s"
			ip -n "$(ns_of "$tag" "$s")" -br addr show
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
