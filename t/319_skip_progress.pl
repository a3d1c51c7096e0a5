# 319_skip_progress.pl: a long run of changes that gsb does not send (a
# multi-million-row transaction on a table that is not replicated) keeps the
# stream alive: the receiving worker, with a short gsb.apply_timeout, does not
# reconnect, and a replicated row committed right after arrives.
#
# A walsender replays a committed transaction's changes through the output
# plugin in one go; while the plugin writes nothing, the walsender neither
# reads its receiver's messages nor sends keepalives. gsb's plugin reports
# progress every 100 skipped changes (as pgoutput does), which lets
# PostgreSQL's walsender answer the worker's pings and send keepalives once
# half of its wal_sender_timeout has passed since the receiver last spoke.
# So sjc (the sender) runs with wal_sender_timeout = 1s, and ams (the
# receiver) with gsb.apply_timeout = 2s: without progress reports, ams's worker
# hears nothing for the whole replay (tens of seconds for 2M rows restored
# from the spill files on the 2-core test machine), gives up after 2 s,
# reconnects, and the new walsender decodes the same transaction again, so
# the row after it waits indefinitely (checked on the code before the fix).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $ROWS = 2_000_000;
my $APPLY_TIMEOUT_S = 2;

# logical_decoding_work_mem: while a walsender spills a large transaction's
# changes to disk (each time they fill this much memory) it says nothing and
# calls no plugin; at the default 64MB one spill took 3 to 5.5 s on the
# 2-core test machine, longer than the apply timeout, whatever the plugin
# does. At 4MB each spill is short, so what this test sees is the replay.
my $sjc = new_site('sjc', 'primary',
	extra_conf => "wal_sender_timeout = '1s'\nlogical_decoding_work_mem = '4MB'");
my $ams = new_site('ams', 'backup', apply_timeout => "${APPLY_TIMEOUT_S}s");
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('items');
CREATE TABLE local_bulk (id int);
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams, copy_data => 0);

$sjc->safe_psql('postgres', "INSERT INTO items VALUES (1, 'before')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM items WHERE id = 1'), 'before',
	'ams has the row written before the bulk load');

# Who serves the stream now: ams's worker, and the walsender on sjc.
my $worker = apply_pid($ams, 'sjc');
like($worker, qr/^\d+$/, "ams's apply worker runs (pid $worker)");
my $walsender = $sjc->safe_psql('postgres',
	"SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active");
like($walsender, qr/^\d+$/, "sjc's walsender serves ams's slot (pid $walsender)");
my $off = log_offset($ams);

# One transaction of $ROWS rows that gsb does not replicate, then a row that
# it does, committed right after.
$sjc->safe_psql('postgres', "INSERT INTO local_bulk SELECT g FROM generate_series(1, $ROWS) g");
my $t_bulk = time();
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (2, 'after')");
note(sprintf("bulk load of %d rows committed on sjc", $ROWS));

# Decoding 2M rows (reading, spilling, replaying) took 40 to 90 s on a busy
# 2-core machine; the bound is generous, the no-reconnect checks are the point.
ok(wait_until($ams, "SELECT EXISTS (SELECT 1 FROM items WHERE id = 2)", 180),
	'ams: the row committed after the unreplicated bulk load arrives');
my $took = time() - $t_bulk;
note(sprintf("it arrived %.1f s after the bulk load's commit", $took));
# The replay of the skipped transaction must have taken longer than
# gsb.apply_timeout, or this test proves nothing.
cmp_ok($took, '>', $APPLY_TIMEOUT_S,
	sprintf("the skipped transaction kept the walsender busy longer than gsb.apply_timeout (%.1f s)",
		$took));

is(apply_pid($ams, 'sjc'), $worker, "ams: the same apply worker streams (no restart)");
is( $sjc->safe_psql('postgres',
		"SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active"),
	$walsender,
	"sjc: the same walsender serves the slot (the worker did not reconnect)");
my @lines = grep { /has been silent|streaming from/ } split /\n/, slurp_file($ams->logfile, $off);
ok(!grep({ /has been silent/ } @lines), "ams's log: the worker never found the peer silent")
  or diag(join("\n", @lines[ 0 .. ($#lines < 9 ? $#lines : 9) ]));
ok(!grep({ /streaming from/ } @lines), "ams's log: the worker did not start streaming again");
my $st = status_row($ams, 'sjc');
is($st->{state}, 'streaming', 'ams: gsb.status shows sjc streaming');
is($st->{last_error}, '', 'ams: gsb.status shows no error');

# And the stream goes on as usual.
$sjc->safe_psql('postgres', "INSERT INTO items VALUES (3, 'later')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT string_agg(v, \',\' ORDER BY id) FROM items'),
	'before,after,later', 'ams has every replicated row, once');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM local_bulk'), '0',
	'nothing of the unreplicated table reached ams');

check_logs($sjc, $ams);
done_testing();
