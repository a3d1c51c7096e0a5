# 326_witness.pl: a witness, the vote, the lease and fencing (README, "One
# active site"), on one host: a link is "cut" by giving a site a connection
# string that leads nowhere (port 1), in both directions where the case needs
# it; t/328-t/329 cut real links in network namespaces.
#
#  1. gsb.add_witness / gsb.drop_witness refuse what they must: unreachable
#     (class 08), a data site or a cluster without gsb (not a witness), a
#     wrong name, a second witness, a non-superuser without a password.
#  2. With the witness: sjc active, ams not; gsb.status shows the witness.
#  3. The link sjc-ams cut, both reach the witness: ams asks for the vote and
#     is refused; sjc stays active, ams never is.
#  4. sjc cut off from both: sjc fences itself (event `fenced`, is_active
#     false, start_meeting refused) before ams is granted the next term; ams
#     becomes active; never both at once (sampled); the witness granted that
#     term once and refuses it to anyone else. Healed: sjc takes ams's view
#     and records `unfenced`.
#  5. gsb.fence_writes: a client write on the non-active site is SQLSTATE
#     25006 with a hint naming the active site; replication goes on.
#  6. A restart: the restarted active site answers active only once it has
#     heard a current view (not while it reaches neither peer nor witness).
#  7. Without a witness: gsb.status warns; a cut leaves both active, and when
#     the sites meet again the higher term wins and `split brain` is recorded
#     (on both sites: the row is replicated).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbHttp qw(wait_http);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $FAILOVER_S = 3;
my %conf = (failover_timeout => "${FAILOVER_S}s", heartbeat_interval => '200ms');
my ($sjc, $ams) = two_sites(%conf);
my $wit = new_site('wit', 'witness', %conf);

ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');
like(q1($sjc, 'SELECT warning FROM gsb.status'), qr/no witness/,
	'sjc: without a witness gsb.status warns that there is none');

# --- 1. add_witness / drop_witness errors ------------------------------------
sub try_sql
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = psql_verbose($node, $sql);
	return ($rc, sqlstate_of($err), $err);
}
my $wit_conn = peer_connstr($wit);
my (undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('wit', " . sql_quote("$wit_conn port=1") . ")");
like($code, qr/^08/, "add_witness: an unreachable witness is class 08 ($code)");
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('ams2', " . sql_quote(peer_connstr($ams)) . ")");
is($code, '55000', 'add_witness: a data site is refused');
like($err, qr/not a gsb witness/, '... as not a gsb witness');
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('wit', " . sql_quote("$wit_conn dbname=template1") . ")");
is($code, '55000', 'add_witness: a cluster without gsb is refused');
like($err, qr/not a gsb witness/, '... as not a gsb witness');
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('other', " . sql_quote($wit_conn) . ")");
is($code, '22023', 'add_witness: a witness under another name is refused');
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('ams', " . sql_quote($wit_conn) . ")");
is($code, '22023', 'add_witness: the peer cannot be the witness');
# A gsb_admin member that is not a superuser: no password, no witness.
$sjc->safe_psql('postgres', 'CREATE ROLE wit_admin LOGIN IN ROLE gsb_admin');
my ($out, $err2) = ('', '');
$sjc->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT gsb.add_witness('wit', " . sql_quote($wit_conn) . ")",
	stdout => \$out, stderr => \$err2, extra_params => [ '-U', 'wit_admin' ]);
is(sqlstate_of($err2), '42501', 'add_witness: a non-superuser without a password is refused');
like($err2, qr/password is required/, '... password is required');
# A witness does not take a witness, nor a peer.
(undef, $code, $err) =
  try_sql($wit, "SELECT gsb.add_witness('sjc', " . sql_quote(peer_connstr($sjc)) . ")");
is($code, '55000', 'add_witness on a witness is refused');
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_peer('wit', " . sql_quote($wit_conn) . ")");
is($code, '55000', 'add_peer: a witness is not a data site');

for my $n ($sjc, $ams)
{
	my ($rc, undef, $e) = try_sql($n, "SELECT gsb.add_witness('wit', " . sql_quote($wit_conn) . ")");
	is($rc, 0, site_name($n) . ': add_witness succeeds') or diag($e);
}
(undef, $code, $err) =
  try_sql($sjc, "SELECT gsb.add_witness('wit', " . sql_quote($wit_conn) . ")");
is($code, '42710', 'add_witness: a second witness is refused');
(undef, $code, $err) = try_sql($sjc, "SELECT gsb.drop_witness('nobody')");
is($code, '42704', 'drop_witness: an unknown witness is refused');
is((try_sql($sjc, "SELECT gsb.drop_witness('wit')"))[0], 0, 'drop_witness succeeds');
is((try_sql($sjc, "SELECT gsb.add_witness('wit', " . sql_quote($wit_conn) . ")"))[0],
	0, 'and the witness can be added again');

# --- 2. steady state with the witness --------------------------------------
ok(wait_until($sjc, 'SELECT witness_reachable FROM gsb.status', 't', 30),
	'sjc: gsb.status shows the witness reachable');
ok(wait_until($ams, 'SELECT witness_reachable FROM gsb.status', 't', 30),
	'ams: gsb.status shows the witness reachable');
is(q1($sjc, "SELECT witness || ':' || coalesce(warning, '') FROM gsb.status"), 'wit:',
	'sjc: gsb.status names the witness, no warning');
ok(wait_until($sjc, 'SELECT gsb.is_active()', 't', 30), 'sjc: active (a live lease)');
is(q1($ams, 'SELECT gsb.is_active()'), 'f', 'ams: not active');
my $http = PostgreSQL::Test::Cluster::get_free_port();
reload_with($sjc, 'gsb.http_port' => $http);
my (undef, $http_ok) = wait_http($http, '/active', 200, undef, 30);
ok($http_ok, 'sjc: GET /active answers 200 while it holds the lease');

# Connection strings that lead nowhere, and back.
my %orig;
sub cut
{
	my ($node, $what) = @_;    # $what: 'peer' or 'witness'
	my $table = $what eq 'peer' ? 'gsb.peers' : 'gsb.witness';
	$orig{ site_name($node) . $what } //= q1($node, "SELECT conninfo FROM $table");
	$node->safe_psql('postgres', "UPDATE $table SET conninfo = conninfo || ' port=1'");
}
sub heal
{
	my ($node, $what) = @_;
	my $table = $what eq 'peer' ? 'gsb.peers' : 'gsb.witness';
	$node->safe_psql('postgres',
		"UPDATE $table SET conninfo = " . sql_quote($orig{ site_name($node) . $what }));
}

# Samples is_active on both sites every ~50 ms for $seconds; returns
# (samples, both-active samples, first time ams was active, last time sjc was).
my ($ss, $sa);
sub sample
{
	my ($seconds, $until) = @_;
	my ($n, $both, $ams_first, $sjc_last) = (0, 0, undef, undef);
	my $end = time() + $seconds;
	while (time() < $end)
	{
		my ($x) = $ss->run('SELECT gsb.is_active()');
		my $tx = time();
		my ($y) = $sa->run('SELECT gsb.is_active()');
		my $ty = time();
		$n++;
		$both++ if $x eq 't' && $y eq 't';
		$sjc_last = $tx if $x eq 't';
		$ams_first //= $ty if $y eq 't';
		last if $until && $until->($x, $y);
		usleep(50_000);
	}
	return ($n, $both, $ams_first, $sjc_last);
}
$ss = open_session($sjc);
$sa = open_session($ams);

# --- 3. the link between the data sites cut, the witness reachable ---------
cut($sjc, 'peer');
cut($ams, 'peer');
ok(wait_until($ams, 'SELECT NOT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'cut sjc-ams: ams finds sjc unreachable');
my ($n, $both) = sample(3 * $FAILOVER_S);
is($both, 0, "cut sjc-ams: never both active ($n samples over 3 x failover_timeout)");
is(q1($sjc, 'SELECT gsb.is_active()'), 't', 'cut sjc-ams: sjc stays active (it reaches the witness)');
is(q1($ams, "SELECT count(*) FROM gsb.site_events WHERE reason = 'automatic failover'"),
	'0', 'cut sjc-ams: no failover (the witness refused its vote)');
heal($sjc, 'peer');
heal($ams, 'peer');
ok(wait_until($ams, 'SELECT peer_reachable FROM gsb._monitor_status()', 't', 30),
	'healed: ams reaches sjc again');

# --- 4. sjc cut off from both ----------------------------------------------
my $term0 = q1($sjc, 'SELECT term FROM gsb.site_state');
my $t0 = time();
cut($sjc, 'peer');
cut($sjc, 'witness');
cut($ams, 'peer');
my ($n4, $both4, $ams_first, $sjc_last) =
  sample(6 * $FAILOVER_S, sub { $_[1] eq 't' });
is($both4, 0, "sjc isolated: never both active ($n4 samples)");
ok(defined $ams_first, sprintf('sjc isolated: ams became active (after %.2f s)',
		defined $ams_first ? $ams_first - $t0 : -1));
cmp_ok($ams_first - $t0, '<=', $FAILOVER_S + 3, 'ams: within failover_timeout + 3 s')
  if defined $ams_first;
ok(defined $sjc_last && defined $ams_first && $ams_first - $sjc_last >= 0.5,
	sprintf('at least 0.5 s between sjc answering active for the last time and ams for the first (%.2f s)',
		(defined $sjc_last && defined $ams_first) ? $ams_first - $sjc_last : -1));
ok(wait_event($sjc, 'fenced', 1, 30), 'sjc: records fenced');
is(q1($sjc, 'SELECT gsb.is_active()'), 'f', 'sjc: fenced, not active');
(undef, $http_ok) = wait_http($http, '/active', 503, undef, 10);
ok($http_ok, 'sjc: GET /active answers 503 while fenced');
my ($rc, $o, $e) = psql_verbose($sjc,
	"SELECT gsb.start_meeting(gsb.schedule_meeting(gsb.create_account('f\@x', 'F'), 'm', now()))");
like($e, qr/not serving/, 'sjc: start_meeting refused while fenced');
my $fenced_at = q1($sjc,
	"SELECT extract(epoch FROM min(at)) FROM gsb.site_events WHERE reason = 'fenced'");
my $failover_at = q1($ams,
	"SELECT extract(epoch FROM min(at)) FROM gsb.site_events WHERE reason = 'automatic failover'");
cmp_ok($fenced_at, '<', $failover_at, 'sjc recorded fenced before ams failed over');
my $term1 = q1($ams, 'SELECT term FROM gsb.site_state');
is($term1, $term0 + 1, 'ams: active at the next term');
is(q1($wit, "SELECT active_site || ',' || requested_by || ',' || reason FROM gsb.witness_terms WHERE term = $term1"),
	'ams,ams,automatic failover', 'the witness recorded its vote for that term');
my $again = q1($wit,
	"SELECT gsb._witness_grant('sjc', $term1, 'sjc', 'normal', false, 'failback', 'ams', 3000)");
like($again, qr/granted term $term1 already/, 'the witness does not grant that term again');
is(q1($wit, "SELECT count(*) FROM gsb.witness_terms WHERE term = $term1"), '1',
	'one grant of the term');

heal($sjc, 'peer');
heal($sjc, 'witness');
heal($ams, 'peer');
ok(wait_active([ $sjc, $ams ], 'ams', 30), 'healed: both sites agree that ams is active');
ok(wait_event($sjc, 'unfenced', 1, 30), 'healed: sjc records unfenced');
is(q1($sjc, 'SELECT gsb.is_active()'), 'f', 'healed: sjc is not active');
ok(wait_until($ams, 'SELECT gsb.is_active()', 't', 30), 'healed: ams is');

# --- 5. gsb.fence_writes ---------------------------------------------------
reload_with($sjc, 'gsb.fence_writes' => 'on');
($rc, $o, $e) = psql_verbose($sjc, "INSERT INTO gsb.accounts (email, name) VALUES ('w\@x', 'W')");
is(sqlstate_of($e), '25006', 'fence_writes: a write on the non-active site is 25006');
like($e, qr/HINT:.*active site, ams/, 'fence_writes: the hint names the active site');
my $id = q1($ams, "SELECT gsb.create_account('a\@x', 'A')");
ok(wait_until($sjc, "SELECT count(*) FROM gsb.accounts WHERE id = $id", '1', 30),
	'fence_writes: replication into the fenced site goes on');
reload_with($sjc, 'gsb.fence_writes' => 'off');
($rc, $o, $e) = psql_verbose($sjc, "UPDATE gsb.accounts SET name = 'A2' WHERE id = $id");
is($rc, 0, 'fence_writes off: the write is allowed again') or diag($e);

# --- 6. a restart: no answer "active" before a current view ----------------
cut($ams, 'peer');
cut($ams, 'witness');
$ams->restart;
my ($held, $what) = hold_for($ams, 'SELECT gsb.is_active()', 'f', $FAILOVER_S + 2);
ok($held, 'restarted ams, reaching neither peer nor witness: not active although its view says so')
  or diag("got: $what");
is(q1($ams, 'SELECT gsb.active_site()'), 'ams', 'ams: its stored view names itself');
heal($ams, 'witness');
ok(wait_until($ams, 'SELECT gsb.is_active()', 't', 30), 'ams: active once it hears the witness');
heal($ams, 'peer');

# --- 7. without a witness: split brain detected ----------------------------
$ss->close;
$sa->close;
$_->safe_psql('postgres', "SELECT gsb.drop_witness('wit')") for ($sjc, $ams);
like(q1($ams, 'SELECT warning FROM gsb.status'), qr/no witness/, 'ams: warns again');
$sjc->safe_psql('postgres', 'SELECT gsb.failback()');
ok(wait_active([ $sjc, $ams ], 'sjc', 30), 'failback: sjc active again');
ok(wait_until($sjc, 'SELECT gsb.is_active()', 't', 30), 'sjc: active');
cut($sjc, 'peer');
cut($ams, 'peer');
ok(wait_until($ams, 'SELECT gsb.is_active()', 't', 30), 'no witness, cut: ams fails over');
is(q1($sjc, 'SELECT gsb.is_active()'), 't', 'no witness, cut: sjc goes on serving: both active');
heal($sjc, 'peer');
heal($ams, 'peer');
ok(wait_active([ $sjc, $ams ], 'ams', 30), 'met again: the higher term (ams) wins');
for my $n ($sjc, $ams)
{
	ok(wait_event($n, 'split brain', 1, 30), site_name($n) . ': split brain recorded');
}
my ($sb) = events_of($ams, 'split brain');
like($sb->{detail}, qr/both sites were active: sjc from .* until .*; ams from /,
	'the detail says when each site was active');
note("split brain: $sb->{detail}");

check_logs($sjc, $ams, $wit);
done_testing();
