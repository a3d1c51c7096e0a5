# 316_key_conflicts.pl: conflicts on the key itself (update_exists): a key
# taken on one site by an insert or by another row's key-changing update
# while the other site moves a row onto it. Before, the apply worker met a
# unique violation on the key, stayed in 'error' and the sites diverged.
#
# Conflicts are made deterministically as in t/005_conflicts.pl: site O
# (older) changes while its peer N is down, then O goes down and N, started
# alone, makes its changes (later commit timestamps); then both run and
# exchange. Twice: once with the backup as N, once with the primary as N.
# Cases of a round (each change its own transaction):
#   A. O moves key a1 to a2; N inserts a2.         N wins: a2 = N's row.
#   B. O inserts b2; N moves key b1 to b2.         N wins: b2 = N's row.
#   C. O moves key c1 to c2; N moves key c3 to c2. N wins: c2 = N's row.
# Afterwards: both sites identical and gsb.verify() matches, each case's
# conflicts recorded (update_exists / insert_exists with the resolution
# each side must take), the workers streaming with no error.
#
# Also:
#   D. the primary deletes a row and inserts it again while the backup,
#      later, updates the row it had: before, the backup ended with the
#      reinserted row (the delete won over its update) and the primary with
#      the update (newer than its reinsert). Both now end with the update,
#      the last write to the key (README, Conflicts).
#   E. a batch of inserts (written with one multi-insert) into a partition,
#      some of whose rows lie outside that partition's bound on ams: an
#      apply error retried until the bound is fixed, as for one row, never
#      rows stored where the partition constraint says they cannot be.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL);
SELECT gsb.replicate_table('c');});
}
# Round 1 uses keys 1..99, round 2 keys 101..199; the delete/reinsert case 500.
$sjc->safe_psql('postgres', q{
INSERT INTO c VALUES (1, 'base'), (3, 'base'), (5, 'base'), (6, 'base'), (9, 'base'),
	(101, 'base'), (103, 'base'), (105, 'base'), (106, 'base'), (109, 'base'),
	(500, 'base'), (900, 'untouched');});
connect_sites($sjc, $ams);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM c'), '12', 'ams: base rows arrived');

sub cases
{
	my ($b) = @_;    # round 1: 0, round 2: 100
	return (
		{
			name => 'A: O moves a row to a key that N inserts',
			o => sprintf('UPDATE c SET id = %d, v = %%s WHERE id = %d;', $b + 2, $b + 1),
			n => sprintf('INSERT INTO c VALUES (%d, %%s);', $b + 2),
			key => $b + 2,
			gone => [ $b + 1 ],
			# site => { kind => resolution }
			O => { insert_exists => 'apply_remote' },
			N => { update_exists => 'keep_local' },
		},
		{
			name => 'B: N moves a row to a key that O inserts',
			o => sprintf('INSERT INTO c VALUES (%d, %%s);', $b + 4),
			n => sprintf('UPDATE c SET id = %d, v = %%s WHERE id = %d;', $b + 4, $b + 3),
			key => $b + 4,
			gone => [ $b + 3 ],
			O => { update_exists => 'apply_remote' },
			N => { insert_exists => 'keep_local' },
		},
		{
			name => 'C: both move a row to the same key',
			o => sprintf('UPDATE c SET id = %d, v = %%s WHERE id = %d;', $b + 7, $b + 5),
			n => sprintf('UPDATE c SET id = %d, v = %%s WHERE id = %d;', $b + 7, $b + 6),
			key => $b + 7,
			gone => [ $b + 5, $b + 6 ],
			O => { update_exists => 'apply_remote' },
			N => { update_exists => 'keep_local' },
		},
	);
}

# O changes while N is down, then N changes while O is down; then both run.
sub round
{
	my ($o, $n, $o_sql, $n_sql) = @_;
	my ($oname, $nname) = (site_name($o), site_name($n));
	$n->stop('fast');
	$o->safe_psql('postgres', $o_sql);
	$o->stop('fast');
	$n->start;
	$n->safe_psql('postgres', $n_sql);
	$o->start;
	ok(wait_state($o, $nname, 'streaming'), "$oname: streaming from $nname again");
	ok(wait_state($n, $oname, 'streaming'), "$nname: streaming from $oname again");
	return;
}

my @rounds = ([ $sjc, $ams, [ cases(0) ] ], [ $ams, $sjc, [ cases(100) ] ]);
for my $r (@rounds)
{
	my ($o, $n, $cases) = @$r;
	my ($oname, $nname) = (site_name($o), site_name($n));
	round($o, $n,
		join("\n", map { sprintf($_->{o}, sql_quote($oname)) } @$cases),
		join("\n", map { sprintf($_->{n}, sql_quote($nname)) } @$cases));
	# Both workers must get past the other's changes: before, one stopped
	# in 'error' on a unique violation of c_pkey.
	my $synced = wait_synced($o, $n);
	for my $node ($o, $n)
	{
		my $peer = $node == $o ? $nname : $oname;
		my $st = status_row($node, $peer);
		is($st->{state}, 'streaming', site_name($node) . ": still streaming after the key conflicts ($oname older)");
		is($st->{last_error}, '', site_name($node) . ": no apply error ($oname older)");
	}
	BAIL_OUT("the sites did not converge after round with $oname older") unless $synced;
}

########################################################################
# Both sites hold the same rows, and the right ones.
########################################################################
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'c is identical on both sites');
for my $r (@rounds)
{
	my ($o, $n, $cases) = @$r;
	my ($oname, $nname) = (site_name($o), site_name($n));
	for my $case (@$cases)
	{
		for my $node ($sjc, $ams)
		{
			my $what = site_name($node) . ": $case->{name} ($oname older, $nname newer)";
			is($node->safe_psql('postgres', "SELECT coalesce((SELECT v FROM c WHERE id = $case->{key}), '(none)')"),
				$nname, "$what: key $case->{key} holds the later change's row");
			my $gone = join(',', @{ $case->{gone} });
			is($node->safe_psql('postgres', "SELECT count(*) FROM c WHERE id IN ($gone)"),
				'0', "$what: the old key(s) $gone are gone");
		}
	}
}
for my $node ($sjc, $ams)
{
	is( $node->safe_psql('postgres', q{
SELECT status FROM gsb.verify('c')}), 'match', site_name($node) . ": gsb.verify('c') says match");
}

########################################################################
# gsb.conflicts: each case's records, on each site.
########################################################################
my @records = (conflicts_of($sjc, 'c'), conflicts_of($ams, 'c'));
note('gsb.conflicts on both sites: '
	  . join('; ', map { "$_->{site} $_->{key} $_->{kind} $_->{resolution} from $_->{remote_site}" } @records));
for my $r (@rounds)
{
	my ($o, $n, $cases) = @$r;
	my ($oname, $nname) = (site_name($o), site_name($n));
	for my $case (@$cases)
	{
		my $key = "($case->{key})";
		for my $side ([ 'O', $oname, $nname ], [ 'N', $nname, $oname ])
		{
			my ($tag, $site, $other) = @$side;
			my ($kind, $resolution) = %{ $case->{$tag} };
			my @mine = grep { $_->{site} eq $site && $_->{key} eq $key } @records;
			my $what = "$case->{name}, key $key, on $site ($oname older)";
			is(join(',', map { "$_->{kind}/$_->{resolution}" } @mine),
				"$kind/$resolution", "$what: recorded as $kind, $resolution");
			next unless @mine == 1;
			my $rec = $mine[0];
			is($rec->{remote_site}, $other, "$what: remote_site is $other");
			is($rec->{has_ts}, 't', "$what: remote_commit_ts is set");
			my ($remote_v) = $rec->{remote_row} =~ /"v": "([^"]*)"/;
			my ($local_v) = $rec->{local_row} =~ /"v": "([^"]*)"/;
			is($remote_v, $other, "$what: remote_row is the row $other sent");
			is($local_v, $site, "$what: local_row is the local row that held the key");
		}
	}
}

########################################################################
# D. The primary deletes a row and inserts it again; the backup, later,
# updates the row it had.
########################################################################
# sjc (O): DELETE 500, INSERT 500 'reinserted'; ams (N, later): UPDATE 500.
round($sjc, $ams, "DELETE FROM c WHERE id = 500;\nINSERT INTO c VALUES (500, 'reinserted');",
	"UPDATE c SET v = 'updated' WHERE id = 500;");
wait_synced($sjc, $ams);
# The update (ams, later) is the last write to the key: sjc applies it over
# its reinserted row (older, its own); ams, where the delete won over the
# update, gets the lost updated row back in place of the older reinsert.
for my $node ($sjc, $ams)
{
	is($node->safe_psql('postgres', "SELECT coalesce((SELECT v FROM c WHERE id = 500), '(none)')"),
		'updated', site_name($node) . ': D: key 500 holds the update, the last write to it');
}
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'D: c is identical on both sites');
is( join(',', map { "$_->{kind}/$_->{resolution}" } grep { $_->{key} eq '(500)' } conflicts_of($ams, 'c')),
	'delete_differs/apply_remote,insert_exists/keep_local',
	'D: ams records the delete winning over its update, then the insert losing to the lost update');
# Replication goes on.
for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
{
	is(status_row($pair->[0], $pair->[1])->{last_error}, '', site_name($pair->[0]) . ': no apply error after D');
}

########################################################################
# Replication goes on.
########################################################################
$sjc->safe_psql('postgres', "INSERT INTO c VALUES (1000, 'after sjc'); UPDATE c SET id = 1002 WHERE id = 900");
$ams->safe_psql('postgres', "INSERT INTO c VALUES (1001, 'after ams')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM c WHERE id = 1002'), 'untouched', 'ams: a key-changing update still arrives');
is($sjc->safe_psql('postgres', 'SELECT v FROM c WHERE id = 1001'), 'after ams', 'sjc: a new row still arrives');
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'c is identical on both sites at the end');
is($sjc->safe_psql('postgres', "SELECT status FROM gsb.verify('c')"), 'match', "gsb.verify('c') says match at the end");

########################################################################
# E. The batch insert path checks the partition constraint.
########################################################################
$sjc->safe_psql('postgres', q{
CREATE TABLE parent (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE part1 PARTITION OF parent FOR VALUES FROM (0) TO (100);});
$ams->safe_psql('postgres', q{
CREATE TABLE parent (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE part1 PARTITION OF parent FOR VALUES FROM (0) TO (50);});
# replicate_table asks the peer for the table: both have it by now.
$_->safe_psql('postgres', "SELECT gsb.replicate_table('part1')") for ($sjc, $ams);
# 20 rows in one transaction (a batch, written with one multi-insert), ten of
# them beyond ams's bound.
$sjc->safe_psql('postgres', "INSERT INTO part1 SELECT g, 'x' FROM generate_series(40, 59) g");
ok( $ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error ~ 'partition constraint' FROM gsb.status WHERE peer = 'sjc'"),
	'E: ams reports an apply error for rows outside its partition bound');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM part1'), '0',
	'E: none of the batch is stored in the partition meanwhile');
$ams->safe_psql('postgres', q{
ALTER TABLE parent DETACH PARTITION part1;
ALTER TABLE parent ATTACH PARTITION part1 FOR VALUES FROM (0) TO (100);});
ok(wait_state($ams, 'sjc', 'streaming'), 'E: ams streams again once the bound allows the rows');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*), min(id), max(id) FROM parent'), '20|40|59',
	'E: the batch is applied, once');

check_logs($sjc, $ams);
done_testing();
