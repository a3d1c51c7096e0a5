# 102_partial_failure.pl: a primary that is up but unhealthy is never failed
# over automatically; an operator's gsb.failover(reason) is.
#
# Two partial failures of the primary (sjc), one after the other, each held
# for three times gsb.failover_timeout:
#   a. its apply worker fails on every change from the backup (fault
#      injection 'apply_change_error'): replication into sjc is broken, but
#      sjc answers the backup's heartbeats;
#   b. on top of that, gsb's heartbeat function on sjc is gone (renamed, as
#      in a half-done upgrade) and sjc's database turns read-only: sjc accepts
#      connections, but the backup's heartbeat itself ends in an error there.
# Throughout, the backup (ams) keeps naming sjc as the active site and never
# logs sjc as unreachable. Then gsb.failover('partial: apply broken') on ams
# makes ams active, with a 'manual failover' event whose detail is the
# reason. Once sjc is healthy again it takes ams's view, the event is on both
# sites, and the rows written on ams meanwhile reach sjc.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout = $GsbSites::TIMEOUT_S;
my $hold = 3 * $timeout;

my ($sjc, $ams) = two_sites(schema => q{
CREATE TABLE notes (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('notes');
});
my $ams_log = log_offset($ams);
my $sjc_log = log_offset($sjc);

########################################################################
# a. The primary's apply is broken.
########################################################################
reload_with($sjc, 'gsb.fault_injection' => 'apply_change_error');
$ams->safe_psql('postgres', "INSERT INTO notes VALUES (1, 'ams', 'cannot be applied on sjc')");
ok( wait_until($sjc,
		"SELECT last_error LIKE '%injected fault%' FROM gsb.status WHERE peer = 'ams'", 't', 30),
	'sjc: its apply worker fails on the change from ams (gsb.status shows the error)');
is(q1($sjc, 'SELECT count(*) FROM notes WHERE id = 1'), '0', 'sjc: the change from ams is not applied');

my ($held, $got) = hold_for($ams, 'SELECT gsb.active_site()', 'sjc', $hold);
ok($held, "ams: sjc stays the active site for ${hold} s (3 x failover_timeout) with sjc's apply broken")
  or diag("active_site on ams became: $got");

########################################################################
# b. The primary answers, but with errors.
########################################################################
$sjc->safe_psql('postgres',
	'ALTER FUNCTION gsb._heartbeat(text, bigint, text, text, boolean) RENAME TO _heartbeat_broken');
reload_with($sjc, 'default_transaction_read_only' => 'on');
is(q1($sjc, 'SHOW default_transaction_read_only'), 'on', 'sjc: still answers, read-only');
($held, $got) = hold_for($ams, 'SELECT gsb.active_site()', 'sjc', $hold);
ok($held, "ams: sjc stays the active site for ${hold} s more while its heartbeats fail on sjc")
  or diag("active_site on ams became: $got");
my $sjc_lines = slurp_file($sjc->logfile, $sjc_log);
my @hb_err = $sjc_lines =~ /^.*\bgsb_monitor_ams\b.*\bERROR:.*$/mg;
# One failed heartbeat per interval: at least a third of them, to be safe.
cmp_ok(scalar @hb_err, '>=', int($hold / $GsbSites::HEARTBEAT_S / 3),
	"sjc: the log shows ams's heartbeats failing there, again and again");
note(scalar(@hb_err) . ' heartbeat errors on sjc; the first: ' . ($hb_err[0] // ''));

my $ams_lines = slurp_file($ams->logfile, $ams_log);
unlike($ams_lines, qr/gsb site monitor: peer is unreachable/,
	"ams: its monitor never considered sjc unreachable");
is(scalar(events_of($ams)), 0, 'ams: no site event at all: no automatic failover');
is(q1($ams, 'SELECT gsb.detect_backup()'), 'Primary', 'ams: detect_backup() still says Primary');

########################################################################
# The operator fails over by hand.
########################################################################
my $reason = 'partial: apply broken';
my ($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.failover(' . sql_quote($reason) . ')');
is($rc, 0, "ams: gsb.failover('$reason') succeeds while sjc is up but broken") or diag($err);
is( q1($ams, q{SELECT gsb.active_site() || ' ' || gsb.detect_backup() || ' ' || gsb.is_active()}),
	'ams Backup true', 'ams: ams is active (detect_backup = Backup)');
my @mf = events_of($ams, 'manual failover');
is(scalar @mf, 1, "ams: one 'manual failover' event");
is($mf[0]{detail}, $reason, 'ams: its detail is the reason given');
is("$mf[0]{from_site} -> $mf[0]{to_site}", 'sjc -> ams', 'ams: from sjc to ams');
is(scalar(events_of($ams, 'automatic failover')), 0, 'ams: and no automatic failover');

$ams->safe_psql('postgres', "INSERT INTO notes VALUES (2, 'ams', 'after the manual failover')");

########################################################################
# sjc recovers: it takes ams's view, and nothing written on ams is lost.
########################################################################
reload_with($sjc, 'default_transaction_read_only' => 'off', 'gsb.fault_injection' => '');
$sjc->safe_psql('postgres',
	'ALTER FUNCTION gsb._heartbeat_broken(text, bigint, text, text, boolean) RENAME TO _heartbeat');
ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30),
	'sjc: once healthy, it names ams as the active site');
is(q1($sjc, 'SELECT gsb.detect_backup()'), 'Backup', 'sjc: detect_backup() = Backup');
ok(wait_event($sjc, 'manual failover', 1, 30), "sjc: the 'manual failover' event reaches sjc");
is((events_of($sjc, 'manual failover'))[0]{detail}, $reason, 'sjc: ... with the reason as detail');
wait_synced($sjc, $ams);
is( q1($sjc, "SELECT string_agg(id::text, ',' ORDER BY id) FROM notes"), '1,2',
	'sjc: the rows written on ams during the partial failure arrived, once each');
same_on_both($sjc, $ams, 'SELECT term || mode || automatic FROM gsb.site_state',
	'both sites hold the same term and mode');
is(q1($ams, 'SELECT mode || automatic FROM gsb.site_state'), 'failed_overfalse',
	'mode failed_over, not automatic (no failback by itself)');

check_logs($sjc, $ams);
done_testing();
