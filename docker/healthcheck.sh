#!/bin/sh
# docker/healthcheck.sh: the gsb image's HEALTHCHECK. Healthy when PostgreSQL
# accepts connections and this site is initialised and has its peer (what
# docker/entrypoint.sh sets up). Which site is active is HAProxy's question
# (/active on gsb.http_port), not this one: a backup is healthy too.
set -eu
pg_isready -q -h "${GSB_SOCKET_DIR:-/var/run/postgresql}"
n=$(psql -X -A -t -q -h "${GSB_SOCKET_DIR:-/var/run/postgresql}" -U postgres -d postgres \
	-c "SELECT count(*) FROM gsb.peers" 2>/dev/null) || exit 1
[ "$n" -ge 1 ]
