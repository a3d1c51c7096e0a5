# 306_security.pl: privileges, passwords, planted functions and triggers.
#
# 1. A plain LOGIN role (not gsb_admin) may execute no admin function and read
#    none of gsb.peers (conninfo), gsb.status, gsb.conflicts, gsb.site_events;
#    a member of gsb_admin may.
# 2. The sites reach each other over TCP loopback as a role with a password
#    (scram-sha-256 in pg_hba.conf, checked to be required). The password
#    appears nowhere in gsb.status, in pg_stat_activity of either site, or in
#    either server log, with log_connections = on and log_min_messages = debug5
#    while the sites connect, stream, verify and reconnect. (The test's own
#    sessions, which type the password into gsb.add_peer, are left out of the
#    log check: log_statement = all logs what a user types.)
# 3. Planted functions: a non-superuser creates schema evil with functions and
#    an operator named like pg_catalog's (now, lower, btrim, lpad, nextval,
#    format_type, ..., =), each of which records its call and warns. A control
#    (an unpinned function of the test's own) shows the plants do fire when
#    reachable. That role, with search_path evil first, calls gsb's user-facing
#    functions; a superuser with the same search_path calls the admin
#    functions; gsb's peer sessions log in as a role whose search_path puts
#    evil first: no planted function ever runs.
# 4. A replicated table owned by a plain user, with an ordinary trigger: it
#    fires where the row is written, and not when the row is applied on the
#    other site.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use GsbTest;
use GsbFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our $TODO;

my $password = 'Gsb306_s3cret_PW_xq';
my $pw_hex = unpack('H*', $password);    # SQL that looks for it without saying it
my $pw_sql = "convert_from(decode('$pw_hex', 'hex'), 'UTF8')";
my $script = $FindBin::Script;

my %sites;
for my $pair ([ 'sjc', 'primary' ], [ 'ams', 'backup' ])
{
	my ($name, $role) = @$pair;
	my $n = new_site($name, $role,
		extra_conf => "listen_addresses = '127.0.0.1'\nlog_connections = on\nlog_disconnections = on");
	# gsb_peer must use its password over TCP: first-match lines before the
	# trust lines of the test cluster.
	my $hba = $n->data_dir . '/pg_hba.conf';
	my $old = slurp_file($hba);
	open(my $fh, '>', $hba) or die "cannot write $hba: $!";
	print $fh "host all gsb_peer 127.0.0.1/32 scram-sha-256\n"
	  . "host replication gsb_peer 127.0.0.1/32 scram-sha-256\n" . $old;
	close $fh;
	$n->safe_psql('postgres',
		"SET password_encryption = 'scram-sha-256';"
		  . " CREATE ROLE gsb_peer LOGIN SUPERUSER REPLICATION PASSWORD " . sql_quote($password) . ";"
		  . " SELECT pg_reload_conf();");
	$sites{$name} = $n;
}
my ($sjc, $ams) = @sites{qw(sjc ams)};

# The password is needed: without it, gsb_peer cannot connect over TCP.
{
	my ($out, $err) = ('', '');
	my $rc = $ams->psql('postgres', 'SELECT 1',
		connstr => "host=127.0.0.1 port=" . $sjc->port . " dbname=postgres user=gsb_peer password=wrong",
		stdout => \$out, stderr => \$err);
	like($err, qr/password authentication failed/, 'sjc: gsb_peer needs its password over TCP');
}

my $schema = q{
CREATE ROLE tabowner LOGIN;
CREATE TABLE owned (id int PRIMARY KEY, v text);
ALTER TABLE owned OWNER TO tabowner;
CREATE TABLE trig_log (at timestamptz DEFAULT now(), who text, id int);
GRANT INSERT ON trig_log TO tabowner;
CREATE FUNCTION owned_trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trig_log (who, id) VALUES (current_user, NEW.id);
    RETURN NEW;
END $$;
ALTER FUNCTION owned_trig() OWNER TO tabowner;
CREATE TRIGGER owned_trig AFTER INSERT ON owned FOR EACH ROW EXECUTE FUNCTION owned_trig();
SELECT gsb.replicate_table('owned');
CREATE TABLE admin_t (id int PRIMARY KEY);
};
$_->safe_psql('postgres', $schema) for ($sjc, $ams);

########################################################################
# 2. Debug logging while the sites connect with the password.
########################################################################
for my $n ($sjc, $ams)
{
	$n->safe_psql('postgres',
		"ALTER SYSTEM SET log_min_messages = debug5; SELECT pg_reload_conf();");
}
my $extra = "host=127.0.0.1 user=gsb_peer password=$password";
connect_sites($sjc, $ams, extra => $extra);

my @activity_hits;
sub sample_activity
{
	for my $n ($sjc, $ams)
	{
		my $hits = $n->safe_psql('postgres',
			"SELECT string_agg(pid || ' ' || coalesce(application_name, '') || ' ' || coalesce(backend_type, ''), '; ')"
			  . " FROM pg_stat_activity a WHERE pid <> pg_backend_pid()"
			  . " AND strpos(a::text, $pw_sql) > 0");
		push @activity_hits, site_name($n) . ": $hits" if $hits ne '';
	}
	return;
}
sample_activity();
$sjc->safe_psql('postgres', "INSERT INTO owned VALUES (1, 'from sjc')");
$ams->safe_psql('postgres', "INSERT INTO owned VALUES (2, 'from ams')");
sample_activity();
wait_synced($sjc, $ams);
sample_activity();
# A worker restart: a new connection, logged at debug5 too.
for my $pair ([ $ams, 'sjc' ], [ $sjc, 'ams' ])
{
	my ($n, $peer) = @$pair;
	my $pid = apply_pid($n, $peer);
	$n->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") if $pid ne '';
	ok(wait_apply_pid($n, $peer, $pid, 60), site_name($n) . ": apply worker reconnected after a restart");
	sample_activity();
}
verify_all($_) for ($sjc, $ams);
sample_activity();
is(join("\n", @activity_hits), '', 'the password is in no pg_stat_activity row of either site');

for my $n ($sjc, $ams)
{
	my $name = site_name($n);
	is($n->safe_psql('postgres', "SELECT count(*) FROM gsb.status s WHERE strpos(s::text, $pw_sql) > 0"),
		'0', "$name: gsb.status does not show the password");
	$n->safe_psql('postgres', "ALTER SYSTEM RESET log_min_messages; SELECT pg_reload_conf();");
}

########################################################################
# 1. Privileges.
########################################################################
my @admin = (
	"gsb.init_site('x', 'primary')", "gsb.add_peer('x', 'host=127.0.0.1')",
	"gsb.drop_peer('x')", "gsb.replicate_table('admin_t')", "gsb.unreplicate_table('owned')",
	"gsb.failover('x')", "gsb.failback()", "gsb.sync_config()",
	"gsb.begin_maintenance()", "gsb.end_maintenance()");
my @private = qw(gsb.peers gsb.status gsb.conflicts gsb.site_events);
for my $n ($sjc, $ams)
{
	my $name = site_name($n);
	$n->safe_psql('postgres',
		"CREATE ROLE plain LOGIN; CREATE ROLE admin1 LOGIN IN ROLE gsb_admin;"
		  . " GRANT SELECT ON admin_t TO admin1; ALTER TABLE admin_t OWNER TO admin1;");
	for my $f (@admin)
	{
		my ($rc, $out, $err) = psql_verbose($n, "SET ROLE plain;\nSELECT $f;");
		is(sqlstate_of($err), '42501', "$name: a plain user may not execute $f") or diag($err);
	}
	for my $t (@private)
	{
		my ($rc, $out, $err) = psql_verbose($n, "SET ROLE plain;\nSELECT count(*) FROM $t;");
		is(sqlstate_of($err), '42501', "$name: a plain user may not read $t") or diag($err);
		($rc, $out, $err) = psql_verbose($n, "SET ROLE admin1;\nSELECT count(*) >= 0 FROM $t;");
		is("$rc $out", '0 t', "$name: a gsb_admin member may read $t") or diag($err);
	}
	my $priv = $n->safe_psql('postgres',
		"SELECT string_agg(f, ', ') FROM unnest(ARRAY['gsb.init_site(text,text)', 'gsb.add_peer(text,text,boolean)',"
		  . " 'gsb.drop_peer(text)', 'gsb.replicate_table(regclass,text)', 'gsb.unreplicate_table(regclass)',"
		  . " 'gsb.failover(text)', 'gsb.failback()', 'gsb.sync_config()', 'gsb.begin_maintenance()',"
		  . " 'gsb.end_maintenance()']) f WHERE NOT has_function_privilege('admin1', f, 'EXECUTE')");
	is($priv, '', "$name: a gsb_admin member may execute every admin function");
	is($n->safe_psql('postgres', "SELECT has_column_privilege('plain', 'gsb.peers', 'conninfo', 'SELECT')"),
		'f', "$name: a plain user may not read gsb.peers.conninfo");
	my ($rc, $out, $err) = psql_verbose($n,
		"SET ROLE admin1;\nSELECT gsb.replicate_table('admin_t');\nSELECT gsb.unreplicate_table('admin_t');\nSELECT 'done';");
	is($rc, 0, "$name: a gsb_admin member can replicate and unreplicate its table") or diag($err);
}
{
	my ($rc, $out, $err) = psql_verbose($ams, "SET ROLE admin1;\nSELECT gsb.sync_config() >= 0;");
	is("$rc $out", '0 t', 'ams: a gsb_admin member can run gsb.sync_config()') or diag($err);
}

########################################################################
# 3. Planted functions.
########################################################################
my @plants = (
	[ 'now()', 'timestamptz', 'pg_catalog.now()' ],
	[ 'clock_timestamp()', 'timestamptz', 'pg_catalog.clock_timestamp()' ],
	[ 'statement_timestamp()', 'timestamptz', 'pg_catalog.statement_timestamp()' ],
	[ 'lower(a text)', 'text', 'pg_catalog.lower(a)' ],
	[ 'lower(a varchar)', 'text', 'pg_catalog.lower(a)' ],
	[ 'upper(a text)', 'text', 'pg_catalog.upper(a)' ],
	[ 'btrim(a text)', 'text', 'pg_catalog.btrim(a)' ],
	[ 'btrim(a varchar)', 'text', 'pg_catalog.btrim(a)' ],
	[ 'lpad(a text, b int, c text)', 'text', 'pg_catalog.lpad(a, b, c)' ],
	[ 'length(a text)', 'int', 'pg_catalog.length(a)' ],
	[ 'md5(a text)', 'text', 'pg_catalog.md5(a)' ],
	[ 'nextval(a regclass)', 'bigint', 'pg_catalog.nextval(a)' ],
	[ 'format_type(a oid, b int)', 'text', 'pg_catalog.format_type(a, b)' ],
	[ 'quote_ident(a text)', 'text', 'pg_catalog.quote_ident(a)' ],
	[ 'quote_literal(a text)', 'text', 'pg_catalog.quote_literal(a)' ],
	[ 'current_setting(a text)', 'text', 'pg_catalog.current_setting(a)' ],
	[ 'set_config(a text, b text, c boolean)', 'text', 'pg_catalog.set_config(a, b, c)' ],
	[ 'to_jsonb(a anyelement)', 'jsonb', 'pg_catalog.to_jsonb(a)' ],
	[ 'row_to_json(a record)', 'json', 'pg_catalog.row_to_json(a)' ],
	[ 'pg_advisory_xact_lock(a bigint)', 'void', 'pg_catalog.pg_advisory_xact_lock(a)' ],
	[ 'txid_current()', 'bigint', 'pg_catalog.txid_current()' ],
	[ 'random()', 'float8', 'pg_catalog.random()' ],
	[ 'texteq_planted(a text, b text)', 'boolean', 'pg_catalog.texteq(a, b)' ],
	[ 'int8eq_planted(a bigint, b bigint)', 'boolean', 'pg_catalog.int8eq(a, b)' ],
);
my $plant_sql = q{
CREATE SCHEMA evil AUTHORIZATION evil;
SET ROLE evil;
CREATE TABLE evil.calls (fn text, by_user text, app text, at timestamptz DEFAULT pg_catalog.clock_timestamp());
GRANT INSERT, SELECT ON evil.calls TO PUBLIC;
};
for my $p (@plants)
{
	my ($sig, $ret, $real) = @$p;
	my ($fname) = $sig =~ /^(\w+)/;
	my $body = $ret eq 'void' ? "PERFORM $real; RETURN;" : "RETURN $real;";
	$plant_sql .= qq{
CREATE FUNCTION evil.$sig RETURNS $ret LANGUAGE plpgsql SET search_path = pg_catalog AS \$\$
BEGIN
    INSERT INTO evil.calls (fn, by_user, app) VALUES ('$fname', session_user, current_setting('application_name'));
    RAISE WARNING 'PLANTED function evil.% called', '$fname';
    $body
END \$\$;};
}
$plant_sql .= q{
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq_planted);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq_planted);
RESET ROLE;
};
my $evil_path = 'evil, pg_catalog, public';
for my $n ($sjc, $ams)
{
	$n->safe_psql('postgres', q{
CREATE ROLE evil LOGIN;
GRANT CREATE ON DATABASE postgres TO evil;
GRANT SELECT, INSERT ON gsb.accounts, gsb.meetings TO evil;
GRANT SELECT ON gsb.usage TO evil;
} . $plant_sql . qq{
ALTER ROLE evil SET search_path = $evil_path;
ALTER ROLE gsb_peer SET search_path = $evil_path;
CREATE FUNCTION public.unpinned_control() RETURNS timestamptz LANGUAGE plpgsql AS \$\$ BEGIN RETURN now(); END \$\$;
});
}

# Control: with evil first, an unpinned function does call the plant.
{
	my ($rc, $out, $err) = psql_verbose($sjc,
		"SET search_path = $evil_path;\nSELECT public.unpinned_control() IS NOT NULL;");
	like($err, qr/PLANTED function evil\.now called/, 'control: an unpinned function calls the planted evil.now()');
	is($sjc->safe_psql('postgres', "SELECT count(*) FROM evil.calls WHERE fn = 'now'"), '1',
		'control: the plant recorded its call');
	($rc, $out, $err) = psql_verbose($sjc,
		"SET search_path = evil, public;\nSELECT lower('A'::varchar);");
	like($err, qr/PLANTED function evil\.lower called/,
		"control: even with search_path 'evil, public' a more specific overload wins");
	$sjc->safe_psql('postgres', 'TRUNCATE evil.calls');
}
my %after_control = map { site_name($_) => log_offset($_) } ($sjc, $ams);

# Restart the workers so that gsb's sessions on the peer log in with
# gsb_peer's new search_path.
for my $pair ([ $ams, 'sjc' ], [ $sjc, 'ams' ])
{
	my ($n, $peer) = @$pair;
	my $pid = apply_pid($n, $peer);
	$n->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") if $pid ne '';
	ok(wait_apply_pid($n, $peer, $pid, 60), site_name($n) . ": apply worker back with the planted search_path on the peer");
}

my @stderr;
# The plain role, search_path evil first, calls gsb's user-facing functions.
for my $n ($sjc, $ams)
{
	my ($out, $err) = ('', '');
	my $sql = qq{
\\set VERBOSITY verbose
SHOW search_path;
SELECT gsb.site_name(), gsb.active_site(), gsb.site_role(), gsb.is_active(), gsb.detect_backup();
SELECT gsb.schedule_meeting(gsb.create_account('evil\@example.com', 'Evil'), 'planted', '2030-01-01 10:00+00');
SELECT count(*) >= 0 FROM gsb.usage_report('2000-01-01', '2100-01-01');
};
	my $rc = $n->psql('postgres', $sql,
		connstr => $n->connstr('postgres') . ' user=evil', stdout => \$out, stderr => \$err);
	is($rc, 0, site_name($n) . ': user evil calls the user-facing functions') or diag($err);
	like($out, qr/^evil, pg_catalog, public$/m, site_name($n) . ": (user evil's search_path is '$evil_path')");
	push @stderr, $err;
}

# A superuser with search_path evil first calls the admin functions.
for my $path ($evil_path, 'evil, public')
{
	for my $n ($sjc, $ams)
	{
		my ($rc, $out, $err) = psql_verbose($n, qq{
SET search_path = $path;
SELECT gsb.replicate_table('admin_t');
SELECT gsb.unreplicate_table('admin_t');
SELECT count(*) FROM gsb.verify();
SELECT gsb.wait_for_peer('30 s');
SELECT * FROM gsb.status;
});
		is($rc, 0, site_name($n) . ": a superuser with search_path '$path' calls admin functions") or diag($err);
		push @stderr, $err;
	}
	my ($rc, $out, $err) = psql_verbose($ams, qq{
SET search_path = $path;
SELECT gsb.sync_config();
SELECT gsb.failover('planted path test');
SELECT gsb.active_site();
SELECT gsb.failback();
SELECT gsb.active_site();
SELECT gsb.begin_maintenance();
SELECT gsb.end_maintenance();
SELECT gsb.active_site();
});
	is($rc, 0, "ams: failover, failback, maintenance and sync_config with search_path '$path'") or diag($err);
	like($out, qr/sjc\z/, 'ams: the primary is active again at the end');
	push @stderr, $err;
}
{
	my ($rc, $out, $err) = psql_verbose($sjc, qq{
SET search_path = $evil_path;
SELECT gsb.drop_peer('ams');
SELECT gsb.add_peer('ams', } . sql_quote(peer_connstr($ams, $extra)) . q{, true);
});
	is($rc, 0, "sjc: drop_peer and add_peer with search_path '$evil_path'") or diag($err);
	push @stderr, $err;
	ok(wait_state($sjc, 'ams', 'streaming'), 'sjc: streaming from ams after add_peer');
}
# Traffic through the peer sessions (which log in with evil first).
$sjc->safe_psql('postgres', "INSERT INTO owned VALUES (3, 'sjc again')");
$ams->safe_psql('postgres', "INSERT INTO owned VALUES (4, 'ams again')");
wait_synced($sjc, $ams);

for my $n ($sjc, $ams)
{
	my $calls = $n->safe_psql('postgres',
		"SELECT coalesce(string_agg(DISTINCT fn || ' by ' || by_user || ' (' || app || ')', '; '), '') FROM evil.calls");
	is($calls, '', site_name($n) . ': no planted function ever ran');
	my @planted = grep { /PLANTED function evil\.\w+ called/ } split /\n/,
	  slurp_file($n->logfile, $after_control{ site_name($n) });
	is(scalar(@planted), 0, site_name($n) . ': the server log shows no planted call (after the control)')
	  or diag(join("\n", @planted[0 .. ($#planted < 9 ? $#planted : 9)]));
}
unlike(join("\n", @stderr), qr/PLANTED function evil\.\w+ called/, 'no planted call warned any of the sessions');

########################################################################
# 4. The table owner's trigger does not run on apply.
########################################################################
for my $pair ([ $sjc, '1,3' ], [ $ams, '2,4' ])
{
	my ($n, $own) = @$pair;
	is($n->safe_psql('postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM trig_log'), $own,
		site_name($n) . ': the trigger fired for the rows written here, not for the rows applied');
	is($n->safe_psql('postgres', 'SELECT count(*) FROM owned'), '4', site_name($n) . ': all 4 rows replicated');
}
exactly_once($sjc, $ams, 'owned');

########################################################################
# 2 (end). The password in no server log.
########################################################################
for my $n ($sjc, $ams)
{
	my @lines = split /\n/, slurp_file($n->logfile);
	my $debug = grep { /\bDEBUG\d?:/ } @lines;
	cmp_ok($debug, '>', 100, site_name($n) . ": the log has debug output ($debug lines)");
	my $conns = grep { /connection authorized: user=gsb_peer/ } @lines;
	cmp_ok($conns, '>', 0, site_name($n) . ": the log has gsb_peer's connections ($conns)");
	# Lines of the test's own sessions (which type the password) aside.
	my @leaks = grep { /\Q$password\E/ && !/^\S+ \S+ \S+ \[\d+\] \Q$script\E / } @lines;
	is(scalar(@leaks), 0, site_name($n) . ': the password is in no server log line of gsb or PostgreSQL')
	  or diag(join("\n", @leaks[0 .. ($#leaks < 9 ? $#leaks : 9)]));
}

check_logs($sjc, $ams);
figures(4);
done_testing();
