-- src/sql/60_daily_copy.sql: the daily copy of the daily tables, primary to
-- backup.

------------------------------------------------------------------------------
-- The daily copy (primary to backup) and merged usage.
------------------------------------------------------------------------------
-- Copies every daily table from the primary, from one snapshot of it, and
-- replaces the backup's rows in one transaction: readers see the old set or
-- the new one. Returns the number of rows the daily tables hold afterwards.
-- On the primary: the rows of every daily table, one row per table (its
-- quoted name and its rows as an array of JSON texts), each read as the
-- table's owner (gsb._read_as_owner refuses anything but a plain table), all
-- under the one snapshot of the calling statement.
CREATE FUNCTION gsb._daily_rows() RETURNS TABLE (tbl text, rows_json text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS rel,
               quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
          FROM gsb.tables gt JOIN pg_class c ON c.oid = gt.relid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE gt.mode = 'daily'
         ORDER BY 2
    LOOP
        tbl := t.qualified;
        rows_json := (gsb._read_as_owner(t.rel, format(
            'SELECT pg_catalog.array_agg(pg_catalog.row_to_json(t)::pg_catalog.text) FROM ONLY %s t',
            t.qualified)))[1];
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE FUNCTION gsb.sync_config() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
AS $$
DECLARE
    me gsb.site := gsb._site();
    prim gsb.peers;
    problems text;
    tbls text[];
    rowsets text[];
    t record;
    total bigint := 0;
    n bigint;
    qualified text;
BEGIN
    IF me.role = 'primary' THEN
        RAISE EXCEPTION 'gsb.sync_config() runs on the backup site'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The daily tables are copied from the primary to the backup; call it on the backup.';
    END IF;
    SELECT * INTO prim FROM gsb.peers WHERE role = 'primary' ORDER BY name LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this backup has no primary peer'
            USING ERRCODE = 'undefined_object', HINT = 'Add the primary with gsb.add_peer().';
    END IF;
    -- The daily tables must be the same on both sites, or rows would be lost.
    WITH mine AS (SELECT * FROM gsb._table_columns('daily')),
         theirs AS (SELECT r[1] AS tbl, r[2] AS col, r[3] AS typ
                      FROM gsb._peer_query(prim.conninfo,
                           'SELECT tbl, col, typ FROM gsb._table_columns(''daily'')') r)
    SELECT string_agg(DISTINCT coalesce(m.tbl, x.tbl) || '.' || coalesce(m.col, x.col), ', ')
      INTO problems
      FROM mine m FULL JOIN theirs x ON x.tbl = m.tbl AND x.col = m.col
     WHERE m.col IS NULL OR x.col IS NULL OR m.typ <> x.typ;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'the daily tables differ between this site and the primary'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Columns missing or of another type on one side: ' || problems,
                  HINT = 'Create the same daily tables on both sites and register them with gsb.replicate_table(rel, ''daily'') on each.';
    END IF;

    -- No trigger or rule that a table owner planted runs with our rights.
    SET LOCAL session_replication_role = replica;
    -- One statement on the primary: one snapshot for every daily table. The
    -- rows are kept in variables, never in a table: a caller could have
    -- planted a temporary table of the same name, with triggers, in pg_temp.
    SELECT array_agg(r[1]), array_agg(r[2]) INTO tbls, rowsets
      FROM gsb._peer_query(prim.conninfo, 'SELECT tbl, rows_json FROM gsb._daily_rows()') r;
    FOR t IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM gsb.tables gt JOIN pg_class c ON c.oid = gt.relid
         WHERE gt.mode = 'daily'
         ORDER BY c.oid::regclass::text
    LOOP
        IF t.relkind <> 'r' THEN
            RAISE EXCEPTION '% is not a table', t.rel USING ERRCODE = 'wrong_object_type';
        END IF;
        -- As the table's owner: any code its owner attached to it runs with
        -- the owner's rights, not gsb's.
        qualified := (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.oid = t.rel);
        PERFORM gsb._run_as_owner(t.rel, format('DELETE FROM ONLY %s', qualified), '{}');
        n := gsb._run_as_owner(t.rel,
                 format('INSERT INTO %1$s SELECT (pg_catalog.json_populate_record(NULL::%1$s, '
                        'x::pg_catalog.json)).* FROM pg_catalog.unnest($1) x', qualified),
                 coalesce((SELECT x.rows_json::text[]
                             FROM unnest(tbls, rowsets) AS x(tbl, rows_json)
                            WHERE x.tbl = qualified), '{}'));
        total := total + n;
    END LOOP;
    UPDATE gsb.site_state SET last_config_sync = now(), last_config_sync_rows = total;
    RETURN total;
END
$$;
