-- gsb--0.1.sql: the RELEASED 0.1 install script, frozen: never edit it (sites installed exactly this). It is what make generated from src/sql/*.sql at commit aacd8bc (default build); the test build adds src/sql/26_test_hooks.sql before 30_site, see the Makefile.
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
-- src/sql/10_catalogs.sql: gsb's own catalogs (this site, its view of the
-- active site, the replicated tables).

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
-- src/sql/20_tables.sql: the built-in service tables and their ids.

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
-- src/sql/25_native.sql: general functions written in C++ (gsb.so).

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

-- Whether a libpq connection string sets a non-empty password.
CREATE FUNCTION gsb._conninfo_has_password(conninfo text) RETURNS boolean
    LANGUAGE c STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'gsb_conninfo_has_password';

-- Runs one read-only statement that returns one row as the owner of rel,
-- restricted, with an empty search_path, under the caller's snapshot; returns
-- the row's columns as text (verify and the daily copy read through it). Both
-- refuse a relation that is not a plain table (42809).
CREATE FUNCTION gsb._read_as_owner(rel regclass, sql text) RETURNS text[]
    LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'gsb_read_as_owner';
-- src/sql/30_site.sql: this site: gsb.init_site() and its name and role.

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
-- src/sql/50_active_site.sql: the one active site: its state and events,
-- failover, failback, maintenance, and the site monitor's decisions.

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

-- The rule of views: is (p_term, p_active, p_mode, p_automatic), as site role
-- p_from_role sees it, newer than (term, active, mode, automatic)? A higher
-- term is newer; at an equal term the primary's view wins where it differs.
-- NULL when it cannot tell (no term, or an equal term from an unknown role):
-- callers count that as not newer.
CREATE FUNCTION gsb._newer_view(term bigint, active text, mode text, automatic boolean,
                                p_term bigint, p_active text, p_mode text, p_automatic boolean,
                                p_from_role text)
RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_term > term
        OR (p_term = term AND p_from_role = 'primary'
            AND (p_active, p_mode, p_automatic) IS DISTINCT FROM (active, mode, automatic))
$$;

-- Takes another site's view of the active site if it is newer than ours
-- (gsb._newer_view). Returns true when it changed ours.
CREATE FUNCTION gsb._adopt_state(p_term bigint, p_active text, p_mode text, p_automatic boolean,
                                 p_from_role text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st gsb.site_state;
BEGIN
    -- A view that names a site this site does not know is never taken: the
    -- active site is always this site or one of its peers.
    IF p_active IS NULL OR (p_active <> gsb.site_name()
                            AND NOT EXISTS (SELECT 1 FROM gsb.peers WHERE name = p_active)) THEN
        RETURN false;
    END IF;
    -- Most heartbeats change nothing: look first, and lock (which writes
    -- WAL) only to change, so idle sites stay quiet.
    SELECT * INTO st FROM gsb.site_state;
    IF NOT coalesce(gsb._newer_view(st.term, st.active_site, st.mode, st.automatic,
                                    p_term, p_active, p_mode, p_automatic, p_from_role), false) THEN
        RETURN false;
    END IF;
    SELECT * INTO st FROM gsb.site_state FOR UPDATE;
    IF gsb._newer_view(st.term, st.active_site, st.mode, st.automatic,
                       p_term, p_active, p_mode, p_automatic, p_from_role) THEN
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
    -- By role, never by name: the other site of a primary is its backup and
    -- the other way round (add_peer allows one peer of each role).
    SELECT * INTO p FROM gsb.peers
     WHERE role IN ('primary', 'backup') AND role <> (SELECT s.role FROM gsb.site s)
     ORDER BY name LIMIT 1;
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
            ARRAY[timeout::text], timeout) x;
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

-- The site state machine: the site monitor's decisions, as one pure function
-- of what it knows (no table, setting or clock is read here; the window is
-- checked at `at`). Its table of cases is sql/11_state_machine.sql.
--
-- In: this site (role, name) and the names of the primary and the backup;
-- this site's view of the active site (term, active_site, mode, automatic);
-- the peer's heartbeat answer (gsb._heartbeat(): name, role, term, active,
-- mode, automatic, window; NULL when it did not answer); the timers (is the
-- peer reachable, for how long it has been unreachable or reachable, how long
-- since the last daily copy, NULL for never); whether the primary has caught
-- up (NULL: not looked yet); the settings (gsb.failover_timeout in ms, 0 =
-- never; gsb.failback_delay in ms, -1 = never; gsb.config_sync_interval;
-- gsb.maintenance_window).
--
-- Out: adopt (the peer's view is newer: take it first), the view after this
-- step, and the action: NULL (nothing), 'switch' (gsb._switch(to_site,
-- reason, detail, next_mode, next_automatic)), 'check_caught_up' (look
-- whether the primary has caught up, then ask again with the answer),
-- 'daily_copy', 'begin_maintenance', 'end_maintenance'; result is what the
-- monitor logs.
--
--  role    view (after adopting)              timers and settings                 action
--  backup  active = primary                   unreachable >= failover_timeout > 0 switch: automatic failover
--  backup  active = me, failed_over, automatic reachable >= failback_delay >= 0   check_caught_up, then
--                                                                                 switch: failback if caught up
--  backup  (none of the above)                reachable, daily copy never or due  daily_copy
--  primary active = me, normal                reachable, inside the window        begin_maintenance
--  primary maintenance, automatic             reachable, outside the window       end_maintenance
--  any     otherwise                                                              nothing
CREATE FUNCTION gsb._site_transition(
    site_role text, site_name text, primary_site text, backup_site text,
    term bigint, active_site text, mode text, automatic boolean,
    peer_view text[],
    reachable boolean, unreachable_ms bigint, reachable_ms bigint, since_daily_copy interval,
    primary_caught_up boolean,
    failover_timeout_ms bigint, failback_delay_ms bigint, config_sync_interval interval,
    maintenance_window text, at timestamptz,
    OUT adopt boolean, OUT next_term bigint, OUT next_active text, OUT next_mode text,
    OUT next_automatic boolean, OUT action text, OUT to_site text, OUT reason text,
    OUT detail text, OUT result text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    adopt := peer_view IS NOT NULL
             AND coalesce(gsb._newer_view(term, active_site, mode, automatic,
                                          peer_view[3]::bigint, peer_view[4], peer_view[5],
                                          peer_view[6]::boolean, peer_view[2]), false);
    IF adopt THEN
        next_term := peer_view[3]::bigint;
        next_active := peer_view[4];
        next_mode := peer_view[5];
        next_automatic := peer_view[6]::boolean;
    ELSE
        next_term := term;
        next_active := active_site;
        next_mode := mode;
        next_automatic := automatic;
    END IF;

    IF site_role = 'backup' THEN
        -- Automatic failover: the primary is completely unreachable.
        IF next_active = primary_site AND NOT reachable AND failover_timeout_ms > 0
           AND unreachable_ms >= failover_timeout_ms THEN
            action := 'switch';
            to_site := site_name;
            reason := 'automatic failover';
            detail := format('primary %s unreachable for %s ms', primary_site, unreachable_ms);
            next_term := next_term + 1;
            next_active := site_name;
            next_mode := 'failed_over';
            next_automatic := true;
            result := 'failed over';
            RETURN;
        END IF;
        -- Automatic failback after an automatic failover, once the primary
        -- has caught up.
        IF next_active = site_name AND next_mode = 'failed_over' AND next_automatic
           AND failback_delay_ms >= 0 AND reachable AND reachable_ms >= failback_delay_ms THEN
            IF primary_caught_up IS NULL THEN
                action := 'check_caught_up';
                RETURN;
            END IF;
            IF primary_caught_up THEN
                action := 'switch';
                to_site := primary_site;
                reason := 'failback';
                detail := format('primary reachable for %s ms and caught up', reachable_ms);
                next_term := next_term + 1;
                next_active := primary_site;
                next_mode := 'normal';
                next_automatic := false;
                result := 'failed back';
                RETURN;
            END IF;
        END IF;
        -- The daily copy from the primary, every gsb.config_sync_interval.
        IF reachable AND (since_daily_copy IS NULL OR since_daily_copy >= config_sync_interval) THEN
            action := 'daily_copy';
            RETURN;
        END IF;
    ELSIF reachable THEN
        -- The primary runs its own maintenance window.
        IF gsb._in_window(maintenance_window, at) THEN
            IF next_active = site_name AND next_mode = 'normal' THEN
                action := 'begin_maintenance';
                to_site := backup_site;
                reason := 'maintenance start';
                detail := 'maintenance window ' || maintenance_window;
                next_term := next_term + 1;
                next_active := backup_site;
                next_mode := 'maintenance';
                next_automatic := true;
                result := 'maintenance started';
                RETURN;
            END IF;
        ELSIF next_mode = 'maintenance' AND next_automatic THEN
            action := 'end_maintenance';
            to_site := primary_site;
            reason := 'maintenance end';
            next_term := next_term + 1;
            next_active := primary_site;
            next_mode := 'normal';
            next_automatic := false;
            result := 'maintenance ended';
            RETURN;
        END IF;
    END IF;
END
$$;

-- One step of the site monitor, with what its heartbeat found: asks
-- gsb._site_transition() what to do, and does it.
CREATE FUNCTION gsb._monitor_tick(reachable boolean, unreachable_ms bigint, reachable_ms bigint,
                                  peer text[])
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    st gsb.site_state;
    prim text := gsb._primary_name();
    backup text := gsb._backup_name();
    timeout_ms bigint := EXTRACT(EPOCH FROM current_setting('gsb.failover_timeout')::interval) * 1000;
    delay text := current_setting('gsb.failback_delay');
    delay_ms bigint;
    sync_interval interval := current_setting('gsb.config_sync_interval')::interval;
    win text := current_setting('gsb.maintenance_window');
    at timestamptz := now();
    caught_up boolean;
    t record;
BEGIN
    SELECT * INTO st FROM gsb.site_state;
    delay_ms := CASE WHEN delay = '-1' THEN -1
                     ELSE EXTRACT(EPOCH FROM delay::interval) * 1000 END;
    t := gsb._site_transition(me.role, me.name, prim, backup,
                              st.term, st.active_site, st.mode, st.automatic, peer,
                              reachable, unreachable_ms, reachable_ms, at - st.last_config_sync,
                              NULL, timeout_ms, delay_ms, sync_interval, win, at);
    IF t.adopt THEN
        PERFORM gsb._adopt_state(peer[3]::bigint, peer[4], peer[5], peer[6]::boolean, peer[2]);
    END IF;
    IF t.action = 'check_caught_up' THEN
        BEGIN
            caught_up := gsb._wait_for(prim, '1 s');
        EXCEPTION WHEN OTHERS THEN
            caught_up := false;
        END;
        t := gsb._site_transition(me.role, me.name, prim, backup,
                                  st.term, st.active_site, st.mode, st.automatic, peer,
                                  reachable, unreachable_ms, reachable_ms, at - st.last_config_sync,
                                  caught_up, timeout_ms, delay_ms, sync_interval, win, at);
    END IF;
    IF t.action = 'switch' THEN
        PERFORM gsb._switch(t.to_site, t.reason, t.detail, t.next_mode, t.next_automatic);
    ELSIF t.action = 'daily_copy' THEN
        BEGIN
            RETURN format('daily copy: %s rows', gsb.sync_config());
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'gsb: the daily copy from % failed: %', prim, SQLERRM;
            RETURN NULL;
        END;
    ELSIF t.action = 'begin_maintenance' THEN
        PERFORM gsb._begin_maintenance(true);
    ELSIF t.action = 'end_maintenance' THEN
        PERFORM gsb.end_maintenance();
    END IF;
    RETURN t.result;
END
$$;
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
-- src/sql/70_meetings_usage.sql: accounts, meetings and their usage.

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
-- src/sql/90_privileges.sql: who may call and read what.

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
