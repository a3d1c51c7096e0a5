# 307_values.pl: values and shapes of transactions that stress apply.
#
# - TOAST: five rows with two 1 MB values each (one text, one bytea, stored
#   out of line); updates that touch only other columns (the unchanged TOAST
#   values are not in the WAL again), then updates of one of them.
# - A huge transaction: 200,000 rows in one INSERT.
# - Many tables: 50 replicated tables written in one transaction.
# - Triggers on the target: an ordinary trigger does not fire on apply (the
#   apply worker runs as a replica); an ENABLE ALWAYS trigger does, as with
#   PostgreSQL's own logical replication. What happens is asserted and printed.
# - Foreign keys on the target (parent/child), and TRUNCATE ... CASCADE from
#   the parent on the sending site, which truncates both replicated tables.
# Everything arrives: digests equal on both sites, gsb.verify() says match.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $NTABLES = 50;
my $sjc = new_site('sjc', 'primary', extra_conf => 'log_statement = none');
my $ams = new_site('ams', 'backup', extra_conf => 'log_statement = none');

my $schema = q{
CREATE TABLE toasty (id int PRIMARY KEY, n int, t text, b bytea);
ALTER TABLE toasty ALTER t SET STORAGE EXTERNAL, ALTER b SET STORAGE EXTERNAL;
CREATE TABLE huge (id int PRIMARY KEY, v text);
CREATE TABLE parent (id int PRIMARY KEY, v text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id), v text);
CREATE TABLE trig_t (id int PRIMARY KEY, v text);
CREATE TABLE trig_log (kind text, id int);
CREATE FUNCTION log_ordinary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.trig_log VALUES ('ordinary', NEW.id); RETURN NEW; END $$;
CREATE FUNCTION log_always() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.trig_log VALUES ('always', NEW.id); RETURN NEW; END $$;
CREATE TRIGGER t_ordinary AFTER INSERT ON trig_t FOR EACH ROW EXECUTE FUNCTION log_ordinary();
CREATE TRIGGER t_always AFTER INSERT ON trig_t FOR EACH ROW EXECUTE FUNCTION log_always();
ALTER TABLE trig_t ENABLE ALWAYS TRIGGER t_always;
SELECT gsb.replicate_table(t) FROM unnest(ARRAY['toasty', 'huge', 'parent', 'child', 'trig_t']) t;
};
$schema .= join('', map {
	"CREATE TABLE many_$_ (id int PRIMARY KEY, v text); SELECT gsb.replicate_table('many_$_');\n"
} 1 .. $NTABLES);
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

########################################################################
# TOAST.
########################################################################
$sjc->safe_psql('postgres', q{
INSERT INTO toasty
SELECT i, 0,
       (SELECT string_agg(md5(i || '-' || g), '') FROM generate_series(1, 32768) g),
       (SELECT decode(string_agg(md5('b' || i || '-' || g), ''), 'hex') FROM generate_series(1, 65536) g)
  FROM generate_series(1, 5) i;
});
is($sjc->safe_psql('postgres', 'SELECT min(length(t)) || \'/\' || min(length(b)) FROM toasty'),
	'1048576/1048576', 'sjc: five rows with a 1 MB text and a 1 MB bytea each');
my $toast = $sjc->safe_psql('postgres', "SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'toasty'::regclass");
cmp_ok($sjc->safe_psql('postgres', "SELECT pg_relation_size('$toast')"), '>', 10_000_000,
	'sjc: the values are stored out of line (TOAST table over 10 MB)');
wait_synced($sjc, $ams);
my $toast_digest = "SELECT string_agg(id || ':' || n || ':' || md5(t) || ':' || md5(b), ',' ORDER BY id) FROM toasty";
same_on_both($sjc, $ams, $toast_digest, 'TOAST: the 1 MB values arrive intact');

# Updates of another column only: the unchanged TOAST values stay.
$sjc->safe_psql('postgres', 'UPDATE toasty SET n = n + 1');
$ams->safe_psql('postgres', 'UPDATE toasty SET n = n + 10 WHERE id = 3');
wait_synced($sjc, $ams);
# An update of one TOASTed column, leaving the other.
$ams->safe_psql('postgres', "UPDATE toasty SET t = repeat('x', 1048576) WHERE id = 2");
$sjc->safe_psql('postgres', "UPDATE toasty SET b = decode(repeat('ab', 1048576), 'hex'), n = n + 100 WHERE id = 4");
wait_synced($sjc, $ams);
my $td = same_on_both($sjc, $ams, $toast_digest, 'TOAST: identical after updates of other columns and of one TOASTed column');
is($sjc->safe_psql('postgres', "SELECT n || ' ' || length(t) || ' ' || (t = repeat('x', 1048576)) || ' ' || md5(b) FROM toasty WHERE id = 2"),
	'1 1048576 true ' . $ams->safe_psql('postgres', "SELECT md5(b) FROM toasty WHERE id = 2"),
	'TOAST: sjc: row 2 has the new text from ams and the bytea both had');
is($ams->safe_psql('postgres', "SELECT n || ' ' || md5(t) || ' ' || (b = decode(repeat('ab', 1048576), 'hex')) FROM toasty WHERE id = 4"),
	'101 ' . $sjc->safe_psql('postgres', "SELECT md5(t) FROM toasty WHERE id = 4") . ' true',
	'TOAST: row 4 has the new bytea and the old text');
is($sjc->safe_psql('postgres', 'SELECT n FROM toasty WHERE id = 3'), '11', 'TOAST: updates from ams arrived on sjc');
exactly_once($sjc, $ams, 'toasty');

########################################################################
# A huge transaction.
########################################################################
$sjc->safe_psql('postgres', "INSERT INTO huge SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM huge'), '200000', 'huge: 200,000 rows in one transaction arrived');
exactly_once($sjc, $ams, 'huge');

########################################################################
# Many tables in one transaction.
########################################################################
$ams->safe_psql('postgres', "BEGIN;\n"
	  . join('', map { "INSERT INTO many_$_ SELECT g, '$_/' || g FROM generate_series(1, 100) g;\n" } 1 .. $NTABLES)
	  . "COMMIT;");
wait_synced($sjc, $ams);
my $union = join(' UNION ALL ', map { "SELECT '$_' AS t, md5(string_agg(x::text, ',' ORDER BY id)) AS h, count(*) AS c FROM many_$_ x" } 1 .. $NTABLES);
same_on_both($sjc, $ams, "SELECT string_agg(t || ':' || c || ':' || h, ',' ORDER BY t) FROM ($union) s",
	"many: all $NTABLES tables written in one transaction on ams are identical on sjc");
is($sjc->safe_psql('postgres', "SELECT sum(c) FROM ($union) s"), 100 * $NTABLES, "many: sjc has all " . 100 * $NTABLES . ' rows');

########################################################################
# Triggers on the target.
########################################################################
$sjc->safe_psql('postgres', "INSERT INTO trig_t VALUES (1, 'from sjc')");
wait_synced($sjc, $ams);
my $fired = $ams->safe_psql('postgres', "SELECT coalesce(string_agg(kind || ':' || id, ',' ORDER BY kind), '') FROM trig_log");
note("ams: triggers that fired when the row from sjc was applied: '$fired'");
is($fired, 'always:1', 'trigger: on apply, the ENABLE ALWAYS trigger fires and the ordinary one does not');
is($sjc->safe_psql('postgres', "SELECT string_agg(kind || ':' || id, ',' ORDER BY kind) FROM trig_log"),
	'always:1,ordinary:1', 'trigger: both fired where the row was written');
exactly_once($sjc, $ams, 'trig_t');

########################################################################
# Foreign keys, and TRUNCATE ... CASCADE.
########################################################################
$sjc->safe_psql('postgres', q{
BEGIN;
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 100) g;
INSERT INTO child SELECT g, (g % 100) + 1, 'c' || g FROM generate_series(1, 1000) g;
COMMIT;
});
$ams->safe_psql('postgres', q{
INSERT INTO parent VALUES (1001, 'p on ams');
INSERT INTO child VALUES (10001, 1001, 'c on ams');
});
wait_synced($sjc, $ams);
for my $n ($sjc, $ams)
{
	is($n->safe_psql('postgres',
			'SELECT (SELECT count(*) FROM parent) || \'/\' || (SELECT count(*) FROM child) || \'/\' ||'
			  . ' (SELECT count(*) FROM child c LEFT JOIN parent p ON p.id = c.parent_id WHERE p.id IS NULL)'),
		'101/1001/0', site_name($n) . ': parent and child rows arrived, no orphan');
}
exactly_once($sjc, $ams, 'parent');
exactly_once($sjc, $ams, 'child');

$sjc->safe_psql('postgres', 'TRUNCATE parent CASCADE');
is($sjc->safe_psql('postgres', 'SELECT (SELECT count(*) FROM parent) + (SELECT count(*) FROM child)'), '0',
	'sjc: TRUNCATE parent CASCADE emptied parent and child');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT (SELECT count(*) FROM parent) || \'/\' || (SELECT count(*) FROM child)'), '0/0',
	'ams: the cascaded TRUNCATE emptied both tables there too');
$ams->safe_psql('postgres', "INSERT INTO parent VALUES (1, 'after'); INSERT INTO child VALUES (1, 1, 'after');");
wait_synced($sjc, $ams);
is($sjc->safe_psql('postgres', 'SELECT p.v || c.v FROM parent p JOIN child c ON c.parent_id = p.id'), 'afterafter',
	'rows written after the TRUNCATE replicate');
exactly_once($sjc, $ams, 'parent');
exactly_once($sjc, $ams, 'child');

verify_all($_) for ($sjc, $ams);
check_logs($sjc, $ams);
figures(5);
done_testing();
