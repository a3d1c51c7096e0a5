-- src/sql/00_schema.sql: the schema gsb, checked before anything goes in.
--
-- The install script gsb--0.1.sql is these files of src/sql/ in name order
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
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gsb_admin') THEN
        CREATE ROLE gsb_admin NOLOGIN;
    END IF;
END
$check$;

REVOKE ALL ON SCHEMA gsb FROM PUBLIC;
GRANT USAGE ON SCHEMA gsb TO PUBLIC;
