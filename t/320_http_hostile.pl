# 320_http_hostile.pl: the HTTP endpoint keeps serving load balancers while
# hostile clients hold it, and tells strangers nothing personal.
#
# 1. 200 connections that never finish a request, then 20 health checks: each
#    check is answered (200 on the active site) within 1 s.
# 2. A session holds gsb's site state locked: /active is still answered within
#    ~1.5 s (the query's lock/statement timeout), not held until the lock goes.
# 3. /status without the bearer token of gsb.http_status_token (or with a
#    wrong one) shows each peer's name and state only: no positions, no
#    last_error (which can hold row values); with the token, everything.
# 4. The seed's address GET /<company>/detectbackup.php answers as
#    /detectbackup.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbHttp;
use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $token = 'tok-' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
my ($sjc, $ams) = http_sites(extra_conf => "gsb.http_status_token = '$token'");
my $p_sjc = http_port_of($sjc);
my ($r, $ok) = wait_http($p_sjc, '/active', 200, undef, 60);
ok($ok, 'sjc: the endpoint answers') or diag(explain($r));

########################################################################
# 1. Idle connections do not starve the health checks.
########################################################################
{
	local $SIG{PIPE} = 'IGNORE';
	my @idle;
	for (1 .. 200)
	{
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $p_sjc,
			Proto => 'tcp',
			Timeout => 5);
		next unless $s;
		# Half a request, never finished.
		syswrite($s, "GET /act");
		push @idle, $s;
	}
	cmp_ok(scalar(@idle), '>=', 150, 'most of 200 idle connections were accepted');
	my $opened = time();
	my ($answered, $slowest) = (0, 0);
	for (1 .. 20)
	{
		my $c = http_get($p_sjc, '/active', timeout => 3);
		$answered++ if ($c->{status} // 0) == 200;
		$slowest = $c->{elapsed} if $c->{elapsed} > $slowest;
	}
	my $span = time() - $opened;
	note(sprintf('20 checks after 200 idle connections: %d answered 200, slowest %.3f s, all within %.2f s',
			$answered, $slowest, $span));
	cmp_ok($span, '<', 2, 'the checks ran while the idle connections were still held (< 2 s)');
	is($answered, 20, 'every one of 20 health checks got 200 while 200 idle connections were open');
	cmp_ok($slowest, '<', 1, 'each check was answered within 1 s');
	close($_) for @idle;
}

########################################################################
# 2. A locked site state: answered within the query timeout.
########################################################################
{
	my $bg = start_bg($sjc,
		"BEGIN; LOCK TABLE gsb.site_state IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);");
	$sjc->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
		  . "WHERE c.relname = 'site_state' AND l.mode = 'AccessExclusiveLock' AND l.granted")
	  or die 'the lock was not taken';
	my $c = http_get($p_sjc, '/active', timeout => 10);
	note(sprintf('/active with the site state locked: %s in %.3f s', $c->{status} // 'no answer',
			$c->{elapsed}));
	ok(defined $c->{status} && $c->{elapsed} < 1.8,
		'/active is answered within 1.8 s while the site state is locked')
	  or diag(explain($c));
	is($c->{status}, 503, '... with 503 (this site cannot tell that it is active)');
	$sjc->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
		  . "AND pid <> pg_backend_pid()");
	eval { finish_bg($bg) };
	($r, $ok) = wait_http($p_sjc, '/active', 200, undef, 10);
	ok($ok, '/active is 200 again once the lock is gone');
}

########################################################################
# 3. /status: role and state for strangers, everything with the token.
########################################################################
# Make a last_error with a row value in it: ams rejects rows with a value
# that a CHECK there refuses.
$sjc->safe_psql('postgres', 'CREATE TABLE pii (id int PRIMARY KEY, v text)');
$ams->safe_psql('postgres', 'CREATE TABLE pii (id int PRIMARY KEY, v text)');
$_->safe_psql('postgres', "SELECT gsb.replicate_table('pii')") for ($sjc, $ams);
$ams->safe_psql('postgres',
	"ALTER TABLE pii ADD CONSTRAINT no_secret CHECK (v NOT LIKE 'secret%') NOT VALID");
$sjc->safe_psql('postgres', "INSERT INTO pii VALUES (1, 'secret-person-data')");
$ams->poll_query_until('postgres', "SELECT last_error IS NOT NULL FROM gsb.status")
  or die 'no apply error on ams';
my $p_ams = http_port_of($ams);
for my $case ([ 'no token', {} ], [ 'a wrong token', { auth => 'Bearer wrong' } ],
	[ 'a token of another scheme', { auth => "Basic $token" } ])
{
	my ($what, $o) = @$case;
	my $hdr = $o->{auth} ? "Authorization: $o->{auth}\r\n" : '';
	my $c = http_request($p_ams, "GET /status HTTP/1.0\r\n${hdr}\r\n");
	is($c->{status}, 200, "/status with $what: 200");
	my $j = eval { JSON::PP->new->decode($c->{body}) } // {};
	is($j->{role}, 'backup', "/status with $what: the role");
	is_deeply([ sort keys %{ $j->{peers}[0] // {} } ], [qw(peer state)],
		"/status with $what: each peer shows its name and state only");
	unlike($c->{body}, qr/secret-person-data/, "/status with $what: no row values");
}
my $c = http_request($p_ams, "GET /status HTTP/1.0\r\nauthorization:   Bearer $token\r\n\r\n");
my $j = eval { JSON::PP->new->decode($c->{body}) } // {};
is($j->{peers}[0]{state}, 'error', '/status with the token: the peer state');
like($j->{peers}[0]{last_error} // '', qr/no_secret/, '/status with the token: last_error too');
ok(exists $j->{peers}[0]{lag_bytes}, '/status with the token: positions too');
$ams->safe_psql('postgres', 'ALTER TABLE pii DROP CONSTRAINT no_secret');
$ams->poll_query_until('postgres', "SELECT count(*) = 1 FROM pii") or die 'the row did not arrive';

########################################################################
# 4. The seed's address.
########################################################################
$c = http_get($p_sjc, '/acme-corp/detectbackup.php');
is("$c->{status} $c->{body}", "200 Primary\n", 'GET /acme-corp/detectbackup.php answers like /detectbackup');
$c = http_get($p_ams, '/acme/detectbackup.php?x=1');
is("$c->{status} $c->{body}", "200 Primary\n", '... on the backup too, query string ignored');
is(http_get($p_sjc, '/a/b/detectbackup.php')->{status}, 404, 'two path segments: 404');
is(http_get($p_sjc, '/detectbackup.php')->{status}, 404, 'no company: 404');

check_logs($sjc, $ams);
done_testing();
