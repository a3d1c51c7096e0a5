# 330_replicate_ddl.pl: gsb.replicate_ddl changes a replicated table's shape
# while both sites write it.
#
# Both sites write table items continuously (background loops of one-row
# inserts with known ids, odd on sjc and even on ams, and updates of their
# own rows). Meanwhile gsb.replicate_ddl, called on either site:
#   1. sjc: ADD COLUMN extra with a default,
#   2. ams: CREATE INDEX,
#   3. sjc: ALTER COLUMN n TYPE bigint (a rewrite),
#   4. ams: DROP COLUMN v.
# For each step the other site's apply worker is held back (the test hook
# apply_begin_error) until the calling site has received rows that the other
# site wrote in the old shape after the command ran here: a row lacking the
# added column gets its default, an int value goes into the bigint column, a
# value of the dropped column is discarded. Then the other site runs the
# command at its place in the stream. At the end: the same shape on both
# sites, every row exactly once with the same values, gsb.verify() matches,
# and each command is in gsb.ddl_log of both sites (origin NULL where it was
# called, the caller's site where it was applied).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup');
my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, n int NOT NULL DEFAULT 0,
                    v text DEFAULT 'old');
CREATE SEQUENCE items_seq;
SELECT gsb.replicate_table('items');
-- One-row transactions: an insert of a new own row, then an update of an own
-- row written a few rows earlier (n counts its updates).
CREATE PROCEDURE write_items(batch int) LANGUAGE plpgsql AS $$
DECLARE
    me text := gsb.site_name();
    off int := CASE WHEN gsb.site_role() = 'primary' THEN 1 ELSE 2 END;
    k bigint;
BEGIN
    FOR i IN 1..batch LOOP
        k := nextval('items_seq') * 2 + off - 2;
        INSERT INTO items (id, site) VALUES (k, me);
        COMMIT;
        UPDATE items SET n = n + 1 WHERE id = k - 6;
        COMMIT;
        PERFORM pg_sleep(0.003);
    END LOOP;
END
$$;
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams, copy_data => 0);

my $dir = PostgreSQL::Test::Utils::tempdir();
my @writers = map { start_writer_items($_, $dir) } ($sjc, $ams);

sub start_writer_items
{
	my ($node, $dir) = @_;
	my $name = site_name($node);
	my $stop = "$dir/stop-$name";
	my $connstr = $node->connstr('postgres');
	my $script = qq{
while [ ! -e '$stop' ]; do
	psql -X -q -v ON_ERROR_STOP=1 -d "$connstr" -c "CALL write_items(10)" >>'$dir/writer-$name.log' 2>&1 || sleep 0.05
done
};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'bash', '-c', $script ], '>', \$out, '2>', \$err);
	return { h => $h, stop => $stop, node => $node };
}

# Rows of $from's own that $at has: wait until it has more than it had.
sub own_rows
{
	my ($at, $from) = @_;
	return $at->safe_psql('postgres',
		"SELECT count(*) FROM items WHERE site = " . sql_quote(site_name($from)));
}

ok($ams->poll_query_until('postgres', "SELECT count(*) > 20 FROM items WHERE site = 'sjc'"),
	'ams receives sjc\'s rows');
ok($sjc->poll_query_until('postgres', "SELECT count(*) > 20 FROM items WHERE site = 'ams'"),
	'sjc receives ams\'s rows');

# One step: $caller runs $command through gsb.replicate_ddl while the other
# site's apply worker is held; rows the other site writes meanwhile (in the old
# shape) reach $caller after the command; then the other site catches up.
sub ddl_step
{
	my ($caller, $other, $command, $check) = @_;
	my ($cn, $on) = (site_name($caller), site_name($other));
	set_fault($other, 'apply_begin_error');
	ok($other->poll_query_until('postgres',
			"SELECT state = 'error' FROM gsb.status WHERE peer = " . sql_quote($cn)),
		"$on holds back what $cn sends");
	my ($rc, $out, $err) = psql_verbose($caller,
		"SELECT gsb.replicate_ddl(" . sql_quote($command) . ")");
	is($rc, 0, "$cn: gsb.replicate_ddl('$command')") or diag($err);
	# Rows written on the other site after the command ran here, in the old
	# shape, arrive here.
	my $had = own_rows($caller, $other);
	my $at_ddl = $other->safe_psql('postgres', 'SELECT max(id) FROM items');
	ok($caller->poll_query_until('postgres',
			"SELECT count(*) >= 30 FROM items WHERE site = " . sql_quote($on) . " AND id > $at_ddl"),
		"$cn: rows that $on wrote in the old shape after the command arrive and apply");
	$check->($caller, $other, $at_ddl) if $check;
	is($caller->safe_psql('postgres',
			"SELECT coalesce(last_error, '') FROM gsb.status WHERE peer = " . sql_quote($on)),
		'', "$cn: no apply error from $on");
	set_fault($other, '');
	ok($other->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM gsb.ddl_log WHERE origin = " . sql_quote($cn)
			  . " AND command = " . sql_quote($command)),
		"$on ran the command at its place in the stream");
	ok($other->poll_query_until('postgres',
			"SELECT state = 'streaming' AND coalesce(last_error, '') = '' FROM gsb.status WHERE peer = "
			  . sql_quote($cn)),
		"$on streams from $cn again");
	is($caller->safe_psql('postgres',
			"SELECT role || ' ' || coalesce(origin, 'here') FROM gsb.ddl_log WHERE command = "
			  . sql_quote($command)),
		'postgres here', "$cn: gsb.ddl_log records the command, run here as postgres");
	return;
}

ddl_step($sjc, $ams, "ALTER TABLE items ADD COLUMN extra text NOT NULL DEFAULT 'dflt'", sub {
	my ($caller, $other, $at_ddl) = @_;
	is($caller->safe_psql('postgres',
			"SELECT count(*) > 0 AND count(*) FILTER (WHERE extra IS DISTINCT FROM 'dflt') = 0 "
			  . "FROM items WHERE site = 'ams' AND id > $at_ddl"),
		't', 'sjc: rows without the added column got its default');
});
ddl_step($ams, $sjc, 'CREATE INDEX items_n_idx ON items (n)');
ddl_step($sjc, $ams, 'ALTER TABLE items ALTER COLUMN n TYPE bigint', sub {
	my ($caller, $other, $at_ddl) = @_;
	ok($caller->poll_query_until('postgres',
			"SELECT count(*) > 0 FROM items WHERE site = 'ams' AND id > $at_ddl AND n > 0"),
		'sjc: updates of n that ams wrote as int apply to the bigint column');
});
ddl_step($ams, $sjc, 'ALTER TABLE items DROP COLUMN v', sub {
	my ($caller, $other, $at_ddl) = @_;
	is($other->safe_psql('postgres',
			"SELECT count(*) > 0 FROM items WHERE site = 'sjc' AND id > $at_ddl AND v = 'old'"),
		't', 'sjc wrote rows with v meanwhile; ams discarded that value');
});

# Writes go on for a while in the new shape, then stop.
my %before = map { site_name($_) => own_rows($sjc, $_) } ($sjc, $ams);
ok($sjc->poll_query_until('postgres',
		"SELECT count(*) > $before{ams} + 20 FROM items WHERE site = 'ams'"),
	'rows keep flowing after the last command');
stop_writer($_) for @writers;
wait_synced($sjc, $ams);

my $shape = q{SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
  FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped};
is(same_on_both($sjc, $ams, $shape, 'the same columns on both sites'),
	'id bigint, site text, n bigint, extra text', 'with n bigint, extra added and v dropped');
same_on_both($sjc, $ams,
	"SELECT count(*) FROM pg_indexes WHERE indexname = 'items_n_idx'", 'the index on both sites');
ok($sjc->safe_psql('postgres', 'SELECT count(*) FROM items') > 200, 'hundreds of rows written');
exactly_once($sjc, $ams, 'items');
is($ams->safe_psql('postgres', "SELECT count(*) FROM items WHERE extra IS DISTINCT FROM 'dflt'"),
	'0', 'every row has the default of the added column on ams too');
is(same_on_both($sjc, $ams, 'SELECT sum(n) FROM items', 'the same updates on both sites') > 0,
	1, 'updates counted on both');
verify_all($_) for ($sjc, $ams);
for my $n ($sjc, $ams)
{
	is($n->safe_psql('postgres', 'SELECT count(*) FROM gsb.ddl_log'), '4',
		site_name($n) . ': gsb.ddl_log holds the four commands');
	is($n->safe_psql('postgres', "SELECT count(*) FROM gsb.status WHERE state <> 'streaming'"), '0',
		site_name($n) . ': streaming');
}
check_logs($sjc, $ams);
done_testing();
