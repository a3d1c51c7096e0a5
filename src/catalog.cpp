// catalog.cpp: scans of gsb.site and gsb.tables (see catalog.hpp).
#include "pg.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
}

#include "catalog.hpp"

namespace gsb::catalog {

Oid KeyIndex(Relation rel) {
    Oid idx = RelationGetReplicaIndex(rel);
    if (!OidIsValid(idx))
        idx = RelationGetPrimaryKeyIndex(rel);
    return idx;
}

Oid GsbRelation(const char *relname) {
    Oid nsp = get_namespace_oid("gsb", true);
    if (!OidIsValid(nsp))
        return InvalidOid;
    return get_relname_relid(relname, nsp);
}

TableMode LookupTableMode(Oid relid) {
    Oid tables_oid = GsbRelation("tables");
    if (!OidIsValid(tables_oid))
        return TableMode::kNone;

    Relation rel = table_open(tables_oid, AccessShareLock);
    ScanKeyData key;
    // gsb.tables(relid oid PRIMARY KEY, mode text, ...)
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 1, &key);
    TableMode mode = TableMode::kNone;
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
        bool isnull = false;
        Datum d = heap_getattr(tup, 2, RelationGetDescr(rel), &isnull);
        if (!isnull) {
            char *m = TextDatumGetCString(d);
            if (strcmp(m, "realtime") == 0)
                mode = TableMode::kRealtime;
            else if (strcmp(m, "daily") == 0)
                mode = TableMode::kDaily;
            pfree(m);
        }
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return mode;
}

char *LookupSiteName() {
    Oid site_oid = GsbRelation("site");
    if (!OidIsValid(site_oid))
        return nullptr;
    Relation rel = table_open(site_oid, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
    char *name = nullptr;
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
        bool isnull = false;
        // gsb.site(singleton, name, role, site_id, created_at)
        Datum d = heap_getattr(tup, 2, RelationGetDescr(rel), &isnull);
        if (!isnull)
            name = TextDatumGetCString(d);
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return name;
}

} // namespace gsb::catalog
