# 324_clock_skew.pl: last-writer-wins with one site's clock 5 s behind.
#
# One site runs under libfaketime (Debian package faketime) with FAKETIME
# '-5s': its now(), clock_timestamp() and commit timestamps are 5 s behind the
# other site's. Before the fix (commit timestamps compared as they were), when
# a row was updated on the fast site and then, after that version had
# arrived, on the slow site, the fast site kept its own version (the slow
# site's update carried an earlier timestamp and lost there, update_differs
# keep_local) while the slow site kept its update: the sites diverged and the
# causally later write was lost. Now the stream carries a hybrid logical clock
# (README, Conflicts).
#
# Twice, once with ams slow and once with sjc slow (restarts in between):
#   a. the causal case: the fast site updates a row; once it has arrived, the
#      slow site updates it again: both sites end with the slow site's
#      version, and the fast site records no conflict that kept its own row.
#   c. a delete after a seen update: the fast site updates a row, the slow
#      site, once it has it, deletes it: gone on both, no conflict recorded
#      (before: delete_differs on the fast site).
#   and the fast site's gsb.status.clock_offset shows the other 5 s behind,
#   with one WARNING in its log (gsb.clock_warning).
# Then, with ams slow:
#   b. truly concurrent updates (each site's apply stopped with the fault
#      point apply_change_error, so neither sees the other's change first),
#      in both real-time orders: both sites end identical, gsb.verify()
#      matches. (Which write wins is decided by the clocks, as before.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults qw(set_fault verify_all);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# libfaketime: Debian's faketime package ships the preload library with the
# command; look the command up first, then the library next to Debian's path.
my $faketime = find_tool('faketime');
my ($libfaketime) = grep { -r $_ } (
	'/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
	'/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
	'/usr/lib/faketime/libfaketime.so.1');
plan skip_all => 'libfaketime is not installed (Debian package faketime)'
  unless defined $faketime && defined $libfaketime;

my $skew = 5;    # seconds the slow site's clock is behind

# Starts $node with its clock $skew s behind when $slow, normally otherwise.
# PostgreSQL::Test::Cluster::start inherits %ENV: only the postmaster (and the
# processes it forks) get the preload, never this script's clients.
sub start_node
{
	my ($node, $slow) = @_;
	if ($slow)
	{
		local $ENV{LD_PRELOAD} = $libfaketime;
		local $ENV{FAKETIME} = "-${skew}s";
		# Only the wall clock: PostgreSQL's timeouts and latches keep a
		# monotonic clock that runs normally.
		local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
		$node->start;
	}
	else
	{
		$node->start;
	}
	return;
}

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup', starter => sub { start_node($_[0], 1) });
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('c');});
}
$sjc->safe_psql('postgres', "INSERT INTO c SELECT g, 'base' FROM generate_series(1, 20) g");
connect_sites($sjc, $ams);
wait_synced($sjc, $ams);

# The slow site's clock is behind the fast one's by about $skew s.
sub check_skew
{
	my ($fast, $slow) = @_;
	my $f1 = $fast->safe_psql('postgres', 'SELECT extract(epoch FROM clock_timestamp())');
	my $s = $slow->safe_psql('postgres', 'SELECT extract(epoch FROM clock_timestamp())');
	my $f2 = $fast->safe_psql('postgres', 'SELECT extract(epoch FROM clock_timestamp())');
	my $offset = $s - ($f1 + $f2) / 2;
	ok($offset > -$skew - 1 && $offset < -$skew + 1,
		site_name($slow) . "'s clock is ${skew} s behind " . site_name($fast)
		  . "'s (measured " . sprintf('%.3f', $offset) . ' s)');
	return;
}

# The fast site's monitor measures the offset too: gsb.status.clock_offset is
# the peer's clock minus this site's. (Only the fast site's: libfaketime
# reaches the slow site's backends, whose commits and clock_timestamp() are
# behind, but not its background workers, whose log lines carry the real
# time; so the slow site's monitor sees no offset here.)
sub check_offset_column
{
	my ($fast, $slow) = @_;
	my ($fn, $sn) = (site_name($fast), site_name($slow));
	my $has = $fast->safe_psql('postgres',
		"SELECT count(*) FROM pg_attribute WHERE attrelid = 'gsb.status'::regclass"
		  . " AND attname IN ('clock_offset', 'clock_offset_error') AND NOT attisdropped");
	unless ($has eq '2')
	{
		fail("$fn: gsb.status has columns clock_offset and clock_offset_error");
		return;
	}
	my $where = 'FROM gsb.status WHERE peer = ' . sql_quote($sn);
	$fast->poll_query_until('postgres', "SELECT clock_offset IS NOT NULL $where", 't');
	my ($seen, $err) = split /\|/,
	  $fast->safe_psql('postgres',
		"SELECT extract(epoch FROM clock_offset), extract(epoch FROM clock_offset_error) $where");
	$seen //= '';
	$err //= '';
	ok($seen ne '' && -$seen > $skew - 1 && -$seen < $skew + 1,
		"$fn: gsb.status.clock_offset says $sn is ${skew} s behind ($seen s)");
	ok($err ne '' && $err >= 0 && $err < 1, "$fn: clock_offset_error is the half round trip ($err s)");
	return;
}

# Lines of $node's server log that warn about $peer's clock.
sub clock_warnings
{
	my ($node, $peer) = @_;
	my @w = grep { /WARNING:.*the clock of peer "$peer" is/ } split /\n/, slurp_file($node->logfile);
	return scalar @w;
}

# Waits until $node has row $key with value $v (or no row when $v is undef).
sub wait_row
{
	my ($node, $key, $v) = @_;
	my $q = defined $v
	  ? "SELECT count(*) FROM c WHERE id = $key AND v = " . sql_quote($v)
	  : "SELECT 1 - count(*) FROM c WHERE id = $key";
	return $node->poll_query_until('postgres', $q, '1');
}

sub value_of
{
	my ($node, $key) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce((SELECT v FROM c WHERE id = $key), '(none)')");
}

# Conflicts recorded on $node for key $key, as 'kind/resolution' lines.
sub conflicts_on
{
	my ($node, $key) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(kind || '/' || resolution, ',' ORDER BY at), '')"
		  . " FROM gsb.conflicts WHERE relation = 'c'::regclass AND key = '($key)'");
}

# a and c with $fast and $slow, on keys $ka and $kc.
sub causal_round
{
	my ($fast, $slow, $ka, $kc) = @_;
	my ($fn, $sn) = (site_name($fast), site_name($slow));
	check_skew($fast, $slow);

	# a. fast writes v1; slow, having it, writes v2.
	$fast->safe_psql('postgres', "UPDATE c SET v = 'v1 from $fn' WHERE id = $ka");
	ok(wait_row($slow, $ka, "v1 from $fn"), "a: $sn has $fn\'s update of key $ka");
	$slow->safe_psql('postgres', "UPDATE c SET v = 'v2 from $sn' WHERE id = $ka");
	wait_synced($fast, $slow);
	is(value_of($slow, $ka), "v2 from $sn", "a: $sn keeps its own later update of key $ka");
	is(value_of($fast, $ka), "v2 from $sn",
		"a: $fn has $sn\'s update of key $ka, made after $fn\'s had arrived ($sn\'s clock ${skew} s behind)");
	my $fc = conflicts_on($fast, $ka);
	ok($fc eq '' || $fc =~ /^(?:[a-z_]+\/apply_remote,?)+$/,
		"a: $fn recorded no conflict that kept its own row for key $ka ($fc)");

	# c. fast writes v1; slow, having it, deletes the row.
	$fast->safe_psql('postgres', "UPDATE c SET v = 'v1 from $fn' WHERE id = $kc");
	ok(wait_row($slow, $kc, "v1 from $fn"), "c: $sn has $fn\'s update of key $kc");
	$slow->safe_psql('postgres', "DELETE FROM c WHERE id = $kc");
	wait_synced($fast, $slow);
	is(value_of($fast, $kc), '(none)', "c: $fn has $sn\'s delete of key $kc");
	is(value_of($slow, $kc), '(none)', "c: $sn has its delete of key $kc");
	is(conflicts_on($fast, $kc), '',
		"c: the delete made after $fn\'s update arrived is no conflict on $fn");
	return;
}

########################################################################
# ams slow.
########################################################################
causal_round($sjc, $ams, 1, 2);
check_offset_column($sjc, $ams);
# One WARNING about the slow clock, not one per heartbeat (every 200 ms
# here): the fast site's monitor has been measuring for several seconds now.
is(clock_warnings($sjc, 'ams'), 1, 'sjc warned once that ams\'s clock is behind (gsb.clock_warning 1 s)');

########################################################################
# b. Truly concurrent updates, ams still slow: neither site applies the
# other's changes while both write.
########################################################################
set_fault($sjc, 'apply_change_error');
set_fault($ams, 'apply_change_error');
# Key 5: ams first, sjc later (real time); key 6: sjc first, ams later.
$ams->safe_psql('postgres', "UPDATE c SET v = 'concurrent from ams' WHERE id = 5");
$sjc->safe_psql('postgres', "UPDATE c SET v = 'concurrent from sjc' WHERE id = 5");
$sjc->safe_psql('postgres', "UPDATE c SET v = 'concurrent from sjc' WHERE id = 6");
$ams->safe_psql('postgres', "UPDATE c SET v = 'concurrent from ams' WHERE id = 6");
is($sjc->safe_psql('postgres', "SELECT count(*) FROM c WHERE v = 'concurrent from ams'"), '0',
	'b: sjc wrote without seeing ams\'s concurrent updates');
is($ams->safe_psql('postgres', "SELECT count(*) FROM c WHERE v = 'concurrent from sjc'"), '0',
	'b: ams wrote without seeing sjc\'s concurrent updates');
set_fault($sjc, '');
set_fault($ams, '');
ok(wait_state($sjc, 'ams', 'streaming'), 'b: sjc streams from ams again');
ok(wait_state($ams, 'sjc', 'streaming'), 'b: ams streams from sjc again');
wait_synced($sjc, $ams);
for my $key (5, 6)
{
	my $v = value_of($sjc, $key);
	is(value_of($ams, $key), $v, "b: key $key is the same on both sites after concurrent updates ($v)");
	like($v, qr/^concurrent from (?:sjc|ams)$/, "b: key $key holds one of the two concurrent writes");
}
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'b: c is identical on both sites');
verify_all($sjc);

########################################################################
# sjc slow, ams normal: the mirror of a and c.
########################################################################
$ams->stop('fast');
$sjc->stop('fast');
start_node($ams, 0);
start_node($sjc, 1);
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc streams from ams after the restarts');
ok(wait_state($ams, 'sjc', 'streaming'), 'ams streams from sjc after the restarts');
causal_round($ams, $sjc, 3, 4);
check_offset_column($ams, $sjc);
is(clock_warnings($ams, 'sjc'), 1, 'ams warned once that sjc\'s clock is behind');

is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'c is identical on both sites at the end');
verify_all($ams);
for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
{
	my $st = status_row($pair->[0], $pair->[1]);
	is($st->{state}, 'streaming', site_name($pair->[0]) . ": still streaming from $pair->[1]");
}

check_logs($sjc, $ams);
done_testing();
