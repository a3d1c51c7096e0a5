# t/GsbUpgrade.pm: helpers of the upgrade tests (t/333_upgrade.pl,
# t/334_rolling_upgrade.pl): a normalised description of every object of the
# extension gsb in one database, and the comparison of two of them that names
# each object that differs and how.
#
# For: proving that ALTER EXTENSION gsb UPDATE leaves the catalog that a fresh
# install of the new version makes (as PostGIS and TimescaleDB test theirs),
# and sites whose gsb is at a given version.
# Not for: data (the tests compare rows with GsbTest::table_digest).
#
# The description is one line per property, "KEY<US>VALUE", the key naming the
# object and the property ("function gsb.site_name(): volatility"), so that a
# difference says exactly which object differs in what. Names, not OIDs:
# two installs compare whatever their OIDs.
package GsbUpgrade;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use GsbTest;

our @EXPORT = qw(catalog_of catalog_differences same_catalog ext_version
  new_site_at);

# An aclitem[] as sorted "grantee=privilege[*] by grantor" items; 'default'
# for NULL (the owner's implicit rights).
my $ACL = q{coalesce((SELECT string_agg(
        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
        || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END
        || ' by ' || a.grantor::regrole::text, ', ' ORDER BY 1)
      FROM aclexplode(%s) a), 'default')};

sub acl { return sprintf($ACL, $_[0]); }

# One query: (key, value) of every property of every object of gsb.
my $DESCRIBE = q{
WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'gsb'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
       AND d.deptype = 'e'),
rels AS (
    SELECT c.*, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                 WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                 WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                 WHEN 'c' THEN 'composite type' ELSE 'relation ' || c.relkind::text END
                || ' ' || c.oid::regclass::text AS name
      FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid),
procs AS (
    SELECT p.*, CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate '
                 WHEN 'w' THEN 'window function ' ELSE 'function ' END
                || p.oid::regprocedure::text AS name
      FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid),
props(key, value) AS (
    SELECT 'extension gsb: version', extversion FROM ext
    UNION ALL SELECT 'extension gsb: schema', extnamespace::regnamespace::text FROM ext
    UNION ALL SELECT 'extension gsb: relocatable', extrelocatable::text FROM ext
    -- pg_extension_config_dump: the tables pg_dump dumps, with their filter
    UNION ALL SELECT 'extension gsb: config table ' || c.oid::regclass::text,
                     'filter ' || quote_literal(coalesce(ext.extcondition[i.n], ''))
      FROM ext CROSS JOIN LATERAL unnest(ext.extconfig) WITH ORDINALITY AS i(relid, n)
      JOIN pg_class c ON c.oid = i.relid
    UNION ALL SELECT 'schema gsb: owner', nspowner::regrole::text FROM pg_namespace WHERE nspname = 'gsb'
    UNION ALL SELECT 'schema gsb: acl', __ACL(nspacl)__ FROM pg_namespace WHERE nspname = 'gsb'
    -- functions and procedures
    UNION ALL SELECT name || ': returns', coalesce(pg_get_function_result(oid), '') FROM procs
    UNION ALL SELECT name || ': arguments', pg_get_function_arguments(oid) FROM procs
    UNION ALL SELECT name || ': language', (SELECT lanname FROM pg_language WHERE oid = prolang) FROM procs
    UNION ALL SELECT name || ': volatility', CASE provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END FROM procs
    UNION ALL SELECT name || ': strict', proisstrict::text FROM procs
    UNION ALL SELECT name || ': security definer', prosecdef::text FROM procs
    UNION ALL SELECT name || ': leakproof', proleakproof::text FROM procs
    UNION ALL SELECT name || ': parallel', proparallel::text FROM procs
    UNION ALL SELECT name || ': cost, rows', procost || ', ' || prorows FROM procs
    UNION ALL SELECT name || ': config (SET)', coalesce(array_to_string(proconfig, ', '), '') FROM procs
    UNION ALL SELECT name || ': body', prosrc FROM procs
    UNION ALL SELECT name || ': library', coalesce(probin, '') FROM procs
    UNION ALL SELECT name || ': owner', proowner::regrole::text FROM procs
    UNION ALL SELECT name || ': acl', __ACL(proacl)__ FROM procs
    UNION ALL SELECT name || ': comment', obj_description(oid, 'pg_proc') FROM procs
    -- relations: tables, views, sequences
    UNION ALL SELECT name || ': owner', relowner::regrole::text FROM rels
    UNION ALL SELECT name || ': acl', __ACL(relacl)__ FROM rels
    UNION ALL SELECT name || ': options', coalesce(array_to_string(reloptions, ', '), '') FROM rels
    UNION ALL SELECT name || ': persistence, replica identity, row security',
                     relpersistence::text || ', ' || relreplident::text || ', ' || relrowsecurity || '/' || relforcerowsecurity
      FROM rels WHERE relkind IN ('r', 'p', 'm', 'f')
    UNION ALL SELECT name || ': comment', obj_description(oid, 'pg_class') FROM rels
    UNION ALL SELECT name || ': definition', pg_get_viewdef(oid, true) FROM rels WHERE relkind IN ('v', 'm')
    -- columns: the position is the attribute number, which C++ code reading
    -- a tuple (catalog.cpp: gsb.site, gsb.tables) depends on
    UNION ALL SELECT r.name || ': column ' || a.attname,
                     '#' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
                     || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                     || coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                     || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
                     || CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END
                     || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                             THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END
                     || CASE WHEN a.attacl IS NOT NULL THEN ' ACL ' || __ACL(a.attacl)__ ELSE '' END
                     || coalesce(' COMMENT ' || quote_literal(col_description(r.oid, a.attnum)), '')
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
    UNION ALL SELECT r.name || ': constraint ' || co.conname, pg_get_constraintdef(co.oid)
      FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
    UNION ALL SELECT r.name || ': index ' || ic.relname,
                     pg_get_indexdef(i.indexrelid)
                     || CASE WHEN i.indisreplident THEN ' (replica identity)' ELSE '' END
                     || coalesce(' options ' || array_to_string(ic.reloptions, ', '), '')
      FROM rels r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    UNION ALL SELECT r.name || ': trigger ' || tg.tgname,
                     pg_get_triggerdef(tg.oid) || ' (enabled ' || tg.tgenabled::text || ')'
      FROM rels r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
    UNION ALL SELECT r.name || ': policy ' || po.polname,
                     po.polcmd::text || ' ' || po.polpermissive || ' to ' || po.polroles::regrole[]::text
                     || ' using ' || coalesce(pg_get_expr(po.polqual, r.oid), '')
                     || ' check ' || coalesce(pg_get_expr(po.polwithcheck, r.oid), '')
      FROM rels r JOIN pg_policy po ON po.polrelid = r.oid
    UNION ALL SELECT r.name || ': rule ' || ru.rulename, pg_get_ruledef(ru.oid)
      FROM rels r JOIN pg_rewrite ru ON ru.ev_class = r.oid AND ru.rulename <> '_RETURN'
    UNION ALL SELECT r.name || ': parameters',
                     format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement
                     || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache
                     || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
      FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
    UNION ALL SELECT r.name || ': owned by',
                     coalesce((SELECT d.refobjid::regclass::text || '.' || a.attname
                                 FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), 'none')
      FROM rels r WHERE r.relkind = 'S'
    -- types of their own (not a table's row type, not an array type)
    UNION ALL SELECT 'type ' || ty.oid::regtype::text,
                     ty.typtype::text || ' ' || coalesce(
                       (SELECT 'labels ' || string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                          FROM pg_enum e WHERE e.enumtypid = ty.oid),
                       (SELECT 'attributes ' || string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
                       'over ' || format_type(ty.typbasetype, ty.typtypmod)
                       || CASE WHEN ty.typnotnull THEN ' NOT NULL' ELSE '' END
                       || coalesce(' DEFAULT ' || ty.typdefault, '')
                       || coalesce((SELECT ' ' || string_agg(co.conname || ' ' || pg_get_constraintdef(co.oid), ', ' ORDER BY co.conname)
                                      FROM pg_constraint co WHERE co.contypid = ty.oid), ''))
                     || ' owner ' || ty.typowner::regrole::text || ' acl ' || __ACL(ty.typacl)__
      FROM pg_type ty JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = ty.oid
    UNION ALL SELECT 'event trigger ' || e.evtname,
                     'on ' || e.evtevent || ' execute ' || e.evtfoid::regprocedure::text
                     || ' tags ' || coalesce(array_to_string(e.evttags, ', '), 'all')
                     || ' (enabled ' || e.evtenabled::text || ', owner ' || e.evtowner::regrole::text || ')'
      FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
    -- members of any other kind: at least that they exist
    UNION ALL SELECT pg_describe_object(m.classid, m.objid, 0), 'member'
      FROM members m
     WHERE m.classid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass,
                             'pg_event_trigger'::regclass)
    -- the rights that the install recorded as the objects' initial ones
    -- (what pg_dump compares the current rights with)
    UNION ALL SELECT 'initial privileges of ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
                     ip.privtype::text || ' ' || __ACL(ip.initprivs)__
      FROM pg_init_privs ip
     WHERE EXISTS (SELECT 1 FROM members m WHERE m.classid = ip.classoid AND m.objid = ip.objoid)
        OR (ip.classoid = 'pg_namespace'::regclass AND ip.objoid = 'gsb'::regnamespace)
    -- objects in schema gsb that are not the extension's: an update script
    -- that made one outside the extension, or a member dropped from it
    UNION ALL SELECT 'not a member of the extension: ' || pg_describe_object('pg_class'::regclass, c.oid, 0), 'exists'
      FROM pg_class c
     WHERE c.relnamespace = 'gsb'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
    UNION ALL SELECT 'not a member of the extension: ' || pg_describe_object('pg_proc'::regclass, p.oid, 0), 'exists'
      FROM pg_proc p
     WHERE p.pronamespace = 'gsb'::regnamespace
       AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
    UNION ALL SELECT 'not a member of the extension: ' || pg_describe_object('pg_type'::regclass, ty.oid, 0), 'exists'
      FROM pg_type ty
     WHERE ty.typnamespace = 'gsb'::regnamespace AND ty.typcategory <> 'A'
       AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = ty.oid AND c.relkind <> 'c')
       AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_type'::regclass AND m.objid = ty.oid)
)
SELECT key || chr(31) || replace(replace(coalesce(value, '(null)'), chr(92), chr(92) || chr(92)), chr(10), chr(92) || 'n')
  FROM props ORDER BY key, value
};
$DESCRIBE =~ s/__ACL\((.*?)\)__/acl($1)/ge;

# catalog_of($node, $db, rows => 1): the description of gsb in $db, as a
# hash key => value (a key met twice gets its values joined with ' | ').
# With rows, also every row of every table of gsb (timestamps as whether
# they are NULL, oid columns as the relation they name): what a fresh install
# puts into its tables (gsb.tables' built-in rows, gsb.site_state's row).
sub catalog_of
{
	my ($node, $db, %opts) = @_;
	my $out = $node->safe_psql($db, $DESCRIBE);
	my %d;
	for my $line (split /\n/, $out)
	{
		my ($k, $v) = split /\x1f/, $line, 2;
		$d{$k} = exists $d{$k} ? "$d{$k} | $v" : $v;
	}
	if ($opts{rows})
	{
		my $tables = $node->safe_psql($db, q{
			SELECT c.oid::regclass::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
			  JOIN pg_class c ON c.oid = d.objid
			 WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'gsb'
			   AND d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind = 'r'
			 ORDER BY 1});
		for my $t (split /\n/, $tables)
		{
			my $cols = $node->safe_psql($db, qq{
				SELECT string_agg(CASE
				         WHEN atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
				           THEN format('CASE WHEN %1\$I IS NULL THEN ''null'' ELSE ''(time)'' END', attname)
				         WHEN atttypid = 'oid'::regtype THEN format('%1\$I::regclass::text', attname)
				         ELSE format('%1\$I::text', attname) END, ', ' ORDER BY attnum)
				  FROM pg_attribute WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped});
			$d{"table $t: rows"} = $node->safe_psql($db,
				"SELECT count(*) || ' rows: ' || coalesce(string_agg(r, '; ' ORDER BY r), '')"
				  . " FROM (SELECT ROW($cols)::text AS r FROM $t) s");
		}
	}
	return \%d;
}

# A multi-line value as lines ("\n" in the description is a newline).
sub lines_of
{
	my ($v) = @_;
	my @l;
	for my $part (split /(\\\\|\\n)/, $v)
	{
		if ($part eq '\\n') { push @l, ''; next; }
		push @l, '' unless @l;
		$l[-1] .= $part eq '\\\\' ? '\\' : $part;
	}
	return @l;
}

# The lines of two texts with what differs marked: a small longest-common-
# subsequence diff ("-" only in $a, "+" only in $b, "  " both).
sub line_diff
{
	my ($a, $b) = @_;
	my @a = lines_of($a);
	my @b = lines_of($b);
	my @lcs;
	for (my $i = $#a; $i >= 0; $i--)
	{
		for (my $j = $#b; $j >= 0; $j--)
		{
			$lcs[$i][$j] = $a[$i] eq $b[$j]
			  ? 1 + ($lcs[ $i + 1 ][ $j + 1 ] // 0)
			  : (($lcs[ $i + 1 ][$j] // 0) >= ($lcs[$i][ $j + 1 ] // 0)
				? ($lcs[ $i + 1 ][$j] // 0) : ($lcs[$i][ $j + 1 ] // 0));
		}
	}
	my ($i, $j, @out) = (0, 0);
	while ($i < @a || $j < @b)
	{
		if ($i < @a && $j < @b && $a[$i] eq $b[$j]) { push @out, "      $a[$i]"; $i++; $j++; }
		elsif ($j < @b && ($i >= @a || ($lcs[$i][ $j + 1 ] // 0) >= ($lcs[ $i + 1 ][$j] // 0)))
		{
			push @out, "    + $b[$j]";
			$j++;
		}
		else { push @out, "    - $a[$i]"; $i++; }
	}
	return @out;
}

# catalog_differences($a_name, $a, $b_name, $b): one message per key that
# differs: only in one (with its value), or both values (a multi-line value
# as a line diff, "-" $a's lines, "+" $b's).
sub catalog_differences
{
	my ($an, $a, $bn, $b) = @_;
	my @diff;
	my %keys = map { $_ => 1 } (keys %$a, keys %$b);
	for my $k (sort keys %keys)
	{
		if (!exists $b->{$k})
		{
			push @diff, "$k: only in $an: $a->{$k}";
		}
		elsif (!exists $a->{$k})
		{
			push @diff, "$k: only in $bn: $b->{$k}";
		}
		elsif ($a->{$k} ne $b->{$k})
		{
			if ($a->{$k} =~ /\\n/ || $b->{$k} =~ /\\n/)
			{
				push @diff, join("\n", "$k: differs (- $an, + $bn):",
					line_diff($a->{$k}, $b->{$k}));
			}
			else
			{
				push @diff, "$k: $an has: $a->{$k}\n    $bn has: $b->{$k}";
			}
		}
	}
	return @diff;
}

# same_catalog($a_name, $a, $b_name, $b, $test_name): ok() when the two
# descriptions are equal; otherwise prints every difference.
sub same_catalog
{
	my ($an, $a, $bn, $b, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @diff = catalog_differences($an, $a, $bn, $b);
	my $ok = ok(!@diff && keys %$a > 50, $name);
	diag(scalar(@diff) . " difference(s) between $an and $bn:\n" . join("\n", @diff))
	  if @diff;
	diag("the description of $an has only " . scalar(keys %$a) . " lines")
	  unless keys %$a > 50;
	return $ok;
}

# gsb's version in database postgres of $node.
sub ext_version
{
	my ($node) = @_;
	return $node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'gsb'");
}

# new_site_at($name, $role, $version, %opts): GsbTest::new_site with gsb
# installed at $version (CREATE EXTENSION gsb VERSION ...).
sub new_site_at
{
	my ($name, $role, $version, %opts) = @_;
	my $node = new_site($name, $role, %opts, no_init => 1);
	$node->safe_psql('postgres',
		"CREATE EXTENSION gsb VERSION '$version'; SELECT gsb.init_site('$name', '$role');");
	is(ext_version($node), $version, "$name: gsb installed at version $version, site $role");
	return $node;
}

1;
