-- The output plugin's text form: which changes it sends, and how.
SET timezone = 'UTC';
CREATE TABLE kinds (
    id int PRIMARY KEY,
    t text, n numeric, b bytea, ts timestamptz, a int[], j jsonb, f float8, ok boolean
);
CREATE TABLE big (id int PRIMARY KEY, payload text, note text);
ALTER TABLE big ALTER payload SET STORAGE EXTERNAL;  -- out of line, uncompressed
CREATE TABLE not_replicated (id int PRIMARY KEY);
SELECT gsb.replicate_table('kinds');
SELECT gsb.replicate_table('big');

SELECT 'ok' AS slot FROM pg_create_logical_replication_slot('plug', 'gsb');

-- Insert, update, update of the key, delete, truncate.
INSERT INTO kinds VALUES (1, 'one', 1.5, '\x00ff', '2030-01-01 12:00+00', '{1,2,3}', '{"k": [1, "x"]}', 0.25, true);
UPDATE kinds SET t = 'uno' WHERE id = 1;
UPDATE kinds SET id = 2 WHERE id = 1;
DELETE FROM kinds WHERE id = 2;
TRUNCATE kinds;
SELECT data FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

-- NULLs, unicode, quotes, extreme numerics, empty array and string.
INSERT INTO kinds VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO kinds VALUES (4, 'Göteborg ✓ 東京 ''quoted''', -123456789012345678901234567890.000000001,
                          '\x', '-infinity', '{}', '"only a string"', 'NaN', false);
INSERT INTO kinds (id, t, a) VALUES (5, '', '{{1,2},{3,NULL}}');
SELECT data FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

-- Multi-statement, empty and rolled-back transactions; an unregistered table.
BEGIN;
INSERT INTO kinds (id) VALUES (10);
INSERT INTO not_replicated VALUES (10);
UPDATE kinds SET t = 'ten' WHERE id = 10;
INSERT INTO kinds (id) SELECT g FROM generate_series(11, 13) g;
COMMIT;
BEGIN;
INSERT INTO not_replicated VALUES (11);   -- nothing of ours: no BEGIN/COMMIT
COMMIT;
BEGIN;
COMMIT;
BEGIN;
INSERT INTO kinds (id) VALUES (20);
ROLLBACK;
BEGIN;
INSERT INTO kinds (id) VALUES (21);
SAVEPOINT s;
INSERT INTO kinds (id) VALUES (22);
ROLLBACK TO s;
COMMIT;
SELECT data FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

-- TOAST: a new value is sent whole; an unchanged one is not sent again.
INSERT INTO big SELECT 1, string_agg(md5(g::text), ''), 'first' FROM generate_series(1, 200) g;
UPDATE big SET note = 'second' WHERE id = 1;
SELECT substr(data, 1, 80) AS data, length(data)
  FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

-- Origin filtering: what a replication origin writes (as gsb's apply worker
-- does) is not sent; what the session writes after resetting it is.
SELECT pg_replication_origin_create('gsb_peer_test') IS NOT NULL AS origin_created;
SELECT pg_replication_origin_session_setup('gsb_peer_test');
INSERT INTO kinds (id, t) VALUES (30, 'applied from the peer');
SELECT pg_replication_origin_session_reset();
INSERT INTO kinds (id, t) VALUES (31, 'written here');
SELECT data FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

-- The relation is described again after it changes, and registration
-- changes take effect at the exact point in the stream.
ALTER TABLE kinds ADD COLUMN extra text;
INSERT INTO kinds (id, extra) VALUES (40, 'new column');
SELECT gsb.unreplicate_table('kinds');
INSERT INTO kinds (id) VALUES (41);
SELECT gsb.replicate_table('not_replicated');
INSERT INTO not_replicated VALUES (42);
SELECT gsb.replicate_table('kinds', 'daily');
INSERT INTO kinds (id) VALUES (43);   -- daily tables are copied, not streamed
SELECT data FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');
SELECT gsb.replicate_table('kinds');

-- Options: LSNs and xids on request; anything unknown is an error.
INSERT INTO kinds (id) VALUES (50);
SELECT regexp_replace(regexp_replace(regexp_replace(data,
           '[0-9A-F]+/[0-9A-F]+', 'X/X', 'g'), 'xid=[0-9]+', 'xid=N'),
           'at=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00', 'at=T', 'g') AS data
  FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'format', 'text',
                                    'include_lsn', 'on', 'include_xids', 'true');
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'format', 'xml')$q$);
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'colour', 'blue')$q$);
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'format', 'text', 'format', 'text')$q$);
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'format', 'text', 'include_lsn', 'maybe')$q$);
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'proto_version', '99')$q$);
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'proto_version', 'one')$q$);
-- The binary form is for pg_logical_slot_get_binary_changes.
SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL);
SELECT get_byte(data, 0) = ascii('B') AS begins, get_byte(data, length(data) - 1) >= 0 AS ok
  FROM pg_logical_slot_peek_binary_changes('plug', NULL, NULL, 'proto_version', '1') LIMIT 1;
SELECT count(*) AS messages, string_agg(chr(get_byte(data, 0)), '') AS types
  FROM pg_logical_slot_get_binary_changes('plug', NULL, NULL, 'binary', 'on');

-- gsb.replicate_ddl: the command travels at its place in its transaction
-- (it is a row of gsb.ddl_log), and the table is described again in its new
-- shape at its next change. A receiver that asked for version 2 gets an
-- error instead of a stream without the command.
BEGIN;
INSERT INTO kinds (id) VALUES (60);
SELECT gsb.replicate_ddl('ALTER TABLE kinds ADD COLUMN added int DEFAULT 7');
INSERT INTO kinds (id) VALUES (61);
COMMIT;
SELECT try($q$SELECT data FROM pg_logical_slot_peek_changes('plug', NULL, NULL, 'format', 'text', 'proto_version', '2')$q$);
SELECT regexp_replace(data, 'role=\S+', 'role=R') AS data
  FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');
ALTER TABLE kinds DROP COLUMN added;
SELECT count(*) AS messages FROM pg_logical_slot_get_changes('plug', NULL, NULL, 'format', 'text');

SELECT pg_drop_replication_slot('plug');
DROP TABLE big, not_replicated;
