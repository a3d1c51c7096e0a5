# 401_conflict_tps.pl: a measurement, not a test of correctness: two-way
# pgbench (its default TPC-B-like script, the same accounts on both sites)
# with gsb.record_conflicts on and off. Runs only when GSB_BENCH_CONFLICTS=1
# (bench/conflicts.sh sets it); otherwise it skips, so the TAP suite stays
# quick.
#
#   GSB_BENCH_SECONDS  length of each pgbench run (default 20)
#   GSB_BENCH_ROUNDS   rounds of (on, off) runs, alternating (default 3)
#   GSB_BENCH_CLIENTS  pgbench clients per site (default 2)
#   GSB_BENCH_MODES    the values of gsb.record_conflicts to alternate
#                      (default 'on off'; 'default': leave the setting alone,
#                      for a build that lacks it)
#
# Each run: pgbench -n -c CLIENTS -j CLIENTS -T SECONDS on both sites at once,
# then both sites wait for each other; it prints both sites' tps, the
# conflicts recorded, and the lost increments: sum(abalance) against
# sum(delta) of pgbench_history (equal on one site alone; under
# last-writer-wins concurrent increments of the same row are lost). It also
# checks (as tests) that the sites end identical after every run.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use IPC::Run;
use List::Util qw(sum);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'a measurement: set GSB_BENCH_CONFLICTS=1 to run it (bench/conflicts.sh)'
  unless ($ENV{GSB_BENCH_CONFLICTS} // '') eq '1';
my $pgbench = find_tool('pgbench');
plan skip_all => 'pgbench is not installed' unless $pgbench;

my $seconds = $ENV{GSB_BENCH_SECONDS} // 20;
my $rounds = $ENV{GSB_BENCH_ROUNDS} // 3;
my $clients = $ENV{GSB_BENCH_CLIENTS} // 2;

# The same pgbench data on both sites (pgbench -i is deterministic); history
# gets a key, which replication needs, that no two sites can both make.
my ($sjc, $ams) = two_sites(failover_timeout => '0', no_connect => 1);
for my $n ($sjc, $ams)
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ $pgbench, '-i', '-q', '-s', '1', '-h', $n->host, '-p', $n->port,
			'postgres' ], '>', \$out, '2>', \$err)
	  or die "pgbench -i failed: $err";
	q1($n, q{
ALTER TABLE pgbench_history ADD COLUMN hid uuid PRIMARY KEY DEFAULT gen_random_uuid();
SELECT gsb.replicate_table(t)
  FROM unnest(ARRAY['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers',
                    'pgbench_history']) t});
}
connect_sites($sjc, $ams, copy_data => 0);
wait_synced($sjc, $ams);

sub start_pgbench
{
	my ($n) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ $pgbench, '-n', '-c', $clients, '-j', $clients, '-T', $seconds,
			'-h', $n->host, '-p', $n->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err };
}

sub tps_of
{
	my ($run) = @_;
	$run->{h}->finish;
	my ($tps) = ${ $run->{out} } =~ /tps = ([0-9.]+) \(without initial connection time\)/;
	die "pgbench printed no tps: ${ $run->{out} } ${ $run->{err} }" unless defined $tps;
	return $tps;
}

sub median
{
	my @s = sort { $a <=> $b } @_;
	return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

# What the balances lost against the history (0 on one site alone):
# accounts, tellers, branches.
my $history = '(SELECT coalesce(sum(delta), 0) FROM pgbench_history)';
my $lost_sql = 'SELECT ' . join(" || ' ' || ",
	map { "((SELECT sum($_->[1]) FROM $_->[0]) - $history)" }
	  ([ 'pgbench_accounts', 'abalance' ], [ 'pgbench_tellers', 'tbalance' ],
		[ 'pgbench_branches', 'bbalance' ]));

my @modes = split ' ', ($ENV{GSB_BENCH_MODES} // 'on off');
my %tps = map { $_ => [] } @modes;
my @lost_before = split ' ', q1($sjc, $lost_sql);
for my $round (1 .. $rounds)
{
	for my $mode (@modes)
	{
		# GSB_BENCH_MODES=default measures a build without the setting.
		reload_with($_, 'gsb.record_conflicts' => $mode) for $mode eq 'default' ? () : ($sjc, $ams);
		q1($_, 'TRUNCATE gsb.conflicts') for ($sjc, $ams);
		my @runs = map { start_pgbench($_) } ($sjc, $ams);
		my ($t_sjc, $t_ams) = map { tps_of($_) } @runs;
		wait_synced($sjc, $ams);
		my @lost = split ' ', same_on_both($sjc, $ams, $lost_sql,
			"round $round, recording $mode: the same balances and history on both sites");
		is(q1($sjc, "SELECT count(*) FROM gsb.verify() WHERE status <> 'match'"),
			'0', "round $round, recording $mode: gsb.verify() matches");
		my $recorded = q1($sjc, 'SELECT count(*) FROM gsb.conflicts') + q1($ams,
			'SELECT count(*) FROM gsb.conflicts');
		my $total = $t_sjc + $t_ams;
		push @{ $tps{$mode} }, $total;
		diag(sprintf('bench: round %d recording %-3s tps sjc %.1f ams %.1f total %.1f; '
				  . 'conflicts recorded %d; increments lost in this run (balance sum minus '
				  . 'history delta sum): accounts %d, tellers %d, branches %d',
				$round, $mode, $t_sjc, $t_ams, $total, $recorded,
				map { $lost[$_] - $lost_before[$_] } 0 .. 2));
		@lost_before = @lost;
	}
}
diag(sprintf('bench: median total tps over %d runs of %d s, %d clients per site: %s',
		$rounds, $seconds, $clients,
		join(', ', map { sprintf('recording %s %.1f', $_, median(@{ $tps{$_} })) } @modes)));
done_testing();
