-- src/sql/35_replicated_tables.sql: registering the tables gsb replicates.

------------------------------------------------------------------------------
-- Replicated tables.
------------------------------------------------------------------------------
-- Registering a table makes gsb's workers write it with their rights, and
-- unregistering stops its replication: a gsb_admin member may do either only
-- for tables its login role owns (as a member of the owning role);
-- superusers for any. The caller is the session's login role (inside a
-- SECURITY DEFINER function current_user is gsb's owner), so a regclass made
-- from a bare OID, which skips the schema's USAGE check, gains nothing.
CREATE FUNCTION gsb._check_table_rights(rel regclass, owner oid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF owner IS NULL OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        RETURN;
    END IF;
    IF NOT pg_has_role(session_user, owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to replicate it or stop its replication', rel
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Ask its owner (%s) or a superuser; gsb_admin members register their own tables.',
                                owner::regrole);
    END IF;
END
$$;

CREATE FUNCTION gsb.replicate_table(rel regclass, mode text DEFAULT 'realtime') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c pg_class;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'gsb.replicate_table: relation is NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Name an existing table.';
    END IF;
    IF mode IS NULL OR mode NOT IN ('realtime', 'daily') THEN
        RAISE EXCEPTION 'invalid replication mode: %', coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The mode is ''realtime'' (both ways, streamed) or ''daily'' (primary to backup, copied once a day).';
    END IF;
    SELECT * INTO c FROM pg_class WHERE oid = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', rel::oid
            USING ERRCODE = 'undefined_table', HINT = 'Name an existing table.';
    END IF;
    IF c.relkind <> 'r' THEN
        RAISE EXCEPTION '"%" is not a table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'gsb replicates ordinary tables only.';
    END IF;
    -- Logical decoding never sends system catalogs; those made by initdb
    -- (information_schema) are the same on both sites anyway.
    IF rel::oid < 16384 THEN
        RAISE EXCEPTION '"%" is a system table', rel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'gsb replicates user tables only.';
    END IF;
    -- gsb's own catalogs describe this site (and hold the peers' conninfo):
    -- each site keeps its own.
    IF rel IN ('gsb.site'::regclass, 'gsb.site_state'::regclass, 'gsb.tables'::regclass,
               'gsb.peers'::regclass, 'gsb.conflicts'::regclass) THEN
        RAISE EXCEPTION '"%" is one of gsb''s own catalogs', rel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Each site keeps its own; gsb.replicated_tables lists the built-in tables that gsb replicates.';
    END IF;
    PERFORM gsb._check_table_rights(rel, c.relowner);
    IF c.relpersistence <> 'p' THEN
        RAISE EXCEPTION 'table "%" is not logged', rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Temporary and unlogged tables are not in the WAL; use ALTER TABLE ... SET LOGGED.';
    END IF;
    IF c.relreplident = 'n'
       OR (c.relreplident = 'd' AND NOT EXISTS (
               SELECT 1 FROM pg_index WHERE indrelid = rel AND indisprimary))
       OR (c.relreplident = 'i' AND NOT EXISTS (
               SELECT 1 FROM pg_index WHERE indrelid = rel AND indisreplident)) THEN
        RAISE EXCEPTION 'table "%" has no primary key', rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'gsb finds rows on the other site by key: add a PRIMARY KEY, or use ALTER TABLE ... REPLICA IDENTITY USING INDEX on a unique index.';
    END IF;
    IF c.relreplident = 'f' AND NOT EXISTS (
           SELECT 1 FROM pg_index WHERE indrelid = rel AND indisprimary) THEN
        RAISE EXCEPTION 'table "%" has no primary key', rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'REPLICA IDENTITY FULL is not enough: gsb needs a primary key or a replica identity index.';
    END IF;
    -- gsb.tables is a user catalog table, where ON CONFLICT is not allowed.
    UPDATE gsb.tables t SET mode = replicate_table.mode, registered_at = now()
     WHERE t.relid = rel;
    IF NOT FOUND THEN
        INSERT INTO gsb.tables (relid, mode) VALUES (rel, replicate_table.mode);
    END IF;
    PERFORM gsb._invalidate_relation(rel);
END
$$;

CREATE FUNCTION gsb.unreplicate_table(rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'gsb.unreplicate_table: relation is NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Name a replicated table.';
    END IF;
    -- gsb's own tables (accounts, meetings, usage, site events, the daily
    -- copy's) keep the two sites' shared state: without them a site would
    -- not learn of the other's switches or meetings.
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = rel AND relnamespace = 'gsb'::regnamespace) THEN
        RAISE EXCEPTION 'table "%" is one of gsb''s own tables and stays replicated', rel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'gsb registers its own tables itself; only tables added with gsb.replicate_table() can be removed.';
    END IF;
    PERFORM gsb._check_table_rights(rel, (SELECT relowner FROM pg_class WHERE oid = rel));
    DELETE FROM gsb.tables WHERE relid = rel;
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = rel) THEN
        RAISE EXCEPTION 'relation with OID % does not exist', rel::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'The view gsb.replicated_tables lists what gsb replicates.';
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not replicated by gsb', rel
            USING ERRCODE = 'undefined_object',
                  HINT = 'The view gsb.replicated_tables lists what gsb replicates.';
    END IF;
    PERFORM gsb._invalidate_relation(rel);
END
$$;

CREATE VIEW gsb.replicated_tables AS
    SELECT t.relid::regclass AS relation, t.mode, t.registered_at
      FROM gsb.tables t;

-- A dropped table leaves gsb's catalog with it.
CREATE FUNCTION gsb._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM gsb.tables t
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objid = t.relid
       AND d.objsubid = 0;   -- the table itself, not one of its columns
END
$$;
CREATE EVENT TRIGGER gsb_sql_drop ON sql_drop EXECUTE FUNCTION gsb._on_sql_drop();
