// catalog.cpp: scans of gsb.site and gsb.tables, and the installed version
// (see catalog.hpp).
#include "pg.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
}

#include "catalog.hpp"
#include "extension_version.hpp"

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

namespace {

// What ExtensionVersion() read in the transaction with this local id.
LocalTransactionId version_read_in = InvalidLocalTransactionId;
bool version_installed = false;
char version_text[NAMEDATALEN];

// pg_extension.extversion of gsb, copied into version_text; false when gsb
// is not installed in this database.
bool ReadExtensionVersion() {
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("gsb"));
    SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
    bool found = false;
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
        bool isnull = false;
        Datum d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
        if (!isnull) {
            char *v = TextDatumGetCString(d);
            strlcpy(version_text, v, sizeof(version_text));
            pfree(v);
            found = true;
        }
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return found;
}

} // namespace

const char *ExtensionVersion() {
    if (!IsTransactionState())
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("gsb: the extension's version is read inside a transaction")));
    if (HistoricSnapshotActive()) {
        // Each decoded transaction has its own view of the catalog.
        version_read_in = InvalidLocalTransactionId;
        version_installed = ReadExtensionVersion();
    } else if (version_read_in != MyProc->lxid || version_read_in == InvalidLocalTransactionId) {
        version_installed = ReadExtensionVersion();
        version_read_in = MyProc->lxid;
    }
    return version_installed ? version_text : nullptr;
}

bool ExtensionVersionAtLeast(const char *version) {
    const char *installed = ExtensionVersion();
    if (installed == nullptr)
        return false;
    std::optional<int> cmp = gsb::version::Compare(installed, version);
    if (!cmp)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("gsb: cannot compare extension versions \"%s\" and \"%s\"",
                               installed, version),
                        errhint("A gsb version is dotted numbers, such as 0.2.")));
    return *cmp >= 0;
}

} // namespace gsb::catalog
