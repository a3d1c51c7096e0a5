# 304_frozen_peer.pl: a frozen peer (SIGSTOP: its sockets stay open, it says
# nothing). The other site's apply worker notices within gsb.apply_timeout,
# and a fast shutdown of the site that is not frozen does not hang.
#
# sjc's postmaster and every child of it are stopped with SIGSTOP. ams has
# gsb.apply_timeout = 3s: its gsb.status must show the peer down (or a
# last_error saying the peer went silent) within the timeout plus slack.
# Then ams is shut down with mode fast, timed: it must finish in bounded time
# even though its workers talk to a peer that never answers. Then sjc gets
# SIGCONT (also in an END block, whatever happens), ams starts again, and
# the rows written on both sites before, during and after arrive exactly once.
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

my $TIMEOUT_S = 3;
my @frozen;

# Whatever happens, never leave a stopped cluster behind.
END { kill('CONT', @frozen) if @frozen; }

my $sjc = new_site('sjc', 'primary');
# wal_sender_timeout bounds how long ams's own walsender (which serves sjc's
# apply worker) waits at shutdown for the frozen sjc to confirm the last WAL:
# PostgreSQL's walsenders wait for that, up to this timeout (default 60 s).
my $WAL_SENDER_TIMEOUT_S = 10;
my $ams = new_site('ams', 'backup', apply_timeout => "${TIMEOUT_S}s",
	extra_conf => "wal_sender_timeout = '${WAL_SENDER_TIMEOUT_S}s'");
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

sub write_rows
{
	my ($node, $base, $n) = @_;
	$node->safe_psql('postgres', join("\n",
		map { "INSERT INTO items VALUES (" . ($base + $_) . ", '" . site_name($node) . "', md5('$_'));" } 1 .. $n));
	return;
}

# The postmaster of $node and all its children (from /proc).
sub cluster_pids
{
	my ($node) = @_;
	my $pm = $node->{_pid} or die "no postmaster pid for " . site_name($node);
	my @pids = ($pm);
	opendir(my $d, '/proc') or die "cannot read /proc: $!";
	for my $p (grep { /^\d+$/ } readdir $d)
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close $fh;
		# pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/;
		push @pids, $p if defined $ppid && $ppid == $pm;
	}
	closedir $d;
	return @pids;
}

write_rows($sjc, 0, 100);
write_rows($ams, 10000, 100);
wait_synced($sjc, $ams);

########################################################################
# Freeze sjc.
########################################################################
my $off = log_offset($ams);
@frozen = cluster_pids($sjc);
cmp_ok(scalar(@frozen), '>=', 5, "sjc: postmaster and children found (@frozen)");
is(kill('STOP', @frozen), scalar(@frozen), 'sjc: every process of the cluster stopped (SIGSTOP)');
$GsbFaults::FIGURES{faults}++;
my $t0 = time();

ok( wait_until($ams,
		"SELECT state = 'down' OR last_error ~* 'silent|lost|timeout|timed out' FROM gsb.status WHERE peer = 'sjc'",
		$TIMEOUT_S + 20),
	'ams: gsb.status shows that sjc is gone');
my $noticed = time() - $t0;
my $st = status_row($ams, 'sjc');
note(sprintf("ams noticed after %.1f s: state %s, last_error: %s", $noticed, $st->{state}, $st->{last_error}));
cmp_ok($noticed, '<=', $TIMEOUT_S + 5,
	sprintf("ams: its worker noticed within gsb.apply_timeout (%ds) plus 5 s slack (%.1f s)", $TIMEOUT_S, $noticed));
like($st->{last_error}, qr/silent|timeout|timed out|lost|connection/i,
	'ams: last_error says the peer went silent');

# ams keeps serving its own writes meanwhile.
write_rows($ams, 20000, 50);

########################################################################
# A fast shutdown of ams, while sjc is still frozen, does not hang.
########################################################################
$off = log_offset($ams);
my $t1 = time();
my $stopped = eval { $ams->stop('fast'); 1; };
my $took = time() - $t1;
ok($stopped, 'ams: pg_ctl stop -m fast succeeded while sjc is frozen') or diag($@);
cmp_ok($took, '<', $WAL_SENDER_TIMEOUT_S + 5,
	sprintf('ams: the fast shutdown took %.1f s (bound: wal_sender_timeout %d s + 5 s)',
		$took, $WAL_SENDER_TIMEOUT_S));
$ams->stop('immediate') unless $stopped;

# gsb's own processes do not wait for the frozen peer: each one exits within
# 2 s of the shutdown request (what remains is PostgreSQL's walsender).
sub log_seconds
{
	my ($line) = @_;
	my ($h, $m, $s) = $line =~ /^\S+ (\d\d):(\d\d):(\d\d\.\d+)/ or return undef;
	return $h * 3600 + $m * 60 + $s;
}
my @log = split /\n/, slurp_file($ams->logfile, $off);
my ($req) = grep { /received fast shutdown request/ } @log;
my @gsb_exits = grep { /background worker "gsb [^"]*" \(PID \d+\) exited/ } @log;
cmp_ok(scalar(@gsb_exits), '>=', 2, 'ams: the log shows gsb\'s workers exiting at shutdown');
my $slowest = 0;
for my $l (@gsb_exits)
{
	my $d = log_seconds($l) - log_seconds($req // $l);
	$slowest = $d if $d > $slowest;
}
cmp_ok($slowest, '<', 2, sprintf('ams: every gsb worker exited within 2 s of the request (slowest %.3f s)', $slowest));
my ($ws_timeout) = grep { /terminating walsender process due to replication timeout/ } @log;
note("ams: a walsender waited for the frozen sjc until wal_sender_timeout: $ws_timeout") if $ws_timeout;

########################################################################
# Thaw sjc, start ams: everything arrives, once.
########################################################################
is(kill('CONT', @frozen), scalar(@frozen), 'sjc: every process continued (SIGCONT)');
@frozen = ();
write_rows($sjc, 30000, 50);
$ams->start;
ok(wait_state($ams, 'sjc', 'streaming'), 'ams streams from sjc again');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc streams from ams again');
write_rows($ams, 40000, 50);
wait_synced($sjc, $ams);
is($sjc->safe_psql('postgres', 'SELECT count(*) FROM items'), '350',
	'sjc: all 350 rows (written before, during and after the freeze)');
exactly_once($sjc, $ams, 'items');
verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(1);
done_testing();
