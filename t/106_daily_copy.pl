# 106_daily_copy.pl: the daily one-way copy of configuration, custom pages,
# client versions and user tables registered as 'daily', primary to backup.
#
# Changes to daily tables on the primary (sjc) are not streamed: they reach
# the backup (ams) only through a copy, gsb.sync_config() on ams, which
# returns how many rows the daily tables hold afterwards and leaves them equal
# to sjc's. Edits made on ams stay there (never reach sjc) until the next
# copy overwrites them (rows only on ams are gone). sync_config() on sjc is
# an error. A copy that cannot reach sjc, or is interrupted, fails with a
# clear error and leaves ams's old rows; it can be run again. With
# gsb.config_sync_interval = '2s' the monitor copies by itself, and
# gsb.status.last_config_sync advances.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @daily = qw(gsb.site_config gsb.custom_pages gsb.client_versions prefs);
my %key = ('gsb.site_config' => 'key', 'gsb.custom_pages' => 'path',
	'gsb.client_versions' => 'platform', prefs => 'k');

# No automatic failover: the primary is stopped on purpose below.
my ($sjc, $ams) = two_sites(failover_timeout => '0', schema => q{
CREATE TABLE prefs (k text PRIMARY KEY, v text, n int);
SELECT gsb.replicate_table('prefs', 'daily');
});

# The daily tables of $node, one digest each.
sub daily_digest
{
	my ($node) = @_;
	return join("\n", map { "$_: " . table_digest($node, $_, $key{$_}) } @daily);
}

sub rows_of
{
	my ($node) = @_;
	return q1($node, 'SELECT ' . join(' + ', map { "(SELECT count(*) FROM $_)" } @daily));
}

sub last_sync
{
	my ($node) = @_;
	return q1($node, "SELECT coalesce(extract(epoch FROM last_config_sync)::text, 'never') FROM gsb.status WHERE peer = 'sjc'");
}

# The monitor copies once when it first reaches the primary; let that happen
# before the test counts copies.
ok(wait_until($ams, "SELECT last_config_sync IS NOT NULL FROM gsb.status WHERE peer = 'sjc'", 't', 30),
	'ams: the monitor made its first copy when it first reached sjc');

########################################################################
# Changes to daily tables are not streamed.
########################################################################
$sjc->safe_psql('postgres', q{
BEGIN;
INSERT INTO gsb.site_config VALUES ('brand', 'Acme'), ('max_participants', '100'), ('region', 'us-west');
INSERT INTO gsb.custom_pages VALUES ('/welcome', 'Welcome to Acme'), ('/help', 'Call us');
INSERT INTO gsb.client_versions VALUES ('windows', '5.1.0'), ('mac', '5.1.2');
INSERT INTO prefs VALUES ('theme', 'dark', 1);
SELECT gsb.create_account('config-txn@example.com', 'streamed with the config');
COMMIT;
});
wait_synced($sjc, $ams);
is(q1($ams, "SELECT count(*) FROM gsb.accounts WHERE email = 'config-txn\@example.com'"), '1',
	'ams: the realtime row of the same transaction was streamed');
is(rows_of($ams), '0', 'ams: the daily rows were not streamed');

########################################################################
# The copy.
########################################################################
my $before = last_sync($ams);
my ($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.sync_config()');
is($rc, 0, 'ams: gsb.sync_config() succeeds') or diag($err);
is($out, '8', 'ams: it returns 8, the rows the daily tables hold afterwards');
is(rows_of($ams), '8', 'ams: the daily tables hold 8 rows');
is(daily_digest($ams), daily_digest($sjc), 'ams: every daily table (built-in and user) equals sjc\'s');
cmp_ok(last_sync($ams), '>', $before, 'ams: gsb.status.last_config_sync advanced');
my $sjc_digest = daily_digest($sjc);

########################################################################
# Local edits on the backup stay local, until the next copy.
########################################################################
$ams->safe_psql('postgres', q{
UPDATE gsb.site_config SET value = 'Acme (backup edit)' WHERE key = 'brand';
INSERT INTO gsb.custom_pages VALUES ('/ams-only', 'only on the backup');
DELETE FROM gsb.client_versions WHERE platform = 'mac';
INSERT INTO prefs VALUES ('ams-only', 'x', 2);
});
wait_synced($sjc, $ams);
is(daily_digest($sjc), $sjc_digest, 'sjc: the edits made on ams did not reach sjc');
is(q1($ams, "SELECT value FROM gsb.site_config WHERE key = 'brand'"), 'Acme (backup edit)',
	'ams: its local edit stays until the next copy');
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.sync_config()');
is($rc, 0, 'ams: the next copy succeeds') or diag($err);
is($out, '8', 'ams: ... and returns 8');
is(daily_digest($ams), $sjc_digest, 'ams: the copy overwrote the local edits: equal to sjc again');
is( q1($ams, "SELECT (SELECT count(*) FROM gsb.custom_pages WHERE path = '/ams-only')"
		  . " + (SELECT count(*) FROM prefs WHERE k = 'ams-only')"),
	'0', 'ams: the rows that existed only on ams are gone');
wait_synced($sjc, $ams);
is(daily_digest($sjc), $sjc_digest, 'sjc: the rows the copy wrote on ams were not sent back');

########################################################################
# Not on the primary.
########################################################################
($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.sync_config()');
isnt($rc, 0, 'sjc: gsb.sync_config() on the primary fails');
is(sqlstate_of($err), '55000', 'sjc: ... with SQLSTATE 55000');
like($err, qr/gsb\.sync_config\(\) runs on the backup site/, 'sjc: ... saying it runs on the backup');

########################################################################
# A copy that cannot be made, or is cut short, leaves the old rows.
########################################################################
# Changes on sjc that a failed copy must not half-bring.
$sjc->safe_psql('postgres',
	"UPDATE gsb.site_config SET value = 'Acme 2' WHERE key = 'brand';"
	  . " INSERT INTO prefs SELECT 'bulk' || i, repeat('v', 100), i FROM generate_series(1, 200000) i;");
my $ams_digest = daily_digest($ams);
my $sync_before = last_sync($ams);

# Cut short: the backup's session gives up in the middle of the copy.
($rc, $out, $err) = psql_verbose($ams, "SET statement_timeout = '200ms'; SELECT gsb.sync_config()");
isnt($rc, 0, 'ams: a copy cut short by statement_timeout fails');
is(sqlstate_of($err), '57014', 'ams: ... (query canceled)') or diag($err);
is(daily_digest($ams), $ams_digest, 'ams: the interrupted copy left the old rows, all of them');
is(last_sync($ams), $sync_before, 'ams: last_config_sync did not move');

# The primary is down.
$sjc->stop('fast');
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.sync_config()');
isnt($rc, 0, 'ams: gsb.sync_config() fails while sjc is down');
like(sqlstate_of($err), qr/^08/, 'ams: ... with a connection error (SQLSTATE class 08)') or diag($err);
like($err, qr/connect/i, 'ams: ... saying it could not connect');
is(daily_digest($ams), $ams_digest, 'ams: the backup keeps its old rows');
is(last_sync($ams), $sync_before, 'ams: last_config_sync did not move');
$sjc->start;
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streams from sjc again');

# Safe to run again.
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.sync_config()');
is($rc, 0, 'ams: the copy, run again, succeeds') or diag($err);
is($out, 200008, 'ams: ... and returns 200008');
is(daily_digest($ams), daily_digest($sjc), 'ams: equal to sjc');
$sjc->safe_psql('postgres', "DELETE FROM prefs WHERE k LIKE 'bulk%'");

########################################################################
# The scheduled copy.
########################################################################
$sjc->safe_psql('postgres',
	"INSERT INTO gsb.site_config VALUES ('scheduled', 'arrives by itself');"
	  . " INSERT INTO prefs VALUES ('scheduled', 'arrives by itself', 3);");
wait_synced($sjc, $ams);
is( q1($ams, "SELECT count(*) FROM gsb.site_config WHERE key = 'scheduled'"), '0',
	'ams: a new row on sjc is not there before a copy (interval 1 day)');
$sync_before = last_sync($ams);
reload_with($ams, 'gsb.config_sync_interval' => '2s');
ok( wait_until($ams,
		"SELECT (SELECT count(*) FROM gsb.site_config WHERE key = 'scheduled')"
		  . " + (SELECT count(*) FROM prefs WHERE k = 'scheduled')", '2', 30),
	'ams: with gsb.config_sync_interval = 2s the new rows arrive by themselves');
my $sync1 = last_sync($ams);
cmp_ok($sync1, '>', $sync_before, 'ams: gsb.status.last_config_sync advanced');
is(daily_digest($ams), daily_digest($sjc), 'ams: every daily table equals sjc\'s');
ok(wait_until($ams, "SELECT extract(epoch FROM last_config_sync) > $sync1 FROM gsb.status WHERE peer = 'sjc'", 't', 30),
	'ams: and again, at the next interval');
my $sync2 = last_sync($ams);
diag(sprintf('scheduled copies %.3f s apart (interval 2 s)', $sync2 - $sync1));
cmp_ok($sync2 - $sync1, '>=', 2, 'ams: not more often than the interval');
cmp_ok($sync2 - $sync1, '<', 2 + 5 * $GsbSites::HEARTBEAT_S, 'ams: within a few heartbeats of it');

reload_with($ams, 'gsb.config_sync_interval' => '1d');
check_logs($sjc, $ams);
done_testing();
