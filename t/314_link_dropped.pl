# 314_link_dropped.pl: the link between the sites drops every packet after
# the connections are up (each site in its own network namespace, as in
# t/309). For the backup this looks like a frozen primary: nothing answers,
# and without TCP keepalives or a deadline the heartbeat in flight would wait
# until TCP gave up (minutes). The backup must fail over within
# gsb.failover_timeout + 1 s; once the link is back, both sites agree that the
# backup is active and a row written on the backup meanwhile reaches the
# primary. Skips itself, saying why, where namespaces cannot be made.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbFaults qw(figures);
use GsbNetns;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

if (my $why = netns_skip_reason())
{
	plan skip_all => "network namespaces are not available: $why";
}

my $FAILOVER_S = 3;
my %conf = (
	heartbeat_interval => '200ms',
	failover_timeout => "${FAILOVER_S}s",
	failback_delay => '-1',
	extra_conf => 'log_statement = none');
my $tag = netns_setup();
my $sjc = netns_site('sjc', 'primary', 'a', %conf);
my $ams = netns_site('ams', 'backup', 'b', %conf);
my $schema = "CREATE TABLE items (id bigint PRIMARY KEY, v text);\n"
  . "SELECT gsb.replicate_table('items');";
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
netns_connect($sjc, $ams);
ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');
ok(wait_until($ams, 'SELECT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'ams: its monitor reaches sjc over the link');
is($sjc->safe_psql('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'gsb_monitor_ams'"
		  . " AND client_addr = '10.77.0.2'"),
	't', 'ams\'s monitor holds a connection to sjc over the link');

my $cut_at = epoch_now($ams);
my $t0 = time();
my ($rc, $out) = ns_request('block', $tag, 'both');
is($rc, 0, 'the helper drops every packet between the sites') or diag($out);
$GsbFaults::FIGURES{faults}++;

ok(wait_until($ams, 'SELECT gsb.active_site()', 'ams', 60), 'ams: fails over to itself');
my $seen = time() - $t0;
my ($ev) = events_of($ams, 'automatic failover');
# When the failover committed, on ams's clock (track_commit_timestamp is on).
my $committed = q1($ams,
	"SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM gsb.site_events"
	  . " WHERE reason = 'automatic failover' ORDER BY id LIMIT 1");
# No failover at all: no time, and the bound below fails.
my $took = $committed ne "" ? $committed - $cut_at : 9999;
note(sprintf('dropped packets: failover committed %.2f s after the link went silent (seen by polling '
		  . 'after %.2f s; failover_timeout %d s); event detail: %s; monitor: %s',
		$took, $seen, $FAILOVER_S, $ev ? $ev->{detail} : '',
		q1($ams, 'SELECT last_monitor_error FROM gsb._monitor_status()')));
cmp_ok($took, '<=', $FAILOVER_S + 1,
	sprintf('ams: active within failover_timeout + 1 s (%.2f s)', $took));
$ams->safe_psql('postgres', "INSERT INTO items VALUES (1, 'written on ams while the link was down')");

($rc, $out) = ns_request('clear', $tag);
is($rc, 0, 'the helper restores the link') or diag($out);
ok(wait_active([ $sjc, $ams ], 'ams', 60), 'both sites agree that ams is active');
ok(wait_until($sjc, 'SELECT count(*) FROM items WHERE id = 1', '1', 120),
	'sjc: the row written on ams meanwhile arrived');
check_logs($sjc, $ams);
figures(1);
done_testing();
