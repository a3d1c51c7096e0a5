# 331_ddl_fails_on_peer.pl: a replicated DDL command that fails on the peer
# stops that direction with a clear error, is retried, never skipped, and
# goes through once the cause is fixed; the other direction keeps flowing.
#
#   1. Only superusers and gsb_admin members may call gsb.replicate_ddl
#      (42501), and it runs DDL only (22023: row changes travel in the stream).
#   2. alice (gsb_admin on sjc, unknown on ams) creates a table through
#      gsb.replicate_ddl: ams's apply from sjc stops in state error, last_error
#      names the role and the command; rows written on sjc after it wait
#      behind it, rows written on ams keep reaching sjc. Creating the role on
#      ams lets it resume: the table is there, owned by alice, and every row
#      arrives exactly once.
#   3. The new table is registered on each site with gsb.replicate_table and
#      replicates both ways.
#   4. A command that fails on the peer for another reason (an object that
#      exists only there) is retried the same way until it is fixed.
#   5. A receiver that asked for protocol version 1 gets no DDL message: sjc's
#      plugin stops with an error naming both versions, shown in ams's
#      gsb.status; once ams asks for the current version the command runs.
#   6. gsb.ddl_from_peer = admin on ams: a command named for a superuser is an
#      apply error (never skipped); with it back on, it runs and the rows
#      behind it arrive.
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
my $ams = new_site('ams', 'backup');
$_->safe_psql('postgres', q{
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('items');
}) for ($sjc, $ams);
connect_sites($sjc, $ams, copy_data => 0);

# 1. Who may call it, and what.
$_->safe_psql('postgres', q{
CREATE ROLE bob LOGIN;
GRANT CREATE ON SCHEMA public TO bob;
}) for ($sjc, $ams);
my ($rc, $out, $err) = psql_verbose($sjc,
	"SET ROLE bob; SELECT gsb.replicate_ddl('CREATE TABLE bob_t (id int PRIMARY KEY)')");
isnt($rc, 0, 'a role that is neither superuser nor gsb_admin may not call gsb.replicate_ddl');
is(sqlstate_of($err), '42501', 'SQLSTATE 42501');
is($sjc->safe_psql('postgres', "SELECT to_regclass('bob_t') IS NULL"), 't', 'and nothing ran');
($rc, $out, $err) = psql_verbose($sjc,
	"SELECT gsb.replicate_ddl('CREATE INDEX ON items (v); INSERT INTO items VALUES (99, ''x'')')");
isnt($rc, 0, 'a command with a row change in it is refused');
is(sqlstate_of($err), '22023', 'SQLSTATE 22023');
like($err, qr/runs DDL only; statement 2 is INSERT/, 'naming the statement that is not DDL');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM pg_indexes WHERE tablename = \'items\''), '1',
	'and nothing of it ran');

# 2. A role that exists on sjc only.
$sjc->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT gsb_admin TO alice;
GRANT CREATE ON SCHEMA public TO alice;
});
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (1, 'before')");
wait_synced($sjc, $ams);
my $cmd = 'CREATE TABLE alice_t (id bigint PRIMARY KEY, v text NOT NULL)';
($rc, $out, $err) = psql_verbose($sjc, "SET ROLE alice; SELECT gsb.replicate_ddl('$cmd')");
is($rc, 0, 'alice (gsb_admin) creates a table through gsb.replicate_ddl') or diag($err);
is($sjc->safe_psql('postgres', "SELECT tableowner FROM pg_tables WHERE tablename = 'alice_t'"),
	'alice', 'on sjc, as alice');
$sjc->safe_psql('postgres', "INSERT INTO items SELECT g, 'after ddl' FROM generate_series(2, 51) g");
ok($ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'role \"alice\"' AND last_error ~ 'does not exist on this site'"
		  . " AND last_error ~ " . sql_quote(quotemeta($cmd)) . " FROM gsb.status WHERE peer = 'sjc'"),
	'ams: gsb.status shows state error, naming the role and the command');
note('last_error: ' . $ams->safe_psql('postgres', "SELECT last_error FROM gsb.status WHERE peer = 'sjc'"));
ok($ams->poll_query_until('postgres',
		"SELECT count(*) >= 2 FROM regexp_matches(pg_read_file(" . sql_quote($ams->logfile) . "), "
		  . "'apply worker for peer \"sjc\": [^\\n]*role \"alice\"', 'g')"),
	'ams: the worker retried (with backoff)');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items'), '1',
	'ams: nothing committed on sjc after the command was applied');
is($ams->safe_psql('postgres', "SELECT to_regclass('alice_t') IS NULL"), 't', 'nor the table');
$ams->safe_psql('postgres', "INSERT INTO items SELECT g, 'from ams' FROM generate_series(1000, 1019) g");
ok($sjc->poll_query_until('postgres', "SELECT count(*) = 20 FROM items WHERE id >= 1000"),
	'the other direction keeps flowing: ams\'s rows reach sjc');
is($sjc->safe_psql('postgres', "SELECT state FROM gsb.status WHERE peer = 'ams'"), 'streaming',
	'sjc streams from ams');

$ams->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT gsb_admin TO alice;
GRANT CREATE ON SCHEMA public TO alice;
});
ok(wait_state($ams, 'sjc', 'streaming'), 'with the role created on ams, ams streams again');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT tableowner FROM pg_tables WHERE tablename = 'alice_t'"),
	'alice', 'ams: the table is there, created as alice');
exactly_once($sjc, $ams, 'items');
is($ams->safe_psql('postgres', "SELECT coalesce(last_error, '') FROM gsb.status WHERE peer = 'sjc'"),
	'', 'ams: last_error is cleared');
is($ams->safe_psql('postgres', "SELECT role || ' ' || origin FROM gsb.ddl_log"), 'alice sjc',
	'ams: gsb.ddl_log records the command, from sjc, as alice');

# 3. Registering the new table on each site.
$_->safe_psql('postgres', "SELECT gsb.replicate_table('alice_t')") for ($sjc, $ams);
$sjc->safe_psql('postgres', "INSERT INTO alice_t VALUES (1, 'sjc')");
$ams->safe_psql('postgres', "INSERT INTO alice_t VALUES (2, 'ams')");
wait_synced($sjc, $ams);
exactly_once($sjc, $ams, 'alice_t');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM alice_t'), '2', 'alice_t replicates both ways');

# 4. A command that fails on the peer for another reason.
$ams->safe_psql('postgres', 'CREATE TABLE only_on_ams (id int)');
$sjc->safe_psql('postgres', q{SELECT gsb.replicate_ddl('CREATE TABLE only_on_ams (id int PRIMARY KEY, w text)')});
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (200, 'behind the failing command')");
ok($ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'already exists' AND last_error ~ 'CREATE TABLE only_on_ams'"
		  . " FROM gsb.status WHERE peer = 'sjc'"),
	'ams: a command that fails there is an apply error naming it');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 200'), '0',
	'the changes behind it wait');
$ams->safe_psql('postgres', 'DROP TABLE only_on_ams');
ok(wait_state($ams, 'sjc', 'streaming'), 'once the clash is gone, ams streams again');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres',
		"SELECT count(*) FROM pg_attribute WHERE attrelid = 'only_on_ams'::regclass AND attname = 'w'"),
	'1', 'ams: the command ran, not skipped');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 200'), '1', 'and the row behind it arrived');

# 5. A receiver that speaks protocol version 1.
set_fault($ams, 'apply_protocol_1');
my $old = apply_pid($ams, 'sjc');
$ams->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
ok(wait_apply_pid($ams, 'sjc', $old) ne '', 'ams: a new apply worker streams (protocol version 1)');
$sjc->safe_psql('postgres', q{SELECT gsb.replicate_ddl('CREATE INDEX items_v_idx ON items (v)')});
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (300, 'behind the index')");
ok($ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'needs protocol version 3, and the receiver asked for version 1'"
		  . " FROM gsb.status WHERE peer = 'sjc'"),
	'ams: the DDL is refused to a version 1 receiver, with both versions in the error');
note('last_error: ' . $ams->safe_psql('postgres', "SELECT last_error FROM gsb.status WHERE peer = 'sjc'"));
is($ams->safe_psql('postgres', "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_v_idx'"), '0',
	'ams: the command did not run');
set_fault($ams, '');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams speaks version 3 again and streams');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_v_idx'"), '1',
	'ams: the index is there: the command was held back, not left out');

# 6. gsb.ddl_from_peer: a site that does not let the peer name a superuser.
# The test's own role (the caller on sjc) is a superuser.
$ams->append_conf('postgresql.conf', "gsb.ddl_from_peer = admin");
$ams->reload;
$sjc->safe_psql('postgres', q{SELECT gsb.replicate_ddl('CREATE INDEX items_id_v_idx ON items (id, v)')});
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (400, 'behind the superuser command')");
ok($ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'gsb.ddl_from_peer = admin'"
		  . " FROM gsb.status WHERE peer = 'sjc'"),
	'ams with ddl_from_peer = admin: a superuser-named command from the peer is refused');
is($ams->safe_psql('postgres', "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_id_v_idx'"), '0',
	'ams: the command did not run');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 400'), '0', 'and the rows behind it wait');
$ams->append_conf('postgresql.conf', "gsb.ddl_from_peer = on");
$ams->reload;
ok(wait_state($ams, 'sjc', 'streaming'), 'with ddl_from_peer = on, ams streams again');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_id_v_idx'"), '1',
	'ams: the command ran once allowed, not skipped');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 400'), '1', 'and the row behind it arrived');

exactly_once($sjc, $ams, 'items');
verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
done_testing();
