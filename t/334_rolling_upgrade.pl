# 334_rolling_upgrade.pl: two sites whose gsb SQL objects are at different
# versions (the released 0.1 on one, 0.2 on the other), served by the same
# gsb.so, as in a rolling upgrade (README.md, Upgrading): everything gsb does
# between two sites keeps working across the versions, in both mixes.
#
# Pair 1: sjc (primary) and ams (backup) both at 0.1; ams is updated first
# (backup newer). Pair 2: sfo (primary) installed at 0.2, fra (backup) at 0.1
# (primary newer). In each mixed state: the library's version check answers
# for each site's own catalog; the apply stream carries writes both ways;
# gsb.status shows the link and the monitor's heartbeats; gsb.verify() from
# each site finds the tables equal; the daily copy reaches the backup; the
# monitor fails over when the primary dies, the primary yields when it comes
# back, and gsb.failback() returns service to it. The older site is then
# updated and replication goes on.
#
# Today 0.2's objects equal 0.1's, so this passes trivially on the catalog
# side: it is here to catch a 0.2 change that the library or the peer cannot
# handle against a 0.1 catalog (see catalog::ExtensionVersionAtLeast).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbUpgrade;
use GsbHttp;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $OLD = '0.1';
my $NEW = '0.2';

my %conf = (
	heartbeat_interval => '200ms',
	failover_timeout => '2s',
	failback_delay => '-1',
	extra_conf => 'log_statement = none',
);
my $schema = q{
CREATE TABLE notes (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('notes');
CREATE TABLE prefs (k text PRIMARY KEY, v text);
SELECT gsb.replicate_table('prefs', 'daily');
};

my $next_id = 0;

# Rows written on $node must reach $other.
sub writes_reach
{
	my ($node, $other, $what) = @_;
	my $name = site_name($node);
	my @ids = map { ++$next_id } 1 .. 20;
	$node->safe_psql('postgres',
		join('', map { "INSERT INTO notes VALUES ($_, '$name', '$what');" } @ids)
		  . "SELECT gsb.create_account('$what.$name.$ids[0]\@example.com', 'x');");
	ok(wait_until($other,
			"SELECT count(*) FROM notes WHERE id BETWEEN $ids[0] AND $ids[-1] AND v = '$what'",
			'20', 60),
		"$what: 20 rows written on $name reach " . site_name($other));
	ok(wait_until($other,
			"SELECT count(*) FROM gsb.accounts WHERE email = '$what.$name.$ids[0]\@example.com'",
			'1', 60),
		"$what: an account made on $name reaches " . site_name($other));
	return;
}

# Everything gsb does between $p (primary) and $b (backup), in their state
# named $label.
sub exercise
{
	my ($p, $b, $label) = @_;
	my ($pn, $bn) = (site_name($p), site_name($b));
	note("---- $label: $pn at " . ext_version($p) . ", $bn at " . ext_version($b));

	# The library's version check reads each site's own catalog.
	for my $n ($p, $b)
	{
		my $v = ext_version($n);
		my $newer = $v eq $NEW ? 'true' : 'false';
		is( $n->safe_psql('postgres', "SELECT gsb.selftest_extension_version('$NEW')"),
			"$v, at least $NEW: $newer",
			"$label: " . site_name($n) . ": the library sees version $v");
	}

	# The apply stream, both ways.
	writes_reach($p, $b, "$label p->b");
	writes_reach($b, $p, "$label b->p");

	# gsb.status and the monitor's heartbeats.
	for my $pair ([ $p, $bn ], [ $b, $pn ])
	{
		my ($n, $peer) = @$pair;
		my $st = status_row($n, $peer);
		is("$st->{state} $st->{last_error}", 'streaming ',
			"$label: " . site_name($n) . ": gsb.status shows the link from $peer streaming, no error");
		ok( wait_until($n,
				"SELECT peer_reachable AND last_heartbeat_at > now() - interval '5 s'"
				  . " AND last_monitor_error IS NULL FROM gsb.status WHERE peer = '$peer'",
				't', 30),
			"$label: " . site_name($n) . ": the monitor reaches $peer and its heartbeats are recent");
	}

	# verify, from each site.
	wait_synced($p, $b);
	for my $n ($p, $b)
	{
		my ($rc, $out, $err) = psql_verbose($n,
			"SELECT relation || ' ' || status FROM gsb.verify() ORDER BY 1");
		my @l = split /\n/, $out;
		ok($rc == 0 && @l >= 5 && !grep({ !/ match$/ } @l),
			"$label: " . site_name($n) . ": gsb.verify() finds every table the same on both sites")
		  or diag("rc $rc: $out$err");
	}

	# The daily copy, primary to backup.
	$p->safe_psql('postgres',
		"INSERT INTO prefs VALUES ('$label', 'from $pn') ON CONFLICT (k) DO UPDATE SET v = excluded.v;"
		  . "INSERT INTO gsb.site_config VALUES ('$label', '$pn') ON CONFLICT (key) DO UPDATE SET value = excluded.value;");
	my ($rc, $out, $err) = psql_verbose($b, 'SELECT gsb.sync_config()');
	is($rc, 0, "$label: $bn: gsb.sync_config() copies from $pn") or diag($err);
	for my $t ([ 'prefs', 'k' ], [ 'gsb.site_config', 'key' ])
	{
		is(table_digest($b, $t->[0], $t->[1]), table_digest($p, $t->[0], $t->[1]),
			"$label: $bn: the daily copy leaves $t->[0] as on $pn");
	}

	# Failover: the primary dies, the backup takes over.
	my $events = scalar(events_of($b, 'automatic failover'));
	$p->stop('immediate');
	ok( wait_until($b,
			"SELECT gsb.detect_backup() = 'Backup' AND gsb.active_site() = '$bn' AND gsb.is_active()",
			't', 30),
		"$label: $bn becomes the active site after $pn dies");
	is(scalar(events_of($b, 'automatic failover')), $events + 1,
		"$label: $bn records one automatic failover");
	$b->safe_psql('postgres', "INSERT INTO notes VALUES (" . ++$next_id . ", '$bn', '$label while $pn was down')");
	my $down_id = $next_id;

	# The primary comes back, yields, gets what it missed; failback.
	$p->start;
	ok(wait_until($p, 'SELECT gsb.active_site()', $bn, 30),
		"$label: $pn, back, learns that $bn serves");
	ok(wait_until($p, "SELECT count(*) FROM notes WHERE id = $down_id", '1', 60),
		"$label: $pn gets the row written on $bn while it was down");
	($rc, $out, $err) = psql_verbose($p, 'SELECT gsb.failback()');
	is($rc, 0, "$label: $pn: gsb.failback() succeeds") or diag($err);
	ok(wait_active([ $p, $b ], $pn, 30), "$label: both sites name $pn active after failback");
	ok(wait_event($b, 'failback', 1, 30), "$label: $bn records the failback");
	for my $pair ([ $p, $bn ], [ $b, $pn ])
	{
		ok(wait_state($pair->[0], $pair->[1], 'streaming'),
			"$label: " . site_name($pair->[0]) . ": the link from $pair->[1] streams again");
	}
	writes_reach($p, $b, "$label after failback p->b");
	writes_reach($b, $p, "$label after failback b->p");
	return;
}

########################################################################
# Pair 1: both at 0.1, the backup updated first.
########################################################################
my $sjc = new_site_at('sjc', 'primary', $OLD, %conf);
my $ams = new_site_at('ams', 'backup', $OLD, %conf);
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);
writes_reach($sjc, $ams, 'both at 0.1');

$ams->safe_psql('postgres', "ALTER EXTENSION gsb UPDATE TO '$NEW'");
is(ext_version($ams), $NEW, "ams: updated to $NEW while sjc stays at $OLD");
exercise($sjc, $ams, "primary $OLD, backup $NEW");

$sjc->safe_psql('postgres', "ALTER EXTENSION gsb UPDATE TO '$NEW'");
is(ext_version($sjc), $NEW, "sjc: updated to $NEW");
writes_reach($sjc, $ams, "both at $NEW (pair 1)");
writes_reach($ams, $sjc, "both at $NEW (pair 1)");
wait_synced($sjc, $ams);
is(table_digest($ams, 'notes'), table_digest($sjc, 'notes'), 'pair 1: notes the same on both sites');
check_logs($sjc, $ams);
$_->stop for ($sjc, $ams);

########################################################################
# Pair 2: the primary at 0.2, the backup at 0.1.
########################################################################
# Both with the HTTP endpoint: /status must answer on the 0.1 catalog too
# (gsb.next_maintenance() is new in 0.2; the same gsb.so serves both).
my %http_port = map { $_ => PostgreSQL::Test::Cluster::get_free_port() } qw(sfo fra);
my $sfo = new_site_at('sfo', 'primary', $NEW, %conf,
	extra_conf => "log_statement = none\ngsb.http_port = $http_port{sfo}");
my $fra = new_site_at('fra', 'backup', $OLD, %conf,
	extra_conf => "log_statement = none\ngsb.http_port = $http_port{fra}");
$_->safe_psql('postgres', $schema) for ($sfo, $fra);
connect_sites($sfo, $fra);
for my $s ([ 'sfo', $NEW, qr/"next_maintenance" : null|"next_maintenance":null|"next_maintenance": null/ ],
	[ 'fra', $OLD, qr/"next_maintenance" : null|"next_maintenance":null|"next_maintenance": null/ ])
{
	my ($name, $version, $re) = @$s;
	my ($r, $ok) = wait_http($http_port{$name}, '/status', 200, qr/"site" : "$name"/, 30);
	ok($ok, "$name at $version: GET /status answers 200")
	  or diag("status " . ($r->{status} // 'none') . ": " . ($r->{body} // ''));
	like($r->{body} // '', $re, "$name at $version: /status says no maintenance window");
}
exercise($sfo, $fra, "primary $NEW, backup $OLD");

$fra->safe_psql('postgres', "ALTER EXTENSION gsb UPDATE TO '$NEW'");
is(ext_version($fra), $NEW, "fra: updated to $NEW");
writes_reach($sfo, $fra, "both at $NEW (pair 2)");
writes_reach($fra, $sfo, "both at $NEW (pair 2)");
wait_synced($sfo, $fra);
is(table_digest($fra, 'notes'), table_digest($sfo, 'notes'), 'pair 2: notes the same on both sites');
check_logs($sfo, $fra);

done_testing();
