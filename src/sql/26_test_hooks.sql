-- src/sql/26_test_hooks.sql: functions for the tests only, in the test build
-- alone (make GSB_TEST_HOOKS=1, which scripts/test.sh uses). The default build
-- leaves this file out of the install script and their C code out of gsb.so,
-- together with the fault points of gsb.fault_injection: a production site
-- has no test hook that a superuser could switch on by accident.

-- Raises an error of the given kind through gsb's C++/PostgreSQL boundary:
-- 'postgres' (a PostgreSQL error inside a C++ frame), 'gsb' (a gsb::Error
-- with SQLSTATE and hint), 'std' (a std::exception), 'alloc' (std::bad_alloc).
-- For tests of that boundary; superusers only.
CREATE FUNCTION gsb.selftest_raise(kind text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_raise';

-- Makes a value of type typ from binary bytes as the apply worker does (the
-- commonest built-in types directly, others through the type's receive
-- function) and checks the direct path against the receive function. Returns
-- 'direct: <value>' or 'receive function: <value>'; a bad value raises the
-- receive function's error. For tests; superusers only.
CREATE FUNCTION gsb.selftest_receive(bytes bytea, typ regtype, typmod int DEFAULT -1) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_receive';

-- What the library's version check (catalog::ExtensionVersionAtLeast) answers
-- in this transaction: '<installed version>, at least <version>: true|false'.
-- A malformed version is an error (22023). For tests; superusers only.
CREATE FUNCTION gsb.selftest_extension_version(at_least text) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_selftest_extension_version';
