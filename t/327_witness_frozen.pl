# 327_witness_frozen.pl: with a witness, a frozen primary (SIGSTOP of its
# postmaster and every child) and a frozen backup.
#
#  - sjc frozen: ams becomes active within gsb.failover_timeout + 3 s, with the
#    witness's vote; once sjc is continued, its very first answer is "not
#    active" (its lease ran out while it was stopped: the monotonic clock runs
#    on), and it never answers active while ams is (sampled for a while).
#  - then the other way round: ams (now active) frozen, sjc takes over; and
#    with the backup frozen while the primary is active, the primary stays
#    active (it renews its lease through the witness).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbFaults qw(freeze_cluster thaw_clusters);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $FAILOVER_S = 3;
my %conf = (failover_timeout => "${FAILOVER_S}s", heartbeat_interval => '200ms');
my ($sjc, $ams) = two_sites(%conf);
my $wit = new_site('wit', 'witness', %conf);
for my $n ($sjc, $ams)
{
	$n->safe_psql('postgres', "SELECT gsb.add_witness('wit', " . sql_quote(peer_connstr($wit)) . ")");
}
ok(wait_until($sjc, 'SELECT gsb.is_active()', 't', 30), 'sjc: active with the witness');
ok(wait_until($ams, 'SELECT witness_reachable FROM gsb.status', 't', 30), 'ams: reaches the witness');

# Samples both sites for $seconds; returns (samples, both active, sjc active).
sub sample
{
	my ($seconds) = @_;
	my ($n, $both, $s_active) = (0, 0, 0);
	my $end = time() + $seconds;
	while (time() < $end)
	{
		my $x = q1($sjc, 'SELECT gsb.is_active()');
		my $y = q1($ams, 'SELECT gsb.is_active()');
		$n++;
		$both++ if $x eq 't' && $y eq 't';
		$s_active++ if $x eq 't';
		usleep(50_000);
	}
	return ($n, $both, $s_active);
}

# --- the backup frozen: nothing changes -------------------------------------
cmp_ok(freeze_cluster($ams), '>=', 5, 'ams frozen (SIGSTOP)');
my ($held, $what) = hold_for($sjc, 'SELECT gsb.is_active()', 't', 2 * $FAILOVER_S);
ok($held, 'ams frozen: sjc stays active (its lease is renewed through the witness)')
  or diag("got: $what");
cmp_ok(thaw_clusters(), '>=', 5, 'ams continued');
ok(wait_until($ams, 'SELECT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'ams: reaches sjc again');

# --- the primary frozen ------------------------------------------------------
my $t0 = time();
cmp_ok(freeze_cluster($sjc), '>=', 5, 'sjc frozen (SIGSTOP)');
ok(wait_until($ams, 'SELECT gsb.is_active()', 't', 60), 'ams: becomes active');
my $took = time() - $t0;
cmp_ok($took, '<=', $FAILOVER_S + 3, sprintf('ams: within failover_timeout + 3 s (%.2f s)', $took));
is(q1($ams, "SELECT reason FROM gsb.site_events ORDER BY id DESC LIMIT 1"), 'automatic failover',
	'ams: an automatic failover');
my $term = q1($ams, 'SELECT term FROM gsb.site_state');
is(q1($wit, "SELECT active_site FROM gsb.witness_terms WHERE term = $term"), 'ams',
	'the witness granted ams that term');

cmp_ok(thaw_clusters(), '>=', 5, 'sjc continued (SIGCONT)');
# Its first answer, before its monitor has run a tick: not active.
is(q1($sjc, 'SELECT gsb.is_active()'), 'f', 'sjc: its first answer after the freeze is "not active"');
my ($n, $both, $s_active) = sample(2 * $FAILOVER_S);
is($both, 0, "never both active after the thaw ($n samples)");
is($s_active, 0, 'sjc never answered active');
ok(wait_active([ $sjc, $ams ], 'ams', 30), 'both sites agree that ams is active');

check_logs($sjc, $ams, $wit);
done_testing();
