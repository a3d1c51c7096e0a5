# FakePeer.pm: a fake "peer" that speaks just enough of the PostgreSQL wire
# protocol (version 3) for libpq to connect, and then answers with the wrong
# shape: a hostile or broken peer, for t/323_hostile_peer.pl.
#
#   my $fake = FakePeer->start(log => "$dir/fake.log", encoding => 'UTF8');
#   ... "host=127.0.0.1 port=" . $fake->port . " dbname=postgres" ...
#   $fake->connections('gsb_apply_')   # [epoch seconds] of the logins so far
#   $fake->stop;
#
# It listens on 127.0.0.1 (a free port from PostgreSQL::Test::Cluster), takes
# every login without a password (an SSLRequest or GSSENCRequest is answered
# 'N'), says it is PostgreSQL 15.4, and answers every statement, in the simple
# and the extended protocol:
#   - a replication command that a gsb worker needs to get further
#     (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT) with the shape PostgreSQL
#     gives, so that the worker reaches its initial copy;
#   - a statement that returns no rows in PostgreSQL (BEGIN, SET, COMMIT,
#     DROP_REPLICATION_SLOT, ...) with its command tag;
#   - anything else (every SELECT, FETCH, START_REPLICATION) with one text
#     column "x" and one row "1": the wrong shape for what gsb asks.
# $fake->mode('copy') changes that for the connections that follow: the
# initial copy's list of tables (one, public.items) and the table's kind and
# owner are answered right, so that the worker gets as far as the query of
# the table's columns (answered with the wrong shape); mode('all') goes back.
# Every login is logged (epoch time, application_name, replication) to the log
# file, one line each. The server (and each connection's process) exits by
# itself after lifetime seconds (default 300), so a failed test leaves nothing
# running.
package FakePeer;

use strict;
use warnings;
use Carp;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(time);

sub start
{
	my ($class, %opts) = @_;
	my $self = bless {
		log => $opts{log} // croak('log file needed'),
		encoding => $opts{encoding} // 'UTF8',
		lifetime => $opts{lifetime} // 300,
		port => PostgreSQL::Test::Cluster::get_free_port(),
	}, $class;
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => $self->{port},
		Proto => 'tcp',
		Listen => 64,
		ReuseAddr => 1) or croak "fake peer: cannot listen: $!";
	open(my $fh, '>', $self->{log}) or croak "fake peer: $self->{log}: $!";
	close($fh);
	$self->mode($opts{mode} // 'all');
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		$SIG{CHLD} = 'IGNORE';    # no zombies from the connections
		alarm($self->{lifetime});
		while (1)
		{
			my $client = $listen->accept or next;
			my $child = fork();
			if (defined $child && $child == 0)
			{
				close($listen);
				eval { $self->_serve($client) };
				POSIX::_exit(0);
			}
			close($client);
		}
	}
	close($listen);
	$self->{pid} = $pid;
	return $self;
}

sub port { return $_[0]->{port}; }

# Sets what the fake answers from now on: 'all' or 'copy' (above).
sub mode
{
	my ($self, $mode) = @_;
	croak "unknown mode $mode" unless $mode =~ /^(all|copy)$/;
	open(my $fh, '>', "$self->{log}.mode.tmp") or croak $!;
	print $fh $mode;
	close($fh);
	rename("$self->{log}.mode.tmp", "$self->{log}.mode") or croak $!;
	return;
}

sub _current_mode
{
	my ($self) = @_;
	open(my $fh, '<', "$self->{log}.mode") or return 'all';
	my $mode = <$fh> // 'all';
	close($fh);
	return $mode;
}

# The conninfo that reaches it.
sub connstr
{
	my ($self) = @_;
	return "host=127.0.0.1 port=$self->{port} dbname=postgres user=postgres sslmode=disable";
}

# The times (epoch seconds) of the logins whose application_name starts with
# $prefix, in order.
sub connections
{
	my ($self, $prefix) = @_;
	open(my $fh, '<', $self->{log}) or return [];
	my @at;
	while (my $line = <$fh>)
	{
		my ($t, $app) = split /\t/, $line;
		push @at, $t if defined $app && index($app, $prefix) == 0;
	}
	close($fh);
	return \@at;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
	return;
}

sub DESTROY { $_[0]->stop; }

# Reads exactly $n bytes or dies.
sub _read
{
	my ($sock, $n) = @_;
	my $buf = '';
	while (length($buf) < $n)
	{
		my $got = sysread($sock, $buf, $n - length($buf), length($buf));
		die "closed\n" unless $got;
	}
	return $buf;
}

sub _msg { my ($type, $body) = @_; return $type . pack('N', length($body) + 4) . $body; }

sub _row_description
{
	my @names = @_;
	return _msg('T',
		pack('n', scalar @names)
		  . join('', map { pack('Z*NnNnNn', $_, 0, 0, 25, 0xFFFF, 0xFFFFFFFF, 0) } @names));
}

sub _data_row
{
	my @values = @_;
	return _msg('D',
		pack('n', scalar @values) . join('', map { pack('N', length($_)) . $_ } @values));
}

# What to answer to $sql: the messages after any ParseComplete/BindComplete,
# up to CommandComplete (without ReadyForQuery).
sub _answer
{
	my ($sql, $mode) = @_;
	$sql =~ s/^\s+//;
	if ($mode eq 'copy' && $sql =~ /FROM gsb\.tables/)
	{
		return _row_description(qw(oid nspname relname))
		  . _data_row('16384', 'public', 'items')
		  . _msg('C', "SELECT 1\0");
	}
	if ($mode eq 'copy' && $sql =~ /relkind/)
	{
		return _row_description(qw(relkind rolname))
		  . _data_row('r', 'postgres')
		  . _msg('C', "SELECT 1\0");
	}
	if ($sql =~ /^IDENTIFY_SYSTEM/i)
	{
		return _row_description(qw(systemid timeline xlogpos dbname))
		  . _data_row('7000000000000000001', '1', '0/1000000', 'postgres')
		  . _msg('C', "IDENTIFY_SYSTEM\0");
	}
	if ($sql =~ /^CREATE_REPLICATION_SLOT\s+"?(\w+)/i)
	{
		return _row_description(qw(slot_name consistent_point snapshot_name output_plugin))
		  . _data_row($1, '0/1000000', '00000003-00000002-1', 'gsb')
		  . _msg('C', "CREATE_REPLICATION_SLOT\0");
	}
	if ($sql =~ /^(BEGIN|SET|RESET|COMMIT|ROLLBACK|DECLARE|CLOSE|DROP_REPLICATION_SLOT)\b/i)
	{
		my $tag = uc $1;
		$tag = 'DECLARE CURSOR' if $tag eq 'DECLARE';
		$tag = 'CLOSE CURSOR' if $tag eq 'CLOSE';
		return _msg('C', "$tag\0");
	}
	return _row_description('x') . _data_row('1') . _msg('C', "SELECT 1\0");
}

sub _serve
{
	my ($self, $sock) = @_;
	binmode($sock);
	# Startup: SSLRequest / GSSENCRequest are refused, then the StartupMessage.
	my %params;
	while (1)
	{
		my $len = unpack('N', _read($sock, 4));
		my $body = _read($sock, $len - 4);
		my $code = unpack('N', substr($body, 0, 4));
		if ($code == 80877103 || $code == 80877104)
		{
			syswrite($sock, 'N');
			next;
		}
		die "unknown startup code $code\n" unless $code == 196608;
		my @kv = split /\0/, substr($body, 4);
		while (@kv >= 2) { my $k = shift @kv; $params{$k} = shift @kv; }
		last;
	}
	open(my $log, '>>', $self->{log}) or die;
	printf $log "%.3f\t%s\t%s\n", time(), $params{application_name} // '',
	  $params{replication} // '';
	close($log);
	my $mode = $self->_current_mode;
	my $out = _msg('R', pack('N', 0));
	my %status = (
		server_version => '15.4',
		server_encoding => $self->{encoding},
		client_encoding => $self->{encoding},
		standard_conforming_strings => 'on',
		integer_datetimes => 'on',
		DateStyle => 'ISO, MDY',
		IntervalStyle => 'postgres',
		TimeZone => 'UTC',
		is_superuser => 'on',
		session_authorization => $params{user} // 'postgres',
		application_name => $params{application_name} // '');
	$out .= _msg('S', "$_\0$status{$_}\0") for sort keys %status;
	$out .= _msg('K', pack('NN', $$, 12345));
	$out .= _msg('Z', 'I');
	syswrite($sock, $out);

	# Queries until Terminate or EOF. In the extended protocol the answer to
	# Execute is that of the statement last parsed.
	my $parsed = '';
	while (1)
	{
		my $type = _read($sock, 1);
		my $len = unpack('N', _read($sock, 4));
		my $body = $len > 4 ? _read($sock, $len - 4) : '';
		if ($type eq 'X') { last; }
		elsif ($type eq 'Q')
		{
			my ($sql) = unpack('Z*', $body);
			syswrite($sock, _answer($sql, $mode) . _msg('Z', 'I'));
		}
		elsif ($type eq 'P')
		{
			my ($name, $sql) = unpack('Z*Z*', $body);
			$parsed = $sql;
			syswrite($sock, _msg('1', ''));
		}
		elsif ($type eq 'B') { syswrite($sock, _msg('2', '')); }
		elsif ($type eq 'D') { }    # the RowDescription comes with Execute
		elsif ($type eq 'E') { syswrite($sock, _answer($parsed, $mode)); }
		elsif ($type eq 'S') { syswrite($sock, _msg('Z', 'I')); }
		elsif ($type eq 'H' || $type eq 'C' || $type eq 'd' || $type eq 'c') { }
		else { last; }
	}
	return;
}

1;
