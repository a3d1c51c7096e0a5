# t/GsbSites.pm: helpers of the one-active-site tests (t/1xx_*.pl), on top of
# t/GsbTest.pm.
#
# For: a primary and a backup set up for failover (short heartbeats and
# timeouts), waiting for the active site, reading gsb.site_events, changing
# settings by reload, timing things against the servers' own clocks, and
# psql sessions that stay open and survive errors (a writer that keeps writing
# while the active site moves).
# Not for: assertions about one feature (those live in the t/1xx_*.pl files).
#
# Every wait waits for a condition and is bounded; nothing sleeps for a fixed
# time. The one exception is hold_for(), which checks that a condition keeps
# holding over a period (absence can only be observed over a period).
package GsbSites;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use IPC::Run;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use GsbTest;

our @EXPORT = qw(
  two_sites q1 wait_until hold_for active_of wait_active events_of wait_event
  reload_with epoch_now log_offset ready_at_epoch open_session
);

# Heartbeat and failover timeout that all 1xx tests use unless told otherwise.
our $HEARTBEAT_S = 0.2;
our $TIMEOUT_S = 2;

# two_sites(%opts): primary 'sjc' and backup 'ams', connected and streaming.
#   failover_timeout (default '2s'), failback_delay (default '-1'),
#   heartbeat_interval (default '200ms'), extra_conf, no_connect, schema (SQL
#   run on both sites before they connect).
sub two_sites
{
	my (%o) = @_;
	my %conf = (
		heartbeat_interval => $o{heartbeat_interval} // '200ms',
		failover_timeout => $o{failover_timeout} // '2s',
		failback_delay => $o{failback_delay} // '-1',
		extra_conf => join("\n",
			# Statement logging would bury the monitor's lines: every
			# heartbeat is a statement.
			'log_statement = none',
			$o{extra_conf} // ()),
	);
	my $sjc = new_site('sjc', 'primary', %conf);
	my $ams = new_site('ams', 'backup', %conf);
	if (defined $o{schema})
	{
		$_->safe_psql('postgres', $o{schema}) for ($sjc, $ams);
	}
	connect_sites($sjc, $ams) unless $o{no_connect};
	return ($sjc, $ams);
}

# One value (or rows) from $node.
sub q1
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# wait_until($node, $sql, $expected, $timeout_s): polls (every 0.1 s) until
# $sql returns $expected with no stderr, for at most $timeout_s (default
# the harness's timeout). Returns true if it did.
sub wait_until
{
	my ($node, $sql, $expected, $timeout_s) = @_;
	local $PostgreSQL::Test::Utils::timeout_default =
	  $timeout_s // $PostgreSQL::Test::Utils::timeout_default;
	return $node->poll_query_until('postgres', $sql, $expected // 't');
}

# hold_for($node, $sql, $expected, $seconds): checks every 0.1 s that $sql
# keeps returning $expected for $seconds. Returns (1, undef) if it held, or
# (0, what it returned instead).
sub hold_for
{
	my ($node, $sql, $expected, $seconds) = @_;
	my $end = time() + $seconds;
	while (time() < $end)
	{
		my ($rc, $out, $err) = (0, '', '');
		$rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
		return (0, "$out$err") if $rc != 0 || $out ne $expected;
		usleep(100_000);
	}
	return (1, undef);
}

# gsb.active_site() on $node.
sub active_of { return q1($_[0], 'SELECT gsb.active_site()'); }

# Waits until every node in @$nodes names $site as the active site.
sub wait_active
{
	my ($nodes, $site, $timeout_s) = @_;
	my $ok = 1;
	for my $n (@$nodes)
	{
		$ok &&= wait_until($n, 'SELECT gsb.active_site()', $site, $timeout_s);
	}
	return $ok;
}

# gsb.site_events rows on $node (optionally of one reason), oldest first, as
# hashes: at (epoch seconds), from_site, to_site, reason, detail, term.
sub events_of
{
	my ($node, $reason) = @_;
	my $where = defined $reason ? 'WHERE reason = ' . sql_quote($reason) : '';
	my $out = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM at), coalesce(from_site, ''), coalesce(to_site, ''),"
		  . " reason, coalesce(detail, ''), coalesce(term::text, ''), id"
		  . " FROM gsb.site_events $where ORDER BY at, id",
		extra_params => [ '-F', "\x1f" ]);
	my @rows;
	for my $line (split /\n/, $out)
	{
		my @f = split /\x1f/, $line, -1;
		push @rows, {
			at => $f[0], from_site => $f[1], to_site => $f[2],
			reason => $f[3], detail => $f[4], term => $f[5], id => $f[6],
		};
	}
	return @rows;
}

# Waits until $node holds at least $n events of $reason. Returns true if so.
sub wait_event
{
	my ($node, $reason, $n, $timeout_s) = @_;
	$n //= 1;
	return wait_until($node,
		"SELECT count(*) >= $n FROM gsb.site_events WHERE reason = " . sql_quote($reason),
		't', $timeout_s);
}

# reload_with($node, name => value, ...): ALTER SYSTEM SET each, then reload.
# Returns once a new session sees every value.
sub reload_with
{
	my ($node, %gucs) = @_;
	my $sql = join('',
		map { "ALTER SYSTEM SET $_ = " . sql_quote($gucs{$_}) . ";\n" } sort keys %gucs);
	$node->safe_psql('postgres', $sql . "SELECT pg_reload_conf();");
	for my $g (sort keys %gucs)
	{
		# The reload is asynchronous. Values are compared as current_setting()
		# shows them: pass them in that form ('1s', '200ms', '-1').
		wait_until($node, "SELECT current_setting('$g')", $gucs{$g}, 30)
		  or croak site_name($node) . ": $g did not become '$gucs{$g}' after reload";
	}
	return;
}

# The server's clock, as epoch seconds.
sub epoch_now { return q1($_[0], 'SELECT extract(epoch FROM clock_timestamp())'); }

# Current length of $node's server log (to read only what comes after).
sub log_offset { return -s $_[0]->logfile // 0; }

# The time (epoch seconds) at which $node last said "database system is
# ready to accept connections" after $offset of its log, or undef.
sub ready_at_epoch
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset // 0);
	my @ts = $log =~ /^(\S+ \S+ \S+) \[\d+\] .*database system is ready to accept connections/mg;
	return undef unless @ts;
	return q1($node, "SELECT extract(epoch FROM " . sql_quote($ts[-1]) . "::timestamptz)");
}

# open_session($node): a psql session that stays open, keeps going after
# errors (ON_ERROR_STOP off) and is driven by GsbSites::Session methods.
sub open_session
{
	my ($node) = @_;
	return GsbSites::Session->new($node);
}

package GsbSites::Session;

use strict;
use warnings;
use Carp;
use IPC::Run;
use PostgreSQL::Test::Utils;

sub new
{
	my ($class, $node) = @_;
	my $self = bless {
		node => $node,
		in => '',
		out => '',
		err => '',
		n => 0,
		pending => undef,
	}, $class;
	$self->{timer} = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$self->{h} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=0',
			'-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres')
		],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err}, $self->{timer});
	my ($out, $err) = $self->run('SELECT 1');
	croak "psql session to " . $node->name . " did not start: $err" unless $out eq '1';
	return $self;
}

# Sends $sql without waiting; done() says when it has finished.
sub send
{
	my ($self, $sql) = @_;
	croak "a statement is still running" if defined $self->{pending};
	my $m = "gsb-session-mark-" . $self->{n}++;
	$self->{pending} = $m;
	$self->{in} .= "$sql\n;\n\\echo $m\n\\warn $m\n";
	$self->{timer}->start($PostgreSQL::Test::Utils::timeout_default);
	$self->{h}->pump_nb;
	return;
}

# After send(): undef while it runs, else (stdout, stderr) of the statement.
sub done
{
	my ($self, $block) = @_;
	my $m = $self->{pending};
	croak "nothing was sent" unless defined $m;
	$self->{h}->pump_nb if $self->{h}->pumpable;
	for (;;)
	{
		if ($self->{out} =~ /\Q$m\E\n/ && $self->{err} =~ /\Q$m\E\n/)
		{
			my ($out) = $self->{out} =~ /\A(.*?)\n?\Q$m\E\n/s;
			my ($err) = $self->{err} =~ /\A(.*?)\Q$m\E\n/s;
			$self->{out} = '';
			$self->{err} = '';
			$self->{pending} = undef;
			chomp $err;
			return ($out // '', $err // '');
		}
		croak "psql session to " . $self->{node}->name . " timed out"
		  if $self->{timer}->is_expired;
		croak "psql session to " . $self->{node}->name . " ended"
		  unless $self->{h}->pumpable;
		return undef unless $block;
		$self->{h}->pump;
	}
}

# Runs $sql and returns (stdout, stderr).
sub run
{
	my ($self, $sql) = @_;
	$self->send($sql);
	return $self->done(1);
}

sub close
{
	my ($self) = @_;
	$self->{in} .= "\\q\n";
	eval { $self->{h}->finish; 1 } or $self->{h}->kill_kill;
	return;
}

1;
