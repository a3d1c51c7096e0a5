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
        -- With a witness: fenced (no live lease), or not yet confirmed
        -- after a start; without: not yet confirmed after a start.
        RAISE EXCEPTION 'site % is not serving: it has not confirmed that it is still the active site', me.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE WHEN EXISTS (SELECT 1 FROM gsb.witness)
                                THEN 'It is fenced (it reaches neither its peer nor its witness) or has just started.'
                                ELSE 'It has just started.' END,
                  HINT = 'Try again in a moment; if the other site has become the active site, start the meeting there.';
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
