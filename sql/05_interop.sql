-- Errors raised inside gsb's C++ reach the client as clean SQL errors with
-- their SQLSTATE, and the backend survives every one of them.
SELECT pg_postmaster_start_time() AS started \gset
SELECT pg_backend_pid() AS pid \gset
SELECT try($q$SELECT gsb.selftest_raise('postgres')$q$);
SELECT try($q$SELECT gsb.selftest_raise('gsb')$q$);
SELECT try($q$SELECT gsb.selftest_raise('std')$q$);
SELECT try($q$SELECT gsb.selftest_raise('alloc')$q$);
SELECT try($q$SELECT gsb.selftest_raise('cxx_in_pgcall')$q$);
-- And once more: the handler stack is intact after it.
SELECT try($q$SELECT gsb.selftest_raise('cxx_in_pgcall')$q$);
SELECT try($q$SELECT gsb.selftest_raise('nonsense')$q$);
SELECT gsb.selftest_raise('none');

-- The same inside an output-plugin callback, through fault injection.
CREATE TABLE probe (id int PRIMARY KEY);
SELECT gsb.replicate_table('probe');
SELECT 'ok' AS slot FROM pg_create_logical_replication_slot('interop', 'gsb');
INSERT INTO probe VALUES (1);
SET gsb.fault_injection = 'plugin_change_cxx';
SELECT try($q$SELECT data FROM pg_logical_slot_get_changes('interop', NULL, NULL, 'format', 'text')$q$);
SET gsb.fault_injection = 'plugin_change_pg';
SELECT try($q$SELECT data FROM pg_logical_slot_get_changes('interop', NULL, NULL, 'format', 'text')$q$);
RESET gsb.fault_injection;
-- Nothing was consumed by the failed calls.
SELECT data FROM pg_logical_slot_get_changes('interop', NULL, NULL, 'format', 'text');
SELECT pg_drop_replication_slot('interop');
DROP TABLE probe;

-- Same backend, same postmaster: nothing crashed or restarted.
SELECT pg_backend_pid() = :pid AS same_backend,
       pg_postmaster_start_time() = :'started' AS same_postmaster;
