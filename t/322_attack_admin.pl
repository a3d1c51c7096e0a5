# 322_attack_admin.pl: what a gsb_admin member or a table owner could do with
# gsb's rights, tried; each must fail without giving anyone more rights.
#
# 1. A table owner turns a registered (realtime) and a registered (daily)
#    table into views whose SELECT runs the owner's function, which tries to
#    make its owner a superuser. gsb.verify() on either site, the daily copy
#    (gsb.sync_config() on the backup) and the initial copy of a site that
#    adds sjc must refuse the relation (not a plain table) and never read it
#    with a superuser's rights.
# 2. A gsb_admin member plants a temporary table gsb_sync_rows with an
#    ENABLE ALWAYS trigger, then calls gsb.sync_config(): the trigger must not
#    run with gsb's rights (gsb never looks up objects a caller can create).
# 3. A gsb_admin member registers a table it does not own (42501), and adds a
#    peer whose conninfo makes the server log in with its own credentials (no
#    password): refused.
# 4. A peer named 'evil' that claims to be a primary is added on the backup:
#    refused, and the backup's active site stays sjc (active_site only ever
#    names a known site).
# 5. A failed gsb.add_peer with a password in its conninfo leaves no password
#    in the server log.
# 6. CREATE EXTENSION refuses a role gsb_admin that gsb did not make (one with
#    LOGIN, made beforehand by someone with CREATEROLE).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Statement logging is off, as on a production server: a password that
# reaches the log must come from gsb, not from log_statement = all.
my %conf = (extra_conf => 'log_statement = none');
my $sjc = new_site('sjc', 'primary', %conf);
my $ams = new_site('ams', 'backup', %conf);
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE ROLE tenant LOGIN;
CREATE ROLE mallory LOGIN IN ROLE gsb_admin;
GRANT USAGE, CREATE ON SCHEMA public TO tenant;
CREATE TABLE public.victim (id int PRIMARY KEY, v text);
CREATE TABLE public.dvictim (id int PRIMARY KEY, v text);
ALTER TABLE public.victim OWNER TO tenant;
ALTER TABLE public.dvictim OWNER TO tenant;
SELECT gsb.replicate_table('public.victim');
SELECT gsb.replicate_table('public.dvictim', 'daily');
CREATE SCHEMA private;
CREATE TABLE private.payroll (id int PRIMARY KEY, salary int);
CREATE TABLE public.admin_only (id int PRIMARY KEY);});
}
connect_sites($sjc, $ams);

sub is_super
{
	my ($node, $role) = @_;
	return $node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'");
}

########################################################################
# 1. Registered tables turned into views.
########################################################################
$sjc->safe_psql('postgres', q{
CREATE FUNCTION public.steal() RETURNS TABLE (id int, v text) LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'steal ran as %', current_user;
    BEGIN
        EXECUTE 'ALTER ROLE tenant SUPERUSER';
        RAISE LOG 'steal made tenant a superuser';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN QUERY SELECT 1, 'x'::text;
END $$;
ALTER FUNCTION public.steal() OWNER TO tenant;});
for my $t (qw(victim dvictim))
{
	# The owner may drop triggers on its table, gsb's fence trigger too (a
	# table with triggers cannot become a view): an attacker does so first.
	$sjc->safe_psql('postgres',
		"SET ROLE tenant; DROP TRIGGER IF EXISTS gsb_fence_writes ON public.$t;"
		  . " ALTER TABLE public.$t DROP CONSTRAINT ${t}_pkey");
	$sjc->safe_psql('postgres', "VACUUM public.$t");
	$sjc->safe_psql('postgres',
		"SET ROLE tenant; CREATE RULE \"_RETURN\" AS ON SELECT TO public.$t DO INSTEAD SELECT * FROM public.steal()");
	is($sjc->safe_psql('postgres', "SELECT relkind FROM pg_class WHERE oid = 'public.$t'::regclass"),
		'v', "sjc: tenant turned $t into a view");
}
my $from = -s $sjc->logfile;
my ($rc, $out, $err) = psql_verbose($sjc, "SELECT status FROM gsb.verify('public.victim')");
isnt($rc, 0, 'sjc: gsb.verify() of the view fails');
like($err, qr/42809|not a (plain )?table/, '... as not a table') or diag($err);
($rc, $out, $err) = psql_verbose($ams, "SELECT status FROM gsb.verify('public.victim')");
isnt($rc, 0, 'ams: gsb.verify() of a relation that is a view on the peer fails');
($rc, $out, $err) = psql_verbose($ams, 'SELECT gsb.sync_config()');
isnt($rc, 0, 'ams: the daily copy refuses a daily relation that is a view on the primary');
like($err, qr/dvictim/, '... naming it') or diag($err);
# The initial copy of a site that adds sjc as its peer reads sjc's tables
# through its own session on sjc (a superuser's): it refuses the view.
my $copier = new_site('copier', 'backup');
$copier->safe_psql('postgres', q{
CREATE TABLE public.victim (id int PRIMARY KEY, v text);
CREATE TABLE public.dvictim (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('public.victim');
SELECT gsb.replicate_table('public.dvictim', 'daily');});
add_peer($copier, $sjc);
ok( $copier->poll_query_until('postgres',
		"SELECT last_error LIKE '%victim%not a plain table%' FROM gsb.status WHERE peer = 'sjc'"),
	"copier: the initial copy refuses sjc's registered relation that is a view")
  or diag('copier gsb.status: ' . $copier->safe_psql('postgres', 'SELECT state, last_error FROM gsb.status'));
is($copier->safe_psql('postgres', 'SELECT count(*) FROM public.victim'), '0',
	'copier: nothing was copied from the view');
$copier->stop('immediate');

my $log = slurp_file($sjc->logfile, $from);
unlike($log, qr/steal ran as postgres/, "sjc: the view's function never ran as the superuser");
unlike($log, qr/steal made tenant a superuser/, 'sjc: ... and never escalated');
is(is_super($sjc, 'tenant'), 'f', 'sjc: tenant is still not a superuser');

########################################################################
# 2. A planted temporary table in the daily copy.
########################################################################
$sjc->safe_psql('postgres', 'SELECT gsb.unreplicate_table(\'public.dvictim\')');
$ams->safe_psql('postgres', 'SELECT gsb.unreplicate_table(\'public.dvictim\')');
$sjc->safe_psql('postgres', "INSERT INTO gsb.site_config VALUES ('k1', 'v1') ON CONFLICT DO NOTHING");
($rc, $out, $err) = $ams->psql('postgres', q{
CREATE TEMP TABLE gsb_sync_rows (tbl text, row_json text);
CREATE FUNCTION pg_temp.plant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'plant ran as %', current_user;
    BEGIN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN NEW;
END $$;
CREATE TRIGGER plant BEFORE INSERT ON gsb_sync_rows FOR EACH ROW EXECUTE FUNCTION pg_temp.plant();
ALTER TABLE gsb_sync_rows ENABLE ALWAYS TRIGGER plant;
SELECT gsb.sync_config();}, extra_params => [ '-U', 'mallory' ]);
note("sync_config as mallory with a planted table: rc $rc, $err");
is(is_super($ams, 'mallory'), 'f', 'ams: mallory is still not a superuser');
unlike(slurp_file($ams->logfile), qr/plant ran as postgres/,
	"ams: the planted trigger never ran with gsb's rights");
is($ams->safe_psql('postgres', "SELECT value FROM gsb.site_config WHERE key = 'k1'"), 'v1',
	'ams: the daily copy itself still works (as a superuser)')
  if $ams->safe_psql('postgres', 'SELECT gsb.sync_config() >= 1') eq 't';

########################################################################
# 3. gsb_admin reaches beyond its tables.
########################################################################
($rc, $out, $err) = $sjc->psql('postgres', "\\set VERBOSITY verbose\nSELECT gsb.replicate_table('private.payroll')",
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, 'mallory cannot register a table she does not own');
like($err, qr/42501/, '... insufficient_privilege') or diag($err);
my $oid = $sjc->safe_psql('postgres', "SELECT 'private.payroll'::regclass::oid");
($rc, $out, $err) = $sjc->psql('postgres', "\\set VERBOSITY verbose\nSELECT gsb.replicate_table(${oid}::oid::regclass)",
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, '... not even through its OID, in a schema she may not use');
like($err, qr/42501/, '... insufficient_privilege') or diag($err);
($rc, $out, $err) = $sjc->psql('postgres', "\\set VERBOSITY verbose\nSELECT gsb.replicate_table('public.admin_only')",
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, '... nor a superuser\'s table in a schema she may use');
like($err, qr/42501/, '... insufficient_privilege') or diag($err);
is($sjc->safe_psql('postgres',
	"SELECT count(*) FROM gsb.tables WHERE relid IN ($oid, 'public.admin_only'::regclass)"), '0',
	'neither table is registered');

my $lab = new_site('lab', 'backup');
my $lab_conn = sql_quote($lab->connstr('postgres') . ' user=postgres');
($rc, $out, $err) = $sjc->psql('postgres', "\\set VERBOSITY verbose\nSELECT gsb.add_peer('lab', $lab_conn)",
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, "mallory cannot add a peer that the server reaches with its own credentials");
like($err, qr/password/i, '... the error says a password is needed') or diag($err);
# With a password in the conninfo, but a peer that lets the server in
# without asking for it (trust): still the server's credentials.
$lab_conn = sql_quote($lab->connstr('postgres') . ' user=postgres password=ignored');
($rc, $out, $err) = $sjc->psql('postgres', "\\set VERBOSITY verbose\nSELECT gsb.add_peer('lab', $lab_conn)",
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, '... nor one that lets the server in without asking for the password');
like($err, qr/did not ask|without asking/i, '... the error says so') or diag($err);
is($sjc->safe_psql('postgres', "SELECT count(*) FROM gsb.peers WHERE name = 'lab'"), '0',
	'no peer lab was added');

########################################################################
# 4. A second primary named 'evil' on the backup.
########################################################################
my $evil = new_site('evil', 'primary');
$evil->safe_psql('postgres', q{
CREATE TABLE public.victim (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('public.victim');});
($rc, $out, $err) = psql_verbose($ams,
	"SELECT gsb.add_peer('evil', " . sql_quote(peer_connstr($evil)) . ", copy_data => false)");
isnt($rc, 0, 'ams (backup): a second primary peer is refused');
note($err);
is($ams->safe_psql('postgres', 'SELECT gsb.active_site()'), 'sjc', "ams: the active site is still sjc");
$ams->safe_psql('postgres', "SELECT gsb.drop_peer('evil')") if $rc == 0;

########################################################################
# 5. No password in the server log.
########################################################################
$from = -s $sjc->logfile;
my $secret = 'hunter2-' . int(rand(1e9));
($rc, $out, $err) = psql_verbose($sjc,
	"SELECT gsb.add_peer('zz', 'host=127.0.0.1 port=1 dbname=postgres password=$secret')");
isnt($rc, 0, 'a failing add_peer with a password');
note($err);
$log = slurp_file($sjc->logfile, $from);
unlike($log, qr/\Q$secret\E/, 'the password is not in the server log');
like($log, qr/ERROR/, '... which does log the error');

########################################################################
# 6. A gsb_admin role that gsb did not make.
########################################################################
my $fresh = new_site('fresh', 'primary', no_init => 1);
$fresh->safe_psql('postgres', "CREATE ROLE gsb_admin LOGIN PASSWORD 'planted'");
($rc, $out, $err) = psql_verbose($fresh, 'CREATE EXTENSION gsb');
isnt($rc, 0, 'CREATE EXTENSION refuses a pre-existing gsb_admin with LOGIN');
like($err, qr/gsb_admin/, '... naming the role') or diag($err);
$fresh->safe_psql('postgres',
	'DROP EXTENSION IF EXISTS gsb CASCADE; DROP OWNED BY gsb_admin; DROP ROLE gsb_admin');
($rc, $out, $err) = psql_verbose($fresh, 'CREATE EXTENSION gsb; DROP EXTENSION gsb; CREATE EXTENSION gsb');
is($rc, 0, 'a gsb_admin that gsb made itself is taken again (extension re-created)') or diag($err);

check_logs($sjc, $ams);
done_testing();
