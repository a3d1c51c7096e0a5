#!/bin/sh
# docker/render-haproxy.sh: renders docker/haproxy.cfg.in, the one HAProxy
# configuration of gsb, for a primary and a backup site.
#
#   sh docker/render-haproxy.sh HOST1 PGPORT1 HTTPPORT1 HOST2 PGPORT2 HTTPPORT2 LISTEN [HTTPLISTEN]
#   sh docker/render-haproxy.sh --docker      # what docker/haproxy.cfg holds
#
# HOST1/PGPORT1/HTTPPORT1: the primary site's host, PostgreSQL port and
# gsb.http_port; HOST2/...: the backup's. LISTEN: where HAProxy accepts
# PostgreSQL clients, [ADDRESS]:PORT or PORT (all addresses). HTTPLISTEN: the
# same for the HTTP checks (/<company>/detectbackup.php, /detectbackup,
# /active), which the active site's endpoint answers; left out, there is no
# HTTP frontend. Prints the configuration on stdout.
#
# Not for: starting HAProxy (the tests and docker/compose.yaml do that).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

if [ "$#" -eq 1 ] && [ "$1" = --docker ]; then
	# The compose services (docker/compose.yaml): sites sjc and ams on
	# PostgreSQL's port, the endpoint on 8008, HAProxy on 5432.
	# HTTP checks on 8080.
	set -- sjc 5432 8008 ams 5432 8008 :5432 :8080
fi
if [ "$#" -ne 7 ] && [ "$#" -ne 8 ]; then
	sed -n '5,15s/^# \{0,1\}//p' "$0" >&2
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
# [ADDRESS]:PORT or PORT, checked; prints ADDRESS:PORT (ADDRESS may be empty).
check_listen() {
	case $1 in
	*:*)
		check_port "${1##*:}"
		if [ -n "${1%:*}" ]; then check_host "${1%:*}"; fi
		echo "$1"
		;;
	*)
		check_port "$1"
		echo ":$1"
		;;
	esac
}
listen=$(check_listen "$7")
if [ "$#" -eq 8 ]; then
	http_listen=$(check_listen "$8")
	# The frontend stays; only its marker lines go.
	http_block='/^# \(>>>\|<<<\) http frontend/d'
else
	http_listen=
	http_block='/^# >>> http frontend/,/^# <<< http frontend/d'
fi

sed -e "$http_block" \
	-e "s|@HOST1@|$1|g" -e "s|@PGPORT1@|$2|g" -e "s|@HTTPPORT1@|$3|g" \
	-e "s|@HOST2@|$4|g" -e "s|@PGPORT2@|$5|g" -e "s|@HTTPPORT2@|$6|g" \
	-e "s|@LISTEN@|$listen|g" -e "s|@HTTPLISTEN@|$http_listen|g" "$here/haproxy.cfg.in"
