# 328_partition_witness.pl: three clusters, sjc (primary), ams (backup) and
# wit (a gsb witness: gsb.init_site('wit', 'witness'), gsb.add_witness on
# both data sites), each in its own network namespace with a link of its own
# to each of the other two (t/GsbNetns.pm, scripts/netns-helper.sh: sjc in
# a, ams in b, wit in c), so that any link can be cut, one way or both; and
# clusters frozen (SIGSTOP of every process) or stopped. The SPEC's promise
# under test: at no moment do both data sites answer that they are active.
#
# How it is watched, from outside the namespaces (through each server's Unix
# socket: a socket file is in no network namespace, so no cut between the
# sites ever cuts the watchers off; only a frozen server keeps them waiting):
#   - a checker: one process per data site, one psql session each, that asks
#     SELECT clock_timestamp(), gsb.is_active(), clock_timestamp() at every
#     50 ms tick of one common schedule (CLOCK_MONOTONIC, shared by every
#     process on this machine) and writes each answer with the monotonic
#     times it was sent and received to a file;
#   - a client: one process per data site, every 200 ms, starts a meeting on
#     that site if and only if the site says it is active (is_active(), then
#     schedule_meeting and start_meeting) and writes where each started.
# "At the same time" is judged conservatively, from when each server
# computed its answer: the two clock_timestamp() readings around is_active()
# (the servers and the checker run on one machine and read one real-time
# clock; each sample converts them to the monotonic frame with the offset
# measured when it was sent, and a sample whose server times fall outside its
# own send/receive window fails the test, so a clock step cannot hide
# anything). Two answers "true" from the two sites count as both active when
# these server windows, each widened by one tick (50 ms) on both sides,
# overlap: every pair of samples of one tick counts, and so does a pair that
# was merely close. A meeting counts as started on two sites at once when its
# window (from the server's first reading to the client's receipt of the
# answer, after the commit) widened the same way overlaps an active answer or
# a meeting start of the other site. The figures also give the closest two
# active answers of the two sites (the SPEC wants at least 0.5 s between one
# site ceasing to answer active and the other starting: two answers closer
# than that are a violation for certain).
#
# Cases, each healed afterwards (every rule removed, frozen clusters thawed,
# the witness started), then both sites must agree on one active site, every
# row written on either site before and during the fault (test-chosen ids,
# table prow) must be on both exactly once, every meeting the client started
# must be on both, hosted where it started, and gsb.verify() must match:
#   1. the link sjc-ams cut (both still reach wit): sjc stays active;
#   2. sjc isolated from both: sjc fenced first, then ams active within
#      gsb.failover_timeout + 3 s (both times measured from the moment the
#      helper had every rule of the cut in place; the notes also give them
#      from the moment it began, up to a second earlier), start_meeting refused
#      on the fenced sjc, `fenced` then `unfenced` (after the failback) in
#      gsb.site_events;
#   3. wit stopped: nothing changes;
#   4. sjc frozen, then resumed: ams takes over; the resumed sjc never answers
#      active while ams is;
#   5. ams isolated, then ams frozen: sjc stays active;
#   6. a loop of random faults (GSB_PARTITION_ROUNDS, at least 20; seeded,
#      the seed printed, GSB_PARTITION_SEED overrides; new rounds start only
#      within 240 s of the loop's start), each held 0.5 to 6 s: the active
#      site must stay active while it still reaches its peer or the witness
#      both ways; sjc cut off for failover_timeout + 3 s or more must be
#      replaced by ams within that bound; after the heal as above; half the
#      rounds that end with ams active fail back to sjc.
# The last line of diagnostics is the summary: failover and fencing times,
# rounds, samples where both sites were active (must be 0), meetings started on
# two sites at once (must be 0), rows lost or duplicated (must be 0).
#
# Skips itself, saying why, where namespaces cannot be made (not root, no
# helper, no ip or nft).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use GsbFaults qw(freeze_cluster thaw_clusters exactly_once verify_all);
use GsbNetns;
use IPC::Run;
use List::Util qw(max min sum);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time clock_gettime CLOCK_MONOTONIC);

if (my $why = netns_skip_reason())
{
	plan skip_all => "network namespaces are not available: $why";
}
for my $tool (qw(ip nft))
{
	plan skip_all => "$tool is not installed (packages iproute2, nftables)" unless find_tool($tool);
}

my $FT = 3;              # gsb.failover_timeout, seconds
my $TICK = 0.05;         # the checker's period, and the widening of every window
my $CLIENT_TICK = 0.2;   # the client's period
my $ROUNDS = $ENV{GSB_PARTITION_ROUNDS} // 20;
my $LOOP_BUDGET_S = 240;
my $SEED = $ENV{GSB_PARTITION_SEED} // (time() ^ $$) % 1_000_000;
srand($SEED);
diag("partition test seed $SEED (GSB_PARTITION_SEED=$SEED repeats this run's random faults)");

sub mono { return clock_gettime(CLOCK_MONOTONIC); }

my %conf = (
	heartbeat_interval => '200ms',
	failover_timeout => "${FT}s",
	failback_delay => '-1',
	apply_timeout => '3s',
	extra_conf => "log_statement = none\nwal_sender_timeout = '3s'");
my $tag = netns_setup(3);
my $sjc = netns_site('sjc', 'primary', 'a', %conf);
my $ams = netns_site('ams', 'backup', 'b', %conf);
my $wit = netns_site('wit', 'witness', 'c', %conf, no_init => 1);
my %node = (sjc => $sjc, ams => $ams, wit => $wit);
my %side = (sjc => 'a', ams => 'b', wit => 'c');

# Processes this test forks (the checker and the client), stopped at the end
# whatever happens; frozen clusters are thawed before the servers are stopped.
my @children;
END
{
	kill('TERM', @children) if @children;
	waitpid($_, 0) for @children;
	thaw_clusters();
}

{
	my ($rc, $out, $err) = psql_verbose($wit, "CREATE EXTENSION gsb;\nSELECT gsb.init_site('wit', 'witness')");
	ok($rc == 0, "wit: gsb.init_site('wit', 'witness') makes it a witness") or diag($err);
}
my $schema = q{
CREATE TABLE prow (id bigint PRIMARY KEY, site text NOT NULL, note text);
SELECT gsb.replicate_table('prow');
-- The client: asks whether this site is active and, only if so, starts a
-- meeting here. Answers what it did and the server's clock around it.
CREATE FUNCTION client_start(acct bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c1 float8 := extract(epoch FROM clock_timestamp());
    mid bigint;
BEGIN
    IF NOT gsb.is_active() THEN
        RETURN format('inactive %s %s', c1, extract(epoch FROM clock_timestamp()));
    END IF;
    BEGIN
        mid := gsb.schedule_meeting(acct, 'partition client', now());
        PERFORM gsb.start_meeting(mid);
    EXCEPTION WHEN OTHERS THEN
        RETURN format('refused %s %s %s', c1, extract(epoch FROM clock_timestamp()),
                      replace(SQLERRM, E'\n', ' '));
    END;
    RETURN format('started %s %s %s', c1, extract(epoch FROM clock_timestamp()), mid);
END
$$;
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
netns_connect($sjc, $ams, extra => 'connect_timeout=2');

# Each data site names the witness at the address it reaches it at, over its
# own link to the witness.
my $have_witness = 1;
for my $n ($sjc, $ams)
{
	my $conninfo = 'host=' . netns_addr($side{ site_name($n) }, 'c') . ' port=' . $wit->port . ' dbname=postgres';
	my ($rc, $out, $err) = psql_verbose($n,
		"SELECT gsb.add_witness('wit', " . sql_quote($conninfo) . ")");
	unless (ok($rc == 0, site_name($n) . ": gsb.add_witness('wit', '$conninfo')"))
	{
		diag($err);
		$have_witness = 0;
	}
}
diag('no witness could be added: the cases below run without one and show what that means')
  unless $have_witness;
ok(wait_active([ $sjc, $ams ], 'sjc'), 'both sites: sjc is active');
my $acct = q1($sjc, "SELECT gsb.create_account('partition\@example.com', 'partition')");
wait_synced($sjc, $ams);

#-----------------------------------------------------------------------------
# The checker and the client: forked processes, one psql session each.
#-----------------------------------------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir;
my $T0 = mono();

# loop_child(\@psql, $file, $period, $sql): sends $sql at every tick
# $T0 + k * $period (skipping ticks while an answer is pending), and appends
# "k sent received offset answer" to $file, times monotonic, offset = the
# real-time clock minus the monotonic one when sent.
sub loop_child
{
	my ($cmd, $file, $period, $sql, $pause) = @_;
	open(my $fh, '>>', $file) or die "cannot open $file: $!";
	$fh->autoflush(1);
	my $k = int((mono() - $T0) / $period) + 1;
	while (getppid() > 1)
	{
		my ($in, $out, $err) = ('', '', '');
		my $h = eval { IPC::Run::start($cmd, '<', \$in, '>', \$out, '2>', \$err) };
		if (!$h)
		{
			usleep(100_000);
			next;
		}
		my $paused = '';
		while (getppid() > 1 && $h->pumpable)
		{
			my $wait = $T0 + $k * $period - mono();
			usleep(int($wait * 1e6)) if $wait > 0;
			# The client pauses while the test compares the sites (a table
			# being written cannot match); it says so in its file.
			# The file holds a new token for every pause: each is answered.
			if ($pause && -e $pause)
			{
				my $token = eval { PostgreSQL::Test::Utils::slurp_file($pause) } // '';
				chomp $token;
				print $fh "# paused $token\n" if $token ne '' && $token ne $paused;
				$paused = $token;
				$k = int((mono() - $T0) / $period) + 1;
				next;
			}
			$paused = '';
			my $m = "gsb-mark-$k";
			my $off = time() - mono();
			my $s = mono();
			$in .= "$sql;\n\\echo $m\n\\warn $m\n";
			my $done = 0;
			for (;;)
			{
				last unless eval { $h->pump_nb; 1 };
				if ($out =~ /\Q$m\E\n/ && $err =~ /\Q$m\E\n/)
				{
					$done = 1;
					last;
				}
				last unless $h->pumpable && getppid() > 1;
				usleep(1000);
			}
			my $r = mono();
			last unless $done;
			my ($o) = $out =~ /\A(.*?)\n?\Q$m\E\n/s;
			my ($e) = $err =~ /\A(.*?)\Q$m\E\n/s;
			($out, $err) = ('', '');
			$o = defined $o && $o ne '' ? $o : '-';
			$e //= '';
			s/\s+/ /g for ($o, $e);
			$e =~ s/ \z//;
			printf $fh "%d %.6f %.6f %.6f %s%s\n", $k, $s, $r, $off, $o, ($e ne '' ? " ERR $e" : '');
			my $next = int((mono() - $T0) / $period) + 1;
			$k = $k + 1 > $next ? $k + 1 : $next;
		}
		eval { $h->kill_kill };
	}
	return;
}

sub start_loop
{
	my ($node, $kind, $period, $sql, $pause) = @_;
	my $file = "$dir/$kind-" . site_name($node);
	my @cmd = ($node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=0',
		'-d', $node->connstr('postgres'));
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		# No END block, no destructor of the parent's objects, in the child.
		eval { loop_child(\@cmd, $file, $period, $sql, $pause); };
		POSIX::_exit(0);
	}
	push @children, $pid;
	return $file;
}

for my $n ($sjc, $ams)
{
	start_loop($n, 'sample', $TICK,
		"SELECT extract(epoch FROM clock_timestamp()), gsb.is_active(), extract(epoch FROM clock_timestamp())");
	start_loop($n, 'client', $CLIENT_TICK, "SELECT client_start($acct)", "$dir/pause-client");
}

my $bad_clock = 0;    # samples whose server times fall outside their own window

# The checker's samples of $site: hashes k, s, r (monotonic send and
# receipt), c1, c2 (the server's readings, monotonic frame), v ('t', 'f', or
# 'e' for an error, when c1, c2 are s, r), sorted by c1.
sub samples
{
	my ($site) = @_;
	my @out;
	open(my $fh, '<', "$dir/sample-$site") or return ();
	while (my $line = <$fh>)
	{
		next unless $line =~ s/\n\z//;
		my ($k, $s, $r, $off, $rest) = split / /, $line, 5;
		next unless defined $rest;
		my %x = (site => $site, k => $k, s => $s, r => $r);
		if ($rest =~ /^([\d.]+)\|([tf])\|([\d.]+)$/)
		{
			@x{qw(c1 v c2)} = ($1 - $off, $2, $3 - $off);
		}
		else
		{
			@x{qw(c1 v c2 err)} = ($s, 'e', $r, $rest);
		}
		push @out, \%x;
	}
	my @sorted = sort { $a->{c1} <=> $b->{c1} } @out;
	return @sorted;
}

# The client's attempts on $site: hashes s, r, c1, c2 (monotonic), what
# ('started', 'inactive', 'refused' or 'error'), id (started), text.
sub attempts
{
	my ($site) = @_;
	my @out;
	open(my $fh, '<', "$dir/client-$site") or return ();
	while (my $line = <$fh>)
	{
		next unless $line =~ s/\n\z//;
		my ($k, $s, $r, $off, $rest) = split / /, $line, 5;
		next unless defined $rest;
		my %x = (site => $site, s => $s, r => $r, text => $rest);
		if ($rest =~ /^(started|inactive|refused) ([\d.]+) ([\d.]+) ?(.*)$/)
		{
			@x{qw(what c1 c2)} = ($1, $2 - $off, $3 - $off);
			$x{id} = $4 if $1 eq 'started';
		}
		else
		{
			@x{qw(what c1 c2)} = ('error', $s, $r);
		}
		push @out, \%x;
	}
	my @sorted = sort { $a->{c1} <=> $b->{c1} } @out;
	return @sorted;
}

# Pairs (x, y), x from @$xs and y from @$ys (each sorted by c1, windows
# [lo, hi] given by $win), whose windows widened by $TICK on both sides
# overlap.
sub overlapping
{
	my ($xs, $ys, $win) = @_;
	my @pairs;
	return @pairs unless @$xs && @$ys;
	my $maxlen = max(map { my ($lo, $hi) = $win->($_); $hi - $lo } @$ys);
	my $j0 = 0;
	for my $x (@$xs)
	{
		my ($xlo, $xhi) = $win->($x);
		$j0++ while $j0 < @$ys && $ys->[$j0]{c1} < $xlo - 2 * $TICK - $maxlen - 1;
		for (my $j = $j0; $j < @$ys; $j++)
		{
			my ($ylo, $yhi) = $win->($ys->[$j]);
			last if $ylo - $TICK > $xhi + $TICK + 1;
			push @pairs, [ $x, $ys->[$j] ] if $ylo - $TICK <= $xhi + $TICK && $xlo - $TICK <= $yhi + $TICK;
		}
	}
	return @pairs;
}
sub sample_win { return ($_[0]{c1}, $_[0]{c2}); }
sub start_win { return ($_[0]{c1}, max($_[0]{c2}, $_[0]{r})); }

# The samples of $site answered (computed) between $from and $to:
# (count, trues, others).
sub answers_between
{
	my ($site, $from, $to) = @_;
	my @in = grep { $_->{c1} >= $from && $_->{c1} <= $to } samples($site);
	my $t = grep { $_->{v} eq 't' } @in;
	return (scalar(@in), $t, scalar(@in) - $t);
}

# The first sample of $site computed at or after $from that satisfies $pred.
sub first_sample
{
	my ($site, $from, $pred) = @_;
	for my $x (samples($site))
	{
		return $x if $x->{c1} >= $from && $pred->($x);
	}
	return undef;
}

# A condition polled every 100 ms for at most $timeout_s seconds.
sub poll_until
{
	my ($timeout_s, $check) = @_;
	my $end = mono() + $timeout_s;
	for (;;)
	{
		return 1 if $check->();
		return 0 if mono() >= $end;
		usleep(100_000);
	}
}

ok(poll_until(60, sub { (grep { $_->{v} eq 't' } samples('sjc')) >= 10 && samples('ams') >= 10 }),
	'the checker samples both sites (sjc answers active)');

#-----------------------------------------------------------------------------
# Writes, heal, checks.
#-----------------------------------------------------------------------------
my %sess;
sub sess { my ($n) = @_; return $sess{ site_name($n) } //= open_session($n); }

my %expected;    # prow id => site that wrote it
my $next_id = 0;
my %figure = (rows_lost => 0, rows_duplicated => 0, rows_checked => 0);

# One row with a new id on $node, then a 50 ms pause on that server (the
# writers pace themselves).
sub write_row
{
	my ($node, $note) = @_;
	my $id = ++$next_id;
	my ($out, $err) = sess($node)->run("INSERT INTO prow VALUES ($id, "
		  . sql_quote(site_name($node)) . ', ' . sql_quote($note) . "); SELECT pg_sleep(0.05)");
	if ($err =~ /ERROR/)
	{
		fail(site_name($node) . ": row $id ($note) written") or diag($err);
		return;
	}
	$expected{$id} = site_name($node);
	return;
}

my %frozen;
my $wit_stopped = 0;

# Writes rows on every data site that is not frozen for $secs seconds.
sub hold_writing
{
	my ($secs, $note) = @_;
	my @n = grep { !$frozen{ site_name($_) } } ($sjc, $ams);
	my $end = mono() + $secs;
	write_row($_, $note) for @n;
	while (mono() < $end)
	{
		write_row($_, $note) for @n;
	}
	return;
}

sub fault
{
	my (%f) = @_;
	if ($f{block})
	{
		my ($rc, $out) = ns_request('block', $tag, @{ $f{block} });
		is($rc, 0, "$f{name}: the helper drops @{ $f{block} }") or diag($out);
	}
	if ($f{freeze})
	{
		ok(freeze_cluster($node{ $f{freeze} }) > 0, "$f{name}: $f{freeze} frozen");
		$frozen{ $f{freeze} } = 1;
	}
	if ($f{stop})
	{
		$node{ $f{stop} }->stop('fast');
		$wit_stopped = 1;
	}
	# The helper takes a while (one nft call per rule, on a busy machine):
	# the fault is complete only now.
	return mono();
}

# (active site, which answer is_active) as both data sites see it.
sub views
{
	my (%v, @act);
	for my $n ($sjc, $ams)
	{
		my ($out, $err) = sess($n)->run('SELECT gsb.active_site(), gsb.is_active()');
		my ($a, $i) = split /\|/, $out // '';
		$v{ site_name($n) } = $a // "error: $err";
		push @act, site_name($n) if ($i // '') eq 't';
	}
	return (\%v, \@act);
}

# Removes every fault; waits until both sites agree on one active site (and
# exactly that one answers active) and replicate again; checks every row.
# Returns the active site.
sub heal
{
	my ($name, $verify_on) = @_;
	my ($rc, $out) = ns_request('clear', $tag);
	is($rc, 0, "$name: the helper removes every rule") or diag($out);
	thaw_clusters();
	%frozen = ();
	if ($wit_stopped)
	{
		netns_start($wit, 'c');
		$wit_stopped = 0;
	}
	my $th = mono();
	my ($v, $act);
	my $agreed = poll_until(30, sub {
		($v, $act) = views();
		return $v->{sjc} eq $v->{ams} && @$act == 1 && $act->[0] eq $v->{sjc};
	});
	ok($agreed, sprintf("%s: after the heal both sites name %s active and only it answers active (%.1f s)",
			$name, $v->{sjc}, mono() - $th))
	  or diag("sjc says $v->{sjc}, ams says $v->{ams}; answering active: @$act");
	for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
	{
		my ($n, $peer) = @$pair;
		my $state = '';
		ok(poll_until(60, sub {
			($state) = sess($n)->run("SELECT state FROM gsb.status WHERE peer = '$peer'");
			return ($state // '') eq 'streaming';
		}), sprintf('%s: %s streams from %s again (%.1f s after the heal)', $name, site_name($n), $peer, mono() - $th))
		  or diag("state: $state");
	}
	check_rows($name, $verify_on);
	return $agreed ? $v->{sjc} : '';
}

my %meeting_checked;
# Pauses the client (and waits until it has paused) or lets it go on.
my $pause_token = 0;
sub pause_client
{
	my ($on) = @_;
	my $file = "$dir/pause-client";
	unless ($on)
	{
		unlink $file;
		return;
	}
	my $token = 'p' . ++$pause_token;
	open(my $fh, '>', "$file.new") or die "cannot write $file.new: $!";
	print $fh "$token\n";
	close($fh);
	rename("$file.new", $file) or die "cannot rename $file.new: $!";
	ok(poll_until(30, sub {
		for my $site (qw(sjc ams))
		{
			my $text = PostgreSQL::Test::Utils::slurp_file("$dir/client-$site");
			return 0 unless $text =~ /^# paused \Q$token\E$/m;
		}
		return 1;
	}), 'the client pauses while the sites are compared');
	return;
}

# Every row on both sites; gsb.verify() on $verify_on ('sjc', 'ams' or
# 'both': it compares with the peer, so one site suffices between rounds).
sub check_rows
{
	my ($name, $verify_on) = @_;
	$verify_on //= 'both';
	pause_client(1);
	for my $n ($sjc, $ams)
	{
		my ($out, $err) = sess($n)->run("SELECT gsb.wait_for_peer('60 s')");
		is($out, 't', "$name: " . site_name($n) . ": gsb.wait_for_peer('60 s') returns true") or diag($err);
	}
	for my $n ($sjc, $ams)
	{
		my ($out, $err) = sess($n)->run("SELECT id FROM prow ORDER BY id");
		my %have;
		my $dup = 0;
		for (split /\n/, $out) { $dup++ if $have{$_}++; }
		my @missing = grep { !$have{$_} } sort { $a <=> $b } keys %expected;
		my @extra = grep { !exists $expected{$_} } sort { $a <=> $b } keys %have;
		my ($conf) = sess($n)->run("SELECT count(*) FROM gsb.conflicts WHERE relation = 'prow'::regclass"
			  . " AND kind = 'insert_exists'");
		$dup += $conf // 0;
		$figure{rows_lost} += @missing;
		$figure{rows_duplicated} += $dup;
		$figure{rows_checked} += keys %expected;
		is(scalar(@missing) . '/' . scalar(@extra) . "/$dup", '0/0/0',
			"$name: " . site_name($n) . ' holds each of the ' . scalar(keys %expected)
			  . ' rows written on either site exactly once, and no other')
		  or diag("missing: @missing[0 .. min(9, $#missing)]; unexpected: @extra[0 .. min(9, $#extra)]");
		next unless $verify_on eq 'both' || $verify_on eq site_name($n);
		my ($vout) = sess($n)->run("SELECT count(*) FILTER (WHERE status = 'match') || '/' || count(*)"
			  . " || coalesce(' ' || string_agg(relation::text || ' ' || status, ', ')"
			  . " FILTER (WHERE status <> 'match'), '') FROM gsb.verify()");
		like($vout, qr{^(\d+)/\1$}, "$name: gsb.verify() on " . site_name($n) . " matches ($vout)");
	}
	# Every meeting the client started is on both sites, hosted where it started.
	my @started = grep { $_->{what} eq 'started' && !$meeting_checked{ $_->{id} } }
	  (attempts('sjc'), attempts('ams'));
	if (@started)
	{
		my $ids = join(',', map { $_->{id} } @started);
		my %want = map { $_->{id} => $_->{site} } @started;
		for my $n ($sjc, $ams)
		{
			my ($out) = sess($n)->run("SELECT id || ' ' || hosted_site FROM gsb.meetings WHERE id IN ($ids)");
			my %got = map { split / / } split /\n/, $out;
			my @wrong = grep { ($got{$_} // 'none') ne $want{$_} } sort keys %want;
			is(scalar(@wrong), 0, "$name: " . site_name($n) . ' holds the ' . scalar(@started)
				  . ' meetings the client started, each hosted where it started')
			  or diag(join(', ', map { "$_: started on $want{$_}, here " . ($got{$_} // 'missing') } @wrong[0 .. min(9, $#wrong)]));
			$figure{meetings_lost} += @wrong;
		}
		$meeting_checked{ $_->{id} } = 1 for @started;
	}
	pause_client(0);
	return;
}

# Back to sjc active (a failback by hand: gsb.failback_delay is -1).
sub back_to_sjc
{
	my ($name) = @_;
	my ($v) = views();
	return if $v->{sjc} eq 'sjc' && $v->{ams} eq 'sjc';
	my $err = '';
	ok(poll_until(60, sub {
		(undef, $err) = sess($sjc)->run('SELECT gsb.failback()');
		return $err !~ /ERROR/;
	}), "$name: gsb.failback() to sjc") or diag($err);
	my $act;
	ok(poll_until(30, sub {
		($v, $act) = views();
		return $v->{sjc} eq 'sjc' && $v->{ams} eq 'sjc' && "@$act" eq 'sjc';
	}), "$name: sjc is active again after the failback");
	return;
}

my (@failover_s, @fencing_s, @transitions);
my $late_changes = 0;

# Measures the change of active site from $old to $new after a fault at $tf:
# when $old first answered not active, when $new first answered active.
# Times are counted from $tf, when the fault was complete (the helper had
# put every rule in place); the note also gives them from $tf0, when it
# began.
sub measure
{
	my ($name, $old, $new, $tf0, $tf, $old_was_frozen, $after_heal) = @_;
	my $f = first_sample($new, $tf0, sub { $_[0]{v} eq 't' });
	my $g = ($frozen{$old} || $old_was_frozen) ? undef : first_sample($old, $tf0, sub { $_[0]{v} ne 't' });
	my %m = (
		name => $name,
		failover => $f ? $f->{c2} - $tf : undef,
		fence => $g ? $g->{c2} - $tf : undef);
	# A change that completed only after the heal (a vote in flight when the
	# link came back) is counted apart from the failover times.
	if ($after_heal)
	{
		$late_changes++;
	}
	else
	{
		push @failover_s, $m{failover} if defined $m{failover};
		push @fencing_s, $m{fence} if defined $m{fence};
	}
	push @transitions, \%m;
	my $d = $tf - $tf0;
	note(sprintf('%s: %s first answered not active %s, %s first answered active %s after the fault was complete '
			  . '(%.2f s after it began)',
			$name, $old, defined $m{fence} ? sprintf('%.2f s (%.2f s)', $m{fence}, $m{fence} + $d) : '(frozen or never)',
			$new, defined $m{failover} ? sprintf('%.2f s (%.2f s)', $m{failover}, $m{failover} + $d) : 'never', $d));
	return \%m;
}

# Over [$from, $to]: $site answered active every time, the other site never.
sub stays_active
{
	my ($name, $site, $from, $to) = @_;
	my $other = $site eq 'sjc' ? 'ams' : 'sjc';
	my ($n, $t, $o) = answers_between($site, $from, $to);
	my $expect = int(($to - $from) / $TICK / 4);
	ok($n >= $expect && $o == 0,
		sprintf('%s: %s answered active in all %d samples over %.1f s', $name, $site, $n, $to - $from))
	  or diag("$site: $t active, $o not, $n samples (at least $expect expected); first others: "
		  . join('; ', map { "$_->{v} at " . sprintf('%.3f s', $_->{c1} - $from) . ($_->{err} ? " ($_->{err})" : '') }
			  grep { defined } (grep { $_->{c1} >= $from && $_->{c1} <= $to && $_->{v} ne 't' } samples($site))[0 .. 2]));
	my ($n2, $t2) = answers_between($other, $from, $to);
	is($t2, 0, "$name: $other never answered active ($n2 samples)");
	return;
}

#-----------------------------------------------------------------------------
# 1. The link sjc-ams cut, both ways; both still reach the witness.
#-----------------------------------------------------------------------------
{
	my $name = 'sjc-ams cut';
	my $failovers = q1($ams, "SELECT count(*) FROM gsb.site_events WHERE reason = 'automatic failover'");
	hold_writing(0.3, "$name: before");
	my $tf0 = mono();
	my $tf = fault(name => $name, block => [qw(a2b b2a)]);
	hold_writing($FT + 2, "$name: during");
	stays_active($name, 'sjc', $tf0, mono());
	heal($name);
	is(q1($ams, "SELECT count(*) FROM gsb.site_events WHERE reason = 'automatic failover'"),
		$failovers, "$name: no failover recorded");
	back_to_sjc($name);
}

#-----------------------------------------------------------------------------
# 2. sjc isolated from ams and from the witness.
#-----------------------------------------------------------------------------
{
	my $name = 'sjc isolated';
	my $fenced_before = q1($sjc, "SELECT count(*) FROM gsb.site_events WHERE reason = 'fenced'");
	hold_writing(0.3, "$name: before");
	my $tf0 = mono();
	my $tf = fault(name => $name, block => [qw(a2b b2a a2c c2a)]);
	my $took = poll_until($FT + 15, sub {
		write_row($sjc, "$name: during");
		write_row($ams, "$name: during");
		return defined first_sample('ams', $tf0, sub { $_[0]{v} eq 't' });
	});
	ok($took, "$name: ams answers active");
	hold_writing(1, "$name: during");
	my $m = measure($name, 'sjc', 'ams', $tf0, $tf);
	cmp_ok($m->{failover} // 9999, '<=', $FT + 3,
		sprintf('%s: ams active within failover_timeout + 3 s (%s s)', $name,
			defined $m->{failover} ? sprintf('%.2f', $m->{failover}) : 'never'));
	ok(defined $m->{fence} && defined $m->{failover} && $m->{fence} < $m->{failover},
		sprintf('%s: sjc fenced (%s s) before ams became active', $name,
			defined $m->{fence} ? sprintf('%.2f', $m->{fence}) : 'never'));
	my ($out, $err) = sess($sjc)->run(
		"SELECT gsb.start_meeting(gsb.schedule_meeting($acct, 'on the fenced site', now()))");
	like($err, qr/ERROR/, "$name: start_meeting on the fenced sjc is refused");
	note("$name: sjc refused with: $err");
	heal($name);
	ok(wait_until($sjc, "SELECT count(*) > $fenced_before FROM gsb.site_events WHERE reason = 'fenced'", 't', 15),
		"$name: gsb.site_events holds sjc's fenced row");
	back_to_sjc($name);
	ok(wait_until($sjc,
			"SELECT count(*) > 0 FROM gsb.site_events u WHERE u.reason = 'unfenced'"
			  . " AND u.at >= (SELECT max(at) FROM gsb.site_events WHERE reason = 'fenced')", 't', 15),
		"$name: an unfenced row follows once sjc serves again");
	note("$name: $_->{reason} $_->{from_site} -> $_->{to_site} term $_->{term}: $_->{detail}")
	  for grep { $_->{reason} =~ /fenced/ } events_of($sjc);
}

#-----------------------------------------------------------------------------
# 3. The witness stopped: nothing changes.
#-----------------------------------------------------------------------------
{
	my $name = 'witness stopped';
	hold_writing(0.3, "$name: before");
	my $tf0 = mono();
	my $tf = fault(name => $name, stop => 'wit');
	hold_writing($FT + 2, "$name: during");
	stays_active($name, 'sjc', $tf0, mono());
	heal($name);
	back_to_sjc($name);
}

#-----------------------------------------------------------------------------
# 4. sjc frozen, then resumed.
#-----------------------------------------------------------------------------
{
	my $name = 'sjc frozen';
	hold_writing(0.3, "$name: before");
	my $tf0 = mono();
	my $tf = fault(name => $name, freeze => 'sjc');
	ok(poll_until($FT + 15, sub {
		write_row($ams, "$name: during");
		return defined first_sample('ams', $tf0, sub { $_[0]{v} eq 't' });
	}), "$name: ams answers active");
	hold_writing(1, "$name: during");
	my $m = measure($name, 'sjc', 'ams', $tf0, $tf);
	cmp_ok($m->{failover} // 9999, '<=', $FT + 3,
		sprintf('%s: ams active within failover_timeout + 3 s (%s s)', $name,
			defined $m->{failover} ? sprintf('%.2f', $m->{failover}) : 'never'));
	my $thaw = mono();
	thaw_clusters();
	%frozen = ();
	ok(wait_until($sjc, 'SELECT gsb.active_site()', 'ams', 30), "$name: the resumed sjc learns that ams is active");
	# The answers sjc computed after it was resumed, up to now.
	my ($n, $t) = answers_between('sjc', $thaw, mono());
	is($t, 0, "$name: the resumed sjc never answered active ($n samples since it was resumed)");
	my $first = first_sample('sjc', $thaw, sub { 1 });
	note(sprintf('%s: first answer of sjc after it was resumed: %s, %.3f s after', $name,
			$first->{v}, $first->{c1} - $thaw)) if $first;
	heal($name);
	back_to_sjc($name);
}

#-----------------------------------------------------------------------------
# 5. ams isolated, then ams frozen: sjc stays active.
#-----------------------------------------------------------------------------
for my $f ({ name => 'ams isolated', block => [qw(a2b b2a b2c c2b)] }, { name => 'ams frozen', freeze => 'ams' })
{
	my $name = $f->{name};
	hold_writing(0.3, "$name: before");
	my $tf0 = mono();
	my $tf = fault(%$f);
	hold_writing($FT + 2, "$name: during");
	stays_active($name, 'sjc', $tf0, mono());
	heal($name);
	back_to_sjc($name);
}

#-----------------------------------------------------------------------------
# 6. Random faults.
#-----------------------------------------------------------------------------
my @FAULTS = (
	{ name => 'sjc-ams cut', block => [qw(a2b b2a)] },
	{ name => 'sjc to ams dropped', block => [qw(a2b)] },
	{ name => 'ams to sjc dropped', block => [qw(b2a)] },
	{ name => 'sjc isolated', block => [qw(a2b b2a a2c c2a)], isolates => 'sjc' },
	{ name => 'sjc cannot send', block => [qw(a2b a2c)], isolates => 'sjc' },
	{ name => 'ams isolated', block => [qw(a2b b2a b2c c2b)], isolates => 'ams' },
	{ name => 'witness isolated', block => [qw(a2c c2a b2c c2b)] },
	{ name => 'sjc-witness cut', block => [qw(a2c c2a)] },
	{ name => 'ams-witness cut', block => [qw(b2c c2b)] },
	{ name => 'sjc frozen', freeze => 'sjc', isolates => 'sjc' },
	{ name => 'ams frozen', freeze => 'ams', isolates => 'ams' },
	{ name => 'witness frozen', freeze => 'wit' },
	{ name => 'witness stopped', stop => 'wit' },
);

# Does site $x still reach the witness or its peer, both ways, under $f?
sub still_reaches
{
	my ($f, $x) = @_;
	my $me = $side{$x};
	my %cut = map { $_ => 1 } @{ $f->{block} // [] };
	my $down = { map { $_ => 1 } grep { defined } ($f->{freeze}, $f->{stop}) };
	return 0 if $down->{$x};
	for my $to ($x eq 'sjc' ? ('ams', 'wit') : ('sjc', 'wit'))
	{
		my $other = $side{$to};
		next if $down->{$to};
		next if $cut{"${me}2$other"} || $cut{"${other}2$me"};
		return 1;
	}
	return 0;
}

my $loop_t0 = mono();
my $rounds = 0;
my $active = 'sjc';
while ($rounds < $ROUNDS && mono() - $loop_t0 < $LOOP_BUDGET_S)
{
	my $f = $FAULTS[ int(rand(@FAULTS)) ];
	my $hold = 0.5 + rand($FT + 2.5);
	my $name = sprintf('round %d (%s, %.1f s, %s active)', $rounds + 1, $f->{name}, $hold, $active);
	note($name);
	my $other = $active eq 'sjc' ? 'ams' : 'sjc';
	hold_writing(0.2, "$name: before");
	my $tf0 = mono();
	my $tf = fault(%$f, name => $name);
	hold_writing($hold, "$name: during");
	my $te = mono();
	if (still_reaches($f, $active))
	{
		stays_active($name, $active, $tf0, $te);
	}
	elsif ($active eq 'sjc' && ($f->{isolates} // '') eq 'sjc' && $te - $tf >= $FT + 3)
	{
		my $m = measure($name, 'sjc', 'ams', $tf0, $tf);
		cmp_ok($m->{failover} // 9999, '<=', $FT + 3, "$name: ams active within failover_timeout + 3 s");
	}
	my $now = heal($name, $rounds % 2 ? 'ams' : 'sjc');
	if ($now ne '' && $now ne $active)
	{
		# A change of active site that the previous branch did not measure.
		measure($name, $active, $now, $tf0, $tf, ($f->{freeze} // '') eq $active, 1)
		  unless ($active eq 'sjc' && ($f->{isolates} // '') eq 'sjc' && $te - $tf >= $FT + 3);
	}
	$active = $now if $now ne '';
	if ($active eq 'ams' && rand() < 0.5)
	{
		back_to_sjc($name);
		$active = 'sjc';
	}
	$rounds++;
}
my $loop_s = mono() - $loop_t0;
cmp_ok($rounds, '>=', $ROUNDS, sprintf('%d rounds of random faults in %.0f s', $rounds, $loop_s));

#-----------------------------------------------------------------------------
# Totals.
#-----------------------------------------------------------------------------
check_rows('the end', 'both');
kill('TERM', @children);
waitpid($_, 0) for @children;
@children = ();

my @s = (samples('sjc'), samples('ams'));
for my $x (@s)
{
	$bad_clock++ if $x->{v} ne 'e' && ($x->{c1} < $x->{s} - 0.01 || $x->{c2} > $x->{r} + 0.01 || $x->{c2} < $x->{c1});
}
is($bad_clock, 0, 'every server-side time lies within its own sample\'s send/receive window (one clock)');
my @errors = grep { $_->{v} eq 'e' } @s;
note('checker errors: ' . scalar(@errors) . (@errors ? " (first: $errors[0]{site}: $errors[0]{err})" : ''));
my @ts = grep { $_->{v} eq 't' && $_->{site} eq 'sjc' } @s;
my @ta = grep { $_->{v} eq 't' && $_->{site} eq 'ams' } @s;
my @both = overlapping(\@ts, \@ta, \&sample_win);
my %both_samples;
$both_samples{"$_->[0]{site}$_->[0]{k}"} = $both_samples{"$_->[1]{site}$_->[1]{k}"} = 1 for @both;
diag(sprintf('both active: sjc computed %.3f-%.3f, ams computed %.3f-%.3f (monotonic s since start)',
		$_->[0]{c1} - $T0, $_->[0]{c2} - $T0, $_->[1]{c1} - $T0, $_->[1]{c2} - $T0))
  for @both[ 0 .. min(9, $#both) ];

# The closest two active answers of different sites.
my @trues = sort { $a->{c1} <=> $b->{c1} } (@ts, @ta);
my ($closest, $closest_at);
for my $i (1 .. $#trues)
{
	next if $trues[$i]{site} eq $trues[ $i - 1 ]{site};
	my $d = $trues[$i]{c1} - $trues[ $i - 1 ]{c2};
	($closest, $closest_at) = ($d, $trues[$i]{c1} - $T0) if !defined $closest || $d < $closest;
}

my @starts = grep { $_->{what} eq 'started' } (attempts('sjc'), attempts('ams'));
my @st_sjc = sort { $a->{c1} <=> $b->{c1} } grep { $_->{site} eq 'sjc' } @starts;
my @st_ams = sort { $a->{c1} <=> $b->{c1} } grep { $_->{site} eq 'ams' } @starts;
my %at_once;
for my $p (overlapping(\@st_sjc, \@st_ams, \&start_win))
{
	$at_once{"m$p->[0]{id}"} = $at_once{"m$p->[1]{id}"} = 1;
}
for my $p (overlapping(\@st_sjc, \@ta, sub { $_[0]{what} ? start_win($_[0]) : sample_win($_[0]) }),
	overlapping(\@st_ams, \@ts, sub { $_[0]{what} ? start_win($_[0]) : sample_win($_[0]) }))
{
	$at_once{"m$p->[0]{id}"} = 1;
}
my $refused = grep { $_->{what} eq 'refused' } (attempts('sjc'), attempts('ams'));

sub median
{
	my @v = sort { $a <=> $b } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[ @v / 2 - 1 ] + $v[ @v / 2 ]) / 2;
}
sub fmt { return defined $_[0] ? sprintf('%.2f', $_[0]) : '-'; }

is(scalar(keys %both_samples), 0,
	'no moment when both sites answered active (samples of both within one tick, widened): '
	  . scalar(keys %both_samples) . ' samples in ' . scalar(@both) . ' pairs');
is(scalar(keys %at_once), 0, 'no meeting started on one site while the other was active or starting one');
cmp_ok($closest // 9999, '>=', 0.5,
	sprintf('at least 0.5 s between the active answers of the two sites (closest: %s s, at %s s)',
		fmt($closest), fmt($closest_at)));
is($figure{rows_lost} + $figure{rows_duplicated}, 0, 'no row lost or duplicated');
check_logs($sjc, $ams, $wit);

diag(sprintf(
		'partition summary: seed %d; rounds %d in %.0f s; failover s median %s max %s (%d); '
		  . 'fencing s median %s max %s (%d); changes of active site completed after the heal %d; closest active answers of the two sites %s s; '
		  . 'samples %d (sjc %d, ams %d; %d active), samples where both were active %d (%d pairs); '
		  . 'meetings started %d (sjc %d, ams %d, refused %d), on two sites at once %d; '
		  . 'rows checked %d, lost %d, duplicated %d; meetings missing or moved %d; witness %s',
		$SEED, $rounds, $loop_s, fmt(median(@failover_s)), fmt(@failover_s ? max(@failover_s) : undef),
		scalar(@failover_s), fmt(median(@fencing_s)), fmt(@fencing_s ? max(@fencing_s) : undef),
		scalar(@fencing_s), $late_changes, fmt($closest), scalar(@s), scalar(samples('sjc')), scalar(samples('ams')),
		scalar(@ts) + scalar(@ta), scalar(keys %both_samples), scalar(@both), scalar(@starts), scalar(@st_sjc), scalar(@st_ams),
		$refused, scalar(keys %at_once), scalar(keys %expected), $figure{rows_lost},
		$figure{rows_duplicated}, $figure{meetings_lost} // 0, $have_witness ? 'added' : 'NONE (gsb.add_witness failed)'));
done_testing();
