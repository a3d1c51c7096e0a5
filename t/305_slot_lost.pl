# 305_slot_lost.pl: a peer down longer than max_slot_wal_keep_size allows.
#
# sjc keeps at most 16 MB of WAL for slots. ams is stopped; sjc writes rows
# that ams will never be able to stream, then enough WAL (segment switches
# and checkpoints) that sjc invalidates ams's slot (wal_status 'lost'). When
# ams comes back, its gsb.status must say state 'error' with a last_error
# that says the slot is lost and the peer must be re-seeded; the rows written
# meanwhile are missing on ams only with that error showing (never silently).
# Then gsb.drop_peer + gsb.add_peer(copy_data => true) on ams re-seeds it:
# every row is on both sites exactly once, gsb.verify() says match.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary',
	extra_conf => "max_slot_wal_keep_size = '16MB'\nmin_wal_size = '32MB'\nmax_wal_size = '64MB'");
my $ams = new_site('ams', 'backup');
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
$sjc->safe_psql('postgres', 'CREATE TABLE filler (v text)');    # not replicated
connect_sites($sjc, $ams);

sub write_rows
{
	my ($node, $base, $n) = @_;
	$node->safe_psql('postgres', join("\n",
		map { "INSERT INTO items VALUES (" . ($base + $_) . ", '" . site_name($node) . "', md5('$_'));" } 1 .. $n));
	return;
}

write_rows($sjc, 0, 100);
write_rows($ams, 10000, 100);
wait_synced($sjc, $ams);

########################################################################
# ams down; sjc writes and drops the WAL that ams's slot held.
########################################################################
$ams->stop('fast');
write_rows($sjc, 20000, 100);    # rows ams cannot stream any more
my $lost = 0;
for my $i (1 .. 40)
{
	$sjc->safe_psql('postgres',
		"INSERT INTO filler SELECT repeat(md5(g::text), 30) FROM generate_series(1, 2000) g;"
		  . " SELECT pg_switch_wal(); CHECKPOINT;");
	if ($sjc->safe_psql('postgres', "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'gsb_ams'") eq 'lost')
	{
		$lost = $i;
		last;
	}
}
ok($lost, "sjc: slot gsb_ams is lost (wal_status 'lost') after $lost rounds of WAL and CHECKPOINT");
$GsbFaults::FIGURES{faults}++;

########################################################################
# ams comes back: an error, never a silent gap.
########################################################################
my $off = log_offset($ams);
$ams->start;
ok(wait_state($ams, 'sjc', 'error'), 'ams: gsb.status shows state error for sjc');
my $st = status_row($ams, 'sjc');
note("ams: last_error: $st->{last_error}");
like($st->{last_error}, qr/lost|invalidated/i, 'ams: last_error says the slot is lost');
like($st->{last_error}, qr/re-seed|add_peer|copy_data/i, 'ams: last_error says the peer must be re-seeded');
my @groups = grep { /gsb apply worker for peer "sjc"/ && /lost|invalidated/ } error_groups($ams, $off);
ok(@groups, 'ams: the server log has the error') and note("ams log:\n$groups[0]");

# The rows written while ams was down are not there, and that is not silent:
# the error still shows, the peer is not reported as streaming.
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id > 20000'), '0',
	'ams: the rows written on sjc meanwhile did not arrive');
is($ams->safe_psql('postgres', "SELECT state FROM gsb.status WHERE peer = 'sjc'"), 'error',
	'ams: and gsb.status still shows the error');
# (On ams: gsb.verify first waits for the peer to have this site's changes,
# which sjc does; on sjc it would wait its full minute for ams.)
my $verify = $ams->safe_psql('postgres',
	"SELECT status || ' ' || local_rows || '/' || peer_rows FROM gsb.verify('items')");
is($verify, 'differs 200/300', 'ams: gsb.verify(items) says differs (200 rows here, 300 on sjc)');

########################################################################
# Re-seed: drop_peer + add_peer(copy_data => true) on ams.
########################################################################
my ($rc, $out, $err) = psql_verbose($ams, "SELECT gsb.drop_peer('sjc')");
is($rc, 0, "ams: gsb.drop_peer('sjc') succeeds with the slot lost") or diag($err);
note("drop_peer said: $err") if $err;
add_peer($ams, $sjc, copy_data => 1);
ok(wait_state($ams, 'sjc', 'streaming'), 'ams: streaming from sjc after the re-seed');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: still streaming from ams');
write_rows($sjc, 30000, 10);
write_rows($ams, 40000, 10);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id BETWEEN 20001 AND 20100'), '100',
	'ams: the rows written on sjc while ams was down are there after the re-seed');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items'), '320', 'ams: 320 rows');
exactly_once($sjc, $ams, 'items');
verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(1);
done_testing();
