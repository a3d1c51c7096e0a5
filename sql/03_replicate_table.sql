-- gsb.replicate_table / gsb.unreplicate_table and their errors.
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE TABLE no_key (id int, name text);
CREATE TABLE by_index (code text NOT NULL, name text);
CREATE UNIQUE INDEX by_index_code ON by_index (code);
CREATE TEMP TABLE scratch (id int PRIMARY KEY);
CREATE VIEW items_view AS SELECT * FROM items;

SELECT gsb.replicate_table('items');
SELECT gsb.replicate_table('items', 'daily');   -- re-registering changes the mode
SELECT relation, mode FROM gsb.replicated_tables WHERE relation = 'items'::regclass;
SELECT gsb.replicate_table('items', 'realtime');

SELECT try($q$SELECT gsb.replicate_table('no_key')$q$);
SELECT try($q$SELECT gsb.replicate_table('by_index')$q$);
SELECT try($q$SELECT gsb.replicate_table('items', 'weekly')$q$);
SELECT try($q$SELECT gsb.replicate_table('items', NULL)$q$);
SELECT try($q$SELECT gsb.replicate_table(NULL)$q$);
SELECT try($q$SELECT gsb.replicate_table('scratch')$q$);
SELECT try($q$SELECT gsb.replicate_table('items_view')$q$);
SELECT try($q$SELECT gsb.replicate_table('does_not_exist')$q$);
SELECT try($q$SELECT gsb.unreplicate_table('no_key')$q$);

-- A unique index made the replica identity is a key too.
ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_code;
SELECT gsb.replicate_table('by_index');
-- REPLICA IDENTITY FULL alone is not a key.
ALTER TABLE no_key REPLICA IDENTITY FULL;
SELECT gsb.replicate_table('no_key');

SELECT gsb.unreplicate_table('by_index');
SELECT relation, mode FROM gsb.replicated_tables ORDER BY relation::text;

-- A dropped table leaves the catalog with it.
CREATE TABLE dropped_soon (id int PRIMARY KEY);
SELECT gsb.replicate_table('dropped_soon');
DROP TABLE dropped_soon;
SELECT count(*) AS stale FROM gsb.tables t
 WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid);
DROP TABLE no_key, by_index;
DROP VIEW items_view;

-- Dropping a column is not dropping the table: it stays registered.
CREATE TABLE shrinking (id int PRIMARY KEY, gone text);
SELECT gsb.replicate_table('shrinking');
ALTER TABLE shrinking DROP COLUMN gone;
SELECT relation, mode FROM gsb.replicated_tables WHERE relation = 'shrinking'::regclass;
DROP TABLE shrinking;

-- The one description of a table's columns (add_peer's and the daily copy's
-- checks, gsb.verify() and the copies read it): column order, the type
-- without typmod, the place in the primary key (here in key order b, a, not
-- column order), generated columns marked, dropped ones left out.
CREATE TABLE described (a int, gone text, b varchar(20), c numeric(10, 2),
                        d int GENERATED ALWAYS AS (a * 2) STORED, PRIMARY KEY (b, a));
ALTER TABLE described DROP COLUMN gone;
SELECT * FROM gsb._columns('described'::regclass);
SELECT gsb.replicate_table('described');
SELECT * FROM gsb._table_columns('realtime') WHERE tbl = 'public.described' ORDER BY col;
SELECT gsb.unreplicate_table('described');
DROP TABLE described;
