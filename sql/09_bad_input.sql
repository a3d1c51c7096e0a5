-- Bad input to every SQL function in schema gsb: NULLs, empty strings, bad
-- regclass, role, mode and site names, absurd times, unknown ids, and calls
-- before gsb.init_site(). Each must be a clear error with a proper SQLSTATE
-- and a hint (never XX000, never a crash), or a documented harmless answer.
--
-- The file is systematic: every call goes through bad(), which logs it; at
-- the end the catalog is checked against the log, so a function added to gsb
-- without a call here makes this test fail, and so does any error that is
-- XX000 or, from a function a gsb_admin member can call, has no hint.
-- Functions without arguments have no bad input of their own: they are
-- called before init_site (and after), which is where they can go wrong.
-- PostgreSQL's own input errors (a regclass or interval literal it cannot
-- read, before any gsb code runs) are shown with plain try(), unlogged.

-- A fresh extension: 01-08 leave an initialised site behind.
DROP EXTENSION gsb CASCADE;
CREATE EXTENSION gsb;
-- Times and intervals in messages as an operator's session shows them.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET intervalstyle = 'postgres';
SELECT pg_postmaster_start_time() AS started \gset
SELECT pg_backend_pid() AS pid \gset

CREATE TABLE bad_calls (n serial PRIMARY KEY, query text NOT NULL, result text NOT NULL);
-- bad(query): try(query) from 01_setup, logged in bad_calls. A constraint's
-- "Failing row" detail holds timestamps and ids: shown without them.
CREATE FUNCTION bad(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text := regexp_replace(try(query), 'Failing row contains \([^\n]*\)\.', 'Failing row contains (...).');
BEGIN
    INSERT INTO bad_calls (query, result) VALUES (query, r);
    RETURN r;
END
$$;

-- Relations of every kind that a regclass argument may name.
CREATE TABLE bi_ok (id int PRIMARY KEY, v text);
CREATE TABLE bi_nokey (id int, v text);
CREATE UNLOGGED TABLE bi_unlogged (id int PRIMARY KEY);
CREATE TEMP TABLE bi_temp (id int PRIMARY KEY);
CREATE VIEW bi_view AS SELECT * FROM bi_ok;
CREATE MATERIALIZED VIEW bi_mview AS SELECT * FROM bi_ok;
CREATE SEQUENCE bi_seq;
CREATE TABLE bi_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE bi_part1 PARTITION OF bi_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE bi_gone (id int PRIMARY KEY);
SELECT 'bi_gone'::regclass::oid AS gone_oid \gset
DROP TABLE bi_gone;

------------------------------------------------------------------------------
-- Before gsb.init_site(): whatever needs a site says so, with the way out.
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb.site_name()$q$);
SELECT bad($q$SELECT gsb.site_role()$q$);
SELECT bad($q$SELECT gsb._site()$q$);
SELECT bad($q$SELECT gsb.active_site()$q$);
SELECT bad($q$SELECT gsb.is_active()$q$);
SELECT bad($q$SELECT gsb.detect_backup()$q$);
SELECT bad($q$SELECT gsb.next_id('gsb.accounts_id_seq')$q$);
SELECT bad($q$SELECT gsb.create_account('ann@example.com', 'Ann')$q$);
SELECT bad($q$SELECT gsb.schedule_meeting(1, 'Weekly', '2030-01-07 17:00+00')$q$);
SELECT bad($q$SELECT gsb.start_meeting(1)$q$);
SELECT bad($q$SELECT gsb.join_meeting(1)$q$);   -- no site needed to say so
SELECT bad($q$SELECT gsb.end_meeting(1)$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.drop_peer('ams')$q$);
SELECT bad($q$SELECT gsb.wait_for_peer('1 s')$q$);
SELECT bad($q$SELECT * FROM gsb.verify()$q$);
SELECT bad($q$SELECT gsb.failover()$q$);
SELECT bad($q$SELECT gsb.failback()$q$);
SELECT bad($q$SELECT gsb.begin_maintenance()$q$);
SELECT bad($q$SELECT gsb.end_maintenance()$q$);
SELECT bad($q$SELECT gsb.sync_config()$q$);
-- Getters that need no site: nothing known yet. No usage can exist before
-- init_site (its ids need the site), so the report is empty, and the
-- primary's name is unknown (NULL).
SELECT bad($q$SELECT count(*) FROM gsb.usage_report('2030-01-01', '2030-02-01')$q$);
SELECT bad($q$SELECT gsb._primary_name() IS NULL$q$);
SELECT bad($q$SELECT gsb.protocol_version() > 0$q$);
SELECT bad($q$SELECT count(*) FROM gsb._worker_status()$q$);
SELECT bad($q$SELECT count(*) FROM gsb._monitor_status()$q$);
SELECT bad($q$SELECT count(*) FROM gsb._clock_offset()$q$);
SELECT bad($q$SELECT gsb._state_confirmed()$q$);
-- Internals of the monitor and of failover, before init.
SELECT bad($q$SELECT gsb._other_site()$q$);
SELECT bad($q$SELECT gsb._backup_name()$q$);
SELECT bad($q$SELECT gsb._wait_for('sjc', '1 s')$q$);
SELECT bad($q$SELECT gsb._require_caught_up('sjc')$q$);
SELECT bad($q$SELECT gsb._begin_maintenance(false)$q$);
SELECT bad($q$SELECT gsb._switch('sjc', 'manual failover', NULL, 'failed_over')$q$);
SELECT bad($q$SELECT gsb._heartbeat('ams', 1, 'ams', 'failed_over', false)$q$);
SELECT bad($q$SELECT gsb._monitor_tick(false, 0, 0, NULL)$q$);
SELECT bad($q$SELECT gsb._site_reachable('ams')$q$);
-- The next maintenance window needs no site (none is set here).
SELECT bad($q$SELECT count(*) FROM gsb.next_maintenance()$q$);
-- The witness, the vote and the lease, before init.
SELECT bad($q$SELECT gsb.add_witness('wit', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.drop_witness('wit')$q$);
SELECT bad($q$SELECT count(*) FROM gsb._witness_status()$q$);
SELECT bad($q$SELECT gsb._lease_live(0)$q$);
SELECT bad($q$SELECT gsb._lease_ms() > 0$q$);
SELECT bad($q$SELECT gsb._peer_heard()$q$);
SELECT bad($q$SELECT (gsb._active_seen()).recent$q$);
SELECT bad($q$SELECT gsb._require_witness()$q$);
SELECT bad($q$SELECT gsb._witness_ping('sjc', 'ams', 0, 'sjc', 'normal', false, 2000)$q$);
SELECT bad($q$SELECT gsb._witness_grant('ams', 1, 'ams', 'failed_over', true, 'automatic failover', 'sjc', 2000)$q$);
SELECT bad($q$SELECT gsb._witness_claim(1, 'ams', 'failed_over', true, 'automatic failover', 'sjc')$q$);
SELECT bad($q$SELECT gsb._record_fence(true, 'test')$q$);
SELECT bad($q$SELECT gsb._check_split_brain(NULL, 1, 'ams')$q$);

------------------------------------------------------------------------------
-- gsb.init_site(site_name, role)
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb.init_site(NULL, 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc', NULL)$q$);
SELECT bad($q$SELECT gsb.init_site(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb.init_site('', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc', '')$q$);
SELECT bad($q$SELECT gsb.init_site('SJC', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('1sjc', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc-1', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('göteborg', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site(repeat('s', 41), 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc', 'PRIMARY')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc', ' primary')$q$);
SELECT bad($q$SELECT gsb.init_site('sjc', 'leader')$q$);
-- Still nothing initialised.
SELECT count(*) AS sites FROM gsb.site;

------------------------------------------------------------------------------
-- gsb.replicate_table(rel, mode) and gsb.unreplicate_table(rel) need no
-- site. A name that is no relation fails in regclass's input function,
-- before gsb runs: PostgreSQL's own error, shown with try().
------------------------------------------------------------------------------
SELECT try($q$SELECT gsb.replicate_table('no_such_table')$q$);
SELECT try($q$SELECT gsb.replicate_table('')$q$);
SELECT try($q$SELECT gsb.unreplicate_table('no_such_table')$q$);
SELECT bad($q$SELECT gsb.replicate_table(NULL)$q$);
SELECT bad($q$SELECT gsb.replicate_table(NULL, 'daily')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_ok', NULL)$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_ok', '')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_ok', 'REALTIME')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_ok', 'weekly')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_nokey')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_unlogged')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_temp')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_view')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_mview')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_seq')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_parted')$q$);
SELECT bad($q$SELECT gsb.replicate_table('bi_ok_pkey')$q$);
SELECT bad($q$SELECT gsb.replicate_table('pg_class')$q$);
SELECT bad($q$SELECT gsb.replicate_table('information_schema.sql_features')$q$);

------------------------------------------------------------------------------
-- gsb.replicate_ddl(command): DDL only; a command that fails here is never
-- sent (its error gets a hint saying so). Needs no site.
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb.replicate_ddl(NULL)$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl(' ; ')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('SELECT 1')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('INSERT INTO bi_ok VALUES (1)')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('CREATE INDEX ON bi_ok (v); DELETE FROM bi_ok')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('BEGIN')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('not a command')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('ALTER TABLE no_such_table ADD COLUMN c int')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('CREATE INDEX CONCURRENTLY ON bi_ok (v)')$q$);
SELECT bad($q$SELECT gsb.replicate_ddl('CREATE TEMP TABLE bi_ddl_temp (id int)')$q$);
-- Nothing of those ran, and nothing was recorded.
SELECT count(*) AS ddl_logged FROM gsb.ddl_log;
SELECT count(*) AS bi_ok_indexes FROM pg_indexes WHERE tablename = 'bi_ok';
SELECT bad($q$SELECT gsb.replicate_table('gsb.site')$q$);
SELECT bad($q$SELECT gsb.replicate_table('gsb.peers')$q$);
SELECT bad($q$SELECT gsb.replicate_table('gsb.tables')$q$);
SELECT bad($q$SELECT gsb.replicate_table('gsb.site_state')$q$);
SELECT bad($q$SELECT gsb.replicate_table('gsb.conflicts')$q$);
-- By OID: none, and a table dropped since (its OID shown as gone_oid).
SELECT bad($q$SELECT gsb.replicate_table(0)$q$);
SELECT replace(bad(format($q$SELECT gsb.replicate_table(%s)$q$, :gone_oid)), :'gone_oid', 'gone_oid');
SELECT bad($q$SELECT gsb.unreplicate_table(NULL)$q$);
SELECT bad($q$SELECT gsb.unreplicate_table('bi_ok')$q$);
SELECT bad($q$SELECT gsb.unreplicate_table('bi_view')$q$);
SELECT bad($q$SELECT gsb.unreplicate_table('pg_class')$q$);
SELECT bad($q$SELECT gsb.unreplicate_table('gsb.site_events')$q$);
SELECT bad($q$SELECT gsb.unreplicate_table('gsb.accounts')$q$);
SELECT bad($q$SELECT gsb.unreplicate_table(0)$q$);
SELECT replace(bad(format($q$SELECT gsb.unreplicate_table(%s)$q$, :gone_oid)), :'gone_oid', 'gone_oid');
-- Nothing was registered by any of that.
SELECT relation, mode FROM gsb.replicated_tables ORDER BY relation::text;

------------------------------------------------------------------------------
-- The site, now.
------------------------------------------------------------------------------
SELECT gsb.init_site('sjc', 'primary');
SELECT bad($q$SELECT gsb.init_site('sjc', 'backup')$q$);
SELECT bad($q$SELECT gsb.init_site('ams', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site('SJC', 'primary')$q$);
SELECT bad($q$SELECT gsb.init_site(NULL, 'primary')$q$);

------------------------------------------------------------------------------
-- Ids, accounts, meetings.
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb.next_id(NULL)$q$);
SELECT bad($q$SELECT gsb.next_id('bi_seq')$q$);
SELECT bad($q$SELECT gsb.next_id('bi_ok')$q$);
SELECT bad($q$SELECT gsb.next_id(0)$q$);

SELECT bad($q$SELECT gsb.create_account(NULL, 'Ann')$q$);
SELECT bad($q$SELECT gsb.create_account('', 'Ann')$q$);
SELECT bad($q$SELECT gsb.create_account('   ', 'Ann')$q$);
-- The name is optional.
SELECT bad($q$SELECT gsb.create_account('ann@example.com', NULL) > 0$q$);
SELECT bad($q$SELECT gsb.create_account('bob@example.com', '') > 0$q$);
SELECT min(id) AS ann FROM gsb.accounts \gset

SELECT bad($q$SELECT gsb.schedule_meeting(NULL, 'Weekly', '2030-01-07 17:00+00')$q$);
SELECT bad($q$SELECT gsb.schedule_meeting(-1, 'Weekly', '2030-01-07 17:00+00')$q$);
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, 'Weekly', NULL)$q$, :ann));
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, 'Weekly', 'infinity')$q$, :ann));
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, 'Weekly', '-infinity')$q$, :ann));
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, 'Weekly', '2030-01-07 17:00+00', '')$q$, :ann));
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, 'Weekly', '2030-01-07 17:00+00', '  ')$q$, :ann));
-- The title is optional, and NULL for the number means gsb chooses one.
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, NULL, '2030-01-07 17:00+00', NULL) > 0$q$, :ann));
SELECT bad(format($q$SELECT gsb.schedule_meeting(%s, '', '2030-01-07 17:00+00') > 0$q$, :ann));
SELECT min(id) AS m FROM gsb.meetings \gset

SELECT bad($q$SELECT gsb.start_meeting(NULL)$q$);
SELECT bad($q$SELECT gsb.start_meeting(-1)$q$);
SELECT bad($q$SELECT gsb.join_meeting(NULL)$q$);
SELECT bad($q$SELECT gsb.join_meeting(-1)$q$);
SELECT bad($q$SELECT gsb.end_meeting(NULL)$q$);
SELECT bad($q$SELECT gsb.end_meeting(-1)$q$);
SELECT bad(format($q$SELECT gsb.end_meeting(%s)$q$, :m));
SELECT bad($q$SELECT gsb._meeting(NULL)$q$);
SELECT bad($q$SELECT gsb._meeting(-1)$q$);
-- Ended meetings.
SELECT gsb.start_meeting(:m);
SELECT gsb.end_meeting(:m);
SELECT bad(format($q$SELECT gsb.start_meeting(%s)$q$, :m));
SELECT bad(format($q$SELECT gsb.join_meeting(%s)$q$, :m));
SELECT bad(format($q$SELECT gsb.end_meeting(%s)$q$, :m));

-- _record_usage(meeting, site, from, to): the usage row of a meeting's part.
SELECT bad($q$SELECT gsb._record_usage(NULL, 'sjc', now(), now())$q$);
SELECT bad(format($q$SELECT gsb._record_usage(m, NULL, now(), now()) FROM gsb.meetings m WHERE id = %s$q$, :m));
SELECT bad(format($q$SELECT gsb._record_usage(m, '', now(), now()) FROM gsb.meetings m WHERE id = %s$q$, :m));
SELECT bad(format($q$SELECT gsb._record_usage(m, 'sjc', NULL, now()) FROM gsb.meetings m WHERE id = %s$q$, :m));
SELECT bad(format($q$SELECT gsb._record_usage(m, 'sjc', now(), NULL) FROM gsb.meetings m WHERE id = %s$q$, :m));
SELECT count(*) AS usage_rows FROM gsb.usage;

-- usage_report(from_ts, to_ts): [from_ts, to_ts); an empty period is fine.
SELECT bad($q$SELECT * FROM gsb.usage_report(NULL, '2030-01-01')$q$);
SELECT bad($q$SELECT * FROM gsb.usage_report('2030-01-01', NULL)$q$);
SELECT bad($q$SELECT * FROM gsb.usage_report('2030-02-01', '2030-01-01')$q$);
SELECT bad($q$SELECT count(*) FROM gsb.usage_report('2030-01-01', '2030-01-01')$q$);
SELECT bad($q$SELECT count(*) FROM gsb.usage_report('-infinity', 'infinity')$q$);

-- The same as a gsb_admin member, who is no superuser: the checks that the
-- meeting functions call are executable by their callers, and the errors are
-- the same.
CREATE ROLE bi_admin IN ROLE gsb_admin;
GRANT SELECT, INSERT ON bad_calls TO bi_admin;
GRANT USAGE ON SEQUENCE bad_calls_n_seq TO bi_admin;
SET ROLE bi_admin;
SELECT gsb.schedule_meeting(:ann, 'As admin', '2030-01-07 17:00+00') AS m2 \gset
SELECT bad(format($q$SELECT gsb.start_meeting(%s)$q$, :m2));
SELECT bad(format($q$SELECT gsb.end_meeting(%s)$q$, :m2));
SELECT bad(format($q$SELECT gsb.end_meeting(%s)$q$, :m2));
SELECT bad(format($q$SELECT gsb._record_usage(m, 'Sjc', now(), now()) FROM gsb.meetings m WHERE id = %s$q$, :m2));
SELECT bad($q$SELECT * FROM gsb.usage_report('2030-02-01', '2030-01-01')$q$);
SELECT bad($q$SELECT gsb.next_id(NULL)$q$);
SELECT bad($q$SELECT gsb.replicate_table('gsb.peers')$q$);
SELECT bad($q$SELECT gsb.drop_peer(NULL)$q$);
SELECT bad($q$SELECT gsb.wait_for_peer(NULL)$q$);
RESET ROLE;
DROP OWNED BY bi_admin;
DROP ROLE bi_admin;

------------------------------------------------------------------------------
-- Peers. There is no peer in pg_regress: argument and state errors only, and
-- an unreachable address that fails at once (port 1, connect_timeout=1).
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb.add_peer(NULL, 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer('', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer('AMS', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer(repeat('a', 41), 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer('sjc', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', NULL)$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', '')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', '   ')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'garbage')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 connect_timeout=1 colour=blue')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 connect_timeout=1', NULL)$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 connect_timeout=1', false)$q$);

SELECT bad($q$SELECT gsb.drop_peer(NULL)$q$);
SELECT bad($q$SELECT gsb.drop_peer('')$q$);
SELECT bad($q$SELECT gsb.drop_peer('AMS')$q$);
SELECT bad($q$SELECT gsb.drop_peer('ams')$q$);
SELECT bad($q$SELECT gsb.drop_peer('sjc')$q$);
SELECT bad($q$SELECT gsb.add_witness(NULL, 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_witness('wit', NULL)$q$);
SELECT bad($q$SELECT gsb.add_witness('wit', '')$q$);
SELECT bad($q$SELECT gsb.add_witness('Wit', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_witness('sjc', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_witness('wit', 'host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT bad($q$SELECT gsb.add_witness('wit', 'garbage')$q$);
SELECT bad($q$SELECT gsb.drop_witness(NULL)$q$);
SELECT bad($q$SELECT gsb.drop_witness('')$q$);
SELECT bad($q$SELECT gsb.drop_witness('wit')$q$);

SELECT bad($q$SELECT gsb.wait_for_peer(NULL)$q$);
SELECT bad($q$SELECT gsb.wait_for_peer('-1 s')$q$);
SELECT bad($q$SELECT gsb.wait_for_peer('300000 years')$q$);
SELECT try($q$SELECT gsb.wait_for_peer('1000000000 years')$q$);  -- interval's own input error
SELECT bad($q$SELECT gsb.wait_for_peer('1 s')$q$);

-- verify(NULL) is the documented default: every realtime table.
SELECT bad($q$SELECT * FROM gsb.verify(NULL)$q$);
SELECT bad($q$SELECT * FROM gsb.verify('bi_ok')$q$);
SELECT bad($q$SELECT * FROM gsb.verify('bi_view')$q$);
SELECT bad($q$SELECT * FROM gsb.verify('gsb.site_config')$q$);
SELECT bad($q$SELECT * FROM gsb.verify('gsb.accounts')$q$);

-- The reason is free text for gsb.site_events: NULL means the default,
-- 'manual'.
SELECT bad($q$SELECT gsb.failover(NULL)$q$);
SELECT bad($q$SELECT gsb.failover('')$q$);
SELECT bad($q$SELECT gsb.failover('disk full')$q$);
SELECT bad($q$SELECT gsb.failback()$q$);
SELECT bad($q$SELECT gsb.begin_maintenance()$q$);
SELECT bad($q$SELECT gsb.end_maintenance()$q$);
SELECT bad($q$SELECT gsb.sync_config()$q$);

------------------------------------------------------------------------------
-- Internals that only superusers can call (gsb's own code, the monitor and
-- the peer's sessions call them with arguments they checked): no XX000, no
-- crash, no state changed by a NULL; a hint is not required of them.
-- The STRICT ones in gsb.so (_invalidate_relation, _run_as_owner,
-- _stop_worker, _release_peer, selftest_raise) do nothing on a NULL, which
-- is harmless; so do the monitor's _adopt_state, _heartbeat, _monitor_tick
-- and the pure _newer_view and _site_transition (a NULL compares as nothing
-- new). A NULL or empty window is no window; a window that cannot be read
-- never reaches _in_window, since gsb.maintenance_window refuses it when it
-- is set (08_sites).
------------------------------------------------------------------------------
SELECT bad($q$SELECT gsb._check_peer_name(NULL)$q$);
SELECT bad($q$SELECT gsb._check_peer_name('')$q$);
SELECT bad($q$SELECT gsb._check_peer_name('Ams')$q$);
-- Whether a site answers, as the monitor last found it: this site does, a
-- site that is not a peer does not.
SELECT bad($q$SELECT gsb._site_reachable(NULL)$q$);
SELECT bad($q$SELECT gsb._site_reachable('nosuch') IS FALSE$q$);
SELECT bad($q$SELECT gsb._site_reachable(gsb.site_name())$q$);
-- replicate_table's check of the peer's table: with no peer, nothing to ask.
SELECT bad($q$SELECT gsb._check_table_on_peers(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._check_table_on_peers('bi_ok', NULL)$q$);
SELECT bad($q$SELECT gsb._check_table_on_peers(0, 'realtime')$q$);
SELECT bad($q$SELECT gsb._check_table_on_peers('bi_ok', 'realtime')$q$);
SELECT bad($q$SELECT count(*) FROM gsb.next_maintenance(NULL)$q$);
SELECT bad($q$SELECT count(*) FROM gsb.next_maintenance('infinity')$q$);
SELECT bad($q$SELECT gsb._next_window(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._next_window('19:00-21:00 UTC', NULL)$q$);
SELECT bad($q$SELECT gsb._next_window('19:00-21:00 UTC', 'infinity')$q$);
SELECT bad($q$SELECT gsb._next_window('19:00-21:00 UTC', '-infinity')$q$);
SELECT bad($q$SELECT gsb._next_window('7pm to 9pm', now())$q$);
SELECT bad($q$SELECT gsb._next_window('19:00-21:00 Mars/Olympus_Mons', NULL)$q$);
SELECT bad($q$SELECT gsb._in_window(NULL, now())$q$);
SELECT bad($q$SELECT gsb._in_window('19:00-21:00 UTC', NULL)$q$);
SELECT bad($q$SELECT gsb._in_window('7pm to 9pm', now())$q$);
SELECT bad($q$SELECT gsb._in_window('19:00-21:00 Mars/Olympus_Mons', now())$q$);
SELECT bad($q$SELECT gsb._in_window('25:00-21:00 UTC', now())$q$);
SELECT bad($q$SELECT count(*) FROM gsb._table_columns(NULL)$q$);
SELECT bad($q$SELECT count(*) FROM gsb._table_columns('weekly')$q$);
SELECT bad($q$SELECT count(*) FROM gsb._columns(NULL)$q$);
SELECT bad($q$SELECT count(*) FROM gsb._columns(0)$q$);
SELECT bad($q$SELECT gsb._slot_name(NULL)$q$);
SELECT bad($q$SELECT gsb._origin_name(NULL)$q$);
-- The names the apply worker gives to the slot on its peer and to its origin.
SELECT gsb._slot_name('ams') AS slot, gsb._origin_name('nyc') AS origin;
SELECT bad($q$SELECT gsb._invalidate_relation(NULL)$q$);
SELECT bad($q$SELECT gsb._invalidate_relation(0)$q$);
SELECT replace(bad(format($q$SELECT gsb._invalidate_relation(%s)$q$, :gone_oid)), :'gone_oid', 'gone_oid');
SELECT bad($q$SELECT gsb._run_as_owner(NULL, 'SELECT 1', '{}')$q$);
SELECT bad($q$SELECT gsb._run_as_owner(0, 'SELECT 1', '{}')$q$);
SELECT replace(bad(format($q$SELECT gsb._run_as_owner(%s, 'SELECT 1', '{}')$q$, :gone_oid)), :'gone_oid', 'gone_oid');
SELECT bad($q$SELECT gsb._run_as_owner('bi_ok', '', '{}')$q$);
SELECT bad($q$SELECT gsb._run_as_owner('bi_ok', 'not sql', '{}')$q$);
SELECT bad($q$SELECT gsb._run_as_owner('bi_ok', 'SELECT 1; SELECT 2', '{}')$q$);
SELECT bad($q$SELECT gsb._read_as_owner(NULL, 'SELECT 1')$q$);
SELECT bad($q$SELECT gsb._read_as_owner(0, 'SELECT 1')$q$);
SELECT bad($q$SELECT gsb._read_as_owner('bi_ok', 'SELECT 1 FROM generate_series(1, 2)')$q$);
SELECT bad($q$SELECT gsb._read_as_owner('bi_ok', 'DELETE FROM bi_ok')$q$);
SELECT bad($q$SELECT gsb._read_as_owner('pg_class', 'SELECT 1')$q$);
SELECT bad($q$SELECT gsb._read_as_owner('bi_view', 'SELECT 1')$q$);
-- Read as the table's owner (here the superuser that made it): one row.
SELECT gsb._read_as_owner('bi_ok', 'SELECT 1, NULL, current_user') AS read_as_owner;
SELECT bad($q$SELECT gsb._conninfo_has_password(NULL)$q$);
SELECT bad($q$SELECT gsb._peer_login_uses_password(NULL)$q$);
SELECT bad($q$SELECT gsb._peer_login_uses_password('host=127.0.0.1 port=1 connect_timeout=1')$q$);
SELECT gsb._conninfo_has_password('host=x password=') AS empty,
       gsb._conninfo_has_password('host=x password=s3cret') AS given,
       gsb._conninfo_has_password('not a conninfo =') AS unparsable;
SELECT bad($q$SELECT gsb._check_table_rights(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._digest(NULL)$q$);
SELECT bad($q$SELECT gsb._digest('bi_ok')$q$);
SELECT bad($q$SELECT count(*) FROM gsb._daily_rows()$q$);
SELECT bad($q$SELECT gsb._peer_query(NULL, 'SELECT 1')$q$);
SELECT bad($q$SELECT gsb._peer_query('host=127.0.0.1 port=1 connect_timeout=1', NULL)$q$);
SELECT bad($q$SELECT gsb._peer_query('garbage', 'SELECT 1')$q$);
SELECT bad($q$SELECT gsb._peer_query('host=127.0.0.1 port=1 connect_timeout=1', 'SELECT 1', '{NULL}')$q$);
SELECT bad($q$SELECT gsb._stop_worker(NULL, '1 s')$q$);
SELECT bad($q$SELECT gsb._stop_worker('ams', NULL)$q$);
SELECT bad($q$SELECT gsb._stop_worker('ams', '-1 s')$q$);
SELECT bad($q$SELECT gsb._stop_worker('ams', '300000 years')$q$);
SELECT bad($q$SELECT gsb._release_peer(NULL)$q$);
SELECT bad($q$SELECT gsb._release_peer('')$q$);
SELECT bad($q$SELECT gsb._wake_supervisor()$q$);
SELECT bad($q$SELECT gsb._require_logical_wal()$q$);
SELECT bad($q$SELECT gsb.selftest_raise(NULL)$q$);
SELECT bad($q$SELECT gsb.selftest_raise('')$q$);
SELECT bad($q$SELECT gsb.selftest_receive(NULL, 'int4')$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00000001', NULL)$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00000001', 'int4', NULL)$q$);
SELECT bad($q$SELECT gsb.selftest_receive('', 'int4')$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00', 0::oid::regtype)$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00', 4242424::oid::regtype)$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00', 'anyelement')$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00', 'record')$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00000000', 'varchar', -7)$q$);
SELECT bad($q$SELECT gsb.selftest_receive('\x00000000', 'varchar', 2147483647)$q$);
SELECT bad($q$SELECT gsb.selftest_extension_version(NULL)$q$);
SELECT bad($q$SELECT gsb.selftest_extension_version('')$q$);
SELECT bad($q$SELECT gsb.selftest_extension_version('0.2dev')$q$);
SELECT bad($q$SELECT gsb.selftest_extension_version('0.1')$q$);
SELECT bad($q$SELECT gsb._other_site()$q$);
SELECT bad($q$SELECT gsb._backup_name()$q$);
SELECT bad($q$SELECT gsb._wait_for(NULL, '1 s')$q$);
SELECT bad($q$SELECT gsb._wait_for('sjc', NULL)$q$);
SELECT bad($q$SELECT gsb._require_caught_up(NULL)$q$);
SELECT bad($q$SELECT gsb._begin_maintenance(NULL)$q$);
SELECT bad($q$SELECT gsb._switch(NULL, 'manual failover', NULL, 'failed_over')$q$);
SELECT bad($q$SELECT gsb._switch('ams', 'manual failover', NULL, 'failed_over')$q$);
SELECT bad($q$SELECT gsb._switch('sjc', NULL, NULL, 'normal')$q$);
SELECT bad($q$SELECT gsb._switch('sjc', 'failback', NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._switch('sjc', 'failback', NULL, 'normal', NULL)$q$);
SELECT bad($q$SELECT gsb._adopt_state(NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._adopt_state(100, NULL, NULL, NULL, 'primary')$q$);
SELECT bad($q$SELECT gsb._heartbeat(NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._monitor_tick(NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._monitor_tick(true, 0, 0, '{}')$q$);
SELECT bad($q$SELECT gsb._monitor_tick(true, 0, 0, '{ams,backup,x,y,z,w}')$q$);
SELECT bad($q$SELECT gsb._newer_view(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._lease_live(NULL)$q$);
SELECT bad($q$SELECT gsb._witness_heard(NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT count(*) >= 1 FROM gsb._witness_clients()$q$);
SELECT bad($q$SELECT (gsb._witness_silence(NULL)).silent_ms >= 0$q$);
SELECT bad($q$SELECT gsb._witness_take(NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._witness_ping(NULL, NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._witness_grant(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._witness_claim(NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._record_fence(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._set_fence_trigger(NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._check_split_brain(NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._fence_writes()$q$);
SELECT bad($q$SELECT gsb._tables_fence()$q$);
SELECT bad($q$SELECT gsb._site_transition(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$q$);
SELECT bad($q$SELECT gsb._site_transition('backup', 'nyc', 'ams', 'nyc', 1, 'ams', 'normal', false,
                                          '{ams,primary,x}', true, 0, 0, NULL, NULL, 10000, 5000,
                                          '1 day', '', now())$q$);
-- None of it changed the active site or recorded an event.
SELECT term, active_site, mode, automatic FROM gsb.site_state;
SELECT count(*) AS events FROM gsb.site_events;

------------------------------------------------------------------------------
-- The checks of the whole file.
------------------------------------------------------------------------------
-- Every function in schema gsb was called above (by name: gsb has no
-- overloaded functions). Not callable with bad input: event trigger
-- functions (only the server calls them).
SELECT p.oid::regprocedure AS not_covered
  FROM pg_proc p
 WHERE p.pronamespace = 'gsb'::regnamespace
   AND p.prorettype <> 'event_trigger'::regtype
   AND NOT EXISTS (SELECT 1 FROM bad_calls b
                    WHERE b.query ~ ('gsb\.' || p.proname || '\('))
 ORDER BY 1;
-- gsb has no overloaded functions, so the match by name above is exact.
SELECT proname, count(*) FROM pg_proc
 WHERE pronamespace = 'gsb'::regnamespace GROUP BY proname HAVING count(*) > 1;
-- Every function that takes arguments was given a NULL at least once.
SELECT p.oid::regprocedure AS never_given_null
  FROM pg_proc p
 WHERE p.pronamespace = 'gsb'::regnamespace AND p.pronargs > 0
   AND p.prorettype <> 'event_trigger'::regtype
   AND NOT EXISTS (SELECT 1 FROM bad_calls b
                    WHERE b.query ~ ('gsb\.' || p.proname || '\([^;]*\mNULL\M'))
 ORDER BY 1;

-- No internal error, ever.
SELECT n, query, result FROM bad_calls WHERE result ~ '^XX' ORDER BY n;
-- Every error from a function a gsb_admin member may call has a hint.
SELECT b.n, b.query, b.result
  FROM bad_calls b
 WHERE b.result <> 'ok' AND b.result !~ E'\nHINT: '
   AND EXISTS (SELECT 1 FROM pg_proc p
                WHERE p.pronamespace = 'gsb'::regnamespace
                  AND has_function_privilege('gsb_admin', p.oid, 'EXECUTE')
                  AND b.query ~ ('gsb\.' || p.proname || '\('))
 ORDER BY b.n;

-- Same backend, same postmaster: nothing crashed.
SELECT pg_backend_pid() = :pid AS same_backend,
       pg_postmaster_start_time() = :'started' AS same_postmaster;

DROP TABLE bad_calls;
DROP FUNCTION bad(text);
DROP VIEW bi_view;
DROP MATERIALIZED VIEW bi_mview;
DROP TABLE bi_ok, bi_nokey, bi_unlogged, bi_temp, bi_parted;
DROP SEQUENCE bi_seq;
