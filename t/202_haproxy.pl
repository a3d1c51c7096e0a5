# 202_haproxy.pl: clients reach the active site through HAProxy.
#
# Debian's haproxy on loopback, configured from docker/haproxy.cfg.in (the
# template that docker/haproxy.cfg is rendered from), in front of a primary
# and a backup whose HTTP endpoints answer /active. Through one address: write
# on the primary; the primary dies; after the failover the same address lands
# on the backup (gsb.detect_backup() says Backup) and writes there; the primary
# comes back and HAProxy keeps sending clients to the backup until
# gsb.failback(); then the address lands on the primary again, the sessions
# still open on the backup are cut, and no write is lost. Beside it, the HTTP
# frontend of the same configuration answers the seed's
# GET /<company>/detectbackup.php on the shared address from the active site:
# Primary, then Backup after the failover, Primary after the failback.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbHttp;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

plan skip_all => 'haproxy is not installed (Debian package: haproxy)'
  unless haproxy_path();

my $proxy;
END { stop_haproxy($proxy) if $proxy; }

my ($sjc, $ams) = http_sites(http_listen_addresses => '127.0.0.1');
my $listen = PostgreSQL::Test::Cluster::get_free_port();
my $http_listen = PostgreSQL::Test::Cluster::get_free_port();
my $cfg = render_haproxy(
	'127.0.0.1', $sjc->port, http_port_of($sjc),
	'127.0.0.1', $ams->port, http_port_of($ams),
	"127.0.0.1:$listen", "127.0.0.1:$http_listen");
like($cfg, qr{option httpchk GET /active}, 'the configuration checks /active');
like($cfg, qr{^frontend gsb_http$}m, 'the configuration has the HTTP frontend');
$proxy = start_haproxy($cfg, 'sites');

sub through { my ($sql) = @_; return proxy_psql($sjc, $listen, $sql); }

########################################################################
# Normal service: the proxy's address is the primary.
########################################################################
my ($ok, $out, $err) = wait_proxy($sjc, $listen, 'SELECT gsb.site_name()', 'sjc', 60);
ok($ok, 'through HAProxy a client lands on the primary sjc') or diag("got '$out': $err");
my ($rc, $det) = through('SELECT gsb.detect_backup()');
is($det, 'Primary', 'through HAProxy: gsb.detect_backup() is Primary');

# The seed's HTTP address form on the shared address, answered by the
# active site's endpoint.
my ($r, $hok) = wait_http($http_listen, '/acme/detectbackup.php', 200, qr/^Primary$/, 60);
ok($hok, 'through HAProxy: GET /acme/detectbackup.php answers Primary') or diag(explain($r));
$r = http_get($http_listen, '/detectbackup');
is("$r->{status} $r->{body}", "200 Primary\n", 'through HAProxy: GET /detectbackup answers Primary');
$r = http_get($http_listen, '/active');
is($r->{status}, 200, 'through HAProxy: GET /active is 200 (the active site answers)');
$r = http_get($http_listen, '/status');
is($r->{status}, 404, 'through HAProxy: other paths (/status) are 404');
$r = http_get($http_listen, '/a/b/detectbackup.php');
is($r->{status}, 404, 'through HAProxy: a company of two segments is 404');
($rc, my $id1, $err) =
  through("SELECT gsb.create_account('before\@example.com', 'written before the failover')");
is($rc, 0, 'through HAProxy: a write succeeds') or diag($err);
ok(wait_synced($sjc, $ams), 'the write reached the backup');

# A session that stays open on the primary across the failover.
my $old = $sjc->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-d', "host=127.0.0.1 port=$listen dbname=postgres" ]);
is($old->query('SELECT gsb.site_name()'), 'sjc', 'a long session through HAProxy is on sjc');

########################################################################
# The primary dies: the same address lands on the backup.
########################################################################
$sjc->stop('immediate');
ok( $ams->poll_query_until('postgres', 'SELECT gsb.is_active()', 't'),
	'ams becomes the active site (automatic failover)');
($ok, $out, $err) = wait_proxy($ams, $listen, 'SELECT gsb.site_name()', 'ams', 60);
ok($ok, 'through the same address a new client lands on the backup ams')
  or diag("got '$out': $err");
($rc, $det, $err) = proxy_psql($ams, $listen, 'SELECT gsb.detect_backup()');
is($det, 'Backup', 'through HAProxy: gsb.detect_backup() is Backup') or diag($err);
($r, $hok) = wait_http($http_listen, '/acme/detectbackup.php', 200, qr/^Backup$/, 60);
ok($hok, 'through HAProxy: GET /acme/detectbackup.php answers Backup after the failover')
  or diag(explain($r));
($rc, my $id2, $err) = proxy_psql($ams, $listen,
	"SELECT gsb.create_account('during\@example.com', 'written during the failover')");
is($rc, 0, 'through HAProxy: a write succeeds on the backup') or diag($err);
eval { $old->quit };

########################################################################
# The primary comes back: clients stay on the backup until failback.
########################################################################
$sjc->start;
# Until its monitor hears from ams, the restarted primary's own state still
# says sjc is active. Watch its /active meanwhile: HAProxy must not be told
# "200" by a primary that is not the active site.
my %seen;
my $agree = 0;
my $until = time() + 60;
while (time() < $until)
{
	my $r = GsbHttp::http_get(http_port_of($sjc), '/active', timeout => 3);
	$seen{ $r->{status} // 'none' }++;
	my $a = $sjc->safe_psql('postgres', 'SELECT gsb.active_site()');
	if ($a eq 'ams') { $agree = 1; last; }
	usleep(20_000);
}
ok($agree, 'the restarted primary learns that ams is active');
note('sjc /active answers until it learnt: '
	  . join(', ', map { "$_: $seen{$_}" } sort keys %seen));
ok(!$seen{200}, 'the restarted primary never answered 200 on /active meanwhile')
  or diag(explain(\%seen));
ok(wait_state($_->[0], $_->[1], 'streaming'), site_name($_->[0]) . ": streaming again")
  for ([ $sjc, 'ams' ], [ $ams, 'sjc' ]);
($rc, $out, $err) = proxy_psql($ams, $listen, 'SELECT gsb.site_name()');
is($out, 'ams', 'with the primary back but not active, clients still land on ams') or diag($err);

my $held = $ams->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-d', "host=127.0.0.1 port=$listen dbname=postgres" ]);
is($held->query('SELECT gsb.site_name()'), 'ams', 'a long session through HAProxy is on ams');

########################################################################
# Failback: the address is the primary again.
########################################################################
($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.failback()');
is($rc, 0, 'gsb.failback() on sjc succeeds') or diag($err);
($ok, $out, $err) = wait_proxy($sjc, $listen, 'SELECT gsb.site_name()', 'sjc', 60);
ok($ok, 'after failback a new client lands on sjc') or diag("got '$out': $err");
($rc, $out, $err) = through('SELECT gsb.detect_backup()');
is($out, 'Primary', 'after failback, through HAProxy gsb.detect_backup() is Primary again')
  or diag($err);
($r, $hok) = wait_http($http_listen, '/acme/detectbackup.php', 200, qr/^Primary$/, 60);
ok($hok, 'after failback, through HAProxy GET /acme/detectbackup.php answers Primary again')
  or diag(explain($r));

# HAProxy marks the backup down (its /active is 503 now) and ends the sessions
# it holds there, so no client keeps writing to the site that is not active.
my $cut = 0;
my $end = time() + 30;
while (time() < $end)
{
	my $r = eval { $held->query('SELECT gsb.site_name()') };
	if (!defined $r || $r ne 'ams') { $cut = 1; last; }
	usleep(100_000);
}
ok($cut, 'the session still open on ams is cut once ams is no longer active');
eval { $held->quit };

# Nothing written through the proxy was lost.
($rc, $out, $err) = through(
	"SELECT string_agg(email, ',' ORDER BY email) FROM gsb.accounts"
	  . " WHERE email IN ('before\@example.com', 'during\@example.com')");
is($out, 'before@example.com,during@example.com',
	'through HAProxy, the primary holds the writes made before and during the failover')
  or diag($err);

my $hlog = -f $proxy->{log} ? slurp_file($proxy->{log}) : '';
like($hlog, qr{gsb_postgres/backup is UP}, 'HAProxy logged the backup going up')
  or diag($hlog);
stop_haproxy($proxy);
undef $proxy;

check_logs($sjc, $ams);
done_testing();
