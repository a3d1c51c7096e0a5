-- One site alone: the active site, meetings and usage on the primary, the
-- maintenance window's arithmetic, and the errors of what needs a peer.
SET timezone = 'UTC';
SELECT gsb.active_site(), gsb.is_active(), gsb.detect_backup();

-- Meetings start on the active site, and ending one records its usage.
SELECT gsb.create_account('meg@example.com', 'Meg') AS meg \gset
SELECT gsb.schedule_meeting(:meg, 'Standup', '2030-01-01 09:00+00') AS m \gset
SELECT gsb.join_meeting(:m) AS join_before_start;
SELECT gsb.start_meeting(:m);
SELECT status, hosted_site, started_at IS NOT NULL AS started FROM gsb.meetings WHERE id = :m;
SELECT gsb.join_meeting(:m) AS join_while_running;
SELECT gsb.start_meeting(:m);   -- already running here: nothing changes
-- Pretend it started 90 s ago, to check the minutes.
UPDATE gsb.meetings SET started_at = now() - interval '90 seconds' WHERE id = :m;
SELECT gsb.end_meeting(:m);
SELECT status, ended_at IS NOT NULL AS ended FROM gsb.meetings WHERE id = :m;
SELECT site, meeting_id = :m AS same_meeting, round(minutes, 3) AS minutes,
       minutes = EXTRACT(EPOCH FROM (ended_at - started_at)) / 60 AS exact
  FROM gsb.usage WHERE meeting_id = :m;
SELECT try(format('SELECT gsb.end_meeting(%s)', :m));
SELECT try(format('SELECT gsb.start_meeting(%s)', :m));
SELECT try('SELECT gsb.start_meeting(-1)');
SELECT try('SELECT gsb.join_meeting(-1)');

-- A meeting taken over from a site that failed mid-meeting: the old site's
-- part is its own usage row, and both parts count as one meeting.
SELECT gsb.schedule_meeting(:meg, 'Interrupted', '2030-01-02 09:00+00') AS m2 \gset
UPDATE gsb.meetings SET status = 'in_progress', hosted_site = 'ams',
       started_at = now() - interval '60 seconds' WHERE id = :m2;
SELECT try(format('SELECT gsb.end_meeting(%s)', :m2));
SELECT gsb.start_meeting(:m2);
UPDATE gsb.meetings SET started_at = now() - interval '30 seconds' WHERE id = :m2;
SELECT gsb.end_meeting(:m2);
SELECT site, round(minutes, 1) AS minutes FROM gsb.usage WHERE meeting_id = :m2 ORDER BY site;
SELECT account_id = :meg AS meg, meetings, round(minutes, 1) AS minutes,
       round(primary_minutes, 1) AS primary_minutes, round(backup_minutes, 1) AS backup_minutes
  FROM gsb.usage_report(now() - interval '1 day', now() + interval '1 day');
SELECT count(*) AS rows_outside FROM gsb.usage_report(now() + interval '1 day', now() + interval '2 days');

-- The maintenance window, in any time zone, across midnight too.
SELECT gsb._in_window('19:00-21:00 America/Los_Angeles', '2030-01-01 03:30+00') AS pst_2030,
       gsb._in_window('19:00-21:00 America/Los_Angeles', '2030-01-01 05:30+00') AS after,
       gsb._in_window('23:00-01:00 UTC', '2030-01-01 00:30+00') AS midnight,
       gsb._in_window('', now()) AS empty;
SELECT try($q$SELECT gsb._in_window('7pm to 9pm', now())$q$);

-- What needs a peer, or the backup, says so.
SELECT try('SELECT gsb.failover()');
SELECT try('SELECT gsb.begin_maintenance()');
SELECT try('SELECT gsb.end_maintenance()');
SELECT try('SELECT gsb.sync_config()');
SELECT gsb.failback();   -- the primary is active already: a notice
SELECT count(*) AS events FROM gsb.site_events;

-- A maintenance window that cannot be read is refused when it is set.
ALTER SYSTEM SET gsb.maintenance_window = '7pm to 9pm';
ALTER SYSTEM SET gsb.maintenance_window = '19:00-21:00 Mars/Olympus_Mons';
ALTER SYSTEM SET gsb.maintenance_window = '25:00-21:00 UTC';
\set VERBOSITY default
