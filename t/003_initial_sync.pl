# 003_initial_sync.pl: gsb.add_peer copies what the peer already holds, then
# streams from exactly that point: no gap, no duplicate.
#
# The primary holds 5000 accounts and a user table of 10000 rows before the
# sites are paired, and a writer keeps inserting and updating rows on it all
# through the pairing. Afterwards the backup holds every row exactly once, in
# its latest version, and nothing was applied twice (no conflict recorded).
# A second pair, added with copy_data => false, streams new rows only. A
# third pair checks the primary's own copy from a backup that is behind.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');

my $schema = q{
CREATE TABLE bulk (id bigint PRIMARY KEY, v text NOT NULL, touched int NOT NULL DEFAULT 0);
SELECT gsb.replicate_table('bulk');
};
$sjc->safe_psql('postgres', $schema);
$ams->safe_psql('postgres', $schema);

$sjc->safe_psql('postgres', q{
INSERT INTO gsb.accounts (email, name)
    SELECT 'user' || g || '@example.com', 'user ' || g FROM generate_series(1, 5000) g;
INSERT INTO bulk (id, v) SELECT g, md5(g::text) FROM generate_series(1, 10000) g;
-- A writer for the time of the pairing: one transaction per row, inserting a
-- new row and updating an old one, until told to stop (ctl is not replicated).
CREATE TABLE ctl (stop boolean NOT NULL);
INSERT INTO ctl VALUES (false);
CREATE SEQUENCE during_seq START 100001;
CREATE PROCEDURE writer() LANGUAGE plpgsql AS $$
DECLARE
    i bigint;
BEGIN
    LOOP
        EXIT WHEN (SELECT stop FROM ctl);
        i := nextval('during_seq');
        INSERT INTO bulk (id, v) VALUES (i, 'written during the copy');
        UPDATE bulk SET touched = touched + 1, v = v || '+' WHERE id = 1 + (i * 7919) % 10000;
        IF i % 10 = 0 THEN
            DELETE FROM bulk WHERE id = 1 + (i * 104729) % 10000 AND touched = 0;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.003);   -- a throttle, not a wait: ~300 rows a second
    END LOOP;
END
$$;
});

my $writer = start_bg($sjc, 'CALL writer();');
ok($sjc->poll_query_until('postgres', 'SELECT count(*) > 0 FROM bulk WHERE id > 100000'),
	'sjc: the writer is running before the sites are paired');

# sjc first: it copies from the empty backup, and is done before ams starts
# (the other order is the third pair's case). Then ams, in the background, so
# that we can watch its state while it copies from sjc.
add_peer($sjc, $ams);
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: its copy from the empty ams is done');
my $before_copy = $sjc->safe_psql('postgres', 'SELECT count(*) FROM bulk WHERE id > 100000');
my $adder = start_bg($ams,
	"SELECT gsb.add_peer('sjc', " . sql_quote(peer_connstr($sjc)) . ", true);");

my %seen;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
my $state = '';
while (time() < $deadline)
{
	my ($rc, $out) = psql_verbose($ams, "SELECT state FROM gsb.status WHERE peer = 'sjc'");
	$state = $rc == 0 ? $out : '';
	$seen{$state}++ if $state ne '';
	last if $state eq 'streaming';
	usleep(20_000);
}
my ($add_ok, $add_err) = finish_bg($adder);
ok($add_ok, "ams: gsb.add_peer('sjc') with copy_data") or diag($add_err);
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc after the initial sync');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: streaming from ams');
note('states seen on ams while pairing: ' . join(', ', sort keys %seen));
if ($seen{initial_sync})
{
	pass('ams: gsb.status showed initial_sync during the copy');
}
else
{
	# Not a failure: 15000 rows may be copied between two polls, or before
	# add_peer's transaction made the peer visible in gsb.status.
	note('initial_sync was not observed: the copy finished between two polls');
}

# Let the writer go on past the end of the copy, then stop it.
my $after_copy = $sjc->safe_psql('postgres', 'SELECT count(*) FROM bulk WHERE id > 100000');
ok($sjc->poll_query_until('postgres',
		"SELECT count(*) > $after_copy + 50 FROM bulk WHERE id > 100000"),
	'sjc: the writer went on after the copy');
$sjc->safe_psql('postgres', 'UPDATE ctl SET stop = true');
my ($w_ok, $w_err) = finish_bg($writer);
ok($w_ok, 'sjc: writer finished') or diag($w_err);
my $during = $sjc->safe_psql('postgres', 'SELECT count(*) FROM bulk WHERE id > 100000');
cmp_ok($after_copy, '>', $before_copy, 'rows were written while the sites were being paired');
note("rows written by the writer: $during ($before_copy before add_peer on ams, $after_copy when streaming)");

wait_synced($sjc, $ams);

is(table_digest($ams, 'bulk'), table_digest($sjc, 'bulk'),
	'bulk: every row on ams exactly once, in its latest version');
is(table_digest($ams, 'gsb.accounts'), table_digest($sjc, 'gsb.accounts'),
	'accounts: all 5000 on ams exactly once');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM gsb.accounts'), '5000', 'ams: 5000 accounts');
is($ams->safe_psql('postgres', "SELECT count(*) FROM bulk WHERE id > 100000"), $during,
	'ams: every row written during the copy arrived');
ok($ams->safe_psql('postgres', 'SELECT count(*) FROM bulk WHERE touched > 0') > 0,
	'ams: updates made during the copy arrived');
for my $node ($sjc, $ams)
{
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.conflicts'), '0',
		site_name($node) . ': no conflicts: no change was both copied and applied again');
}

# After the copy, changes stream both ways as usual.
$ams->safe_psql('postgres', "INSERT INTO bulk (id, v) VALUES (-1, 'from ams')");
$sjc->safe_psql('postgres', "UPDATE bulk SET v = 'after sync' WHERE id = 2");
wait_synced($sjc, $ams);
is(table_digest($ams, 'bulk'), table_digest($sjc, 'bulk'), 'bulk identical after more changes');

check_logs($sjc, $ams);
$sjc->stop;
$ams->stop;

########################################################################
# copy_data => false: what exists is not copied, what comes is streamed.
########################################################################
my $lax = new_site('lax', 'primary');
my $fra = new_site('fra', 'backup');
for my $node ($lax, $fra)
{
	$node->safe_psql('postgres', q{
CREATE TABLE items (id bigint PRIMARY KEY, v text);
SELECT gsb.replicate_table('items');});
}
$lax->safe_psql('postgres', q{
INSERT INTO items SELECT g, 'old' FROM generate_series(1, 100) g;
INSERT INTO gsb.accounts (email) SELECT 'old' || g || '@example.com' FROM generate_series(1, 10) g;});
$fra->safe_psql('postgres', "INSERT INTO items SELECT -g, 'old on fra' FROM generate_series(1, 5) g");

connect_sites($lax, $fra, copy_data => 0);
$lax->safe_psql('postgres', "INSERT INTO items SELECT g, 'new' FROM generate_series(101, 110) g");
$lax->safe_psql('postgres', q{INSERT INTO gsb.accounts (email) VALUES ('new@example.com')});
$fra->safe_psql('postgres', "INSERT INTO items VALUES (-100, 'new on fra')");
wait_synced($lax, $fra);

is($fra->safe_psql('postgres', q{SELECT string_agg(v || ':' || n, ',' ORDER BY v) FROM (SELECT v, count(*) n FROM items GROUP BY v) s}),
	'new:10,new on fra:1,old on fra:5', 'fra: existing rows of lax not copied, new ones streamed');
is($fra->safe_psql('postgres', 'SELECT string_agg(email, \',\') FROM gsb.accounts'),
	'new@example.com', 'fra: only the new account');
is($lax->safe_psql('postgres', q{SELECT string_agg(v || ':' || n, ',' ORDER BY v) FROM (SELECT v, count(*) n FROM items GROUP BY v) s}),
	'new:10,new on fra:1,old:100', 'lax: existing rows of fra not copied, new ones streamed');

check_logs($lax, $fra);
$lax->stop;
$fra->stop;

########################################################################
# The second copy, from a peer that is behind. The backup copies from the
# primary first and streams from it; then the primary deletes and updates
# rows while the backup cannot apply that yet (a local transaction holds the
# table in EXCLUSIVE mode, which still lets readers in); only then does the
# primary add the backup as its peer, with copy_data. What the primary copies
# back must not bring back the row it deleted nor the old version of the row
# it updated: once the backup catches up, both sites must be equal.
########################################################################
my $nyc = new_site('nyc', 'primary');
my $sin = new_site('sin', 'backup');
for my $node ($nyc, $sin)
{
	$node->safe_psql('postgres', q{
CREATE TABLE items (id bigint PRIMARY KEY, v text);
SELECT gsb.replicate_table('items');});
}
$nyc->safe_psql('postgres', "INSERT INTO items SELECT g, 'original' FROM generate_series(1, 100) g");
add_peer($sin, $nyc);
ok(wait_state($sin, 'nyc', 'streaming'), 'sin: copied from nyc, streaming');
ok($sin->poll_query_until('postgres', 'SELECT count(*) = 100 FROM items'), 'sin: has the 100 rows');

my $locker = $sin->background_psql('postgres', on_error_stop => 1);
$locker->query_safe('BEGIN; LOCK TABLE items IN EXCLUSIVE MODE;');
$nyc->safe_psql('postgres', "DELETE FROM items WHERE id = 1; UPDATE items SET v = 'updated on nyc' WHERE id = 2;");
ok( $sin->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_locks WHERE relation = 'items'::regclass AND NOT granted"),
	'sin: the apply of nyc\'s delete and update waits for the table lock');
add_peer($nyc, $sin);
# nyc's worker fixes the point of its copy when it makes its slot on sin.
# (A design that waits for sin to catch up first makes no slot while sin is
# held back: then this waits only 30 s, and the rest must pass all the same.)
my $slot_made;
{
	local $PostgreSQL::Test::Utils::timeout_default = 30;
	$slot_made = $sin->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_replication_slots WHERE plugin = 'gsb'");
}
note($slot_made
	? 'nyc made its slot on sin while sin was behind'
	: 'nyc made no slot on sin while sin was behind (it may wait for sin to catch up)');
$locker->query_safe('COMMIT;');
$locker->quit;
ok(wait_state($nyc, 'sin', 'streaming'), 'nyc: copied from sin and streaming');
ok(wait_state($sin, 'nyc', 'streaming'), 'sin: streaming from nyc after the lock is gone');
wait_synced($nyc, $sin);
is($nyc->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = 1'), '0',
	'nyc: the row it deleted was not brought back by its copy from sin');
is($nyc->safe_psql('postgres', 'SELECT v FROM items WHERE id = 2'), 'updated on nyc',
	'nyc: the row it updated was not set back by its copy from sin');
is(table_digest($sin, 'items'), table_digest($nyc, 'items'), 'items identical on nyc and sin');
is($nyc->safe_psql('postgres', 'SELECT count(*) FROM gsb.conflicts'), '0',
	'nyc: no conflicts from copying back its own rows');

check_logs($nyc, $sin);
done_testing();
