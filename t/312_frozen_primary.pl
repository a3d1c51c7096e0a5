# 312_frozen_primary.pl: a frozen primary (SIGSTOP of its postmaster and
# every child: its kernel still accepts connections and bytes, nothing
# answers). The backup's site monitor must find it unreachable and fail over
# within gsb.failover_timeout + 1 s, as for a primary that is gone.
#
# The backup's heartbeat has a deadline counted from the primary's last
# answer, so the failover is not held up by the heartbeat in flight, nor by
# telling the frozen primary of the switch. After SIGCONT (also in an END
# block, whatever happens) both sites agree that the backup is active, and a
# row written on the backup during the freeze reaches the primary.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbFaults qw(freeze_cluster thaw_clusters figures);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $FAILOVER_S = 3;
my ($sjc, $ams) = two_sites(
	failover_timeout => "${FAILOVER_S}s",
	heartbeat_interval => '200ms',
	schema => "CREATE TABLE items (id bigint PRIMARY KEY, v text);\n"
	  . "SELECT gsb.replicate_table('items');");
ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');
ok(wait_until($ams, 'SELECT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'ams: its monitor reaches sjc');

# Freeze sjc, on the servers' clock as well as ours.
my $frozen_at = epoch_now($ams);
my $t0 = time();
cmp_ok(freeze_cluster($sjc), '>=', 5, 'sjc: postmaster and every child stopped (SIGSTOP)');
$GsbFaults::FIGURES{faults}++;

ok(wait_until($ams, 'SELECT gsb.active_site()', 'ams', 60), 'ams: fails over to itself');
my $seen = time() - $t0;
my ($ev) = events_of($ams, 'automatic failover');
ok(defined $ev, 'ams: gsb.site_events records the automatic failover');
# When the failover committed, on ams's clock (track_commit_timestamp is on):
# the polling above adds its own delay under load.
my $committed = q1($ams,
	"SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM gsb.site_events"
	  . " WHERE reason = 'automatic failover' ORDER BY id LIMIT 1");
# No failover at all: no time, and the bound below fails.
my $took = $committed ne "" ? $committed - $frozen_at : 9999;
note(sprintf('frozen primary: failover committed %.2f s after the freeze (seen by polling after %.2f s; '
		  . 'failover_timeout %d s); event detail: %s',
		$took, $seen, $FAILOVER_S, $ev ? $ev->{detail} : ''));
cmp_ok($took, '<=', $FAILOVER_S + 1,
	sprintf('ams: active within failover_timeout + 1 s of the freeze (%.2f s)', $took));
cmp_ok($took, '>=', $FAILOVER_S - 0.5, 'ams: and not before sjc had been silent for failover_timeout');
like($ev ? $ev->{detail} : '', qr/unreachable/, 'the event says the primary was unreachable');
like(q1($ams, 'SELECT last_monitor_error FROM gsb._monitor_status()'),
	qr/did not answer|timed out/, 'ams: the monitor says why: sjc did not answer');

# ams serves meanwhile.
$ams->safe_psql('postgres', "INSERT INTO items VALUES (1, 'written on ams during the freeze')");

########################################################################
# Thaw sjc: the higher term wins, the row arrives.
########################################################################
cmp_ok(thaw_clusters(), ">=", 5, "sjc: every process continued (SIGCONT)");
ok(wait_active([ $sjc, $ams ], 'ams', 60), 'both sites agree that ams is active');
ok(wait_until($sjc, 'SELECT count(*) FROM items WHERE id = 1', '1', 90),
	'sjc: the row written on ams during the freeze arrived');
check_logs($sjc, $ams);
figures(1);
done_testing();
