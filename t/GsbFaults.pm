# t/GsbFaults.pm: helpers of the fault tests (t/3xx_*.pl), on top of
# t/GsbTest.pm.
#
# For: writers that keep writing while servers crash under them, fault points
# (gsb.fault_injection) switched on and off by reload, the apply worker's pid,
# the exactly-once proof (rows lost and rows duplicated counted between two
# sites), gsb.verify() over every realtime table, and a log check for kill
# tests that accepts exactly the signals the test sent.
# Not for: assertions about one scenario (those live in the t/3xx_*.pl files).
#
# Every wait waits for a condition and is bounded; nothing sleeps for a fixed
# time, except writers that pace themselves (pg_sleep between their own
# transactions) and random pauses that choose *when* a fault strikes.
package GsbFaults;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use IPC::Run;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use GsbTest;

our @EXPORT = qw(
  set_fault apply_pid wait_apply_pid wait_until try_psql
  writer_schema start_writer stop_writer
  exactly_once verify_all check_logs_except log_offset figures
  freeze_cluster thaw_clusters
);
# Not exported by default: t/304 has its own.
our @EXPORT_OK = qw(cluster_pids);

# Totals over one test file, printed by figures().
our %FIGURES = (faults => 0, rows_checked => 0, rows_lost => 0, rows_duplicated => 0);

# set_fault($node, 'point1,point2' or ''): gsb.fault_injection by ALTER SYSTEM
# and reload, so that walsenders and workers see it; returns once this
# session sees it.
sub set_fault
{
	my ($node, $points) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET gsb.fault_injection = " . sql_quote($points) . "; SELECT pg_reload_conf();");
	$node->poll_query_until('postgres', "SELECT current_setting('gsb.fault_injection')", $points)
	  or croak site_name($node) . ": gsb.fault_injection did not become '$points'";
	return;
}

# wait_until($node, $sql, $timeout_s): polls $sql (a boolean) until it is true
# or $timeout_s seconds have passed (errors count as false: the server may be
# restarting). Returns true if it became true.
sub wait_until
{
	my ($node, $sql, $timeout_s) = @_;
	$timeout_s //= $PostgreSQL::Test::Utils::timeout_default;
	my $end = time() + $timeout_s;
	while (time() < $end)
	{
		my ($rc, $out) = try_psql($node, $sql);
		return 1 if $rc == 0 && $out eq 't';
		usleep(100_000);
	}
	return 0;
}

# try_psql($node, $sql): (exit code, stdout, stderr) of $sql, never dying: the
# server may be down or restarting (psql then fails to connect, and writing
# its stdin can meet a broken pipe).
sub try_psql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = eval {
		local $SIG{PIPE} = 'IGNORE';
		$node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
	};
	return (defined $rc ? $rc : 99, $out, defined $rc ? $err : "$err $@");
}

# The pid of $node's apply worker for $peer, or '' (none running, or the
# server is not answering).
sub apply_pid
{
	my ($node, $peer) = @_;
	my ($rc, $out) = try_psql($node,
		"SELECT pid FROM gsb._worker_status() WHERE peer = " . sql_quote($peer)
		  . " AND pid IS NOT NULL AND pid > 0"
		  . " AND pid IN (SELECT pid FROM pg_stat_activity)");
	return $rc == 0 ? $out : '';
}

# Waits until $node has an apply worker for $peer whose pid is not $old and
# which streams; returns its pid or '' on timeout.
sub wait_apply_pid
{
	my ($node, $peer, $old, $timeout_s) = @_;
	$timeout_s //= 60;
	my $end = time() + $timeout_s;
	while (time() < $end)
	{
		my $pid = apply_pid($node, $peer);
		if ($pid ne '' && (!defined $old || $pid ne $old))
		{
			my ($rc, $out) = try_psql($node,
				"SELECT state FROM gsb._worker_status() WHERE peer = " . sql_quote($peer));
			return $pid if $rc == 0 && $out eq 'streaming';
		}
		usleep(50_000);
	}
	return '';
}

# The writer schema, run on both sites: table wload (replicated) and a local
# (unreplicated) sequence; write_batch() writes $n one-row transactions of
# wload, each with a gsb.create_account(), pacing itself by $pause_s.
sub writer_schema
{
	return q{
CREATE TABLE wload (id bigint PRIMARY KEY, site text NOT NULL, v text NOT NULL,
                    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE SEQUENCE wload_seq;
SELECT gsb.replicate_table('wload');
CREATE PROCEDURE write_batch(n int, pause_s float8 DEFAULT 0) LANGUAGE plpgsql AS $$
DECLARE
    me text := gsb.site_name();
    off int := CASE WHEN gsb.site_role() = 'primary' THEN 1 ELSE 2 END;
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO wload (id, site, v)
            VALUES (nextval('wload_seq') * 2 + off - 2, me, md5(random()::text));
        PERFORM gsb.create_account(me || '.' || nextval('wload_seq') || '@example.com', 'writer');
        COMMIT;
        IF pause_s > 0 THEN PERFORM pg_sleep(pause_s); END IF;
    END LOOP;
END
$$;
};
}

# start_writer($node, $dir, %opts): a shell loop that calls write_batch() in
# new psql sessions until the file $dir/stop-<site> exists; it survives its
# server crashing and restarting (psql errors are ignored, the loop reconnects).
sub start_writer
{
	my ($node, $dir, %opts) = @_;
	my $name = site_name($node);
	my $stop = "$dir/stop-$name";
	unlink $stop;
	my $batch = $opts{batch} // 20;
	my $pause = $opts{pause} // 0.002;
	my $connstr = $node->connstr('postgres');
	my $script = qq{
while [ ! -e '$stop' ]; do
	psql -X -q -v ON_ERROR_STOP=1 -d "$connstr" -c "CALL write_batch($batch, $pause)" >/dev/null 2>&1 || sleep 0.1
done
};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'bash', '-c', $script ], '>', \$out, '2>', \$err);
	return { h => $h, stop => $stop, node => $node };
}

# Stops a writer (lets its current batch finish) and waits for it.
sub stop_writer
{
	my ($w) = @_;
	PostgreSQL::Test::Utils::append_to_file($w->{stop}, "stop\n");
	eval { $w->{h}->finish; };
	return;
}

# exactly_once($a, $b, $rel, $key): proves that $rel holds the same rows on
# both sites, each exactly once. What a site holds is what it committed or
# applied; every row must be on the other site too. Asserts: no row lost (the id sets agree both ways), none
# duplicated (count = count(DISTINCT key) on both, no insert_exists conflict
# on $rel), digests equal. Returns (checked, lost, duplicated).
sub exactly_once
{
	my ($a, $b, $rel, $key) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$key //= 'id';
	my %ids;
	for my $n ($a, $b)
	{
		$ids{ site_name($n) } = { map { $_ => 1 } split /\n/,
			  $n->safe_psql('postgres', "SELECT ($key)::text FROM $rel") };
	}
	my ($na, $nb) = (site_name($a), site_name($b));
	my @missing_b = grep { !$ids{$nb}{$_} } keys %{ $ids{$na} };
	my @missing_a = grep { !$ids{$na}{$_} } keys %{ $ids{$nb} };
	my $lost = @missing_a + @missing_b;
	my $dup = 0;
	for my $n ($a, $b)
	{
		my ($c, $d) = split /\|/, $n->safe_psql('postgres',
			"SELECT count(*), count(DISTINCT ($key)) FROM $rel");
		$dup += $c - $d;
		$dup += $n->safe_psql('postgres',
			"SELECT count(*) FROM gsb.conflicts WHERE relation = " . sql_quote($rel)
			  . "::regclass AND kind = 'insert_exists'");
	}
	my $checked = scalar(keys %{ { %{ $ids{$na} }, %{ $ids{$nb} } } });
	is($lost, 0, "$rel: no row lost between $na and $nb")
	  or diag("missing on $nb: @missing_b[0 .. ($#missing_b < 9 ? $#missing_b : 9)]; "
		  . "missing on $na: @missing_a[0 .. ($#missing_a < 9 ? $#missing_a : 9)]");
	is($dup, 0, "$rel: no row applied twice (count = count(DISTINCT), no insert_exists conflict)");
	my $d = table_digest($a, $rel, $key);
	is(table_digest($b, $rel, $key), $d, "$rel: identical on both sites ($d)");
	$FIGURES{rows_checked} += $checked;
	$FIGURES{rows_lost} += $lost;
	$FIGURES{rows_duplicated} += $dup;
	return ($checked, $lost, $dup);
}

# gsb.verify() on $node says match for every realtime table.
sub verify_all
{
	my ($node) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $out = $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'match') || '/' || count(*) || ' '"
		  . " || coalesce(string_agg(relation::text || '=' || status, ',') FILTER (WHERE status <> 'match'), '')"
		  . " FROM gsb.verify()");
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM gsb.replicated_tables WHERE mode = 'realtime'");
	is($out, "$n/$n ", site_name($node) . ": gsb.verify() says match for all $n realtime tables");
	return;
}

# Where $node's server log ends now (for error_groups and slurp_file).
sub log_offset
{
	my ($node) = @_;
	return -s $node->logfile // 0;
}

# check_logs_except($node, \%allowed): like GsbTest::check_logs, for tests that
# kill server processes on purpose: "terminated by signal" lines are accepted
# only for a pid in %allowed (pid => signal number) with exactly that signal;
# any other signal death, PANIC or TRAP fails.
sub check_logs_except
{
	my ($node, $allowed) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $log = -f $node->logfile ? slurp_file($node->logfile) : '';
	my (@bad, $accepted);
	for my $line (split /\n/, $log)
	{
		next unless $line =~ /terminated by signal|PANIC|TRAP:|reference leak/;
		if ($line =~ /\(PID (\d+)\) was terminated by signal (\d+)/
			&& defined $allowed->{$1} && $allowed->{$1} == $2)
		{
			$accepted++;
			next;
		}
		push @bad, $line;
	}
	ok(!@bad, site_name($node) . ": server log shows no crash but the "
		  . scalar(keys %$allowed) . " kills the test made ($accepted seen)")
	  or diag(join("\n", @bad[ 0 .. ($#bad < 19 ? $#bad : 19) ]));
	# scripts/test.sh checks every server log for crashes once more; this
	# file tells it which signal deaths were the test's own.
	if (!@bad && open(my $fh, '>', $node->logfile . '.expected-signals'))
	{
		print $fh "$_ $allowed->{$_}\n" for sort keys %$allowed;
		close($fh);
	}
	return;
}

# Prints the figures of this test file.
sub figures
{
	my ($scenarios) = @_;
	diag(sprintf("figures: scenarios %d, faults injected %d, rows checked %d, rows lost %d, rows duplicated %d",
		$scenarios, @FIGURES{qw(faults rows_checked rows_lost rows_duplicated)}));
	return;
}

# cluster_pids($node): the postmaster of $node and all its children (from
# /proc), the processes to stop to freeze a whole cluster.
sub cluster_pids
{
	my ($node) = @_;
	my $pm = $node->{_pid} or croak "no postmaster pid for " . site_name($node);
	my @pids = ($pm);
	opendir(my $d, '/proc') or croak "cannot read /proc: $!";
	for my $p (grep { /^\d+$/ } readdir $d)
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close $fh;
		# pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/;
		push @pids, $p if defined $ppid && $ppid == $pm;
	}
	closedir $d;
	return @pids;
}

# Processes stopped by freeze_cluster, continued by thaw_clusters and, in
# any case, by the END block below: no test leaves a frozen cluster behind.
my @frozen;

# freeze_cluster($node): SIGSTOP to every process of $node's cluster (its
# sockets stay open, it answers nothing). Returns how many were stopped.
sub freeze_cluster
{
	my ($node) = @_;
	my @pids = cluster_pids($node);
	push @frozen, @pids;
	return kill('STOP', @pids);
}

# thaw_clusters(): SIGCONT to every process that freeze_cluster stopped.
sub thaw_clusters
{
	my $n = @frozen ? kill('CONT', @frozen) : 0;
	@frozen = ();
	return $n;
}

END { kill('CONT', @frozen) if @frozen; }

1;
