# 323_hostile_peer.pl: a hostile or broken peer cannot take a site down.
#
# The peer is t/FakePeer.pm: it takes the logins and answers every query with
# the wrong shape (one text column), except the replication commands that get
# the apply worker as far as its initial copy. First (mode 'copy') it also
# lists a table to copy and answers the query of its columns with one column
# instead of three: the old code assigned the NULL of a cell the answer did
# not have into a std::string, signal 11, and the postmaster restarted the
# whole cluster, again at every retry. Then (mode 'all') the list of tables
# has the wrong shape too: the old code made a std::string of that NULL.
#
# The peer row is inserted directly (gsb.add_peer checks the peer first and
# would refuse the fake), as add_peer writes it: role backup, sync_state init.
# Checked:
#   1. the server never restarts: same postmaster, a session opened before
#      survives, no "terminated by signal" in the log;
#   2. gsb.status shows the peer's error (the wrong shape, named);
#   3. the worker retries with a growing backoff (a few attempts, not dozens);
#   4. a worker killed while it waits (pg_terminate_backend) is restarted by
#      the supervisor, and the new one waits out the backoff its predecessor
#      owed (kept in shared memory) instead of starting again at 1 s;
#   5. gsb._peer_query and gsb.verify() against the fake end cleanly.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use GsbSites ();
use FakePeer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $ams = new_site('ams', 'primary', extra_conf => 'restart_after_crash = on');
$ams->safe_psql('postgres',
	"CREATE TABLE items (id bigint PRIMARY KEY, v text); SELECT gsb.replicate_table('items');");
my $encoding = $ams->safe_psql('postgres', 'SHOW server_encoding');
my $fake = FakePeer->start(
	log => $PostgreSQL::Test::Utils::tmp_check . '/fake_peer.log',
	encoding => $encoding,
	mode => 'copy');
my $conn = $fake->connstr;

my $postmaster_start = $ams->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $session = GsbSites::open_session($ams);
my ($session_pid) = $session->run('SELECT pg_backend_pid()');
my $offset = log_offset($ams);

$ams->safe_psql('postgres',
	"INSERT INTO gsb.peers (name, conninfo, copy_data, role) VALUES ('fake', "
	  . sql_quote($conn)
	  . ", true, 'backup'); SELECT gsb._wake_supervisor();");

# Attempts of the apply worker: its replication logins on the fake.
sub attempts { return $fake->connections('gsb_apply_'); }

sub wait_attempts
{
	my ($n, $timeout_s) = @_;
	my $end = time() + $timeout_s;
	while (time() < $end)
	{
		return 1 if @{ attempts() } >= $n;
		usleep(100_000);
	}
	return 0;
}

# 2. The error is shown, and names the wrong shape.
ok( wait_until(
		$ams,
		"SELECT last_error LIKE '%the peer answered the column query with 1 columns, not 3%' "
		  . "FROM gsb.status WHERE peer = 'fake'",
		60),
	'gsb.status shows the wrong shape of the answer to the column query')
  or diag((try_psql($ams, "SELECT * FROM gsb.status WHERE peer = 'fake'"))[1]);
$fake->mode('all');
ok( wait_until(
		$ams,
		"SELECT last_error LIKE '%the peer''s answer has 1 rows of 1 columns%' "
		  . "FROM gsb.status WHERE peer = 'fake'",
		60),
	'then the wrong shape of the list of tables (a cell it does not have)')
  or diag((try_psql($ams, "SELECT * FROM gsb.status WHERE peer = 'fake'"))[1]);
like(
	$ams->safe_psql('postgres', "SELECT state FROM gsb.status WHERE peer = 'fake'"),
	qr/^(down|error|connecting|initial_sync)$/,
	'the fake peer\'s state is not streaming');
ok($fake->connections('gsb_copy_')->[0], 'the worker got as far as its initial copy');

# 3. Attempts at about 0, 1, 3 and 7 s: each wait about twice the last.
ok(wait_attempts(4, 60), 'four attempts') or diag(explain(attempts()));
my @at = @{ attempts() };
my @gaps = map { $at[$_] - $at[ $_ - 1 ] } 1 .. 3;
diag(sprintf('gaps between attempts: %s s', join(', ', map { sprintf('%.2f', $_) } @gaps)));
ok($gaps[0] >= 0.8, 'the first retry waits about 1 s');
ok($gaps[1] >= 1.6 * $gaps[0] && $gaps[2] >= 1.6 * $gaps[1], 'the backoff grows')
  or diag(explain(\@gaps));
cmp_ok(scalar(grep { $_ <= $at[0] + 10 } @{ attempts() }), '<=', 6,
	'a few attempts in the first 10 s, not dozens');

# 4. Kill the worker while it waits 8 s after its fourth failure: the new one
# must not connect sooner than that backoff says.
sub wait_log
{
	my ($re, $timeout_s) = @_;
	my $end = time() + $timeout_s;
	while (time() < $end)
	{
		return 1 if slurp_file($ams->logfile, $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}
ok(wait_log(qr/Retrying in 8000 ms/, 30), 'the fourth failure says it retries in 8000 ms');
my $failed_at = attempts()->[3];
my $pid = apply_pid($ams, 'fake');
ok($pid, 'the apply worker runs');
$ams->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_until($ams, "SELECT pid IS NOT NULL AND pid <> $pid FROM gsb._worker_status() "
		  . "WHERE peer = 'fake'", 30),
	'the supervisor started a new apply worker');
ok(wait_attempts(5, 60), 'the new worker tries again');
my $next = attempts()->[4];
my $waited = $next - $failed_at;
diag(sprintf('the new worker connected %.2f s after the last attempt before the kill', $waited));
cmp_ok($waited, '>=', 6.5, 'the new worker waited out the backoff of the one before');
ok(slurp_file($ams->logfile, $offset) =~ /waits \d+ ms before connecting/,
	'the new worker says why it waits');

# 5. SQL functions against the fake end cleanly.
my ($rc, $out, $err) =
  psql_verbose($ams, "SELECT gsb._peer_query(" . sql_quote($conn) . ", 'SELECT 1, 2')");
is($rc, 0, 'gsb._peer_query on the fake answers') or diag($err);
# verify() first waits (60 s) for the peer to confirm this site's changes,
# which the fake never does; then it asks the peer.
($rc, $out, $err) =
  psql_verbose($ams, "SET statement_timeout = '150s'; SELECT * FROM gsb.verify()");
isnt($rc, 0, 'gsb.verify() against the fake fails');
like($err, qr/ERROR:/, 'with an error');
unlike($err, qr/57014|statement timeout/, 'of its own, not the statement timeout') or diag($err);
diag("gsb.verify(): " . join(" | ", grep { /ERROR|DETAIL/ } split /\n/, $err));
unlike($err, qr/server closed the connection|terminated abnormally/,
	'and the session stays');

# 1. Nothing restarted.
is($ams->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$postmaster_start, 'the postmaster never restarted');
my ($same) = $session->run('SELECT pg_backend_pid()');
is($same, $session_pid, 'a session opened before the fake peer came survives');
my $log = slurp_file($ams->logfile, $offset);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/all server processes terminated/, 'the server never reinitialised');
is($ams->safe_psql('postgres', 'SELECT running FROM gsb._monitor_status()'),
	't', 'the site monitor runs');

$session->close;
$fake->stop;
$ams->stop;
done_testing();
