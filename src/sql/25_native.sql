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
