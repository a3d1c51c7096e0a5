# 108_daily_copy_owner.pl: the daily copy runs a table owner's code with the
# owner's rights, never with gsb's (superuser) rights.
#
# On the backup, a non-superuser `tenant` owns a daily table whose unique
# index uses tenant's own function. That function logs current_user each
# time it runs. gsb.sync_config() (SECURITY DEFINER, owned by a superuser)
# must run it as tenant. An ordinary trigger tenant attached must not fire
# at all (the copy runs as a replica), and the rows still arrive.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbSites;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $schema = q{
CREATE ROLE tenant NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO tenant;
CREATE TABLE public.ran_as (who text, what text);
GRANT INSERT, SELECT ON public.ran_as TO tenant;
CREATE FUNCTION public.tenant_key(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    -- An immutable function cannot write: it tells the server log instead.
    RAISE LOG 'tenant_key ran as %', current_user;
    RETURN lower(t);
END
$$;
ALTER FUNCTION public.tenant_key(text) OWNER TO tenant;
CREATE TABLE public.tenant_cfg (k text PRIMARY KEY, v text);
ALTER TABLE public.tenant_cfg OWNER TO tenant;
CREATE FUNCTION public.tenant_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.ran_as VALUES (current_user, 'trigger');
    RETURN NEW;
END
$$;
ALTER FUNCTION public.tenant_trigger() OWNER TO tenant;
SELECT gsb.replicate_table('public.tenant_cfg', 'daily');
};
my ($sjc, $ams) = two_sites(failover_timeout => '0', schema => $schema);

# Only the backup's copy of the table carries the tenant's code.
$ams->safe_psql('postgres', q{
SET ROLE tenant;
CREATE UNIQUE INDEX tenant_cfg_lower ON public.tenant_cfg (public.tenant_key(k));
CREATE TRIGGER tenant_cfg_log BEFORE INSERT ON public.tenant_cfg
    FOR EACH ROW EXECUTE FUNCTION public.tenant_trigger();
RESET ROLE;
TRUNCATE public.ran_as;
});

$sjc->safe_psql('postgres', "INSERT INTO public.tenant_cfg VALUES ('A', 'one'), ('B', 'two')");
my $log_from = -s $ams->logfile;
my $rows = $ams->safe_psql('postgres', 'SELECT gsb.sync_config()');
cmp_ok($rows, '>=', 2, "sync_config() copied the tenant's rows ($rows rows in the daily tables)");
is($ams->safe_psql('postgres', 'SELECT string_agg(k || v, \',\' ORDER BY k) FROM public.tenant_cfg'),
	'Aone,Btwo', "the tenant's table holds the primary's rows");

my $log = slurp_file($ams->logfile, $log_from);
my %who = map { $_ => 1 } ($log =~ /tenant_key ran as (\S+)/g);
is(join(',', sort keys %who), 'tenant',
	"the tenant's index expression ran as the tenant, never as a superuser");
is($ams->safe_psql('postgres', "SELECT count(*) FROM public.ran_as WHERE what = 'trigger'"),
	'0', "the tenant's ordinary trigger did not fire during the copy");

check_logs($sjc, $ams);
done_testing();
