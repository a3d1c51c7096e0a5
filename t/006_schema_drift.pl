# 006_schema_drift.pl: a replicated table that differs on the peer.
#
# gsb does not replicate DDL, so a table can drift: on the backup a column is
# missing, a column has another type, or the table is gone. A change to it on
# the primary must then stop at the backup with an error that names the table
# and the column (in gsb.status.last_error and in the server log), lose
# nothing, and go through by itself once an operator fixes the table, with the
# changes queued behind it. Meanwhile the other direction keeps working.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE TABLE ghost (id int PRIMARY KEY, v text);
CREATE TABLE other (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('ghost');
SELECT gsb.replicate_table('other');});
}
connect_sites($sjc, $ams);
$sjc->safe_psql('postgres', "INSERT INTO ghost VALUES (0, 'before')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM ghost'), '1', 'ams: rows arrive while the tables are alike');

# Dropping a column is not dropping the table: it stays registered.
# (replicate_table compares the table with the peer's: sjc has it too.)
$sjc->safe_psql('postgres', 'CREATE TABLE keep (id int PRIMARY KEY, a text, b int)');
$ams->safe_psql('postgres', q{
CREATE TABLE keep (id int PRIMARY KEY, a text, b int);
SELECT gsb.replicate_table('keep');
ALTER TABLE keep DROP COLUMN b;});
is($ams->safe_psql('postgres', "SELECT count(*) FROM gsb.replicated_tables WHERE relation = 'keep'::regclass"),
	'1', 'ALTER TABLE ... DROP COLUMN leaves the table registered with gsb');

# Tables that drift: created alike on each site after the pairing and
# registered on both (add_peer and replicate_table refuse tables that
# differ), then changed on ams by plain DDL, which gsb does not see.
$sjc->safe_psql('postgres', q{
CREATE TABLE drift (id int PRIMARY KEY, a text, extra_col int);
CREATE TABLE pricing (id int PRIMARY KEY, amount_txt text);});
# On ams, column a comes after a dropped column: another attnum than on sjc.
$ams->safe_psql('postgres', q{
CREATE TABLE drift (id int PRIMARY KEY, tmp int, a text, extra_col int);
ALTER TABLE drift DROP COLUMN tmp;
CREATE TABLE pricing (id int PRIMARY KEY, amount_txt text);
SELECT gsb.replicate_table('drift');
SELECT gsb.replicate_table('pricing');});
$sjc->safe_psql('postgres', q{
SELECT gsb.replicate_table('drift');
SELECT gsb.replicate_table('pricing');});
$ams->safe_psql('postgres', q{
ALTER TABLE drift DROP COLUMN extra_col;
ALTER TABLE pricing ALTER amount_txt TYPE int USING amount_txt::int;});

# When the stream from sjc stays stuck, every later step would only wait for
# it again: end the test there.
sub stop_if_stuck
{
	my ($ok, $what) = @_;
	return if $ok;
	diag("$what: the stream from sjc is stuck; the rest of this test cannot run");
	diag('gsb.status on ams: ' . $ams->safe_psql('postgres', 'SELECT s::text FROM gsb.status s'));
	check_logs($sjc, $ams);
	done_testing();
	exit;
}

# Waits until the apply worker on ams reports an error naming all of @words
# in gsb.status.last_error, and until its server log (from $offset) holds an
# ERROR (or WARNING) whose message, detail or context names them too.
sub expect_apply_error
{
	my ($what, $offset, @words) = @_;
	my $cond = join(' AND ', map { 'last_error ~* ' . sql_quote("\\m$_\\M") } @words);
	ok($ams->poll_query_until('postgres', "SELECT $cond FROM gsb.status WHERE peer = 'sjc'"),
		"$what: gsb.status.last_error on ams names " . join(' and ', @words))
	  or diag('gsb.status: ' . $ams->safe_psql('postgres', 'SELECT s::text FROM gsb.status s'));
	note('last_error: ' . $ams->safe_psql('postgres', "SELECT last_error FROM gsb.status WHERE peer = 'sjc'"));
	note('state: ' . $ams->safe_psql('postgres', "SELECT state FROM gsb.status WHERE peer = 'sjc'"));
	my @hits = grep {
		my $g = $_;
		!grep { $g !~ /\b\Q$_\E\b/ } @words
	} error_groups($ams, $offset);
	ok(scalar @hits, "$what: the server log of ams has the error, naming " . join(' and ', @words))
	  or diag("errors logged:\n" . join("\n", error_groups($ams, $offset)));
	return;
}

########################################################################
# A column missing on the backup.
########################################################################
my $offset = 0;
$sjc->safe_psql('postgres', "INSERT INTO drift VALUES (1, 'one', 7)");
$sjc->safe_psql('postgres', "INSERT INTO drift VALUES (2, 'two', 8)");
$sjc->safe_psql('postgres', "INSERT INTO other VALUES (1, 'queued behind the error')");
expect_apply_error('missing column', $offset, 'drift', 'extra_col');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM drift'), '0', 'ams: the row was not applied without its column');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM drift'), '2', 'sjc: nothing lost on the primary');

# The other direction is another worker: it goes on.
$ams->safe_psql('postgres', "INSERT INTO other VALUES (-1, 'from ams during the error')");
ok($sjc->poll_query_until('postgres', 'SELECT count(*) = 1 FROM other WHERE id = -1'),
	'sjc: changes from ams still arrive while ams cannot apply sjc\'s');

# The fix: the column (at another attnum than on sjc: gsb maps columns by
# name).
$ams->safe_psql('postgres', 'ALTER TABLE drift ADD COLUMN extra_col int');
my $arrived = $ams->poll_query_until('postgres',
	"SELECT string_agg(id || ':' || a || ':' || extra_col, ',' ORDER BY id) = '1:one:7,2:two:8' FROM drift");
ok($arrived, 'ams: after ALTER TABLE the held-back rows arrive by themselves')
  or diag($ams->safe_psql('postgres', 'SELECT string_agg(d::text, \',\') FROM drift d'));
stop_if_stuck($arrived, 'missing column');
ok($ams->poll_query_until('postgres', "SELECT v = 'queued behind the error' FROM other WHERE id = 1"),
	'ams: and so do the changes queued behind them');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming again');
$sjc->safe_psql('postgres', "INSERT INTO drift VALUES (3, 'three', 9)");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT extra_col FROM drift WHERE id = 3'), '9', 'ams: later rows arrive too');

########################################################################
# A column of another type on the backup.
########################################################################
$offset = -s $ams->logfile;
$sjc->safe_psql('postgres', "INSERT INTO pricing VALUES (1, 'twelve dollars')");
expect_apply_error('column of another type', $offset, 'pricing', 'amount_txt');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM pricing'), '0', 'ams: the row was not applied');
$ams->safe_psql('postgres', 'ALTER TABLE pricing ALTER amount_txt TYPE text');
$arrived = $ams->poll_query_until('postgres', "SELECT amount_txt = 'twelve dollars' FROM pricing WHERE id = 1");
ok($arrived, 'ams: after ALTER TABLE the row arrives by itself');
stop_if_stuck($arrived, 'column of another type');
$sjc->safe_psql('postgres', "INSERT INTO pricing VALUES (2, 'three euros')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM pricing'), '2', 'ams: later rows arrive too');

########################################################################
# The table missing altogether on the backup.
########################################################################
$offset = -s $ams->logfile;
$ams->safe_psql('postgres', 'DROP TABLE ghost');
$sjc->safe_psql('postgres', "INSERT INTO ghost VALUES (1, 'where do I go')");
expect_apply_error('missing table', $offset, 'ghost');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM ghost'), '2', 'sjc: nothing lost on the primary');
$ams->safe_psql('postgres', "CREATE TABLE ghost (id int PRIMARY KEY, v text); SELECT gsb.replicate_table('ghost');");
$arrived = $ams->poll_query_until('postgres', "SELECT v = 'where do I go' FROM ghost WHERE id = 1");
ok($arrived, 'ams: once the table exists again the row arrives by itself');
stop_if_stuck($arrived, 'missing table');
$sjc->safe_psql('postgres', "INSERT INTO ghost VALUES (2, 'later')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM ghost"), '1,2',
	'ams: later rows arrive too');

ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming at the end');
is(table_digest($ams, 'drift'), table_digest($sjc, 'drift'), 'drift identical at the end');
is(table_digest($ams, 'other'), table_digest($sjc, 'other'), 'other identical at the end');

check_logs($sjc, $ams);
done_testing();
