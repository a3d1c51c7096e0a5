# shellcheck shell=bash
# scripts/sites.sh: shell helpers shared by test.sh and tour.sh. Source it; do not run it.
#
# For: deciding who builds and runs PostgreSQL (root hands that to the `postgres`
# user, since PostgreSQL refuses to run as root), copying and building the source
# tree, and managing local gsb sites (initdb with gsb's settings, start, stop, SQL,
# waiting for a condition). Not for: installing packages (deps.sh does that).

GSB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

gsb_say() { printf '==> %s\n' "$*"; }
gsb_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Finds pg_config (PostgreSQL 15 unless PG_CONFIG says otherwise). Call it after
# deps.sh: on a fresh machine pg_config exists only once the packages are in.
gsb_pg_init() {
	if [[ -z ${PG_CONFIG:-} ]]; then
		if [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
			PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
		else
			PG_CONFIG=$(command -v pg_config) || gsb_die "pg_config not found; run scripts/deps.sh"
		fi
	fi
	PG_BINDIR=$("$PG_CONFIG" --bindir) || gsb_die "$PG_CONFIG does not work"
	PG_PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
	PG_EXTDIR=$("$PG_CONFIG" --sharedir)/extension
	export PG_CONFIG
}

# Sets GSB_RUN_AS, the user that builds, tests and runs clusters: `postgres` when
# we are root, else the current user (empty: commands run as they are).
gsb_choose_runner() {
	GSB_RUN_AS=
	if [[ $EUID -eq 0 ]]; then
		id -u postgres >/dev/null 2>&1 ||
			gsb_die "there is no user 'postgres' (it comes with the postgresql-15 package)"
		GSB_RUN_AS=postgres
	fi
}

# Makes $1 a private copy of the PostgreSQL installation (binaries, libraries,
# share and include directories) and points PG_CONFIG and the PG_* variables
# at it. PostgreSQL and pg_config find their directories relative to their own
# binaries, so the copy works where it lies. gsb is then built against and
# installed into the copy: the system's installation is never written (no root
# needed for it), and several runs (tests, tour, bench) cannot replace each
# other's gsb.so. The copy belongs to the current user and is readable by all.
gsb_private_pg() {
	local root=$1 d c seen
	local -a copied=()
	mkdir -p "$root" || return 1
	for d in "$(dirname "$PG_BINDIR")" "$PG_PKGLIBDIR" "$("$PG_CONFIG" --sharedir)" \
		"$("$PG_CONFIG" --includedir)" "$("$PG_CONFIG" --includedir-server)"; do
		seen=0
		for c in "${copied[@]}"; do [[ $d == "$c"/* || $d == "$c" ]] && seen=1; done
		((seen)) && continue
		# From /: cp --parents resolves the parents it copies against the working directory.
		(cd / && cp -a --parents "${d#/}" "$root/") || return 1
		copied+=("$d")
	done
	chmod -R a+rX "$root" || return 1
	PG_CONFIG=$root$PG_BINDIR/pg_config
	gsb_pg_init
}

# Runs a command as GSB_RUN_AS with HOME=$GSB_HOME and PostgreSQL's bindir first
# in PATH. The environment is otherwise kept (CI, PROVE_TESTS, ...).
gsb_as() {
	if [[ -n ${GSB_RUN_AS:-} ]]; then
		runuser -u "$GSB_RUN_AS" -- env HOME="${GSB_HOME:-$PWD}" TMPDIR=/tmp \
			PATH="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" "$@"
	else
		env HOME="${GSB_HOME:-$HOME}" PATH="$PG_BINDIR:$PATH" "$@"
	fi
}

# Makes a directory that belongs to GSB_RUN_AS (mode 700).
gsb_own_dir() {
	mkdir -p "$1" && chmod 700 "$1" || return 1
	if [[ -n ${GSB_RUN_AS:-} ]]; then
		chown "$GSB_RUN_AS:" "$1" || return 1
	fi
}

# Copies the source tree $1 into $2: git-tracked files plus untracked files that
# git does not ignore, so no build output comes along. Without git, everything but
# .git and build outputs.
gsb_copy_tree() {
	local src=$1 dst=$2
	if command -v git >/dev/null 2>&1 && git -c safe.directory='*' -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
		# safe.directory: root running in a clone that belongs to another user.
		(
			cd "$src" &&
				git -c safe.directory='*' ls-files -z -co --exclude-standard |
				while IFS= read -r -d '' f; do
					# Tracked but deleted in the work tree: nothing to copy.
					[[ -e $f || -L $f ]] && printf '%s\0' "$f"
				done |
				tar --null --no-recursion -T - -cf -
		) | tar -xf - -C "$dst" || return 1
	else
		tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude='*.d' --exclude=results --exclude=tmp_check --exclude=tmp_regress \
			--exclude=log --exclude='regression.*' -cf - . | tar -xf - -C "$dst" || return 1
	fi
	if [[ -n ${GSB_RUN_AS:-} ]]; then
		chown -R "$GSB_RUN_AS:" "$dst" || return 1
	fi
}

# Builds gsb in $1 as GSB_RUN_AS (compiler warnings show); more arguments go
# to make (e.g. GSB_TEST_HOOKS=1 for the test build).
gsb_build() {
	local dir=$1
	shift
	(cd "$dir" && gsb_as make -j2 PG_CONFIG="$PG_CONFIG" "$@" </dev/null)
}

# Installs the build in $1 into the PostgreSQL that PG_CONFIG names (after
# gsb_private_pg, the private copy) as the current user; more arguments go to
# make (e.g. a test build's variables).
gsb_install() {
	local dir=$1
	shift
	(cd "$dir" && make install PG_CONFIG="$PG_CONFIG" "$@" </dev/null)
}

# Stops, with mode $2 (default fast), the server whose data directory is $1, if
# one is running there.
gsb_pg_stop() {
	local dir=$1 mode=${2:-fast}
	[[ -f $dir/postmaster.pid ]] || return 0
	if ! gsb_as "$PG_BINDIR/pg_ctl" -D "$dir" -m "$mode" -w stop >/dev/null 2>&1; then
		# A stale postmaster.pid makes stop fail too; that is no error.
		if gsb_as "$PG_BINDIR/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
			echo "could not stop the server in $dir" >&2
			return 1
		fi
	fi
}

# ---------------------------------------------------------------------------
# Sites: named local clusters. gsb_site_define NAME ROLE PORT DATADIR LOGFILE
# registers one; the other functions take the name. All sockets go to
# GSB_SOCKDIR; listen_addresses is GSB_LISTEN ('' = unix socket only).
declare -A GSB_SITE_ROLE GSB_SITE_PORT GSB_SITE_DIR GSB_SITE_LOG
GSB_SITES=()

gsb_site_define() {
	GSB_SITES+=("$1")
	GSB_SITE_ROLE[$1]=$2
	GSB_SITE_PORT[$1]=$3
	GSB_SITE_DIR[$1]=$4
	GSB_SITE_LOG[$1]=$5
}

# The conninfo another site (or a person) uses to reach site $1.
gsb_site_conninfo() {
	printf 'host=%s port=%s dbname=postgres user=postgres' "$GSB_SOCKDIR" "${GSB_SITE_PORT[$1]}"
}

# initdb, then gsb's settings (scripts/pgconf.sh) and the site's own.
gsb_site_init() {
	local site=$1 dir=${GSB_SITE_DIR[$1]}
	gsb_as "$PG_BINDIR/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		>"$dir.initdb.log" 2>&1 || {
		cat "$dir.initdb.log" >&2
		return 1
	}
	{
		echo
		echo "# gsb site $site (${GSB_SITE_ROLE[$site]}), written by scripts/sites.sh"
		sh "$GSB_REPO/scripts/pgconf.sh" "$PG_BINDIR"
		echo "port = ${GSB_SITE_PORT[$site]}"
		echo "listen_addresses = '${GSB_LISTEN:-}'"
		echo "unix_socket_directories = '$GSB_SOCKDIR'"
		echo "cluster_name = 'gsb-$site'"
	} | gsb_as tee -a "$dir/postgresql.conf" >/dev/null
}

gsb_site_start() {
	local site=$1
	if ! gsb_as "$PG_BINDIR/pg_ctl" -D "${GSB_SITE_DIR[$site]}" -l "${GSB_SITE_LOG[$site]}" -w \
		start >/dev/null; then
		echo "site $site did not start; the end of ${GSB_SITE_LOG[$site]}:" >&2
		tail -n 20 "${GSB_SITE_LOG[$site]}" >&2
		return 1
	fi
}

gsb_site_stop() {
	gsb_pg_stop "${GSB_SITE_DIR[$1]}" "${2:-fast}"
}

gsb_site_running() {
	[[ -f ${GSB_SITE_DIR[$1]}/postmaster.pid ]] &&
		gsb_as "$PG_BINDIR/pg_ctl" -D "${GSB_SITE_DIR[$1]}" status >/dev/null 2>&1
}

# psql on site $1 with the remaining arguments; stops at the first error.
gsb_site_psql() {
	local site=$1
	shift
	gsb_as "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -P pager=off -h "$GSB_SOCKDIR" \
		-p "${GSB_SITE_PORT[$site]}" -U postgres -d postgres "$@" </dev/null
}

# Prints the statement $2 as typed at site $1's prompt, then its result; more
# arguments go to psql (e.g. -A -t for long lines of text).
gsb_site_sql() {
	local site=$1 sql=$2
	shift 2
	printf '%s=# %s\n' "$site" "$sql"
	gsb_site_psql "$site" -q "$@" -c "$sql"
}

# The value of the statement $2 on site $1, unaligned, for scripts.
gsb_site_value() {
	gsb_site_psql "$1" -q -A -t -c "$2"
}

# Waits until the boolean query $2 is true on site $1, up to $3 seconds
# (default 60): polls, as PostgreSQL::Test::Cluster::poll_query_until does.
gsb_site_wait() {
	local site=$1 query=$2 deadline=$((SECONDS + ${3:-60})) value
	while :; do
		value=$(gsb_site_value "$site" "$query" 2>/dev/null) || value=
		[[ $value == t ]] && return 0
		if ((SECONDS >= deadline)); then
			echo "timed out on site $site waiting for: $query (last answer: '$value')" >&2
			return 1
		fi
		sleep 0.1
	done
}
