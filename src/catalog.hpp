// catalog.hpp: reading gsb's own catalogs (gsb.site, gsb.tables) with plain
// heap scans, so that it also works under the historic snapshot of logical
// decoding, where SPI cannot run.
//
// These are PostgreSQL-style functions: they may raise a PostgreSQL error, so
// call them from frames without C++ objects or inside gsb::PgCall.
// Also the one rule for which index is a table's key.
// Also which version of gsb's SQL objects this database has
// (ExtensionVersionAtLeast): one gsb.so serves every installed version.
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

// The version of gsb's SQL objects in this database (pg_extension.extversion
// of gsb, "0.1"), or nullptr when gsb is not installed here; a static
// string, valid until the next call.
//
// One gsb.so serves every version's SQL objects: after the new package is
// installed and the server restarted, a site runs the new library on the old
// catalog until ALTER EXTENSION gsb UPDATE, and its peer may have updated
// already (README.md, Upgrading). So C++ code that uses an SQL object (table,
// column, function, view column) that an older version lacks asks first:
//     if (catalog::ExtensionVersionAtLeast("0.2")) { ...use the 0.2 column... }
//     else { ...what 0.1 does, or nothing... }
// Read once per transaction and then remembered until it ends (an update
// committed meanwhile is seen by the next transaction; a worker asks again in
// each of its transactions). Under decoding's historic snapshot it is read
// every time and answers as of the decoded change's point in the WAL (the
// output plugin asks once per decoded transaction, in its begin callback).
// Must be called in a transaction.
const char *ExtensionVersion();

// Whether gsb's SQL objects here are at version `version` or newer; false
// when gsb is not installed here. `version` is a dotted version ("0.2"); a
// malformed one, here or in the catalog, raises an ERROR.
bool ExtensionVersionAtLeast(const char *version);

} // namespace gsb::catalog
