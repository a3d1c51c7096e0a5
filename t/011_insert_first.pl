# 011_insert_first.pl: inserts that are written before their key is looked up.
#
# An insert into a table without triggers that goes row by row (transactions
# of fewer than four rows, or a batch whose multi-insert met a taken key) is
# written first, with a partial uniqueness check on every unique index; only
# when that check reports a key or value taken does the worker delete the row
# it wrote and take the conflict path (wait, look the key up, decide). This test gives that
# path every case: a key held by a committed local row (newer remote: applied;
# identical: no conflict), a key held by an open local transaction that rolls
# back (applied, no conflict) or commits (the local row is newer: kept), the
# value of another unique column held by an open transaction (waited for), a
# batch of ten with three taken keys, and a row that breaks another unique
# index (an error, retried until the local row goes). Every case but the
# last has the same value in the other unique column on both sides, as the
# same row inserted on both sites has. Each case ends with
# ams holding exactly the expected rows, every index consistent with the
# table (amcheck), and the expected gsb.conflicts records.
#
# sjc writes; ams applies (one way, as in 010_key_runs.pl).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites qw(open_session);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');

for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
		CREATE TABLE ins (k bigint PRIMARY KEY, u int NOT NULL UNIQUE,
		                  v text NOT NULL CHECK (v <> ''));
		SELECT gsb.replicate_table('ins');
		CREATE TABLE mark (id int PRIMARY KEY);
		SELECT gsb.replicate_table('mark');
	});
}
$ams->safe_psql('postgres', 'CREATE EXTENSION amcheck');
add_peer($ams, $sjc, copy_data => 0);
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc');

# One way: a row written on sjc after everything else must arrive on ams.
my $marks = 0;
sub caught_up
{
	$marks++;
	$sjc->safe_psql('postgres', "INSERT INTO mark VALUES ($marks)");
	my $ok = $ams->poll_query_until('postgres', "SELECT EXISTS (SELECT 1 FROM mark WHERE id = $marks)");
	ok($ok, "ams: caught up with sjc (mark $marks)");
	diag(join(' ', %{ status_row($ams, 'sjc') })) unless $ok;
	return $ok;
}

sub rows_on_ams
{
	my ($where) = @_;
	return $ams->safe_psql('postgres',
		"SELECT coalesce(string_agg(k || ':' || u || ':' || v, ',' ORDER BY k), '') FROM ins WHERE $where");
}

# Every heap row is in every index (and the other way round), and the scans
# agree: a row written and deleted again must leave nothing that counts.
sub indexes_consistent
{
	my ($what) = @_;
	my $out = $ams->safe_psql('postgres', q{
		SELECT bt_index_check('ins_pkey', true), bt_index_check('ins_u_key', true);
		SET enable_seqscan = off; SET enable_bitmapscan = off;
		SELECT (SELECT count(*) FROM ins WHERE k > 0)
		    || '/' || (SELECT count(*) FROM ins WHERE u > 0);
		RESET enable_seqscan; RESET enable_bitmapscan;
		SELECT count(*) FROM ins;
	});
	my @l = grep { $_ ne '' && $_ ne '|' } split /\n/, $out;
	my $n = $l[-1];
	is($l[-2], "$n/$n", "$what: amcheck passes and both index scans find the table's $n rows");
	return;
}

sub conflict_list
{
	return join(',', map { "$_->{key}:$_->{kind}:$_->{resolution}" } conflicts_of($ams, 'ins'));
}

# 1. Keys free: single-row inserts, and a short transaction of three.
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (1, 1, 'sjc')");
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (2, 2, 'sjc')");
$sjc->safe_psql('postgres', "BEGIN; INSERT INTO ins VALUES (3, 3, 'sjc'), (4, 4, 'sjc'), (5, 5, 'sjc'); COMMIT");
caught_up();
is(rows_on_ams('k <= 5'), '1:1:sjc,2:2:sjc,3:3:sjc,4:4:sjc,5:5:sjc', 'free keys: all five rows arrive');
is(conflict_list(), '', 'free keys: no conflict');

# 2. A key held by a committed local row: sjc's insert is newer and replaces
#    it; a local row identical to the remote one is no conflict at all.
$ams->safe_psql('postgres', "INSERT INTO ins VALUES (10, 10, 'ams')");
$ams->safe_psql('postgres', "INSERT INTO ins VALUES (11, 11, 'same')");
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (10, 10, 'sjc')");
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (11, 11, 'same')");
caught_up();
is(rows_on_ams('k IN (10, 11)'), '10:10:sjc,11:11:same', 'committed local key: the newer remote row wins');
is(conflict_list(), '(10):insert_exists:apply_remote',
	'committed local key: one insert_exists (apply_remote), none for the identical row');
indexes_consistent('committed local key');

# 3. A key held by an open local transaction: the worker waits for it.
my $session = open_session($ams);
sub worker_waits
{
	return $ams->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		   WHERE a.backend_type = 'gsb apply worker' AND NOT l.granted});
}

# 3a. ... and rolls back: sjc's row goes in, no conflict.
my ($out, $err) = $session->run("BEGIN; INSERT INTO ins VALUES (20, 20, 'ams open')");
is($err, '', 'ams: a local transaction inserts key 20 and stays open');
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (20, 20, 'sjc')");
ok(worker_waits(), 'ams: the apply worker waits for the open transaction holding key 20');
is(rows_on_ams('k = 20'), '', 'ams: nothing of key 20 is visible while it waits');
($out, $err) = $session->run('ROLLBACK');
is($err, '', 'ams: the local transaction rolls back');
caught_up();
is(rows_on_ams('k = 20'), '20:20:sjc', 'rolled-back local key: sjc\'s row arrives');
is(conflict_list(), '(10):insert_exists:apply_remote', 'rolled-back local key: no new conflict');

# 3b. ... and commits after sjc's insert: the local row is newer and stays.
($out, $err) = $session->run("BEGIN; INSERT INTO ins VALUES (21, 21, 'ams later')");
is($err, '', 'ams: a local transaction inserts key 21 and stays open');
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (21, 21, 'sjc')");
ok(worker_waits(), 'ams: the apply worker waits for the open transaction holding key 21');
($out, $err) = $session->run('COMMIT');
is($err, '', 'ams: the local transaction commits');
caught_up();
is(rows_on_ams('k = 21'), '21:21:ams later', 'later local commit: the local row is kept');
is(conflict_list(), '(10):insert_exists:apply_remote,(21):insert_exists:keep_local',
	'later local commit: one insert_exists (keep_local)');

# 3c. A free key, but the value of the other unique column is held by an open
#     local transaction: the worker waits for it, and inserts after its
#     rollback.
($out, $err) = $session->run("BEGIN; INSERT INTO ins VALUES (122, 22, 'ams open')");
is($err, '', 'ams: a local transaction inserts u = 22 and stays open');
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (22, 22, 'sjc')");
ok(worker_waits(), 'ams: the apply worker waits for the open transaction holding u = 22');
($out, $err) = $session->run('ROLLBACK');
is($err, '', 'ams: the local transaction rolls back');
$session->close;
caught_up();
is(rows_on_ams('k IN (22, 122)'), '22:22:sjc', 'value held by a rolled-back transaction: sjc\'s row arrives');
indexes_consistent('open local transactions');

# 4. A batch of ten with three keys taken locally: the multi-insert meets a
#    taken key, and the batch goes row by row.
$ams->safe_psql('postgres', "INSERT INTO ins VALUES (32, 32, 'ams'), (35, 35, 'ams'), (39, 39, 'ams')");
$sjc->safe_psql('postgres', "INSERT INTO ins SELECT g, g, 'sjc' FROM generate_series(30, 39) g");
caught_up();
is(rows_on_ams('k BETWEEN 30 AND 39'),
	join(',', map { "$_:$_:sjc" } 30 .. 39), 'batch with taken keys: all ten of sjc\'s rows');
is(conflict_list(),
	'(10):insert_exists:apply_remote,(21):insert_exists:keep_local,'
	  . '(32):insert_exists:apply_remote,(35):insert_exists:apply_remote,(39):insert_exists:apply_remote',
	'batch with taken keys: one insert_exists per taken key');
indexes_consistent('batch with taken keys');

# 5. A free key but a taken value of another unique index: an error (the
#    partial check is for the key index only), retried until the local row
#    that holds the value goes; then the row arrives, once.
$ams->safe_psql('postgres', "INSERT INTO ins VALUES (40, 4100, 'ams')");
$sjc->safe_psql('postgres', "INSERT INTO ins VALUES (41, 4100, 'sjc')");
ok( $ams->poll_query_until('postgres',
		q{SELECT last_error LIKE '%ins_u_key%' FROM gsb.status WHERE peer = 'sjc'}),
	'other unique index: the worker reports the violation of ins_u_key');
is(rows_on_ams('k = 41'), '', 'other unique index: the row is not applied');
$ams->safe_psql('postgres', 'DELETE FROM ins WHERE k = 40');
caught_up();
is(rows_on_ams('k IN (40, 41)'), '41:4100:sjc', 'other unique index: the row arrives once the value is free');
indexes_consistent('other unique index');
# The error is cleared once the worker has reported progress past the
# transaction that failed, which may come a moment after the row is visible.
ok( $ams->poll_query_until('postgres',
		q{SELECT coalesce(last_error, '') = '' FROM gsb.status WHERE peer = 'sjc'}),
	'ams: no apply error left')
  or diag('last_error: ' . status_row($ams, 'sjc')->{last_error});

# Expected: sjc's rows, but 21 as ams committed it.
my $digest = q{SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, E'\n' ORDER BY k)) FROM ins t};
is( $ams->safe_psql('postgres', $digest),
	$sjc->safe_psql('postgres',
		"SELECT count(*) || ' rows, md5 ' || md5(string_agg(CASE WHEN k = 21 THEN ROW(21, 21, 'ams later')::ins ELSE t END::text, E'\\n' ORDER BY k)) FROM ins t"
	),
	'ams holds sjc\'s rows, with its own later row 21');

check_logs($sjc, $ams);
done_testing();
