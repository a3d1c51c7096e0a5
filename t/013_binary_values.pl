# 013_binary_values.pl: values of the types the apply worker makes directly
# from their binary form (bool, int2/4/8, float4/8, timestamp, timestamptz,
# text, varchar, uuid; see src/binary_values.hpp) and of types it leaves to
# their receive functions (timestamp(0), varchar(n) values longer in bytes
# than n, numeric, a domain), with their edge values: extremes, -0, NaN,
# infinities, multibyte text. Rows are inserted (batched and one by one),
# updated by keys of several types (bigint, uuid, text) and deleted, in both
# directions; every value must arrive exactly as written: the tables' text is
# identical on both sites, and gsb.verify() says match.
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
my $schema = q{
CREATE DOMAIN small_int AS int4 CHECK (VALUE < 1000000);
CREATE TABLE vals (
    id bigint PRIMARY KEY, b bool, i2 int2, i4 int4, f4 float4, f8 float8,
    ts timestamp, tstz timestamptz, ts0 timestamp(0), t text, vc varchar, vc5 varchar(5),
    u uuid, n numeric, d small_int);
CREATE TABLE by_uuid (k uuid PRIMARY KEY, v text, at timestamptz);
CREATE TABLE by_text (k text PRIMARY KEY, v float8);
SELECT gsb.replicate_table(t) FROM unnest(ARRAY['vals', 'by_uuid', 'by_text']) t;
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

# Edge values, one row each, written on $node with ids from $base.
my @edge = (
	q{true, 32767, 2147483647, '3.4e38', '1.7976931348623157e308', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', '2026-11-26 10:00:00.6', 'Göteborg möte', '日本語', 'åäöåä', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.50, 5},
	q{false, -32768, -2147483648, '-0', '-0', '4714-11-24 00:00:00 BC', '4714-11-24 00:00:00+00 BC', '1999-12-31 23:59:59.4', '', '', 'abcde', '00000000-0000-0000-0000-000000000000', -0.001, -7},
	q{true, 0, 0, 'NaN', 'NaN', 'infinity', 'infinity', 'infinity', 'plain', 'x', 'åäö', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'NaN', 0},
	q{false, 1, -1, '-Infinity', '-Infinity', '-infinity', '-infinity', '-infinity', repeat('ü', 5000), repeat('z', 3000), 'a b', NULL, 1e100, NULL},
	q{NULL, NULL, NULL, NULL, '5e-324', NULL, '2000-01-01 00:00:00+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL},
);

sub write_edges
{
	my ($node, $base, $batched) = @_;
	my @rows = map { '(' . ($base + $_) . ', ' . $edge[$_] . ')' } 0 .. $#edge;
	my $sql = $batched
	  ? 'INSERT INTO vals VALUES ' . join(', ', @rows) . ';'
	  : join('', map { "INSERT INTO vals VALUES $_;\n" } @rows);
	$node->safe_psql('postgres', $sql);
}

my $vals_text = 'SELECT string_agg(v::text, E\'\n\' ORDER BY id) FROM vals v';

# Inserts: a batch of five from sjc, five single-row transactions from ams.
write_edges($sjc, 100, 1);
write_edges($ams, 200, 0);
wait_synced($sjc, $ams);
same_on_both($sjc, $ams, $vals_text, 'inserted edge values are identical on both sites');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM vals'), '10', 'ams has all ten rows');
is($sjc->safe_psql('postgres', "SELECT ts0 || ' ' || vc5 || ' ' || (f8 = '-0' AND f8::text = '-0') FROM vals WHERE id = 201"),
	'1999-12-31 23:59:59 abcde true', 'sjc: timestamp(0) rounded, varchar(5) kept, -0 arrived as -0');
is($ams->safe_psql('postgres', "SELECT length(t) || ' ' || octet_length(t) || ' ' || (f4 = 'NaN') FROM vals WHERE id IN (103, 102) ORDER BY id"),
	"5 5 true\n5000 10000 false", 'ams: multibyte text and NaN arrived');

# Updates through every column, found by the bigint key; then deletes.
$sjc->safe_psql('postgres', q{
UPDATE vals SET b = NOT b, i2 = i2 / 2, i4 = i4 / 2, f4 = -f4, f8 = -f8,
       ts = CASE WHEN ts > '2000-01-01' THEN ts - interval '1 day' ELSE ts + interval '1 day' END,
       tstz = CASE WHEN tstz > '2000-01-01' THEN tstz - interval '1 hour' ELSE tstz + interval '1 hour' END,
       t = t || '!', vc = upper(vc), n = n + 1 WHERE id BETWEEN 100 AND 104;
});
$ams->safe_psql('postgres', "UPDATE vals SET u = gen_random_uuid(), vc5 = 'äö', d = 999999 WHERE id IN (200, 202)");
wait_synced($sjc, $ams);
same_on_both($sjc, $ams, $vals_text, 'updated edge values are identical on both sites');
$ams->safe_psql('postgres', 'DELETE FROM vals WHERE id IN (101, 203)');
$sjc->safe_psql('postgres', 'DELETE FROM vals WHERE id = 204');
wait_synced($sjc, $ams);
same_on_both($sjc, $ams, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM vals', 'deletes arrived: the same ids remain');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM vals'), '7', 'seven rows remain');

# Keys of other directly made types: uuid and text (multibyte), 1000 rows,
# updated and partly deleted from the other site.
$sjc->safe_psql('postgres', q{
INSERT INTO by_uuid SELECT md5(g::text)::uuid, 'v' || g, '2026-11-26'::timestamptz + g * interval '1 s' FROM generate_series(1, 1000) g;
INSERT INTO by_text SELECT 'nyckel-' || g || '-åäö', g / 7.0 FROM generate_series(1, 1000) g;
});
wait_synced($sjc, $ams);
$ams->safe_psql('postgres', q{
UPDATE by_uuid SET v = v || ' from ams', at = at + interval '1 day' WHERE v LIKE '%7';
UPDATE by_text SET v = -v WHERE k LIKE '%3-åäö';
DELETE FROM by_uuid WHERE v LIKE '%5 from ams' OR v LIKE '%9';
DELETE FROM by_text WHERE k LIKE 'nyckel-1%';
});
wait_synced($sjc, $ams);
exactly_once($sjc, $ams, 'by_uuid', 'k');
exactly_once($sjc, $ams, 'by_text', 'k');
is($sjc->safe_psql('postgres', "SELECT count(*) FROM by_uuid WHERE v LIKE '% from ams'"), '100',
	'sjc: the 100 rows updated on ams by their uuid key (none of them deleted)');
is($sjc->safe_psql('postgres', "SELECT count(*) FROM by_text WHERE v < 0"),
	$ams->safe_psql('postgres', "SELECT count(*) FROM by_text WHERE v < 0"),
	'by_text: the rows negated on ams by their text key, on both sites');
exactly_once($sjc, $ams, 'vals');

verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(6);
done_testing();
