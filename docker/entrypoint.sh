#!/bin/bash
# docker/entrypoint.sh: runs one gsb site in a container (the image's
# ENTRYPOINT, as the user postgres).
#
# Environment:
#   GSB_SITE, GSB_ROLE         this site's name and role (primary | backup)
#   GSB_PEER, GSB_PEER_HOST    the other site's name and host
#   GSB_PEER_PORT              its PostgreSQL port (5432)
#   POSTGRES_PASSWORD          password of the role postgres on both sites;
#                              the sites reach each other with it (via a
#                              .pgpass file, so no conninfo holds it)
#   GSB_HTTP_PORT              gsb.http_port, for HAProxy's checks (8008)
#   GSB_FAILOVER_TIMEOUT, GSB_FAILBACK_DELAY, GSB_HEARTBEAT_INTERVAL
#                              the gsb.* settings of the same name, if set
#   PGDATA, PGPORT, GSB_SOCKET_DIR, GSB_PGCONF
#                              data directory, port (5432), socket directory
#                              and scripts/pgconf.sh's place in the image
#
# First start: initdb (scram-sha-256 over TCP from the container's own
# networks, trust on the local socket). Every start: writes $PGDATA/gsb.conf
# (scripts/pgconf.sh's lines plus the settings above), starts PostgreSQL, and in
# the background creates the extension, runs gsb.init_site and adds the peer,
# retrying until the peer is up. Each step is skipped when already done, so a
# restart is harmless. SIGTERM or SIGINT stop PostgreSQL (fast shutdown).
#
# Not for: changing a site's name or role after the first start (gsb keeps
# them; start from an empty volume instead).
set -euo pipefail

say() { printf 'gsb-entrypoint: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

: "${GSB_SITE:?set GSB_SITE to this site name}"
: "${GSB_ROLE:?set GSB_ROLE to primary or backup}"
: "${GSB_PEER:?set GSB_PEER to the name of the other site}"
: "${GSB_PEER_HOST:?set GSB_PEER_HOST to the host of the other site}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (both sites use it to reach each other)}"
GSB_PEER_PORT=${GSB_PEER_PORT:-5432}
GSB_HTTP_PORT=${GSB_HTTP_PORT:-8008}
PGDATA=${PGDATA:-/var/lib/postgresql/data}
PGPORT=${PGPORT:-5432}
GSB_SOCKET_DIR=${GSB_SOCKET_DIR:-/var/run/postgresql}
GSB_PGCONF=${GSB_PGCONF:-/usr/local/lib/gsb/pgconf.sh}
export PGDATA PGPORT

[[ $GSB_SITE =~ ^[a-z][a-z0-9_]{0,39}$ ]] || die "GSB_SITE '$GSB_SITE' is not a valid site name"
[[ $GSB_PEER =~ ^[a-z][a-z0-9_]{0,39}$ ]] || die "GSB_PEER '$GSB_PEER' is not a valid site name"
[[ $GSB_ROLE == primary || $GSB_ROLE == backup ]] || die "GSB_ROLE must be primary or backup"
[[ $GSB_PEER_HOST =~ ^[A-Za-z0-9._:-]+$ ]] || die "GSB_PEER_HOST '$GSB_PEER_HOST' is not a host name"
[[ $GSB_PEER_PORT =~ ^[0-9]+$ && $GSB_HTTP_PORT =~ ^[0-9]+$ && $PGPORT =~ ^[0-9]+$ ]] ||
	die "ports must be numbers"

bindir=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)

# A literal for postgresql.conf or SQL: '...' with quotes doubled.
quote() {
	local q="'"
	printf "'%s'" "${1//$q/$q$q}"
}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	say "initialising $PGDATA for site $GSB_SITE ($GSB_ROLE)"
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	"$bindir/initdb" -D "$PGDATA" --username=postgres --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
	rm -f "$pwfile"
	# samenet: the compose network (whatever subnet Docker picked) and no
	# other; the sites and HAProxy are all on it.
	cat >>"$PGDATA/pg_hba.conf" <<-HBA

		# gsb (docker/entrypoint.sh): the other site and HAProxy's clients.
		host all all samenet scram-sha-256
	HBA
	printf "\n# gsb (docker/entrypoint.sh), rewritten at every start\ninclude_if_exists = 'gsb.conf'\n" \
		>>"$PGDATA/postgresql.conf"
fi

{
	echo "# Written by docker/entrypoint.sh at every start; edits here are lost."
	sh "$GSB_PGCONF" "$bindir"
	echo "listen_addresses = '*'"
	echo "port = $PGPORT"
	echo "unix_socket_directories = $(quote "$GSB_SOCKET_DIR")"
	echo "gsb.database = 'postgres'"
	echo "gsb.http_port = $GSB_HTTP_PORT"
	echo "gsb.http_listen_addresses = '*'"
	[[ -n ${GSB_HEARTBEAT_INTERVAL:-} ]] && echo "gsb.heartbeat_interval = $(quote "$GSB_HEARTBEAT_INTERVAL")"
	[[ -n ${GSB_FAILOVER_TIMEOUT:-} ]] && echo "gsb.failover_timeout = $(quote "$GSB_FAILOVER_TIMEOUT")"
	[[ -n ${GSB_FAILBACK_DELAY:-} ]] && echo "gsb.failback_delay = $(quote "$GSB_FAILBACK_DELAY")"
	true
} >"$PGDATA/gsb.conf"

# The sites log in to each other as postgres with the shared password; libpq in
# gsb's workers finds it here (the postmaster passes PGPASSFILE on).
PGPASSFILE=$PGDATA/../.pgpass
printf '%s:%s:*:postgres:%s\n' "$GSB_PEER_HOST" "$GSB_PEER_PORT" \
	"$(printf '%s' "$POSTGRES_PASSWORD" | sed 's/[\\:]/\\&/g')" >"$PGPASSFILE"
chmod 0600 "$PGPASSFILE"
export PGPASSFILE

psql_local() { psql -X -q -v ON_ERROR_STOP=1 -h "$GSB_SOCKET_DIR" -U postgres -d postgres "$@"; }

# Creates the extension, initialises the site and adds the peer, each once;
# retries adding the peer until the peer is up and initialised itself.
setup_site() {
	until pg_isready -q -h "$GSB_SOCKET_DIR"; do sleep 1; done
	psql_local -c "CREATE EXTENSION IF NOT EXISTS gsb" \
		-c "SELECT gsb.init_site($(quote "$GSB_SITE"), $(quote "$GSB_ROLE"))" ||
		{
			say "could not initialise site $GSB_SITE"
			return 1
		}
	local conninfo="host=$GSB_PEER_HOST port=$GSB_PEER_PORT dbname=postgres user=postgres"
	local tries=0 err
	err=$(mktemp)
	until [[ $(psql_local -Atc "SELECT count(*) FROM gsb.peers WHERE name = $(quote "$GSB_PEER")") == 1 ]]; do
		if psql_local -c "SELECT gsb.add_peer($(quote "$GSB_PEER"), $(quote "$conninfo"))" 2>"$err"; then
			say "site $GSB_SITE ($GSB_ROLE) now replicates with $GSB_PEER at $GSB_PEER_HOST:$GSB_PEER_PORT"
			break
		fi
		tries=$((tries + 1))
		# Say why now and then, not every second.
		((tries % 15 == 1)) && say "waiting for peer $GSB_PEER: $(tr '\n' ' ' <"$err")"
		sleep 2
	done
	say "site $GSB_SITE is set up"
}

say "starting PostgreSQL for site $GSB_SITE"
"$bindir/postgres" -D "$PGDATA" &
pg_pid=$!
# Fast shutdown on docker stop (SIGTERM) or Ctrl-C (SIGINT).
trap 'kill -INT "$pg_pid" 2>/dev/null || true' TERM INT

# The set-up runs as a child of this shell, never of the postmaster (which
# treats an unknown child's non-zero exit as a crash).
setup_site &
setup_pid=$!

status=0
while kill -0 "$pg_pid" 2>/dev/null; do
	wait "$pg_pid" && status=0 || status=$?
done
kill "$setup_pid" 2>/dev/null || true
say "PostgreSQL exited (status $status)"
exit "$status"
