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
    IF seq NOT IN ('gsb.accounts_id_seq'::regclass, 'gsb.meetings_id_seq'::regclass,
                   'gsb.usage_id_seq'::regclass) THEN
        RAISE EXCEPTION 'gsb.next_id: % is not one of gsb''s id sequences', seq
            USING ERRCODE = 'invalid_parameter_value';
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

-- Raises an error of the given kind through gsb's C++/PostgreSQL boundary:
-- 'postgres' (a PostgreSQL error inside a C++ frame), 'gsb' (a gsb::Error
-- with SQLSTATE and hint), 'std' (a std::exception), 'alloc' (std::bad_alloc).
-- For tests of that boundary; superusers only.
CREATE FUNCTION gsb.selftest_raise(kind text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_raise';

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
    IF NOT FOUND OR c.relkind <> 'r' THEN
        RAISE EXCEPTION '"%" is not a table', rel
            USING ERRCODE = 'wrong_object_type', HINT = 'gsb replicates ordinary tables only.';
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
    DELETE FROM gsb.tables WHERE relid = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not replicated by gsb', rel
            USING ERRCODE = 'undefined_object',
                  HINT = 'The table gsb.replicated_tables lists what gsb replicates.';
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
     WHERE d.classid = 'pg_class'::regclass AND d.objid = t.relid;
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
    IF account_id IS NULL OR NOT EXISTS (SELECT 1 FROM gsb.accounts a WHERE a.id = account_id) THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(account_id::text, 'NULL')
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Create the account with gsb.create_account() first, on either site.';
    END IF;
    IF starts_at IS NULL THEN
        RAISE EXCEPTION 'a meeting needs a start time'
            USING ERRCODE = 'null_value_not_allowed';
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
-- Privileges. Admin functions: superusers and gsb_admin only.
------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gsb FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gsb.init_site(text, text),
    gsb.replicate_table(regclass, text),
    gsb.unreplicate_table(regclass)
  TO gsb_admin;
GRANT EXECUTE ON FUNCTION
    gsb.site_name(), gsb.site_role(), gsb.next_id(regclass),
    gsb.create_account(text, text),
    gsb.schedule_meeting(bigint, text, timestamptz, text)
  TO PUBLIC;
GRANT EXECUTE ON FUNCTION gsb._site() TO PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA gsb FROM PUBLIC;
GRANT SELECT ON gsb.site, gsb.tables, gsb.replicated_tables TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    gsb.accounts, gsb.meetings, gsb.usage,
    gsb.site_config, gsb.custom_pages, gsb.client_versions
  TO gsb_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA gsb TO gsb_admin;
