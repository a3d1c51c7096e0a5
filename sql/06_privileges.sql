-- Who may do what: admin functions for superusers and gsb_admin only.
CREATE ROLE gsb_test_user LOGIN;
CREATE ROLE gsb_test_admin LOGIN IN ROLE gsb_admin;

-- Functions PUBLIC may not execute.
SELECT p.oid::regprocedure AS admin_function
  FROM pg_proc p
 WHERE p.pronamespace = 'gsb'::regnamespace
   AND NOT has_function_privilege('gsb_test_user', p.oid, 'EXECUTE')
 ORDER BY p.proname;

-- Every SECURITY DEFINER function pins its search_path.
SELECT p.oid::regprocedure AS unpinned
  FROM pg_proc p
 WHERE p.pronamespace = 'gsb'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%');

SET ROLE gsb_test_user;
SELECT gsb.site_name(), gsb.site_role();
SELECT try($q$SELECT gsb.replicate_table('gsb.accounts')$q$);
SELECT try($q$SELECT gsb.init_site('x', 'primary')$q$);
SELECT try($q$SELECT gsb.selftest_raise('none')$q$);
SELECT try($q$SELECT count(*) FROM gsb.accounts$q$);
SELECT try($q$SELECT gsb.replicate_ddl('CREATE TABLE gsb_test_t (id int PRIMARY KEY)')$q$);
SELECT try($q$SELECT count(*) FROM gsb.ddl_log$q$);
RESET ROLE;
SELECT to_regclass('gsb_test_t') IS NULL AS not_created;

SET ROLE gsb_test_admin;
SELECT count(*) >= 0 AS admin_reads_status FROM gsb.status;
SELECT gsb.replicate_table('gsb.accounts');
SELECT count(*) > 0 AS admin_reads_accounts FROM gsb.accounts;
RESET ROLE;
-- A gsb_admin member runs replicated DDL with its own rights (here: CREATE
-- on schema public), and it is recorded as that role.
GRANT CREATE ON SCHEMA public TO gsb_test_admin;
SET ROLE gsb_test_admin;
SELECT gsb.replicate_ddl('CREATE TABLE gsb_test_t (id int PRIMARY KEY)');
SELECT tableowner FROM pg_tables WHERE tablename = 'gsb_test_t';
SELECT role, origin, command FROM gsb.ddl_log WHERE command ~ 'gsb_test_t';
-- Its rights, not gsb's: another role's table stays out of reach.
SELECT try($q$SELECT gsb.replicate_ddl('ALTER TABLE gsb.accounts ADD COLUMN x int')$q$);
RESET ROLE;
DROP TABLE gsb_test_t;
REVOKE CREATE ON SCHEMA public FROM gsb_test_admin;

DROP ROLE gsb_test_user;
DROP ROLE gsb_test_admin;

-- A schema prepared by someone else is refused at CREATE EXTENSION.
DROP EXTENSION gsb CASCADE;
DROP SCHEMA gsb;
CREATE ROLE gsb_intruder;
CREATE SCHEMA gsb AUTHORIZATION gsb_intruder;
SELECT try('CREATE EXTENSION gsb');
DROP SCHEMA gsb;
CREATE SCHEMA gsb;
CREATE FUNCTION gsb.site_name() RETURNS text LANGUAGE sql AS $$ SELECT 'planted' $$;
SELECT try('CREATE EXTENSION gsb');
DROP SCHEMA gsb CASCADE;
DROP ROLE gsb_intruder;
CREATE EXTENSION gsb;
SELECT gsb.init_site('sjc', 'primary');
