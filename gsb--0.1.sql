-- gsb--0.1.sql: the install script of extension gsb (schema gsb).
--
-- Catalogs, built-in service tables, the SQL API written in SQL/PL/pgSQL, and
-- privileges. Functions that need PostgreSQL internals are in gsb.so.
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

------------------------------------------------------------------------------
-- Catalogs. gsb.site and gsb.tables are read by the output plugin while it
-- decodes, under a historic snapshot, so they are user catalog tables.
------------------------------------------------------------------------------
CREATE TABLE gsb.site (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('primary', 'backup')),
    site_id int NOT NULL CHECK (site_id BETWEEN 1 AND 15),
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);

-- Which site serves users now, as this site knows it. term only grows: of
-- two views, the one with the higher term is the newer (equal terms: the
-- primary's view).
CREATE TABLE gsb.site_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    term bigint NOT NULL DEFAULT 0,
    active_site text,
    mode text NOT NULL DEFAULT 'normal' CHECK (mode IN ('normal', 'failed_over', 'maintenance')),
    -- set by the site monitor: an automatic failover (failback may follow
    -- by itself) or maintenance started by the window (ends with it)
    automatic boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now(),
    -- when this backup took over from a failed primary whose late tail (its
    -- changes committed before then but not yet sent) has not arrived yet
    late_tail_since timestamptz,
    -- the last daily copy from the primary (backup only)
    last_config_sync timestamptz,
    last_config_sync_rows bigint
);
INSERT INTO gsb.site_state DEFAULT VALUES;

CREATE TABLE gsb.tables (
    relid oid PRIMARY KEY,
    mode text NOT NULL CHECK (mode IN ('realtime', 'daily')),
    registered_at timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);

------------------------------------------------------------------------------
-- Built-in service tables. Ids come from gsb.next_id(): a site's own sequence
-- value times 16 plus the site's number (primary 1, backup 2), so ids made on
-- different sites never collide and id % 16 tells where a row was born.
------------------------------------------------------------------------------
CREATE SEQUENCE gsb.accounts_id_seq;
CREATE SEQUENCE gsb.meetings_id_seq;
CREATE SEQUENCE gsb.usage_id_seq;
CREATE SEQUENCE gsb.site_events_id_seq;

CREATE FUNCTION gsb.next_id(seq regclass) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid int;
BEGIN
    SELECT site_id INTO sid FROM gsb.site;
    IF sid IS NULL THEN
        RAISE EXCEPTION 'gsb: this site is not initialised'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run SELECT gsb.init_site(site_name, role) first.';
    END IF;
    IF seq IS NULL OR seq NOT IN ('gsb.accounts_id_seq'::regclass, 'gsb.meetings_id_seq'::regclass,
                                  'gsb.usage_id_seq'::regclass, 'gsb.site_events_id_seq'::regclass) THEN
        RAISE EXCEPTION 'gsb.next_id: % is not one of gsb''s id sequences', coalesce(seq::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'It serves the ids of gsb''s own tables: gsb.accounts_id_seq, gsb.meetings_id_seq, gsb.usage_id_seq, gsb.site_events_id_seq.';
    END IF;
    RETURN nextval(seq) * 16 + sid;
END
$$;

CREATE TABLE gsb.accounts (
    id bigint PRIMARY KEY DEFAULT gsb.next_id('gsb.accounts_id_seq'),
    email text NOT NULL,
    name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gsb.meetings (
    id bigint PRIMARY KEY DEFAULT gsb.next_id('gsb.meetings_id_seq'),
    account_id bigint NOT NULL,
    title text,
    starts_at timestamptz,
    tele_number text,
    status text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'in_progress', 'ended')),
    hosted_site text,
    started_at timestamptz,
    ended_at timestamptz,
    created_site text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gsb.usage (
    id bigint PRIMARY KEY DEFAULT gsb.next_id('gsb.usage_id_seq'),
    meeting_id bigint NOT NULL,
    account_id bigint NOT NULL,
    site text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz NOT NULL,
    minutes numeric NOT NULL CHECK (minutes >= 0)
);
CREATE INDEX usage_started_at_idx ON gsb.usage (started_at);

CREATE TABLE gsb.site_config (key text PRIMARY KEY, value text);
CREATE TABLE gsb.custom_pages (path text PRIMARY KEY, content text);
CREATE TABLE gsb.client_versions (platform text PRIMARY KEY, version text);

INSERT INTO gsb.tables (relid, mode) VALUES
    ('gsb.accounts'::regclass, 'realtime'),
    ('gsb.meetings'::regclass, 'realtime'),
    ('gsb.usage'::regclass, 'realtime'),
    ('gsb.site_config'::regclass, 'daily'),
    ('gsb.custom_pages'::regclass, 'daily'),
    ('gsb.client_versions'::regclass, 'daily');

------------------------------------------------------------------------------
-- Functions in gsb.so.
------------------------------------------------------------------------------
-- Makes decoders and apply workers forget what they cached about a relation.
CREATE FUNCTION gsb._invalidate_relation(rel regclass) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_invalidate_relation';

-- Runs one statement ($1 = rows) as the owner of rel, restricted, with an
-- empty search_path (the daily copy writes through it).
CREATE FUNCTION gsb._run_as_owner(rel regclass, sql text, rows text[]) RETURNS bigint
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_run_as_owner';

-- Raises an error of the given kind through gsb's C++/PostgreSQL boundary:
-- 'postgres' (a PostgreSQL error inside a C++ frame), 'gsb' (a gsb::Error
-- with SQLSTATE and hint), 'std' (a std::exception), 'alloc' (std::bad_alloc).
-- For tests of that boundary; superusers only.
CREATE FUNCTION gsb.selftest_raise(kind text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_raise';

-- Makes a value of type typ from binary bytes as the apply worker does (the
-- commonest built-in types directly, others through the type's receive
-- function) and checks the direct path against the receive function. Returns
-- 'direct: <value>' or 'receive function: <value>'; a bad value raises the
-- receive function's error. For tests; superusers only.
CREATE FUNCTION gsb.selftest_receive(bytes bytea, typ regtype, typmod int DEFAULT -1) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_receive';

------------------------------------------------------------------------------
-- Site.
------------------------------------------------------------------------------
CREATE FUNCTION gsb._require_logical_wal() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('wal_level') <> 'logical' THEN
        RAISE EXCEPTION 'gsb needs wal_level = logical (it is %)', current_setting('wal_level')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set wal_level = logical in postgresql.conf and restart the server.';
    END IF;
    IF current_setting('track_commit_timestamp') <> 'on' THEN
        RAISE EXCEPTION 'gsb needs track_commit_timestamp = on'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set track_commit_timestamp = on in postgresql.conf and restart the server; gsb resolves conflicts by commit time.';
    END IF;
END
$$;

CREATE FUNCTION gsb.init_site(site_name text, role text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur gsb.site;
BEGIN
    IF site_name IS NULL OR site_name !~ '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'invalid site name: %', coalesce(quote_literal(site_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A site name is 1 to 40 lower-case letters, digits or underscores, starting with a letter (it names replication slots and origins).';
    END IF;
    IF role IS NULL OR role NOT IN ('primary', 'backup') THEN
        RAISE EXCEPTION 'invalid site role: %', coalesce(quote_literal(role), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The role is ''primary'' or ''backup''.';
    END IF;
    PERFORM gsb._require_logical_wal();
    SELECT * INTO cur FROM gsb.site FOR UPDATE;
    IF FOUND THEN
        IF cur.name = site_name AND cur.role = role THEN
            RETURN;  -- already so: nothing to do
        END IF;
        RAISE EXCEPTION 'this site is already initialised as % (%)', cur.name, cur.role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A site keeps its name and role: its peers know it by them. Drop and recreate the extension to start over.';
    END IF;
    INSERT INTO gsb.site (name, role, site_id)
    VALUES (site_name, role, CASE role WHEN 'primary' THEN 1 ELSE 2 END);
    -- The primary serves until something says otherwise; a backup learns the
    -- primary's name from gsb.add_peer.
    UPDATE gsb.site_state
       SET active_site = CASE role WHEN 'primary' THEN site_name END, changed_at = now();
END
$$;

CREATE FUNCTION gsb._site() RETURNS gsb.site
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s gsb.site;
BEGIN
    SELECT * INTO s FROM gsb.site;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'gsb: this site is not initialised'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run SELECT gsb.init_site(site_name, role) first.';
    END IF;
    RETURN s;
END
$$;

CREATE FUNCTION gsb.site_name() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT (gsb._site()).name $$;

CREATE FUNCTION gsb.site_role() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT (gsb._site()).role $$;

------------------------------------------------------------------------------
-- Replicated tables.
------------------------------------------------------------------------------
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

------------------------------------------------------------------------------
-- Accounts and meetings.
------------------------------------------------------------------------------
CREATE FUNCTION gsb.create_account(email text, name text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    IF email IS NULL OR btrim(email) = '' THEN
        RAISE EXCEPTION 'an account needs an e-mail address'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a non-empty email.';
    END IF;
    PERFORM gsb._site();
    INSERT INTO gsb.accounts (email, name) VALUES (email, name) RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

CREATE FUNCTION gsb.schedule_meeting(account_id bigint, title text, starts_at timestamptz,
                                     tele_number text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s gsb.site := gsb._site();
    new_id bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'a meeting needs an account'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the id that gsb.create_account() returned.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM gsb.accounts a WHERE a.id = account_id) THEN
        RAISE EXCEPTION 'account % does not exist', account_id
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Create the account with gsb.create_account() first, on either site.';
    END IF;
    IF starts_at IS NULL THEN
        RAISE EXCEPTION 'a meeting needs a start time'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass starts_at, e.g. ''2030-01-07 17:00+00''.';
    END IF;
    IF NOT isfinite(starts_at) THEN
        RAISE EXCEPTION 'a meeting needs a finite start time, not %', starts_at
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass starts_at as a date and time, e.g. ''2030-01-07 17:00+00''.';
    END IF;
    IF btrim(tele_number) = '' THEN
        RAISE EXCEPTION 'a teleconference number cannot be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass NULL (or leave it out) to have gsb choose one.';
    END IF;
    new_id := gsb.next_id('gsb.meetings_id_seq');
    -- The teleconference number is chosen once, here, and replicated with the
    -- row, so both sites dial the same number.
    INSERT INTO gsb.meetings (id, account_id, title, starts_at, tele_number, created_site)
    VALUES (new_id, account_id, title, starts_at,
            coalesce(tele_number, '+1-888-' || lpad((new_id % 10000000)::text, 7, '0')),
            s.name);
    RETURN new_id;
END
$$;

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

-- STABLE, not IMMUTABLE: the test hook gsb.fault_injection can change it.
CREATE FUNCTION gsb.protocol_version() RETURNS int
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'gsb_protocol_version';

-- Runs one query on a peer (through gsb's connection helper, with an empty
-- search_path there) and returns its rows as text arrays.
CREATE FUNCTION gsb._peer_query(conninfo text, query text, params text[] DEFAULT NULL)
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
           m.last_monitor_error
      FROM gsb.peers p
      LEFT JOIN gsb._worker_status() w ON w.peer = p.name
      CROSS JOIN gsb.site_state st
      LEFT JOIN gsb._monitor_status() m ON true;

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

-- The realtime tables of a site and their columns, one text row each, in a
-- form both sites compute the same way.
CREATE FUNCTION gsb._table_columns(p_mode text) RETURNS TABLE (tbl text, col text, typ text)
LANGUAGE sql STABLE SET search_path = '' AS $$
    SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
               OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
           a.attname::text, pg_catalog.format_type(a.atttypid, NULL)
      FROM gsb.tables t
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
     WHERE t.mode OPERATOR(pg_catalog.=) p_mode AND a.attnum OPERATOR(pg_catalog.>) 0
       AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
$$;

CREATE FUNCTION gsb.add_peer(site_name text, conninfo text, copy_data boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
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
    IF facts[1] IS DISTINCT FROM site_name THEN
        RAISE EXCEPTION 'the peer at that address is site %, not %', facts[1], site_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the peer as it named itself in gsb.init_site().';
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
    slot text := 'gsb_' || me.name;
    origin text := 'gsb_' || site_name;
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
          LEFT JOIN pg_replication_slots s ON s.slot_name = 'gsb_' || p.name
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
    q text;
    loc_rows text;
    loc_hash text;
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
    SELECT * INTO p FROM gsb.peers ORDER BY name LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this site has no peer' USING ERRCODE = 'undefined_object',
            HINT = 'Add one with gsb.add_peer().';
    END IF;
    -- A consistent point: our changes have reached the peer, and the peer's
    -- (as of now) have reached us.
    IF NOT gsb.wait_for_peer('60 s') THEN
        RAISE WARNING 'peer % has not applied all of this site''s changes yet', p.name;
    END IF;
    SELECT r[1]::boolean INTO STRICT done FROM gsb._peer_query(p.conninfo,
        'SELECT gsb.wait_for_peer(''60 s'')::text') r;
    IF NOT done THEN
        RAISE WARNING 'this site has not applied all of peer %''s changes yet', p.name;
    END IF;
    FOR t IN
        SELECT c.oid::regclass AS relid, n.nspname, c.relname,
               (SELECT string_agg(format('%I', a.attname), ',' ORDER BY a.attname)
                  FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols,
               (SELECT string_agg(format('%I', a.attname), ',' ORDER BY k.ord)
                  FROM pg_index i
                  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary) AS keycols
          FROM gsb.tables gt
          JOIN pg_class c ON c.oid = gt.relid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE gt.mode = 'realtime' AND (rel IS NULL OR gt.relid = rel)
         ORDER BY c.oid::regclass::text
    LOOP
        q := format('SELECT count(*)::pg_catalog.text, '
                    'pg_catalog.md5(coalesce(pg_catalog.string_agg('
                    'pg_catalog.md5(ROW(%s)::pg_catalog.text), %L ORDER BY %s), %L)) '
                    'FROM ONLY %I.%I', t.cols, '', coalesce(t.keycols, t.cols), '',
                    t.nspname, t.relname);
        EXECUTE q INTO loc_rows, loc_hash;
        SELECT r INTO rem FROM gsb._peer_query(p.conninfo, q) r;
        relation := t.relid;
        local_rows := loc_rows::bigint;
        peer_rows := rem[1]::bigint;
        local_hash := loc_hash;
        peer_hash := rem[2];
        status := CASE WHEN loc_rows = rem[1] AND loc_hash = rem[2] THEN 'match' ELSE 'differs' END;
        RETURN NEXT;
    END LOOP;
END
$$;

------------------------------------------------------------------------------
-- One active site: state, events, failover, failback, maintenance.
------------------------------------------------------------------------------
-- Every change of active site, on both sites (the table is replicated).
CREATE TABLE gsb.site_events (
    id bigint PRIMARY KEY DEFAULT gsb.next_id('gsb.site_events_id_seq'),
    at timestamptz NOT NULL DEFAULT now(),
    from_site text,
    to_site text,
    reason text NOT NULL CHECK (reason IN ('automatic failover', 'manual failover', 'failback',
                                           'maintenance start', 'maintenance end',
                                           'late arrival')),
    detail text,
    term bigint
);
INSERT INTO gsb.tables (relid, mode) VALUES ('gsb.site_events'::regclass, 'realtime');

CREATE FUNCTION gsb._primary_name() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN s.role = 'primary' THEN s.name
                ELSE (SELECT p.name FROM gsb.peers p WHERE p.role = 'primary' ORDER BY p.name LIMIT 1)
           END
      FROM gsb.site s
$$;

CREATE FUNCTION gsb.active_site() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    a text;
BEGIN
    SELECT coalesce(st.active_site, gsb._primary_name()) INTO a FROM gsb.site_state st;
    IF a IS NULL THEN
        RAISE EXCEPTION 'this backup site does not know its primary yet'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the primary with gsb.add_peer().';
    END IF;
    RETURN a;
END
$$;

CREATE FUNCTION gsb._state_confirmed() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_state_confirmed';

-- After a restart a site does not claim to be active until its monitor has
-- heard the peer's view (a site that was failed over must not serve for a
-- moment on its stale view), or the peer has been gone too long to matter.
CREATE FUNCTION gsb.is_active() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT gsb.active_site() = gsb.site_name()
       AND (gsb._state_confirmed() OR NOT EXISTS (SELECT 1 FROM gsb.peers))
$$;

-- What a client routed to the service would see: 'Primary' or 'Backup'.
CREATE FUNCTION gsb.detect_backup() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN gsb.active_site() = gsb._primary_name() THEN 'Primary' ELSE 'Backup' END
$$;

-- Takes another site's view of the active site if it is newer than ours.
-- Returns true when it changed ours.
CREATE FUNCTION gsb._adopt_state(p_term bigint, p_active text, p_mode text, p_automatic boolean,
                                 p_from_role text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st gsb.site_state;
BEGIN
    -- Most heartbeats change nothing: look first, and lock (which writes
    -- WAL) only to change, so idle sites stay quiet.
    SELECT * INTO st FROM gsb.site_state;
    IF p_term < st.term OR (p_term = st.term
           AND (p_from_role IS DISTINCT FROM 'primary'
                OR (p_active, p_mode, p_automatic) IS NOT DISTINCT FROM
                   (st.active_site, st.mode, st.automatic))) THEN
        RETURN false;
    END IF;
    SELECT * INTO st FROM gsb.site_state FOR UPDATE;
    IF p_term > st.term
       OR (p_term = st.term AND p_from_role = 'primary'
           AND (p_active, p_mode, p_automatic) IS DISTINCT FROM (st.active_site, st.mode, st.automatic)) THEN
        UPDATE gsb.site_state
           SET term = p_term, active_site = p_active, mode = p_mode, automatic = p_automatic,
               changed_at = CASE WHEN p_active IS DISTINCT FROM st.active_site THEN now()
                                 ELSE st.changed_at END;
        RETURN true;
    END IF;
    RETURN false;
END
$$;

-- Called by the other site's monitor: takes its view if newer, answers ours.
CREATE FUNCTION gsb._heartbeat(p_from text, p_term bigint, p_active text, p_mode text,
                               p_automatic boolean)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    st gsb.site_state;
BEGIN
    PERFORM gsb._adopt_state(p_term, p_active, p_mode, p_automatic,
                             (SELECT role FROM gsb.peers WHERE name = p_from));
    SELECT * INTO st FROM gsb.site_state;
    RETURN ARRAY[me.name, me.role, st.term::text, st.active_site, st.mode, st.automatic::text,
                 current_setting('gsb.maintenance_window')];
END
$$;

-- Makes to_site the active site: a new term, an event, and the news pushed
-- to the peer at once (the monitors' heartbeats carry it otherwise).
CREATE FUNCTION gsb._switch(to_site text, reason text, detail text, new_mode text,
                            automatic boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    st gsb.site_state;
    p gsb.peers;
BEGIN
    -- Every caller names this site or a peer; anything else would leave
    -- both sites without an active site.
    IF to_site IS NULL OR (to_site <> me.name
                           AND NOT EXISTS (SELECT 1 FROM gsb.peers x WHERE x.name = to_site)) THEN
        RAISE EXCEPTION 'gsb._switch: % is not a site known here', coalesce(quote_literal(to_site), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The active site is this site or one of its peers.';
    END IF;
    SELECT * INTO st FROM gsb.site_state FOR UPDATE;
    UPDATE gsb.site_state
       SET term = st.term + 1, active_site = to_site, mode = new_mode,
           automatic = _switch.automatic, changed_at = now(),
           late_tail_since = CASE WHEN new_mode = 'failed_over' AND to_site = me.name
                                       AND me.role = 'backup' THEN now()
                                  ELSE st.late_tail_since END;
    INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term)
    VALUES (coalesce(st.active_site, gsb._primary_name()), to_site, reason, detail, st.term + 1);
    RAISE LOG 'gsb: active site is now % (%: %)', to_site, reason, coalesce(detail, '');
    FOR p IN SELECT * FROM gsb.peers LOOP
        BEGIN
            PERFORM gsb._peer_query(p.conninfo,
                'SELECT gsb._adopt_state($1::pg_catalog.int8, $2, $3, $4::pg_catalog.bool, $5)',
                ARRAY[(st.term + 1)::text, to_site, new_mode, _switch.automatic::text, me.role]);
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'gsb: could not tell % at once (%); its monitor will learn it', p.name, SQLERRM;
        END;
    END LOOP;
END
$$;

CREATE FUNCTION gsb._other_site() RETURNS gsb.peers
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p gsb.peers;
BEGIN
    SELECT * INTO p FROM gsb.peers ORDER BY name LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this site has no peer' USING ERRCODE = 'undefined_object',
            HINT = 'Add the other site with gsb.add_peer().';
    END IF;
    RETURN p;
END
$$;

CREATE FUNCTION gsb._backup_name() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN s.role = 'backup' THEN s.name
                ELSE (SELECT p.name FROM gsb.peers p WHERE p.role = 'backup' ORDER BY p.name LIMIT 1)
           END
      FROM gsb.site s
$$;

-- Waits until the site `target` has every change committed on the other
-- site before now. Runs the wait where the changes were made.
CREATE FUNCTION gsb._wait_for(target text, timeout interval) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    p gsb.peers := gsb._other_site();
    r text[];
BEGIN
    IF target = me.name THEN
        -- our peer must have sent us everything: ask it to wait for us
        SELECT x INTO r FROM gsb._peer_query(p.conninfo,
            'SELECT gsb.wait_for_peer($1::pg_catalog.interval)::pg_catalog.text',
            ARRAY[timeout::text]) x;
        RETURN r[1]::boolean;
    END IF;
    RETURN gsb.wait_for_peer(timeout);
END
$$;

-- Before a planned change of active site: the other site must answer, and
-- `target` must have every change committed on the other one. A clear
-- error otherwise (class 08 when unreachable).
CREATE FUNCTION gsb._require_caught_up(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    other text := (gsb._other_site()).name;
BEGIN
    BEGIN
        PERFORM gsb._peer_query((gsb._other_site()).conninfo, 'SELECT 1');
    EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection OR connection_exception
                   OR connection_failure THEN
        RAISE EXCEPTION 'the % site % is unreachable',
                        CASE WHEN other = gsb._primary_name() THEN 'primary' ELSE 'backup' END, other
            USING ERRCODE = 'connection_failure', DETAIL = SQLERRM,
                  HINT = 'Switch once both sites are up and replicating.';
    END;
    IF NOT gsb._wait_for(target, '60 s') THEN
        RAISE EXCEPTION 'site % has not caught up with %', target,
                        CASE WHEN target = gsb.site_name() THEN other ELSE gsb.site_name() END
            USING ERRCODE = 'lock_not_available',
                  HINT = 'Check gsb.status on both sites, then try again.';
    END IF;
END
$$;

CREATE FUNCTION gsb.failover(reason text DEFAULT 'manual') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b text := gsb._backup_name();
BEGIN
    PERFORM gsb._site();
    IF b IS NULL THEN
        RAISE EXCEPTION 'there is no backup site to fail over to'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the backup with gsb.add_peer().';
    END IF;
    IF gsb.active_site() = b THEN
        RAISE NOTICE 'the backup site % is already active', b;
        RETURN;
    END IF;
    PERFORM gsb._switch(b, 'manual failover', coalesce(reason, 'manual'), 'failed_over', false);
END
$$;

CREATE FUNCTION gsb.failback() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prim text := gsb._primary_name();
BEGIN
    PERFORM gsb._site();
    IF gsb.active_site() = prim THEN
        RAISE NOTICE 'the primary site % is already active', prim;
        RETURN;
    END IF;
    PERFORM gsb._require_caught_up(prim);
    PERFORM gsb._switch(prim, 'failback', NULL, 'normal', false);
END
$$;

-- Planned switchover to the backup: nothing committed on the primary is
-- left behind.
CREATE FUNCTION gsb._begin_maintenance(automatic boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b text := gsb._backup_name();
    prim text := gsb._primary_name();
BEGIN
    PERFORM gsb._site();
    IF b IS NULL THEN
        RAISE EXCEPTION 'there is no backup site to switch to'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the backup with gsb.add_peer().';
    END IF;
    IF (SELECT mode FROM gsb.site_state) = 'maintenance' THEN
        RAISE NOTICE 'maintenance is already under way';
        RETURN;
    END IF;
    PERFORM gsb._require_caught_up(b);
    PERFORM gsb._switch(b, 'maintenance start',
                        CASE WHEN automatic THEN 'maintenance window ' || current_setting('gsb.maintenance_window') END,
                        'maintenance', automatic);
END
$$;

CREATE FUNCTION gsb.begin_maintenance() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT gsb._begin_maintenance(false)
$$;

CREATE FUNCTION gsb.end_maintenance() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prim text := gsb._primary_name();
    st gsb.site_state;
BEGIN
    PERFORM gsb._site();
    SELECT * INTO st FROM gsb.site_state;
    IF st.mode <> 'maintenance' THEN
        RAISE EXCEPTION 'no maintenance is under way'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'gsb.begin_maintenance() starts one; gsb.failback() returns from a failover.';
    END IF;
    PERFORM gsb._require_caught_up(prim);
    PERFORM gsb._switch(prim, 'maintenance end', NULL, 'normal', false);
END
$$;

-- Is now inside a window like '19:00-21:00 America/Los_Angeles'?
CREATE FUNCTION gsb._in_window(win text, at timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m text[];
    t time;
    a time;
    b time;
BEGIN
    IF win IS NULL OR btrim(win) = '' THEN
        RETURN false;
    END IF;
    m := regexp_match(btrim(win), '^(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s+(\S+)$');
    IF m IS NULL THEN
        RAISE EXCEPTION 'invalid maintenance window: %', win
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write it as ''HH:MM-HH:MM Time/Zone'', e.g. ''19:00-21:00 America/Los_Angeles''.';
    END IF;
    a := m[1]::time;
    b := m[2]::time;
    t := (at AT TIME ZONE m[3])::time;
    IF a <= b THEN
        RETURN t >= a AND t < b;
    END IF;
    RETURN t >= a OR t < b;   -- the window spans midnight
END
$$;

-- One step of the site monitor, with what its heartbeat found. Decides
-- automatic failover, failback and the maintenance window.
CREATE FUNCTION gsb._monitor_tick(reachable boolean, unreachable_ms bigint, reachable_ms bigint,
                                  peer text[])
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    st gsb.site_state;
    prim text := gsb._primary_name();
    timeout_ms bigint := EXTRACT(EPOCH FROM current_setting('gsb.failover_timeout')::interval) * 1000;
    delay text := current_setting('gsb.failback_delay');
    delay_ms bigint;
    caught_up boolean;
BEGIN
    IF peer IS NOT NULL THEN
        PERFORM gsb._adopt_state(peer[3]::bigint, peer[4], peer[5], peer[6]::boolean, peer[2]);
    END IF;
    SELECT * INTO st FROM gsb.site_state;
    delay_ms := CASE WHEN delay = '-1' THEN -1
                     ELSE EXTRACT(EPOCH FROM delay::interval) * 1000 END;

    IF me.role = 'backup' THEN
        -- Automatic failover: the primary is completely unreachable.
        IF st.active_site = prim AND NOT reachable AND timeout_ms > 0
           AND unreachable_ms >= timeout_ms THEN
            PERFORM gsb._switch(me.name, 'automatic failover',
                                format('primary %s unreachable for %s ms', prim, unreachable_ms),
                                'failed_over', true);
            RETURN 'failed over';
        END IF;
        -- Automatic failback after an automatic failover.
        IF st.active_site = me.name AND st.mode = 'failed_over' AND st.automatic
           AND delay_ms >= 0 AND reachable AND reachable_ms >= delay_ms THEN
            BEGIN
                caught_up := gsb._wait_for(prim, '1 s');
            EXCEPTION WHEN OTHERS THEN
                caught_up := false;
            END;
            IF caught_up THEN
                PERFORM gsb._switch(prim, 'failback',
                                    format('primary reachable for %s ms and caught up', reachable_ms),
                                    'normal', false);
                RETURN 'failed back';
            END IF;
        END IF;
        -- The daily copy from the primary, every gsb.config_sync_interval.
        IF reachable AND (st.last_config_sync IS NULL
                          OR now() - st.last_config_sync
                             >= current_setting('gsb.config_sync_interval')::interval) THEN
            BEGIN
                RETURN format('daily copy: %s rows', gsb.sync_config());
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'gsb: the daily copy from % failed: %', prim, SQLERRM;
                RETURN NULL;
            END;
        END IF;
    ELSIF reachable THEN
        -- The primary runs its own maintenance window.
        IF gsb._in_window(current_setting('gsb.maintenance_window')) THEN
            IF st.active_site = me.name AND st.mode = 'normal' THEN
                PERFORM gsb._begin_maintenance(true);
                RETURN 'maintenance started';
            END IF;
        ELSIF st.mode = 'maintenance' AND st.automatic THEN
            PERFORM gsb.end_maintenance();
            RETURN 'maintenance ended';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

------------------------------------------------------------------------------
-- The daily copy (primary to backup) and merged usage.
------------------------------------------------------------------------------
-- Copies every daily table from the primary, from one snapshot of it, and
-- replaces the backup's rows in one transaction: readers see the old set or
-- the new one. Returns the number of rows the daily tables hold afterwards.
CREATE FUNCTION gsb.sync_config() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
AS $$
DECLARE
    me gsb.site := gsb._site();
    prim gsb.peers;
    problems text;
    q text;
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
    CREATE TEMP TABLE IF NOT EXISTS gsb_sync_rows (tbl text, row_json text) ON COMMIT DROP;
    TRUNCATE gsb_sync_rows;
    -- One statement on the primary: one snapshot for every daily table.
    SELECT string_agg(format('SELECT %L, pg_catalog.row_to_json(t)::pg_catalog.text FROM ONLY %s t',
                             tbl, tbl), ' UNION ALL ')
      INTO q
      FROM (SELECT DISTINCT tbl FROM gsb._table_columns('daily')) d;
    IF q IS NOT NULL THEN
        INSERT INTO gsb_sync_rows SELECT r[1], r[2] FROM gsb._peer_query(prim.conninfo, q) r;
    END IF;
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
                 coalesce((SELECT array_agg(r.row_json) FROM gsb_sync_rows r
                            WHERE r.tbl = qualified), '{}'));
        total := total + n;
    END LOOP;
    UPDATE gsb.site_state SET last_config_sync = now(), last_config_sync_rows = total;
    RETURN total;
END
$$;

-- Usage of both sites merged: a meeting that ran on both sites (a failover
-- in the middle) counts once, and its minutes add up.
CREATE FUNCTION gsb.usage_report(from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (account_id bigint, meetings bigint, minutes numeric, primary_minutes numeric,
               backup_minutes numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RAISE EXCEPTION 'gsb.usage_report needs both ends of the period'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use ''-infinity'' or ''infinity'' for an open end.';
    END IF;
    IF from_ts > to_ts THEN
        RAISE EXCEPTION 'the period ends before it starts (from % to %)', from_ts, to_ts
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Rows count when their started_at is in [from_ts, to_ts): pass the earlier time first.';
    END IF;
    RETURN QUERY
    SELECT u.account_id,
           count(DISTINCT u.meeting_id),
           sum(u.minutes),
           coalesce(sum(u.minutes) FILTER (WHERE u.site = gsb._primary_name()), 0),
           coalesce(sum(u.minutes) FILTER (WHERE u.site IS DISTINCT FROM gsb._primary_name()), 0)
      FROM gsb.usage u
     WHERE u.started_at >= from_ts AND u.started_at < to_ts
     GROUP BY u.account_id
     ORDER BY u.account_id;
END
$$;

------------------------------------------------------------------------------
-- Meetings.
------------------------------------------------------------------------------
CREATE FUNCTION gsb._meeting(meeting_id bigint) RETURNS gsb.meetings
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m gsb.meetings;
BEGIN
    IF meeting_id IS NULL THEN
        RAISE EXCEPTION 'a meeting id is required'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the id that gsb.schedule_meeting() returned.';
    END IF;
    SELECT * INTO m FROM gsb.meetings WHERE id = meeting_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'meeting % does not exist', meeting_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Schedule it with gsb.schedule_meeting(), on either site.';
    END IF;
    RETURN m;
END
$$;

-- The usage row of a meeting's part on one site. to_ts may be a little
-- before from_ts when from_ts came from another site's clock (a meeting
-- taken over): that part counts 0 minutes.
CREATE FUNCTION gsb._record_usage(m gsb.meetings, on_site text, from_ts timestamptz,
                                  to_ts timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF m.id IS NULL OR m.account_id IS NULL THEN
        RAISE EXCEPTION 'gsb._record_usage: the meeting is NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass a row of gsb.meetings; gsb.end_meeting() records usage by itself.';
    END IF;
    PERFORM gsb._check_peer_name(on_site);
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RAISE EXCEPTION 'gsb._record_usage: the start and the end of the usage are required'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass when the meeting started and ended on that site.';
    END IF;
    INSERT INTO gsb.usage (meeting_id, account_id, site, started_at, ended_at, minutes)
    VALUES (m.id, m.account_id, on_site, from_ts, to_ts,
            greatest(EXTRACT(EPOCH FROM (to_ts - from_ts)), 0) / 60);
END
$$;

CREATE FUNCTION gsb.start_meeting(meeting_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    active text := gsb.active_site();
    m gsb.meetings;
BEGIN
    IF active <> me.name THEN
        RAISE EXCEPTION 'meetings start only on the active site, which is %', active
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Start the meeting on site %s.', active);
    END IF;
    IF NOT gsb.is_active() THEN
        RAISE EXCEPTION 'this site has just started and has not yet confirmed that it is the active site'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Try again in a moment (one heartbeat).';
    END IF;
    m := gsb._meeting(meeting_id);
    IF m.status = 'ended' THEN
        RAISE EXCEPTION 'meeting % has ended', meeting_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'An ended meeting does not start again; schedule a new one with gsb.schedule_meeting().';
    END IF;
    IF m.status = 'in_progress' AND m.hosted_site = me.name THEN
        RETURN;   -- already running here
    END IF;
    IF m.status = 'in_progress' THEN
        -- Its site failed mid-meeting: that site's part is usage of its own,
        -- and the meeting goes on here.
        PERFORM gsb._record_usage(m, m.hosted_site, m.started_at, now());
    END IF;
    UPDATE gsb.meetings
       SET status = 'in_progress', hosted_site = me.name, started_at = now(), updated_at = now()
     WHERE id = meeting_id;
END
$$;

CREATE FUNCTION gsb.join_meeting(meeting_id bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m gsb.meetings;
BEGIN
    IF meeting_id IS NULL THEN
        RAISE EXCEPTION 'a meeting id is required'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the id that gsb.schedule_meeting() returned.';
    END IF;
    SELECT * INTO m FROM gsb.meetings WHERE id = meeting_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'meeting % does not exist', meeting_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Schedule it with gsb.schedule_meeting(), on either site.';
    END IF;
    IF m.status = 'ended' THEN
        RAISE EXCEPTION 'meeting % has ended', meeting_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'An ended meeting does not start again; schedule a new one with gsb.schedule_meeting().';
    END IF;
    IF m.status = 'in_progress' THEN
        RETURN m.hosted_site;
    END IF;
    RETURN gsb.active_site();
END
$$;

CREATE FUNCTION gsb.end_meeting(meeting_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    m gsb.meetings := gsb._meeting(meeting_id);
BEGIN
    IF m.status = 'ended' THEN
        RAISE EXCEPTION 'meeting % has ended already', meeting_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Its usage was recorded when it ended.';
    END IF;
    IF m.status <> 'in_progress' THEN
        RAISE EXCEPTION 'meeting % is not in progress', meeting_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Start it with gsb.start_meeting() first, on the active site.';
    END IF;
    IF m.hosted_site <> me.name THEN
        RAISE EXCEPTION 'meeting % is hosted on site %', meeting_id, m.hosted_site
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('End it on site %s, or start it here first to take it over.', m.hosted_site);
    END IF;
    PERFORM gsb._record_usage(m, me.name, m.started_at, now());
    UPDATE gsb.meetings SET status = 'ended', ended_at = now(), updated_at = now()
     WHERE id = meeting_id;
END
$$;

------------------------------------------------------------------------------
-- Privileges. Admin functions: superusers and gsb_admin only.
------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gsb FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gsb.init_site(text, text),
    gsb.replicate_table(regclass, text),
    gsb.unreplicate_table(regclass),
    gsb.add_peer(text, text, boolean),
    gsb.drop_peer(text),
    gsb.wait_for_peer(interval),
    gsb.verify(regclass),
    gsb.failover(text),
    gsb.failback(),
    gsb.begin_maintenance(),
    gsb.end_maintenance(),
    gsb.sync_config()
  TO gsb_admin;
GRANT EXECUTE ON FUNCTION
    gsb.site_name(), gsb.site_role(), gsb.next_id(regclass), gsb.protocol_version(),
    gsb.create_account(text, text),
    gsb.schedule_meeting(bigint, text, timestamptz, text),
    gsb.active_site(), gsb.is_active(), gsb.detect_backup(),
    gsb.start_meeting(bigint), gsb.join_meeting(bigint), gsb.end_meeting(bigint),
    gsb.usage_report(timestamptz, timestamptz)
  TO PUBLIC;
GRANT EXECUTE ON FUNCTION gsb._site(), gsb._primary_name(), gsb._meeting(bigint),
    gsb._record_usage(gsb.meetings, text, timestamptz, timestamptz),
    gsb._check_peer_name(text) TO PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA gsb FROM PUBLIC;
GRANT SELECT ON gsb.site, gsb.tables, gsb.replicated_tables TO PUBLIC;
GRANT SELECT ON gsb.status, gsb.conflicts, gsb.peers, gsb.site_events, gsb.site_state
  TO gsb_admin;
-- What gsb.status reads.
GRANT EXECUTE ON FUNCTION gsb._worker_status(), gsb._monitor_status() TO gsb_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    gsb.accounts, gsb.meetings, gsb.usage,
    gsb.site_config, gsb.custom_pages, gsb.client_versions
  TO gsb_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA gsb TO gsb_admin;
