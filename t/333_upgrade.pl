# 333_upgrade.pl: ALTER EXTENSION gsb UPDATE from the released 0.1 to 0.2.
#
# 1. The catalog: 0.1 installed (the frozen released script) and updated to
#    0.2 has every object, property, right and built-in row that a fresh 0.2
#    install has, and nothing else (t/GsbUpgrade.pm describes both; a
#    difference names the object and how it differs). The comparison itself
#    is checked first: each kind of difference made by hand to a fresh
#    install is found and named.
# 2. With data, peers and replication running: two sites at 0.1 with rows in
#    built-in and user tables and a peer link streaming both ways, writers
#    busy on both sites; the backup is updated, then the primary. Every row
#    written before, during and after each update is on both sites exactly
#    once, replication flows both ways in the mixed state and after, and each
#    updated site's catalog is that of a fresh 0.2 install.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbUpgrade;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $OLD = '0.1';
my $NEW = '0.2';

########################################################################
# 1. The catalog of an updated install is that of a fresh one.
########################################################################
my $one = new_site('one', 'primary', no_init => 1);
$one->safe_psql('postgres', "CREATE DATABASE $_") for qw(updated fresh mutated);

is( $one->safe_psql('postgres',
		"SELECT default_version FROM pg_available_extensions WHERE name = 'gsb'"),
	$NEW, "gsb.control's default version is $NEW");
is( $one->safe_psql('postgres',
		"SELECT string_agg(source || '->' || target || ': ' || path, ', ' ORDER BY source, target)"
		  . " FROM pg_extension_update_paths('gsb') WHERE path IS NOT NULL"),
	"$OLD->$NEW: $OLD--$NEW",
	"the one update path is $OLD to $NEW, by one script");

$one->safe_psql('updated', "CREATE EXTENSION gsb VERSION '$OLD'");
is($one->safe_psql('updated', "SELECT extversion FROM pg_extension WHERE extname = 'gsb'"),
	$OLD, "gsb $OLD installs from the released script with the new gsb.so");
my $at_old = catalog_of($one, 'updated', rows => 1);
# One session, three transactions: the library's version check
# (catalog::ExtensionVersionAtLeast) reads the catalog again in the
# transaction after the update.
is( $one->safe_psql('updated',
		"SELECT gsb.selftest_extension_version('$NEW');"
		  . " ALTER EXTENSION gsb UPDATE TO '$NEW';"
		  . " SELECT gsb.selftest_extension_version('$NEW');"),
	"$OLD, at least $NEW: false\n$NEW, at least $NEW: true",
	"the library's version check answers $OLD, then $NEW in the same session after the update");
is($one->safe_psql('updated', "SELECT extversion FROM pg_extension WHERE extname = 'gsb'"),
	$NEW, "ALTER EXTENSION gsb UPDATE TO '$NEW' succeeds");
$one->safe_psql('fresh', 'CREATE EXTENSION gsb');
my $fresh = catalog_of($one, 'fresh', rows => 1);
is($fresh->{'extension gsb: version'}, $NEW, "a fresh install is at $NEW");
ok(exists $fresh->{'function gsb.verify(regclass): body'}
	  && exists $fresh->{'table gsb.site: column name'}
	  && exists $fresh->{'view gsb.status: definition'}
	  && exists $fresh->{'event trigger gsb_sql_drop'}
	  && exists $fresh->{'table gsb.tables: rows'}
	  && exists $fresh->{'function gsb.next_id(regclass): acl'},
	'the description covers functions, columns, views, event triggers, rows and rights')
  or diag(join("\n", sort keys %$fresh));

same_catalog("$OLD updated to $NEW", catalog_of($one, 'updated', rows => 1),
	"fresh $NEW", $fresh, "$OLD updated to $NEW: the same catalog as a fresh $NEW install");

# The comparison finds and names each kind of difference. Made by hand to a
# fresh install; each expected key must be reported.
$one->safe_psql('mutated', 'CREATE EXTENSION gsb');
$one->safe_psql('mutated', q{
ALTER FUNCTION gsb.site_role() VOLATILE;
ALTER FUNCTION gsb.site_role() SET work_mem = '1MB';
ALTER FUNCTION gsb.next_id(regclass) SECURITY INVOKER;
GRANT EXECUTE ON FUNCTION gsb.verify(regclass) TO PUBLIC;
CREATE OR REPLACE FUNCTION gsb.site_name() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'changed' $$;
ALTER EXTENSION gsb DROP FUNCTION gsb.active_site();
ALTER TABLE gsb.site_config ADD COLUMN note text;
ALTER TABLE gsb.custom_pages ALTER content SET DEFAULT 'x';
ALTER TABLE gsb.client_versions ADD CONSTRAINT version_short CHECK (length(version) < 100);
CREATE INDEX usage_site_idx ON gsb.usage (site);
CREATE TRIGGER no_noop BEFORE UPDATE ON gsb.site_config
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE OR REPLACE VIEW gsb.replicated_tables AS
    SELECT t.relid::regclass AS relation, t.mode, t.registered_at, 1 AS extra FROM gsb.tables t;
ALTER SEQUENCE gsb.usage_id_seq INCREMENT 2;
ALTER EVENT TRIGGER gsb_sql_drop DISABLE;
ALTER TABLE gsb.tables RESET (user_catalog_table);
CREATE TYPE gsb.mood AS ENUM ('ok');
ALTER EXTENSION gsb ADD TYPE gsb.mood;
CREATE TYPE gsb.stray AS (a int);
INSERT INTO gsb.site_config VALUES ('k', 'v');
UPDATE pg_extension SET extconfig = ARRAY['gsb.custom_pages'::regclass::oid], extcondition = ARRAY['']
 WHERE extname = 'gsb';
DELETE FROM pg_init_privs WHERE objoid = 'gsb.site'::regclass AND classoid = 'pg_class'::regclass;
});
my @found = catalog_differences('mutated', catalog_of($one, 'mutated', rows => 1), "fresh $NEW", $fresh);
my $found = join("\n", @found);
for my $want (
	'function gsb.site_role(): volatility: mutated has: volatile',
	'function gsb.site_role(): config (SET): mutated has: search_path=pg_catalog, pg_temp, work_mem=1MB',
	'function gsb.next_id(regclass): security definer: mutated has: false',
	'function gsb.verify(regclass): acl: mutated has: postgres=EXECUTE by postgres, gsb_admin=EXECUTE by postgres, PUBLIC=EXECUTE',
	"function gsb.site_name(): body: mutated has:  SELECT 'changed' \n    fresh $NEW has:  SELECT (gsb._site()).name ",
	"function gsb.active_site(): returns: only in fresh $NEW: text",
	'not a member of the extension: function gsb.active_site(): only in mutated',
	'table gsb.site_config: column note: only in mutated: #3 text',
	"table gsb.custom_pages: column content: mutated has: #2 text DEFAULT 'x'::text",
	'table gsb.client_versions: constraint version_short: only in mutated: CHECK',
	'table gsb.usage: index usage_site_idx: only in mutated: CREATE INDEX usage_site_idx ON gsb.usage USING btree (site)',
	'table gsb.site_config: trigger no_noop: only in mutated',
	'view gsb.replicated_tables: column extra: only in mutated: #4 integer',
	"view gsb.replicated_tables: definition: differs (- mutated, + fresh $NEW)",
	'sequence gsb.usage_id_seq: parameters: mutated has: bigint start 1 increment 2',
	'event trigger gsb_sql_drop: mutated has: on sql_drop execute gsb._on_sql_drop() tags all (enabled D',
	"table gsb.tables: options: mutated has: \n    fresh $NEW has: user_catalog_table=true",
	"type gsb.mood: only in mutated: e labels 'ok'",
	'not a member of the extension: type gsb.stray: only in mutated',
	"table gsb.site_config: rows: mutated has: 1 rows: (k,v,)",
	"extension gsb: config table gsb.custom_pages: only in mutated: filter ''",
	'initial privileges of table gsb.site: only in fresh',
  )
{
	ok(index($found, $want) >= 0, "the comparison reports: " . (split /\n/, $want)[0])
	  or diag("not in:\n$found");
}
is(scalar(grep { /^table gsb\.accounts/ } @found), 0,
	'the comparison reports nothing about an object left alone (gsb.accounts)');

# And what the 0.1 install was: the update changed nothing of it yet (the
# pieces are the same), so the description of 0.1 differs from the fresh 0.2
# only in its version. When 0.2 brings new objects, this test lists them.
my @from_old = catalog_differences("$OLD as installed", $at_old, "fresh $NEW", $fresh);
note("what 0.1 lacks or has otherwise, before the update:\n" . join("\n", @from_old));
ok(scalar(grep { /^extension gsb: version: / } @from_old) == 1,
	"the description of the $OLD install shows its version");

########################################################################
# 2. With data, peers and replication running.
########################################################################
$one->stop;

my $schema = q{
CREATE TABLE items (id bigint PRIMARY KEY, site text NOT NULL, n int, note text);
SELECT gsb.replicate_table('items');
CREATE PROCEDURE write_load(site text, base bigint, n int) LANGUAGE plpgsql AS $$
DECLARE
    acc bigint;
BEGIN
    FOR i IN 1..n LOOP
        INSERT INTO items VALUES (base + i, site, i, md5(site || i));
        acc := gsb.create_account(site || '.' || base + i || '@example.com', 'user ' || i);
        PERFORM gsb.schedule_meeting(acc, 'meeting ' || i, now() + interval '1 day');
        COMMIT;
    END LOOP;
END
$$;
};
my $sjc = new_site_at('sjc', 'primary', $OLD);
my $ams = new_site_at('ams', 'backup', $OLD);
$_->safe_psql('postgres', $schema) for ($sjc, $ams);
connect_sites($sjc, $ams);

my %base = (sjc => 0, ams => 1_000_000);
my $per_round = 60;
my $rounds = 0;

# Writes $per_round rows on each site (items, accounts, meetings) while $during
# runs on the site given, then checks that both sites hold every row.
sub round_of_writes
{
	my ($label, $during_node, $during_sql) = @_;
	$rounds++;
	my @w;
	for my $n ($sjc, $ams)
	{
		my $name = site_name($n);
		my $from = $base{$name} + ($rounds - 1) * $per_round;
		push @w, [ $name, start_bg($n, "CALL write_load('$name', $from, $per_round);") ];
	}
	if ($during_node)
	{
		my ($rc, $out, $err) = psql_verbose($during_node, $during_sql);
		is($rc, 0, site_name($during_node) . ": $during_sql (while both sites write)") or diag($err);
	}
	for my $w (@w)
	{
		my ($ok, $err) = finish_bg($w->[1]);
		ok($ok, "$w->[0]: the writer of round '$label' finished") or diag($err);
	}
	wait_synced($sjc, $ams);
	my $each = $rounds * $per_round;
	for my $n ($sjc, $ams)
	{
		is( $n->safe_psql('postgres',
				"SELECT count(*) FILTER (WHERE site = 'sjc') || '/' || count(*) FILTER (WHERE site = 'ams')"
				  . " || '/' || count(DISTINCT id) FROM items"),
			"$each/$each/" . (2 * $each),
			site_name($n) . ": after '$label' every item from both sites, each once");
		is( $n->safe_psql('postgres',
				"SELECT count(*) FILTER (WHERE id % 16 = 1) || '/' || count(*) FILTER (WHERE id % 16 = 2) FROM gsb.accounts"),
			"$each/$each", site_name($n) . ": after '$label' accounts from both sites, each once");
	}
	for my $rel (qw(items gsb.accounts gsb.meetings))
	{
		is(table_digest($ams, $rel), table_digest($sjc, $rel), "after '$label': $rel the same on both sites");
	}
	for my $pair ([ $sjc, 'ams' ], [ $ams, 'sjc' ])
	{
		my $st = status_row(@$pair);
		is("$st->{state} $st->{last_error}", 'streaming ', site_name($pair->[0])
			  . ": after '$label' gsb.status shows the link from $pair->[1] streaming, no error");
	}
	return;
}

round_of_writes("both at $OLD");
round_of_writes("ams updated", $ams, "ALTER EXTENSION gsb UPDATE TO '$NEW'");
is(ext_version($ams), $NEW, "ams: gsb is at $NEW");
is(ext_version($sjc), $OLD, "sjc: gsb is still at $OLD");
round_of_writes("ams at $NEW, sjc at $OLD");
round_of_writes("sjc updated", $sjc, "ALTER EXTENSION gsb UPDATE TO '$NEW'");
is(ext_version($sjc), $NEW, "sjc: gsb is at $NEW");
round_of_writes("both at $NEW");

my ($rc, $out, $err) = psql_verbose($sjc, "SELECT relation || ' ' || status FROM gsb.verify() ORDER BY 1");
is($rc, 0, 'sjc: gsb.verify() runs after both updates') or diag($err);
my @verified = split /\n/, $out;
ok(@verified >= 4 && !grep({ !/ match$/ } @verified),
	'sjc: gsb.verify() finds every table the same on both sites') or diag($out);

# Each updated site's catalog is a fresh install's (a database of its own on
# sjc for the fresh one; rows are data here and are not compared).
$sjc->safe_psql('postgres', 'CREATE DATABASE fresh');
$sjc->safe_psql('fresh', 'CREATE EXTENSION gsb');
my $fresh_sjc = catalog_of($sjc, 'fresh');
same_catalog("sjc (updated with data)", catalog_of($sjc, 'postgres'), "fresh $NEW", $fresh_sjc,
	"sjc: the updated site's catalog is a fresh $NEW install's");
same_catalog("ams (updated with data)", catalog_of($ams, 'postgres'), "fresh $NEW", $fresh_sjc,
	"ams: the updated site's catalog is a fresh $NEW install's");

check_logs($sjc, $ams);
done_testing();
