// apply_keyscan.cpp: the kept key index scan (see apply_keyscan.hpp).
#include "pg.hpp"

extern "C" {
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include "apply_keyscan.hpp"

namespace gsb::apply {

void PrepareLookup(RowExec *r) {
    MemoryContext old = MemoryContextSwitchTo(r->cxt);
    TupleDesc desc = RelationGetDescr(r->rel);
    r->key = ExecInitExtraTupleSlot(r->estate, desc, &TTSOpsVirtual);
    r->local = table_slot_create(r->rel, &r->estate->es_tupleTable);
    r->remote = ExecInitExtraTupleSlot(r->estate, desc, &TTSOpsVirtual);
    // The key index (a unique btree: a primary key or replica identity) and
    // the equality operator of each key column, from the relcache's opclass
    // data, looked up once.
    r->idx = index_open(r->key_index, RowExclusiveLock);
    Relation idx = r->idx;
    r->nkeys = IndexRelationGetNumberOfKeyAttributes(idx);
    for (int k = 0; k < r->nkeys; k++) {
        Oid opfamily = idx->rd_opfamily[k];
        Oid optype = idx->rd_opcintype[k];
        Oid op = get_opfamily_member(opfamily, optype, optype, BTEqualStrategyNumber);
        if (!OidIsValid(op))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                            errmsg("gsb: no equality operator for column %d of index \"%s\"", k + 1,
                                   RelationGetRelationName(idx))));
        ScanKeyInit(&r->skey[k], k + 1, BTEqualStrategyNumber, get_opcode(op), (Datum)0);
        r->skey[k].sk_collation = idx->rd_indcollation[k];
        r->keyattr[k] = idx->rd_index->indkey.values[k];
    }
    // Ranged: one ascending key column with a >= operator (a descending
    // column would be scanned from the largest key down).
    Oid ge = InvalidOid;
    if (r->nkeys == 1 && (idx->rd_indoption[0] & INDOPTION_DESC) == 0)
        ge = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0], idx->rd_opcintype[0],
                                 BTGreaterEqualStrategyNumber);
    r->ranged = OidIsValid(ge);
    if (r->ranged) {
        ScanKeyInit(&r->range, 1, BTGreaterEqualStrategyNumber, get_opcode(ge), (Datum)0);
        r->range.sk_collation = idx->rd_indcollation[0];
        r->order = index_getprocinfo(idx, 1, BTORDER_PROC);
        r->collation = idx->rd_indcollation[0];
        r->att = TupleDescAttr(desc, r->keyattr[0] - 1);
        r->last_cxt = AllocSetContextCreate(r->cxt, "gsb last key", ALLOCSET_SMALL_SIZES);
    }
    r->positioned = false;
    InitDirtySnapshot(r->dirty);
    r->scan = index_beginscan(r->rel, idx, &r->dirty, r->nkeys, 0);
    MemoryContextSwitchTo(old);
}

// The kept state for rel (opened on first use), ready for one change: begin
// with ChangeBegin, end with ChangeEnd. With lookup, also the key scan and

void EndLookup(RowExec *r) {
    if (r->scan == nullptr)
        return;
    index_endscan(r->scan);
    index_close(r->idx, NoLock);
}

void ChangedMeanwhile(RowExec *r, TM_Result res) {
    ereport(LOG,
            (errmsg("gsb: row in table \"%s\" concurrently %s, looking it up again",
                    RelationGetRelationName(r->rel), res == TM_Updated ? "updated" : "deleted")));
    r->positioned = false;
}

namespace {

// How many rows a ranged scan may pass over looking for the next key before
// it searches the index afresh instead.
constexpr int kMaxSkip = 8;

// Compares the key of the row in slot with value (ranged scans only).
int CompareKey(RowExec *r, TupleTableSlot *slot, Datum value) {
    bool isnull = false;
    Datum d = slot_getattr(slot, r->keyattr[0], &isnull);
    if (isnull)
        return 1; // a unique btree sorts nulls last; no key we look for is null
    return DatumGetInt32(FunctionCall2Coll(r->order, r->collation, d, value));
}

// The next row version under the key scan that its dirty snapshot sees, into
// out; false at the end of the scan. index_getnext_slot does the same and
// also marks the index entry of a version dead to everyone for deletion
// (kill_prior_tuple). The key scan deliberately does not: after updates that
// were not HOT, a key's old and new versions share one btree posting list,
// and PostgreSQL 15's _bt_killitems, unable to mark a posting list whose
// other version is live, searches on to the end of the page for every such
// entry when the scan leaves the page: quadratic per page, 10% of the worker
// in a 200k-row delete (PostgreSQL's own apply and a local DELETE pay it
// too). The entries are still marked by the next scan that finds a whole
// posting list dead, by bottom-up deletion when the page fills, and by VACUUM.
bool NextRow(IndexScanDesc scan, TupleTableSlot *out) {
    for (;;) {
        if (!scan->xs_heap_continue && index_getnext_tid(scan, ForwardScanDirection) == nullptr)
            return false;
        bool all_dead = false; // not passed on to the index
        if (table_index_fetch_tuple(scan->xs_heapfetch, &scan->xs_heaptid, scan->xs_snapshot, out,
                                    &scan->xs_heap_continue, &all_dead)) {
            pgstat_count_heap_fetch(scan->indexRelation);
            return true;
        }
    }
}

// Searches the index afresh for the first row with key value or above (a
// ranged scan) or equal to the key (otherwise); into out, as the scan left it.
bool Search(RowExec *r, TupleTableSlot *out, Datum value) {
    MemoryContext old = MemoryContextSwitchTo(r->cxt);
    bool got;
    if (r->ranged) {
        r->range.sk_argument = value;
        index_rescan(r->scan, &r->range, 1, nullptr, 0);
        got = NextRow(r->scan, out) && CompareKey(r, out, value) == 0;
    } else {
        index_rescan(r->scan, r->skey, r->nkeys, nullptr, 0);
        got = NextRow(r->scan, out);
    }
    MemoryContextSwitchTo(old);
    return got;
}

// Goes on with the ranged scan from the last row found to the row with key
// value, passing at most kMaxSkip rows. False if it did not get there; then
// Search decides.
bool Continue(RowExec *r, TupleTableSlot *out, Datum value) {
    if (!r->positioned || !r->ranged)
        return false;
    if (DatumGetInt32(FunctionCall2Coll(r->order, r->collation, value, r->last)) <= 0)
        return false; // keys not ascending
    MemoryContext old = MemoryContextSwitchTo(r->cxt);
    bool got = false;
    for (int i = 0; i <= kMaxSkip; i++) {
        if (!NextRow(r->scan, out))
            break;
        int c = CompareKey(r, out, value);
        if (c == 0)
            got = true;
        if (c >= 0)
            break;
    }
    MemoryContextSwitchTo(old);
    return got;
}

// A ranged scan goes on from the row just found, whose key is value.
void RememberFound(RowExec *r, Datum value) {
    if (!r->ranged)
        return;
    MemoryContextReset(r->last_cxt);
    MemoryContext old = MemoryContextSwitchTo(r->last_cxt);
    r->last = datumCopy(value, r->att->attbyval, r->att->attlen);
    MemoryContextSwitchTo(old);
    r->positioned = true;
}

// The local row whose key equals key's into out; false if there is none.

} // namespace

// A row found by going on with a ranged scan is checked as one found by a
// search; a key that going on does not find is searched afresh, because a
// btree scan does not see entries added to a page after it read the page.
bool FindByKey(RowExec *r, TupleTableSlot *key, TupleTableSlot *out, bool lock) {
    for (int k = 0; k < r->nkeys; k++) {
        int j = r->keyattr[k] - 1;
        r->skey[k].sk_argument = key->tts_values[j];
        if (key->tts_isnull[j])
            r->skey[k].sk_flags |= SK_ISNULL; // matches nothing, as in PostgreSQL's apply
        else
            r->skey[k].sk_flags &= ~SK_ISNULL;
    }
    Datum value = key->tts_values[r->keyattr[0] - 1];
    if (r->ranged && key->tts_isnull[r->keyattr[0] - 1]) {
        r->positioned = false;
        return false;
    }
    bool fresh = false;
    for (;;) {
        bool got = false;
        if (!fresh)
            got = Continue(r, out, value);
        if (!got) {
            got = Search(r, out, value);
            fresh = true;
        }
        r->positioned = false;
        if (!got)
            return false;
        ExecMaterializeSlot(out);
        TransactionId xwait = TransactionIdIsValid(r->dirty.xmin) ? r->dirty.xmin : r->dirty.xmax;
        if (TransactionIdIsValid(xwait)) {
            XactLockTableWait(xwait, nullptr, nullptr, XLTW_None);
            fresh = true;
            continue;
        }
        if (!lock) {
            RememberFound(r, value);
            return true;
        }
        TM_FailureData tmfd;
        PushActiveSnapshot(GetLatestSnapshot());
        TM_Result res = table_tuple_lock(r->rel, &out->tts_tid, GetActiveSnapshot(), out,
                                         GetCurrentCommandId(false), LockTupleExclusive,
                                         LockWaitBlock, 0, &tmfd);
        PopActiveSnapshot();
        switch (res) {
        case TM_Ok:
            RememberFound(r, value);
            return true;
        case TM_Updated:
        case TM_Deleted:
            ereport(LOG, (errmsg("gsb: row in table \"%s\" concurrently %s, looking it up again",
                                 RelationGetRelationName(r->rel),
                                 res == TM_Updated ? "updated" : "deleted")));
            fresh = true;
            continue;
        default:
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("gsb: unexpected result %d locking a row of table \"%s\"",
                                   static_cast<int>(res), RelationGetRelationName(r->rel))));
        }
    }
}

} // namespace gsb::apply
