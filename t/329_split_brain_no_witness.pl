# 329_split_brain_no_witness.pl: two sites and no witness; the link between
# them is cut while both stay up. This is the risk that the README and
# gsb.status state plainly: the backup fails over after gsb.failover_timeout
# and the primary, which cannot tell a cut link from a dead backup, goes on
# serving; both answer that they are active (asserted here: it is the
# documented behaviour, not an accident). When the link comes back the view
# with the higher term (the backup's failover) wins on both sites, each site
# holds a `split brain` row in gsb.site_events whose detail says when each
# site was active, gsb.verify() matches, and every row written on either
# site during the cut is on both exactly once.
#
# The sites run in network namespaces (t/GsbNetns.pm, scripts/netns-helper.sh:
# sjc in a, 10.77.0.1; ams in b, 10.77.0.2); the test reaches both through
# their Unix sockets, which no cut touches. Skips itself, saying why, where
# namespaces cannot be made (not root, no helper, no ip or nft).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbFaults qw(exactly_once verify_all);
use GsbNetns;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

if (my $why = netns_skip_reason())
{
	plan skip_all => "network namespaces are not available: $why";
}
for my $tool (qw(ip nft))
{
	plan skip_all => "$tool is not installed (packages iproute2, nftables)" unless find_tool($tool);
}

my $FAILOVER_S = 3;
my %conf = (
	heartbeat_interval => '200ms',
	failover_timeout => "${FAILOVER_S}s",
	failback_delay => '-1',
	apply_timeout => '3s',
	extra_conf => "log_statement = none\nwal_sender_timeout = '3s'");
my $tag = netns_setup();
my $sjc = netns_site('sjc', 'primary', 'a', %conf);
my $ams = netns_site('ams', 'backup', 'b', %conf);
my $schema = "CREATE TABLE prow (id bigint PRIMARY KEY, site text NOT NULL, note text);\n"
  . "SELECT gsb.replicate_table('prow');";
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
netns_connect($sjc, $ams, extra => 'connect_timeout=2');
ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');

my %expected;    # id => site that wrote it
sub write_row
{
	my ($node, $id, $note) = @_;
	$node->safe_psql('postgres',
		"INSERT INTO prow VALUES ($id, " . sql_quote(site_name($node)) . ", " . sql_quote($note) . ")");
	$expected{$id} = site_name($node);
	return;
}
write_row($sjc, 1, 'before the cut');
write_row($ams, 2, 'before the cut');
my $acct = q1($sjc, "SELECT gsb.create_account('split\@example.com', 'split')");
wait_synced($sjc, $ams);
my $term_before = q1($sjc, 'SELECT term FROM gsb.site_state');

# (is_active, the server's clock when it answered) of $node.
sub active_at
{
	my ($node) = @_;
	return split /\|/,
	  q1($node, 'SELECT gsb.is_active(), extract(epoch FROM clock_timestamp())');
}

my $t0 = time();
my ($rc, $out) = ns_request('block', $tag, 'both');
is($rc, 0, 'the helper drops every packet between sjc and ams') or diag($out);

ok(wait_until($ams, 'SELECT gsb.is_active()', 't', $FAILOVER_S + 30),
	sprintf('ams: active after the cut (%.1f s; failover_timeout %d s)', time() - $t0, $FAILOVER_S));
# sjc answered active before and after ams did: at the moment ams answered,
# sjc was active too (the documented risk of a cut link without a witness).
my ($s1, $s1_at) = active_at($sjc);
my ($a1, $a1_at) = active_at($ams);
my ($s2, $s2_at) = active_at($sjc);
is("$s1 $a1 $s2", 't t t',
	sprintf('no witness: sjc (at %.3f and %.3f) and ams (at %.3f) both answer that they are active',
		$s1_at, $s2_at, $a1_at));

# Both sites serve meetings and take writes meanwhile.
for my $n ($sjc, $ams)
{
	my ($src, $sout, $serr) = psql_verbose($n,
		"SELECT gsb.start_meeting(gsb.schedule_meeting($acct, 'during the split', now()))");
	is($src, 0, site_name($n) . ': starts a meeting during the split (both think they are active)')
	  or diag($serr);
}
write_row($sjc, $_, 'sjc during the cut') for (11 .. 15);
write_row($ams, $_, 'ams during the cut') for (21 .. 25);

my $healed_at = time();
($rc, $out) = ns_request('clear', $tag);
is($rc, 0, 'the helper restores the link') or diag($out);
ok(wait_active([ $sjc, $ams ], 'ams', 60),
	sprintf('after the heal both sites name ams active: the higher term wins (%.1f s)', time() - $healed_at));
my $term_after = same_on_both($sjc, $ams, 'SELECT term FROM gsb.site_state',
	'both sites hold the same term after the heal');
cmp_ok($term_after, '>', $term_before, "the winning term ($term_after) is ams's failover, above $term_before");
is(q1($sjc, 'SELECT gsb.is_active()') . q1($ams, 'SELECT gsb.is_active()'), 'ft',
	'only ams answers active after the heal');

for my $n ($sjc, $ams)
{
	ok(wait_event($n, 'split brain', 1, 15), site_name($n) . ': gsb.site_events holds a split brain row');
	my @ev = events_of($n, 'split brain');
	note(site_name($n) . ": split brain: $_->{from_site} -> $_->{to_site}, term $_->{term}: $_->{detail}")
	  for @ev;
	my @both = grep { $_->{detail} =~ /sjc/ && $_->{detail} =~ /ams/ && $_->{detail} =~ /\d\d:\d\d/ } @ev;
	ok(scalar(@both), site_name($n) . ': the split brain detail names both sites with times')
	  or diag(join("\n", map { $_->{detail} } @ev));
}

write_row($sjc, 31, 'sjc after the heal');
write_row($ams, 32, 'ams after the heal');
wait_synced($sjc, $ams);
for my $n ($sjc, $ams)
{
	my %have = map { $_ => 1 } split /\n/, q1($n, 'SELECT id FROM prow');
	my @missing = grep { !$have{$_} } sort { $a <=> $b } keys %expected;
	my @extra = grep { !exists $expected{$_} } sort { $a <=> $b } keys %have;
	is("@missing|@extra", '|', site_name($n) . ': holds every row written on either site, and no other')
	  or diag("missing: @missing; unexpected: @extra");
}
exactly_once($sjc, $ams, 'prow');
exactly_once($sjc, $ams, 'gsb.meetings');
exactly_once($sjc, $ams, 'gsb.site_events');
verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
done_testing();
