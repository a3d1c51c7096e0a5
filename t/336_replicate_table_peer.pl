# 336_replicate_table_peer.pl: gsb.replicate_table() asks the peer first.
#
# Once a peer is linked, registering a table that the peer does not have, or
# whose columns (names or types) differ there, used to succeed: the stream
# then stalled at the first change to it. Now it is a clear error naming the
# table, the peer and the difference (SQLSTATE and hint), in realtime and
# daily mode, on either site; an unreachable peer is an error of class 08
# within gsb.peer_timeout. Registering before the sites are paired still
# works (nothing to ask yet), and so does a table that matches (columns in
# another order included), whose rows then arrive.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $PEER_TIMEOUT_S = 2;
my $SLACK_S = 3;

# Before pairing: nothing to ask, it works as before.
my ($sjc, $ams) = two_sites(
	no_connect => 1,
	schema => "CREATE TABLE early (id int PRIMARY KEY, v text);\n"
	  . "SELECT gsb.replicate_table('early');");
is(q1($sjc, "SELECT count(*) FROM gsb.replicated_tables WHERE relation = 'early'::regclass"), '1',
	'sjc: replicate_table before add_peer works');
connect_sites($sjc, $ams);

# refused($node, $sql, $sqlstate, [$re...], $name): $sql fails on $node with
# $sqlstate and a text (message, detail, hint) matching every $re.
sub refused
{
	my ($node, $sql, $state, $res, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = psql_verbose($node, $sql);
	note("$name: $err");
	my $ok = $rc != 0 && sqlstate_of($err) eq $state;
	$ok &&= $err =~ $_ for @$res;
	ok($ok, $name) or diag("rc $rc, stdout '$out', stderr: $err");
	return $err;
}

sub registered
{
	my ($node, $rel) = @_;
	return q1($node, "SELECT count(*) FROM gsb.replicated_tables WHERE relation::text = '$rel'");
}

########################################################################
# A table missing on the peer.
########################################################################
$sjc->safe_psql('postgres', 'CREATE TABLE only_here (id int PRIMARY KEY, v text)');
my $err = refused($sjc, "SELECT gsb.replicate_table('only_here')", '42P01',
	[ qr/table public\.only_here does not exist on peer ams/, qr/HINT:.*Create it on ams/ ],
	'sjc: a table that ams does not have is refused (42P01), naming table and peer');
is(registered($sjc, 'only_here'), '0', 'sjc: ... and is not registered');
refused($sjc, "SELECT gsb.replicate_table('only_here', 'daily')", '42P01',
	[qr/only_here does not exist on peer ams/], 'sjc: the same in daily mode');

########################################################################
# A column of another name.
########################################################################
$sjc->safe_psql('postgres', 'CREATE TABLE named (id int PRIMARY KEY, a text)');
$ams->safe_psql('postgres', 'CREATE TABLE named (id int PRIMARY KEY, b text)');
refused($ams, "SELECT gsb.replicate_table('named')", '55000',
	[ qr/table public\.named differs on peer sjc/, qr/DETAIL:.*column a is on sjc but not here/,
		qr/column b is missing on sjc/, qr/HINT:/ ],
	'ams: a column named otherwise on sjc is refused (55000), naming both columns');
is(registered($ams, 'named'), '0', 'ams: ... and is not registered');

########################################################################
# A column of another type, in either mode and from either site.
########################################################################
$sjc->safe_psql('postgres', 'CREATE TABLE typed (id int PRIMARY KEY, price text)');
$ams->safe_psql('postgres', 'CREATE TABLE typed (id int PRIMARY KEY, price numeric)');
refused($sjc, "SELECT gsb.replicate_table('typed')", '55000',
	[ qr/table public\.typed differs on peer ams/, qr/DETAIL:.*column price is text here but numeric on ams/ ],
	'sjc: a column of another type on ams is refused (55000), naming column and types');
refused($ams, "SELECT gsb.replicate_table('typed', 'daily')", '55000',
	[qr/DETAIL:.*column price is numeric here but text on sjc/],
	'ams (daily, the side that copies from the primary): refused too');
is(registered($_, 'typed'), '0', site_name($_) . ': typed is not registered') for ($sjc, $ams);

########################################################################
# Registered on the peer with another mode.
########################################################################
$_->safe_psql('postgres', 'CREATE TABLE moded (id int PRIMARY KEY, v text)') for ($sjc, $ams);
$ams->safe_psql('postgres', "SELECT gsb.replicate_table('moded', 'daily')");
refused($sjc, "SELECT gsb.replicate_table('moded')", '55000',
	[qr/table public\.moded is replicated 'daily' on peer ams, not 'realtime'/],
	'sjc: a table that ams replicates daily cannot be realtime here');
$ams->safe_psql('postgres', "SELECT gsb.unreplicate_table('moded')");

########################################################################
# Matching tables: accepted on both sites, and the rows arrive.
########################################################################
$sjc->safe_psql('postgres', 'CREATE TABLE good (id int PRIMARY KEY, v text, n int GENERATED ALWAYS AS (id * 2) STORED)');
# On ams the columns come in another order, and v after a dropped column.
$ams->safe_psql('postgres',
	'CREATE TABLE good (tmp int, id int PRIMARY KEY, n int GENERATED ALWAYS AS (id * 2) STORED, v text);'
	  . ' ALTER TABLE good DROP COLUMN tmp');
for my $n ($sjc, $ams)
{
	my ($rc, $out, $e) = psql_verbose($n, "SELECT gsb.replicate_table('good')");
	is($rc, 0, site_name($n) . ': a matching table is accepted') or diag($e);
}
$sjc->safe_psql('postgres', "INSERT INTO good (id, v) VALUES (1, 'from sjc')");
ok(wait_until($ams, "SELECT v FROM good WHERE id = 1", 'from sjc', 60), 'ams: its rows arrive');
$_->safe_psql('postgres', 'CREATE TABLE cfg (k text PRIMARY KEY, v text)') for ($sjc, $ams);
for my $n ($ams, $sjc)
{
	my ($rc, $out, $e) = psql_verbose($n, "SELECT gsb.replicate_table('cfg', 'daily')");
	is($rc, 0, site_name($n) . ': a matching daily table is accepted') or diag($e);
}
$sjc->safe_psql('postgres', "INSERT INTO cfg VALUES ('colour', 'blue')");
is(q1($ams, 'SELECT gsb.sync_config() > 0'), 't', 'ams: the daily copy runs');
is(q1($ams, "SELECT v FROM cfg WHERE k = 'colour'"), 'blue', 'ams: the daily table is copied');
ok(wait_synced($sjc, $ams), 'the stream did not stall');

########################################################################
# The peer unreachable: class 08 within gsb.peer_timeout.
########################################################################
$_->safe_psql('postgres', 'CREATE TABLE late (id int PRIMARY KEY)') for ($sjc, $ams);
$ams->stop('immediate');
my $t0 = time();
$err = refused($sjc, "SET gsb.peer_timeout = '${PEER_TIMEOUT_S}s'; SELECT gsb.replicate_table('late')",
	'08001', [ qr/cannot compare table public\.late with peer ams/, qr/HINT:/ ],
	'sjc: with ams down, replicate_table is an error of class 08 naming table and peer');
my $took = time() - $t0;
cmp_ok($took, '<', $PEER_TIMEOUT_S + $SLACK_S,
	sprintf('... within gsb.peer_timeout (%d s) + %d s: %.2f s', $PEER_TIMEOUT_S, $SLACK_S, $took));
is(registered($sjc, 'late'), '0', 'sjc: ... and the table is not registered');
my ($rc, $out, $e) = psql_verbose($sjc, "SELECT gsb.unreplicate_table('good')");
is($rc, 0, 'sjc: unreplicate_table needs no peer') or diag($e);

$ams->start;
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: streaming from ams again');
($rc, $out, $e) = psql_verbose($sjc, "SELECT gsb.replicate_table('late')");
is($rc, 0, 'sjc: with ams back, the table is accepted') or diag($e);

check_logs($sjc, $ams);
done_testing();
