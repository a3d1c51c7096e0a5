# 001_replication.pl: real-time replication both ways between two sites.
#
# Writes on both sites at once (built-in tables and a user table) reach the
# other site; every column type gsb must carry survives the trip, including an
# out-of-line TOAST value left unchanged by an update; updates of the key,
# deletes and TRUNCATE replicate; gsb.status reports the link honestly and
# never shows the conninfo's password.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $password = 'gsb_tap_s3cret_pw';

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');

my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, n int, note text);
CREATE TABLE kinds (
    id int PRIMARY KEY,
    t text, n numeric, b bytea, ts timestamptz, a int[], ta text[], j jsonb,
    f float8, ok boolean, iv interval, u uuid, big text, note text);
ALTER TABLE kinds ALTER big SET STORAGE EXTERNAL;  -- out of line, uncompressed
SELECT gsb.replicate_table('items');
SELECT gsb.replicate_table('kinds');
-- One transaction per row, as an application writes.
CREATE PROCEDURE write_load(site text, base bigint, n int) LANGUAGE plpgsql AS $$
DECLARE
    acc bigint;
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO items VALUES (base + i, site, i, md5(site || i));
        acc := gsb.create_account(site || '.' || i || '@example.com', 'user ' || i);
        PERFORM gsb.schedule_meeting(acc, 'meeting ' || i, now() + interval '1 day');
        COMMIT;
    END LOOP;
END
$$;
};
$sjc->safe_psql('postgres', $schema);
$ams->safe_psql('postgres', $schema);

# The password is useless with trust authentication, but it is in the conninfo
# that gsb keeps; it must never show in gsb.status.
connect_sites($sjc, $ams, extra => "password=$password");

########################################################################
# Both directions at once.
########################################################################
my $per_site = 300;
my $w_sjc = start_bg($sjc, "CALL write_load('sjc', 0, $per_site);");
my $w_ams = start_bg($ams, "CALL write_load('ams', 1000000, $per_site);");
my ($ok_sjc, $err_sjc) = finish_bg($w_sjc);
my ($ok_ams, $err_ams) = finish_bg($w_ams);
ok($ok_sjc, "sjc: concurrent writer finished") or diag($err_sjc);
ok($ok_ams, "ams: concurrent writer finished") or diag($err_ams);

wait_synced($sjc, $ams);

for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	is( $node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE site = 'sjc') || '/' || count(*) FILTER (WHERE site = 'ams') FROM items"),
		"$per_site/$per_site",
		"$name: items from both sites, each exactly once");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE id % 16 = 1) || '/' || count(*) FILTER (WHERE id % 16 = 2) FROM gsb.accounts"),
		"$per_site/$per_site",
		"$name: accounts created on both sites, each exactly once");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE created_site = 'sjc') || '/' || count(*) FILTER (WHERE created_site = 'ams') FROM gsb.meetings"),
		"$per_site/$per_site",
		"$name: meetings scheduled on both sites, each exactly once");
}
same_on_both($sjc, $ams, "SELECT " . join(', ', map { "(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM $_ t)" } qw(items gsb.accounts gsb.meetings)),
	'items, accounts and meetings are identical on both sites');
is(table_digest($ams, 'items'), table_digest($sjc, 'items'), 'items digest equal');

########################################################################
# Types round trip, both directions.
########################################################################
$sjc->safe_psql('postgres', q{
INSERT INTO kinds (id) VALUES (1);  -- every other column NULL
INSERT INTO kinds VALUES (2, 'Göteborg ✓ 東京 ''quoted'' "dq" back\slash' || chr(9) || 'tab' || chr(10) || 'newline',
    -123456789012345678901234567890.000000000000000000001, '\x00ff10',
    '2030-06-01 12:34:56.789012+02', '{1,NULL,-3}', '{"a b",NULL,"q\"x",""}',
    '{"k": [1, "x", null, {"ü": true}], "n": 1.50}', 'NaN', true,
    '1 year 2 days 03:04:05.678', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL, '');
INSERT INTO kinds (id, n, ts, f, a, j, b, t)
    VALUES (3, 'NaN', '-infinity', '-Infinity', '{}', '"only a string"', '\x', '');
INSERT INTO kinds (id, n, ts, f, ta) VALUES (4, 0.1, 'infinity', 1e308, '{{a,b},{c,NULL}}');
INSERT INTO kinds (id, big, note)
    SELECT 5, string_agg(md5(g::text), ''), 'first' FROM generate_series(1, 300) g;
});
$ams->safe_psql('postgres', q{
INSERT INTO kinds (id, t, n, b, j) VALUES (11, E'from ams ✓\r\n', 42.000, '\xdeadbeef', '[]');
INSERT INTO kinds (id, big, note)
    SELECT 12, string_agg(md5((-g)::text), ''), 'ams first' FROM generate_series(1, 300) g;
});
wait_synced($sjc, $ams);

same_on_both($sjc, $ams, "SELECT string_agg(k::text, E'\\n' ORDER BY id) FROM kinds k",
	'every type arrives unchanged, both ways');
is($ams->safe_psql('postgres', 'SELECT num_nulls(t, n, b, ts, a, ta, j, f, ok, iv, u, big, note) FROM kinds WHERE id = 1'),
	'13', 'ams: NULLs arrive as NULLs');
is($ams->safe_psql('postgres', q{SELECT t = 'Göteborg ✓ 東京 ''quoted'' "dq" back\slash' || chr(9) || 'tab' || chr(10) || 'newline' AND b = '\x00ff10' AND ta[3] = 'q"x' AND ta[2] IS NULL AND j->'k'->3->>'ü' = 'true' FROM kinds WHERE id = 2}),
	't', 'ams: unicode, quotes, bytea, arrays and jsonb intact');
is($ams->safe_psql('postgres', q{SELECT t = '' AND b = '\x' AND a = '{}' AND n = 'NaN' AND ts = '-infinity' FROM kinds WHERE id = 3}),
	't', 'ams: empty string, empty bytea and array, NaN and -infinity are not NULLs');
is($sjc->safe_psql('postgres', q{SELECT t = E'from ams ✓\r\n' AND b = '\xdeadbeef' FROM kinds WHERE id = 11}),
	't', 'sjc: a row written on ams arrives intact');

my $big5 = $sjc->safe_psql('postgres', 'SELECT md5(big) || length(big) FROM kinds WHERE id = 5');
my $toast = $sjc->safe_psql('postgres',
	"SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'kinds'::regclass");
ok($sjc->safe_psql('postgres', "SELECT count(*) FROM $toast") > 0,
	'sjc: the big value is stored out of line, in the TOAST table');

# Update another column only: the TOAST value is not in the WAL again, and the
# peer must keep its copy.
$sjc->safe_psql('postgres', "UPDATE kinds SET note = 'second' WHERE id = 5");
$ams->safe_psql('postgres', "UPDATE kinds SET note = 'ams second' WHERE id = 12");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT md5(big) || length(big) || note FROM kinds WHERE id = 5'),
	"${big5}second", 'ams: unchanged TOASTed value intact after an update of another column');
is($sjc->safe_psql('postgres', 'SELECT length(big) || note FROM kinds WHERE id = 12'),
	'9600ams second', 'sjc: unchanged TOASTed value intact after an update made on ams');
same_on_both($sjc, $ams, "SELECT md5(string_agg(k::text, E'\\n' ORDER BY id)) FROM kinds k",
	'kinds identical after the updates');

########################################################################
# Update of the key, delete, truncate.
########################################################################
$sjc->safe_psql('postgres', 'UPDATE items SET id = id + 500000 WHERE id IN (1, 2)');
$ams->safe_psql('postgres', 'UPDATE items SET id = -id, note = $$moved on ams$$ WHERE id = 1000001');
wait_synced($sjc, $ams);
for my $node ($sjc, $ams)
{
	is( $node->safe_psql('postgres',
			'SELECT string_agg(id::text, \',\' ORDER BY id) FROM items WHERE id IN (1, 2, 500001, 500002, 1000001, -1000001)'),
		'-1000001,500001,500002',
		site_name($node) . ': updates of the primary key moved the rows');
}
is($sjc->safe_psql('postgres', 'SELECT note FROM items WHERE id = -1000001'),
	'moved on ams', 'sjc: other columns of a key update arrive too');

$ams->safe_psql('postgres', 'DELETE FROM items WHERE n % 10 = 3');   # rows of both sites
$sjc->safe_psql('postgres', 'DELETE FROM kinds WHERE id = 11');      # a row born on ams
wait_synced($sjc, $ams);
my $expect_items = 2 * $per_site - 2 * ($per_site / 10);
for my $node ($sjc, $ams)
{
	is($node->safe_psql('postgres', 'SELECT count(*) || \'/\' || count(*) FILTER (WHERE n % 10 = 3) FROM items'),
		"$expect_items/0", site_name($node) . ': deletes replicated');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM kinds WHERE id = 11'),
		'0', site_name($node) . ': delete of a row born on the other site replicated');
}
is(table_digest($ams, 'items'), table_digest($sjc, 'items'), 'items identical after deletes');

$sjc->safe_psql('postgres', 'TRUNCATE items');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items'), '0', 'ams: TRUNCATE replicated');
$ams->safe_psql('postgres', "INSERT INTO items VALUES (7, 'ams', 7, 'after truncate')");
wait_synced($sjc, $ams);
is($sjc->safe_psql('postgres', 'SELECT note FROM items'), 'after truncate',
	'sjc: a row written after the TRUNCATE arrives');

########################################################################
# gsb.status.
########################################################################
for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
{
	my ($node, $peer) = @$pair;
	my $name = site_name($node);
	ok( $node->poll_query_until('postgres',
			"SELECT lag_bytes = 0 FROM gsb.status WHERE peer = '$peer'"),
		"$name: lag_bytes reaches 0 once synced");
	my $st = status_row($node, $peer);
	is($st->{peer}, $peer, "$name: gsb.status has a row for peer $peer");
	is($st->{state}, 'streaming', "$name: state streaming");
	is($st->{last_error}, '', "$name: no last_error");
	like($st->{received_lsn}, qr{^[0-9A-F]+/[0-9A-F]+$}, "$name: received_lsn set");
	like($st->{applied_lsn}, qr{^[0-9A-F]+/[0-9A-F]+$}, "$name: applied_lsn set");
	is($st->{conflicts}, '0', "$name: no conflicts counted");
	is( $node->safe_psql('postgres',
			"SELECT last_message_at > now() - interval '5 min' AND last_message_at <= now() + interval '1 min' FROM gsb.status WHERE peer = '$peer'"),
		't', "$name: last_message_at is recent");
	my @spec_cols = qw(peer state received_lsn applied_lsn lag_bytes last_message_at
	  conflicts last_error active_site last_config_sync);
	my %has = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
		"SELECT attname FROM pg_attribute WHERE attrelid = 'gsb.status'::regclass AND attnum > 0");
	is(join(' ', grep { !$has{$_} } @spec_cols), '',
		"$name: gsb.status has every column the SPEC names");
	if ($has{active_site})
	{
		is( $node->safe_psql('postgres',
				"SELECT active_site FROM gsb.status WHERE peer = '$peer'"),
			'sjc', "$name: gsb.status shows the primary as the active site");
	}
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.status'), '1',
		"$name: one gsb.status row per peer");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.conflicts'), '0',
		"$name: no conflicts recorded for writes that never touched the same row");

	# The password: never in gsb.status, never readable by a plain user.
	unlike($node->safe_psql('postgres', 'SELECT string_agg(s::text, \' \') FROM gsb.status s'),
		qr/\Q$password\E/, "$name: gsb.status does not show the conninfo's password");
	$node->safe_psql('postgres', 'CREATE ROLE tap_plain LOGIN');
	my ($rc, $out, $err) = psql_verbose($node, "SET ROLE tap_plain;\nSELECT * FROM gsb.status;");
	is(sqlstate_of($err), '42501', "$name: a plain user may not read gsb.status")
	  or diag($err);
	my @readable = split /\n/, $node->safe_psql('postgres', q{
		SELECT c.oid::regclass FROM pg_class c
		 WHERE c.relnamespace = 'gsb'::regnamespace AND c.relkind IN ('r', 'v', 'm')
		   AND has_table_privilege('tap_plain', c.oid, 'SELECT')});
	my @leaks = grep {
		$node->safe_psql('postgres',
			"SELECT count(*) FROM $_ t WHERE t::text LIKE '%$password%'") ne '0'
	} @readable;
	is("@leaks", '', "$name: no table a plain user can read holds the password");
}

check_logs($sjc, $ams);
done_testing();
