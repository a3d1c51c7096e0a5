// apply_conflict.cpp: conflict inspection and recording (see
// apply_conflict.hpp).
#include "pg.hpp"

extern "C" {
#include "access/commit_ts.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/memutils.h"
#include "access/transam.h"
#include "access/xact.h"
#include "nodes/pg_list.h"
}

#include "apply_conflict.hpp"
#include "gsb.hpp"
#include "spi.hpp"

namespace gsb::apply {
namespace {

// Record-literal text of the key, e.g. (42) or (a,"b c").
char *KeyText(Relation rel, Oid index_oid, TupleTableSlot *slot) {
    Relation idx = index_open(index_oid, AccessShareLock);
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfoChar(&buf, '(');
    slot_getallattrs(slot);
    for (int k = 0; k < idx->rd_index->indnkeyatts; k++) {
        AttrNumber a = idx->rd_index->indkey.values[k];
        if (k > 0)
            appendStringInfoChar(&buf, ',');
        if (slot->tts_isnull[a - 1])
            continue;
        Oid out;
        bool varlena;
        getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), a - 1)->atttypid, &out, &varlena);
        char *s = OidOutputFunctionCall(out, slot->tts_values[a - 1]);
        bool quote = *s == '\0' || strpbrk(s, "(),\"\\ \t\n") != nullptr;
        if (!quote) {
            appendStringInfoString(&buf, s);
            continue;
        }
        appendStringInfoChar(&buf, '"');
        for (const char *p = s; *p; p++) {
            if (*p == '"' || *p == '\\')
                appendStringInfoChar(&buf, *p);
            appendStringInfoChar(&buf, *p);
        }
        appendStringInfoChar(&buf, '"');
    }
    appendStringInfoChar(&buf, ')');
    index_close(idx, AccessShareLock);
    return buf.data;
}

Datum RowJson(TupleTableSlot *slot) {
    Datum row = ExecFetchSlotHeapTupleDatum(slot);
    return DirectFunctionCall1(row_to_json, row);
}

// The INSERT into gsb.conflicts, planned once per worker rather than parsed
// and planned for every conflict: under contention (pgbench on both sites) a
// worker records over a thousand conflicts a second. The plan cache replans
// it if gsb.conflicts changes.
SPIPlanPtr record_plan = nullptr;
constexpr int kRecordArgs = 8;

void InsertConflictRow(Datum *values, const char *nulls) {
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "gsb: SPI_connect failed");
    if (record_plan == nullptr) {
        Oid types[kRecordArgs] = {OIDOID,  TEXTOID, TEXTOID, TEXTOID,
                                  JSONOID, JSONOID, TEXTOID, TIMESTAMPTZOID};
        SPIPlanPtr plan = SPI_prepare(
            "INSERT INTO gsb.conflicts (relation, key, kind, resolution, local_row, remote_row, "
            "remote_site, remote_commit_ts) VALUES ($1, $2, $3, $4, $5::pg_catalog.jsonb, "
            "$6::pg_catalog.jsonb, $7, $8)",
            kRecordArgs, types);
        if (plan == nullptr || SPI_keepplan(plan) != 0)
            elog(ERROR, "gsb: could not prepare the recording of a conflict: %s",
                 SPI_result_code_string(SPI_result));
        record_plan = plan;
    }
    int rc = SPI_execute_plan(record_plan, values, nulls, false, 0);
    if (rc != SPI_OK_INSERT)
        elog(ERROR, "gsb: could not record a conflict: %s", SPI_result_code_string(rc));
    SPI_finish();
}

} // namespace

void RecordConflict(Session *s, Relation rel, RelMapEntry *e, conflict::Decision d,
                    TupleTableSlot *keyslot, TupleTableSlot *local, TupleTableSlot *remote) {
    s->conflicts++;
    // Off: decided all the same (the caller applies the decision), only not
    // written down.
    if (!guc_record_conflicts)
        return;
    char *key = KeyText(rel, e->key_index, keyslot);
    Datum local_json = local ? RowJson(local) : (Datum)0;
    Datum remote_json = remote ? RowJson(remote) : (Datum)0;
    Datum values[8] = {ObjectIdGetDatum(RelationGetRelid(rel)),
                       CStringGetTextDatum(key),
                       CStringGetTextDatum(conflict::KindName(d.kind)),
                       CStringGetTextDatum(conflict::ResolutionName(d.resolution)),
                       local_json,
                       remote_json,
                       CStringGetTextDatum(s->peer_name),
                       TimestampTzGetDatum(s->commit_ts)};
    char nulls[8] = {' ', ' ', ' ', ' ', local ? ' ' : 'n', remote ? ' ' : 'n', ' ', ' '};
    // gsb.conflicts is gsb's table: write it as the worker, not as the owner
    // of the table in conflict.
    SavedUser as_owner;
    GetUserIdAndSecContext(&as_owner.userid, &as_owner.sec_context);
    SetUserIdAndSecContext(s->worker_userid, s->worker_sec_context);
    InsertConflictRow(values, nulls);
    RestoreUser(as_owner);
    ereport(LOG, (errmsg("gsb: conflict %s on table \"%s.%s\" key %s from peer \"%s\": %s",
                         conflict::KindName(d.kind), e->nspname, e->relname, key, s->peer_name,
                         conflict::ResolutionName(d.resolution))));
}

conflict::Local InspectRow(Session *s, RowExec *r, TupleTableSlot *row) {
    conflict::Local l;
    l.exists = true;
    bool isnull = false;
    TransactionId xmin =
        DatumGetTransactionId(slot_getsysattr(row, MinTransactionIdAttributeNumber, &isnull));
    if (!isnull && TransactionIdIsNormal(xmin) && TransactionIdEquals(xmin, r->ts_xid)) {
        l.commit_ts = r->ts;
        l.from_peer = r->ts_origin == s->origin;
    } else if (!isnull) {
        TimestampTz ts = 0;
        RepOriginId origin = InvalidRepOriginId;
        if (TransactionIdGetCommitTsData(xmin, &ts, &origin)) {
            l.commit_ts = ts;
            l.from_peer = origin == s->origin;
            r->ts_xid = xmin;
            r->ts = ts;
            r->ts_origin = origin;
        }
    }
    // A table rewrite by a replicated DDL is no change of the row's (ddl.hpp).
    if (!l.from_peer && !isnull && WrittenByReplicatedDdl(xmin))
        l.from_peer = true;
    return l;
}

conflict::Local InspectLocal(Session *s, RowExec *r, bool found, TupleTableSlot *remote) {
    if (!found)
        return conflict::Local{};
    TupleTableSlot *local = r->local;
    conflict::Local l = InspectRow(s, r, local);
    // The rules ask whether the rows are identical only for a local row that
    // this peer's changes did not write (conflict::Decide): most updates
    // replace a row the peer wrote, and skip the column-by-column comparison.
    if (remote != nullptr && !l.from_peer) {
        slot_getallattrs(local);
        slot_getallattrs(remote);
        TupleDesc desc = local->tts_tupleDescriptor;
        bool same = true;
        for (int j = 0; j < desc->natts && same; j++) {
            Form_pg_attribute att = TupleDescAttr(desc, j);
            if (att->attisdropped)
                continue;
            if (local->tts_isnull[j] != remote->tts_isnull[j])
                same = false;
            else if (!local->tts_isnull[j])
                same = datum_image_eq(local->tts_values[j], remote->tts_values[j], att->attbyval,
                                      att->attlen);
        }
        l.identical = same;
    }
    return l;
}

namespace {

struct LostRow {
    Oid relid;
    char *key;         // KeyText of the key
    HeapTuple row;     // the lost row
    TimestampTz ts;    // its commit time
    TransactionId xid; // the apply transaction that deleted it
};

MemoryContext lost_cxt = nullptr;
List *lost_rows = NIL; // of LostRow *, in lost_cxt

void FreeLostRow(LostRow *l) {
    pfree(l->key);
    heap_freetuple(l->row);
    pfree(l);
}

// Forgets the rows the stream has passed (every later change of the peer is
// newer than them, and wins or loses against them as against any row), and
// those whose delete was rolled back (the apply transaction failed).
void PruneLostRows(Session *s) {
    ListCell *lc;
    foreach (lc, lost_rows) {
        LostRow *l = static_cast<LostRow *>(lfirst(lc));
        bool live = l->ts >= s->commit_ts &&
                    (TransactionIdIsCurrentTransactionId(l->xid) || TransactionIdDidCommit(l->xid));
        if (!live) {
            lost_rows = foreach_delete_current(lost_rows, lc);
            FreeLostRow(l);
        }
    }
}

} // namespace

void RememberLostRow(Session *s, Relation rel, RelMapEntry *e, TupleTableSlot *keyslot,
                     TupleTableSlot *local, TimestampTz local_ts) {
    if (lost_cxt == nullptr)
        lost_cxt = AllocSetContextCreate(TopMemoryContext, "gsb lost rows", ALLOCSET_SMALL_SIZES);
    PruneLostRows(s);
    char *key = KeyText(rel, e->key_index, keyslot);
    MemoryContext old = MemoryContextSwitchTo(lost_cxt);
    ListCell *lc;
    foreach (lc, lost_rows) {
        LostRow *l = static_cast<LostRow *>(lfirst(lc));
        if (l->relid == RelationGetRelid(rel) && strcmp(l->key, key) == 0) {
            lost_rows = foreach_delete_current(lost_rows, lc);
            FreeLostRow(l);
        }
    }
    LostRow *l = static_cast<LostRow *>(palloc(sizeof(LostRow)));
    l->relid = RelationGetRelid(rel);
    l->key = pstrdup(key);
    l->row = ExecCopySlotHeapTuple(local);
    l->ts = local_ts;
    l->xid = GetTopTransactionId();
    lost_rows = lappend(lost_rows, l);
    MemoryContextSwitchTo(old);
}

bool HaveLostRows(Session *s, Oid relid) {
    if (lost_rows == NIL)
        return false;
    PruneLostRows(s);
    ListCell *lc;
    foreach (lc, lost_rows) {
        if (static_cast<LostRow *>(lfirst(lc))->relid == relid)
            return true;
    }
    return false;
}

bool FindLostRow(Session *s, Relation rel, RelMapEntry *e, TupleTableSlot *keyslot,
                 TupleTableSlot *out, TimestampTz *ts) {
    if (!HaveLostRows(s, RelationGetRelid(rel)))
        return false;
    char *key = KeyText(rel, e->key_index, keyslot);
    ListCell *lc;
    foreach (lc, lost_rows) {
        LostRow *l = static_cast<LostRow *>(lfirst(lc));
        if (l->relid != RelationGetRelid(rel) || strcmp(l->key, key) != 0)
            continue;
        ExecForceStoreHeapTuple(heap_copytuple(l->row), out, true);
        *ts = l->ts;
        return true;
    }
    return false;
}

} // namespace gsb::apply
