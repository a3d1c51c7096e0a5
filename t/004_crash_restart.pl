# 004_crash_restart.pl: no change lost and none applied twice across crashes.
#
# First the backup crashes right after its initial sync. Then 20,000
# single-row transactions on the primary (pgbench, two clients). In the
# middle the backup is stopped with 'immediate' (a crash of the applying side)
# and restarted; then the primary is stopped with 'immediate' (a crash of the
# sending side, and of its own apply worker, which is busy with the backup's
# writes at the time) and restarted. At the end both sites hold every committed
# row exactly once, no change was applied twice (which would show as an
# insert_exists conflict), and gsb.verify() says match for every table.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
# For phase 0, ams's WAL writer is slow: an asynchronous commit stays in WAL
# buffers for seconds, as it may after any commit on a busy server, so that a
# crash can lose it. What gsb needs to survive a crash it must flush itself.
my $ams = new_site('ams', 'backup', extra_conf => "log_statement = none\nwal_writer_delay = '10s'");

my $schema = q{
CREATE TABLE load_p (id bigserial PRIMARY KEY, v text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE load_b (id bigserial PRIMARY KEY, v text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE early (id int PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('load_p');
SELECT gsb.replicate_table('load_b');
SELECT gsb.replicate_table('early');
};
$sjc->safe_psql('postgres', $schema);
$ams->safe_psql('postgres', $schema);

########################################################################
# Phase 0: the backup crashes right after its initial sync. Its restart must
# go on from where the sync ended, not copy again: a second copy would
# overwrite what the backup changed since with the primary's older rows.
########################################################################
$sjc->safe_psql('postgres', "INSERT INTO early VALUES (1, 'copied from sjc')");
connect_sites($sjc, $ams);
$ams->stop('immediate');
$sjc->stop('fast');    # so that ams's next change cannot meet a newer one
$ams->start;
is($ams->safe_psql('postgres', 'SELECT v FROM early WHERE id = 1'), 'copied from sjc',
	'phase 0: the rows of the initial sync survive a crash of ams right after it');
$ams->safe_psql('postgres', "UPDATE early SET v = 'changed on ams later' WHERE id = 1");
$sjc->start;
ok(wait_state($ams, 'sjc', 'streaming'), 'phase 0: ams streams from sjc after its crash');
ok(wait_state($sjc, 'ams', 'streaming'), 'phase 0: sjc streams from ams');
wait_synced($sjc, $ams);
for my $node ($sjc, $ams)
{
	is($node->safe_psql('postgres', 'SELECT v FROM early WHERE id = 1'), 'changed on ams later',
		site_name($node) . ': phase 0: the change made on ams after its crash stands (no second initial sync)');
}
$ams->safe_psql('postgres', "ALTER SYSTEM SET wal_writer_delay = '200ms'; SELECT pg_reload_conf();");

my $dir = PostgreSQL::Test::Utils::tempdir;
my %script;
for my $t (qw(load_p load_b))
{
	$script{$t} = "$dir/$t.sql";
	PostgreSQL::Test::Utils::append_to_file($script{$t},
		"INSERT INTO $t (v) VALUES (md5(random()::text));\n");
}

# pgbench in the background: $clients clients, $tx transactions in all, at
# most $rate a second (so that the crashes below land mid-stream).
sub start_pgbench
{
	my ($node, $table, $clients, $tx, $rate) = @_;
	my ($out, $err) = ('', '');
	my @cmd = (
		'pgbench', '-n', '-f', $script{$table}, '-c', $clients, '-j', 1,
		'-t', int($tx / $clients), '-R', $rate, $node->connstr('postgres'));
	my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return { h => $h, out => \$out, err => \$err };
}

# Waits for a pgbench to end; returns (exit code, stderr).
sub finish_pgbench
{
	my ($pb) = @_;
	eval { $pb->{h}->finish };
	my $rc = $@ ? -1 : $pb->{h}->result(0);
	return ($rc, ${ $pb->{err} } . ($@ // ''));
}

sub count_of
{
	my ($node, $table) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM $table");
}

########################################################################
# Phase 1: the backup crashes while it applies the primary's stream.
########################################################################
my $pb = start_pgbench($sjc, 'load_p', 2, 10000, 1500);
ok($sjc->poll_query_until('postgres', 'SELECT count(*) >= 3000 FROM load_p'),
	'phase 1: 3000 rows written on sjc');
my $ams_had = count_of($ams, 'load_p');
note("ams had $ams_had rows of load_p when it was stopped");
$ams->stop('immediate');
ok($sjc->poll_query_until('postgres', 'SELECT count(*) >= 5000 FROM load_p'),
	'phase 1: sjc writes on while ams is down');
$ams->start;
my ($rc, $err) = finish_pgbench($pb);
is($rc, 0, 'phase 1: pgbench on sjc committed all 10000 transactions') or diag($err);
is(count_of($sjc, 'load_p'), '10000', 'phase 1: 10000 rows on sjc');
wait_synced($sjc, $ams);
is(count_of($ams, 'load_p'), '10000', 'phase 1: all 10000 rows on ams after its crash');

########################################################################
# Phase 2: the primary crashes while it sends, and while it applies the
# backup's writes.
########################################################################
my $pb_b = start_pgbench($ams, 'load_b', 1, 2000, 300);
$pb = start_pgbench($sjc, 'load_p', 2, 10000, 1500);
ok( $sjc->poll_query_until('postgres',
		'SELECT (SELECT count(*) FROM load_p) >= 13000 AND (SELECT count(*) FROM load_b) > 100'),
	'phase 2: 13000 rows on sjc, and some of ams\'s rows applied there');
$sjc->stop('immediate');
($rc, $err) = finish_pgbench($pb);
isnt($rc, 0, 'phase 2: pgbench on sjc lost its server mid-run');
$sjc->start;

# Bring the primary's total to exactly 20,000 committed transactions.
my $committed = count_of($sjc, 'load_p');
note("sjc had committed $committed rows when it crashed");
cmp_ok($committed, '<', 20000, 'phase 2: the crash came before the end of the run');
$pb = start_pgbench($sjc, 'load_p', 1, 20000 - $committed, 2000);
($rc, $err) = finish_pgbench($pb);
is($rc, 0, 'phase 3: pgbench on sjc after its restart') or diag($err);
($rc, $err) = finish_pgbench($pb_b);
is($rc, 0, 'phase 2: pgbench on ams committed all its transactions') or diag($err);

ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: streaming from ams again');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc again');
wait_synced($sjc, $ams);

########################################################################
# Every row exactly once, on both sites.
########################################################################
is(count_of($sjc, 'load_p'), '20000', 'sjc: 20000 rows of load_p');
is(count_of($sjc, 'load_b'), '2000', 'sjc: 2000 rows of load_b');
for my $t (qw(load_p load_b))
{
	my $d = table_digest($sjc, $t);
	is(table_digest($ams, $t), $d, "$t: identical on both sites ($d)");
}
for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	is( $node->safe_psql('postgres',
			'SELECT count(*) = count(DISTINCT id) AND count(*) = 20000 FROM load_p'),
		't', "$name: load_p has each of 20000 ids once");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.conflicts'), '0',
		"$name: no conflict: no change was applied twice after the crashes");
	my $verify = $node->safe_psql('postgres',
		"SELECT string_agg(relation::text || ' ' || status, ', ' ORDER BY relation::text) FROM gsb.verify()");
	unlike($verify, qr/differs/, "$name: gsb.verify() finds no difference ($verify)");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE status = 'match') || '/' || count(*) FROM gsb.verify() WHERE relation IN ('load_p'::regclass, 'load_b'::regclass)"),
		'2/2', "$name: gsb.verify() says match for load_p and load_b");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM gsb.verify() WHERE local_rows = peer_rows AND local_hash = peer_hash AND status = 'match'"),
		$node->safe_psql('postgres',
			"SELECT count(*) FROM gsb.replicated_tables WHERE mode = 'realtime'"),
		"$name: gsb.verify() says match for all realtime tables");
}

# Replication is healthy after all that.
$sjc->safe_psql('postgres', "INSERT INTO load_b (id, v) VALUES (-1, 'after')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM load_b WHERE id = -1'), 'after',
	'a new row still replicates');

check_logs($sjc, $ams);
done_testing();
