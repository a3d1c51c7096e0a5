# 313_frozen_backup.pl: a frozen backup (SIGSTOP of its postmaster and every
# child: its kernel still accepts connections and bytes, nothing answers).
# The primary must not hang on it anywhere:
#   - its site monitor finds the backup unreachable within
#     gsb.failover_timeout + 1 s (the heartbeat in flight has a deadline);
#   - every gsb SQL function that needs the backup answers within its
#     timeout (gsb.peer_timeout, plus what the function waits for itself)
#     with an error of class 08 (or 57014 when statement_timeout is shorter),
#     naming the peer and what was being done;
#   - every function that does not need the backup answers at once.
# SIGCONT comes at the end, and in an END block whatever happens; then the
# sites stream again and agree on the active site.
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
my $PEER_TIMEOUT_S = 2;
my $SLACK_S = 2;    # psql's own start and the server's work, on a loaded machine
my $AT_ONCE_S = 3;  # "at once": well below any wait for the peer (10 s here)
my ($sjc, $ams) = two_sites(
	failover_timeout => "${FAILOVER_S}s",
	heartbeat_interval => '200ms',
	schema => "CREATE TABLE items (id bigint PRIMARY KEY, v text);\n"
	  . "SELECT gsb.replicate_table('items');");
ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');
ok(wait_until($sjc, 'SELECT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'sjc: its monitor reaches ams');
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (1, 'before')");
ok(wait_until($ams, 'SELECT count(*) FROM items', '1', 60), 'ams has the row');
my $acct = q1($sjc, "SELECT gsb.create_account('a\@example.com', 'A')");
my $meeting = q1($sjc, "SELECT gsb.schedule_meeting($acct, 'm', now())");
ok(wait_until($ams, "SELECT count(*) FROM gsb.meetings WHERE id = $meeting", '1', 60),
	'ams has the meeting');
# other: registered before the freeze (replicate_table asks the peer).
$_->safe_psql('postgres', 'CREATE TABLE other (id bigint PRIMARY KEY)') for ($sjc, $ams);
$sjc->safe_psql('postgres', "SELECT gsb.replicate_table('other')");
my $ams_conninfo = q1($sjc, "SELECT conninfo FROM gsb.peers WHERE name = 'ams'");

my $frozen_at = epoch_now($sjc);
my $off = log_offset($sjc);
my $t0 = time();
cmp_ok(freeze_cluster($ams), '>=', 5, 'ams: postmaster and every child stopped (SIGSTOP)');
$GsbFaults::FIGURES{faults}++;

########################################################################
# The primary's monitor notices.
########################################################################
ok(wait_until($sjc, 'SELECT peer_reachable FROM gsb._monitor_status()', 'f', 60),
	'sjc: its monitor finds ams unreachable');
# When the monitor said so, on sjc's clock (its log line): the polling above
# adds its own delay under load.
my ($logged) = slurp_file($sjc->logfile, $off)
  =~ /^(\S+ \S+ \S+) \[\d+\] .*?LOG:  gsb site monitor: peer is unreachable/m;
my $noticed = defined $logged
  ? q1($sjc, "SELECT extract(epoch FROM " . sql_quote($logged) . "::timestamptz)") - $frozen_at
  : time() - $t0;
note(sprintf('frozen backup: the primary\'s monitor found it unreachable after %.2f s (seen by polling '
		  . 'after %.2f s; failover_timeout %d s)', $noticed, time() - $t0, $FAILOVER_S));
cmp_ok($noticed, '<=', $FAILOVER_S + 1,
	sprintf('sjc: within failover_timeout + 1 s (%.2f s)', $noticed));
like(q1($sjc, 'SELECT last_monitor_error FROM gsb._monitor_status()'),
	qr/peer "ams".*did not answer|timed out/, 'sjc: the monitor says that ams did not answer');

# timed($sql, $settings): runs $sql in a session of its own after $settings
# (SET ...); returns (seconds, rc, stdout, stderr).
sub timed
{
	my ($sql, $settings) = @_;
	my $t = time();
	my ($rc, $out, $err) = psql_verbose($sjc, ($settings // '') . "\n$sql");
	return (time() - $t, $rc, $out, $err);
}

########################################################################
# Functions that do not need the backup answer at once.
########################################################################
my @local = (
	'SELECT count(*) FROM gsb.status',
	'SELECT gsb.active_site()',
	'SELECT gsb.is_active()',
	'SELECT gsb.detect_backup()',
	'SELECT gsb.site_name(), gsb.site_role()',
	"SELECT gsb.create_account('b\@example.com', 'B')",
	"SELECT gsb.start_meeting($meeting)",
	"SELECT gsb.join_meeting($meeting)",
	"SELECT gsb.end_meeting($meeting)",
	"SELECT * FROM gsb.usage_report(now() - interval '1 day', now() + interval '1 day')",
	"SELECT gsb.wait_for_peer('0')",
	"SELECT gsb.unreplicate_table('other')",
	"INSERT INTO items VALUES (2, 'during the freeze')",
);
for my $sql (@local)
{
	my ($s, $rc, $out, $err) = timed($sql);
	is($rc, 0, "no peer needed: '$sql' succeeds") or diag($err);
	cmp_ok($s, '<', $AT_ONCE_S, sprintf("no peer needed: '%s' answers at once (%.2f s)", $sql, $s));
}
{
	my ($s, $rc, $out, $err) = timed('SELECT gsb.sync_config()');
	is(sqlstate_of($err), '55000', 'gsb.sync_config() on the primary: its own error (55000)');
	cmp_ok($s, '<', $AT_ONCE_S, sprintf('gsb.sync_config() answers at once (%.2f s)', $s));
	($s, $rc, $out, $err) = timed("SELECT gsb.wait_for_peer('1 s')");
	is($out, 'f', "gsb.wait_for_peer('1 s'): false, the backup has not applied row 2");
	cmp_ok($s, '<', 1 + $SLACK_S, sprintf("gsb.wait_for_peer('1 s') answers within 1 s (%.2f s)", $s));
}

########################################################################
# Functions that need the backup: class 08 within their timeout.
########################################################################
my $set = "SET gsb.peer_timeout = '${PEER_TIMEOUT_S}s';";
my @remote = (
	[ 'gsb.verify()', 'SELECT * FROM gsb.verify()', $PEER_TIMEOUT_S ],
	[ 'gsb.begin_maintenance()', 'SELECT gsb.begin_maintenance()', $PEER_TIMEOUT_S ],
	# replicate_table compares the table with the backup's first.
	[ 'gsb.replicate_table()', "SELECT gsb.replicate_table('other')", $PEER_TIMEOUT_S ],
	[ 'gsb.add_peer() of the frozen site',
		"SELECT gsb.add_peer('zzz', " . sql_quote($ams_conninfo) . ")", $PEER_TIMEOUT_S ],
	# On the primary, failover() only tells the backup (and may not wait
	# for it longer than gsb.peer_timeout); failback() then needs the
	# backup to have applied everything.
	[ 'gsb.failover()', "SELECT gsb.failover('test')", $PEER_TIMEOUT_S, 'ok' ],
	[ 'gsb.failback()', 'SELECT gsb.failback()', $PEER_TIMEOUT_S ],
);
for my $case (@remote)
{
	my ($name, $sql, $bound, $ok) = @$case;
	my ($s, $rc, $out, $err) = timed($sql, $set);
	note(sprintf('frozen backup: %s answered after %.2f s: %s', $name, $s, $err =~ s/\n.*//sr));
	if ($ok)
	{
		is($rc, 0, "$name succeeds without the backup") or diag($err);
	}
	else
	{
		like(sqlstate_of($err), qr/^08/, "$name: an error of class 08") or diag($err);
	}
	cmp_ok($s, '<', $bound + $SLACK_S,
		sprintf('%s answers within gsb.peer_timeout (%d s) + %.1f s: %.2f s', $name, $bound, $SLACK_S, $s));
}
{
	my ($s, $rc, $out, $err) = timed('SELECT * FROM gsb.verify()', $set);
	like($err, qr/CONTEXT:.*gsb: the peer at \S+: (connecting|running)/s,
		'the error names the peer and what was being done') or diag($err);
}
# The default gsb.peer_timeout (10 s) bounds them too.
{
	my ($s, $rc, $out, $err) = timed('SELECT * FROM gsb.verify()');
	like(sqlstate_of($err), qr/^08/, 'gsb.verify() with the default gsb.peer_timeout: class 08') or diag($err);
	cmp_ok($s, '<', 10 + $SLACK_S, sprintf('... within 10 s + %.1f s (%.2f s)', $SLACK_S, $s));
	note(sprintf('frozen backup: gsb.verify() with the default gsb.peer_timeout answered after %.2f s', $s));
}
# A shorter statement_timeout wins: 57014.
{
	my ($s, $rc, $out, $err) = timed('SELECT * FROM gsb.verify()',
		"SET gsb.peer_timeout = '60s'; SET statement_timeout = '1s';");
	is(sqlstate_of($err), '57014', 'a shorter statement_timeout cancels the wait: 57014') or diag($err);
	cmp_ok($s, '<', 1 + $SLACK_S, sprintf('... within statement_timeout (1 s) + %.1f s (%.2f s)', $SLACK_S, $s));
}

########################################################################
# Thaw ams: streaming again, one view of the active site.
########################################################################
cmp_ok(thaw_clusters(), '>=', 5, 'ams: every process continued (SIGCONT)');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc streams from ams again');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams streams from sjc again');
ok(wait_until($ams, 'SELECT count(*) FROM items', '2', 90), 'ams: the row written during the freeze arrived');
my $active = q1($sjc, 'SELECT gsb.active_site()');
ok(wait_active([ $sjc, $ams ], $active, 60), "both sites agree on the active site ($active)");
check_logs($sjc, $ams);
figures(1);
done_testing();
