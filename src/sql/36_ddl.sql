-- src/sql/36_ddl.sql: DDL that runs on both sites (gsb.replicate_ddl).

------------------------------------------------------------------------------
-- Replicated DDL. gsb.replicate_ddl runs a command here and records it in
-- gsb.ddl_log in the same transaction; the output plugin sends each row that
-- a local transaction (no replication origin) inserts there as a DDL message,
-- at that point of the stream, and the apply worker on the peer runs it as
-- the role of the same name and records it there with origin = the sender.
-- Only gsb (as the tables' owner) writes these tables.
------------------------------------------------------------------------------
CREATE TABLE gsb.ddl_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    role text NOT NULL,          -- the role the command ran as (the caller's current_user)
    search_path text NOT NULL,   -- and its search_path
    command text NOT NULL,
    origin text,                 -- NULL: called here; else the peer it came from
    -- the (sub)transaction that ran it: a command that rewrites a table
    -- (ALTER COLUMN ... TYPE) leaves this xmin on every row, and the apply
    -- worker does not take such a row for a local change that conflicts with
    -- the peer's (the row's own last change is older than the command)
    xid xid8 NOT NULL
);

-- Columns of realtime tables that a replicated command dropped (new_name
-- NULL), renamed or gave another type. Rows that the peer sent before it ran
-- the same command still describe the old columns: the apply worker maps
-- them through this table (a dropped column's value is discarded, a renamed
-- column's goes to its new name, a value of the old type is converted
-- through its text form); a column the peer sends that is missing here and
-- not listed stays the schema-drift error it always was.
CREATE TABLE gsb.ddl_columns (
    relid oid NOT NULL,
    attname text NOT NULL,
    old_type text NOT NULL,
    new_name text,
    new_type text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ddl_columns_relid_idx ON gsb.ddl_columns (relid, attname);

-- Runs command (DDL only) here as current_user and, at the same point of the
-- stream, on every peer as the role of that name; does not wait for them.
CREATE FUNCTION gsb.replicate_ddl(command text) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'gsb_replicate_ddl';

GRANT EXECUTE ON FUNCTION gsb.replicate_ddl(text) TO gsb_admin;
GRANT SELECT ON gsb.ddl_log, gsb.ddl_columns TO gsb_admin;
