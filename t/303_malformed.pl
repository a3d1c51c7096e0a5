# 303_malformed.pl: a peer that sends malformed messages, and changes that
# fail to apply: an error shown and logged, retried, never a crash, and once
# the cause is gone every row arrives exactly once.
#
# Scenario 1: gsb.fault_injection = plugin_corrupt_message on sjc (its output
# plugin appends a garbage byte to every binary message). ams's apply worker
# for sjc must log a WARNING naming the peer, show state 'error' and a
# last_error about malformed data in gsb.status, drop the connection and try
# again (several attempts), apply nothing of the corrupt stream; the other
# direction keeps working. Once the fault is cleared, the rows written
# meanwhile arrive, each once.
# Scenario 2: gsb.fault_injection = apply_change_error on ams (its apply
# worker fails every change): the same shape, and no change is skipped:
# after clearing, all the rows are there.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our $TODO;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, v text);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

# n one-row transactions on $node, ids from $base + 1.
sub write_rows
{
	my ($node, $base, $n) = @_;
	$node->safe_psql('postgres', join("\n",
		map { "INSERT INTO items VALUES (" . ($base + $_) . ", '" . site_name($node) . "', md5('$_'));" } 1 .. $n));
	return;
}

write_rows($sjc, 0, 50);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM items'), '50', 'ams: 50 rows before any fault');

# The number of WARNINGs from ams's apply worker for sjc since $offset.
sub warnings_since
{
	my ($node, $offset, $re) = @_;
	return grep { /WARNING:.*gsb apply worker for peer "sjc"/ && /$re/ } error_groups($node, $offset);
}

for my $case (
	{
		name => 'plugin_corrupt_message on sjc',
		node => $sjc,
		point => 'plugin_corrupt_message',
		error => qr/malformed/i,
		base => 1000,
	},
	{
		name => 'apply_change_error on ams',
		node => $ams,
		point => 'apply_change_error',
		error => qr/injected fault in the apply worker/,
		base => 2000,
	})
{
	my $c = $case->{name};
	my $off = log_offset($ams);
	set_fault($case->{node}, $case->{point});
	$GsbFaults::FIGURES{faults}++;
	write_rows($sjc, $case->{base}, 100);

	ok(wait_state($ams, 'sjc', 'error'), "$c: ams's gsb.status shows state error for sjc");
	my $st = status_row($ams, 'sjc');
	like($st->{last_error}, $case->{error}, "$c: last_error says what went wrong")
	  or diag("last_error: $st->{last_error}");
	note("$c: last_error: $st->{last_error}");

	# It drops the connection and tries again: at least two attempts fail
	# (the second shows that the first did not end the worker).
	my $tries = 0;
	my $end = time() + 60;
	while (time() < $end)
	{
		$tries = () = warnings_since($ams, $off, $case->{error});
		last if $tries >= 2;
		select(undef, undef, undef, 0.2);
	}
	cmp_ok($tries, '>=', 2, "$c: the log shows the error as a WARNING naming peer sjc, retried ($tries attempts)");
	my ($first) = warnings_since($ams, $off, $case->{error});
	note("$c: first log entry:\n" . ($first // ''));
	like($first // '', qr/DETAIL:\s+Retrying in \d+ ms/, "$c: the log says it retries");
	my @waits = map { /Retrying in (\d+) ms/ ? $1 : () } warnings_since($ams, $off, $case->{error});
	note("$c: retry intervals logged so far (ms): @waits");
	if ($case->{point} eq 'plugin_corrupt_message')
	{
		like($first // '', qr{message at [0-9A-F]+/[0-9A-F]+},
			"$c: the logged error says where in the stream the bad message was (its LSN)");
	}

	is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE id > $case->{base}"),
		'0', "$c: nothing of the failing stream is applied");
	ok($ams->safe_psql('postgres', 'SELECT pg_postmaster_start_time() < now()') eq 't',
		"$c: ams is up");

	# The other direction is not affected.
	write_rows($ams, $case->{base} + 500, 10);
	ok( $sjc->poll_query_until('postgres',
			"SELECT count(*) = 10 FROM items WHERE id > $case->{base} + 500"),
		"$c: ams's rows still reach sjc meanwhile");

	set_fault($case->{node}, '');
	ok(wait_state($ams, 'sjc', 'streaming'), "$c: ams streams again once the fault is gone");
	wait_synced($sjc, $ams);
	is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE id BETWEEN $case->{base} + 1 AND $case->{base} + 100"),
		'100', "$c: the 100 rows written during the fault arrive");
	ok( $ams->poll_query_until('postgres',
			"SELECT coalesce(last_error, '') = '' FROM gsb.status WHERE peer = 'sjc'"),
		"$c: last_error is cleared once it applies again");
	exactly_once($sjc, $ams, 'items');
}

verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(2);
done_testing();
