# 317_retention.pl: the conflict history and the site events do not grow
# forever. Before, nothing ever removed a row of gsb.conflicts or
# gsb.site_events (pgbench on both sites records thousands of conflicts a
# minute).
#
# - The site monitor deletes rows older than gsb.conflict_retention /
#   gsb.site_events_retention, in batches (5,000 old conflicts here, more than
#   one batch), and keeps the newer ones.
# - gsb.site_events is replicated, but each site prunes its own copy: the
#   prune on sjc does not reach ams (a row committed on sjc after the prune
#   reaches ams while ams still holds the old events), records no conflict
#   on ams, and ams prunes only once its own setting says so.
# - Replication goes on both ways, and gsb.verify() matches once both sites
#   have pruned.
# - gsb.record_conflicts = off on one site: an insert/insert conflict is
#   decided the same way on both sites (identical rows), recorded only on
#   the site where recording is on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($sjc, $ams) = two_sites(
	failover_timeout => '0',
	schema => "CREATE TABLE r (id int PRIMARY KEY, v text NOT NULL);\n"
	  . "SELECT gsb.replicate_table('r');");
wait_synced($sjc, $ams);

# Site events (replicated): one two hours old, one new, written on sjc.
q1($sjc, q{
INSERT INTO gsb.site_events (at, reason, detail)
VALUES (now() - interval '2 hours', 'late arrival', 'old test event'),
       (now(), 'late arrival', 'new test event')});
ok(wait_until($ams,
		"SELECT count(*) FROM gsb.site_events WHERE detail LIKE '% test event'", '2', 30),
	'ams: both test events arrived');

# Conflicts (each site's own): 5,000 two hours old, 3 new.
my $conflicts = q{
INSERT INTO gsb.conflicts (at, relation, key, kind, resolution, remote_site)
SELECT now() - interval '2 hours' - g * interval '1 ms', 'r'::regclass, '(' || g || ')',
       'update_differs', 'keep_local', 'test'
  FROM generate_series(1, 5000) g;
INSERT INTO gsb.conflicts (relation, key, kind, resolution, remote_site)
SELECT 'r'::regclass, '(new' || g || ')', 'update_differs', 'keep_local', 'test'
  FROM generate_series(1, 3) g};
q1($_, $conflicts) for ($sjc, $ams);

my $old_event = "SELECT count(*) FROM gsb.site_events WHERE detail = 'old test event'";
my $new_event = "SELECT count(*) FROM gsb.site_events WHERE detail = 'new test event'";
my $old_conflicts = "SELECT count(*) FROM gsb.conflicts WHERE key NOT LIKE '(new%'";
my $new_conflicts = "SELECT count(*) FROM gsb.conflicts WHERE key LIKE '(new%'";

# Defaults keep all of it: 7 days and 90 days.
is(q1($sjc, "SELECT current_setting('gsb.conflict_retention') || ' '"
	  . " || current_setting('gsb.site_events_retention') || ' '"
	  . " || current_setting('gsb.record_conflicts')"),
	'7d 90d on', 'defaults: 7d, 90d, recording on');

# sjc prunes what is older than an hour.
reload_with($sjc, 'gsb.conflict_retention' => '1h', 'gsb.site_events_retention' => '1h');
ok(wait_until($sjc, "$old_conflicts", '0', 60), 'sjc: 5,000 old conflicts pruned');
ok(wait_until($sjc, "$old_event", '0', 60), 'sjc: old site event pruned');
is(q1($sjc, $new_conflicts), '3', 'sjc: new conflicts kept');
is(q1($sjc, $new_event), '1', 'sjc: new site event kept');

# A row committed on sjc after the prune reaches ams: had the prune's delete
# been sent, it would have arrived first.
q1($sjc, "INSERT INTO r VALUES (1, 'after the prune on sjc')");
ok(wait_until($ams, 'SELECT count(*) FROM r WHERE id = 1', '1', 30),
	'ams: a row committed on sjc after the prune arrived');
is(q1($ams, $old_event), '1', 'ams: old site event untouched by sjc\'s prune');
is(q1($ams, $old_conflicts), '5000', 'ams: its own old conflicts untouched');
is(q1($ams, "SELECT count(*) FROM gsb.conflicts WHERE remote_site <> 'test'"),
	'0', 'ams: the prune recorded no conflict');
is(q1($sjc, "SELECT count(*) FROM gsb.conflicts WHERE remote_site <> 'test'"),
	'0', 'sjc: no conflict recorded either');

# Then ams prunes its own copy, by its own setting.
reload_with($ams, 'gsb.conflict_retention' => '1h', 'gsb.site_events_retention' => '1h');
ok(wait_until($ams, "$old_conflicts", '0', 60), 'ams: old conflicts pruned');
ok(wait_until($ams, "$old_event", '0', 60), 'ams: old site event pruned');
is(q1($ams, $new_conflicts), '3', 'ams: new conflicts kept');
is(q1($ams, $new_event), '1', 'ams: new site event kept');
is(q1($sjc, $new_event), '1', 'sjc: new site event still there');

# Replication goes on, both ways; the sites match.
q1($ams, "INSERT INTO r VALUES (2, 'from ams')");
q1($sjc, "INSERT INTO r VALUES (3, 'from sjc')");
ok(wait_until($sjc, 'SELECT count(*) FROM r', '3', 30), 'sjc: ams\'s row arrived');
ok(wait_until($ams, 'SELECT count(*) FROM r', '3', 30), 'ams: sjc\'s row arrived');
is(q1($sjc, "SELECT count(*) FILTER (WHERE status <> 'match') || ' differ, '"
	  . " || count(*) FILTER (WHERE relation = 'gsb.site_events'::regclass) || ' site_events'"
	  . " FROM gsb.verify()"),
	'0 differ, 1 site_events', 'gsb.verify(): every table matches, gsb.site_events too');
for my $n ($sjc, $ams)
{
	is(q1($n, "SELECT state || ' ' || coalesce(last_error, '') FROM gsb.status"),
		'streaming ', site_name($n) . ': streaming, no error');
}

# A zero retention keeps everything: rows backdated 100 days on ams stay.
reload_with($ams, 'gsb.conflict_retention' => '0', 'gsb.site_events_retention' => '0');
q1($ams, q{
INSERT INTO gsb.conflicts (at, relation, key, kind, resolution, remote_site)
VALUES (now() - interval '100 days', 'r'::regclass, '(ancient)', 'update_differs',
        'keep_local', 'test')});
my ($held) = hold_for($ams, "SELECT count(*) FROM gsb.conflicts WHERE key = '(ancient)'",
	'1', 2.5);
ok($held, 'ams: retention 0 keeps a 100-day-old conflict');

# gsb.record_conflicts = off on ams: an insert/insert conflict, made as in
# t/005 (each site inserts key 10 while the other is down), decided the same
# on both sites, recorded only on sjc.
reload_with($ams, 'gsb.record_conflicts' => 'off');
$ams->stop('fast');
q1($sjc, "INSERT INTO r VALUES (10, 'sjc, older')");
$sjc->stop('fast');
$ams->start;
q1($ams, "INSERT INTO r VALUES (10, 'ams, newer')");
$sjc->start;
wait_synced($sjc, $ams);
ok(wait_until($sjc, "SELECT v FROM r WHERE id = 10", 'ams, newer', 30),
	'sjc: the newer insert won');
ok(wait_until($ams, "SELECT v FROM r WHERE id = 10", 'ams, newer', 30),
	'ams: the newer insert kept');
ok(wait_until($sjc,
		"SELECT count(*) FROM gsb.conflicts WHERE remote_site = 'ams' AND key = '(10)'",
		'1', 30),
	'sjc (recording on): the conflict is recorded');
is(q1($ams, "SELECT count(*) FROM gsb.conflicts WHERE remote_site = 'sjc'"),
	'0', 'ams (recording off): nothing recorded');
is(q1($sjc, "SELECT status FROM gsb.verify('r')"), 'match', 'r matches after the conflict');

check_logs($sjc, $ams);
done_testing();
