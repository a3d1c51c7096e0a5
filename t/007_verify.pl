# 007_verify.pl: gsb.verify() proves that two sites converged, and shows where
# they did not.
#
# After a sync, gsb.verify() has one row per realtime table, each `match`,
# with equal counts and hashes. Then changes are made on one site inside a
# replication origin of the test's own, which gsb's output plugin never sends
# (it forwards only changes that originated on its site): the sites now
# differ, and gsb.verify() says `differs` for exactly those tables, on both
# sites; gsb.verify(rel) answers for that one table only.
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
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE TABLE vt (id int PRIMARY KEY, v text);
CREATE TABLE vt2 (id int PRIMARY KEY, v text);
CREATE TABLE local_only (id int PRIMARY KEY);
SELECT gsb.replicate_table('vt');
SELECT gsb.replicate_table('vt2');});
}
connect_sites($sjc, $ams);
$sjc->safe_psql('postgres', q{
INSERT INTO vt SELECT g, 'v' || g FROM generate_series(1, 500) g;
INSERT INTO vt2 SELECT g, 'w' || g FROM generate_series(1, 50) g;
SELECT gsb.create_account('a@example.com', 'A');
INSERT INTO gsb.usage (meeting_id, account_id, site, started_at, ended_at, minutes)
    VALUES (1, 1, 'sjc', now() - interval '90 s', now(), 1.5);
INSERT INTO gsb.site_config VALUES ('daily', 'not compared by verify');});
$ams->safe_psql('postgres', q{
INSERT INTO vt SELECT -g, 'ams' || g FROM generate_series(1, 20) g;
SELECT gsb.schedule_meeting(gsb.create_account('b@example.com', 'B'), 'm', now());
INSERT INTO local_only VALUES (1);});
wait_synced($sjc, $ams);

my $cols = 'relation::text, local_rows, peer_rows, local_hash, peer_hash, status';
# The realtime tables: at least the built-in ones and ours (gsb may add more).
my @realtime = split /,/, $sjc->safe_psql('postgres',
	"SELECT string_agg(relation::text, ',' ORDER BY relation::text) FROM gsb.replicated_tables WHERE mode = 'realtime'");
my $realtime = join(',', @realtime);
my %is_rt = map { $_ => 1 } @realtime;
is(join(',', grep { !$is_rt{$_} } qw(gsb.accounts gsb.meetings gsb.usage vt vt2)), '',
	"the realtime tables include the built-in ones and ours ($realtime)");
my $n_rt = scalar @realtime;

for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	is( $node->safe_psql('postgres',
			"SELECT string_agg(relation::text, ',' ORDER BY relation::text) FROM gsb.verify()"),
		$realtime, "$name: gsb.verify() has one row per realtime table, and no other");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM gsb.verify() WHERE status = 'match' AND local_rows = peer_rows"
			  . " AND local_hash IS NOT DISTINCT FROM peer_hash"),
		$n_rt, "$name: all match after sync, equal counts and hashes");
	is( $node->safe_psql('postgres',
			"SELECT local_rows || '/' || peer_rows FROM gsb.verify() WHERE relation = 'vt'::regclass"),
		'520/520', "$name: gsb.verify() counts the rows of vt on both sites");
}

# Changes that are never sent: written inside a replication origin.
$sjc->safe_psql('postgres', q{
SELECT pg_replication_origin_create('tap_hidden');
SELECT pg_replication_origin_session_setup('tap_hidden');
UPDATE vt SET v = 'changed behind gsb''s back' WHERE id = 3;
INSERT INTO vt2 VALUES (1000, 'only on sjc');
SELECT pg_replication_origin_session_reset();
INSERT INTO vt VALUES (1000, 'sent as usual');});
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM vt WHERE id = 1000'), 'sent as usual',
	'ams: a change made after the hidden ones arrived');
is($ams->safe_psql('postgres', 'SELECT v FROM vt WHERE id = 3') . '/'
	  . $ams->safe_psql('postgres', 'SELECT count(*) FROM vt2 WHERE id = 1000'),
	'v3/0', 'ams: the hidden changes did not');

for my $node ($sjc, $ams)
{
	my $name = site_name($node);
	is( $node->safe_psql('postgres',
			"SELECT string_agg(relation::text || '=' || status, ',' ORDER BY relation::text) FROM gsb.verify()"),
		join(',', map { $_ . '=' . (/^vt2?$/ ? 'differs' : 'match') } @realtime),
		"$name: gsb.verify() says differs for the tables that differ, match for the others");
	my ($lr, $pr, $same_hash) = split /\|/, $node->safe_psql('postgres',
		"SELECT local_rows, peer_rows, local_hash = peer_hash FROM gsb.verify() WHERE relation = 'vt'::regclass");
	is("$lr/$pr/$same_hash", '521/521/f', "$name: vt: same count, different hash");
	my $vt2 = $node->safe_psql('postgres',
		"SELECT local_rows || '/' || peer_rows FROM gsb.verify() WHERE relation = 'vt2'::regclass");
	is($vt2, $name eq 'sjc' ? '51/50' : '50/51', "$name: vt2: counts show the extra row");
}

my $one = $sjc->safe_psql('postgres', "SELECT $cols FROM gsb.verify('vt'::regclass)");
my @rows = split /\n/, $one;
is(scalar @rows, 1, "gsb.verify('vt') returns one row");
like($one, qr/^vt\|521\|521\|[^|]+\|[^|]+\|differs$/, "gsb.verify('vt') says differs");
is($sjc->safe_psql('postgres', "SELECT relation::text || '=' || status FROM gsb.verify('gsb.accounts')"),
	'gsb.accounts=match', "gsb.verify('gsb.accounts') returns just that table: match");

# Repair by hand, and verify agrees again.
$ams->safe_psql('postgres', q{
UPDATE vt SET v = 'changed behind gsb''s back' WHERE id = 3;});
$sjc->safe_psql('postgres', 'DELETE FROM vt2 WHERE id = 1000');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT count(*) FROM gsb.verify() WHERE status = 'match'"), $n_rt,
	'ams: all match again once the rows were repaired');

check_logs($sjc, $ams);
done_testing();
