# 002_no_loop.pl: a change reaches the other site and never comes back.
#
# After writes on both sites (inserts, updates and deletes, also of rows born
# on the other site) and a sync, both sites stay quiet: their WAL does not grow
# (beyond a small bound) over many heartbeats, no replicated row is rewritten
# (xmin stable), and every table holds exactly the rows written, no echo.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $heartbeat_s = 0.3;
# Nothing but gsb may write WAL while we watch: no autovacuum or autoanalyze,
# and no full-page images for hint bits set by our own reads.
my %quiet = (
	heartbeat_interval => '300ms',
	extra_conf => "autovacuum = off\nwal_log_hints = off\nlog_statement = none",
);
my $sjc = new_site('sjc', 'primary', %quiet);
my $ams = new_site('ams', 'backup', %quiet);

my $schema = q{
CREATE EXTENSION IF NOT EXISTS pg_walinspect;
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, v int NOT NULL);
SELECT gsb.replicate_table('items');
CREATE PROCEDURE write_load(site text, base bigint, n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO items VALUES (base + i, site, 0);
        PERFORM gsb.create_account(site || '.' || i || '@example.com', site);
        COMMIT;
    END LOOP;
END
$$;
};
$sjc->safe_psql('postgres', $schema);
$ams->safe_psql('postgres', $schema);
connect_sites($sjc, $ams);

my $n = 200;
my $w1 = start_bg($sjc, "CALL write_load('sjc', 0, $n);");
my $w2 = start_bg($ams, "CALL write_load('ams', 100000, $n);");
ok((finish_bg($w1))[0], 'sjc: writer finished');
ok((finish_bg($w2))[0], 'ams: writer finished');
wait_synced($sjc, $ams);

# Updates and deletes, each site also touching rows born on the other.
$sjc->safe_psql('postgres', 'UPDATE items SET v = v + 1 WHERE id % 4 = 0');
$ams->safe_psql('postgres', 'UPDATE items SET v = v + 10 WHERE id % 4 = 1');
$sjc->safe_psql('postgres', 'DELETE FROM items WHERE id % 50 = 7');
$ams->safe_psql('postgres', 'DELETE FROM items WHERE id % 50 = 9');
$ams->safe_psql('postgres', "UPDATE gsb.accounts SET name = name || '!' WHERE id % 3 = 0");
wait_synced($sjc, $ams);

# Exactly what was written, no more (an echo would re-insert, re-update, or
# fail as a conflict).
my $expected_items = $sjc->safe_psql('postgres', q{
SELECT count(*) || '/' || sum(v) FROM (
  SELECT id, CASE WHEN id % 4 = 0 THEN 1 WHEN id % 4 = 1 THEN 10 ELSE 0 END AS v
    FROM (SELECT g FROM generate_series(1, 200) g UNION ALL SELECT 100000 + g FROM generate_series(1, 200) g) s(id)
   WHERE id % 50 NOT IN (7, 9)) e});
for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	is($node->safe_psql('postgres', "SELECT count(*) || '/' || sum(v) FROM items"),
		$expected_items, "$name: items hold exactly the rows and values written");
	is($node->safe_psql('postgres', 'SELECT count(*) || \'/\' || count(DISTINCT email) FROM gsb.accounts'),
		(2 * $n) . '/' . (2 * $n), "$name: every account exactly once");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM gsb.accounts WHERE name LIKE '%!!%'}),
		'0', "$name: an update was applied once, not echoed back and applied again");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.conflicts'), '0',
		"$name: no conflicts (an echoed change would look like one)");
}
is(table_digest($ams, 'items'), table_digest($sjc, 'items'), 'items identical');
is(table_digest($ams, 'gsb.accounts'), table_digest($sjc, 'gsb.accounts'), 'accounts identical');

# Both links idle: nothing left to send either way.
for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
{
	ok( $pair->[0]->poll_query_until('postgres',
			"SELECT lag_bytes = 0 FROM gsb.status WHERE peer = '$pair->[1]'"),
		site_name($pair->[0]) . ': lag 0 before watching');
}

# Read every row once now, so that what we read later changes nothing.
my $xmin_sql = q{SELECT md5(string_agg(id || ':' || xmin, ',' ORDER BY id)) FROM items}
  . q{ UNION ALL SELECT md5(string_agg(id || ':' || xmin, ',' ORDER BY id)) FROM gsb.accounts};
my %xmin_before = map { site_name($_) => $_->safe_psql('postgres', $xmin_sql) } ($sjc, $ams);

my $beats = 8;
my $grew = observe_quiet([ $sjc, $ams ], $beats, $heartbeat_s);
my $bound = 4096;
for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	my $g = $grew->{$name};
	my $records = $g->{bytes} > 0
	  ? $node->safe_psql('postgres',
		"SELECT string_agg(resource_manager || ' ' || record_type || ' ' || record_length || ' ' || coalesce(description, ''), E'\\n')"
		  . " FROM (SELECT * FROM pg_get_wal_records_info('$g->{from}', '$g->{to}') LIMIT 60) r")
	  : '';
	ok($g->{bytes} <= $bound,
		"$name: WAL grew $g->{bytes} bytes over $beats heartbeats of quiet (at most $bound)")
	  or diag("WAL records written meanwhile:\n$records");
	note("$name: WAL records written while quiet:\n$records") if $records ne '';
	is($node->safe_psql('postgres', $xmin_sql), $xmin_before{$name},
		"$name: no replicated row was rewritten while idle (xmin unchanged)");
	is($node->safe_psql('postgres', "SELECT count(*) || '/' || sum(v) FROM items"),
		$expected_items, "$name: still exactly the rows written");
}

# The links are still alive after the quiet period: one more change each way.
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (900001, 'sjc', 0)");
$ams->safe_psql('postgres', "INSERT INTO items VALUES (900002, 'ams', 0)");
wait_synced($sjc, $ams);
is(table_digest($ams, 'items'), table_digest($sjc, 'items'), 'a change after the quiet period replicates');

check_logs($sjc, $ams);
done_testing();
