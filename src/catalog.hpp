// catalog.hpp: reading gsb's own catalogs (gsb.site, gsb.tables) with plain
// heap scans, so that it also works under the historic snapshot of logical
// decoding, where SPI cannot run.
//
// These are PostgreSQL-style functions: they may raise a PostgreSQL error, so
// call them from frames without C++ objects or inside gsb::PgCall.
// Also the one rule for which index is a table's key.
// Not for: writing catalogs (the SQL API does that) or peers' state.
#pragma once

#include "pg.hpp"

extern "C" {
#include "utils/relcache.h"
}

namespace gsb::catalog {

enum class TableMode { kNone, kRealtime, kDaily };

// How gsb.tables registers relid; kNone when it is not registered or the
// extension is not installed in this database.
TableMode LookupTableMode(Oid relid);

// This site's name from gsb.site, palloc'd in the current memory context, or
// nullptr before gsb.init_site().
char *LookupSiteName();

// OID of a relation in schema gsb, or InvalidOid when absent.
Oid GsbRelation(const char *relname);

// The index by which gsb finds a table's rows: its replica identity index
// (the primary key under REPLICA IDENTITY DEFAULT), else its primary key
// (REPLICA IDENTITY FULL); InvalidOid when it has neither, which
// gsb.replicate_table refuses. Uses the relcache's data only.
Oid KeyIndex(Relation rel);

} // namespace gsb::catalog
