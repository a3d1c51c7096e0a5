-- src/sql/update/0.1--0.2.before.sql: the first hand-written part of the
-- update script gsb--0.1--0.2.sql (the Makefile says the rule; README.md,
-- Upgrading). It runs on a 0.1 catalog, before every function, view, trigger,
-- grant and comment of src/sql/*.sql runs again as CREATE OR REPLACE. Put here
-- what those cannot do on an installed extension: new tables, sequences,
-- types, indexes and event triggers (and their rows in gsb.tables), columns
-- added to or dropped from gsb's tables (add a column where the install piece
-- has it: t/333_upgrade.pl compares column positions), and DROP of what 0.2
-- no longer has or has with another signature (return type, argument names or
-- defaults, a view whose columns changed other than at its end). Make each
-- statement safe on a site with data and peers: the update runs while the
-- other site replicates (README.md, Upgrading).
--
-- The witness (38_witness.sql): a data site's witness, and a witness's terms.
CREATE TABLE gsb.witness (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name text NOT NULL,
    conninfo text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gsb.witness_terms (
    term bigint PRIMARY KEY,
    active_site text NOT NULL,
    requested_by text NOT NULL,
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

-- A site may now be a witness (10_catalogs.sql).
ALTER TABLE gsb.site DROP CONSTRAINT site_role_check,
    ADD CONSTRAINT site_role_check CHECK (role IN ('primary', 'backup', 'witness'));

-- The new reasons of gsb.site_events (50_active_site.sql). A 0.1 site refuses
-- them: a 'split brain' row replicated from an updated site waits (an apply
-- error, retried) until this site is updated too (README, Upgrading).
ALTER TABLE gsb.site_events DROP CONSTRAINT site_events_reason_check,
    ADD CONSTRAINT site_events_reason_check CHECK (reason IN ('automatic failover', 'manual failover',
        'failback', 'maintenance start', 'maintenance end', 'late arrival', 'split brain', 'fenced',
        'unfenced'));

-- gsb.replicate_ddl (36_ddl.sql): the commands run here, which travel in the
-- stream, and the columns they dropped, renamed or retyped.
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
