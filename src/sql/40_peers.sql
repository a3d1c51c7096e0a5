-- src/sql/40_peers.sql: peers, replication status, conflicts, checks of a
-- peer's tables, and gsb.verify().

------------------------------------------------------------------------------
-- Peers, replication status and conflicts.
------------------------------------------------------------------------------
-- The other site(s). conninfo may hold a password: not readable by PUBLIC.
CREATE TABLE gsb.peers (
    name text PRIMARY KEY,
    conninfo text NOT NULL,
    copy_data boolean NOT NULL DEFAULT true,
    role text NOT NULL CHECK (role IN ('primary', 'backup')),
    -- 'init' until the apply worker has created its slot on the peer and
    -- copied the peer's rows; then 'ready'.
    sync_state text NOT NULL DEFAULT 'init' CHECK (sync_state IN ('init', 'ready')),
    enabled boolean NOT NULL DEFAULT true,
    added_at timestamptz NOT NULL DEFAULT now(),
    synced_at timestamptz
);

CREATE TABLE gsb.conflicts (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    relation regclass,
    key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('insert_exists', 'update_missing', 'update_differs',
                                       'delete_missing', 'delete_differs', 'update_exists')),
    resolution text NOT NULL CHECK (resolution IN ('apply_remote', 'keep_local', 'skip')),
    local_row jsonb,
    remote_row jsonb,
    remote_site text NOT NULL,
    remote_commit_ts timestamptz
);
CREATE INDEX conflicts_at_idx ON gsb.conflicts (at);

-- STABLE, not IMMUTABLE: a test build's fault point can change it.
CREATE FUNCTION gsb.protocol_version() RETURNS int
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'gsb_protocol_version';

-- Connects to a peer and says whether it asked for the password.
CREATE FUNCTION gsb._peer_login_uses_password(conninfo text) RETURNS boolean
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_peer_login_uses_password';

-- Runs one query on a peer (through gsb's connection helper, with an empty
-- search_path there) and returns its rows as text arrays. It waits at most
-- gsb.peer_timeout, plus runs_for when the query itself waits on the peer.
CREATE FUNCTION gsb._peer_query(conninfo text, query text, params text[] DEFAULT NULL,
                                runs_for interval DEFAULT NULL)
    RETURNS SETOF text[]
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_peer_query';

CREATE FUNCTION gsb._worker_status(
    OUT peer text, OUT state text, OUT received_lsn pg_lsn, OUT applied_lsn pg_lsn,
    OUT peer_end_lsn pg_lsn, OUT last_message_at timestamptz, OUT last_error text, OUT pid int)
    RETURNS SETOF record
    LANGUAGE c ROWS 8 AS 'MODULE_PATHNAME', 'gsb_worker_status';

CREATE FUNCTION gsb._monitor_status(OUT running boolean, OUT peer_reachable boolean,
                                    OUT last_heartbeat_at timestamptz, OUT last_monitor_error text)
    RETURNS SETOF record
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_monitor_status';

CREATE FUNCTION gsb._stop_worker(peer text, suppress interval) RETURNS boolean
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_stop_worker';

CREATE FUNCTION gsb._release_peer(peer text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_release_peer';

CREATE FUNCTION gsb._wake_supervisor() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_wake_supervisor';

-- The names of replication objects, built in one place (src/names.hpp): the
-- slot on a peer from which `site` reads, and the origin of a peer's changes.
CREATE FUNCTION gsb._slot_name(site text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'gsb_slot_name';

CREATE FUNCTION gsb._origin_name(site text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'gsb_origin_name';

-- One row per peer. lag_bytes: WAL the peer has sent past what is applied
-- here (0 once caught up).
CREATE VIEW gsb.status AS
    SELECT p.name AS peer,
           CASE WHEN NOT p.enabled THEN 'down'
                WHEN w.state IS NULL THEN 'down'
                WHEN p.sync_state = 'init' AND w.state IN ('connecting', 'streaming')
                    THEN 'initial_sync'
                ELSE w.state END AS state,
           w.received_lsn,
           w.applied_lsn,
           CASE WHEN w.peer_end_lsn IS NOT NULL AND w.applied_lsn IS NOT NULL
                THEN greatest(pg_wal_lsn_diff(w.peer_end_lsn, w.applied_lsn), 0)::bigint
           END AS lag_bytes,
           w.last_message_at,
           (SELECT count(*) FROM gsb.conflicts c WHERE c.remote_site = p.name) AS conflicts,
           w.last_error,
           st.active_site,
           st.last_config_sync,
           m.peer_reachable,
           m.last_heartbeat_at,
           m.last_monitor_error,
           -- the witness (NULL: none) and whether its last ping was answered
           wi.name AS witness,
           CASE WHEN wi.name IS NOT NULL THEN coalesce(ws.reachable, false) END AS witness_reachable,
           CASE WHEN wi.name IS NULL
                THEN 'no witness: a cut link between the sites can leave both sites active '
                     '(split brain); add one with gsb.add_witness()'
                WHEN ws.fenced
                THEN 'fenced: this site reaches neither its peer nor the witness'
           END AS warning
      FROM gsb.peers p
      LEFT JOIN gsb._worker_status() w ON w.peer = p.name
      CROSS JOIN gsb.site_state st
      LEFT JOIN gsb._monitor_status() m ON true
      LEFT JOIN gsb.witness wi ON true
      LEFT JOIN gsb._witness_status() ws ON true;

CREATE FUNCTION gsb._check_peer_name(site_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF site_name IS NULL OR site_name !~ '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'invalid site name: %', coalesce(quote_literal(site_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A site name is 1 to 40 lower-case letters, digits or underscores, starting with a letter.';
    END IF;
END
$$;

-- The one description of a table's columns, in column order: name, type
-- (without typmod, as both sites print it), place in the key (NULL
-- when not part of it) and whether it is generated. The checks of a peer's
-- tables (gsb._table_columns), gsb.verify() and the copies read it.
CREATE FUNCTION gsb._columns(rel oid)
RETURNS TABLE (attnum int, col text, typ text, key_pos int, generated boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.attnum::int, a.attname::text, format_type(a.atttypid, NULL),
           -- the key as the apply worker and the plugin take it
           -- (catalog::KeyIndex): the replica identity index when the table
           -- names one, else the primary key
           (SELECT k.ord::int
              FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             WHERE i.indrelid = a.attrelid AND k.attnum = a.attnum
               AND CASE WHEN (SELECT c.relreplident FROM pg_class c WHERE c.oid = a.attrelid) = 'i'
                        THEN i.indisreplident ELSE i.indisprimary END),
           a.attgenerated <> ''
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum
$$;

-- The tables of a mode and their stored columns, one text row each, in a
-- form both sites compute the same way.
CREATE FUNCTION gsb._table_columns(p_mode text) RETURNS TABLE (tbl text, col text, typ text)
LANGUAGE sql STABLE SET search_path = '' AS $$
    SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
               OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
           k.col, k.typ
      FROM gsb.tables t
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     CROSS JOIN LATERAL gsb._columns(c.oid) k
     WHERE t.mode OPERATOR(pg_catalog.=) p_mode AND NOT k.generated
$$;

-- log_min_error_statement = panic: when add_peer fails, the statement (with
-- the conninfo, which may hold a password) is not written to the server log
-- with the error; the error itself still is. (The setting holds until the
-- error has been reported: PostgreSQL restores it when the transaction ends.)
CREATE FUNCTION gsb.add_peer(site_name text, conninfo text, copy_data boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    refused text;
    me gsb.site;
    facts text[];
    problems text;
BEGIN
    PERFORM gsb._require_logical_wal();
    me := gsb._site();
    PERFORM gsb._check_peer_name(site_name);
    IF site_name = me.name THEN
        RAISE EXCEPTION 'a site cannot be its own peer'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('This site is %s; name the other site.', me.name);
    END IF;
    IF conninfo IS NULL OR btrim(conninfo) = '' THEN
        RAISE EXCEPTION 'a peer needs a connection string'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a libpq connection string such as ''host=... port=... dbname=...''.';
    END IF;
    -- The server connects with its own credentials (its .pgpass, its
    -- certificates, trust and peer authentication): a role that is not a
    -- superuser must authenticate with a password of its own, as dblink
    -- demands, or it could reach what only the server may.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        refused := CASE
            WHEN NOT gsb._conninfo_has_password(conninfo)
                THEN 'Only superusers may add a peer whose connection string has no password.'
            WHEN NOT gsb._peer_login_uses_password(conninfo)
                THEN 'The peer let this server in without asking for the password.'
        END;
        IF refused IS NOT NULL THEN
            RAISE EXCEPTION 'password is required'
                USING ERRCODE = 'insufficient_privilege', DETAIL = refused,
                      HINT = 'Put password=... in the connection string and have the peer ask for it (e.g. scram-sha-256 in pg_hba.conf), or have a superuser add the peer.';
        END IF;
    END IF;
    IF copy_data IS NULL THEN
        RAISE EXCEPTION 'copy_data must be true or false'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'true (the default) copies the rows the peer has first; false streams only new changes.';
    END IF;
    IF EXISTS (SELECT 1 FROM gsb.peers p WHERE p.name = site_name) THEN
        RAISE EXCEPTION 'site % is already a peer of this site', site_name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use gsb.drop_peer() first to change its connection string.';
    END IF;
    IF (SELECT count(*) FROM gsb.peers) >= 7 THEN
        RAISE EXCEPTION 'too many peers' USING ERRCODE = 'program_limit_exceeded';
    END IF;

    -- Connect first: errors here are SQLSTATE class 08 with libpq's reason.
    BEGIN
        SELECT r INTO facts FROM gsb._peer_query(conninfo,
            'SELECT gsb.site_name(), gsb.site_role(), gsb.protocol_version()::text,
                    pg_catalog.current_setting(''server_encoding'')') r;
    EXCEPTION
        WHEN undefined_function OR invalid_schema_name OR undefined_table THEN
            RAISE EXCEPTION 'gsb is not installed on the peer, or its site is not initialised'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'On the peer: CREATE EXTENSION gsb; SELECT gsb.init_site(name, role).';
        WHEN object_not_in_prerequisite_state THEN
            RAISE EXCEPTION 'the peer''s site is not initialised'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'On the peer: SELECT gsb.init_site(name, role).';
    END;
    IF facts[2] = 'witness' OR me.role = 'witness' THEN
        RAISE EXCEPTION '% is a witness, not a data site', CASE WHEN me.role = 'witness' THEN 'this site' ELSE 'the peer' END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A witness replicates nothing: add it on each data site with gsb.add_witness().';
    END IF;
    IF facts[1] IS DISTINCT FROM site_name THEN
        RAISE EXCEPTION 'the peer at that address is site %, not %', facts[1], site_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the peer as it named itself in gsb.init_site().';
    END IF;
    IF EXISTS (SELECT 1 FROM gsb.peers p WHERE p.role = facts[2]) THEN
        RAISE EXCEPTION 'this site already has a % peer: %', facts[2],
                        (SELECT p.name FROM gsb.peers p WHERE p.role = facts[2] LIMIT 1)
            USING ERRCODE = 'duplicate_object',
                  HINT = 'gsb pairs one primary with one backup; drop the other peer first (gsb.drop_peer()).';
    END IF;
    IF facts[2] = me.role THEN
        RAISE EXCEPTION 'both sites are %', me.role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'One site is the primary and the other the backup.';
    END IF;
    IF facts[3]::int <> gsb.protocol_version() THEN
        RAISE EXCEPTION 'the peer speaks gsb protocol version %, this site %', facts[3],
                        gsb.protocol_version()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run the same gsb version on both sites.';
    END IF;

    -- Values travel byte for byte (binary values are only verified, not
    -- converted): both databases must have the same encoding.
    IF facts[4] IS DISTINCT FROM current_setting('server_encoding') THEN
        RAISE EXCEPTION 'the peer''s database encoding is %, this site''s is %', facts[4],
                        current_setting('server_encoding')
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Create the databases of both sites with the same encoding.';
    END IF;

    -- The realtime tables must be the same on both sites.
    WITH mine AS (SELECT * FROM gsb._table_columns('realtime')),
         theirs AS (SELECT r[1] AS tbl, r[2] AS col, r[3] AS typ
                      FROM gsb._peer_query(conninfo,
                           'SELECT tbl, col, typ FROM gsb._table_columns(''realtime'')') r),
         diff AS (
            SELECT coalesce(m.tbl, t.tbl) AS tbl,
                   CASE WHEN NOT EXISTS (SELECT 1 FROM theirs x WHERE x.tbl = m.tbl)
                            THEN format('table %s is not replicated on the peer', m.tbl)
                        WHEN NOT EXISTS (SELECT 1 FROM mine x WHERE x.tbl = t.tbl)
                            THEN format('table %s is replicated on the peer but not here', t.tbl)
                        WHEN t.col IS NULL
                            THEN format('column %s.%s is missing on the peer', m.tbl, m.col)
                        WHEN m.col IS NULL
                            THEN format('column %s.%s is missing here', t.tbl, t.col)
                        ELSE format('column %s.%s is %s here but %s on the peer',
                                    m.tbl, m.col, m.typ, t.typ)
                   END AS problem
              FROM mine m FULL JOIN theirs t ON t.tbl = m.tbl AND t.col = m.col
             WHERE m.col IS NULL OR t.col IS NULL OR m.typ <> t.typ)
    SELECT string_agg(DISTINCT problem, '; ') INTO problems FROM diff;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'the replicated tables differ between this site and %', site_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = problems,
                  HINT = 'Create the same tables with the same columns on both sites and call gsb.replicate_table() on each.';
    END IF;

    INSERT INTO gsb.peers (name, conninfo, copy_data, role)
    VALUES (site_name, conninfo, copy_data, facts[2]);
    -- A peer dropped a moment ago under this name: forget its state, so its
    -- new worker starts at once.
    PERFORM gsb._release_peer(site_name);
    IF facts[2] = 'primary' THEN
        UPDATE gsb.site_state SET active_site = site_name, changed_at = now()
         WHERE active_site IS NULL;
    END IF;
    PERFORM gsb._wake_supervisor();
END
$$;

CREATE FUNCTION gsb.drop_peer(site_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me gsb.site := gsb._site();
    p gsb.peers;
    slot text := gsb._slot_name(me.name);
    origin text := gsb._origin_name(site_name);
    done boolean := false;
    tries int := 0;
BEGIN
    PERFORM gsb._check_peer_name(site_name);
    SELECT * INTO p FROM gsb.peers WHERE name = site_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'site % is not a peer of this site', site_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT peer FROM gsb.status lists the peers.';
    END IF;
    -- Stop the worker and keep the supervisor from restarting it.
    IF NOT gsb._stop_worker(site_name, '1 minute') THEN
        RAISE EXCEPTION 'the apply worker for % did not stop', site_name
            USING ERRCODE = 'object_in_use', HINT = 'Try again.';
    END IF;
    -- Drop this site's slot on the peer. The peer's walsender may need a
    -- moment to notice that the worker is gone.
    LOOP
        BEGIN
            PERFORM gsb._peer_query(p.conninfo,
                'SELECT pg_catalog.pg_drop_replication_slot(slot_name) '
                'FROM pg_catalog.pg_replication_slots WHERE slot_name = $1', ARRAY[slot]);
            done := true;
        EXCEPTION
            WHEN object_in_use THEN
                tries := tries + 1;
                IF tries > 100 THEN
                    RAISE WARNING 'replication slot % on peer % is still in use and was left there', slot, site_name
                        USING HINT = format('Drop it on the peer with SELECT pg_drop_replication_slot(%L).', slot);
                    done := true;
                ELSE
                    PERFORM pg_sleep(0.1);
                END IF;
            WHEN sqlclient_unable_to_establish_sqlconnection OR connection_exception
                 OR connection_failure THEN
                RAISE WARNING 'peer % is unreachable: replication slot % was left on it', site_name, slot
                    USING DETAIL = SQLERRM,
                          HINT = format('When the peer is back, drop it there with SELECT pg_drop_replication_slot(%L); until then it holds WAL on the peer.', slot);
                done := true;
        END;
        EXIT WHEN done;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = origin) THEN
        PERFORM pg_replication_origin_drop(origin);
    END IF;
    -- The worker stays suppressed (a minute) past this commit; gsb.add_peer
    -- of the same name lifts that at once.
    DELETE FROM gsb.peers WHERE name = site_name;
    PERFORM gsb._wake_supervisor();
END
$$;

-- True once every change committed here before the call has been applied
-- (and flushed) on every peer.
CREATE FUNCTION gsb.wait_for_peer(timeout interval DEFAULT '60 s') RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target pg_lsn := pg_current_wal_lsn();
    deadline timestamptz;
    behind int;
BEGIN
    IF timeout IS NULL OR timeout < interval '0' THEN
        RAISE EXCEPTION 'invalid timeout: %', coalesce(timeout::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give how long to wait, e.g. ''60 s'' (the default); ''0'' only looks.';
    END IF;
    BEGIN
        deadline := clock_timestamp() + timeout;
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'invalid timeout: % is too long', timeout
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give how long to wait, e.g. ''60 s'' (the default).';
    END;
    PERFORM gsb._site();
    IF NOT EXISTS (SELECT 1 FROM gsb.peers) THEN
        RAISE EXCEPTION 'this site has no peer' USING ERRCODE = 'undefined_object',
            HINT = 'Add one with gsb.add_peer().';
    END IF;
    LOOP
        -- Each peer's worker reads from the slot named after it here.
        SELECT count(*) INTO behind
          FROM gsb.peers p
          LEFT JOIN pg_replication_slots s ON s.slot_name = gsb._slot_name(p.name)
         WHERE s.confirmed_flush_lsn IS NULL OR s.confirmed_flush_lsn < target;
        IF behind = 0 THEN
            RETURN true;
        END IF;
        IF clock_timestamp() >= deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
END
$$;

-- Compares each realtime table (or one) with the peer, after both sides
-- have applied what the other had committed when the call began.
-- The row count and digest of one realtime table of this site, read as its
-- owner (gsb._read_as_owner refuses anything but a plain table): verify calls
-- it here and on the peer, with the same settings on both, so that both
-- compute the same text for the same rows.
CREATE FUNCTION gsb._digest(rel regclass) RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
SET timezone = 'UTC'
AS $$
DECLARE
    cols text;
    keycols text;
    qualified text;
BEGIN
    IF rel IS NULL OR NOT EXISTS (SELECT 1 FROM gsb.tables WHERE relid = rel AND mode = 'realtime') THEN
        RAISE EXCEPTION 'table % is not replicated in real time on site %', rel, gsb.site_name()
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with gsb.replicate_table() on every site.';
    END IF;
    -- every column, generated ones too, by name (as name sorts)
    SELECT string_agg(format('%I', k.col), ',' ORDER BY k.col COLLATE "C"),
           string_agg(format('%I', k.col), ',' ORDER BY k.key_pos) FILTER (WHERE k.key_pos IS NOT NULL)
      INTO cols, keycols
      FROM gsb._columns(rel) k;
    SELECT format('%I.%I', n.nspname, c.relname) INTO qualified
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    RETURN gsb._read_as_owner(rel,
        format('SELECT count(*)::pg_catalog.text, '
               'pg_catalog.md5(coalesce(pg_catalog.string_agg('
               'pg_catalog.md5(ROW(%s)::pg_catalog.text), %L ORDER BY %s), %L)) '
               'FROM ONLY %s', cols, '', coalesce(keycols, cols), '', qualified));
END
$$;

CREATE FUNCTION gsb.verify(rel regclass DEFAULT NULL)
RETURNS TABLE (relation regclass, local_rows bigint, peer_rows bigint, local_hash text,
               peer_hash text, status text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
SET timezone = 'UTC'
AS $$
DECLARE
    p gsb.peers;
    t record;
    loc text[];
    rem text[];
    done boolean;
BEGIN
    PERFORM gsb._site();
    IF rel IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM gsb.tables WHERE relid = rel AND mode = 'realtime') THEN
        RAISE EXCEPTION 'table % is not replicated in real time', rel
            USING ERRCODE = 'undefined_object',
                  HINT = 'gsb.verify() compares the tables registered with mode ''realtime''; NULL compares them all.';
    END IF;
    p := gsb._other_site();  -- 'this site has no peer' when there is none
    -- An unreachable peer is an error at once (class 08), not after the wait.
    PERFORM gsb._peer_query(p.conninfo, 'SELECT 1');
    -- A consistent point: our changes have reached the peer, and the peer's
    -- (as of now) have reached us.
    IF NOT gsb.wait_for_peer('60 s') THEN
        RAISE WARNING 'peer % has not applied all of this site''s changes yet', p.name;
    END IF;
    SELECT r[1]::boolean INTO STRICT done FROM gsb._peer_query(p.conninfo,
        'SELECT gsb.wait_for_peer(''60 s'')::text', runs_for => '60 s') r;
    IF NOT done THEN
        RAISE WARNING 'this site has not applied all of peer %''s changes yet', p.name;
    END IF;
    FOR t IN
        SELECT c.oid::regclass AS relid, format('%I.%I', n.nspname, c.relname) AS qualified
          FROM gsb.tables gt
          JOIN pg_class c ON c.oid = gt.relid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE gt.mode = 'realtime' AND (rel IS NULL OR gt.relid = rel)
         ORDER BY c.oid::regclass::text
    LOOP
        -- Each side reads its own table as that table's owner: a relation
        -- that is no longer a plain table is refused on either side.
        loc := gsb._digest(t.relid);
        SELECT r[1]::text[] INTO rem FROM gsb._peer_query(p.conninfo,
            'SELECT gsb._digest($1::pg_catalog.regclass)', ARRAY[t.qualified]) r;
        relation := t.relid;
        local_rows := loc[1]::bigint;
        peer_rows := rem[1]::bigint;
        local_hash := loc[2];
        peer_hash := rem[2];
        status := CASE WHEN loc[1] = rem[1] AND loc[2] = rem[2] THEN 'match' ELSE 'differs' END;
        RETURN NEXT;
    END LOOP;
END
$$;
