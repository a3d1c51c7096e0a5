# 302_big_txn_crash.pl: the sending side dies in the middle of a big
# transaction; the transaction arrives exactly once, whole.
#
# Scenario 1: sjc commits one transaction of 500,000 rows. Once ams is
# applying it (its copy of the table grows, nothing of it is committed yet),
# sjc is crashed (stop 'immediate') and restarted. ams must end with all
# 500,000 rows exactly once: not a half, not twice.
# Scenario 2: sjc commits one transaction of 1,000,000 rows; mid-stream, sjc's
# walsender serving ams (slot gsb_ams) is terminated. ams reconnects and
# applies the transaction exactly once.
# In both, a committed row written on ams meanwhile reaches sjc, and
# gsb.verify() says match at the end.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');
my $schema = q{
CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE small (id int PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('big');
SELECT gsb.replicate_table('small');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

# Waits until ams is applying a transaction into big that it has not yet
# committed: its copy of big grows past $bytes while no new row is visible.
# Returns true if it saw that state.
sub wait_mid_stream
{
	my ($visible, $bytes) = @_;
	return wait_until($ams,
		"SELECT pg_relation_size('big') > $bytes AND (SELECT count(*) FROM big) = $visible", 120);
}

########################################################################
# Scenario 1: the sender crashes mid-transaction.
########################################################################
my $n1 = 500_000;
my $before = $ams->safe_psql('postgres', 'SELECT pg_relation_size(\'big\')');
my $recv0 = $ams->safe_psql('postgres', "SELECT coalesce(received_lsn, '0/0') FROM gsb.status WHERE peer = 'sjc'");
$sjc->safe_psql('postgres',
	"INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $n1) g");
my $sjc_digest = table_digest($sjc, 'big');

ok(wait_mid_stream(0, $before + 4 * 1024 * 1024),
	'scenario 1: ams is applying the 500k-row transaction (its table grows, no row visible yet)');
my $recv1 = $ams->safe_psql('postgres', "SELECT coalesce(received_lsn, '0/0') FROM gsb.status WHERE peer = 'sjc'");
note("ams: received_lsn $recv0 before the transaction, $recv1 when sjc is crashed");
my $size_at_crash = $ams->safe_psql('postgres', "SELECT pg_size_pretty(pg_relation_size('big'))");
$sjc->stop('immediate');
$GsbFaults::FIGURES{faults}++;
is($ams->safe_psql('postgres', 'SELECT count(*) FROM big'), '0',
	"scenario 1: sjc crashed before ams committed the transaction (ams's table was $size_at_crash)");
# While sjc is down, ams's worker notices and writes on.
$ams->safe_psql('postgres', "INSERT INTO small VALUES (1, 'written on ams while sjc was down')");
$sjc->start;

ok(wait_state($ams, 'sjc', 'streaming'), 'scenario 1: ams streams from sjc again');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM big'), "$n1",
	"scenario 1: all $n1 rows arrived");
is(table_digest($ams, 'big'), $sjc_digest, 'scenario 1: the transaction arrived whole and once (digest equal)');
exactly_once($sjc, $ams, 'big');
exactly_once($sjc, $ams, 'small');

########################################################################
# Scenario 2: the sender's walsender is killed mid-transaction.
########################################################################
# Large enough that the kill lands mid-transaction: since protocol 2 the
# stream outruns the apply, and 300k rows were once applied and committed
# between the check below and the kill.
my $n2 = 1_000_000;
$before = $ams->safe_psql('postgres', 'SELECT pg_relation_size(\'big\')');
$sjc->safe_psql('postgres',
	"INSERT INTO big SELECT g, md5(g::text) FROM generate_series($n1 + 1, $n1 + $n2) g");
ok(wait_mid_stream($n1, $before + 2 * 1024 * 1024),
	'scenario 2: ams is applying the 1M-row transaction');
my $ws = $sjc->safe_psql('postgres',
	"SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'gsb_ams'");
like($ws, qr/^\d+$/, "scenario 2: sjc's walsender for ams has pid $ws");
is($sjc->safe_psql('postgres', "SELECT pg_terminate_backend($ws)"), 't',
	"scenario 2: sjc's walsender for ams terminated");
$GsbFaults::FIGURES{faults}++;
is($ams->safe_psql('postgres', 'SELECT count(*) FROM big'), "$n1",
	'scenario 2: the walsender died before ams committed the transaction');
$ams->safe_psql('postgres', "INSERT INTO small VALUES (2, 'written on ams after the walsender died')");
ok( $sjc->poll_query_until('postgres',
		"SELECT active_pid IS NOT NULL AND active_pid <> $ws FROM pg_replication_slots WHERE slot_name = 'gsb_ams'"),
	'scenario 2: ams reconnects (a new walsender holds slot gsb_ams)');
ok(wait_state($ams, 'sjc', 'streaming'), 'scenario 2: ams streams from sjc again');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM big'), $n1 + $n2,
	'scenario 2: every row arrived');
exactly_once($sjc, $ams, 'big');
exactly_once($sjc, $ams, 'small');

verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(2);
done_testing();
