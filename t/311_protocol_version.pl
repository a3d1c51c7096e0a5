# 311_protocol_version.pl: peers that speak different gsb protocol versions
# refuse each other with a clear error, and nothing is applied meanwhile.
#
# A site is made to speak the next protocol version with the test hook
# gsb.fault_injection = 'protocol_version_next' (gsb.protocol_version() and
# the apply worker's START_REPLICATION then say kVersion + 1; its output
# plugin still accepts only the versions it knows).
#   1. gsb.add_peer towards a peer speaking another version fails with
#      SQLSTATE 0A000, both versions in the message and a hint, and adds nothing.
#   2. An apply worker that asks its peer for a version the peer does not speak
#      is refused by the peer's output plugin: gsb.status shows the refusal,
#      the worker retries with backoff, nothing is applied; once both speak the
#      same version again, every row written meanwhile arrives exactly once.
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
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
my $version = $sjc->safe_psql('postgres', 'SELECT gsb.protocol_version()');
like($version, qr/^\d+$/, "this build speaks gsb protocol version $version");

# 1. add_peer towards a newer peer.
set_fault($sjc, 'protocol_version_next');
is($sjc->safe_psql('postgres', 'SELECT gsb.protocol_version()'), $version + 1,
	'sjc now says it speaks the next version');
my ($rc, $out, $err) = psql_verbose($ams,
	"SELECT gsb.add_peer('sjc', " . sql_quote(peer_connstr($sjc)) . ", false)");
isnt($rc, 0, 'add_peer towards a peer that speaks another version fails');
is(sqlstate_of($err), '0A000', 'with SQLSTATE 0A000 (feature_not_supported)');
like($err, qr/the peer speaks gsb protocol version ${\($version + 1)}, this site $version/,
	'the message gives both versions');
like($err, qr/HINT:\s+Run the same gsb version on both sites/, 'and a hint');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM gsb.peers'), '0', 'no peer was added');
set_fault($sjc, '');

connect_sites($sjc, $ams, copy_data => 0);
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (1, 'before')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM items WHERE id = 1'), 'before', 'the sites replicate');

# 2. ams's worker asks sjc for the next version.
set_fault($ams, 'protocol_version_next');
my $old = apply_pid($ams, 'sjc');
$ams->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
$sjc->safe_psql('postgres', "INSERT INTO items SELECT g, 'while refused' FROM generate_series(2, 101) g");
ok( $ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'protocol version ${\($version + 1)} is not supported' "
		  . "FROM gsb.status WHERE peer = 'sjc'"),
	"ams's gsb.status shows that sjc refused the version it asked for");
my $last = $ams->safe_psql('postgres', "SELECT last_error FROM gsb.status WHERE peer = 'sjc'");
note("last_error: $last");
like($last, qr/speaks gsb protocol versions? .*$version/, 'the error says which versions sjc speaks');
ok( $ams->poll_query_until('postgres',
		"SELECT count(*) >= 2 FROM regexp_matches(pg_read_file(" . sql_quote($ams->logfile) . "), "
		  . "'apply worker for peer \"sjc\": [^\\n]*protocol version ${\($version + 1)} is not supported', 'g')"),
	'the worker tried again, with backoff');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items'), '1', 'nothing was applied while refused');

set_fault($ams, '');
ok(wait_state($ams, 'sjc', 'streaming'), 'once both speak the same version, ams streams again');
wait_synced($sjc, $ams);
exactly_once($sjc, $ams, 'items');
is($ams->safe_psql('postgres', "SELECT coalesce(last_error, '') FROM gsb.status WHERE peer = 'sjc'"), '',
	'and last_error is cleared');
check_logs($sjc, $ams);
done_testing();
