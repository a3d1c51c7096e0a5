# 318_one_supervisor.pl: after any death of the gsb supervisor there is
# exactly one supervisor, one site monitor and one apply worker per peer
# within a few seconds, and replication goes on.
#
# The postmaster starts a supervisor that died again, while the workers that
# the dead one started run on. The new one must not start a second site
# monitor, nor a second apply worker that fails on "replication origin ...
# is already active".
#   1. pg_terminate_backend() of the supervisor.
#   2. The supervisor fails with an error (test hook supervisor_error), and
#      again each time it is started while the hook is on.
#   3. A catalog read of the supervisor fails (gsb.peers locked, with a
#      lock_timeout): the supervisor logs it and goes on, the same process,
#      and still restarts a worker that died afterwards. (RunStatement must
#      leave no transaction open on error.)
#   4. SIGKILL of the supervisor alone: the postmaster restarts everything.
# Processes are counted in pg_stat_activity by backend_type. (Log patterns
# are split in two in SQL, so that the logged text of the query that looks
# for them never matches.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
# SIGKILL of a backend makes the postmaster restart everything (scenario 4).
my $ams = new_site('ams', 'backup', extra_conf => 'restart_after_crash = on');
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams, copy_data => 0);

my $counts = q{SELECT count(*) FILTER (WHERE backend_type = 'gsb supervisor') || '/' ||
	count(*) FILTER (WHERE backend_type = 'gsb site monitor') || '/' ||
	count(*) FILTER (WHERE backend_type = 'gsb apply worker')
	FROM pg_stat_activity};

sub supervisor_pid
{
	my ($node) = @_;
	my ($rc, $out) = try_psql($node,
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gsb supervisor'");
	return $rc == 0 ? $out : '';
}

my $id = 0;

# Waits until ams has exactly one supervisor (not $old_supervisor), one site
# monitor and one apply worker, streaming; then checks that it stays so and
# that a row written on sjc arrives.
sub one_of_each
{
	my ($what, $old_supervisor, $offset) = @_;
	my $start = time();
	my $ok = wait_until($ams,
		"SELECT ($counts) = '1/1/1' AND (SELECT pid FROM pg_stat_activity WHERE backend_type = "
		  . "'gsb supervisor') <> $old_supervisor AND "
		  . "(SELECT state = 'streaming' FROM gsb.status WHERE peer = 'sjc')",
		30);
	my $took = time() - $start;
	ok($ok, sprintf("%s: one supervisor, one monitor, one apply worker after %.1f s", $what, $took))
	  or diag("supervisor/monitor/apply: " . $ams->safe_psql('postgres', $counts));
	# Still so a moment later, and replication goes on.
	$id++;
	$sjc->safe_psql('postgres', "INSERT INTO items VALUES ($id, '$what')");
	wait_synced($sjc, $ams);
	is($ams->safe_psql('postgres', "SELECT v FROM items WHERE id = $id"), $what,
		"$what: a row from sjc arrives");
	is($ams->safe_psql('postgres', $counts), '1/1/1', "$what: still one of each");
	my $log = slurp_file($ams->logfile, $offset);
	unlike($log, qr/is already active|is already acquired/,
		"$what: no worker found its replication origin taken by another");
	return;
}

is($ams->safe_psql('postgres', $counts), '1/1/1', 'at start: one of each');

# 1. Terminated.
my $sup = supervisor_pid($ams);
my $offset = log_offset($ams);
$ams->safe_psql('postgres', "SELECT pg_terminate_backend($sup)");
one_of_each('supervisor terminated', $sup, $offset);

# 2. An error, repeated while the hook is on.
$sup = supervisor_pid($ams);
$offset = log_offset($ams);
set_fault($ams, 'supervisor_error');
ok( wait_until($ams,
		"SELECT count(*) >= 2 FROM regexp_matches(pg_read_file(" . sql_quote($ams->logfile)
		  . "), 'injected fault in the gsb' || ' supervisor', 'g')", 30),
	'supervisor error: the supervisor failed, was started again and failed again');
set_fault($ams, '');
one_of_each('supervisor failed with an error', $sup, $offset);

# 3. A failed catalog read: the same supervisor goes on.
$sup = supervisor_pid($ams);
$offset = log_offset($ams);
$ams->safe_psql('postgres', "ALTER SYSTEM SET lock_timeout = '200ms'; SELECT pg_reload_conf()");
my $locker = start_bg($ams,
	"SET lock_timeout = 0; BEGIN; LOCK gsb.peers IN ACCESS EXCLUSIVE MODE; SELECT 'locked';");
ok( wait_until($ams,
		"SELECT count(*) >= 2 FROM regexp_matches(pg_read_file(" . sql_quote($ams->logfile)
		  . ", $offset, (pg_stat_file(" . sql_quote($ams->logfile) . ")).size - $offset), "
		  . "'gsb supervisor: could not read' || ' gsb.peers', 'g')", 30),
	'catalog read failed: the supervisor says so, round after round');
$locker->query_safe('COMMIT');
finish_bg($locker);
$ams->safe_psql('postgres', "ALTER SYSTEM RESET lock_timeout; SELECT pg_reload_conf()");
is(supervisor_pid($ams), $sup, 'catalog read failed: the supervisor is the same process');
my $apply = apply_pid($ams, 'sjc');
$ams->safe_psql('postgres', "SELECT pg_terminate_backend($apply)") if $apply ne '';
ok(wait_apply_pid($ams, 'sjc', $apply, 30) ne '',
	'catalog read failed: the supervisor still restarts a worker that died');
is(supervisor_pid($ams), $sup, 'catalog read failed: still the same supervisor');
unlike(slurp_file($ams->logfile, $offset), qr/StartTransactionCommand: unexpected state/,
	'catalog read failed: no transaction was left open');
one_of_each('after a failed catalog read', 0, $offset);

# 4. SIGKILL: the postmaster restarts everything.
$sup = supervisor_pid($ams);
$offset = log_offset($ams);
kill 'KILL', $sup;
one_of_each('supervisor killed', $sup, $offset);

exactly_once($sjc, $ams, 'items');
check_logs($sjc);
check_logs_except($ams, { $sup => 9 });
done_testing();
