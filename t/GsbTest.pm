# t/GsbTest.pm: the shared harness of gsb's TAP tests (t/*.pl).
#
# For: making gsb sites (PostgreSQL::Test::Cluster nodes set up as the SPEC's
# "Set-up (each site)" says), pairing them with gsb.add_peer, waiting for them
# to converge, comparing what they hold, reading errors and server logs.
# Not for: assertions about one feature (those live in the t/*.pl files).
#
# Every wait here waits for a condition (poll_query_until, gsb.wait_for_peer),
# bounded by $PostgreSQL::Test::Utils::timeout_default (at most 120 s here).
# The one exception is observe_quiet(), which measures that nothing happens over
# a number of heartbeats: absence can only be observed over a period.
package GsbTest;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  new_site connect_sites add_peer wait_state wait_synced check_logs
  site_name peer_connstr sql_quote
  same_on_both table_digest status_row conflicts_of
  psql_verbose sqlstate_of error_groups
  start_bg finish_bg observe_quiet find_tool
);

# Bound every wait: the tests must fail, not hang, when gsb does not deliver.
$PostgreSQL::Test::Utils::timeout_default = 120
  if $PostgreSQL::Test::Utils::timeout_default > 120;

my $repo_dir = File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..'));

# The name of the gsb site that $node is (tests name nodes after their sites).
sub site_name { return $_[0]->name; }

# find_tool($name): the path of the executable $name in PATH (or in the sbin
# directories, where Debian puts daemons), or undef when there is none. Look an
# optional tool up with this before running it: IPC::Run::run dies, rather than
# returning false, on a command that does not exist.
sub find_tool
{
	my ($name) = @_;
	for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin', '/usr/local/sbin', '/sbin')
	{
		next if $dir eq '';
		my $p = "$dir/$name";
		return $p if -x $p && !-d $p;
	}
	return undef;
}

# '...' with quotes doubled: a string literal for SQL.
sub sql_quote
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# The conninfo a peer uses to reach $node (a Unix socket or loopback, whatever
# PostgreSQL::Test::Cluster chose), plus any extra keywords.
sub peer_connstr
{
	my ($node, $extra) = @_;
	my $c = $node->connstr('postgres');
	$c .= " $extra" if defined $extra && $extra ne '';
	return $c;
}

# new_site($name, $role, %opts): a started cluster, initialised as gsb site
# $name with role $role in database postgres.
#   heartbeat_interval (default '200ms'), failover_timeout (default 0: the
#   tests that do not test failover must not see one), failback_delay,
#   log_min_messages, apply_timeout, extra_conf (raw postgresql.conf lines),
#   no_init (do not run CREATE EXTENSION / init_site), starter (a sub that
#   starts the server instead of $node->start, as t/GsbNetns.pm's does),
#   initdb_extra (more initdb arguments, e.g. ['--encoding=LATIN1']).
sub new_site
{
	my ($name, $role, %opts) = @_;
	croak "site name '$name' is not a valid gsb site name"
	  unless $name =~ /^[a-z][a-z0-9_]{0,39}$/;

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical', extra => $opts{initdb_extra} // []);

	my $bindir = $node->config_data('--bindir');
	my ($conf, $err) = ('', '');
	IPC::Run::run([ 'sh', "$repo_dir/scripts/pgconf.sh", $bindir ],
		'>', \$conf, '2>', \$err)
	  or croak "scripts/pgconf.sh failed: $err";
	like($conf, qr/shared_preload_libraries\s*=\s*'gsb'/,
		"$name: scripts/pgconf.sh preloads gsb");

	my %gucs = (
		'gsb.database' => "'postgres'",
		'gsb.heartbeat_interval' => "'" . ($opts{heartbeat_interval} // '200ms') . "'",
		'gsb.failover_timeout' => "'" . ($opts{failover_timeout} // '0') . "'",
		# Init's 1MB and 10 connections are too tight for two sites' workers,
		# walsenders and the tests' own sessions.
		'shared_buffers' => '16MB',
		'max_connections' => '40',
		'log_min_messages' => $opts{log_min_messages} // 'warning',
	);
	$gucs{'gsb.failback_delay'} = "'$opts{failback_delay}'"
	  if defined $opts{failback_delay};
	$gucs{'gsb.apply_timeout'} = "'$opts{apply_timeout}'"
	  if defined $opts{apply_timeout};

	my $text = "\n# gsb (scripts/pgconf.sh)\n$conf\n# gsb TAP harness\n";
	$text .= "$_ = $gucs{$_}\n" for sort keys %gucs;
	$text .= "$opts{extra_conf}\n" if defined $opts{extra_conf};
	$node->append_conf('postgresql.conf', $text);
	if ($opts{starter}) { $opts{starter}->($node); }
	else { $node->start; }

	unless ($opts{no_init})
	{
		$node->safe_psql('postgres',
			"CREATE EXTENSION gsb; SELECT gsb.init_site('$name', '$role');");
		is($node->safe_psql('postgres', 'SELECT gsb.site_name() || gsb.site_role()'),
			"$name$role", "$name: site initialised as $role");
	}
	return $node;
}

# Runs $sql in one psql session with VERBOSITY verbose, so that the stderr of
# an error carries its SQLSTATE ("ERROR:  08001: ...") and HINT.
# Returns (exit code, stdout, stderr).
sub psql_verbose
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1);
	return ($rc, $out, $err);
}

# The SQLSTATE of the first ERROR in psql_verbose's stderr, or ''.
sub sqlstate_of
{
	my ($stderr) = @_;
	return $stderr =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
}

# add_peer($node, $peer_node, copy_data => 1, extra => 'password=...'):
# gsb.add_peer on $node for $peer_node. Dies when it fails (nothing after it
# could be meaningful).
sub add_peer
{
	my ($node, $peer, %opts) = @_;
	my $copy = (!defined $opts{copy_data} || $opts{copy_data}) ? 'true' : 'false';
	my $sql = sprintf("SELECT gsb.add_peer(%s, %s, %s)",
		sql_quote(site_name($peer)),
		sql_quote(peer_connstr($peer, $opts{extra})), $copy);
	my ($rc, $out, $err) = psql_verbose($node, $sql);
	my $ok = ok($rc == 0,
		site_name($node) . ": gsb.add_peer('" . site_name($peer) . "', copy_data => $copy)");
	croak "gsb.add_peer failed on " . site_name($node) . ": $err" unless $ok;
	return;
}

# wait_state($node, $peer_name, $state): waits until gsb.status on $node shows
# $state for $peer_name. Returns true if it did.
sub wait_state
{
	my ($node, $peer_name, $state) = @_;
	my $ok = $node->poll_query_until('postgres',
		"SELECT state FROM gsb.status WHERE peer = " . sql_quote($peer_name),
		$state);
	unless ($ok)
	{
		my ($rc, $out, $err) = psql_verbose($node, 'SELECT * FROM gsb.status');
		diag(site_name($node) . " gsb.status:\n$out$err");
	}
	return $ok;
}

# connect_sites($primary, $backup, copy_data => 1, extra => '...'): each site
# adds the other as its peer; returns once both show state streaming. Dies
# when they do not get there.
sub connect_sites
{
	my ($primary, $backup, %opts) = @_;
	add_peer($primary, $backup, %opts);
	add_peer($backup, $primary, %opts);
	for my $pair ([ $primary, $backup ], [ $backup, $primary ])
	{
		my ($n, $p) = @$pair;
		my $ok = ok(wait_state($n, site_name($p), 'streaming'),
			site_name($n) . ": replication from " . site_name($p) . " is streaming");
		croak "sites did not connect" unless $ok;
	}
	return;
}

# wait_synced($a, $b, ...): gsb.wait_for_peer('60 s') returns true on every
# site given: every change committed on each before the call is on the other.
sub wait_synced
{
	my (@nodes) = @_;
	my $all = 1;
	for my $n (@nodes)
	{
		my ($rc, $out, $err) = psql_verbose($n, "SELECT gsb.wait_for_peer('60 s')");
		my $ok = ok($rc == 0 && $out eq 't',
			site_name($n) . ": gsb.wait_for_peer('60 s') returns true");
		unless ($ok)
		{
			diag("wait_for_peer on " . site_name($n) . " returned '$out' (rc $rc): $err");
			my (undef, $st) = psql_verbose($n, 'SELECT * FROM gsb.status');
			diag(site_name($n) . " gsb.status: $st");
			$all = 0;
		}
	}
	return $all;
}

# The row of gsb.status on $node for peer $peer_name, as a hash (NULL and ''
# both read as '').
sub status_row
{
	my ($node, $peer_name) = @_;
	my @cols = qw(peer state received_lsn applied_lsn lag_bytes last_message_at
	  conflicts last_error);
	return $node->query_hash('postgres',
		"SELECT __COLUMNS__ FROM gsb.status WHERE peer = " . sql_quote($peer_name),
		@cols);
}

# count, count(DISTINCT key) and a hash of every row, in key order: equal on two
# sites iff they hold the same rows. $key may be an expression list.
sub table_digest
{
	my ($node, $rel, $key) = @_;
	$key //= 'id';
	return $node->safe_psql('postgres',
		"SELECT count(*) || ' rows, ' || count(DISTINCT ($key)) || ' keys, md5 '"
		  . " || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY $key), ''))"
		  . " FROM $rel t");
}

# is() that $sql gives the same (non-empty) answer on both sites; returns it.
sub same_on_both
{
	my ($a, $b, $sql, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $ra = $a->safe_psql('postgres', $sql);
	my $rb = $b->safe_psql('postgres', $sql);
	is($rb, $ra, $name);
	return $ra;
}

# gsb.conflicts rows on $node for relation $rel, as a list of hashes.
sub conflicts_of
{
	my ($node, $rel) = @_;
	my @cols = qw(key kind resolution remote_site has_ts local_row remote_row);
	my $where = defined $rel ? "WHERE relation = " . sql_quote($rel) . "::regclass" : '';
	my $out = $node->safe_psql('postgres',
		"SELECT relation::text, key, kind, resolution, coalesce(remote_site, ''),"
		  . " remote_commit_ts IS NOT NULL, coalesce(local_row::text, ''),"
		  . " coalesce(remote_row::text, '')"
		  . " FROM gsb.conflicts $where ORDER BY at",
		extra_params => [ '-F', "\x1f" ]);
	my @rows;
	for my $line (split /\n/, $out)
	{
		my @f = split /\x1f/, $line, -1;
		push @rows, {
			site => site_name($node),
			relation => $f[0],
			key => $f[1],
			kind => $f[2],
			resolution => $f[3],
			remote_site => $f[4],
			has_ts => $f[5],
			local_row => $f[6],
			remote_row => $f[7],
		};
	}
	return @rows;
}

# Groups of server-log lines from $offset on: each ERROR, FATAL or WARNING
# line with the DETAIL, HINT and CONTEXT lines of the same process that follow
# it, joined. (A worker that retries may report its error as a WARNING.)
sub error_groups
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset // 0);
	my (@groups, %open);
	for my $line (split /\n/, $log)
	{
		my ($pid) = $line =~ /^\S+ \S+ \S+ \[(\d+)\]/;
		next unless defined $pid;
		if ($line =~ /\b(?:ERROR|FATAL|WARNING):/)
		{
			push @groups, $line;
			$open{$pid} = $#groups;
		}
		elsif ($line =~ /\b(?:DETAIL|HINT|CONTEXT):/ && defined $open{$pid})
		{
			$groups[ $open{$pid} ] .= "\n$line";
		}
		else
		{
			delete $open{$pid};
		}
	}
	return @groups;
}

# start_bg($node, $sql): runs $sql in a background psql session and returns
# once it has been sent. finish_bg($session) waits for it to end and returns
# (success, stderr).
sub start_bg
{
	my ($node, $sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 1);
	$s->query_until(qr/bg-started/, "\\echo bg-started\n$sql\n");
	return $s;
}

sub finish_bg
{
	my ($s) = @_;
	my $ok = eval { $s->quit };
	my $err = $@ ? "$@ $s->{stderr}" : $s->{stderr};
	return ($ok ? 1 : 0, $err);
}

# observe_quiet(\@nodes, $beats, $interval_s): samples pg_current_wal_lsn()
# on every node every 100 ms for $beats heartbeats of $interval_s seconds and
# returns { name => bytes of WAL written meanwhile }. This is a measurement
# over a period, not a wait for a condition.
sub observe_quiet
{
	my ($nodes, $beats, $interval_s) = @_;
	my %start;
	my %last;
	$start{ site_name($_) } = $_->safe_psql('postgres', 'SELECT pg_current_wal_lsn()')
	  for @$nodes;
	my $end = time() + $beats * $interval_s;
	while (time() < $end)
	{
		usleep(100_000);
		$last{ site_name($_) } = $_->safe_psql('postgres', 'SELECT pg_current_wal_lsn()')
		  for @$nodes;
	}
	my %grew;
	for my $n (@$nodes)
	{
		my $name = site_name($n);
		$grew{$name} = {
			from => $start{$name},
			to => $last{$name},
			bytes => $n->safe_psql('postgres',
				"SELECT pg_wal_lsn_diff('$last{$name}', '$start{$name}')"),
		};
	}
	return \%grew;
}

# check_logs(@nodes): a test whose servers crashed has failed, whatever its
# other results: no server log may show a signal death, a PANIC or an
# assertion failure.
sub check_logs
{
	my (@nodes) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	for my $n (@nodes)
	{
		my $log = -f $n->logfile ? slurp_file($n->logfile) : '';
		my @bad = grep { /terminated by signal|PANIC|TRAP:|reference leak/ } split /\n/, $log;
		ok(!@bad, site_name($n) . ": server log shows no crash (signal, PANIC, TRAP) and no reference leak")
		  or diag(join("\n", @bad[ 0 .. ($#bad < 19 ? $#bad : 19) ]));
	}
	return;
}

1;
