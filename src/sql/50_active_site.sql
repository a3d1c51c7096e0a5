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
