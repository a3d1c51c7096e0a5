# 107_usage.pl: the usage report merges the usage of both sites.
#
# Meetings run on the primary (sjc) and, after an automatic failover, on the
# backup (ams); one of them is in progress on sjc when sjc dies, is taken over
# by start_meeting on ams and ends there. Once the sites have exchanged their
# rows, gsb.usage_report(from, to) gives the same answer on both; the meeting
# that crossed the failover counts once in `meetings`, and its minutes (sjc's
# part + ams's part) add up to its whole length; primary_minutes and
# backup_minutes split each account's total by site; usage rows whose
# started_at is outside [from, to) are left out, at both ends.
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

my $ann = q1($sjc, "SELECT gsb.create_account('ann\@example.com', 'Ann')");
my $bob = q1($ams, "SELECT gsb.create_account('bob\@example.com', 'Bob')");
wait_synced($sjc, $ams);

# A meeting scheduled, started and ended on $node.
sub run_meeting
{
	my ($node, $acc, $title) = @_;
	my $id = q1($node, "SELECT gsb.schedule_meeting($acc, " . sql_quote($title) . ', now())');
	$node->safe_psql('postgres', "SELECT gsb.start_meeting($id)");
	$node->safe_psql('postgres', "SELECT gsb.end_meeting($id)");
	return $id;
}

sub report
{
	my ($node, $from, $to) = @_;
	return q1($node,
		"SELECT string_agg(concat_ws(' ', account_id, meetings, minutes, primary_minutes, backup_minutes), E'\\n'"
		  . ' ORDER BY account_id)'
		  . " FROM gsb.usage_report('$from', '$to')");
}

# Before the reported period.
my $m_early = run_meeting($sjc, $ann, 'before the period');
my $from = q1($sjc, 'SELECT clock_timestamp()');

# On the primary.
my $m_a1 = run_meeting($sjc, $ann, 'ann on sjc');
my $m_b1 = run_meeting($sjc, $bob, 'bob on sjc');
my $m_x = q1($sjc, "SELECT gsb.schedule_meeting($ann, 'crosses the failover', now())");
$sjc->safe_psql('postgres', "SELECT gsb.start_meeting($m_x)");
my $x_started = q1($sjc, "SELECT started_at FROM gsb.meetings WHERE id = $m_x");
wait_synced($sjc, $ams);

# sjc dies with m_x in progress; ams takes over.
$sjc->stop('immediate');
ok(wait_until($ams, 'SELECT gsb.active_site()', 'ams', 30), 'ams: active after sjc stopped');
$ams->safe_psql('postgres', "SELECT gsb.start_meeting($m_x)");
my $m_b2 = run_meeting($ams, $bob, 'bob on ams');
$ams->safe_psql('postgres', "SELECT gsb.end_meeting($m_x)");
my $x_ended = q1($ams, "SELECT ended_at FROM gsb.meetings WHERE id = $m_x");
my $to = q1($ams, 'SELECT clock_timestamp()');

# After the reported period.
my $m_late = run_meeting($ams, $ann, 'after the period');

$sjc->start;
ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30), 'sjc: back, it names ams active');
wait_synced($sjc, $ams);
is(table_digest($ams, 'gsb.usage'), table_digest($sjc, 'gsb.usage'), 'gsb.usage is the same on both sites');

########################################################################
# The report.
########################################################################
my $r_sjc = report($sjc, $from, $to);
my $r_ams = report($ams, $from, $to);
note("usage_report on sjc:\n$r_sjc");
is($r_ams, $r_sjc, 'usage_report(from, to) gives the same answer on both sites');

for my $n ($sjc, $ams)
{
	my $name = site_name($n);
	my $u = sub {    # minutes of usage rows of meeting $m (on site $s)
		my ($m, $s) = @_;
		return "(SELECT sum(minutes) FROM gsb.usage WHERE meeting_id = $m"
		  . (defined $s ? " AND site = '$s'" : '') . ')';
	};
	my $r = "(SELECT * FROM gsb.usage_report('$from', '$to') WHERE account_id = %s)";
	my $ra = sprintf($r, $ann);
	my $rb = sprintf($r, $bob);

	is(q1($n, "SELECT string_agg(site, ',' ORDER BY started_at) FROM gsb.usage WHERE meeting_id = $m_x"),
		'sjc,ams', "$name: the meeting that crossed the failover has a usage row for each site");
	is(q1($n, "SELECT meetings FROM $ra r"), '2',
		"$name: ann: 2 meetings in the period (the one that crossed the failover counts once)");
	is(q1($n, "SELECT meetings FROM $rb r"), '2', "$name: bob: 2 meetings (one per site)");
	is( q1($n,
			"SELECT round(" . $u->($m_x) . ", 9)"
			  . " = round(extract(epoch FROM '$x_ended'::timestamptz - '$x_started'::timestamptz) / 60, 9)"),
		't', "$name: the crossing meeting's minutes (sjc's part + ams's part) add up to its whole length");
	is( q1($n,
			"SELECT minutes = " . $u->($m_a1) . ' + ' . $u->($m_x)
			  . ' AND primary_minutes = ' . $u->($m_a1) . ' + ' . $u->($m_x, 'sjc')
			  . ' AND backup_minutes = ' . $u->($m_x, 'ams') . " FROM $ra r"),
		't', "$name: ann: minutes, primary_minutes, backup_minutes are the sums of her usage rows by site");
	is( q1($n,
			"SELECT minutes = " . $u->($m_b1) . ' + ' . $u->($m_b2)
			  . ' AND primary_minutes = ' . $u->($m_b1)
			  . ' AND backup_minutes = ' . $u->($m_b2) . " FROM $rb r"),
		't', "$name: bob: minutes split into sjc's and ams's");
	is( q1($n, "SELECT bool_and(primary_minutes + backup_minutes = minutes AND minutes > 0)"
			  . " FROM gsb.usage_report('$from', '$to')"),
		't', "$name: primary_minutes + backup_minutes = minutes for every account");
	is(q1($n, "SELECT count(*) FROM gsb.usage_report('$from', '$to')"), '2',
		"$name: two accounts in the period");

	# The meetings before and after the period are left out; they are in
	# the reports of their own periods.
	is( q1($n, "SELECT account_id || ' ' || meetings || ' ' || (minutes = " . $u->($m_late) . ')'
			  . " FROM gsb.usage_report('$to', '$to'::timestamptz + interval '1 day')"),
		"$ann 1 true", "$name: [to, to + 1 day) holds only the meeting after the period");
	is( q1($n, "SELECT account_id || ' ' || meetings || ' ' || (minutes = " . $u->($m_early) . ')'
			  . " FROM gsb.usage_report('$from'::timestamptz - interval '1 day', '$from')"),
		"$ann 1 true", "$name: [from - 1 day, from) holds only the meeting before the period");

	# [from, to): a row starting exactly at from_ts counts, exactly at to_ts not.
	my $s = q1($n, "SELECT started_at FROM gsb.usage WHERE meeting_id = $m_a1");
	is(q1($n, "SELECT count(*) FROM gsb.usage_report('$s', '$s')"), '0',
		"$name: an empty period [t, t) counts nothing");
	is( q1($n, "SELECT meetings FROM gsb.usage_report('$s', '$s'::timestamptz + interval '1 microsecond')"),
		'1', "$name: a row starting exactly at from_ts counts");
	is( q1($n, "SELECT coalesce(sum(meetings), 0) FROM gsb.usage_report('$s'::timestamptz - interval '1 millisecond', '$s')"),
		'0', "$name: a row starting exactly at to_ts does not");
}

# Still the same after failback (the report does not depend on which site
# is active).
my ($rc, $out, $err) = psql_verbose($sjc, 'SELECT gsb.failback()');
is($rc, 0, 'sjc: gsb.failback()') or diag($err);
is(report($sjc, $from, $to), $r_sjc, 'sjc: the same report after failback');
is(report($ams, $from, $to), $r_sjc, 'ams: the same report after failback');

check_logs($sjc, $ams);
done_testing();
