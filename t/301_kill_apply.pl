# 301_kill_apply.pl: the apply worker killed twenty times in a row, at random
# moments, while both sites write; then every row is on both sites exactly once.
#
# Both sites write throughout: one-row transactions of a replicated user table
# (wload, site-unique ids) and of gsb.accounts, from writers that reconnect
# when their server restarts. The backup's apply worker (peer sjc), then the
# primary's (peer ams), is killed 20 times each, alternately with SIGTERM
# (pg_terminate_backend: the worker exits cleanly, its transaction rolls back)
# and SIGKILL (the postmaster restarts the whole site: a crash mid-apply).
# Each kill waits for the new worker to stream again, then a random pause of
# up to 400 ms chooses the moment. At the end: writers stopped, sites synced,
# rows lost 0 and duplicated 0 (id sets both ways, count = count(DISTINCT),
# no insert_exists conflict, equal digests), gsb.verify() says match, and no
# server crashed except by the SIGKILLs sent here.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $KILLS = 20;

my $sjc = new_site('sjc', 'primary', extra_conf => "log_statement = none\nrestart_after_crash = on");
my $ams = new_site('ams', 'backup', extra_conf => "log_statement = none\nrestart_after_crash = on");
$_->safe_psql('postgres', writer_schema()) for ($sjc, $ams);
connect_sites($sjc, $ams);

my $dir = PostgreSQL::Test::Utils::tempdir;
my @writers = map { start_writer($_, $dir, batch => 20, pause => 0.003) } ($sjc, $ams);
ok( $sjc->poll_query_until('postgres',
		"SELECT count(*) FILTER (WHERE site = 'sjc') > 50 AND count(*) FILTER (WHERE site = 'ams') > 50 FROM wload"),
	'both writers are writing, and sjc applies ams\'s rows');

my %killed = (sjc => {}, ams => {});
my $start = time();
for my $pair ([ $ams, 'sjc' ], [ $sjc, 'ams' ])
{
	my ($node, $peer) = @$pair;
	my $name = site_name($node);
	my ($old, $sigterm, $sigkill) = (undef, 0, 0);
	for my $i (1 .. $KILLS)
	{
		my $pid = wait_apply_pid($node, $peer, $old, 60);
		unless (ok($pid ne '', "$name: kill $i: an apply worker for $peer streams (pid $pid)"))
		{
			diag(join("\n", error_groups($node)));
			last;
		}
		usleep(int(rand(400_000)));
		if ($i % 2)
		{
			# SIGTERM: the worker dies cleanly.
			my ($rc, $out) = try_psql($node, "SELECT pg_terminate_backend($pid)");
			$sigterm++ if $rc == 0 && $out eq 't';
		}
		else
		{
			# SIGKILL: the site restarts, as after a crash.
			if (kill('KILL', $pid))
			{
				$killed{$name}{$pid} = 9;
				$sigkill++;
			}
		}
		$old = $pid;
	}
	is($sigterm + $sigkill, $KILLS,
		"$name: its apply worker was killed $KILLS times ($sigterm SIGTERM, $sigkill SIGKILL)");
	$GsbFaults::FIGURES{faults} += $sigterm + $sigkill;
	# The writers on the killed site kept writing between the restarts.
	ok(wait_until($node, "SELECT count(*) > 0 FROM wload WHERE at > now() - interval '10 s' AND site = '$name'", 60),
		"$name: its writer is writing again after the kills");
}
note(sprintf("%d kills in %.1f s", $GsbFaults::FIGURES{faults}, time() - $start));

stop_writer($_) for @writers;
ok(wait_state($ams, 'sjc', 'streaming'), 'ams streams from sjc after the kills');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc streams from ams after the kills');
wait_synced($sjc, $ams);

for my $n ($sjc, $ams)
{
	cmp_ok($n->safe_psql('postgres', "SELECT count(*) FROM wload WHERE site = " . sql_quote(site_name($n))),
		'>', 200, site_name($n) . ': wrote more than 200 rows of its own during the kills');
}
exactly_once($sjc, $ams, 'wload');
exactly_once($sjc, $ams, 'gsb.accounts');
verify_all($_) for ($sjc, $ams);

# Replication is still healthy.
$ams->safe_psql('postgres', "INSERT INTO wload VALUES (0, 'ams', 'after the kills')");
wait_synced($ams, $sjc);
is($sjc->safe_psql('postgres', 'SELECT v FROM wload WHERE id = 0'), 'after the kills',
	'a new row still replicates');

check_logs_except($sjc, $killed{sjc});
check_logs_except($ams, $killed{ams});
figures(2);
done_testing();
