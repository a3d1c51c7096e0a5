
-- src/sql/update/0.1--0.2.after.sql: the last hand-written part of the update
-- script gsb--0.1--0.2.sql: what needs 0.2's functions, which exist from here
-- on (data migrations, an event trigger on a new function). See
-- 0.1--0.2.before.sql and the Makefile for the rule.
--
-- gsb.fence_writes (38_witness.sql): the statement trigger on every realtime
-- table already registered; gsb_tables_fence (re-created above) follows the
-- registrations from now on.
SELECT gsb._set_fence_trigger(relid, true) FROM gsb.tables WHERE mode = 'realtime';
