# 008_add_peer_errors.pl: pairing and unpairing sites, and every way it can
# go wrong.
#
# gsb.add_peer fails with a clear error (SQLSTATE class 08) for a peer it
# cannot reach, and clearly for a bad conninfo, a name already paired, a
# non-admin caller and a site without track_commit_timestamp; a failed call
# leaves nothing behind. gsb.drop_peer stops replication from the peer, drops
# the slot on the peer and the local origin, and, when the peer is down, still
# succeeds with a WARNING naming the slot it had to leave there.
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
CREATE TABLE items (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('items');
CREATE ROLE tap_user LOGIN;});
}

sub peer_rows
{
	my ($node, $peer) = @_;
	return $node->safe_psql('postgres', 'SELECT count(*) FROM gsb.status WHERE peer = ' . sql_quote($peer));
}

sub origins_named
{
	my ($node, $peer) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_origin WHERE strpos(roname, " . sql_quote($peer) . ') > 0');
}

sub gsb_slots
{
	my ($node) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT slot_name FROM pg_replication_slots WHERE plugin = 'gsb' ORDER BY 1");
}

########################################################################
# A peer that cannot be reached.
########################################################################
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($rc, $out, $err) = psql_verbose($sjc,
	"SELECT gsb.add_peer('nowhere', 'host=127.0.0.1 port=$port dbname=postgres connect_timeout=5')");
isnt($rc, 0, 'add_peer to a port where nothing listens fails');
like(sqlstate_of($err), qr/^08/, 'add_peer to an unreachable peer: SQLSTATE class 08')
  or diag($err);
like($err, qr/ERROR:.*\b(connect|reach|connection)/i, 'the message says it could not connect');
like($err, qr/nowhere|127\.0\.0\.1|$port/, 'the message names the peer or where it was looked for');
like($err, qr/HINT:/, 'with a hint');
is(peer_rows($sjc, 'nowhere'), '0', 'no peer registered after a failed add_peer');
is(origins_named($sjc, 'nowhere'), '0', 'no origin left behind by a failed add_peer');

########################################################################
# A bad conninfo.
########################################################################
($rc, $out, $err) = psql_verbose($sjc, "SELECT gsb.add_peer('ams', 'this is not a conninfo')");
isnt($rc, 0, 'add_peer with a malformed conninfo fails');
like($err, qr/ERROR:\s+[0-9A-Z]{5}:/, 'with an SQLSTATE');
like($err, qr/conninfo|connection (info|string)/i, 'the message says the conninfo is wrong')
  or diag($err);
is(peer_rows($sjc, 'ams'), '0', 'no peer registered after a bad conninfo');

########################################################################
# Only admins may pair sites.
########################################################################
($rc, $out, $err) = psql_verbose($sjc,
	"SET ROLE tap_user;\nSELECT gsb.add_peer('ams', " . sql_quote(peer_connstr($ams)) . ')');
is(sqlstate_of($err), '42501', 'a plain user may not call gsb.add_peer') or diag($err);
($rc, $out, $err) = psql_verbose($sjc, "SET ROLE tap_user;\nSELECT gsb.drop_peer('ams')");
is(sqlstate_of($err), '42501', 'a plain user may not call gsb.drop_peer') or diag($err);

########################################################################
# Pairing, and pairing twice.
########################################################################
connect_sites($sjc, $ams);
($rc, $out, $err) = psql_verbose($sjc,
	"SELECT gsb.add_peer('ams', " . sql_quote(peer_connstr($ams)) . ')');
isnt($rc, 0, 'add_peer for a name that is already a peer fails');
like($err, qr/ERROR:.*\bams\b.*(already|exists)|ERROR:.*(already|exists).*\bams\b/i,
	'the message says that peer ams already exists') or diag($err);
is(peer_rows($sjc, 'ams'), '1', 'still one peer ams');
ok(wait_state($sjc, 'ams', 'streaming'), 'and it still streams');

($rc, $out, $err) = psql_verbose($sjc, "SELECT gsb.drop_peer('lhr')");
isnt($rc, 0, 'drop_peer of a site that is not a peer fails');
like($err, qr/ERROR:.*\blhr\b/, 'the message names it') or diag($err);

$sjc->safe_psql('postgres', "INSERT INTO items VALUES (1, 'sjc')");
$ams->safe_psql('postgres', "INSERT INTO items VALUES (-1, 'ams')");
wait_synced($sjc, $ams);
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM items'), '2', 'replication works both ways before drop_peer');

########################################################################
# drop_peer with the peer up.
########################################################################
my @slots_on_ams = gsb_slots($ams);
is(scalar @slots_on_ams, 1, 'ams has one gsb slot: the one sjc reads from') or diag("@slots_on_ams");
is(origins_named($sjc, 'ams'), '1', 'sjc has an origin named after ams');

($rc, $out, $err) = psql_verbose($sjc, "SELECT gsb.drop_peer('ams')");
is($rc, 0, "sjc: gsb.drop_peer('ams') succeeds") or diag($err);
is(join(',', gsb_slots($ams)), '', 'the slot on ams is gone');
is(origins_named($sjc, 'ams'), '0', 'the origin on sjc is gone');
is(peer_rows($sjc, 'ams'), '0', 'gsb.status on sjc no longer lists ams');
ok($ams->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_replication"),
	'nothing streams from ams any more');

# ams -> sjc is stopped; sjc -> ams (ams's own worker) goes on.
$ams->safe_psql('postgres', "INSERT INTO items VALUES (-2, 'ams after drop')");
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (2, 'sjc after drop')");
ok($ams->poll_query_until('postgres', 'SELECT count(*) = 1 FROM items WHERE id = 2'),
	'ams still receives from sjc (drop_peer on sjc stops only sjc\'s replication from ams)');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams still streams from sjc');
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id = -2'), '0',
	'a row written on ams after drop_peer does not arrive on sjc');

########################################################################
# drop_peer with the peer down.
########################################################################
my @slots_on_sjc = gsb_slots($sjc);
is(scalar @slots_on_sjc, 1, 'sjc has one gsb slot: the one ams reads from');
$sjc->stop('immediate');
($rc, $out, $err) = psql_verbose($ams, "SELECT gsb.drop_peer('sjc')");
is($rc, 0, "ams: gsb.drop_peer('sjc') succeeds while sjc is down") or diag($err);
like($err, qr/WARNING:.*\Q$slots_on_sjc[0]\E/s, "it warns, naming the slot left on sjc ($slots_on_sjc[0])")
  or diag($err);
is(peer_rows($ams, 'sjc'), '0', 'gsb.status on ams no longer lists sjc');
is(origins_named($ams, 'sjc'), '0', 'the origin on ams is gone');
$sjc->start;
is(join(',', gsb_slots($sjc)), $slots_on_sjc[0], 'the slot is indeed still on sjc, as the warning said');
$sjc->safe_psql('postgres', "SELECT pg_drop_replication_slot('$slots_on_sjc[0]')");

########################################################################
# Pairing again after drop_peer works; a site without commit timestamps
# cannot pair.
########################################################################
connect_sites($sjc, $ams, copy_data => 0);
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (3, 'sjc again')");
$ams->safe_psql('postgres', "INSERT INTO items VALUES (-3, 'ams again')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM items WHERE id = 3'), 'sjc again', 'ams: paired again');
is($sjc->safe_psql('postgres', 'SELECT v FROM items WHERE id = -3'), 'ams again', 'sjc: paired again');
$sjc->safe_psql('postgres', "SELECT gsb.drop_peer('ams')");
$ams->safe_psql('postgres', "SELECT gsb.drop_peer('sjc')");

$ams->safe_psql('postgres', 'ALTER SYSTEM SET track_commit_timestamp = off');
$ams->restart;
($rc, $out, $err) = psql_verbose($ams,
	"SELECT gsb.add_peer('sjc', " . sql_quote(peer_connstr($sjc)) . ')');
isnt($rc, 0, 'add_peer fails when track_commit_timestamp is off');
like($err, qr/track_commit_timestamp/, 'the error names track_commit_timestamp') or diag($err);
is(sqlstate_of($err), '55000', 'SQLSTATE 55000 (object not in prerequisite state)');
is(peer_rows($ams, 'sjc'), '0', 'nothing registered');

check_logs($sjc, $ams);
done_testing();
