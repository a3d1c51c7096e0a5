-- src/sql/38_witness.sql: the witness, the vote and the lease (README, "One
-- active site"). A witness is a third, small cluster initialised with
-- gsb.init_site(name, 'witness'): no peers, no replicated data, no apply
-- workers. The data sites' monitors call it every heartbeat
-- (gsb._witness_ping) and a backup asks it for the new term before an
-- automatic failover (gsb._witness_grant). Here: both halves, the data
-- site's gsb.add_witness/gsb.drop_witness, and gsb.fence_writes.
-- Not for: the monitor's loop (bgworker/monitor.cpp) or the state machine
-- (src/sql/50_active_site.sql).

------------------------------------------------------------------------------
-- On a data site: its witness (one at most). conninfo may hold a password:
-- not readable by PUBLIC.
------------------------------------------------------------------------------
CREATE TABLE gsb.witness (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name text NOT NULL,
    conninfo text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);

-- On a witness: every term it has taken, each once (the primary key): a
-- term granted to one site can never be granted to another.
CREATE TABLE gsb.witness_terms (
    term bigint PRIMARY KEY,
    active_site text NOT NULL,
    requested_by text NOT NULL,
    reason text NOT NULL,   -- 'automatic failover' (a vote) or 'reported' (a site told it)
    at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION gsb._lease_live(term bigint) RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_lease_live';
CREATE FUNCTION gsb._lease_ms() RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_lease_ms';
CREATE FUNCTION gsb._peer_heard() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_peer_heard';
CREATE FUNCTION gsb._active_seen(OUT recent boolean, OUT at timestamptz) RETURNS record
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_active_seen';
CREATE FUNCTION gsb._witness_heard(site text, term bigint, timeout_ms bigint) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_witness_heard';
CREATE FUNCTION gsb._witness_clients(OUT site text, OUT silent_ms bigint, OUT term bigint,
                                     OUT timeout_ms bigint)
    RETURNS SETOF record
    LANGUAGE c ROWS 5 AS 'MODULE_PATHNAME', 'gsb_witness_clients';
CREATE FUNCTION gsb._witness_status(OUT reachable boolean, OUT last_answer_at timestamptz,
                                    OUT lease_live boolean, OUT fenced boolean, OUT error text)
    RETURNS SETOF record
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_witness_status';

------------------------------------------------------------------------------
-- The witness's half.
------------------------------------------------------------------------------
CREATE FUNCTION gsb._require_witness() RETURNS gsb.site
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
BEGIN
    IF me.role <> 'witness' THEN
        RAISE EXCEPTION 'site % is not a gsb witness (it is the %)', me.name, me.role
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A witness is a cluster initialised with gsb.init_site(name, ''witness'').';
    END IF;
    RETURN me;
END
$$;

-- How long `site` has been silent, on this witness's monotonic clock: since
-- it last called, or since this server started when it has not since.
CREATE FUNCTION gsb._witness_silence(site text, OUT silent_ms bigint, OUT term bigint,
                                     OUT timeout_ms bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.silent_ms, c.term, c.timeout_ms
      FROM gsb._witness_clients() c
     WHERE c.site = _witness_silence.site OR c.site IS NULL
     ORDER BY c.site IS NULL LIMIT 1
$$;

-- Takes the view (p_term, p_active, p_mode, p_automatic) if its term is new
-- here, and records the term. Returns false when the term was taken already.
CREATE FUNCTION gsb._witness_take(p_term bigint, p_active text, p_mode text, p_automatic boolean,
                                  p_by text, p_reason text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st gsb.site_state;
BEGIN
    SELECT * INTO st FROM gsb.site_state FOR UPDATE;
    -- A term is taken once; the first view (term 0, the primary) too.
    IF p_term IS NULL OR p_active IS NULL OR p_term < st.term
       OR (p_term = st.term AND st.active_site IS NOT NULL) THEN
        RETURN false;
    END IF;
    UPDATE gsb.site_state
       SET term = p_term, active_site = p_active, mode = p_mode, automatic = p_automatic,
           changed_at = now();
    INSERT INTO gsb.witness_terms (term, active_site, requested_by, reason)
    VALUES (p_term, p_active, p_by, p_reason);
    RETURN true;
END
$$;

-- Called by a data site's monitor every heartbeat. Notes the call (the
-- site's silence restarts), takes the site's view when its term is newer,
-- and answers: this witness's name, 'witness', its view (term, active, mode,
-- automatic), then what it last heard from p_peer (the caller's peer): its
-- term, how long it has been silent (ms) and its failover timeout (ms).
CREATE FUNCTION gsb._witness_ping(p_from text, p_peer text, p_term bigint, p_active text,
                                  p_mode text, p_automatic boolean, p_timeout_ms bigint)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._require_witness();
    st gsb.site_state;
    o record;
BEGIN
    PERFORM gsb._witness_heard(p_from, p_term, p_timeout_ms);
    -- Most pings change nothing: look first, lock only to change.
    IF p_active IS NOT NULL
       AND (SELECT p_term > x.term OR (p_term = x.term AND x.active_site IS NULL)
              FROM gsb.site_state x) THEN
        PERFORM gsb._witness_take(p_term, p_active, p_mode, p_automatic, p_from, 'reported');
    END IF;
    SELECT * INTO st FROM gsb.site_state;
    o := gsb._witness_silence(p_peer);
    RETURN ARRAY[me.name, me.role, st.term::text, st.active_site, st.mode, st.automatic::text,
                 o.term::text, o.silent_ms::text, o.timeout_ms::text];
END
$$;

-- The vote. A data site asks for term p_term, to make p_active the active
-- site. Returns NULL when granted (and recorded: never granted again), else
-- why not. An automatic failover away from p_from_site is granted only when
-- this witness, too, has not heard from p_from_site for the longer of the
-- asker's and that site's own gsb.failover_timeout.
CREATE FUNCTION gsb._witness_grant(p_by text, p_term bigint, p_active text, p_mode text,
                                   p_automatic boolean, p_reason text, p_from_site text,
                                   p_timeout_ms bigint)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._require_witness();
    s record;
    need bigint;
    st gsb.site_state;
BEGIN
    IF p_reason = 'automatic failover' AND p_from_site IS DISTINCT FROM p_by THEN
        s := gsb._witness_silence(p_from_site);
        need := greatest(p_timeout_ms, s.timeout_ms);
        IF s.silent_ms < need THEN
            RETURN format('witness %s heard from %s %s ms ago (it must be silent for %s ms)',
                          me.name, p_from_site, s.silent_ms, need);
        END IF;
    END IF;
    IF NOT gsb._witness_take(p_term, p_active, p_mode, p_automatic, p_by, p_reason)
       -- the same request again (its site's transaction failed after the
       -- grant): the term is still that site's
       AND NOT EXISTS (SELECT 1 FROM gsb.witness_terms t
                        WHERE t.term = p_term AND t.active_site = p_active
                          AND t.requested_by = p_by AND t.reason = p_reason) THEN
        SELECT * INTO st FROM gsb.site_state;
        RETURN format('witness %s has granted term %s already (its view: term %s, active site %s)',
                      me.name, p_term, st.term, st.active_site);
    END IF;
    RETURN NULL;
END
$$;

------------------------------------------------------------------------------
-- The data site's half: gsb.add_witness / gsb.drop_witness.
------------------------------------------------------------------------------
-- As gsb.add_peer: log_min_error_statement = panic keeps a failed call's
-- conninfo (it may hold a password) out of the server log.
CREATE FUNCTION gsb.add_witness(site_name text, conninfo text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    me gsb.site := gsb._site();
    refused text;
    facts text[];
BEGIN
    PERFORM gsb._check_peer_name(site_name);
    IF me.role = 'witness' THEN
        RAISE EXCEPTION 'site % is a witness: only data sites have a witness', me.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run gsb.add_witness() on the primary and on the backup.';
    END IF;
    IF site_name = me.name OR EXISTS (SELECT 1 FROM gsb.peers p WHERE p.name = site_name) THEN
        RAISE EXCEPTION 'site % cannot be the witness of this site', site_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The witness is a third cluster, neither this site nor its peer.';
    END IF;
    IF conninfo IS NULL OR btrim(conninfo) = '' THEN
        RAISE EXCEPTION 'a witness needs a connection string'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a libpq connection string such as ''host=... port=... dbname=...''.';
    END IF;
    -- The same rule as gsb.add_peer: the server connects with its own
    -- credentials, so a role that is not a superuser must bring a password
    -- that the witness asks for.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        refused := CASE
            WHEN NOT gsb._conninfo_has_password(conninfo)
                THEN 'Only superusers may add a witness whose connection string has no password.'
            WHEN NOT gsb._peer_login_uses_password(conninfo)
                THEN 'The witness let this server in without asking for the password.'
        END;
        IF refused IS NOT NULL THEN
            RAISE EXCEPTION 'password is required'
                USING ERRCODE = 'insufficient_privilege', DETAIL = refused,
                      HINT = 'Put password=... in the connection string and have the witness ask for it (e.g. scram-sha-256 in pg_hba.conf), or have a superuser add the witness.';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM gsb.witness) THEN
        RAISE EXCEPTION 'this site already has a witness: %', (SELECT w.name FROM gsb.witness w)
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use gsb.drop_witness() first.';
    END IF;
    -- Connect first: errors here are SQLSTATE class 08 with libpq's reason.
    BEGIN
        SELECT r INTO facts FROM gsb._peer_query(conninfo,
            'SELECT gsb.site_name(), gsb.site_role(), gsb.protocol_version()::text') r;
    EXCEPTION
        WHEN undefined_function OR invalid_schema_name OR undefined_table THEN
            RAISE EXCEPTION 'the cluster at that address is not a gsb witness: gsb is not installed there'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'On the witness: CREATE EXTENSION gsb; SELECT gsb.init_site(name, ''witness'').';
        WHEN object_not_in_prerequisite_state THEN
            RAISE EXCEPTION 'the cluster at that address is not a gsb witness: its site is not initialised'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'On the witness: SELECT gsb.init_site(name, ''witness'').';
    END;
    IF facts[2] IS DISTINCT FROM 'witness' THEN
        RAISE EXCEPTION 'the cluster at that address is not a gsb witness: it is site % (the %)',
                        facts[1], facts[2]
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A witness is a third cluster initialised with gsb.init_site(name, ''witness'').';
    END IF;
    IF facts[1] IS DISTINCT FROM site_name THEN
        RAISE EXCEPTION 'the witness at that address is site %, not %', facts[1], site_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the witness as it named itself in gsb.init_site().';
    END IF;
    IF facts[3]::int <> gsb.protocol_version() THEN
        RAISE EXCEPTION 'the witness speaks gsb protocol version %, this site %', facts[3],
                        gsb.protocol_version()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run the same gsb version on every site.';
    END IF;
    INSERT INTO gsb.witness (name, conninfo) VALUES (site_name, conninfo);
END
$$;

CREATE FUNCTION gsb.drop_witness(site_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM gsb._site();
    PERFORM gsb._check_peer_name(site_name);
    DELETE FROM gsb.witness w WHERE w.name = site_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'site % is not the witness of this site', site_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT witness FROM gsb.status names the witness.';
    END IF;
END
$$;

-- Called by the site monitor when this site loses its lease while it is the
-- active site (fenced), and when it holds one again (unfenced).
CREATE FUNCTION gsb._record_fence(p_fenced boolean, p_detail text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st gsb.site_state;
BEGIN
    IF p_fenced IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO st FROM gsb.site_state;
    INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term)
    VALUES (gsb.site_name(), st.active_site, CASE WHEN p_fenced THEN 'fenced' ELSE 'unfenced' END,
            p_detail, st.term);
    RAISE LOG 'gsb: this site is % (%)', CASE WHEN p_fenced THEN 'fenced' ELSE 'unfenced' END,
              coalesce(p_detail, '');
END
$$;

------------------------------------------------------------------------------
-- gsb.fence_writes: a statement-level trigger on every realtime table but
-- gsb.site_events (gsb's own record, written by failover() on the backup).
-- It fires once per client statement (COPY and TRUNCATE too); with the
-- setting off it costs one PL/pgSQL call and a setting read per statement.
-- The apply workers run with session_replication_role = replica, where
-- these triggers do not fire; the site monitor writes only gsb.site_events.
------------------------------------------------------------------------------
CREATE FUNCTION gsb._fence_writes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    active text;
BEGIN
    IF current_setting('gsb.fence_writes', true) = 'on' AND NOT gsb.is_active() THEN
        BEGIN
            active := gsb.active_site();
        EXCEPTION WHEN OTHERS THEN
            active := NULL;
        END;
        IF active IS NULL OR active = gsb.site_name() THEN
            RAISE EXCEPTION 'site % is not serving: writes to %.% are refused', gsb.site_name(),
                            TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'read_only_sql_transaction',
                      DETAIL = 'This site has not heard a current view of the active site (fenced, or just started).',
                      HINT = 'gsb.fence_writes is on: write on the active site once it is known.';
        END IF;
        RAISE EXCEPTION 'site % is not the active site: writes to %.% are refused', gsb.site_name(),
                        TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = format('gsb.fence_writes is on: write on the active site, %s.', active);
    END IF;
    RETURN NULL;
END
$$;

-- Puts the trigger on a realtime table, or takes it off.
CREATE FUNCTION gsb._set_fence_trigger(rel regclass, wanted boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    has boolean := EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'gsb_fence_writes');
BEGIN
    IF rel = to_regclass('gsb.site_events') THEN
        RETURN;
    END IF;
    IF wanted AND NOT has THEN
        EXECUTE format('CREATE TRIGGER gsb_fence_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE '
                       'ON %s FOR EACH STATEMENT EXECUTE FUNCTION gsb._fence_writes()', rel);
    ELSIF NOT wanted AND has THEN
        EXECUTE format('DROP TRIGGER gsb_fence_writes ON %s', rel);
    END IF;
END
$$;

-- gsb.replicate_table / unreplicate_table change gsb.tables: follow them.
CREATE FUNCTION gsb._tables_fence() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (SELECT 1 FROM pg_class WHERE oid = OLD.relid) THEN
        PERFORM gsb._set_fence_trigger(OLD.relid, false);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.mode = 'realtime' THEN
        PERFORM gsb._set_fence_trigger(NEW.relid, true);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER gsb_tables_fence AFTER INSERT OR UPDATE OR DELETE ON gsb.tables
    FOR EACH ROW EXECUTE FUNCTION gsb._tables_fence();
SELECT gsb._set_fence_trigger(relid, true) FROM gsb.tables WHERE mode = 'realtime';
