-- src/sql/00_schema.sql: the schema gsb, checked before anything goes in.
--
-- The install script gsb--<version>.sql is these files of src/sql/ in name order
-- (the Makefile joins them): catalogs, built-in service tables, the SQL API
-- written in SQL/PL/pgSQL, and privileges. Functions that need PostgreSQL
-- internals are in gsb.so.
\echo Use "CREATE EXTENSION gsb" to load this file. \quit

-- Refuse a schema that somebody else prepared for us: objects planted in it
-- could run with the rights of gsb's SECURITY DEFINER functions.
DO $check$
DECLARE
    owner_is_super boolean;
    stray int;
BEGIN
    SELECT r.rolsuper INTO owner_is_super
      FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = 'gsb';
    IF NOT owner_is_super THEN
        RAISE EXCEPTION 'schema "gsb" is owned by a non-superuser'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop the schema, or have a superuser own it, before CREATE EXTENSION gsb.';
    END IF;
    SELECT count(*) INTO stray FROM pg_class WHERE relnamespace = 'gsb'::regnamespace;
    SELECT stray + count(*) INTO stray FROM pg_proc WHERE pronamespace = 'gsb'::regnamespace;
    SELECT stray + count(*) INTO stray FROM pg_type WHERE typnamespace = 'gsb'::regnamespace;
    IF stray > 0 THEN
        RAISE EXCEPTION 'schema "gsb" already holds % objects', stray
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'CREATE EXTENSION gsb needs an empty or new schema "gsb".';
    END IF;
    -- gsb_admin administers gsb: a role of that name that someone made
    -- beforehand (CREATEROLE suffices) could log in, or hold rights of its
    -- own, and would be handed gsb's. Take only one made as gsb makes it: no
    -- LOGIN, no password, no attribute and no membership of other roles.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gsb_admin') THEN
        CREATE ROLE gsb_admin NOLOGIN;
        COMMENT ON ROLE gsb_admin IS 'gsb: members administer gsb (made by CREATE EXTENSION gsb)';
    ELSIF EXISTS (SELECT 1 FROM pg_authid a WHERE a.rolname = 'gsb_admin'
                     AND (a.rolcanlogin OR a.rolsuper OR a.rolcreaterole OR a.rolcreatedb
                          OR a.rolreplication OR a.rolbypassrls OR a.rolpassword IS NOT NULL))
          OR EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
                      WHERE r.rolname = 'gsb_admin') THEN
        RAISE EXCEPTION 'role "gsb_admin" exists and is not one that gsb made'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'It can log in, has a password or another attribute, or is a member of other roles.',
                  HINT = 'Drop the role (or make it NOLOGIN with no password, attribute or membership) before CREATE EXTENSION gsb.';
    END IF;
END
$check$;

REVOKE ALL ON SCHEMA gsb FROM PUBLIC;
GRANT USAGE ON SCHEMA gsb TO PUBLIC;
