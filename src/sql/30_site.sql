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
    IF role IS NULL OR role NOT IN ('primary', 'backup', 'witness') THEN
        RAISE EXCEPTION 'invalid site role: %', coalesce(quote_literal(role), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The role is ''primary'', ''backup'' or ''witness''.';
    END IF;
    IF role <> 'witness' THEN
        PERFORM gsb._require_logical_wal();  -- a witness decodes nothing
    END IF;
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
    VALUES (site_name, role, CASE role WHEN 'primary' THEN 1 WHEN 'backup' THEN 2 ELSE 3 END);
    -- The primary serves until something says otherwise; a backup learns the
    -- primary's name from gsb.add_peer. A witness holds no data and serves
    -- no one: it only votes (src/sql/38_witness.sql), and its site_state is
    -- the newest view the data sites have told it.
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
