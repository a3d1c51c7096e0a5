# 308_idle_database.pl: an idle replicated database while other databases on
# the same cluster are busy. Nothing of the busy database is replicated, yet
# the slot that the peer reads from must keep advancing (gsb confirms what it
# received even when no transaction of its own came), so WAL does not pile up.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');
connect_sites($sjc, $ams);
wait_synced($sjc, $ams);

$sjc->safe_psql('postgres', 'CREATE DATABASE busy');
$sjc->safe_psql('busy', 'CREATE TABLE churn (id bigint, pad text)');
my $start = $sjc->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
# About 200 MB of WAL in another database, in many transactions, with
# checkpoints so that old segments could be recycled if nothing held them.
for my $round (1 .. 10)
{
	$sjc->safe_psql('busy',
		"INSERT INTO churn SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g; "
		  . "DELETE FROM churn;");
	$sjc->safe_psql('postgres', 'CHECKPOINT');
}
my $end = $sjc->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
my $written = $sjc->safe_psql('postgres', "SELECT pg_wal_lsn_diff('$end', '$start')");
cmp_ok($written, '>', 100 * 1024 * 1024, "the busy database wrote $written bytes of WAL");

# The slot of ams on sjc follows the WAL end although nothing was sent.
ok( $sjc->poll_query_until('postgres', qq{
	SELECT confirmed_flush_lsn >= '$end' FROM pg_replication_slots WHERE slot_name = 'gsb_ams'}),
	"the slot's confirmed position passed the busy database's WAL");
$sjc->safe_psql('postgres', 'CHECKPOINT');
my $held = $sjc->safe_psql('postgres', qq{
	SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots
	 WHERE slot_name = 'gsb_ams'});
cmp_ok($held, '<', 64 * 1024 * 1024, "the slot holds back only $held bytes of WAL, not the ~$written written");
ok($sjc->poll_query_until('postgres', qq{
	SELECT count(*) <= 8 FROM pg_ls_waldir()}),
	'old WAL segments were removed (at most 8 left)');

# And replication still works.
$sjc->safe_psql('postgres', q{SELECT gsb.create_account('after@example.com', 'after the churn')});
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', q{SELECT count(*) FROM gsb.accounts WHERE email = 'after@example.com'}),
	'1', 'a row written afterwards arrives');

check_logs($sjc, $ams);
done_testing();
