# 014_encoding.pl: sites whose databases have different encodings. Values
# travel byte for byte (binary text values are verified in the receiving
# database's encoding, not converted), so gsb.add_peer refuses such a peer
# with SQLSTATE 0A000 and a hint, in both directions, and adds nothing; and
# an apply worker that meets one anyway (a peer row written past add_peer, as
# after a database recreated behind the same connection string) stops at
# connect with the reason in gsb.status and applies nothing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary', initdb_extra => [ '--encoding=UTF8', '--locale=C' ]);
my $ams = new_site('ams', 'backup', initdb_extra => [ '--encoding=LATIN1', '--locale=C' ]);
is($sjc->safe_psql('postgres', 'SHOW server_encoding') . ' ' . $ams->safe_psql('postgres', 'SHOW server_encoding'),
	'UTF8 LATIN1', 'sjc is UTF8, ams LATIN1');
my $schema = q{
CREATE TABLE notes (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('notes');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);

for my $pair ([ $sjc, $ams ], [ $ams, $sjc ])
{
	my ($node, $peer) = @$pair;
	my ($me, $them) = (site_name($node), site_name($peer));
	my ($rc, $out, $err) = psql_verbose($node,
		"SELECT gsb.add_peer('$them', " . sql_quote(peer_connstr($peer)) . ')');
	isnt($rc, 0, "$me: gsb.add_peer('$them') fails");
	is(sqlstate_of($err), '0A000', "$me: with SQLSTATE 0A000");
	like($err, qr/the peer's database encoding is \w+, this site's is \w+/, "$me: the message names both encodings");
	like($err, qr/HINT:\s+Create the databases of both sites with the same encoding/, "$me: and says what to do");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM gsb.peers'), '0', "$me: no peer was added");
}

# A peer row that add_peer did not check: the worker refuses at connect.
$sjc->safe_psql('postgres', "INSERT INTO notes VALUES (1, 'från sjc')");
$ams->safe_psql('postgres',
	"INSERT INTO gsb.peers (name, conninfo, copy_data, role) VALUES ('sjc', "
	  . sql_quote(peer_connstr($sjc)) . ", true, 'primary'); SELECT gsb._wake_supervisor();");
ok($ams->poll_query_until('postgres',
		"SELECT last_error LIKE '%database encoding is UTF8, this site''s is LATIN1%' FROM gsb.status WHERE peer = 'sjc'"),
	"ams: the worker for sjc stops at connect, and gsb.status says why");
is($ams->safe_psql('postgres', "SELECT state FROM gsb.status WHERE peer = 'sjc'"), 'error', "ams: state is error");
is($ams->safe_psql('postgres', 'SELECT count(*) FROM notes'), '0', 'ams: nothing was copied or applied');
$ams->safe_psql('postgres', "SELECT gsb.drop_peer('sjc')");
is($ams->safe_psql('postgres', 'SELECT count(*) FROM gsb.peers'), '0', 'ams: the peer can be dropped again');
done_testing();
