# 201_http.pl: the HTTP endpoint that load balancers ask (gsb.http_port).
#
# On two sites: /detectbackup answers as gsb.detect_backup(), /active is 200
# on the active site only, /status is JSON from gsb.status without secrets
# and with the next maintenance window (gsb.next_maintenance());
# wrong paths, methods and malformed requests get 404, 405, 400; a slow client
# gets 408 (or is dropped) within ~2 s without holding up anyone else; a
# request over 8 KiB gets 431; a flood of connections is answered or closed
# and the endpoint serves normally afterwards; and after the primary dies,
# /active moves to the backup. No server log shows a crash.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbHttp;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $password = 'gsb_http_s3cret_pw';

# The password is useless with trust authentication, but it is in the
# conninfo that gsb keeps: /status must never show it.
my ($sjc, $ams) = http_sites(extra => "password=$password");
my $p_sjc = http_port_of($sjc);
my $p_ams = http_port_of($ams);

# The endpoint worker starts with the extension; wait until it listens.
my ($r, $ok) = wait_http($p_sjc, '/active', 200, undef, 60);
ok($ok, 'sjc: the endpoint answers on gsb.http_port (default listen address localhost)')
  or diag(explain($r));
($r, $ok) = wait_http($p_ams, '/active', 503, undef, 60);
ok($ok, 'ams: the endpoint answers') or diag(explain($r));

########################################################################
# The three paths.
########################################################################
$r = http_get($p_sjc, '/detectbackup');
is($r->{status}, 200, 'sjc: GET /detectbackup is 200');
is($r->{body}, "Primary\n", 'sjc: /detectbackup says Primary');
like($r->{headers}{'content-type'} // '', qr{^text/plain}, '/detectbackup is text/plain');
is($r->{headers}{'content-length'}, length($r->{body}), 'Content-Length matches the body');
$r = http_get($p_ams, '/detectbackup');
is("$r->{status} $r->{body}", "200 Primary\n",
	'ams: /detectbackup also says Primary (what a routed client reaches), as gsb.detect_backup()');
is($ams->safe_psql('postgres', 'SELECT gsb.detect_backup()'), 'Primary',
	'ams: gsb.detect_backup() agrees');

$r = http_get($p_sjc, '/active');
is("$r->{status} $r->{body}", "200 active\n", 'sjc (active): GET /active is 200');
$r = http_get($p_ams, '/active');
is($r->{status}, 503, 'ams (not active): GET /active is 503');
$r = http_get($p_sjc, '/active?from=haproxy');
is($r->{status}, 200, 'a query string is ignored');
$r = http_get($p_sjc, '/active', method => 'HEAD');
is($r->{status}, 200, 'HEAD /active is 200');
is($r->{body}, '', 'HEAD has no body');
$r = http_request($p_sjc, "GET /active HTTP/1.1\r\nHost: x\r\n\r\n");
is($r->{status}, 200, 'an HTTP/1.1 request is answered too');
ok($r->{closed}, 'and the connection is closed after the answer (no keep-alive)');

# A load balancer asks every second or so, with a short timeout; the endpoint
# answers one request at a time, so each answer must be cheap.
{
	my @ms = sort { $a <=> $b }
	  map { 1000 * http_get($p_sjc, '/active')->{elapsed} } 1 .. 5;
	note(sprintf('GET /active took %s ms', join(' ', map { sprintf('%.1f', $_) } @ms)));
	cmp_ok($ms[2], '<', 100, 'GET /active is answered within 100 ms (median of 5)');
}

for my $n ([ $sjc, $p_sjc, 'primary', $ams ], [ $ams, $p_ams, 'backup', $sjc ])
{
	my ($node, $port, $role, $peer) = @$n;
	my $name = site_name($node);
	$r = http_get($port, '/status');
	is($r->{status}, 200, "$name: GET /status is 200");
	like($r->{headers}{'content-type'} // '', qr{^application/json}, "$name: /status is JSON");
	my $j = eval { JSON::PP->new->decode($r->{body}) };
	ok($j, "$name: /status parses as JSON") or diag("$@: $r->{body}");
	$j //= {};
	is($j->{site}, $name, "$name: /status names the site");
	is($j->{role}, $role, "$name: /status gives its role");
	is($j->{active_site}, 'sjc', "$name: /status gives the active site");
	is($j->{detect_backup}, 'Primary', "$name: /status gives detect_backup");
	my @peers = @{ $j->{peers} // [] };
	is(scalar(@peers), 1, "$name: /status lists one peer");
	is($peers[0]{peer}, site_name($peer), "$name: ... the other site");
	is($peers[0]{state}, 'streaming', "$name: ... streaming");
	unlike($r->{body}, qr/\Q$password\E/, "$name: /status does not show the peer's password");
	unlike($r->{body}, qr/conninfo|password/i, "$name: /status has no conninfo or password field");
}

########################################################################
# /status tells the next maintenance window, as gsb.next_maintenance().
########################################################################
sub status_json
{
	my ($port) = @_;
	my $b = http_get($port, '/status')->{body};
	return eval { JSON::PP->new->decode($b) } // {};
}
for my $port ($p_sjc, $p_ams)
{
	my $j = status_json($port);
	ok(exists $j->{next_maintenance} && !defined $j->{next_maintenance},
		"port $port: no window set: /status has next_maintenance null");
}
{
	# A window twelve hours away: the monitor must not start it during the test.
	my $h = (gmtime(time() + 12 * 3600))[2];
	my $win = sprintf('%02d:00-%02d:30 UTC', $h, $h);
	$sjc->safe_psql('postgres',
		"ALTER SYSTEM SET gsb.maintenance_window = '$win'; SELECT pg_reload_conf();");
	my $j = {};
	my $until = time() + 30;
	while (time() < $until)
	{
		$j = status_json($p_sjc);
		last if defined $j->{next_maintenance};
		select(undef, undef, undef, 0.1);
	}
	my $nm = $j->{next_maintenance} // {};
	ok(defined $nm->{starts_at} && defined $nm->{ends_at},
		"sjc: with gsb.maintenance_window '$win', /status shows next_maintenance")
	  or diag(explain($j));
	is( $sjc->safe_psql('postgres',
			"SELECT starts_at = '$nm->{starts_at}'::timestamptz AND ends_at = '$nm->{ends_at}'::timestamptz"
			  . " AND ends_at - starts_at = interval '30 minutes'"
			  . " AND starts_at > now() + interval '11 hours' FROM gsb.next_maintenance()"),
		't', "sjc: ... the window gsb.next_maintenance() gives ($nm->{starts_at} to $nm->{ends_at})");
	$sjc->safe_psql('postgres',
		'ALTER SYSTEM RESET gsb.maintenance_window; SELECT pg_reload_conf();');
	ok($sjc->poll_query_until('postgres', 'SELECT count(*) = 0 FROM gsb.next_maintenance()'),
		'sjc: window reset');
}

########################################################################
# Bad requests.
########################################################################
$r = http_get($p_sjc, '/nothing-here');
is($r->{status}, 404, 'unknown path: 404');
$r = http_get($p_sjc, '/');
is($r->{status}, 404, '/: 404');
$r = http_get($p_sjc, '/active', method => 'POST');
is($r->{status}, 405, 'POST: 405');
$r = http_get($p_sjc, '/active', method => 'DELETE');
is($r->{status}, 405, 'DELETE: 405');
for my $bad (
	[ "garbage\r\n\r\n", 'a request line without method, path and version' ],
	[ "GET /active\r\n\r\n", 'a request line without an HTTP version' ],
	[ "GET /active SPDY/3\r\n\r\n", 'a request line with another protocol' ],
	[ "GET active HTTP/1.0\r\n\r\n", 'a path that does not start with /' ],
	[ "\r\n\r\n", 'an empty request' ],
	[ "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 'binary bytes (a TLS hello)' ])
{
	$r = http_request($p_sjc, $bad->[0], timeout => 5);
	is($r->{status}, 400, "400 for $bad->[1]") or diag(explain($r));
}
# A TLS client (https:// by mistake) sends no CRLF CRLF: it must not hang.
$r = http_request($p_sjc, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" . ("\xab" x 64),
	timeout => 6);
ok($r->{closed} && $r->{elapsed} < 3.5 && ($r->{status} // 400) =~ /^40[08]$/,
	'a TLS handshake gets 400/408 or is closed within ~3 s')
  or diag(explain($r));
$r = http_request($p_sjc, "GET /active HTTP/1.0\0junk\r\n\r\n", timeout => 5);
is($r->{status}, 400, '400 for a NUL byte and junk after the HTTP version');
$r = http_request($p_sjc, "GET /act", keep_open => 1);
shutdown($r->{sock}, 1);
$r = GsbHttp::http_finish($r, 5);
ok($r->{closed} && $r->{elapsed} < 1.5,
	'a client that hangs up half-way through its request is dropped at once')
  or diag(explain($r));

########################################################################
# A slow client: half a request, then nothing. It gets 408 (or is closed)
# within ~2 s, and others are served meanwhile.
########################################################################
my $slow = http_request($p_sjc, "GET /active HTTP/1.0\r\nHost: sl", keep_open => 1);
# The same in pieces, as a slowloris would: each piece resets nothing.
my $drip = http_request($p_sjc, [ "GE", "T /act" ], keep_open => 1);
my $t0 = time();
$r = http_get($p_sjc, '/active', timeout => 5);
my $meanwhile = time() - $t0;
is($r->{status}, 200, 'while a slow client waits, another client gets its answer');
cmp_ok($meanwhile, '<', 1.5, '... at once (not after the slow client)');
$slow = GsbHttp::http_finish($slow, 10);
ok(($slow->{status} // 408) == 408 && $slow->{closed},
	'the slow client gets 408 or is closed')
  or diag(explain($slow));
cmp_ok($slow->{elapsed}, '<', 3.5, '... within ~3 s (the endpoint allows 2 s)');
cmp_ok($slow->{elapsed}, '>', 1, '... not before it had a fair chance');
$drip = GsbHttp::http_finish($drip, 10);
ok(($drip->{status} // 408) == 408 && $drip->{closed} && $drip->{elapsed} < 3.5,
	'a client that drips a request is cut off within ~3 s too')
  or diag(explain($drip));

########################################################################
# Size limit: more than 8 KiB of request head is 431.
########################################################################
$r = http_request($p_sjc,
	"GET /active HTTP/1.0\r\nX-Pad: " . ('a' x 9000) . "\r\n\r\n", timeout => 5);
is($r->{status}, 431, 'a 9 KB request gets 431') or diag(explain({ %$r, raw => substr($r->{raw}, 0, 200) }));
$r = http_request($p_sjc, "GET /" . ('a' x 20000) . " HTTP/1.0\r\n\r\n", timeout => 5);
ok(($r->{status} // 431) == 431 && $r->{closed} && $r->{elapsed} < 4,
	'a 20 KB request line gets 431 or is closed, at once')
  or diag(explain({ %$r, raw => substr($r->{raw}, 0, 200) }));
$r = http_request($p_sjc, 'x' x (1024 * 1024), timeout => 5);
ok(($r->{status} // 431) == 431 && $r->{closed} && $r->{elapsed} < 4,
	'1 MB without a line end gets 431 or is closed, at once')
  or diag(explain({ %$r, raw => substr($r->{raw}, 0, 200) }));
$r = http_get($p_sjc, '/active');
is($r->{status}, 200, 'the endpoint still answers after the oversized requests');

########################################################################
# A flood: 200 clients at once (the endpoint serves 64 at a time). Each is
# answered or closed, none hangs, and the endpoint serves normally after.
########################################################################
{
	local $SIG{PIPE} = 'IGNORE';
	my $n = 200;
	my @socks;
	my $connect_failed = 0;
	for (1 .. $n)
	{
		# Once the backlog is full, a connect waits for a SYN retransmission:
		# bounded by the Timeout.
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $p_sjc,
			Proto => 'tcp',
			Timeout => 5);
		if ($s) { push @socks, $s; }
		else { $connect_failed++; }
	}
	cmp_ok(scalar(@socks), '>=', 64, "flood: at least 64 of $n connections were accepted");
	syswrite($_, "GET /active HTTP/1.0\r\n\r\n") for @socks;

	my %answer;    # status or 'closed' or 'reset' => count
	my $sel = IO::Select->new(@socks);
	my %buf;
	my $sent_at = time();
	my $last_done = $sent_at;
	my $deadline = $sent_at + 60;
	while ($sel->count && time() < $deadline)
	{
		for my $s ($sel->can_read($deadline - time()))
		{
			my $got = sysread($s, my $b, 4096);
			if ($got)
			{
				$buf{$s} .= $b;
				next;
			}
			my $how = !defined $got ? 'reset'
			  : ($buf{$s} // '') =~ m{\AHTTP/1\.[01] (\d{3})} ? $1
			  : 'closed';
			$answer{$how}++;
			$last_done = time();
			$sel->remove($s);
			close($s);
		}
	}
	my $hung = $sel->count;
	close($_) for $sel->handles;
	is($hung, 0, 'flood: every connection was answered or closed (none hangs)')
	  or diag("answers: " . explain(\%answer));
	my $took = $last_done - $sent_at;
	note(sprintf('flood: the last connection ended %.1f s after the requests were sent', $took));
	cmp_ok($took, '<', 3.5, 'flood: every client is gone within ~3 s (the endpoint allows 2 s)');
	ok(($answer{200} // 0) > 0, 'flood: some clients got 200')
	  or diag("answers: " . explain(\%answer));
	note("flood answers: "
		  . join(', ', map { "$_: $answer{$_}" } sort keys %answer)
		  . "; connects that failed: $connect_failed");
	my @odd = grep { !/^(?:200|408|503|closed|reset)$/ } keys %answer;
	ok(!@odd, 'flood: no answer other than 200, 408 (too slow), 503 (busy) or a close')
	  or diag(explain(\%answer));
}
($r, $ok) = wait_http($p_sjc, '/active', 200, qr/^active$/, 10);
ok($ok, 'after the flood the endpoint answers normally');
cmp_ok($r->{elapsed}, '<', 1, '... and at once');

# Clients that connect and say nothing fill every slot for 2 s: others get
# 503 at once meanwhile (not a hang), and 200 once the idle ones are cut off.
{
	my @idle;
	for (1 .. 70)
	{
		my $s = IO::Socket::INET->new(
			PeerAddr => '127.0.0.1',
			PeerPort => $p_sjc,
			Proto => 'tcp',
			Timeout => 5);
		push @idle, $s if $s;
	}
	$r = http_get($p_sjc, '/active', timeout => 5);
	ok(defined $r->{status} && $r->{elapsed} < 3.5 || $r->{closed},
		'with every slot held by idle clients, a new client is answered or closed, not left hanging')
	  or diag(explain($r));
	($r, $ok) = wait_http($p_sjc, '/active', 200, undef, 10);
	ok($ok, 'once the idle clients are cut off, the endpoint serves again');
	close($_) for @idle;
}

########################################################################
# Settings: turning the endpoint off and on again by reload.
########################################################################
$ams->safe_psql('postgres', "ALTER SYSTEM SET gsb.http_port = 0; SELECT pg_reload_conf();");
$ok = 0;
for (1 .. 100)
{
	my $rr = http_get($p_ams, '/active', timeout => 2);
	if ($rr->{error} =~ /^connect/) { $ok = 1; last; }
	Time::HiRes::usleep(100_000);
}
ok($ok, 'ams: gsb.http_port = 0 on reload closes the endpoint');
$ams->safe_psql('postgres', "ALTER SYSTEM RESET gsb.http_port; SELECT pg_reload_conf();");
($r, $ok) = wait_http($p_ams, '/active', 503, undef, 30);
ok($ok, 'ams: setting it back on reload opens the endpoint again') or diag(explain($r));

########################################################################
# Failover: the primary dies; /active moves to the backup.
########################################################################
$sjc->stop('immediate');
($r, $ok) = wait_http($p_ams, '/active', 200, qr/^active$/, 60);
ok($ok, 'ams: /active turns 200 after the primary died (automatic failover)')
  or diag(explain($r));
is($ams->safe_psql('postgres', 'SELECT gsb.active_site()'), 'ams',
	'ams: gsb.active_site() agrees');
$r = http_get($p_ams, '/detectbackup');
is("$r->{status} $r->{body}", "200 Backup\n", 'ams: /detectbackup says Backup');
$r = http_get($p_sjc, '/active', timeout => 3);
ok(!defined $r->{status}, 'sjc: the dead primary does not answer');
$r = http_get($p_ams, '/status');
my $j = eval { JSON::PP->new->decode($r->{body}) } // {};
is($j->{active_site}, 'ams', 'ams: /status gives the new active site');

check_logs($sjc, $ams);
# (Turning the endpoint off stops its worker with SIGTERM: a FATAL "due to
# administrator command" is how PostgreSQL reports that, not an error.)
my @http_errors =
  grep { /gsb http/ && !/due to administrator command/ } error_groups($ams);
is_deeply(\@http_errors, [], 'ams: the endpoint logged no error or warning');

done_testing();
