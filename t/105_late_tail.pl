# 105_late_tail.pl: the late tail after an automatic failover.
#
# The backup (ams) is stopped; the primary (sjc) goes on committing
# transactions that it cannot send; then sjc dies ('immediate') and ams comes
# back alone and fails over by itself. Those transactions are not lost: when
# sjc returns its slot still holds them, they reach ams, a conflict among
# them (a row that ams changed after the failover) is resolved as usual (the
# later commit wins, and it is in gsb.conflicts), and ams records a
# 'late arrival' event from sjc to ams whose detail says how many
# transactions arrived late. In the end both sites hold the same rows.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($sjc, $ams) = two_sites(schema => q{
CREATE TABLE tail (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('tail');
});
$sjc->safe_psql('postgres', "INSERT INTO tail VALUES (100, 'sjc', 'before')");
wait_synced($sjc, $ams);

########################################################################
# The tail: written on sjc while ams is down, then sjc dies.
########################################################################
$ams->stop('fast');
my $late_inserts = 5;
for my $i (1 .. $late_inserts)
{
	$sjc->safe_psql('postgres', "INSERT INTO tail VALUES ($i, 'sjc', 'late $i')");
}
$sjc->safe_psql('postgres', "UPDATE tail SET v = 'changed on sjc before the failover' WHERE id = 100");
my $late_txns = $late_inserts + 1;
$sjc->stop('immediate');

$ams->start;
ok(wait_event($ams, 'automatic failover', 1, 30), 'ams: alone, it fails over by itself');
is(active_of($ams), 'ams', 'ams: it is the active site');
is(q1($ams, 'SELECT count(*) FROM tail WHERE id BETWEEN 1 AND 5'), '0',
	'ams: the late rows are not here yet (sjc never sent them)');

# ams serves, and changes the row that sjc changed in the tail (later).
$ams->safe_psql('postgres',
	"UPDATE tail SET v = 'changed on ams after the failover' WHERE id = 100;"
	  . " INSERT INTO tail VALUES (200, 'ams', 'after the failover')");

########################################################################
# sjc returns: its tail arrives late.
########################################################################
$sjc->start;
ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30), 'sjc: back, it names ams active');
ok(wait_event($ams, 'late arrival', 1, 60), "ams: a 'late arrival' event");
my @la = events_of($ams, 'late arrival');
is(scalar @la, 1, "ams: exactly one 'late arrival' event");
is("$la[0]{from_site} -> $la[0]{to_site}", 'sjc -> ams', 'ams: from sjc (the sender) to ams (the receiver)');
like($la[0]{detail}, qr/^\d+ transactions\b/, 'ams: the detail says how many transactions');
my ($count) = $la[0]{detail} =~ /^(\d+) transactions\b/;
is($count, $late_txns, "ams: ... $late_txns, the transactions sjc committed that ams had not received");
note("late arrival detail: $la[0]{detail}");
my $fo_at = (events_of($ams, 'automatic failover'))[0]{at};
cmp_ok($la[0]{at}, '>', $fo_at, 'ams: the late arrival is recorded after the failover');

is( q1($ams, "SELECT string_agg(id || ':' || v, ', ' ORDER BY id) FROM tail WHERE id BETWEEN 1 AND 5"),
	join(', ', map { "$_:late $_" } 1 .. $late_inserts),
	'ams: every late row arrived, once');
wait_synced($sjc, $ams);
for my $n ($sjc, $ams)
{
	is(q1($n, 'SELECT v FROM tail WHERE id = 100'), 'changed on ams after the failover',
		site_name($n) . ': the row changed on both sides holds the later change (ams\'s)');
}
my @c = grep { $_->{key} eq '(100)' } conflicts_of($ams, 'tail');
is(scalar @c, 1, 'ams: the late update of row 100 is a recorded conflict');
is($c[0]{resolution} // '', 'keep_local', "ams: ... resolved by keeping ams's later change");
is($c[0]{remote_site} // '', 'sjc', 'ams: ... from sjc');

ok(wait_event($sjc, 'late arrival', 1, 30), "sjc: the 'late arrival' event reaches sjc too");
is(table_digest($ams, 'tail'), table_digest($sjc, 'tail'), 'tail is the same on both sites');
is( q1($sjc, "SELECT string_agg(relation || ' ' || status, ', ' ORDER BY relation) FROM gsb.verify() WHERE status <> 'match'"),
	'', 'gsb.verify(): every realtime table matches');
is(active_of($sjc), 'ams', 'sjc: ams is still active (failback only by hand)');

check_logs($sjc, $ams);
done_testing();
