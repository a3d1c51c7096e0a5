#!/bin/sh
# docker/render-haproxy.sh: renders docker/haproxy.cfg.in, the one HAProxy
# configuration of gsb, for a primary and a backup site.
#
#   sh docker/render-haproxy.sh HOST1 PGPORT1 HTTPPORT1 HOST2 PGPORT2 HTTPPORT2 LISTEN
#   sh docker/render-haproxy.sh --docker      # what docker/haproxy.cfg holds
#
# HOST1/PGPORT1/HTTPPORT1: the primary site's host, PostgreSQL port and
# gsb.http_port; HOST2/...: the backup's. LISTEN: where HAProxy accepts
# PostgreSQL clients, [ADDRESS]:PORT or PORT (all addresses). Prints the
# configuration on stdout.
#
# Not for: starting HAProxy (the tests and docker/compose.yaml do that).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

if [ "$#" -eq 1 ] && [ "$1" = --docker ]; then
	# The compose services (docker/compose.yaml): sites sjc and ams on
	# PostgreSQL's port, the endpoint on 8008, HAProxy on 5432.
	set -- sjc 5432 8008 ams 5432 8008 :5432
fi
if [ "$#" -ne 7 ]; then
	sed -n '5,12s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi

check_host() {
	case $1 in
	'' | *[!A-Za-z0-9.:_-]*)
		echo "render-haproxy.sh: bad host '$1'" >&2
		exit 2
		;;
	esac
}
check_port() {
	case $1 in
	'' | *[!0-9]*)
		echo "render-haproxy.sh: bad port '$1'" >&2
		exit 2
		;;
	esac
	if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
		echo "render-haproxy.sh: port $1 is out of range" >&2
		exit 2
	fi
}

check_host "$1"
check_port "$2"
check_port "$3"
check_host "$4"
check_port "$5"
check_port "$6"
listen=$7
case $listen in
*:*)
	check_port "${listen##*:}"
	if [ -n "${listen%:*}" ]; then check_host "${listen%:*}"; fi
	;;
*)
	check_port "$listen"
	listen=":$listen"
	;;
esac

sed -e "s|@HOST1@|$1|g" -e "s|@PGPORT1@|$2|g" -e "s|@HTTPPORT1@|$3|g" \
	-e "s|@HOST2@|$4|g" -e "s|@PGPORT2@|$5|g" -e "s|@HTTPPORT2@|$6|g" \
	-e "s|@LISTEN@|$listen|g" "$here/haproxy.cfg.in"
