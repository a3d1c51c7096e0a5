# 010_key_runs.pl: runs of updates and deletes found by key.
#
# The apply worker keeps one index scan open for a run of updates or deletes
# on a table; with a one-column ascending key it goes on from the row it found
# to the next key instead of searching the index again, and searches afresh
# whenever going on does not find the row. This test gives it every shape of
# run and checks that the result is what row-by-row lookups give: ascending
# ranges, sparse ascending keys, descending and shuffled keys, rows missing
# locally (alone and in stretches longer than the scan passes over), a row
# locked by a local transaction in the middle of a run, text keys, a
# two-column key and a descending replica identity index (the last two are
# always searched afresh).
#
# sjc writes; ams applies (one way: ams's own changes make the gaps, and must
# not travel back). Each table ends on ams as sjc has it, minus the rows ams
# deleted itself, with one delete_missing or update_missing conflict for each
# remote change that found no row.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites qw(open_session);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');

# Every table has the logical key k (a number) that the SQL below uses; the
# index the worker searches differs.
my %tables = (
	k_int => q{CREATE TABLE k_int (k bigint PRIMARY KEY, v text NOT NULL)},
	k_text => q{CREATE TABLE k_text (id text COLLATE "C" PRIMARY KEY, k int NOT NULL, v text NOT NULL)},
	k_two => q{CREATE TABLE k_two (a int, b int, k int NOT NULL, v text NOT NULL, PRIMARY KEY (a, b))},
	k_desc => q{CREATE TABLE k_desc (k int NOT NULL, v text NOT NULL);
CREATE UNIQUE INDEX k_desc_key ON k_desc (k DESC);
ALTER TABLE k_desc REPLICA IDENTITY USING INDEX k_desc_key},
);
my %fill = (
	k_int => q{INSERT INTO k_int SELECT g, 'base' FROM generate_series(1, 3000) g},
	# Zero-padded, so that text order is number order.
	k_text => q{INSERT INTO k_text SELECT lpad(g::text, 6, '0'), g, 'base' FROM generate_series(1, 3000) g},
	k_two => q{INSERT INTO k_two SELECT g / 10, g % 10, g, 'base' FROM generate_series(1, 3000) g},
	k_desc => q{INSERT INTO k_desc SELECT g, 'base' FROM generate_series(1, 3000) g},
);
my @names = sort keys %tables;
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres',
		join(";\n", map { "$tables{$_};\nSELECT gsb.replicate_table('$_')" } @names)
		  . ";\nCREATE TABLE mark (id int PRIMARY KEY);\nSELECT gsb.replicate_table('mark')");
}

# gsb.wait_for_peer also waits for the peer to have this site's changes,
# which it never gets here (one way): instead, a row written on sjc after
# everything else must arrive on ams.
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
$sjc->safe_psql('postgres', join(";\n", map { $fill{$_} } @names));
add_peer($ams, $sjc, copy_data => 1);
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc');
caught_up();
for my $t (@names)
{
	is($ams->safe_psql('postgres', "SELECT count(*) FROM $t"), '3000', "$t: 3000 rows copied to ams");
}

# Rows ams deletes on its own: lone ones and stretches longer than the scan
# passes over (8 rows) inside what sjc then deletes or updates.
my $gaps = 'k IN (100, 101, 102, 700, 2402, 2701) OR k BETWEEN 300 AND 330 OR k BETWEEN 1500 AND 1540';
$ams->safe_psql('postgres', join(";\n", map { "DELETE FROM $_ WHERE $gaps" } @names));

# A row in the middle of a run is locked by a local transaction on ams.
my $session = open_session($ams);
my ($out, $err) = $session->run('BEGIN; SELECT k FROM k_int WHERE k = 2550 FOR UPDATE');
like($out, qr/^2550$/m, 'ams: a local transaction locks row 2550 of k_int');

# sjc's transactions, one per shape, for every table.
my @shapes = (
	[ 'ascending range delete', 'DELETE FROM %s WHERE k BETWEEN 1 AND 1000' ],
	[ 'ascending range update', q{UPDATE %s SET v = 'upd ' || k WHERE k BETWEEN 1001 AND 2000} ],
	[ 'sparse ascending delete (every third key)', 'DELETE FROM %s WHERE k > 2000 AND k <= 2300 AND k %% 3 = 0' ],
	[ 'sparse ascending update (every tenth key)', q{UPDATE %s SET v = 'tenth' WHERE k > 2000 AND k %% 10 = 7} ],
	[ 'shuffled deletes', q{DO $$ DECLARE i int; BEGIN
	    FOREACH i IN ARRAY ARRAY[2401, 2403, 2402, 2410, 2405, 2404, 2499, 2450] LOOP
	        DELETE FROM %1$s WHERE k = i; END LOOP; END $$} ],
	[ 'range delete through a locked row', 'DELETE FROM %s WHERE k BETWEEN 2500 AND 2600' ],
	[ 'descending deletes', q{DO $$ BEGIN
	    FOR i IN REVERSE 2800..2701 LOOP DELETE FROM %1$s WHERE k = i; END LOOP; END $$} ],
	[ 'descending updates', q{DO $$ BEGIN
	    FOR i IN REVERSE 3000..2901 LOOP UPDATE %1$s SET v = 'desc ' || i WHERE k = i; END LOOP; END $$} ],
);
for my $s (@shapes)
{
	my ($what, $sql) = @$s;
	$sjc->safe_psql('postgres', join(";\n", map { sprintf($sql, $_) } @names));
}

# The worker waits for the locked row: nothing after it in that transaction
# may be applied, and the run before it must not be visible either.
my $waiting = $ams->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	   WHERE a.backend_type = 'gsb apply worker' AND NOT l.granted});
ok($waiting, 'ams: the apply worker waits for the locked row');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM k_int WHERE k BETWEEN 2500 AND 2600'),
	'101', 'ams: no row of the locked run is deleted while the lock is held');
($out, $err) = $session->run('COMMIT');
is($err, '', 'ams: the local transaction commits');
$session->close;
caught_up();

# Expected: sjc's rows, minus those ams deleted itself.
for my $t (@names)
{
	my $order = $t eq 'k_text' ? 'id' : $t eq 'k_two' ? 'a, b' : 'k';
	my $digest = "SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, E'\\n' ORDER BY $order)) FROM $t t";
	my $want = $sjc->safe_psql('postgres', "$digest WHERE NOT ($gaps)");
	my $got = $ams->safe_psql('postgres', $digest);
	is($got, $want, "$t: ams holds sjc's rows minus its own deletes ($got)");
	# Remote deletes of rows ams had deleted: 100-102, 300-330, 700 (range),
	# 2402 (shuffled), 2701 (descending) = 37; updates of rows ams had
	# deleted: 1500-1540 (range) = 41.
	my %kinds = map { $_ => 0 } qw(delete_missing update_missing);
	$kinds{ $_->{kind} }++ for conflicts_of($ams, $t);
	is($kinds{delete_missing}, 37, "$t: 37 delete_missing conflicts on ams");
	is($kinds{update_missing}, 41, "$t: 41 update_missing conflicts on ams");
}
is(status_row($ams, 'sjc')->{last_error}, '', 'ams: no apply error left');

# Replication goes on.
$sjc->safe_psql('postgres', "INSERT INTO k_int VALUES (5000, 'after')");
caught_up();
is($ams->safe_psql('postgres', 'SELECT v FROM k_int WHERE k = 5000'), 'after', 'ams: a later insert arrives');

check_logs($sjc, $ams);
done_testing();
