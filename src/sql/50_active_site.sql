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
                                           'late arrival', 'split brain', 'fenced', 'unfenced')),
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

-- With a witness: this site is active only while it holds a live lease for
-- its current term (shared memory, monotonic clock, set by the site monitor;
-- none after a restart until a current view has been heard); see the README,
-- "One active site". Without one: after a restart a site does not claim to
-- be active until its monitor has heard the peer's view (a site that was
-- failed over must not serve for a moment on its stale view), or the peer has
-- been gone too long to matter.
CREATE FUNCTION gsb.is_active() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (SELECT s.role FROM gsb.site s) <> 'witness'
       AND gsb.active_site() = gsb.site_name()
       AND CASE WHEN EXISTS (SELECT 1 FROM gsb.witness)
                THEN gsb._lease_live((SELECT st.term FROM gsb.site_state st))
                ELSE gsb._state_confirmed() OR NOT EXISTS (SELECT 1 FROM gsb.peers) END
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
        PERFORM gsb._check_split_brain(st, p_term, p_active);
        UPDATE gsb.site_state
           SET term = p_term, active_site = p_active, mode = p_mode, automatic = p_automatic,
               changed_at = CASE WHEN p_active IS DISTINCT FROM st.active_site THEN now()
                                 ELSE st.changed_at END;
        -- The witness granted this site a term whose switch did not commit
        -- here (its answer came too late, say): the switch happens now, by
        -- adoption, and is recorded as _switch would have.
        IF p_from_role = 'witness' AND p_active = gsb.site_name()
           AND p_active IS DISTINCT FROM st.active_site THEN
            UPDATE gsb.site_state
               SET late_tail_since = CASE WHEN p_mode = 'failed_over' AND p_automatic
                                          THEN now() ELSE late_tail_since END;
            INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term)
            VALUES (coalesce(st.active_site, gsb._primary_name()), p_active,
                    CASE WHEN p_mode = 'failed_over' AND p_automatic THEN 'automatic failover'
                         WHEN p_mode = 'failed_over' THEN 'manual failover'
                         WHEN p_mode = 'maintenance' THEN 'maintenance start'
                         WHEN st.mode = 'maintenance' THEN 'maintenance end'
                         ELSE 'failback' END,
                    'term granted by the witness', p_term);
        END IF;
        RETURN true;
    END IF;
    RETURN false;
END
$$;

-- Split brain: this site, serving as the active site until now (its monitor
-- found it active within the last heartbeats: not frozen, not down), takes a
-- newer view in which the other site became active at a moment when this one
-- still was. Without a witness that happens after a cut link (both sites
-- active); the row (replicated, so on both sites) says when each was active.
-- The other site's start is its own event of that term, asked of it (not
-- there yet while it is still committing the switch: a handover it made
-- while it could reach this site, which is no split).
CREATE FUNCTION gsb._check_split_brain(st gsb.site_state, p_term bigint, p_active text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me text := gsb.site_name();
    seen record := gsb._active_seen();
    other_since timestamptz;
BEGIN
    IF st.active_site IS DISTINCT FROM me OR p_active = me OR NOT seen.recent THEN
        RETURN;
    END IF;
    BEGIN
        SELECT r[1]::timestamptz INTO other_since
          FROM gsb._peer_query((SELECT p.conninfo FROM gsb.peers p WHERE p.name = p_active),
                               'SELECT pg_catalog.min(at)::pg_catalog.text FROM gsb.site_events '
                               'WHERE term = $1::pg_catalog.int8 AND to_site = $2',
                               ARRAY[p_term::text, p_active]) r;
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 'gsb: could not ask % when its term % began: %', p_active, p_term, SQLERRM;
        RETURN;
    END;
    IF other_since IS NULL OR other_since >= seen.at THEN
        RETURN;
    END IF;
    INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term)
    VALUES (me, p_active, 'split brain',
            format('both sites were active: %s from %s (term %s) until %s; %s from %s (term %s); '
                   'the newer view (term %s, %s) wins', me, st.changed_at, st.term, seen.at,
                   p_active, other_since, p_term, p_term, p_active),
            p_term);
    RAISE WARNING 'gsb: split brain: % and % were both active from % until %', me, p_active,
                  other_since, seen.at
        USING HINT = 'Add a witness (gsb.add_witness) so that at most one site is active at a time.';
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
    -- The peer's silence, as this site counts it, ends here.
    PERFORM gsb._peer_heard();
    RETURN ARRAY[me.name, me.role, st.term::text, st.active_site, st.mode, st.automatic::text,
                 current_setting('gsb.maintenance_window')];
END
$$;

-- Makes to_site the active site: a new term, an event, and the news pushed
-- to the peer at once (the monitors' heartbeats carry it otherwise). Not
-- for an automatic failover: the monitor has just found the primary
-- unreachable, so waiting for it here would only hold the switch (and the
-- new site's lease) back; the monitor's next heartbeat, which follows the
-- commit at once, tells it.
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
    PERFORM gsb._witness_claim(st.term + 1, to_site, new_mode, _switch.automatic, reason,
                               coalesce(st.active_site, gsb._primary_name()));
    UPDATE gsb.site_state
       SET term = st.term + 1, active_site = to_site, mode = new_mode,
           automatic = _switch.automatic, changed_at = now(),
           late_tail_since = CASE WHEN new_mode = 'failed_over' AND to_site = me.name
                                       AND me.role = 'backup' THEN now()
                                  ELSE st.late_tail_since END;
    INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term)
    VALUES (coalesce(st.active_site, gsb._primary_name()), to_site, reason, detail, st.term + 1);
    RAISE LOG 'gsb: active site is now % (%: %)', to_site, reason, coalesce(detail, '');
    FOR p IN SELECT * FROM gsb.peers WHERE _switch.reason IS DISTINCT FROM 'automatic failover' LOOP
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

-- With a witness, every new term is the witness's first: an automatic
-- failover needs its vote (it must not have heard from the primary for the
-- failover timeout either; unreachable, it cannot vote, and nothing
-- happens), any other switch only its record of the term (unreachable: the
-- switch goes on, and the lease keeps the new site from serving until the
-- old one has stopped). A refusal is an error.
CREATE FUNCTION gsb._witness_claim(p_term bigint, p_active text, p_mode text, p_automatic boolean,
                                   p_reason text, p_from_site text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w gsb.witness;
    refusal text;
    timeout_ms bigint := EXTRACT(EPOCH FROM current_setting('gsb.failover_timeout')::interval) * 1000;
BEGIN
    SELECT * INTO w FROM gsb.witness;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    BEGIN
        SELECT r[1] INTO refusal FROM gsb._peer_query(w.conninfo,
            'SELECT gsb._witness_grant($1, $2::pg_catalog.int8, $3, $4, $5::pg_catalog.bool, $6, $7, '
            '$8::pg_catalog.int8)',
            ARRAY[gsb.site_name(), p_term::text, p_active, p_mode, p_automatic::text, p_reason,
                  p_from_site, timeout_ms::text]) r;
    EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection OR connection_exception
                   OR connection_failure THEN
        IF p_reason = 'automatic failover' THEN
            RAISE EXCEPTION 'the witness % is unreachable: no automatic failover without its vote', w.name
                USING ERRCODE = 'connection_failure', DETAIL = SQLERRM;
        END IF;
        RAISE LOG 'gsb: the witness % is unreachable (%); term % goes on without its record',
                  w.name, SQLERRM, p_term;
        RETURN;
    END;
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION 'the witness % refused term % for %', w.name, p_term, p_active
            USING ERRCODE = 'lock_not_available', DETAIL = refusal,
                  HINT = 'Both sites may still be up: check gsb.status on both.';
    END IF;
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
-- left behind, and the backup serves with the primary's current
-- configuration: the daily tables are copied first, as gsb.sync_config()
-- does (on the backup, from the primary). When that copy fails, a call by
-- hand is refused (the error says why, with the copy's SQLSTATE); the
-- window (automatic) starts all the same, since the primary is about to be
-- worked on, and its 'maintenance start' event and a WARNING say that the
-- backup serves with the configuration of its last copy.
CREATE FUNCTION gsb._begin_maintenance(automatic boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me gsb.site := gsb._site();
    b text := gsb._backup_name();
    prim text := gsb._primary_name();
    copy_error text;
BEGIN
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
    BEGIN
        IF me.role = 'backup' THEN
            PERFORM gsb.sync_config();
        ELSE
            PERFORM gsb._peer_query((gsb._other_site()).conninfo, 'SELECT gsb.sync_config()', NULL,
                                    current_setting('gsb.peer_timeout')::interval);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        IF NOT coalesce(automatic, false) THEN
            RAISE EXCEPTION 'maintenance not started: the daily tables could not be copied to the backup %', b
                USING ERRCODE = SQLSTATE, DETAIL = SQLERRM,
                      HINT = 'The backup would serve with an old configuration. Fix what the detail says (gsb.sync_config() on the backup shows it), then try again.';
        END IF;
        copy_error := SQLERRM;
        RAISE WARNING 'gsb: the maintenance window starts without the daily copy to %: %', b, copy_error;
    END;
    PERFORM gsb._switch(b, 'maintenance start',
                        CASE WHEN automatic THEN 'maintenance window ' || current_setting('gsb.maintenance_window')
                                                 || coalesce('; daily copy failed, the backup serves with its last copy: '
                                                             || copy_error, '') END,
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

-- The maintenance window of `win` ('HH:MM-HH:MM Time/Zone', e.g.
-- '19:00-21:00 America/Los_Angeles') that is in progress at `as_of`, or else
-- the next one: [starts_at, ends_at). Each day's window runs from that
-- day's local start to the local end (the next day's when the end is not
-- after the start: the window spans midnight), each converted to an instant
-- as PostgreSQL converts a local time: a local time that does not exist
-- (clocks go forward: 02:30) counts with the offset before the change (so
-- as 03:30), an ambiguous one (clocks go back: 01:30) as standard time (the
-- second 01:30). So on the days clocks change a window may last an hour
-- less or more, and one that would start and end at the same instant is
-- skipped; a window whose start and end are the same time is no window.
-- NULLs for an empty window or a NULL as_of; the window's syntax and zone
-- are checked as the setting's are. The one definition of a window, for
-- gsb._in_window (the monitor) and gsb.next_maintenance (what users are
-- told).
CREATE FUNCTION gsb._next_window(win text, as_of timestamptz,
                                 OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m text[];
    a time;
    b time;
    day date;
    s timestamptz;
    e timestamptz;
BEGIN
    IF win IS NULL OR btrim(win) = '' THEN
        RETURN;
    END IF;
    m := regexp_match(btrim(win), '^(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s+(\S+)$');
    IF m IS NULL THEN
        RAISE EXCEPTION 'invalid maintenance window: %', win
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write it as ''HH:MM-HH:MM Time/Zone'', e.g. ''19:00-21:00 America/Los_Angeles''.';
    END IF;
    a := m[1]::time;
    b := m[2]::time;
    IF as_of IS NULL OR a = b THEN
        PERFORM now() AT TIME ZONE m[3];   -- the zone is checked all the same
        RETURN;
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'a maintenance window cannot be found from %', as_of
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a date and time, e.g. now().';
    END IF;
    -- From the window that began the local day before: the first one that
    -- has not ended yet (windows do not overlap, and they follow each other
    -- in the order of their days).
    day := (as_of AT TIME ZONE m[3])::date - 1;
    FOR i IN 0..3 LOOP
        s := ((day + i) + a) AT TIME ZONE m[3];
        e := ((day + i + CASE WHEN b <= a THEN 1 ELSE 0 END) + b) AT TIME ZONE m[3];
        IF e > s AND e > as_of THEN
            starts_at := s;
            ends_at := e;
            RETURN;
        END IF;
    END LOOP;
END
$$;

-- Is `at` inside a window like '19:00-21:00 America/Los_Angeles'? NULL when
-- `at` is NULL, false for an empty window.
CREATE FUNCTION gsb._in_window(win text, at timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w record;
BEGIN
    IF win IS NULL OR btrim(win) = '' THEN
        RETURN false;
    END IF;
    w := gsb._next_window(win, at);
    IF at IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN coalesce(w.starts_at <= at, false);
END
$$;

-- The next maintenance window (the one in progress at as_of, or else the
-- next): when it starts and ends, so that users can be told in advance. No
-- row when gsb.maintenance_window is empty. It reads this site's setting:
-- the primary's is the one that its monitor acts on, so set the same window
-- on the backup for the backup to tell the same.
CREATE FUNCTION gsb.next_maintenance(as_of timestamptz DEFAULT now())
RETURNS TABLE (starts_at timestamptz, ends_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w record;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'gsb.next_maintenance: as_of is NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out for the window after now(), or pass a date and time.';
    END IF;
    w := gsb._next_window(current_setting('gsb.maintenance_window'), as_of);
    IF w.starts_at IS NOT NULL THEN
        starts_at := w.starts_at;
        ends_at := w.ends_at;
        RETURN NEXT;
    END IF;
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
    IF t.action = 'switch' AND t.reason = 'automatic failover'
       AND EXISTS (SELECT 1 FROM gsb.witness) THEN
        -- The witness votes (gsb._witness_claim); a refusal is the answer
        -- whenever the primary still reaches it, every heartbeat.
        BEGIN
            PERFORM gsb._switch(t.to_site, t.reason, t.detail, t.next_mode, t.next_automatic);
        EXCEPTION WHEN lock_not_available OR connection_failure THEN
            RETURN NULL;
        END;
    ELSIF t.action = 'switch' THEN
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
