# 012_changed_meanwhile.pl: a row changed locally between the worker finding
# it and changing it.
#
# In a table without triggers or stored generated columns the apply worker
# updates and deletes the row version it found without locking it first;
# table_tuple_update/table_tuple_delete then report a row that a local
# transaction changed in between, and the worker looks it up and decides
# again. The window is a few microseconds, so this test widens it with the
# fault point apply_pause_after_find (a 3 s pause after the row is found) and
# changes the row locally during the pause:
#   - sjc deletes, ams updates meanwhile: the delete is applied (a delete wins
#     over a concurrent update), recorded once as delete_differs;
#   - sjc updates, ams updates meanwhile (later): ams's row is newer and is
#     kept, recorded once as update_differs/keep_local;
#   - sjc updates, ams deletes meanwhile: nothing to update, recorded once as
#     update_missing;
#   - sjc deletes, ams deletes meanwhile: recorded once as delete_missing.
# The same with a table that has a trigger (its rows are locked first, as
# PostgreSQL's apply does): the local update waits for the worker instead.
# Each case ends with the row as the conflict rules say and exactly one
# conflict record.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites qw(log_offset);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');

for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
		CREATE TABLE plain (k int PRIMARY KEY, v text NOT NULL);
		CREATE TABLE trig (k int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
		CREATE FUNCTION trig_count() RETURNS trigger LANGUAGE plpgsql AS
		  $$ BEGIN NEW.n := OLD.n + 1; RETURN NEW; END $$;
		CREATE TRIGGER trig_count BEFORE UPDATE ON trig FOR EACH ROW EXECUTE FUNCTION trig_count();
		ALTER TABLE trig ENABLE ALWAYS TRIGGER trig_count;
		CREATE TABLE mark (id int PRIMARY KEY);
		SELECT gsb.replicate_table('plain');
		SELECT gsb.replicate_table('trig');
		SELECT gsb.replicate_table('mark');
	});
}
$sjc->safe_psql('postgres', q{
	INSERT INTO plain SELECT g, 'base' FROM generate_series(1, 10) g;
	INSERT INTO trig SELECT g, 'base' FROM generate_series(1, 10) g;
});
add_peer($ams, $sjc, copy_data => 1);
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc');

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
caught_up();
is($ams->safe_psql('postgres', 'SELECT count(*) FROM plain') . '/' . $ams->safe_psql('postgres', 'SELECT count(*) FROM trig'),
	'10/10', 'ams: base rows copied');

sub set_fault
{
	my ($value) = @_;
	$ams->safe_psql('postgres', "ALTER SYSTEM SET gsb.fault_injection = '$value'; SELECT pg_reload_conf()");
	# The worker rereads its configuration when the signal wakes it.
	sleep(1);
	return;
}

sub conflicts_for
{
	my ($table, $k) = @_;
	return join(',', map { "$_->{kind}:$_->{resolution}" }
		  grep { $_->{key} eq "($k)" } conflicts_of($ams, $table));
}

# One case: sjc's statement, then ams's while the worker pauses after
# finding the row; returns what ams's statement printed.
sub meanwhile
{
	my ($what, $table, $sjc_sql, $ams_sql) = @_;
	my $offset = log_offset($ams);
	$sjc->safe_psql('postgres', $sjc_sql);
	ok($ams->wait_for_log(qr/fault apply_pause_after_find: pausing/, $offset),
		"$what: the worker found the row and pauses");
	my $t0 = time;
	$ams->safe_psql('postgres', $ams_sql);
	my $took = time - $t0;
	caught_up();
	return ($offset, $took);
}

set_fault('apply_pause_after_find');

my ($offset, $took);

($offset, $took) = meanwhile('delete vs local update', 'plain',
	'DELETE FROM plain WHERE k = 1', "UPDATE plain SET v = 'ams' WHERE k = 1");
ok($took < 3, 'delete vs local update: the local update did not wait for the worker');
like(slurp_file($ams->logfile, $offset), qr/row in table "plain" concurrently updated, looking it up again/,
	'delete vs local update: the worker saw the change and looked the row up again');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM plain WHERE k = 1'), '0', 'delete vs local update: the row is deleted');
is(conflicts_for('plain', 1), 'delete_differs:apply_remote', 'delete vs local update: one delete_differs');

($offset, $took) = meanwhile('update vs later local update', 'plain',
	"UPDATE plain SET v = 'sjc' WHERE k = 2", "UPDATE plain SET v = 'ams' WHERE k = 2");
like(slurp_file($ams->logfile, $offset), qr/row in table "plain" concurrently updated, looking it up again/,
	'update vs later local update: the worker looked the row up again');
is($ams->safe_psql('postgres', 'SELECT v FROM plain WHERE k = 2'), 'ams', 'update vs later local update: the newer local row is kept');
is(conflicts_for('plain', 2), 'update_differs:keep_local', 'update vs later local update: one update_differs (keep_local)');

($offset, $took) = meanwhile('update vs local delete', 'plain',
	"UPDATE plain SET v = 'sjc' WHERE k = 3", 'DELETE FROM plain WHERE k = 3');
like(slurp_file($ams->logfile, $offset), qr/row in table "plain" concurrently deleted, looking it up again/,
	'update vs local delete: the worker looked the row up again');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM plain WHERE k = 3'), '0', 'update vs local delete: the row stays deleted');
is(conflicts_for('plain', 3), 'update_missing:skip', 'update vs local delete: one update_missing');

($offset, $took) = meanwhile('delete vs local delete', 'plain',
	'DELETE FROM plain WHERE k = 4', 'DELETE FROM plain WHERE k = 4');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM plain WHERE k = 4'), '0', 'delete vs local delete: the row is gone');
is(conflicts_for('plain', 4), 'delete_missing:skip', 'delete vs local delete: one delete_missing');

# A table with a trigger: the worker locks the row before its pause, so the
# local update waits for the worker's transaction, and then updates the row
# as sjc left it.
($offset, $took) = meanwhile('trigger table: update vs local update', 'trig',
	"UPDATE trig SET v = 'sjc' WHERE k = 5", "UPDATE trig SET v = v || ' then ams' WHERE k = 5");
ok($took >= 1, sprintf("trigger table: the local update waited for the worker's lock (%.1f s)", $took));
is($ams->safe_psql('postgres', 'SELECT v || \':\' || n FROM trig WHERE k = 5'), 'sjc then ams:2',
	'trigger table: the local update applies on top of the replicated one, the trigger ran for both');
is(conflicts_for('trig', 5), '', 'trigger table: no conflict (the local change came after)');

set_fault('');
# Untouched rows are as sjc has them.
is($ams->safe_psql('postgres', "SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM plain WHERE k > 4"),
	$sjc->safe_psql('postgres', "SELECT string_agg(k || ':' || v, ',' ORDER BY k) FROM plain WHERE k > 4"),
	'plain: the other rows are as on sjc');
$sjc->safe_psql('postgres', "UPDATE plain SET v = 'after' WHERE k = 6");
caught_up();
is($ams->safe_psql('postgres', 'SELECT v FROM plain WHERE k = 6'), 'after', 'ams: a later update arrives');
is(status_row($ams, 'sjc')->{last_error}, '', 'ams: no apply error');

check_logs($sjc, $ams);
done_testing();
