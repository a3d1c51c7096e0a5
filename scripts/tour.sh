#!/bin/bash
# scripts/tour.sh [start|stop|status]: two local gsb sites and a scripted tour.
#
#   bash scripts/tour.sh          # build, install, start both sites, tour
#   bash scripts/tour.sh stop     # stop both sites
#   bash scripts/tour.sh status   # are they running?
#
# start installs missing packages (deps.sh; as another user than root it
# prints the apt-get command and stops), builds gsb, installs it into a private
# copy of PostgreSQL in $GSB_TOUR_DIR/pg (the system's is not written), creates
# three clusters under $GSB_TOUR_DIR (default /tmp/gsb-tour): `primary` (site
# sjc, port 5441, HTTP endpoint 8441), `backup` (site ams, port 5442, endpoint
# 8442) and a small `witness` (site wit, port 5443, no data, it only votes),
# with gsb's settings, sockets and logs in that directory, listening on
# loopback only, and HAProxy on 127.0.0.1:5440 in front of the data sites. The
# tour: the sites become peers and take the witness, take writes on both
# sides, the primary fails (immediate stop), the witness agrees and clients
# reach the backup through the same address, a meeting moves over, the
# primary returns and fails back, and usage is merged on both sites.
# Running it again stops the old clusters and starts afresh.
# The clusters stay up when the script ends. As root, they run as the user
# postgres.
#
# Not for: tests (scripts/test.sh), or anything but a local demonstration: every
# local connection is trusted.
set -euo pipefail

# shellcheck source=scripts/sites.sh
source "$(dirname "${BASH_SOURCE[0]}")/sites.sh"
repo=$GSB_REPO
state=${GSB_TOUR_DIR:-/tmp/gsb-tour}
[[ $state == /* ]] || state=$PWD/$state
state=${state%/}
GSB_SOCKDIR=$state
# HAProxy reaches the sites over TCP: loopback only.
GSB_LISTEN=${GSB_TOUR_LISTEN:-127.0.0.1}
PROXY_PORT=5440
declare -A HTTP_PORT=([sjc]=8441 [ams]=8442)
export GSB_HOME=$state

gsb_site_define sjc primary 5441 "$state/primary" "$state/primary.log"
gsb_site_define ams backup 5442 "$state/backup" "$state/backup.log"
gsb_site_define wit witness 5443 "$state/witness" "$state/witness.log"

# ---------------------------------------------------------------------------
# The tour itself: what a visitor sees once both sites are up and initialised.
# Each step prints its statement, then the result (gsb_site_sql). Helpers from
# sites.sh: gsb_site_sql SITE SQL, gsb_site_value SITE SQL (for scripts),
# gsb_site_wait SITE BOOLEAN-SQL [SECONDS], gsb_site_conninfo SITE,
# gsb_site_stop SITE [MODE], gsb_site_start SITE.
# psql through HAProxy: the one address clients use.
proxy_value() {
	gsb_as "$PG_BINDIR/psql" -X -q -A -t -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d postgres \
		-c "$1" </dev/null 2>/dev/null
}
proxy_sql() {
	echo "proxy=# $1"
	gsb_as "$PG_BINDIR/psql" -X -P pager=off -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d postgres \
		-c "$1" </dev/null
}
# Waits until the proxy routes to site $1 (HAProxy needs a few checks).
proxy_wait_for() {
	local deadline=$((SECONDS + 30))
	until [[ $(proxy_value 'SELECT gsb.site_name()') == "$1" ]]; do
		((SECONDS < deadline)) || gsb_die "HAProxy did not route to $1 within 30 s"
		sleep 0.2
	done
}
start_haproxy() {
	local haproxy
	haproxy=$(PATH=$PATH:/usr/sbin:/sbin command -v haproxy) ||
		gsb_die "haproxy is not installed (scripts/deps.sh installs it)"
	sh "$repo/docker/render-haproxy.sh" 127.0.0.1 5441 "${HTTP_PORT[sjc]}" \
		127.0.0.1 5442 "${HTTP_PORT[ams]}" "127.0.0.1:$PROXY_PORT" |
		gsb_as tee "$state/haproxy.cfg" >/dev/null
	gsb_as "$haproxy" -f "$state/haproxy.cfg" -D -p "$state/haproxy.pid" ||
		gsb_die "haproxy did not start"
}

tour_steps() {
	tour_heading "Both sites know who they are"
	local site
	for site in sjc ams wit; do
		gsb_site_sql "$site" "SELECT gsb.site_name(), gsb.site_role();"
	done

	tour_heading "Each site already has an account of its own"
	gsb_site_sql sjc "SELECT gsb.create_account('ann@example.com', 'Ann (made on sjc)');"
	gsb_site_sql ams "SELECT gsb.create_account('bob@example.com', 'Bob (made on ams)');"

	tour_heading "The sites become peers: each copies the other's rows, then streams"
	gsb_site_sql sjc "SELECT gsb.add_peer('ams', '$(gsb_site_conninfo ams)');"
	gsb_site_sql ams "SELECT gsb.add_peer('sjc', '$(gsb_site_conninfo sjc)');"
	gsb_site_wait sjc "SELECT state = 'streaming' FROM gsb.status WHERE peer = 'ams'"
	gsb_site_wait ams "SELECT state = 'streaming' FROM gsb.status WHERE peer = 'sjc'"
	for site in sjc ams; do
		gsb_site_sql "$site" "SELECT id, id % 16 AS born_on_site, email, name FROM gsb.accounts ORDER BY id;"
	done

	tour_heading "A witness on a third cluster: exactly one active site, whatever is cut"
	gsb_site_sql sjc "SELECT gsb.add_witness('wit', '$(gsb_site_conninfo wit)');"
	gsb_site_sql ams "SELECT gsb.add_witness('wit', '$(gsb_site_conninfo wit)');"
	gsb_site_wait sjc "SELECT witness_reachable FROM gsb.status"
	gsb_site_wait ams "SELECT witness_reachable FROM gsb.status"
	gsb_site_wait sjc "SELECT gsb.is_active()"
	for site in sjc ams; do
		gsb_site_sql "$site" "SELECT peer, active_site, witness, witness_reachable, warning, gsb.is_active() FROM gsb.status;"
	done

	tour_heading "Writes on both sites at once arrive on the other"
	gsb_site_sql sjc "SELECT gsb.schedule_meeting((SELECT id FROM gsb.accounts WHERE email = 'bob@example.com'), 'Planned on sjc', now() + interval '1 day');"
	gsb_site_sql ams "SELECT gsb.schedule_meeting((SELECT id FROM gsb.accounts WHERE email = 'ann@example.com'), 'Planned on ams', now() + interval '2 days');"
	gsb_site_sql sjc "SELECT gsb.wait_for_peer('30 s');"
	gsb_site_sql ams "SELECT gsb.wait_for_peer('30 s');"
	for site in sjc ams; do
		gsb_site_sql "$site" "SELECT id, title, created_site, tele_number, status FROM gsb.meetings ORDER BY id;"
	done

	tour_heading "Replication status, and proof that the sites agree"
	for site in sjc ams; do
		gsb_site_sql "$site" "SELECT peer, state, applied_lsn, lag_bytes, conflicts, last_error FROM gsb.status;"
	done
	gsb_site_sql sjc "SELECT relation, local_rows, peer_rows, status FROM gsb.verify();"

	tour_heading "Clients use one address: HAProxy in front of both sites, asking each /active"
	start_haproxy
	echo "\$ curl http://127.0.0.1:${HTTP_PORT[sjc]}/detectbackup; curl -i .../active on each site"
	curl -s "http://127.0.0.1:${HTTP_PORT[sjc]}/detectbackup"
	curl -s -o /dev/null -w "sjc /active: %{http_code}\n" "http://127.0.0.1:${HTTP_PORT[sjc]}/active"
	curl -s -o /dev/null -w "ams /active: %{http_code}\n" "http://127.0.0.1:${HTTP_PORT[ams]}/active"
	proxy_wait_for sjc
	proxy_sql "SELECT gsb.site_name(), gsb.detect_backup();"

	tour_heading "A meeting starts on the active site, sjc"
	local meeting
	meeting=$(gsb_site_value sjc "SELECT id FROM gsb.meetings WHERE title = 'Planned on ams'")
	gsb_site_sql sjc "SELECT gsb.start_meeting($meeting);"
	gsb_site_sql ams "SELECT gsb.wait_for_peer('30 s') AND true AS replicated;" >/dev/null
	gsb_site_sql ams "SELECT status, hosted_site, gsb.join_meeting(id) AS join_at FROM gsb.meetings WHERE id = $meeting;"

	tour_heading "The primary fails completely (immediate stop)"
	local t0=$SECONDS
	gsb_site_stop sjc immediate
	gsb_site_wait ams "SELECT gsb.detect_backup() = 'Backup'" 60
	echo "ams took over after about $((SECONDS - t0)) s (gsb.failover_timeout = 3s), with the witness's vote"
	gsb_site_sql ams "SELECT from_site, to_site, reason, detail FROM gsb.site_events ORDER BY at;"
	gsb_site_sql wit "SELECT term, active_site, requested_by, reason FROM gsb.witness_terms ORDER BY term;"
	proxy_wait_for ams
	proxy_sql "SELECT gsb.site_name(), gsb.detect_backup();"

	tour_heading "The meeting goes on at ams: started there, it takes over sjc's part"
	gsb_site_sql ams "SELECT gsb.start_meeting($meeting);"
	gsb_site_sql ams "SELECT gsb.end_meeting($meeting);"
	gsb_site_sql ams "SELECT site, round(minutes, 4) AS minutes FROM gsb.usage WHERE meeting_id = $meeting ORDER BY started_at;"
	gsb_site_sql ams "SELECT gsb.create_account('cat@example.com', 'Cat (made on ams during the failover)');"

	tour_heading "sjc comes back: it learns that ams serves, and gets what it missed"
	gsb_site_start sjc
	gsb_site_wait sjc "SELECT gsb.active_site() = 'ams'" 60
	gsb_site_sql sjc "SELECT gsb.active_site(), gsb.is_active(), gsb.detect_backup();"
	gsb_site_wait sjc "SELECT count(*) = 1 FROM gsb.accounts WHERE email = 'cat@example.com'" 60
	gsb_site_sql sjc "SELECT email, name FROM gsb.accounts ORDER BY id;"

	tour_heading "Failback: once sjc has every change made on ams, it serves again"
	gsb_site_sql ams "SELECT gsb.failback();"
	proxy_wait_for sjc
	proxy_sql "SELECT gsb.site_name(), gsb.detect_backup();"
	gsb_site_sql sjc "SELECT from_site, to_site, reason FROM gsb.site_events ORDER BY at;"

	tour_heading "Usage merged from both sites: the same report on either"
	gsb_site_sql sjc "SELECT gsb.wait_for_peer('30 s');" >/dev/null
	gsb_site_sql ams "SELECT gsb.wait_for_peer('30 s');" >/dev/null
	for site in sjc ams; do
		gsb_site_sql "$site" "SELECT account_id, meetings, round(minutes, 4) AS minutes, round(primary_minutes, 4) AS primary_minutes, round(backup_minutes, 4) AS backup_minutes FROM gsb.usage_report(now() - interval '1 day', now() + interval '1 day');"
	done
}

tour_heading() { printf '\n--- %s ---\n' "$*"; }

# ---------------------------------------------------------------------------
# Cluster management.

tour_prepare() {
	gsb_pg_init
	gsb_choose_runner
	# The runner may not be allowed into the caller's directory (a clone in
	# /root, say); programs run as postgres complain when they cannot chdir back.
	cd /
}

tour_stop() {
	if [[ -f $state/haproxy.pid ]]; then
		kill "$(cat "$state/haproxy.pid")" 2>/dev/null || true
		rm -f "$state/haproxy.pid"
	fi
	local site
	for site in "${GSB_SITES[@]}"; do
		if gsb_site_running "$site"; then
			gsb_say "stopping $site (${GSB_SITE_DIR[$site]})"
			gsb_site_stop "$site"
		fi
	done
}

tour_status() {
	local site
	for site in "${GSB_SITES[@]}"; do
		if gsb_site_running "$site"; then
			echo "$site (${GSB_SITE_ROLE[$site]}): running, port ${GSB_SITE_PORT[$site]}, data ${GSB_SITE_DIR[$site]}"
		else
			echo "$site (${GSB_SITE_ROLE[$site]}): not running"
		fi
	done
}

tour_start() {
	bash "$repo/scripts/deps.sh"
	tour_prepare

	# The runner must reach the state directory: check its parent first.
	if [[ -n $GSB_RUN_AS ]] && ! runuser -u "$GSB_RUN_AS" -- test -x "$(dirname "$state")"; then
		gsb_die "$GSB_RUN_AS cannot reach $(dirname "$state"); choose another GSB_TOUR_DIR"
	fi
	tour_stop
	if [[ ! -e $state ]]; then
		gsb_own_dir "$state" || gsb_die "cannot make $state"
	elif [[ $(stat -c %U "$state") != "${GSB_RUN_AS:-$(id -un)}" ]]; then
		gsb_die "$state belongs to $(stat -c %U "$state"), not ${GSB_RUN_AS:-$(id -un)}; remove it or choose another GSB_TOUR_DIR"
	fi
	# Only what this script made is removed: GSB_TOUR_DIR may hold other things.
	local site
	for site in "${GSB_SITES[@]}"; do
		rm -rf "${GSB_SITE_DIR[$site]}" "${GSB_SITE_DIR[$site]}.initdb.log" "${GSB_SITE_LOG[$site]}"
	done
	rm -rf "$state/build" "$state/pg"
	cd "$state"

	gsb_say "private copy of PostgreSQL in $state/pg"
	gsb_private_pg "$state/pg" || gsb_die "could not copy the PostgreSQL installation"
	gsb_say "building gsb in $state/build"
	gsb_own_dir "$state/build"
	gsb_copy_tree "$repo" "$state/build" || gsb_die "could not copy the source tree"
	gsb_build "$state/build" || gsb_die "the build failed"
	gsb_say "installing gsb into $("$PG_CONFIG" --pkglibdir)"
	gsb_install "$state/build" >"$state/build/install.out" 2>&1 || {
		cat "$state/build/install.out" >&2
		gsb_die "make install failed"
	}

	for site in "${GSB_SITES[@]}"; do
		gsb_say "site $site (${GSB_SITE_ROLE[$site]}): initdb, start on port ${GSB_SITE_PORT[$site]}"
		gsb_site_init "$site" || gsb_die "initdb failed for $site"
		# A quick tour (the witness serves no HTTP): heartbeats twice a second, failover after 3 s, failback
		# by hand, and the HTTP endpoint for HAProxy.
		printf '%s\n' "gsb.heartbeat_interval = '500ms'" "gsb.failover_timeout = '3s'" \
			"gsb.failback_delay = -1" "gsb.http_port = ${HTTP_PORT[$site]:-0}" |
			gsb_as tee -a "${GSB_SITE_DIR[$site]}/postgresql.conf" >/dev/null
		gsb_site_start "$site" || gsb_die "could not start $site"
		gsb_site_psql "$site" -q -c "CREATE EXTENSION gsb;" ||
			gsb_die "CREATE EXTENSION gsb failed on $site (server log: ${GSB_SITE_LOG[$site]})"
		gsb_site_value "$site" "SELECT gsb.init_site('$site', '${GSB_SITE_ROLE[$site]}');" >/dev/null ||
			gsb_die "gsb.init_site failed on $site (server log: ${GSB_SITE_LOG[$site]})"
	done

	# Not `tour_steps || ...`: that would turn off set -e inside the steps.
	trap 'echo "error: a tour step failed; the sites are still running (stop them: $(stop_command))" >&2' EXIT
	tour_steps
	trap - EXIT

	local who=
	[[ $GSB_RUN_AS == postgres ]] && who="runuser -u postgres -- "
	cat <<-EOF

		Both sites and the witness are running (server logs: $state/*.log), and HAProxy in front of the sites. Connect with
		    ${who}psql -h 127.0.0.1 -p $PROXY_PORT -U postgres postgres   # the active site, through HAProxy
		    ${who}psql -h $state -p 5441 -U postgres postgres    # sjc, primary
		    ${who}psql -h $state -p 5442 -U postgres postgres    # ams, backup
		    ${who}psql -h $state -p 5443 -U postgres postgres    # wit, the witness
		Stop them with
		    $(stop_command)
	EOF
}

stop_command() {
	local cmd="bash $repo/scripts/tour.sh stop"
	[[ -n ${GSB_TOUR_DIR:-} ]] && cmd="GSB_TOUR_DIR=$state $cmd"
	echo "$cmd"
}

case ${1:-start} in
start) tour_start ;;
stop)
	tour_prepare
	tour_stop
	;;
status)
	tour_prepare
	tour_status
	;;
-h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0" ;;
*)
	echo "tour.sh: unknown command '$1' (start, stop or status)" >&2
	exit 2
	;;
esac
