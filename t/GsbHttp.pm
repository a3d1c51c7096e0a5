# t/GsbHttp.pm: helpers of the routing tests (t/2xx_*.pl), on top of
# t/GsbTest.pm.
#
# For: two sites with the HTTP endpoint on (gsb.http_port), raw HTTP over
# IO::Socket::INET (no curl needed, and requests that no client library would
# send), waiting for an answer, HAProxy rendered from docker/haproxy.cfg.in and
# run on loopback, psql through HAProxy.
# Not for: assertions about one feature (those live in the t/2xx_*.pl files).
#
# Every wait waits for a condition and is bounded; nothing sleeps for a fixed
# time.
package GsbHttp;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use GsbTest;

our @EXPORT = qw(
  http_sites http_port_of http_request http_get wait_http
  render_haproxy haproxy_path start_haproxy stop_haproxy proxy_psql wait_proxy
);

our $repo_dir =
  File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..'));

my %http_port;    # site name => its gsb.http_port

# http_sites(%opts): primary 'sjc' and backup 'ams' with the HTTP endpoint on
# (a free port each), PostgreSQL also on 127.0.0.1 (for HAProxy), set up for
# failover as the 1xx tests are (heartbeat 200ms, failover after 2s, failback
# by hand), connected and streaming.
#   extra (keywords added to each peer conninfo), failover_timeout,
#   http_listen_addresses (default: the GUC's default), extra_conf (more
#   postgresql.conf lines for both sites).
sub http_sites
{
	my (%o) = @_;
	my @nodes;
	for my $s ([ 'sjc', 'primary' ], [ 'ams', 'backup' ])
	{
		my ($name, $role) = @$s;
		my $port = PostgreSQL::Test::Cluster::get_free_port();
		$http_port{$name} = $port;
		my @conf = (
			"gsb.http_port = $port",
			"listen_addresses = '127.0.0.1'",
			# Statement logging would bury the workers' lines.
			'log_statement = none',
			'log_min_messages = log');
		push @conf, "gsb.http_listen_addresses = '$o{http_listen_addresses}'"
		  if defined $o{http_listen_addresses};
		push @conf, $o{extra_conf} if defined $o{extra_conf};
		push @nodes,
		  new_site($name, $role,
			heartbeat_interval => '200ms',
			failover_timeout => $o{failover_timeout} // '2s',
			failback_delay => '-1',
			extra_conf => join("\n", @conf));
	}
	connect_sites(@nodes, extra => $o{extra});
	return @nodes;
}

# The gsb.http_port of $node (made by http_sites).
sub http_port_of
{
	my ($node) = @_;
	my $p = $http_port{ site_name($node) };
	croak "no HTTP port for " . site_name($node) unless defined $p;
	return $p;
}

# http_request($port, $bytes, %opts): connects to 127.0.0.1:$port, sends
# $bytes (all of them, or in the pieces of an array ref), and reads until the
# server closes or $opts{timeout} (default 10) seconds have passed. Returns a
# hash: status (undef if no status line came), headers (lower-case names),
# body, raw, closed (the server closed: EOF or reset), error (connect, send or
# read error text), elapsed (seconds).
#   keep_open => 1: returns at once after sending, with {sock} open (the
#   caller reads with http_finish).
sub http_request
{
	my ($port, $bytes, %opts) = @_;
	my $start = time();
	local $SIG{PIPE} = 'IGNORE';
	my $sock = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto => 'tcp',
		Timeout => 5);
	my %r = (raw => '', closed => 0, error => '', start => $start);
	unless ($sock)
	{
		$r{error} = "connect: $@";
		$r{elapsed} = time() - $start;
		return \%r;
	}
	for my $piece (ref $bytes ? @$bytes : ($bytes))
	{
		my $off = 0;
		while ($off < length $piece)
		{
			my $n = syswrite($sock, $piece, length($piece) - $off, $off);
			unless (defined $n)
			{
				$r{error} = "send: $!";
				last;
			}
			$off += $n;
		}
		last if $r{error};
	}
	$r{sock} = $sock;
	return \%r if $opts{keep_open};
	return http_finish(\%r, $opts{timeout});
}

# Reads the answer of a request started with keep_open until the server
# closes or $timeout seconds (default 10) since it was sent.
sub http_finish
{
	my ($r, $timeout) = @_;
	$timeout //= 10;
	my $sock = delete $r->{sock};
	my $sel = IO::Select->new($sock);
	my $deadline = $r->{start} + $timeout;
	for (;;)
	{
		my $left = $deadline - time();
		last if $left <= 0;
		next unless $sel->can_read($left);
		my $n = sysread($sock, my $buf, 65536);
		if (!defined $n)
		{
			# A reset after the answer still counts as the server closing.
			$r->{error} ||= "read: $!";
			$r->{closed} = 1;
			last;
		}
		if ($n == 0)
		{
			$r->{closed} = 1;
			last;
		}
		$r->{raw} .= $buf;
	}
	close($sock);
	$r->{elapsed} = time() - $r->{start};
	if ($r->{raw} =~ m{\AHTTP/1\.[01] (\d{3}) [^\r\n]*\r\n(.*?)\r\n\r\n(.*)\z}s)
	{
		$r->{status} = $1;
		$r->{body} = $3;
		for my $h (split /\r\n/, $2)
		{
			my ($k, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
			$r->{headers}{ lc $k } = $v;
		}
	}
	return $r;
}

# http_get($port, $path, %opts): GET $path (method in $opts{method}).
sub http_get
{
	my ($port, $path, %opts) = @_;
	my $method = $opts{method} // 'GET';
	return http_request($port,
		"$method $path HTTP/1.0\r\nHost: localhost\r\nUser-Agent: gsb-tap\r\n\r\n", %opts);
}

# wait_http($port, $path, $status, $body_re, $timeout_s): polls (every 0.1 s)
# until GET $path answers $status with a body matching $body_re (undef: any),
# for at most $timeout_s (default the harness's timeout). Returns the last
# answer and whether it matched.
sub wait_http
{
	my ($port, $path, $status, $body_re, $timeout_s) = @_;
	my $end = time() + ($timeout_s // $PostgreSQL::Test::Utils::timeout_default);
	my $r;
	for (;;)
	{
		$r = http_get($port, $path, timeout => 5);
		return ($r, 1)
		  if defined $r->{status}
		  && $r->{status} == $status
		  && (!defined $body_re || $r->{body} =~ $body_re);
		return ($r, 0) if time() >= $end;
		usleep(100_000);
	}
}

# The haproxy binary, or undef when it is not installed (Debian: haproxy).
sub haproxy_path { return find_tool('haproxy'); }

# render_haproxy(@args): the text docker/render-haproxy.sh prints for @args
# (see that script); dies when it fails.
sub render_haproxy
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'sh', "$repo_dir/docker/render-haproxy.sh", @args ],
		'>', \$out, '2>', \$err)
	  or croak "docker/render-haproxy.sh @args failed: $err";
	return $out;
}

# start_haproxy($cfg_text, $name): writes the configuration into the test's
# directory, checks it (haproxy -c) and starts HAProxy in the foreground
# (-db) in the background, logging to tmp_check/log/<test>_haproxy_<name>.log.
# Returns a handle for stop_haproxy.
sub start_haproxy
{
	my ($cfg, $name) = @_;
	$name //= 'proxy';
	my $bin = haproxy_path() or croak "haproxy is not installed";
	my $dir = PostgreSQL::Test::Utils::tempdir("haproxy_$name");
	my $file = "$dir/haproxy.cfg";
	open(my $fh, '>', $file) or croak "cannot write $file: $!";
	print $fh $cfg;
	close($fh);
	my ($out, $err) = ('', '');
	IPC::Run::run([ $bin, '-c', '-f', $file ], '>', \$out, '2>', \$err)
	  or croak "haproxy -c rejects the configuration:\n$out$err";
	# Next to the test's own log: tmp_check/log/<test>_haproxy_<name>.log.
	my $test = File::Basename::basename($0);
	$test =~ s/\.[^.]+$//;
	my $log = "$PostgreSQL::Test::Utils::log_path/${test}_haproxy_$name.log";
	my $h = IPC::Run::start([ $bin, '-db', '-f', $file ], '<', \undef, '>>', $log,
		'2>>', $log);
	return { h => $h, log => $log, file => $file };
}

# stop_haproxy($handle): ends HAProxy (SIGTERM, then SIGKILL after 10 s).
# Safe to call twice.
sub stop_haproxy
{
	my ($hp) = @_;
	return unless $hp && $hp->{h};
	my $h = delete $hp->{h};
	eval { $h->signal('TERM') if $h->pumpable; 1 };
	eval {
		my $t = IPC::Run::timeout(10);
		$h->finish($t);
		1;
	} or eval { $h->kill_kill; 1 };
	return;
}

# proxy_psql($node, $port, $sql): runs $sql with $node's psql, connected to
# 127.0.0.1:$port (HAProxy). Returns (exit code, stdout, stderr).
sub proxy_psql
{
	my ($node, $port, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql,
		connstr => "host=127.0.0.1 port=$port dbname=postgres connect_timeout=5",
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		timeout => 30);
	return ($rc, $out, $err);
}

# wait_proxy($node, $port, $sql, $expected, $timeout_s): polls (every 0.1 s)
# until $sql through HAProxy returns $expected. Returns (matched, last
# stdout, last stderr).
sub wait_proxy
{
	my ($node, $port, $sql, $expected, $timeout_s) = @_;
	my $end = time() + ($timeout_s // $PostgreSQL::Test::Utils::timeout_default);
	my ($rc, $out, $err);
	for (;;)
	{
		($rc, $out, $err) = proxy_psql($node, $port, $sql);
		return (1, $out, $err) if $rc == 0 && $out eq $expected;
		return (0, $out, $err) if time() >= $end;
		usleep(100_000);
	}
}

1;
