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
