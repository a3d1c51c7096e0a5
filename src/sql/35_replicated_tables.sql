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

-- A table registered here must exist on the other site with the same
-- stored columns (names and types, as gsb._columns() gives them; the apply
-- worker maps columns by name, so their order may differ): otherwise the
-- stream (realtime) or the daily copy (daily) would stall on it. The peer
-- need not have registered it yet (each site calls replicate_table), but
-- if it has, with the same mode. Asks every data peer that is linked; with
-- none, there is nothing to ask (gsb.add_peer compares the registered tables
-- then). The peer's catalogs are read by name, as its superuser: no
-- function of the peer's users runs. An unreachable peer is an error of
-- class 08 within gsb.peer_timeout (gsb._peer_query).
CREATE FUNCTION gsb._check_table_on_peers(rel regclass, mode text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p gsb.peers;
    nsp text;
    relname text;
    qualified text;
    theirs text[][];
    problems text;
BEGIN
    IF rel IS NULL OR mode IS NULL THEN
        RAISE EXCEPTION 'gsb._check_table_on_peers: the table and the mode are required'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'gsb.replicate_table() calls it; call that instead.';
    END IF;
    SELECT n.nspname, c.relname INTO nsp, relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', rel::oid
            USING ERRCODE = 'undefined_table', HINT = 'Name an existing table.';
    END IF;
    qualified := quote_ident(nsp) || '.' || quote_ident(relname);
    FOR p IN SELECT * FROM gsb.peers WHERE role IN ('primary', 'backup') ORDER BY name LOOP
        BEGIN
            -- One row per stored column (one row with NULL columns for a
            -- relation without any); none when there is no such relation.
            SELECT array_agg(ARRAY[r[1], r[2], r[3], r[4]]) INTO theirs
              FROM gsb._peer_query(p.conninfo,
                   'SELECT c.relkind::pg_catalog.text, k.col, k.typ, t.mode '
                   'FROM pg_catalog.pg_class c '
                   'JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace '
                   'LEFT JOIN gsb.tables t ON t.relid OPERATOR(pg_catalog.=) c.oid '
                   'LEFT JOIN LATERAL gsb._columns(c.oid) k ON NOT k.generated '
                   'WHERE n.nspname OPERATOR(pg_catalog.=) $1 '
                   'AND c.relname OPERATOR(pg_catalog.=) $2',
                   ARRAY[nsp, relname]) r;
        EXCEPTION WHEN connection_exception THEN
            RAISE EXCEPTION 'cannot compare table % with peer %', qualified, p.name
                USING ERRCODE = SQLSTATE, DETAIL = SQLERRM,
                      HINT = 'gsb.replicate_table() checks that the peer has the same table first; try again once the peer answers (gsb.peer_timeout bounds the wait).';
        END;
        IF theirs IS NULL THEN
            RAISE EXCEPTION 'table % does not exist on peer %', qualified, p.name
                USING ERRCODE = 'undefined_table',
                      HINT = format('Create it on %s with the same columns first (or with gsb.replicate_ddl()), then call gsb.replicate_table() on each site.', p.name);
        END IF;
        IF theirs[1][1] IS DISTINCT FROM 'r' THEN
            RAISE EXCEPTION '% is not a table on peer %', qualified, p.name
                USING ERRCODE = 'wrong_object_type',
                      HINT = format('gsb replicates ordinary tables only: make it one on %s, with the same columns.', p.name);
        END IF;
        IF theirs[1][4] IS NOT NULL AND theirs[1][4] <> mode THEN
            RAISE EXCEPTION 'table % is replicated ''%'' on peer %, not ''%''', qualified, theirs[1][4], p.name, mode
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Register it with the same mode on both sites.';
        END IF;
        WITH mine AS (SELECT k.col, k.typ FROM gsb._columns(rel) k WHERE NOT k.generated),
             peer_cols AS (SELECT theirs[i][2] AS col, theirs[i][3] AS typ
                         FROM generate_subscripts(theirs, 1) i WHERE theirs[i][2] IS NOT NULL)
        SELECT string_agg(CASE WHEN o.col IS NULL THEN format('column %s is missing on %s', m.col, p.name)
                               WHEN m.col IS NULL THEN format('column %s is on %s but not here', o.col, p.name)
                               ELSE format('column %s is %s here but %s on %s', m.col, m.typ, o.typ, p.name)
                          END, '; ' ORDER BY coalesce(m.col, o.col))
          INTO problems
          FROM mine m FULL JOIN peer_cols o ON o.col = m.col
         WHERE m.col IS NULL OR o.col IS NULL OR m.typ <> o.typ;
        IF problems IS NOT NULL THEN
            RAISE EXCEPTION 'table % differs on peer %', qualified, p.name
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = problems || '.',
                      HINT = 'Give the table the same columns (names and types) on both sites, then call gsb.replicate_table() again.';
        END IF;
    END LOOP;
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
    PERFORM gsb._check_table_on_peers(rel, replicate_table.mode);
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
