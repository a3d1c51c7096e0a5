-- src/sql/10_catalogs.sql: gsb's own catalogs (this site, its view of the
-- active site, the replicated tables).

------------------------------------------------------------------------------
-- Catalogs. gsb.site and gsb.tables are read by the output plugin while it
-- decodes, under a historic snapshot, so they are user catalog tables.
------------------------------------------------------------------------------
CREATE TABLE gsb.site (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('primary', 'backup', 'witness')),
    site_id int NOT NULL CHECK (site_id BETWEEN 1 AND 15),
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);

-- Which site serves users now, as this site knows it. term only grows: of
-- two views, the one with the higher term is the newer (equal terms: the
-- primary's view).
CREATE TABLE gsb.site_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    term bigint NOT NULL DEFAULT 0,
    active_site text,
    mode text NOT NULL DEFAULT 'normal' CHECK (mode IN ('normal', 'failed_over', 'maintenance')),
    -- set by the site monitor: an automatic failover (failback may follow
    -- by itself) or maintenance started by the window (ends with it)
    automatic boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now(),
    -- when this backup took over from a failed primary whose late tail (its
    -- changes committed before then but not yet sent) has not arrived yet
    late_tail_since timestamptz,
    -- the last daily copy from the primary (backup only)
    last_config_sync timestamptz,
    last_config_sync_rows bigint
);
INSERT INTO gsb.site_state DEFAULT VALUES;

CREATE TABLE gsb.tables (
    relid oid PRIMARY KEY,
    mode text NOT NULL CHECK (mode IN ('realtime', 'daily')),
    registered_at timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);
