#!/bin/sh
# Prints the postgresql.conf lines a gsb site needs, for the server in $1 (its
# bindir). PostgreSQL 15.19 and later refuse output plugins that are not listed
# in output_plugin_libraries; earlier minors do not know that setting and refuse
# to start when it is set, so ask the server which case this is.
bindir=${1:-$(pg_config --bindir)}
cat <<CONF
shared_preload_libraries = 'gsb'
wal_level = logical
track_commit_timestamp = on
max_replication_slots = 10
max_wal_senders = 10
max_worker_processes = 16
CONF
if "$bindir/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries	'; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, gsb'"
fi
