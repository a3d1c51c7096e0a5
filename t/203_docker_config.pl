# 203_docker_config.pl: docker/ cannot drift from what the tests run.
#
# docker/haproxy.cfg is exactly what docker/render-haproxy.sh renders from
# docker/haproxy.cfg.in (the template t/202_haproxy.pl runs) for the compose
# hosts; the hosts and ports of that rendering (the PostgreSQL listener and
# the HTTP frontend for /<company>/detectbackup.php) are the ones
# docker/compose.yaml gives its sites and publishes; HAProxy accepts the file; the shell scripts parse; and,
# where a compose client exists, compose accepts docker/compose.yaml.
# Needs no server, and no Docker engine.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbHttp;
use GsbTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $docker = "$GsbHttp::repo_dir/docker";

# The one configuration: the checked-in file is the template's rendering.
my $rendered = render_haproxy('--docker');
my $file = slurp_file("$docker/haproxy.cfg");
is($file, $rendered,
	'docker/haproxy.cfg is `sh docker/render-haproxy.sh --docker` (re-render it after editing the template)');
my $template = slurp_file("$docker/haproxy.cfg.in");
my ($t_listen) = $template =~ /^(listen \S+.*?)(?=^\S|\z)/ms;
like($t_listen // '', qr{option httpchk GET /active}, 'the template checks /active');
like($t_listen // '', qr{http-check expect status 200}, 'the template expects 200');
like($t_listen // '', qr{on-marked-down shutdown-sessions}, 'the template cuts sessions of a site marked down');

# The rendering's hosts and ports are the compose services'.
my $compose = slurp_file("$docker/compose.yaml");
my @servers = $file =~ /^\s*server (\w+) ([\w.-]+):(\d+) check port (\d+)/mg;
is(scalar(@servers), 8, 'docker/haproxy.cfg has two servers');
my %svc;
while ($compose =~ /^  (\w+):\n((?:    .*\n|\s*\n)*)/mg)
{
	$svc{$1} = $2;
}
ok(exists $svc{$_}, "compose.yaml has service $_") for qw(sjc ams haproxy);
my @roles = ('primary', 'backup');
for (my $i = 0; $i < @servers; $i += 4)
{
	my ($name, $host, $pgport, $httpport) = @servers[ $i .. $i + 3 ];
	my $role = shift @roles;
	my $env = $svc{$host} // '';
	like($env, qr/^\s+GSB_ROLE: $role$/m, "haproxy server $name is compose service $host, the $role");
	like($env, qr/^\s+GSB_HTTP_PORT: "$httpport"$/m,
		"... whose gsb.http_port is the checked port $httpport");
	is($pgport, 5432, "... on PostgreSQL's port");
	like($env, qr/^\s+GSB_PEER_PORT: "5432"$/m, "... and its peer is on that port too");
}
my ($bind) = $file =~ /^\s*bind \S*:(\d+)$/m;
like($svc{haproxy} // '', qr/^\s+- "\$\{GSB_PORT:-\d+\}:$bind"$/m,
	"compose publishes HAProxy's listen port $bind");

# The HTTP frontend: the seed's checks on the shared address, routed to the
# sites' endpoints (the ports compose gives them) by the same /active check.
my ($t_http) = $template =~ /^(frontend gsb_http\n.*?)(?=^\S|\z)/ms;
like($t_http // '', qr{path_reg \^/\[A-Za-z0-9_\.-\]\+/detectbackup\[\.\]php\$},
	'the template has an HTTP frontend for /<company>/detectbackup.php');
like($t_http // '', qr{path /detectbackup /active}, '... and /detectbackup, /active');
my ($f_http) = $file =~ /^(frontend gsb_http\n.*?)(?=^\S|\z)/ms;
my ($http_bind) = ($f_http // '') =~ /^\s*bind \S*:(\d+)$/m;
ok(defined $http_bind, 'docker/haproxy.cfg has the HTTP frontend');
like($svc{haproxy} // '', qr/^\s+- "\$\{GSB_CHECK_PORT:-\d+\}:$http_bind"$/m,
	"compose publishes HAProxy's HTTP port $http_bind");
my ($b_http) = $file =~ /^(backend gsb_http_active\n.*?)(?=^\S|\z)/ms;
like($b_http // '', qr{option httpchk GET /active}, 'the HTTP backend checks /active');
my @http_servers = ($b_http // '') =~ /^\s*server (\w+) ([\w.-]+):(\d+) check( backup)?$/mg;
is(scalar(@http_servers), 8, 'the HTTP backend has two servers');
for (my $i = 0; $i < @http_servers; $i += 4)
{
	my ($name, $host, $port, $backup) = @http_servers[ $i .. $i + 3 ];
	like($svc{$host} // '', qr/^\s+GSB_HTTP_PORT: "$port"$/m,
		"HTTP server $name is compose service $host on its gsb.http_port $port");
	is(defined $backup ? 'backup' : 'primary', $name, "... the $name is marked so");
}
like($svc{haproxy} // '', qr{^\s+- \./haproxy\.cfg:/etc/haproxy/haproxy\.cfg:ro$}m,
	'compose mounts docker/haproxy.cfg into HAProxy');

SKIP:
{
	my $haproxy = haproxy_path();
	skip 'haproxy is not installed (Debian package: haproxy)', 1 unless $haproxy;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $haproxy, '-c', '-f', "$docker/haproxy.cfg" ],
		'>', \$out, '2>', \$err);
	# The compose host names do not resolve here: HAProxy warns and, with
	# init-addr none, starts anyway. Anything else is an error.
	ok($ok, 'haproxy -c accepts docker/haproxy.cfg') or diag("$out$err");
}

for my $sh ([ 'bash', 'entrypoint.sh' ], [ 'sh', 'healthcheck.sh' ], [ 'sh', 'render-haproxy.sh' ])
{
	my ($out, $err) = ('', '');
	ok(IPC::Run::run([ $sh->[0], '-n', "$docker/$sh->[1]" ], '>', \$out, '2>', \$err),
		"docker/$sh->[1] parses ($sh->[0] -n)")
	  or diag($err);
}

# The image runs what the tests run: scripts/pgconf.sh for the settings.
my $dockerfile = slurp_file("$docker/Dockerfile");
like($dockerfile, qr{^COPY scripts/pgconf\.sh /usr/local/lib/gsb/pgconf\.sh$}m,
	'the image carries scripts/pgconf.sh');
like(slurp_file("$docker/entrypoint.sh"), qr{GSB_PGCONF:-/usr/local/lib/gsb/pgconf\.sh},
	'the entrypoint writes the settings with it');
like($dockerfile, qr/^FROM \S+ AS haproxy$/m, 'the image for HAProxy is a stage of the same Dockerfile');

SKIP:
{
	# `docker compose` (v2 plugin) or docker-compose (Debian's, v1) check the
	# file without an engine.
	# Each is looked up first: a docker client without the compose plugin is
	# common, and IPC::Run::run dies on a command that does not exist.
	my @cmd;
	my ($o, $e) = ('', '');
	my ($docker_bin, $compose_bin) = (find_tool('docker'), find_tool('docker-compose'));
	if ($docker_bin
		&& IPC::Run::run([ $docker_bin, 'compose', 'version' ], '>', \$o, '2>', \$e))
	{
		@cmd = ($docker_bin, 'compose');
	}
	elsif ($compose_bin && IPC::Run::run([ $compose_bin, 'version' ], '>', \$o, '2>', \$e))
	{
		@cmd = ($compose_bin);
	}
	skip 'no compose client (neither `docker compose` nor docker-compose works here)', 2
	  unless @cmd;
	local $ENV{POSTGRES_PASSWORD} = 'not-a-secret';
	my ($out, $err) = ('', '');
	ok(IPC::Run::run([ @cmd, '-f', "$docker/compose.yaml", 'config', '-q' ],
			'>', \$out, '2>', \$err),
		"@cmd config accepts docker/compose.yaml")
	  or diag($err);
	delete $ENV{POSTGRES_PASSWORD};
	($out, $err) = ('', '');
	ok(!IPC::Run::run([ @cmd, '-f', "$docker/compose.yaml", 'config', '-q' ],
			'>', \$out, '2>', \$err),
		'... and refuses to run without POSTGRES_PASSWORD');
}

done_testing();
