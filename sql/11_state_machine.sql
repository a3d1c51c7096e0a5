-- The site state machine, gsb._site_transition(): the site monitor's
-- decisions as a table of cases. Sites: ams is the primary, nyc the backup.
-- Settings unless a row says otherwise: gsb.failover_timeout 10 s,
-- gsb.failback_delay 5 s, gsb.config_sync_interval 1 day, and the window
-- '19:00-21:00 UTC'; "inside" is 2030-01-07 20:00 UTC, "outside" 12:00.
-- A peer view is what gsb._heartbeat() answers: name, role, term, active
-- site, mode, automatic, window.
CREATE TEMP TABLE state_cases (
    n int, name text,
    role text, term bigint, active text, mode text, automatic boolean,
    peer text[], reachable boolean, unreachable_ms bigint, reachable_ms bigint,
    since_copy interval, caught_up boolean,
    timeout_ms bigint DEFAULT 10000, delay_ms bigint DEFAULT 5000,
    win text DEFAULT '19:00-21:00 UTC', inside boolean DEFAULT false);

INSERT INTO state_cases (n, name, role, term, active, mode, automatic, peer, reachable,
                         unreachable_ms, reachable_ms, since_copy, caught_up) VALUES
    -- the backup: failover
    (1, 'normal, primary reachable, copy made an hour ago',
        'backup', 1, 'ams', 'normal', false, NULL, true, 0, 60000, '1 hour', NULL),
    (2, 'primary unreachable, below failover_timeout',
        'backup', 1, 'ams', 'normal', false, NULL, false, 9999, 0, '1 hour', NULL),
    (3, 'primary unreachable, at failover_timeout',
        'backup', 1, 'ams', 'normal', false, NULL, false, 10000, 0, '1 hour', NULL),
    (4, 'primary unreachable, above failover_timeout',
        'backup', 1, 'ams', 'normal', false, NULL, false, 600000, 0, '1 hour', NULL),
    -- the backup: failback after an automatic failover
    (6, 'failed over, primary back below failback_delay',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 4999, '1 hour', NULL),
    (7, 'failed over, primary back for failback_delay, not looked yet',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 5000, '1 hour', NULL),
    (8, 'failed over, primary back and caught up',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 5000, '1 hour', true),
    (9, 'failed over, primary back but not caught up',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 5000, '1 hour', false),
    (10, 'failed over, primary not caught up, daily copy due',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 5000, '2 days', false),
    (12, 'failed over by hand: no automatic failback',
        'backup', 2, 'nyc', 'failed_over', false, NULL, true, 0, 600000, '1 hour', true),
    (13, 'failed over, primary still unreachable',
        'backup', 2, 'nyc', 'failed_over', true, NULL, false, 600000, 0, '1 hour', NULL),
    -- the backup: the daily copy
    (14, 'daily copy never made',
        'backup', 1, 'ams', 'normal', false, NULL, true, 0, 1000, NULL, NULL),
    (15, 'daily copy made a day ago',
        'backup', 1, 'ams', 'normal', false, NULL, true, 0, 1000, '1 day', NULL),
    (16, 'daily copy never made, primary unreachable',
        'backup', 1, 'ams', 'normal', false, NULL, false, 1000, 0, NULL, NULL),
    (17, 'maintenance: the backup serves, and waits for the primary to end it',
        'backup', 2, 'nyc', 'maintenance', true, NULL, true, 0, 600000, '1 hour', NULL),
    -- the primary: the maintenance window
    (20, 'normal, outside the window',
        'primary', 1, 'ams', 'normal', false, NULL, true, 0, 60000, NULL, NULL),
    (22, 'maintenance already under way, inside the window',
        'primary', 2, 'nyc', 'maintenance', true, NULL, true, 0, 60000, NULL, NULL),
    (23, 'maintenance by the window, window over',
        'primary', 2, 'nyc', 'maintenance', true, NULL, true, 0, 60000, NULL, NULL),
    (24, 'maintenance by hand, outside the window',
        'primary', 2, 'nyc', 'maintenance', false, NULL, true, 0, 60000, NULL, NULL),
    (25, 'failed over, inside the window',
        'primary', 2, 'nyc', 'failed_over', true, NULL, true, 0, 60000, NULL, NULL),
    (26, 'normal, inside the window, backup unreachable',
        'primary', 1, 'ams', 'normal', false, NULL, false, 60000, 0, NULL, NULL),
    (27, 'maintenance by the window, window over, backup unreachable',
        'primary', 2, 'nyc', 'maintenance', true, NULL, false, 60000, 0, NULL, NULL),
    -- the peer's view
    (30, 'the primary''s view has a higher term',
        'backup', 2, 'nyc', 'failed_over', true, '{ams,primary,3,ams,normal,false,""}', true, 0, 600000,
        '1 hour', NULL),
    (31, 'the primary''s view has a lower term',
        'backup', 3, 'ams', 'normal', false, '{ams,primary,2,nyc,failed_over,true,""}', true, 0, 600000,
        '1 hour', NULL),
    (32, 'equal term, the primary''s view differs',
        'backup', 2, 'nyc', 'maintenance', true, '{ams,primary,2,ams,normal,false,""}', true, 0, 600000,
        '1 hour', NULL),
    (33, 'equal term, the same view',
        'backup', 2, 'ams', 'normal', false, '{ams,primary,2,ams,normal,false,""}', true, 0, 600000,
        '1 hour', NULL),
    (34, 'equal term, the backup''s view differs',
        'primary', 2, 'ams', 'normal', false, '{nyc,backup,2,nyc,failed_over,true,""}', true, 0, 600000,
        NULL, NULL),
    (35, 'the primary ended maintenance: adopt, then the daily copy',
        'backup', 3, 'nyc', 'maintenance', true, '{ams,primary,4,ams,normal,false,""}', true, 0, 600000,
        NULL, NULL),
    (5, 'failover off (failover_timeout 0), primary unreachable',
        'backup', 1, 'ams', 'normal', false, NULL, false, 600000, 0, '1 hour', NULL),
    (11, 'failed over, failback_delay -1 (never by itself)',
        'backup', 2, 'nyc', 'failed_over', true, NULL, true, 0, 600000000, '1 hour', true),
    (21, 'normal, inside the window',
        'primary', 1, 'ams', 'normal', false, NULL, true, 0, 60000, NULL, NULL),
    (28, 'normal, no window set',
        'primary', 1, 'ams', 'normal', false, NULL, true, 0, 60000, NULL, NULL),
    (36, 'the backup''s view has a higher term (it failed over), inside the window',
        'primary', 1, 'ams', 'normal', false, '{nyc,backup,2,nyc,failed_over,true,""}', true, 0, 600000,
        NULL, NULL);
-- The rows whose settings or clock differ from the defaults.
UPDATE state_cases SET timeout_ms = 0 WHERE n = 5;
UPDATE state_cases SET delay_ms = -1 WHERE n = 11;
UPDATE state_cases SET win = '' WHERE n = 28;
UPDATE state_cases SET inside = true WHERE n IN (21, 22, 25, 26, 28, 36);

\pset null '-'
SELECT c.n, c.role || ': ' || c.name AS "case",
       t.adopt,
       format('%s %s %s%s', t.next_term, coalesce(t.next_active, '-'), t.next_mode,
              CASE WHEN t.next_automatic THEN ' automatic' ELSE '' END) AS "next view",
       t.action, t.to_site, t.reason, t.detail, t.result
  FROM state_cases c
 CROSS JOIN LATERAL gsb._site_transition(
        c.role, CASE c.role WHEN 'primary' THEN 'ams' ELSE 'nyc' END, 'ams', 'nyc',
        c.term, c.active, c.mode, c.automatic, c.peer,
        c.reachable, c.unreachable_ms, c.reachable_ms, c.since_copy, c.caught_up,
        c.timeout_ms, c.delay_ms, '1 day', c.win,
        CASE WHEN c.inside THEN '2030-01-07 20:00+00' ELSE '2030-01-07 12:00+00' END::timestamptz) t
 ORDER BY c.n;
\pset null ''

-- The rule of views alone, with NULLs: a view without a term is never newer.
SELECT gsb._newer_view(1, 'ams', 'normal', false, NULL, 'nyc', 'failed_over', true, 'primary') AS no_term,
       gsb._newer_view(1, 'ams', 'normal', false, 1, 'nyc', 'failed_over', true, NULL) AS unknown_role;
DROP TABLE state_cases;
