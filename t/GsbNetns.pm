# t/GsbNetns.pm: two gsb sites in two network namespaces joined by one veth
# pair, and faults on that link, for t/309_link_faults.pl; or three (two data
# sites and a witness, netns_setup(3)), each pair joined by a link of its own,
# for t/328_partition_witness.pl.
#
# For: asking scripts/netns-helper.sh (which scripts/test.sh runs as root and
# names in GSB_NETNS_HELPER) to make the namespaces, to start a site's server
# inside one of them as this user, and to cut, block or reset the link.
# Not for: anything that needs no namespaces (GsbTest.pm, GsbFaults.pm).
#
# The tests still reach both servers through their Unix sockets (a socket file
# is not in any network namespace); only the sites' connections to each other
# go over the link: site a is 10.77.0.1, site b 10.77.0.2. With three sides,
# side c (the witness) is 10.77.1.3 on its link to a (where a is 10.77.1.1)
# and 10.77.2.3 on its link to b (where b is 10.77.2.2): netns_addr($from,
# $to) says which address $from uses to reach $to, and every address of a
# side is on a link of its own, so that each link can be cut alone
# (ns_request('block', $tag, 'a2c', ...)).
package GsbNetns;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use Fcntl qw(:flock);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use GsbTest;

our @EXPORT = qw(netns_skip_reason netns_setup netns_site netns_connect ns_request
  netns_addr netns_start);

my %ip = (a => '10.77.0.1', b => '10.77.0.2');
# The address of side $to on its link with side $from (three sides).
my %addr = (
	a => { b => '10.77.0.2', c => '10.77.1.3' },
	b => { a => '10.77.0.1', c => '10.77.2.3' },
	c => { a => '10.77.1.1', b => '10.77.2.2' });
my $tag;    # this test's namespaces, torn down at the end
my $sides = 2;

# Why namespace tests cannot run here, or undef when they can.
sub netns_skip_reason
{
	my $dir = $ENV{GSB_NETNS_HELPER};
	return 'GSB_NETNS_HELPER is not set: run the tests through scripts/test.sh as root, '
	  . 'or start scripts/netns-helper.sh serve DIR USER as root and set GSB_NETNS_HELPER=DIR'
	  unless defined $dir && $dir ne '';
	return "GSB_NETNS_HELPER=$dir has no request FIFO (is the helper running?)"
	  unless -p "$dir/req" && -p "$dir/resp";
	return;
}

# ns_request(@words): one request to the helper; returns (rc, output).
# Requests are serialised between test processes with a lock file.
sub ns_request
{
	my (@words) = @_;
	my $dir = $ENV{GSB_NETNS_HELPER};
	croak "tab or newline in a helper request" if grep { /[\t\n]/ } @words;
	open(my $lock, '>>', "$dir/lock") or croak "cannot open $dir/lock: $!";
	flock($lock, LOCK_EX) or croak "cannot lock $dir/lock: $!";
	my $answer = eval {
		local $SIG{ALRM} = sub { die "netns helper did not answer\n" };
		alarm(180);
		open(my $req, '>', "$dir/req") or die "cannot open $dir/req: $!\n";
		print $req join("\t", @words), "\n";
		close($req);
		open(my $resp, '<', "$dir/resp") or die "cannot open $dir/resp: $!\n";
		local $/;
		my $text = <$resp>;
		close($resp);
		alarm(0);
		$text;
	};
	alarm(0);
	close($lock);
	croak "netns helper: $@" unless defined $answer;
	my ($rc, $out) = $answer =~ /\Arc (\d+)\n(.*)\z/s
	  or croak "netns helper: unexpected answer '$answer'";
	chomp $out;
	return ($rc, $out);
}

sub request_ok
{
	my (@words) = @_;
	my ($rc, $out) = ns_request(@words);
	croak "netns helper: '@words' failed (rc $rc): $out" if $rc != 0;
	return $out;
}

# netns_setup([3]): makes this test's two namespaces and the link between
# them; with 3, also side c and its links to a and b.
sub netns_setup
{
	my ($n) = @_;
	$sides = $n // 2;
	croak "netns_setup: two or three sides, not $sides" unless $sides == 2 || $sides == 3;
	$tag = sprintf('t%d', $$ % 10_000_000);
	note(request_ok('setup', $tag, $sides == 3 ? (3) : ()));
	return $tag;
}

# netns_addr($from, $to): the address at which side $from reaches side $to
# (over the link between them).
sub netns_addr
{
	my ($from, $to) = @_;
	my $a = $addr{$from}{$to} or croak "no link between sides $from and $to";
	croak "side c needs netns_setup(3)" if $sides < 3 && ($from eq 'c' || $to eq 'c');
	return $a;
}

# The addresses that side $side listens on.
sub listen_of
{
	my ($side) = @_;
	return $ip{$side} if $sides == 2;
	my @mine = map { $addr{$_}{$side} } grep { $_ ne $side } qw(a b c);
	return join(',', @mine);
}

my @nodes;    # servers started in the namespaces

# Perl runs this before PostgreSQL::Test::Cluster's END block (it was compiled
# later): stop the servers here, as that block would, then drop the namespaces.
END
{
	if (defined $tag)
	{
		for my $node (@nodes)
		{
			eval { $node->stop('immediate') if defined $node->{_pid}; };
		}
		eval { ns_request('teardown', $tag) };
	}
}

# netns_site($name, $role, $side, %opts): like GsbTest::new_site, but the
# server runs in namespace $side ('a' or 'b', or 'c' with three sides) and
# listens on its link addresses as well as on its Unix socket; peers may
# connect from the other sides.
sub netns_site
{
	my ($name, $role, $side, %opts) = @_;
	croak 'netns_setup first' unless defined $tag;
	croak "side $side needs netns_setup(3)" if $side eq 'c' && $sides < 3;
	my $extra = "listen_addresses = '" . listen_of($side) . "'\n" . ($opts{extra_conf} // '');
	return new_site(
		$name, $role, %opts,
		extra_conf => $extra,
		starter => sub {
			my ($node) = @_;
			my $net = $sides == 3 ? '10.77.0.0/16' : '10.77.0.0/24';
			$node->append_conf('pg_hba.conf',
				"host all all $net trust\nhost replication all $net trust\n");
			start_in($node, $side);
		});
}

# netns_start($node, $side): starts again, inside namespace $side, a server
# that netns_site made and the test stopped ($node->stop works from outside).
sub netns_start { return start_in(@_); }

# Starts $node's server inside namespace $side, as PostgreSQL::Test::Cluster's
# start does outside.
sub start_in
{
	my ($node, $side) = @_;
	my $bindir = $node->config_data('--bindir');
	my @env = map { "$_=$ENV{$_}" } grep { defined $ENV{$_} } qw(PATH LANG LC_ALL TZ PGTZ);
	my ($rc, $out) = ns_request(
		'run', $tag, $side, @env, "$bindir/pg_ctl", '-w', '-D', $node->data_dir,
		'-l', $node->logfile, '-o', '--cluster-name=' . $node->name, 'start');
	note("pg_ctl start in namespace $side: $out");
	if ($rc != 0)
	{
		$node->_update_pid(-1);
		BAIL_OUT("pg_ctl start of " . $node->name . " in namespace $side failed: $out");
	}
	$node->_update_pid(1);
	push @nodes, $node unless grep { $_ == $node } @nodes;
	return;
}

# netns_connect($a_node, $b_node, %opts): each site adds the other as its peer
# over the link (not over a Unix socket), and both stream.
sub netns_connect
{
	my ($na, $nb, %opts) = @_;
	my $extra = $opts{extra} // '';
	for my $pair ([ $na, $nb, 'b' ], [ $nb, $na, 'a' ])
	{
		my ($n, $p, $pside) = @$pair;
		my $conninfo = "host=$ip{$pside} port=" . $p->port . " dbname=postgres $extra";
		$n->safe_psql('postgres',
			"SELECT gsb.add_peer(" . sql_quote(site_name($p)) . ", " . sql_quote($conninfo) . ", false)");
	}
	for my $pair ([ $na, $nb ], [ $nb, $na ])
	{
		my ($n, $p) = @$pair;
		ok(wait_state($n, site_name($p), 'streaming'),
			site_name($n) . ': streams from ' . site_name($p) . ' over the link')
		  or croak 'the sites did not connect over the link';
	}
	return;
}

1;
