# 009_apply_as_owner.pl: the apply worker runs a table owner's code with the
# owner's rights, never with its own (superuser) rights.
#
# On ams, a non-superuser `tenant` owns a replicated table with a unique index
# on tenant's function and a trigger of tenant's that is enabled ALWAYS (so it
# fires for replicated changes too). Both log current_user. Changes from sjc,
# applied on ams by gsb's worker, must run them as tenant, and a conflict must
# still be recorded (as gsb, in gsb.conflicts).
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
CREATE ROLE tenant NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO tenant;
CREATE TABLE public.notes (k text PRIMARY KEY, v text);
ALTER TABLE public.notes OWNER TO tenant;
SELECT gsb.replicate_table('public.notes');});
}
$ams->safe_psql('postgres', q{
SET ROLE tenant;
CREATE FUNCTION public.note_key(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE LOG 'note_key ran as %', current_user;
    RETURN lower(t);
END $$;
CREATE UNIQUE INDEX notes_lower ON public.notes (public.note_key(k));
CREATE FUNCTION public.note_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'note_trigger ran as %', current_user;
    RETURN NEW;
END $$;
CREATE TRIGGER notes_log BEFORE INSERT OR UPDATE ON public.notes
    FOR EACH ROW EXECUTE FUNCTION public.note_trigger();
ALTER TABLE public.notes ENABLE ALWAYS TRIGGER notes_log;
RESET ROLE;});
connect_sites($sjc, $ams);

my $log_from = -s $ams->logfile;
# Many rows in one transaction (a table with a trigger is applied row by row),
# then an update, then a conflict.
$sjc->safe_psql('postgres', "INSERT INTO public.notes SELECT 'n' || g, 'v' FROM generate_series(1, 50) g");
$sjc->safe_psql('postgres', "UPDATE public.notes SET v = 'w' WHERE k = 'n1'");
wait_synced($sjc, $ams);
is($ams->safe_psql('postgres', "SELECT count(*) FROM public.notes"), '50', 'the rows arrived on ams');
is($ams->safe_psql('postgres', "SELECT v FROM public.notes WHERE k = 'n1'"), 'w', 'the update arrived');

my $log = slurp_file($ams->logfile, $log_from);
my %index_as = map { $_ => 1 } ($log =~ /note_key ran as (\S+)/g);
my %trigger_as = map { $_ => 1 } ($log =~ /note_trigger ran as (\S+)/g);
is(join(',', sort keys %index_as), 'tenant', "the owner's index expression ran as the owner only");
is(join(',', sort keys %trigger_as), 'tenant', "the owner's ALWAYS trigger ran as the owner only");

# A conflict on the owner's table is still recorded in gsb's own table.
$ams->stop('fast');
$sjc->safe_psql('postgres', "INSERT INTO public.notes VALUES ('both', 'from sjc')");
$sjc->stop('fast');
$ams->start;
$ams->safe_psql('postgres', "INSERT INTO public.notes VALUES ('both', 'from ams')");
$sjc->start;
ok(wait_state($ams, 'sjc', 'streaming'), 'ams streams from sjc again');
ok(wait_state($sjc, 'ams', 'streaming'), 'sjc streams from ams again');
wait_synced($sjc, $ams);
is($sjc->safe_psql('postgres', "SELECT v FROM public.notes WHERE k = 'both'"),
	$ams->safe_psql('postgres', "SELECT v FROM public.notes WHERE k = 'both'"),
	'the conflicting row is the same on both sites');
is( $sjc->safe_psql('postgres', "SELECT count(*) FROM gsb.conflicts WHERE key = '(both)'")
	  + $ams->safe_psql('postgres', "SELECT count(*) FROM gsb.conflicts WHERE key = '(both)'"),
	2, 'the conflict is recorded on both sites');

check_logs($sjc, $ams);
done_testing();
