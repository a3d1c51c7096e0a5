# 310_transient_errors.pl: apply errors that clear by themselves or by an
# operator's fix are retried, never skipped; the transaction stops at a known
# LSN meanwhile and nothing behind it overtakes it.
#
# sjc writes; ams applies. On ams, one at a time:
#   1. lock timeout: a local transaction holds a row lock that sjc's change
#      needs, with lock_timeout = 300ms; the worker fails, retries, and applies
#      the change once the lock is gone.
#   2. deadlock: the worker has locked row 1 and waits for row 2, which a local
#      transaction holds and which then asks for row 1; the worker (first to
#      run the deadlock check) is the victim, retries, and applies.
#   3. unique violation on a secondary unique index (one that only ams has):
#      a local row holds the e-mail that sjc's new row brings; the worker fails
#      on it over and over, with the transactions written after it queued
#      behind; when the local row's e-mail changes, everything is applied.
# In every case: while the error lasts, gsb.status says 'error' with the
# error and the LSN where the remote transaction ends (between the LSNs read on
# sjc around its commit), applied_lsn stays before it, no part of the
# transaction is visible on ams; afterwards every change is there exactly once
# (the counters were incremented once, not twice), and gsb.verify() matches.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');
my $schema = q{
CREATE TABLE acct (id bigint PRIMARY KEY, email text NOT NULL, balance int NOT NULL);
CREATE TABLE marks (id bigint PRIMARY KEY, what text NOT NULL);
SELECT gsb.replicate_table('acct');
SELECT gsb.replicate_table('marks');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
$sjc->safe_psql('postgres',
	"INSERT INTO acct SELECT g, 'a' || g || '\@example.com', 0 FROM generate_series(1, 10) g");
connect_sites($sjc, $ams);
wait_synced($sjc, $ams);

sub set_conf
{
	my ($node, $setting, $value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $setting = '$value'; SELECT pg_reload_conf();");
	$node->poll_query_until('postgres', "SELECT current_setting('$setting') = '$value'")
	  or die "$setting did not become $value";
	return;
}

# On sjc: $sql in one transaction; returns the WAL insert positions before
# and after it (its commit record ends between them).
sub remote_txn
{
	my ($sql) = @_;
	my $before = $sjc->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	$sjc->safe_psql('postgres', "BEGIN; $sql; COMMIT;");
	my $after = $sjc->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	return ($before, $after);
}

# While ams's worker fails on the transaction between $lo and $hi: the error
# is shown with that transaction's end LSN, the worker has not got past it,
# and it retries (two or more failures in the log). Returns the error text.
sub stuck_at
{
	my ($case, $pattern, $lo, $hi, $log_from) = @_;
	ok( $ams->poll_query_until('postgres',
			"SELECT state = 'error' AND last_error ~ " . sql_quote($pattern) . " FROM gsb.status WHERE peer = 'sjc'"),
		"$case: ams's gsb.status shows state 'error' with /$pattern/");
	my $err = $ams->safe_psql('postgres', "SELECT last_error FROM gsb.status WHERE peer = 'sjc'");
	note("$case: last_error: $err");
	my ($end) = $err =~ /finished at ([0-9A-F]+\/[0-9A-F]+)/;
	ok(defined $end, "$case: last_error names the LSN where the remote transaction ends");
	$end //= '0/0';
	is( $ams->safe_psql('postgres',
			"SELECT '$end'::pg_lsn > '$lo'::pg_lsn AND '$end'::pg_lsn <= '$hi'::pg_lsn"),
		't', "$case: that LSN ($end) is the failing transaction's ($lo .. $hi on sjc)");
	is( $ams->safe_psql('postgres',
			"SELECT coalesce(applied_lsn < '$end'::pg_lsn, true) FROM gsb.status WHERE peer = 'sjc'"),
		't', "$case: ams's applied_lsn stays before it");
	my $tries = 0;
	for (1 .. 600)
	{
		$tries = () = slurp_file($ams->logfile, $log_from) =~ /apply worker for peer "sjc": [^\n]*$pattern/g;
		last if $tries >= 2;
		usleep(100_000);
	}
	cmp_ok($tries, '>=', 2, "$case: the worker tried it again ($tries failures in the log so far)");
	return $err;
}

sub log_size { return log_offset($ams); }

# ---------------------------------------------------------------------------
# 1. Lock timeout.
set_conf($ams, 'lock_timeout', '300ms');
my $from = log_size();
my $locker = start_bg($ams, 'BEGIN; SELECT id FROM acct WHERE id = 1 FOR UPDATE;');
my ($lo, $hi) = remote_txn(
	"UPDATE acct SET balance = balance + 1 WHERE id = 1; INSERT INTO marks VALUES (1, 'lock timeout')");
stuck_at('lock timeout', 'lock timeout', $lo, $hi, $from);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM marks WHERE id = 1'), '0',
	'lock timeout: no part of the transaction is applied while the lock is held');
$locker->query_safe('COMMIT');
finish_bg($locker);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT balance FROM acct WHERE id = 1'), '1',
	'lock timeout: once the lock is gone, the update is applied exactly once');
is($ams->safe_psql('postgres', "SELECT what FROM marks WHERE id = 1"), 'lock timeout',
	'lock timeout: and the rest of its transaction with it');
ok(wait_state($ams, 'sjc', 'streaming'), 'lock timeout: ams streams again');
set_conf($ams, 'lock_timeout', '0');
$GsbFaults::FIGURES{faults}++;

# ---------------------------------------------------------------------------
# 2. Deadlock. The worker's deadlock_timeout (3 s) runs out first, because it
# began to wait first; the local session's is longer.
set_conf($ams, 'deadlock_timeout', '3s');
$from = log_size();
$locker = start_bg($ams, "SET deadlock_timeout = '60s'; BEGIN; SELECT id FROM acct WHERE id = 2 FOR UPDATE;");
($lo, $hi) = remote_txn(
	"UPDATE acct SET balance = balance + 10 WHERE id = 1; UPDATE acct SET balance = balance + 10 WHERE id = 2; "
	  . "INSERT INTO marks VALUES (2, 'deadlock')");
ok( $ams->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		   WHERE NOT l.granted AND a.backend_type = 'gsb apply worker'}),
	'deadlock: the worker holds row 1 and waits for row 2');
# The local transaction now asks for row 1: a cycle.
$locker->query_until(qr/sent/, "\\echo sent\nSELECT id FROM acct WHERE id = 1 FOR UPDATE;\n");
ok( $ams->poll_query_until('postgres',
		"SELECT last_error ~ 'deadlock detected' FROM gsb.status WHERE peer = 'sjc'"),
	'deadlock: the worker was chosen as the victim and shows the deadlock in gsb.status');
# The local transaction got both rows; until it ends, the worker retries in vain.
is($ams->safe_psql('postgres', 'SELECT count(*) FROM marks WHERE id = 2'), '0',
	'deadlock: nothing of the remote transaction is applied while the local one holds the rows');
$locker->query_safe('COMMIT');
finish_bg($locker);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT string_agg(balance::text, \',\' ORDER BY id) FROM acct WHERE id <= 2'),
	'11,10', 'deadlock: both updates applied exactly once after the retry');
is($ams->safe_psql('postgres', 'SELECT what FROM marks WHERE id = 2'), 'deadlock',
	'deadlock: and the rest of the transaction');
ok(grep({ /deadlock detected/ } split /\n/, slurp_file($ams->logfile, $from)),
	'deadlock: the server log has the deadlock');
set_conf($ams, 'deadlock_timeout', '1s');
$GsbFaults::FIGURES{faults}++;

# ---------------------------------------------------------------------------
# 3. A unique violation on an index only ams has, which clears when the local
# row that holds the value changes. The transactions after the failing one
# wait behind it.
$ams->safe_psql('postgres', q{
CREATE UNIQUE INDEX acct_email_only_here ON acct (email);
INSERT INTO acct VALUES (900, 'dup@example.com', 0);
});
wait_synced($ams, $sjc);
$from = log_size();
($lo, $hi) = remote_txn(
	"INSERT INTO acct VALUES (100, 'dup\@example.com', 5); INSERT INTO marks VALUES (3, 'unique')");
my @later = map { $sjc->safe_psql('postgres', "INSERT INTO marks VALUES (3$_, 'after the unique violation')") } 1 .. 5;
stuck_at('unique violation', 'acct_email_only_here', $lo, $hi, $from);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM marks WHERE id >= 3'), '0',
	'unique violation: neither the failing transaction nor the five after it are applied');
# sjc, which has no such index, has both rows (ams's row 900 went there).
is($sjc->safe_psql('postgres', "SELECT count(*) FROM acct WHERE email = 'dup\@example.com'"), '2',
	'unique violation: sjc holds both rows with the address');
# The fix, on ams: the local row's address changes.
$ams->safe_psql('postgres', "UPDATE acct SET email = 'dup2\@example.com' WHERE id = 900");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT balance FROM acct WHERE id = 100'), '5',
	'unique violation: once it clears, the row is applied');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM marks WHERE id >= 3'), '6',
	'unique violation: with the rest of its transaction and the five queued behind it, once each');
ok(wait_state($ams, 'sjc', 'streaming'), 'unique violation: ams streams again');
is($ams->safe_psql('postgres', "SELECT coalesce(last_error, '') FROM gsb.status WHERE peer = 'sjc'"), '',
	'unique violation: last_error is cleared once the transaction is applied');
$GsbFaults::FIGURES{faults}++;

# Nothing was skipped or applied twice.
wait_synced($sjc, $ams);
same_on_both($sjc, $ams, 'SELECT id, email, balance FROM acct ORDER BY id', 'acct is the same on both sites');
exactly_once($sjc, $ams, 'marks');
verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(3);
done_testing();
