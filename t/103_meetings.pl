# 103_meetings.pl: meetings across a failover.
#
# Meetings are scheduled on both sites before, during and after an automatic
# failover (the primary sjc stopped with 'immediate'); afterwards every one
# of them is on both sites with the right status and host, and with the same
# teleconference number. start_meeting is refused on the site that is not
# active, with an error naming the active site. A meeting started on the
# backup (ams) shows as in progress, hosted on ams, on sjc once sjc is back,
# and join_meeting through sjc answers ams. A meeting in progress on sjc
# when it died is taken over by start_meeting on ams: a usage row for sjc's
# part; before that, join_meeting through ams answers ams, since sjc has
# failed (neither active nor reachable). end_meeting records a usage row of
# the exact duration, only on the hosting site. After failback, meetings
# start on sjc again and not on ams.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($sjc, $ams) = two_sites();

# Checks that $sql fails on $node with SQLSTATE $state and a message
# matching $re.
sub refused
{
	my ($node, $sql, $state, $re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = psql_verbose($node, $sql);
	ok($rc != 0 && sqlstate_of($err) eq $state && $err =~ $re, $name)
	  or diag("rc $rc, stdout '$out', stderr: $err");
	return;
}

# status/hosted_site of meeting $id on $node.
sub meeting_state
{
	my ($node, $id) = @_;
	return q1($node,
		"SELECT status || '/' || coalesce(hosted_site, '-') FROM gsb.meetings WHERE id = $id");
}

########################################################################
# Before the failover: sjc is active.
########################################################################
my $acc = q1($sjc, "SELECT gsb.create_account('ann\@example.com', 'Ann')");
wait_synced($sjc, $ams);
my %m;
$m{pre} = q1($sjc, "SELECT gsb.schedule_meeting($acc, 'scheduled on sjc before', now() + interval '1 day')");
$m{run} = q1($sjc, "SELECT gsb.schedule_meeting($acc, 'running on sjc when it dies', now())");
$m{early_b} = q1($ams, "SELECT gsb.schedule_meeting($acc, 'scheduled on ams before', now() + interval '2 days')");
$sjc->safe_psql('postgres', "SELECT gsb.start_meeting($m{run})");
wait_synced($sjc, $ams);
is(meeting_state($ams, $m{run}), 'in_progress/sjc', 'ams: the meeting started on sjc shows in progress, hosted on sjc');
is(q1($ams, "SELECT gsb.join_meeting($m{run})"), 'sjc', 'ams: join_meeting answers sjc, its host');
refused($ams, "SELECT gsb.start_meeting($m{pre})", '55000',
	qr/meetings start only on the active site, which is sjc/,
	'ams (not active): start_meeting is refused with an error naming sjc');
like((psql_verbose($ams, "SELECT gsb.start_meeting($m{pre})"))[2], qr/HINT:.*sjc/,
	'ams: ... and a hint naming sjc');
is(meeting_state($ams, $m{pre}), 'scheduled/-', 'ams: the refused meeting is still scheduled');
my $run_started = q1($sjc, "SELECT started_at FROM gsb.meetings WHERE id = $m{run}");

########################################################################
# The failover.
########################################################################
$sjc->stop('immediate');
ok(wait_until($ams, 'SELECT gsb.active_site()', 'ams', 30), 'ams: active after sjc stopped');

# The meeting's host sjc has failed: neither active nor reachable (the
# monitor of ams says so). Its participants rejoining through ams are sent to
# ams, where the meeting goes on, not to the dead sjc.
ok(wait_until($ams, 'SELECT NOT peer_reachable FROM gsb.status', 't', 30),
	'ams: its monitor finds sjc unreachable');
is(meeting_state($ams, $m{run}), 'in_progress/sjc', 'ams: the meeting is still marked in progress on sjc');
is(q1($ams, "SELECT gsb.join_meeting($m{run})"), 'ams',
	'ams: join_meeting of the meeting hosted on the failed sjc answers ams, the active site');

$m{b1} = q1($ams, "SELECT gsb.schedule_meeting($acc, 'scheduled and started on ams during the outage', now())");
$ams->safe_psql('postgres', "SELECT gsb.start_meeting($m{b1})");
is(meeting_state($ams, $m{b1}), 'in_progress/ams', 'ams: a meeting started on ams is in progress there');

# Take over the meeting that was running on sjc.
my ($rc, $out, $err) = psql_verbose($ams, "SELECT gsb.start_meeting($m{run})");
is($rc, 0, 'ams: start_meeting takes over the meeting sjc was hosting') or diag($err);
is(meeting_state($ams, $m{run}), 'in_progress/ams', 'ams: that meeting now goes on on ams');
is( q1($ams,
		"SELECT count(*) || ' ' || min(site) || ' ' || (min(started_at) = '$run_started'::timestamptz)"
		  . " || ' ' || (min(minutes) > 0) FROM gsb.usage WHERE meeting_id = $m{run}"),
	'1 sjc true true',
	"ams: one usage row for sjc's part of it, from when it started on sjc");

########################################################################
# sjc is back; ams stays active. Meetings scheduled on both sites.
########################################################################
$sjc->start;
ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30), 'sjc: back, it names ams active');
wait_synced($sjc, $ams);
is(meeting_state($sjc, $m{b1}), 'in_progress/ams',
	'sjc: the meeting started on ams during the outage shows in progress, hosted on ams');
is(meeting_state($sjc, $m{run}), 'in_progress/ams', 'sjc: the taken-over meeting shows hosted on ams');
is(q1($sjc, "SELECT gsb.join_meeting($m{b1})"), 'ams', 'sjc: join_meeting through sjc answers ams');
is(q1($sjc, "SELECT gsb.join_meeting($m{run})"), 'ams', 'sjc: ... also for the taken-over meeting');
is(q1($sjc, "SELECT gsb.join_meeting($m{pre})"), 'ams',
	'sjc: join_meeting of a meeting not in progress answers the active site, ams');

$m{a2} = q1($sjc, "SELECT gsb.schedule_meeting($acc, 'scheduled on sjc while failed over', now())");
$m{b2} = q1($ams, "SELECT gsb.schedule_meeting($acc, 'scheduled on ams while failed over', now() + interval '3 days')");
refused($sjc, "SELECT gsb.start_meeting($m{a2})", '55000',
	qr/meetings start only on the active site, which is ams/,
	'sjc (not active): start_meeting is refused with an error naming ams');
refused($sjc, "SELECT gsb.end_meeting($m{b1})", '55000', qr/hosted on site ams/,
	'sjc: end_meeting of a meeting hosted on ams is refused, naming ams');
wait_synced($sjc, $ams);
$ams->safe_psql('postgres', "SELECT gsb.start_meeting($m{a2})");
wait_synced($sjc, $ams);

my %want = (
	pre => 'scheduled/-',
	run => 'in_progress/ams',
	early_b => 'scheduled/-',
	b1 => 'in_progress/ams',
	a2 => 'in_progress/ams',
	b2 => 'scheduled/-',
);
for my $k (sort keys %want)
{
	is(meeting_state($_, $m{$k}), $want{$k}, site_name($_) . ": meeting '$k' is $want{$k}")
	  for ($sjc, $ams);
}

########################################################################
# Ending meetings records usage on the hosting site.
########################################################################
$ams->safe_psql('postgres', "SELECT gsb.end_meeting($m{b1}); SELECT gsb.end_meeting($m{run});");
wait_synced($sjc, $ams);
for my $n ($sjc, $ams)
{
	my $name = site_name($n);
	is(meeting_state($n, $m{b1}), 'ended/ams', "$name: the meeting ended on ams is ended");
	is( q1($n, "SELECT string_agg(site, ',' ORDER BY started_at) FROM gsb.usage WHERE meeting_id = $m{b1}"),
		'ams', "$name: one usage row for it, for ams");
	is( q1($n, "SELECT string_agg(site, ',' ORDER BY started_at) FROM gsb.usage WHERE meeting_id = $m{run}"),
		'sjc,ams', "$name: the taken-over meeting has a usage row for each site's part");
	is( q1($n,
			"SELECT bool_and(minutes = extract(epoch FROM ended_at - started_at) / 60 AND ended_at >= started_at)"
			  . " FROM gsb.usage"),
		't', "$name: every usage row's minutes are its exact duration");
	is( q1($n, "SELECT bool_and(u.account_id = m.account_id) FROM gsb.usage u JOIN gsb.meetings m ON m.id = u.meeting_id"),
		't', "$name: usage rows carry the meeting's account");
}
# The two parts of the taken-over meeting meet: sjc's part ends where ams's begins.
is( q1($ams,
		"SELECT (SELECT ended_at FROM gsb.usage WHERE meeting_id = $m{run} AND site = 'sjc')"
		  . " = (SELECT started_at FROM gsb.usage WHERE meeting_id = $m{run} AND site = 'ams')"),
	't', "ams: sjc's part of the taken-over meeting ends where ams's part begins");
refused($ams, "SELECT gsb.join_meeting($m{b1})", '55000', qr/has ended/,
	'ams: join_meeting of an ended meeting is refused');

is(table_digest($ams, 'gsb.meetings'), table_digest($sjc, 'gsb.meetings'), 'gsb.meetings is the same on both sites');
is(table_digest($ams, 'gsb.usage'), table_digest($sjc, 'gsb.usage'), 'gsb.usage is the same on both sites');
same_on_both($sjc, $ams,
	"SELECT string_agg(id || '=' || coalesce(tele_number, 'NULL'), ',' ORDER BY id) FROM gsb.meetings",
	'every meeting has the same teleconference number on both sites');
is( q1($sjc, 'SELECT count(*) = count(DISTINCT tele_number) AND count(tele_number) = 6 FROM gsb.meetings'),
	't', 'sjc: six meetings, each with its own teleconference number');

########################################################################
# After failback, meetings start on sjc again, and not on ams.
########################################################################
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.failback()');
is($rc, 0, 'ams: gsb.failback()') or diag($err);
ok(wait_active([ $sjc, $ams ], 'sjc', 10), 'both sites name sjc active');
refused($ams, "SELECT gsb.start_meeting($m{b2})", '55000',
	qr/meetings start only on the active site, which is sjc/,
	'ams (no longer active): start_meeting is refused, naming sjc');
($rc, $out, $err) = psql_verbose($sjc, "SELECT gsb.start_meeting($m{b2})");
is($rc, 0, 'sjc: start_meeting works on sjc again') or diag($err);
wait_synced($sjc, $ams);
is(meeting_state($ams, $m{b2}), 'in_progress/sjc', 'ams: it shows in progress, hosted on sjc');
is(q1($ams, "SELECT gsb.join_meeting($m{b2})"), 'sjc', 'ams: join_meeting answers sjc');

check_logs($sjc, $ams);
done_testing();
