
-- src/sql/update/0.1--0.2.after.sql: the last hand-written part of the update
-- script gsb--0.1--0.2.sql: what needs 0.2's functions, which exist from here
-- on (data migrations, an event trigger on a new function). See
-- 0.1--0.2.before.sql and the Makefile for the rule.
--
-- Nothing to do here yet.
