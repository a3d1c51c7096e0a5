# 321_attack_truncate.pl: a table owner cannot use the apply worker's rights,
# and a TRUNCATE from the peer touches only what was truncated there.
#
# 1. On ams, the non-superuser `tenant` owns a replicated table and plants a
#    BEFORE TRUNCATE trigger, ENABLE ALWAYS, that tries to make tenant a
#    superuser. sjc truncates the table. The trigger must run as tenant (or
#    not at all), and tenant must stay an ordinary role.
# 2. On ams only, a local table has a foreign key to a replicated table. sjc
#    runs TRUNCATE ... CASCADE on the replicated one. The local table keeps its
#    rows: the truncate cannot apply, which is an apply error in gsb.status
#    (never a silent cascade); once the operator removes the reference, it
#    applies by itself and nothing else is lost.
# 3. An ENABLE ALWAYS deferred constraint trigger on ams (it cannot fire in
#    the worker's restricted context): gsb.status names the trigger in a clear
#    error; once it is dropped, the change applies.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $sjc = new_site('sjc', 'primary');
my $ams = new_site('ams', 'backup', log_min_messages => 'log');
for my $node ($sjc, $ams)
{
	$node->safe_psql('postgres', q{
CREATE ROLE tenant NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO tenant;
CREATE TABLE public.t1 (id int PRIMARY KEY, v text);
ALTER TABLE public.t1 OWNER TO tenant;
CREATE TABLE public.parent (id int PRIMARY KEY);
CREATE TABLE public.d1 (id int PRIMARY KEY, v text);
SELECT gsb.replicate_table('public.t1');
SELECT gsb.replicate_table('public.parent');
SELECT gsb.replicate_table('public.d1');});
}
connect_sites($sjc, $ams);

########################################################################
# 1. A TRUNCATE trigger of the owner's.
########################################################################
$ams->safe_psql('postgres', q{
SET ROLE tenant;
CREATE FUNCTION public.t1_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 't1_truncated ran as %', current_user;
    BEGIN
        EXECUTE 'ALTER ROLE tenant SUPERUSER';
        RAISE LOG 't1_truncated made tenant a superuser';
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 't1_truncated could not escalate: %', SQLERRM;
    END;
    RETURN NULL;
END $$;
CREATE TRIGGER t1_truncate BEFORE TRUNCATE ON public.t1
    FOR EACH STATEMENT EXECUTE FUNCTION public.t1_truncated();
ALTER TABLE public.t1 ENABLE ALWAYS TRIGGER t1_truncate;
RESET ROLE;});
$sjc->safe_psql('postgres', "INSERT INTO public.t1 SELECT g, 'x' FROM generate_series(1, 10) g");
wait_synced($sjc, $ams);
my $from = -s $ams->logfile;
$sjc->safe_psql('postgres', 'TRUNCATE public.t1');
$sjc->safe_psql('postgres', "INSERT INTO public.t1 VALUES (100, 'after')");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT string_agg(id::text, \',\') FROM public.t1'), '100',
	'the truncate and the row after it arrived on ams');
my $log = slurp_file($ams->logfile, $from);
my %ran_as = map { $_ => 1 } ($log =~ /t1_truncated ran as (\S+)/g);
is(join(',', sort keys %ran_as), 'tenant', "the owner's TRUNCATE trigger ran as the owner");
unlike($log, qr/t1_truncated made tenant a superuser/, 'the trigger could not alter a role');
is($ams->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'tenant'"), 'f',
	'tenant is still not a superuser');

########################################################################
# 2. TRUNCATE ... CASCADE from the peer does not cascade here.
########################################################################
$sjc->safe_psql('postgres', 'INSERT INTO public.parent SELECT generate_series(1, 5)');
wait_synced($sjc, $ams);
$ams->safe_psql('postgres', q{
CREATE TABLE public.local_child (id int PRIMARY KEY, parent_id int REFERENCES public.parent);
INSERT INTO public.local_child VALUES (1, 1), (2, 2);});
$sjc->safe_psql('postgres', 'TRUNCATE public.parent CASCADE');
$sjc->safe_psql('postgres', "INSERT INTO public.d1 VALUES (1, 'behind the truncate')");
ok( $ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error LIKE '%parent%' FROM gsb.status WHERE peer = 'sjc'"),
	'the truncate that cannot apply is an apply error in gsb.status, naming the table');
my $st = status_row($ams, 'sjc');
note("gsb.status last_error: $st->{last_error}");
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.local_child'), '2',
	'the local table that references it keeps its rows (no cascade)');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.parent'), '5',
	'the replicated table is not truncated either (the transaction waits)');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.d1'), '0',
	'nothing behind it is applied meanwhile');
$ams->safe_psql('postgres',
	'ALTER TABLE public.local_child DROP CONSTRAINT local_child_parent_id_fkey');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.parent'), '0',
	'once the reference is gone, the truncate applies by itself');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.d1'), '1', '... and what came after it');
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.local_child'), '2',
	'the local table still has its rows');

########################################################################
# 3. An ENABLE ALWAYS deferred constraint trigger.
########################################################################
$ams->safe_psql('postgres', q{
CREATE FUNCTION public.d1_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER d1_deferred AFTER INSERT ON public.d1
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.d1_check();
ALTER TABLE public.d1 ENABLE ALWAYS TRIGGER d1_deferred;});
$sjc->safe_psql('postgres', "INSERT INTO public.d1 VALUES (2, 'meets a deferred trigger')");
ok( $ams->poll_query_until('postgres',
		"SELECT state = 'error' AND last_error LIKE '%d1_deferred%' FROM gsb.status WHERE peer = 'sjc'"),
	'gsb.status names the deferred trigger that stops the apply');
note('gsb.status last_error: ' . status_row($ams, 'sjc')->{last_error});
$ams->safe_psql('postgres', 'DROP TRIGGER d1_deferred ON public.d1');
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', 'SELECT count(*) FROM public.d1'), '2',
	'once the trigger is gone, the row applies');
same_on_both($sjc, $ams, "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM public.d1",
	'd1 is the same on both sites');

check_logs($sjc, $ams);
done_testing();
