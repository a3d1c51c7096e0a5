# 315_retry_exactly_once.pl: a transaction that fails to apply is retried
# until it applies, and is never skipped.
#
# The apply worker retries inside one process. Nothing learned on a failed
# attempt may survive it: a position received but never applied, reported as
# flushed, lets the peer's slot forget the transaction, and the next
# reconnect skips it for good (the walsender says "has been already
# streamed, forwarding to ...").
#   1. On ams, a CHECK constraint (NOT VALID) that a row from sjc violates:
#      with a 100 KB value, protocol 2 sends the COMMIT in a message of its
#      own. The worker fails several times, gsb.status shows the error; once
#      the constraint is dropped the row arrives.
#   2. Fault points make a transaction fail at BEGIN (apply_begin_error), at
#      its first change (apply_change_error) and at COMMIT after all its
#      changes were applied (apply_commit_error), small (one row) and large
#      (3000 rows and a 100 KB value), in protocol versions 2 and 1 (the
#      test hook apply_protocol_1 makes the worker ask for version 1, one
#      message per CopyData). Each is retried at least three times, then the
#      fault is removed.
# Every row arrives exactly once, and no error is left in gsb.status.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $retries = 3;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('items');
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams, copy_data => 0);

# The part of ams's server log written since $offset, as SQL.
sub log_since_sql
{
	my ($offset) = @_;
	my $f = sql_quote($ams->logfile);
	return "pg_read_file($f, $offset, (pg_stat_file($f)).size - $offset)";
}

# Waits (bounded) until ams's worker has failed $retries times since $offset
# with an error matching $pattern.
# (The pattern holds a newline, so that the logged text of this very query
# never matches it.)
sub wait_failures
{
	my ($offset, $pattern, $what) = @_;
	my $count = "SELECT (SELECT count(*) FROM regexp_matches(" . log_since_sql($offset) . ", "
	  . sql_quote("apply worker for peer \"sjc\": [^\n]*$pattern") . ", 'g'))";
	wait_until($ams, "$count >= $retries", 60);
	my $n = $ams->safe_psql('postgres', $count);
	ok($n >= $retries, "$what: ams's worker failed and retried ($n times)");
	return;
}

# Restarts ams's worker with the test hooks in $faults and waits until it
# streams with protocol version $version.
sub restart_worker
{
	my ($faults, $version) = @_;
	my $offset = log_offset($ams);
	set_fault($ams, $faults);
	my $old = apply_pid($ams, 'sjc');
	$ams->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
	ok( wait_until(
			$ams,
			"SELECT " . log_since_sql($offset) . " ~ "
			  . sql_quote("apply worker for peer \"sjc\" streaming from [0-9A-F/]+ \\(protocol version $version\\)"),
			60),
		"ams's worker streams with protocol version $version");
	return;
}

my $id = 0;
my $large_value = 'x' x 100_000;

# Inserts one transaction on sjc: one row (small) or 3000 rows and one of
# 100 KB (large). Returns the number of rows.
sub insert_txn
{
	my ($size) = @_;
	my $first = $id + 1;
	if ($size eq 'small')
	{
		$id++;
		$sjc->safe_psql('postgres', "INSERT INTO items VALUES ($id, 'small $id')");
		return 1;
	}
	$id += 3001;
	$sjc->safe_psql('postgres',
		"INSERT INTO items SELECT g, 'large ' || g || repeat('y', 100) FROM generate_series($first, $id - 1) g;"
		  . "INSERT INTO items VALUES ($id, " . sql_quote($large_value) . ")");
	return 3001;
}

# The version this build speaks (2 or later: messages batched, the COMMIT of a
# large transaction in a message of its own), and 1 through the test hook.
my $current_version = $ams->safe_psql('postgres', 'SELECT gsb.protocol_version()');
cmp_ok($current_version, '>=', 2, "this build speaks protocol version $current_version (batched)");

# 1. The reproduction: a constraint on ams that a large row violates.
for my $version ($current_version, 1)
{
	restart_worker($version == 1 ? 'apply_protocol_1' : '', $version);
	$ams->safe_psql('postgres',
		"ALTER TABLE items ADD CONSTRAINT short_v CHECK (length(v) < 1000) NOT VALID");
	my $offset = log_offset($ams);
	my $first = $id + 1;
	insert_txn('large');
	wait_failures($offset, 'short_v', "protocol $version, CHECK violated by a 100 KB value");
	ok( wait_until($ams,
			"SELECT state = 'error' AND last_error ~ 'short_v' FROM gsb.status WHERE peer = 'sjc'", 30),
		"protocol $version: gsb.status shows the violation");
	$ams->safe_psql('postgres', 'ALTER TABLE items DROP CONSTRAINT short_v');
	wait_synced($sjc, $ams);
	is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE id BETWEEN $first AND $id"),
		$id - $first + 1, "protocol $version: once the constraint is gone, the transaction arrives");
}

# 2. Failures at BEGIN, in the middle and at COMMIT.
for my $version ($current_version, 1)
{
	my $base = $version == 1 ? 'apply_protocol_1' : '';
	restart_worker($base, $version);
	for my $point (qw(begin change commit))
	{
		for my $size (qw(small large))
		{
			my $what = "protocol $version, failing at $point, $size";
			my $offset = log_offset($ams);
			set_fault($ams, join(',', grep { $_ ne '' } $base, "apply_${point}_error"));
			my $first = $id + 1;
			my $rows = insert_txn($size);
			wait_failures($offset, 'injected fault in the apply worker', $what);
			is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE id >= $first"),
				'0', "$what: nothing of it was applied meanwhile");
			set_fault($ams, $base);
			wait_synced($sjc, $ams);
			is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE id >= $first"),
				$rows, "$what: once the fault is gone, all $rows rows arrive");
		}
	}
}

set_fault($ams, '');
exactly_once($sjc, $ams, 'items');
ok( $ams->poll_query_until('postgres',
		"SELECT state = 'streaming' AND coalesce(last_error, '') = '' FROM gsb.status WHERE peer = 'sjc'"),
	'ams streams with no error left');
check_logs($sjc, $ams);
done_testing();
