-- gsb.next_maintenance(): the maintenance window in progress, or else the
-- next one, from gsb.maintenance_window, at fixed reference times (the
-- window logic is gsb._next_window(win, as_of), which the monitor's
-- gsb._in_window() uses too). Times shown in UTC.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- No window set (test/regress.conf): no row.
SELECT count(*) AS rows_without_window FROM gsb.next_maintenance();
SELECT count(*) AS rows_without_window FROM gsb.next_maintenance('2030-01-01 00:00+00');
-- An empty or blank window: none.
SELECT * FROM gsb._next_window('', '2030-01-01 00:00+00');
SELECT * FROM gsb._next_window('   ', '2030-01-01 00:00+00');

CREATE TEMP TABLE cases (n int, win text, as_of timestamptz, what text);
INSERT INTO cases VALUES
  -- 19:00-21:00 in Los Angeles, winter (PST, UTC-8): 03:00-05:00 UTC.
  (1, '19:00-21:00 America/Los_Angeles', '2026-12-07 12:00-08', 'before it, the same day'),
  (2, '19:00-21:00 America/Los_Angeles', '2026-12-07 19:00-08', 'at its start: in progress'),
  (3, '19:00-21:00 America/Los_Angeles', '2026-12-07 20:59:59-08', 'in progress: the current one'),
  (4, '19:00-21:00 America/Los_Angeles', '2026-12-07 21:00-08', 'at its end: the next day''s'),
  -- summer (PDT, UTC-7): 02:00-04:00 UTC.
  (5, '19:00-21:00 America/Los_Angeles', '2026-07-01 22:00-07', 'summer, after it'),
  -- across midnight
  (6, '23:00-01:00 UTC', '2030-01-01 00:30+00', 'across midnight, in progress after midnight'),
  (7, '23:00-01:00 UTC', '2030-01-01 22:00+00', 'across midnight, later that evening'),
  (8, '23:00-01:00 UTC', '2030-01-01 23:30+00', 'across midnight, in progress before midnight'),
  (9, '22:30-02:15 Europe/Amsterdam', '2030-12-31 23:00+00', 'across midnight and a new year'),
  -- Los Angeles springs forward on 2026-03-08 at 02:00 (to 03:00).
  (10, '01:30-03:30 America/Los_Angeles', '2026-03-08 00:00-08', 'spring forward: an hour shorter'),
  (11, '02:00-03:00 America/Los_Angeles', '2026-03-08 00:00-08', 'spring forward: a window in the lost hour is skipped'),
  (12, '02:30-04:00 America/Los_Angeles', '2026-03-08 00:00-08', 'spring forward: a start in the lost hour'),
  -- and falls back on 2026-11-01 at 02:00 (to 01:00).
  (13, '01:00-02:00 America/Los_Angeles', '2026-11-01 00:00-07', 'fall back: the second 01:00 (standard time)'),
  (14, '00:30-01:30 America/Los_Angeles', '2026-11-01 01:15-08', 'fall back: an hour longer, in progress'),
  (15, '19:00-21:00 America/Los_Angeles', '2026-11-01 12:00-08', 'fall back, later that day'),
  -- the same start and end: no window (not a whole day)
  (16, '12:00-12:00 UTC', '2030-01-01 00:00+00', 'start = end: no window'),
  (17, '9:05-9:35 Asia/Kolkata', '2030-01-01 00:00+00', 'a half-hour zone, one-digit hour');
SELECT n, what, w.starts_at, w.ends_at, w.ends_at - w.starts_at AS lasts
  FROM cases c LEFT JOIN LATERAL gsb._next_window(c.win, c.as_of) w ON true
 ORDER BY n;

-- The monitor's gsb._in_window() says "in the window" exactly from
-- starts_at to ends_at: every 5 minutes over the two days around each case.
SELECT c.n, count(*) AS disagreements
  FROM cases c
 CROSS JOIN LATERAL generate_series(c.as_of - interval '1 day', c.as_of + interval '1 day',
                                    interval '5 minutes') t
 CROSS JOIN LATERAL gsb._next_window(c.win, t) w
 WHERE gsb._in_window(c.win, t) IS DISTINCT FROM coalesce(t >= w.starts_at, false)
 GROUP BY c.n
 ORDER BY c.n;

-- Bad windows: the setting's own checks.
SELECT try($q$SELECT gsb._next_window('7pm to 9pm', now())$q$);
SELECT try($q$SELECT gsb._next_window('19:00-21:00 Mars/Olympus_Mons', now())$q$);
SELECT try($q$SELECT gsb._next_window('25:00-21:00 UTC', now())$q$);
SELECT try($q$SELECT * FROM gsb.next_maintenance(NULL)$q$);

-- Anyone may ask (users are to be told in advance).
SELECT has_function_privilege('public', 'gsb.next_maintenance(timestamptz)', 'EXECUTE') AS public_may_ask;
DROP TABLE cases;
