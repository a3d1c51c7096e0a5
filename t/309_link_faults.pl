# 309_link_faults.pl: the link between the sites cut in every way, while both
# sites write; after each fault the sites converge, every row exactly once.
#
# Each site runs in its own network namespace (sjc in a, 10.77.0.1; ams in b,
# 10.77.0.2), joined by one veth pair, and the sites reach each other only
# over it (scripts/netns-helper.sh, run as root by scripts/test.sh, makes the
# namespaces and cuts the link on request). The faults, each with both sites
# writing throughout (one-row transactions of wload and gsb.accounts):
#   - link down: the interface goes down for longer than the timeouts
#   - packets dropped both ways (the link looks up, nothing arrives)
#   - packets dropped from sjc to ams only, then from ams to sjc only
#   - TCP resets: every segment between the sites answered with a reset
# During each fault, both apply workers must notice (leave 'streaming', with
# the reason in last_error); after it, both stream again by themselves, the
# writers are stopped, the sites sync, and the rows written so far are on
# both sites exactly once (no row lost, none applied twice), with
# gsb.verify() saying match. Skips itself, saying why, where namespaces cannot
# be made (not root, no helper).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use GsbNetns;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

if (my $why = netns_skip_reason())
{
	plan skip_all => "network namespaces are not available: $why";
}

# Short timeouts, so that a silent link is noticed within seconds: the apply
# worker's (gsb.apply_timeout), the walsender's, and the connection attempt's.
my $conf = "log_statement = none\nwal_sender_timeout = '3s'";
my $tag = netns_setup();
my $sjc = netns_site('sjc', 'primary', 'a', apply_timeout => '3s', extra_conf => $conf);
my $ams = netns_site('ams', 'backup', 'b', apply_timeout => '3s', extra_conf => $conf);
$_->safe_psql('postgres', writer_schema()) for ($sjc, $ams);
netns_connect($sjc, $ams, extra => 'connect_timeout=2');

# The peers' conninfo really goes over the link.
like($sjc->safe_psql('postgres', "SELECT conninfo FROM gsb.peers WHERE name = 'ams'"),
	qr/host=10\.77\.0\.2 /, 'sjc reaches ams at its address in namespace b');
is($ams->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_replication WHERE client_addr = '10.77.0.1'"),
	'1', 'ams serves sjc\'s apply worker over the link');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $total_rows = 0;

# fault($name, \@cut, \@restore, %opts): both sites write; once both apply
# workers stream and have applied some of the other's rows, @cut is sent to the
# helper; it holds until each worker has left 'streaming' (and at least
# hold_s seconds); then @restore. The sites must stream again, sync, and hold
# every row exactly once.
sub fault
{
	my ($name, $cut, $restore, %opts) = @_;
	my $hold_s = $opts{hold_s} // 0;
	note("fault: $name");
	my @writers = map { start_writer($_, $dir, batch => 10, pause => 0.005) } ($sjc, $ams);
	my %before = map {
		site_name($_) => $_->safe_psql('postgres',
			"SELECT count(*) FROM wload WHERE site = '" . site_name($_) . "'")
	} ($sjc, $ams);
	for my $n ($sjc, $ams)
	{
		my $other = site_name($n) eq 'sjc' ? 'ams' : 'sjc';
		ok(wait_until($n, "SELECT count(*) > $before{$other} + 20 FROM wload WHERE site = '$other'", 60),
			"$name: " . site_name($n) . " applies $other\'s new rows before the fault");
	}

	my $t0 = time();
	my ($rc, $out) = ns_request(@$cut);
	is($rc, 0, "$name: the helper applied the fault (@$cut)") or diag($out);
	$GsbFaults::FIGURES{faults}++;
	my %noticed;
	for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
	{
		my ($n, $peer) = @$pair;
		my $left = wait_until($n,
			"SELECT state <> 'streaming' FROM gsb.status WHERE peer = '$peer'", 60);
		$noticed{ site_name($n) } = time() - $t0;
		ok($left, sprintf("%s: %s's worker for %s left 'streaming' (after %.1f s)",
				$name, site_name($n), $peer, $noticed{ site_name($n) }));
	}
	usleep(int(1e6 * ($hold_s - (time() - $t0)))) if time() - $t0 < $hold_s;
	my %errors = map {
		site_name($_) => $_->safe_psql('postgres', 'SELECT coalesce(last_error, \'\') FROM gsb.status')
	} ($sjc, $ams);
	($rc, $out) = ns_request(@$restore);
	is($rc, 0, "$name: the helper restored the link (@$restore)") or diag($out);
	my $t1 = time();

	for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
	{
		my ($n, $peer) = @$pair;
		ok(wait_state($n, $peer, 'streaming'),
			sprintf("%s: %s streams from %s again (%.1f s after the link came back)",
				$name, site_name($n), $peer, time() - $t1));
		note("$name: " . site_name($n) . " last_error during the fault: $errors{site_name($n)}");
	}
	# The writers went on writing through the fault.
	stop_writer($_) for @writers;
	wait_synced($sjc, $ams);
	my ($checked) = exactly_once($sjc, $ams, 'wload');
	exactly_once($sjc, $ams, 'gsb.accounts');
	verify_all($_) for ($sjc, $ams);
	$total_rows = $checked;
	return;
}

fault('link down', [ 'link', $tag, 'down' ], [ 'link', $tag, 'up' ], hold_s => 5);
fault('packets dropped both ways', [ 'block', $tag, 'both' ], [ 'clear', $tag ], hold_s => 5);
fault('packets from sjc to ams dropped', [ 'block', $tag, 'a2b' ], [ 'clear', $tag ], hold_s => 5);
fault('packets from ams to sjc dropped', [ 'block', $tag, 'b2a' ], [ 'clear', $tag ], hold_s => 5);
fault('TCP resets', [ 'reset', $tag ], [ 'clear', $tag ]);

cmp_ok($total_rows, '>', 500, "more than 500 rows written across the faults ($total_rows)");

# The link is healthy again: a new row still goes both ways.
$sjc->safe_psql('postgres', "INSERT INTO wload VALUES (-1, 'sjc', 'after the faults')");
$ams->safe_psql('postgres', "INSERT INTO wload VALUES (-2, 'ams', 'after the faults')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM wload WHERE id = -1'), 'after the faults',
	'a new row still goes from sjc to ams');
is($sjc->safe_psql('postgres', 'SELECT v FROM wload WHERE id = -2'), 'after the faults',
	'a new row still goes from ams to sjc');

check_logs($_) for ($sjc, $ams);
figures(5);
done_testing();
