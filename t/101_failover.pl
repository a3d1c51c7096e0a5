# 101_failover.pl: automatic failover, agreement after the primary returns,
# failback by hand and automatic failback.
#
# The primary (sjc) is stopped with 'immediate'. The backup (ams) becomes the
# active site within gsb.failover_timeout + 2 heartbeats, never before the
# timeout, and the test prints the measured time. When sjc comes back it
# yields to ams's higher term within two heartbeats; gsb.failback() then
# returns service to sjc only once sjc holds every change made on ams. With
# gsb.failback_delay = '1s' a second outage ends in a failback by itself,
# not before sjc has been reachable for that long. Every switch is in
# gsb.site_events on both sites, and the sites end with the same rows.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $hb = $GsbSites::HEARTBEAT_S;
my $timeout = $GsbSites::TIMEOUT_S;

my ($sjc, $ams) = two_sites(schema => q{
CREATE TABLE notes (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('notes');
});

my $view = q{SELECT gsb.active_site() || ' ' || gsb.detect_backup() || ' ' || gsb.is_active()};
is(q1($sjc, $view), 'sjc Primary true', 'sjc: at first sjc serves (detect_backup = Primary)');
is(q1($ams, $view), 'sjc Primary false', 'ams: at first sjc serves, and ams is not active');
is(q1($ams, 'SELECT count(*) FROM gsb.site_events'), '0', 'ams: no site events yet');

$sjc->safe_psql('postgres', "INSERT INTO notes VALUES (1, 'sjc', 'before the outage')");
wait_synced($sjc, $ams);

########################################################################
# 1. The primary dies: automatic failover, timed.
########################################################################
my $t_before = time();
$sjc->stop('immediate');
my $t_after = time();
ok( wait_until($ams,
		"SELECT gsb.detect_backup() = 'Backup' AND gsb.active_site() = 'ams' AND gsb.is_active()",
		't', 30),
	'ams: becomes the active site (detect_backup = Backup) after sjc stops');
my $t_seen = time();

my @fo = events_of($ams, 'automatic failover');
is(scalar @fo, 1, "ams: one 'automatic failover' event");
is("$fo[0]{from_site} -> $fo[0]{to_site}", 'sjc -> ams', 'ams: the failover event goes from sjc to ams');
like($fo[0]{detail}, qr/unreachable/, 'ams: the failover event says why (sjc unreachable)');

# The event's time is when the monitor switched, by the server's clock (the
# same clock as this script's: one machine). The stop began at $t_before and
# the postmaster was gone by $t_after.
my $after_stop = $fo[0]{at} - $t_after;
my $after_begin = $fo[0]{at} - $t_before;
diag(sprintf(
		"measured failover time: the switch came %.3f s after the immediate stop of sjc"
		  . " (%.3f s after the stop began; a client polling ams saw it %.3f s after the stop);"
		  . " failover_timeout %.1f s, heartbeat %.1f s",
		$after_stop, $after_begin, $t_seen - $t_after, $timeout, $hb));
cmp_ok($after_begin, '>=', $timeout,
	'no failover before gsb.failover_timeout has passed since the stop');
cmp_ok($after_stop, '<=', $timeout + 2 * $hb,
	'failover within gsb.failover_timeout + 2 heartbeats of the stop');

# The backup serves: a change made there now must reach sjc later.
$ams->safe_psql('postgres', "INSERT INTO notes VALUES (2, 'ams', 'during the outage')");

########################################################################
# 2. The primary returns and yields to the higher term.
########################################################################
my $off = log_offset($sjc);
$sjc->start;
ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30),
	'sjc: after its restart it names ams as the active site');
my $ready = ready_at_epoch($sjc, $off);
my $adopted = q1($sjc, 'SELECT extract(epoch FROM changed_at) FROM gsb.site_state');
ok(defined $ready, 'sjc: its log says when it was ready again');
my $agree = $adopted - ($ready // 0);
diag(sprintf("sjc adopted ams's view %.3f s after it accepted connections again", $agree));
# The monitors start once the server is ready; allow them one more heartbeat
# to open their connections.
cmp_ok($agree, '<=', 3 * $hb, 'the sites agree within two heartbeats of reconnecting (+ start-up)');
is(q1($sjc, $view), 'ams Backup false', 'sjc: detect_backup = Backup, and sjc is not active');
same_on_both($sjc, $ams, 'SELECT term || mode || automatic FROM gsb.site_state',
	'both sites hold the same term and mode (failed_over, automatic)');
ok(wait_event($sjc, 'automatic failover', 1, 30),
	"sjc: the 'automatic failover' event is on sjc too once it is back");
same_on_both($sjc, $ams,
	"SELECT string_agg(id || ' ' || from_site || ' ' || to_site || ' ' || term, ',' ORDER BY id)"
	  . " FROM gsb.site_events",
	'the site events are the same on both sites');
wait_synced($sjc, $ams);
is(q1($sjc, 'SELECT v FROM notes WHERE id = 2'), 'during the outage',
	'sjc: the row written on ams during the outage is there');

########################################################################
# 3. Failback by hand, asked on the primary.
########################################################################
# Written on ams just before: failback() must wait until sjc has it.
$ams->safe_psql('postgres', "INSERT INTO notes VALUES (3, 'ams', 'just before failback')");
my ($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.failback()');
is($rc, 0, 'sjc: gsb.failback() succeeds') or diag($err);
is(q1($sjc, 'SELECT count(*) FROM notes WHERE id = 3'), '1',
	'sjc: when failback() returns, the change made on ams just before is on sjc');
ok(wait_active([ $sjc, $ams ], 'sjc', 10), 'both sites name sjc active after failback');
is(q1($_, $view), 'sjc Primary ' . ($_ == $sjc ? 'true' : 'false'),
	site_name($_) . ': detect_backup = Primary after failback') for ($sjc, $ams);
for my $n ($sjc, $ams)
{
	ok(wait_event($n, 'failback', 1, 30), site_name($n) . ": a 'failback' event");
	my @fb = events_of($n, 'failback');
	is("$fb[-1]{from_site} -> $fb[-1]{to_site}", 'ams -> sjc',
		site_name($n) . ': the failback event goes from ams to sjc');
}
# Failback by hand only: nothing happened by itself before, with
# failback_delay = -1 (sjc was reachable for seconds before failback()).
is(scalar(events_of($ams, 'failback')), 1, 'ams: exactly one failback (the one asked for)');

########################################################################
# 4. Automatic failback: failback_delay = 1s, another outage.
########################################################################
reload_with($_, 'gsb.failback_delay' => '1s') for ($sjc, $ams);
$sjc->stop('immediate');
ok(wait_event($ams, 'automatic failover', 2, 30), 'ams: a second automatic failover');
is(active_of($ams), 'ams', 'ams: active again');

# While sjc is down, failback() is a clear error.
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.failback()');
isnt($rc, 0, 'ams: gsb.failback() fails while sjc is down');
like($err, qr/the primary site sjc is unreachable/, 'ams: ... saying that sjc is unreachable');
is(sqlstate_of($err), '08006', 'ams: ... with SQLSTATE 08006 (connection_failure)');
is(active_of($ams), 'ams', 'ams: still active after the refused failback');

$ams->safe_psql('postgres', "INSERT INTO notes VALUES (4, 'ams', 'during the second outage')");
$off = log_offset($sjc);
$sjc->start;
ok(wait_active([ $sjc, $ams ], 'sjc', 30), 'both sites name sjc active again by themselves');
$ready = ready_at_epoch($sjc, $off);
my @fb = events_of($ams, 'failback');
is(scalar @fb, 2, "ams: a second 'failback' event");
like($fb[-1]{detail}, qr/reachable for \d+ ms and caught up/,
	'ams: the automatic failback says sjc was reachable and caught up');
my $fb_after = $fb[-1]{at} - ($ready // 0);
diag(sprintf("automatic failback %.3f s after sjc accepted connections again (failback_delay 1 s)",
		$fb_after));
cmp_ok($fb_after, '>=', 1, 'no automatic failback before failback_delay');
cmp_ok($fb_after, '<=', 1 + 10 * $hb, 'automatic failback soon after failback_delay');
is(q1($sjc, 'SELECT count(*) FROM notes WHERE id = 4'), '1',
	'sjc: the row written on ams in the second outage is on sjc');
ok(wait_event($sjc, 'failback', 2, 30), "sjc: the automatic 'failback' event is on sjc too");
same_on_both($sjc, $ams, 'SELECT term || mode || automatic FROM gsb.site_state',
	'both sites hold the same term, mode normal');
is(q1($ams, 'SELECT mode FROM gsb.site_state'), 'normal', 'mode is normal after failback');

# Terms only grow: one per switch.
is( q1($ams, q{SELECT string_agg(reason || ':' || term, ', ' ORDER BY term) FROM gsb.site_events}),
	'automatic failover:1, failback:2, automatic failover:3, failback:4',
	'ams: four switches, each with the next term');

wait_synced($sjc, $ams);
is(q1($sjc, "SELECT string_agg(status, ',') FROM gsb.verify()"),
	join(',', ('match') x q1($sjc, "SELECT count(*) FROM gsb.tables WHERE mode = 'realtime'")),
	'gsb.verify(): every realtime table matches');
is(q1($ams, 'SELECT count(*) FROM notes'), '4', 'ams: all four notes, once');

check_logs($sjc, $ams);
done_testing();
