# 104_maintenance.pl: planned switchover to the backup and back, by hand with
# a writer running throughout, and by the maintenance window.
#
# a. A writer keeps writing, one transaction per attempt, on whichever site
#    gsb.active_site() names: it inserts row i into a replicated table and
#    starts a meeting, so an attempt on a site that is not active is refused
#    (and retried with the same i). Meanwhile gsb.begin_maintenance() (on
#    the primary sjc) and later gsb.end_maintenance() (on the backup ams)
#    move service to ams and back. At the end every row is on both sites
#    exactly once, the rows went to sjc, then ams, then sjc (no flapping),
#    gsb.verify() says match, and 'maintenance start' / 'maintenance end'
#    are on both sites. The test reports the refused-write window.
# b. gsb.maintenance_window on sjc, set by ALTER SYSTEM + reload to a
#    one-minute window that starts a few seconds later. The window is written
#    in a POSIX time zone whose offset from UTC puts a minute boundary a few
#    seconds ahead, so the test need not wait for the next minute of UTC. The
#    monitor moves service to ams when the window opens, not before
#    ('maintenance start', detail naming the window), and back when it
#    closes ('maintenance end').
# c. begin_maintenance copies the daily tables to the backup first (called
#    on either site): a site_config value changed on the primary just before
#    is on the backup when it becomes active.
# d. When that copy fails (a daily table that differs on the backup), a call
#    by hand is refused with the reason and nothing switches; the window
#    starts maintenance all the same and its event records the failed copy.
# e. With the backup down, begin_maintenance is refused with class 08.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX qw(ceil);
use Time::HiRes qw(time);

my $hb = $GsbSites::HEARTBEAT_S;

my ($sjc, $ams) = two_sites(schema => q{
CREATE TABLE writes (id bigint PRIMARY KEY, site text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
SELECT gsb.replicate_table('writes');
});
my $acc = q1($sjc, "SELECT gsb.create_account('writer\@example.com', 'Writer')");
wait_synced($sjc, $ams);

########################################################################
# a. begin_maintenance / end_maintenance under a writer.
########################################################################
my %node = (sjc => $sjc, ams => $ams);
my %ws = map { $_ => open_session($node{$_}) } qw(sjc ams);
my $ctl_sjc = open_session($sjc);
my $ctl_ams = open_session($ams);

my $next = 1;          # the id the writer writes next
my $at = 'sjc';        # the site the writer talks to
my (@ok, @refused);    # [time, site, id] / [time, site, error]

# One attempt: ask the site we talk to which site is active, then write
# there. Returns 1 if row $next was written.
sub attempt
{
	my ($out, $err) = $ws{$at}->run('SELECT gsb.active_site()');
	if ($err ne '' || !exists $node{$out})
	{
		push @refused, [ time(), $at, "active_site: $err" ];
		return 0;
	}
	$at = $out;
	my $t0 = time();
	($out, $err) = $ws{$at}->run(
		"BEGIN; INSERT INTO writes (id, site) VALUES ($next, gsb.site_name());"
		  . " SELECT gsb.start_meeting(gsb.schedule_meeting($acc, 'w$next', now())); COMMIT;");
	if ($err ne '')
	{
		$ws{$at}->run('ROLLBACK');    # no-op unless the COMMIT did not run
		push @refused, [ $t0, $at, $err ];
		return 0;
	}
	push @ok, [ time(), $at, $next ];
	$next++;
	return 1;
}

# Writes $n more rows, then returns. The attempts are bounded so that a
# writer that can never write fails the test instead of hanging.
sub write_rows
{
	my ($n) = @_;
	my $target = $next + $n;
	my $tries = 0;
	while ($next < $target && $tries++ < 20 * $n + 1000)
	{
		attempt();
	}
	return $next >= $target;
}

# Writes until the statement sent on $ctl has finished; returns its
# (stdout, stderr) and how long it ran.
sub write_while
{
	my ($ctl, $sql) = @_;
	my $t0 = time();
	$ctl->send($sql);
	my @res;
	my $tries = 0;
	for (;;)
	{
		@res = $ctl->done(0);
		last if @res && defined $res[0];
		attempt();
		die "the writer made 100000 attempts while '$sql' ran" if ++$tries > 100_000;
	}
	return (@res, time() - $t0);
}

ok(write_rows(50), 'writer: 50 rows on sjc before the maintenance');
my ($bout, $berr, $bdur) = write_while($ctl_sjc, 'SELECT gsb.begin_maintenance()');
is($berr, '', 'sjc: gsb.begin_maintenance() succeeds with the writer running');
ok(write_rows(50), 'writer: 50 rows after begin_maintenance');
is(active_of($_), 'ams', site_name($_) . ': ams is active during maintenance') for ($sjc, $ams);
is(q1($ams, 'SELECT mode || automatic FROM gsb.site_state'), 'maintenancefalse',
	'ams: mode maintenance (begun by hand)');
my ($eout, $eerr, $edur) = write_while($ctl_ams, 'SELECT gsb.end_maintenance()');
is($eerr, '', 'ams: gsb.end_maintenance() succeeds with the writer running');
ok(write_rows(50), 'writer: 50 rows after end_maintenance');
is(active_of($_), 'sjc', site_name($_) . ': sjc is active again') for ($sjc, $ams);
$_->close for (values %ws, $ctl_sjc, $ctl_ams);

my $written = $next - 1;
note("writer: $written rows written, " . scalar(@refused) . ' attempts refused');

# The refused-write window: the longest time from a refused attempt to the
# next successful write. And the longest gap between two successful writes.
my ($refused_window, $max_gap) = (0, 0);
{
	my @all = sort { $a->[0] <=> $b->[0] } (map { [ $_->[0], 'ok' ] } @ok),
	  (map { [ $_->[0], 'refused' ] } @refused);
	my $first_refused;
	for my $e (@all)
	{
		if ($e->[1] eq 'refused')
		{
			$first_refused //= $e->[0];
		}
		elsif (defined $first_refused)
		{
			my $w = $e->[0] - $first_refused;
			$refused_window = $w if $w > $refused_window;
			undef $first_refused;
		}
	}
	for my $i (1 .. $#ok)
	{
		my $g = $ok[$i][0] - $ok[ $i - 1 ][0];
		$max_gap = $g if $g > $max_gap;
	}
}
my %reasons;
$reasons{ ($_->[2] =~ /ERROR:\s+(?:\w{5}:\s+)?([^\n]*)/)[0] // $_->[2] }++ for @refused;
diag(sprintf(
		"planned switchover: refused-write window %.3f s (%d attempts refused), longest gap between"
		  . " two successful writes %.3f s; begin_maintenance took %.3f s, end_maintenance %.3f s",
		$refused_window, scalar(@refused), $max_gap, $bdur, $edur));
diag("refused: $_ (x$reasons{$_})") for sort keys %reasons;
cmp_ok($refused_window, '<=', 2 * $hb, 'writes were refused for at most two heartbeats');

# The writer moved from sjc to ams and back once: no flapping.
my $sites = join('', map { $_->[1] eq 'sjc' ? 's' : 'a' } @ok);
(my $runs = $sites) =~ s/(.)\1*/$1/g;
is($runs, 'sas', 'writes went to sjc, then ams, then sjc (each site in one run)');

wait_synced($sjc, $ams);
for my $n ($sjc, $ams)
{
	my $name = site_name($n);
	is( q1($n, "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || min(id) || ' ' || max(id) FROM writes"),
		"$written $written 1 $written", "$name: every row written, exactly once ($written)");
	is( q1($n, "SELECT count(*) FROM gsb.meetings WHERE title LIKE 'w%' AND status = 'in_progress'"),
		$written, "$name: every meeting the writer started, once");
	is( q1($n, "SELECT string_agg(reason || ' ' || from_site || '>' || to_site || ' ' || coalesce(detail, '-'), '; ' ORDER BY term) FROM gsb.site_events"),
		'maintenance start sjc>ams -; maintenance end ams>sjc -',
		"$name: 'maintenance start' and 'maintenance end' events");
}
is(q1($sjc, "SELECT count(*) FROM writes WHERE site = 'ams'"), $sites =~ tr/a//,
	"the rows the writer wrote on ams are marked as born there");
is( q1($sjc, "SELECT string_agg(relation || ' ' || status, ', ' ORDER BY relation) FROM gsb.verify() WHERE status <> 'match'"),
	'', 'gsb.verify(): every realtime table matches');

########################################################################
# b. The maintenance window, run by the monitor.
########################################################################
# A zone ahead of UTC by $off seconds, so that a minute boundary falls $lead
# to $lead + 1 s from now.
my $lead = 5;
my $now = epoch_now($sjc);
my $start = ceil($now + $lead);
my $off = (60 - $start % 60) % 60;
my $zone = $off == 0 ? 'UTC' : sprintf('GSB-00:00:%02d', $off);    # POSIX: west is positive
my @s = gmtime($start + $off);
my @e = gmtime($start + $off + 60);
my $window = sprintf('%02d:%02d-%02d:%02d %s', $s[2], $s[1], $e[2], $e[1], $zone);
note("maintenance window '$window': opens at " . scalar(gmtime($start)) . ' UTC');
my $qw = sql_quote($window);
is( q1($sjc,
		"SELECT concat_ws(' ', "
		  . join(', ', map { "gsb._in_window($qw, to_timestamp($_))" } ($start - 1, $start, $start + 59, $start + 60))
		  . ')'),
	'f t t f',
	"the window '$window' opens at the computed second and lasts one minute");

my $end = $start + 60;
reload_with($sjc, 'gsb.maintenance_window' => $window);
ok(wait_event($sjc, 'maintenance start', 2, $lead + 30), "sjc: the monitor starts maintenance");
my @ms = events_of($sjc, 'maintenance start');
is("$ms[-1]{from_site} -> $ms[-1]{to_site}", 'sjc -> ams', 'sjc: from sjc to ams');
is($ms[-1]{detail}, "maintenance window $window", 'sjc: the detail names the window');
diag(sprintf('maintenance window: switch to ams %.3f s after the window opened', $ms[-1]{at} - $start));
cmp_ok($ms[-1]{at}, '>=', $start, 'not before the window opened');
cmp_ok($ms[-1]{at} - $start, '<=', 1, 'within a second of the window opening');
ok(wait_active([ $sjc, $ams ], 'ams', 10), 'both sites name ams active during the window');
is(q1($ams, 'SELECT mode || automatic FROM gsb.site_state'), 'maintenancetrue',
	'ams: mode maintenance, started by the window');
ok(wait_event($ams, 'maintenance start', 2, 30), "ams: the 'maintenance start' event is on ams too");

# Service goes on on ams during the window.
my $m = q1($ams, "SELECT gsb.schedule_meeting($acc, 'in the window', now())");
my ($rc, $out, $err) = psql_verbose($ams, "SELECT gsb.start_meeting($m)");
is($rc, 0, 'ams: a meeting starts on ams during the window') or diag($err);

ok(wait_event($sjc, 'maintenance end', 2, $end - epoch_now($sjc) + 30),
	"sjc: the monitor ends maintenance when the window closes");
my @me = events_of($sjc, 'maintenance end');
is("$me[-1]{from_site} -> $me[-1]{to_site}", 'ams -> sjc', 'sjc: from ams to sjc');
diag(sprintf('maintenance window: back to sjc %.3f s after the window closed', $me[-1]{at} - $end));
cmp_ok($me[-1]{at}, '>=', $end, 'not before the window closed');
cmp_ok($me[-1]{at} - $end, '<=', 1, 'within a second of the window closing');
ok(wait_active([ $sjc, $ams ], 'sjc', 10), 'both sites name sjc active after the window');
ok(wait_event($ams, 'maintenance end', 2, 30), "ams: the 'maintenance end' event is on ams too");
is(q1($sjc, 'SELECT mode || automatic FROM gsb.site_state'), 'normalfalse', 'sjc: mode normal');
wait_synced($sjc, $ams);
is(q1($sjc, "SELECT status || ' ' || hosted_site FROM gsb.meetings WHERE id = $m"), 'in_progress ams',
	'sjc: the meeting started on ams during the window is there');
is(scalar(events_of($sjc)), 4, 'sjc: four site events in all (no failover, no extra switch)');

########################################################################
# c. A planned switchover copies the daily tables first: the backup serves
#    with the primary's configuration of that moment.
########################################################################
$sjc->safe_psql('postgres',
	"INSERT INTO gsb.site_config VALUES ('greeting', 'changed just before the switch')"
	  . ' ON CONFLICT (key) DO UPDATE SET value = excluded.value');
($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.begin_maintenance()');
is($rc, 0, 'sjc: gsb.begin_maintenance() right after changing site_config') or diag($err);
is(active_of($ams), 'ams', 'ams is active once begin_maintenance returns');
is(q1($ams, "SELECT value FROM gsb.site_config WHERE key = 'greeting'"), 'changed just before the switch',
	"ams: it serves with the primary's new site_config value (copied before the switch)");
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.end_maintenance()');
is($rc, 0, 'ams: gsb.end_maintenance()') or diag($err);
ok(wait_active([ $sjc, $ams ], 'sjc', 10), 'both sites name sjc active again');

# The same from the backup's side: begin_maintenance on ams copies too.
$sjc->safe_psql('postgres', "UPDATE gsb.site_config SET value = 'changed again' WHERE key = 'greeting'");
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.begin_maintenance()');
is($rc, 0, 'ams: gsb.begin_maintenance() called on the backup') or diag($err);
is(q1($ams, "SELECT value FROM gsb.site_config WHERE key = 'greeting'"), 'changed again',
	'ams: the copy was made there too');
psql_verbose($ams, 'SELECT gsb.end_maintenance()');
ok(wait_active([ $sjc, $ams ], 'sjc', 10), 'both sites name sjc active again');

########################################################################
# d. When the copy cannot be made (a daily table that differs on the
#    backup), a call by hand is refused and nothing switches; the window
#    starts all the same, and its event says that the copy failed.
########################################################################
$_->safe_psql('postgres', "CREATE TABLE prices (item text PRIMARY KEY, cents int)") for ($sjc, $ams);
$_->safe_psql('postgres', "SELECT gsb.replicate_table('prices', 'daily')") for ($ams, $sjc);
$ams->safe_psql('postgres', 'ALTER TABLE prices ADD COLUMN currency text');
($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.begin_maintenance()');
isnt($rc, 0, 'sjc: begin_maintenance is refused when the daily copy fails');
like($err, qr/maintenance not started: the daily tables could not be copied to the backup ams/,
	'... saying why') or diag($err);
like($err, qr/DETAIL:.*daily tables differ/s, '... with the copy\'s error as detail') or diag($err);
like($err, qr/HINT:/, '... and a hint');
is(active_of($_), 'sjc', site_name($_) . ': sjc is still active') for ($sjc, $ams);

$now = epoch_now($sjc);
$start = ceil($now + $lead);
$off = (60 - $start % 60) % 60;
$zone = $off == 0 ? 'UTC' : sprintf('GSB-00:00:%02d', $off);
@s = gmtime($start + $off);
@e = gmtime($start + $off + 60);
$window = sprintf('%02d:%02d-%02d:%02d %s', $s[2], $s[1], $e[2], $e[1], $zone);
my $starts_before = scalar(events_of($sjc, 'maintenance start'));
reload_with($sjc, 'gsb.maintenance_window' => $window);
ok(wait_event($sjc, 'maintenance start', $starts_before + 1, $lead + 30),
	'sjc: the window starts maintenance although the copy fails');
@ms = events_of($sjc, 'maintenance start');
like($ms[-1]{detail}, qr/^maintenance window \Q$window\E; daily copy failed, the backup serves with its last copy: .*daily tables differ/,
	"sjc: the 'maintenance start' event records the failed copy") or diag($ms[-1]{detail});
ok(wait_active([ $sjc, $ams ], 'ams', 10), 'both sites name ams active');
reload_with($sjc, 'gsb.maintenance_window' => '');
ok(wait_active([ $sjc, $ams ], 'sjc', 30), 'window removed: sjc active again');
$ams->safe_psql('postgres', 'ALTER TABLE prices DROP COLUMN currency');

########################################################################
# e. The backup unreachable: begin_maintenance is refused with class 08.
########################################################################
$ams->stop('immediate');
($rc, $out, $err) = psql_verbose($sjc, "SET gsb.peer_timeout = '2s'; SELECT gsb.begin_maintenance()");
like(sqlstate_of($err), qr/^08/, 'sjc: with ams down, begin_maintenance is refused with class 08') or diag($err);
like($err, qr/backup site ams is unreachable/, '... naming ams') or diag($err);
is(active_of($sjc), 'sjc', 'sjc: still active');
$ams->start;

check_logs($sjc, $ams);
done_testing();
