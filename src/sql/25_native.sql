-- src/sql/25_native.sql: general functions written in C++ (gsb.so).

------------------------------------------------------------------------------
-- Functions in gsb.so.
------------------------------------------------------------------------------
-- Makes decoders and apply workers forget what they cached about a relation.
CREATE FUNCTION gsb._invalidate_relation(rel regclass) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_invalidate_relation';

-- Runs one statement ($1 = rows) as the owner of rel, restricted, with an
-- empty search_path (the daily copy writes through it).
CREATE FUNCTION gsb._run_as_owner(rel regclass, sql text, rows text[]) RETURNS bigint
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'gsb_run_as_owner';

-- Whether a libpq connection string sets a non-empty password.
CREATE FUNCTION gsb._conninfo_has_password(conninfo text) RETURNS boolean
    LANGUAGE c STRICT IMMUTABLE AS 'MODULE_PATHNAME', 'gsb_conninfo_has_password';

-- Runs one read-only statement that returns one row as the owner of rel,
-- restricted, with an empty search_path, under the caller's snapshot; returns
-- the row's columns as text (verify and the daily copy read through it). Both
-- refuse a relation that is not a plain table (42809).
CREATE FUNCTION gsb._read_as_owner(rel regclass, sql text) RETURNS text[]
    LANGUAGE c STRICT STABLE AS 'MODULE_PATHNAME', 'gsb_read_as_owner';

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
