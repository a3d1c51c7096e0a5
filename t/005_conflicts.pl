# 005_conflicts.pl: the same rows changed on both sites before either saw the
# other's change.
#
# Conflicts are made deterministically with stop/start: site O (older) is
# changed while its peer N is down, then O goes down and N, started alone,
# makes its conflicting changes (later commit timestamps); then both run and
# exchange. Twice: once with the backup as N, once with the primary as N.
# Cases: insert/insert, update/update, update on O vs delete on N, delete on O
# vs update on N, delete/delete. Afterwards each row is identical on both
# sites (later commit wins; a delete wins over a concurrent update), each
# conflict is in gsb.conflicts with the right kind, resolution, key and
# remote_site, and replication goes on.
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
$sjc->safe_psql('postgres', "INSERT INTO c SELECT g, 'base' FROM generate_series(1, 10) g");
connect_sites($sjc, $ams);
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM c'), '10', 'ams: base rows arrived');

# The cases of one round, by key: what the older site O and the newer site N
# do, and the outcome.
sub cases
{
	my ($base) = @_;    # round 1: 0, round 2: 4
	return (
		{ name => 'insert/insert', key => 101 + $base * 25, o => 'insert', n => 'insert', final => 'N' },
		{ name => 'update/update', key => 1 + $base, o => 'update', n => 'update', final => 'N' },
		{ name => 'update (older) vs delete (newer)', key => 2 + $base, o => 'update', n => 'delete', final => undef },
		{ name => 'delete (older) vs update (newer)', key => 3 + $base, o => 'delete', n => 'update', final => undef },
		{ name => 'delete/delete', key => 4 + $base, o => 'delete', n => 'delete', final => undef },
	);
}

sub change_sql
{
	my ($op, $key, $value) = @_;
	return "INSERT INTO c VALUES ($key, '$value');" if $op eq 'insert';
	return "UPDATE c SET v = '$value' WHERE id = $key;" if $op eq 'update';
	return "DELETE FROM c WHERE id = $key;";
}

# One round: O changes while N is down, then N changes while O is down.
# Every change is its own transaction. The servers stop in 'fast' mode: this
# test is about conflicts, not crashes (004_crash_restart.pl crashes them).
sub round
{
	my ($o, $n, @cases) = @_;
	my ($oname, $nname) = (site_name($o), site_name($n));
	my $keys = join(',', map { $_->{key} } @cases);
	$n->stop('fast');
	$o->safe_psql('postgres', join("\n", map { change_sql($_->{o}, $_->{key}, $oname) } @cases));
	$o->stop('fast');
	$n->start;
	$n->safe_psql('postgres', join("\n", map { change_sql($_->{n}, $_->{key}, $nname) } @cases));
	is($n->safe_psql('postgres', "SELECT count(*) FROM c WHERE id IN ($keys) AND v = " . sql_quote($oname)),
		'0', "$nname made its changes without seeing $oname\'s");
	$o->start;
	ok(wait_state($o, $nname, 'streaming'), "$oname: streaming from $nname again");
	ok(wait_state($n, $oname, 'streaming'), "$nname: streaming from $oname again");
	wait_synced($o, $n);
	return;
}

my @round1 = cases(0);
my @round2 = cases(4);
round($sjc, $ams, @round1);    # the backup's changes are the later ones
round($ams, $sjc, @round2);    # the primary's changes are the later ones

########################################################################
# Both sites hold the same rows, and the right ones.
########################################################################
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'c is identical on both sites');
for my $r ([ \@round1, 'sjc', 'ams' ], [ \@round2, 'ams', 'sjc' ])
{
	my ($cases, $oname, $nname) = @$r;
	for my $case (@$cases)
	{
		my $expect = defined $case->{final} ? $nname : '(none)';
		for my $node ($sjc, $ams)
		{
			is( $node->safe_psql('postgres',
					"SELECT coalesce((SELECT v FROM c WHERE id = $case->{key}), '(none)')"),
				$expect,
				site_name($node) . ": $case->{name} on key $case->{key} ($oname older, $nname newer): "
				  . (defined $case->{final} ? "the later change wins" : "the row is deleted"));
		}
	}
}
is($sjc->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM c WHERE v = 'base'"),
	'9,10', 'untouched rows stay as they were');

########################################################################
# gsb.conflicts: the union of both sites' records.
########################################################################
# What each site may record for each case: kind => resolution. The older site
# may apply a newer remote change silently; the newer site must say what it
# kept, and a missing row is always a conflict.
my %allowed = (
	'insert/insert' => {
		O => { insert_exists => 'apply_remote' },
		N => { insert_exists => 'keep_local' },
		need => [qw(insert_exists)],
	},
	'update/update' => {
		O => { update_differs => 'apply_remote' },
		N => { update_differs => 'keep_local' },
		need => [qw(update_differs)],
	},
	'update (older) vs delete (newer)' => {
		O => { delete_differs => 'apply_remote' },
		N => { update_missing => 'skip' },
		need => [qw(update_missing delete_differs)],
	},
	'delete (older) vs update (newer)' => {
		O => { update_missing => 'skip' },
		N => { delete_differs => 'apply_remote' },
		need => [qw(update_missing delete_differs)],
	},
	'delete/delete' => {
		O => { delete_missing => 'skip' },
		N => { delete_missing => 'skip' },
		need => [qw(delete_missing)],
	},
);

my @records = (conflicts_of($sjc, 'c'), conflicts_of($ams, 'c'));
note('gsb.conflicts on both sites: '
	  . join('; ', map { "$_->{site} $_->{key} $_->{kind} $_->{resolution} from $_->{remote_site}" } @records));
for my $r ([ \@round1, 'sjc', 'ams' ], [ \@round2, 'ams', 'sjc' ])
{
	my ($cases, $oname, $nname) = @$r;
	for my $case (@$cases)
	{
		my $key = "($case->{key})";
		my $rule = $allowed{ $case->{name} };
		my @mine = grep { $_->{key} eq $key } @records;
		my %kinds = map { $_->{kind} => 1 } @mine;
		ok( (grep { $kinds{$_} } @{ $rule->{need} }),
			"$case->{name}, key $key: recorded as " . join(' or ', @{ $rule->{need} })
			  . " on at least one site")
		  or diag('records for this key: ' . join('; ', map { "$_->{site}: $_->{kind}/$_->{resolution}" } @mine));
		for my $rec (@mine)
		{
			my $side = $rec->{site} eq $oname ? 'O' : 'N';
			my $other = $rec->{site} eq 'sjc' ? 'ams' : 'sjc';
			my $what = "$case->{name}, key $key, on $rec->{site}";
			my $want = $rule->{$side}{ $rec->{kind} };
			ok(defined $want, "$what: kind $rec->{kind} is one this case can produce")
			  or next;
			is($rec->{resolution}, $want, "$what: $rec->{kind} resolved by $want");
			is($rec->{remote_site}, $other, "$what: remote_site is $other");
			is($rec->{relation}, 'c', "$what: relation is c");
			is($rec->{has_ts}, 't', "$what: remote_commit_ts is set");
			my ($remote_v) = $rec->{remote_row} =~ /"v": "([^"]*)"/;
			my ($local_v) = $rec->{local_row} =~ /"v": "([^"]*)"/;
			my $remote_op = $side eq 'O' ? $case->{n} : $case->{o};
			my $local_op = $side eq 'O' ? $case->{o} : $case->{n};
			if ($remote_op eq 'delete')
			{
				is($rec->{remote_row}, '', "$what: remote_row is NULL for a delete");
			}
			else
			{
				is($remote_v, $other, "$what: remote_row is the row $other sent");
			}
			if ($local_op eq 'delete')
			{
				is($rec->{local_row}, '', "$what: local_row is NULL (there was none)");
			}
			else
			{
				is($local_v, $rec->{site}, "$what: local_row is the local row before the decision");
			}
		}
	}
}

# Every record found belongs to one of the cases above: no conflict was
# invented for the untouched rows.
my %case_keys = map { ("($_->{key})" => 1) } @round1, @round2;
is(join(',', map { "$_->{site}:$_->{key}" } grep { !$case_keys{ $_->{key} } } @records),
	'', 'no conflicts recorded for rows changed on one site only');

########################################################################
# Replication goes on.
########################################################################
for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
{
	my $st = status_row($pair->[0], $pair->[1]);
	is($st->{state}, 'streaming', site_name($pair->[0]) . ': still streaming after the conflicts');
	is($st->{last_error}, '', site_name($pair->[0]) . ': conflicts are not errors');
}
$sjc->safe_psql('postgres', "INSERT INTO c VALUES (1000, 'after sjc')");
$ams->safe_psql('postgres', "INSERT INTO c VALUES (1001, 'after ams'); UPDATE c SET v = 'after' WHERE id = 9");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT v FROM c WHERE id = 1000'), 'after sjc', 'ams: a new row still arrives');
is($sjc->safe_psql('postgres', 'SELECT v FROM c WHERE id = 1001'), 'after ams', 'sjc: a new row still arrives');
is(table_digest($ams, 'c'), table_digest($sjc, 'c'), 'c is identical on both sites at the end');

check_logs($sjc, $ams);
done_testing();
