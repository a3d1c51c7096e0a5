// apply_rows.cpp: inserts, batches, updates, deletes and truncates (see
// apply_rows.hpp).
#include "pg.hpp"

extern "C" {
#include "access/table.h"
#include "catalog/catalog.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/tablecmds.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "apply_conflict.hpp"
#include "apply_exec.hpp"
#include "apply_keyscan.hpp"
#include "apply_rows.hpp"
#include "conflict.hpp"
#include "gsb.hpp"

namespace gsb::apply {
namespace {

// Updates (remote set) or deletes the row version that FindByKey found
// without a lock, in a plain table, as ExecSimpleRelationUpdate and
// ExecSimpleRelationDelete do (less the triggers and generated columns that
// a plain table lacks). table_tuple_update and table_tuple_delete wait for a
// transaction that holds the row, as a lock would; TM_Updated or TM_Deleted
// means that a local transaction changed the row after it was found, and the
// caller looks it up and decides again, as the executor's own UPDATE and
// DELETE do. The lock that PostgreSQL's apply takes first cost a WAL record
// and a buffer change per row: 11% of the worker in a 200k-row delete.
TM_Result ModifyFound(RowExec *r, TupleTableSlot *local, TupleTableSlot *remote) {
    Relation rel = r->rel;
    EState *estate = r->estate;
    TM_FailureData tmfd;
    TM_Result res;
    if (remote == nullptr) {
        CheckCmdReplicaIdentity(rel, CMD_DELETE);
        res = table_tuple_delete(rel, &local->tts_tid, estate->es_output_cid, estate->es_snapshot,
                                 InvalidSnapshot, true, &tmfd, false);
    } else {
        CheckCmdReplicaIdentity(rel, CMD_UPDATE);
        if (rel->rd_att->constr != nullptr)
            ExecConstraints(r->rri, remote, estate);
        if (rel->rd_rel->relispartition)
            ExecPartitionCheck(r->rri, remote, estate, true);
        LockTupleMode lockmode;
        bool update_indexes = false;
        res = table_tuple_update(rel, &local->tts_tid, remote, estate->es_output_cid,
                                 estate->es_snapshot, InvalidSnapshot, true, &tmfd, &lockmode,
                                 &update_indexes);
        if (res == TM_Ok && update_indexes && r->rri->ri_NumIndices > 0)
            list_free(ExecInsertIndexTuples(r->rri, remote, estate, true, false, nullptr, NIL));
    }
    if (res == TM_Ok || res == TM_Updated || res == TM_Deleted)
        return res;
    if (res == TM_SelfModified)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("gsb: a row of table \"%s\" was already changed by this transaction",
                               RelationGetRelationName(rel))));
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                    errmsg("gsb: unexpected result %d changing a row of table \"%s\"",
                           static_cast<int>(res), RelationGetRelationName(rel))));
    pg_unreachable();
}

// Test hook (gsb.fault_injection = 'apply_pause_after_find'): a pause of 3 s
// between finding a row (and locking it, in a table that is not plain) and
// updating or deleting it, the first time for a change, so a test can change
// the row locally in between.
void PauseAfterFind(int attempt) {
    if (attempt > 0 || !FaultInjected("apply_pause_after_find"))
        return;
    ereport(LOG, (errmsg("gsb: fault apply_pause_after_find: pausing 3 s")));
    TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 3000);
    for (;;) {
        long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
        if (left <= 0)
            break;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

// One remote insert, with the conflict rules: remote_in holds the complete
// new row (the peer sends every column of an insert).
void ApplyInsertSlot(Session *s, RelMapEntry *e, Relation rel, TupleTableSlot *remote_in) {
    RowExec *r = OpenRowExec(rel, e->key_index, true);
    ChangeBegin(r);
    TupleTableSlot *remote = r->remote;
    TupleTableSlot *local = r->local;
    ExecCopySlot(remote, remote_in);
    bool found = FindByKey(r, remote, local, true);
    conflict::Local l = InspectLocal(s, r, found, remote);
    // No row here, but one lost to a concurrent delete of the peer's, newer
    // than this insert: the peer applies that row's update over this
    // insert, so it is weighed as the local row (apply_conflict.hpp).
    TupleTableSlot *lost = nullptr;
    if (!found && HaveLostRows(s, RelationGetRelid(rel))) {
        lost = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
        TimestampTz lost_ts = 0;
        if (FindLostRow(s, rel, e, remote, lost, &lost_ts)) {
            l.exists = true;
            l.commit_ts = lost_ts;
        } else {
            ExecDropSingleTupleTableSlot(lost);
            lost = nullptr;
        }
    }
    conflict::Decision d =
        conflict::Decide(conflict::Op::kInsert, l, s->commit_ts, s->local_is_primary);
    if (d.kind != conflict::Kind::kNone)
        RecordConflict(s, rel, e, d, remote, found ? local : lost, remote);
    if (d.resolution == conflict::Resolution::kApplyRemote) {
        if (found)
            ExecSimpleRelationUpdate(r->rri, r->estate, &r->epq, local, remote); // replaces it
        else
            ExecSimpleRelationInsert(r->rri, r->estate, remote);
        s->changes_applied++;
    } else if (lost != nullptr) {
        ExecSimpleRelationInsert(r->rri, r->estate, lost); // the lost row comes back
    }
    if (lost != nullptr)
        ExecDropSingleTupleTableSlot(lost);
    ChangeEnd(r);
}

// Inserts row (a table without triggers or stored generated columns, as
// batched) without looking its key up first, and reports whether it went in
// without meeting another row. Every unique index is checked as a partial
// check: a row that holds the same key or value (committed, or an open
// transaction's) is reported instead of raising an error or waiting. Then
// the row just written is deleted again (this transaction's own row, never
// seen by anyone; its index entries point at a dead tuple) and the caller
// takes the conflict path, which waits, looks the key up and decides, and
// raises the error if another unique index is really violated. Checking
// only the key index this way would not do: the same row inserted on both
// sites also holds the same value of every other unique column, and that
// index's error would come before the conflict rules could keep or replace
// the row. Most inserts meet nothing and save the lookup, which was 7% of
// the worker in single-row transactions.
bool InsertUnlessTaken(Relation rel, Oid key_index, TupleTableSlot *row) {
    RowExec *r = OpenRowExec(rel, key_index, false);
    EState *estate = r->estate;
    estate->es_output_cid = GetCurrentCommandId(true);
    if (rel->rd_att->constr != nullptr)
        ExecConstraints(r->rri, row, estate);
    if (rel->rd_rel->relispartition)
        ExecPartitionCheck(r->rri, row, estate, true);
    table_tuple_insert(rel, row, estate->es_output_cid, 0, nullptr);
    bool taken = false;
    List *recheck = ExecInsertIndexTuples(r->rri, row, estate, false, true, &taken, NIL);
    list_free(recheck);
    if (taken) {
        CommandCounterIncrement(); // the row is visible to our own delete
        simple_table_tuple_delete(rel, &row->tts_tid, GetActiveSnapshot());
    }
    ResetPerTupleExprContext(estate);
    return !taken;
}

} // namespace

void ApplyInsert(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx) {
    EState *estate = CreateExecutorState();
    TupleTableSlot *remote = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
    FillSlot(e, rel, estate, remote, msg.new_tuple, nullptr, true, ctx);
    ApplyInsertSlot(s, e, rel, remote);
    ExecDropSingleTupleTableSlot(remote);
    FreeExecutorState(estate);
}

// ---------------------------------------------------------------------------
// Batched inserts. Consecutive inserts into one table within a remote
// transaction are buffered and written with one table_multi_insert, their
// index entries and constraints checked as usual, inside a subtransaction.
// Most inserts meet no existing key, so they skip the per-row key lookup; if
// any of them does (a unique violation), the subtransaction is rolled back
// and the batch is applied row by row. Row by row, each insert is written
// first, and its key looked up only if a unique index reports the key or a
// value taken (InsertUnlessTaken); then the conflict rules decide, exactly
// as unbatched. Tables with triggers or stored generated columns are not
// batched: each of their inserts looks the key up first (ApplyInsert).
// ---------------------------------------------------------------------------
namespace {

constexpr int kBatchMax = 1000;
constexpr int kMultiInsertMin = 4;

struct InsertBatch {
    RelMapEntry *e; // the relation being batched; nullptr when empty
    Oid relid;
    int n;
    TupleTableSlot **slots;  // kBatchMax virtual slots for desc
    TimestampTz *commit_ts;  // each row's remote commit time (they differ in a copy)
    TupleDesc desc;          // copy of the descriptor the slots were made for
    EState *estate;          // for default expressions of buffered rows
    MemoryContext rows_cxt;  // values of buffered rows; reset after a flush
    MemoryContext slots_cxt; // the slots; rebuilt when the descriptor changes
    int nslots;              // slots made so far (they are made as rows need them)
};
InsertBatch batch;

// Whether slots made for a can hold rows of b: the same columns, types and
// storage. (equalTupleDescs also compares constraints and defaults, which a
// copy for slots leaves out: it said "different" for every table with a NOT
// NULL column, and the batch's slots were made again for every transaction.)
bool SameRowShape(TupleDesc a, TupleDesc b) {
    if (a->natts != b->natts || a->tdtypeid != b->tdtypeid)
        return false;
    for (int i = 0; i < a->natts; i++) {
        Form_pg_attribute x = TupleDescAttr(a, i), y = TupleDescAttr(b, i);
        if (x->atttypid != y->atttypid || x->atttypmod != y->atttypmod || x->attlen != y->attlen ||
            x->attbyval != y->attbyval || x->attalign != y->attalign ||
            x->attisdropped != y->attisdropped || x->attcollation != y->attcollation)
            return false;
    }
    return true;
}

void PrepareBatchSlots(Relation rel) {
    TupleDesc desc = RelationGetDescr(rel);
    if (batch.slots != nullptr && SameRowShape(batch.desc, desc))
        return;
    if (batch.slots_cxt == nullptr)
        batch.slots_cxt = AllocSetContextCreate(TopMemoryContext, "gsb insert batch slots",
                                                ALLOCSET_DEFAULT_SIZES);
    else
        MemoryContextReset(batch.slots_cxt);
    MemoryContext old = MemoryContextSwitchTo(batch.slots_cxt);
    batch.desc = CreateTupleDescCopy(desc);
    batch.slots = static_cast<TupleTableSlot **>(palloc0(sizeof(TupleTableSlot *) * kBatchMax));
    batch.commit_ts = static_cast<TimestampTz *>(palloc(sizeof(TimestampTz) * kBatchMax));
    batch.nslots = 0;
    MemoryContextSwitchTo(old);
}

// The batch's next slot, made on first use: a table that only ever sees
// one-row transactions needs one slot, not kBatchMax.
TupleTableSlot *NextBatchSlot() {
    if (batch.n == batch.nslots) {
        MemoryContext old = MemoryContextSwitchTo(batch.slots_cxt);
        batch.slots[batch.nslots++] = MakeSingleTupleTableSlot(batch.desc, &TTSOpsVirtual);
        MemoryContextSwitchTo(old);
    }
    return batch.slots[batch.n];
}

// Writes the whole batch at once; false when a row met an existing key.
bool TryMultiInsert(Relation rel, int n) {
    MemoryContext caller = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool ok = true;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller);
    PG_TRY();
    {
        ExecState x;
        OpenExecState(&x, rel);
        BeginChange(&x);
        // The checks the row path makes (InsertUnlessTaken): a row that
        // does not belong in this partition here is an error, not a row
        // put where no query on the parent expects it.
        for (int i = 0; i < n; i++) {
            if (rel->rd_att->constr != nullptr)
                ExecConstraints(x.rri, batch.slots[i], x.estate);
            if (rel->rd_rel->relispartition)
                ExecPartitionCheck(x.rri, batch.slots[i], x.estate, true);
        }
        table_multi_insert(rel, batch.slots, n, x.estate->es_output_cid, 0, nullptr);
        for (int i = 0; i < n; i++) {
            List *recheck =
                ExecInsertIndexTuples(x.rri, batch.slots[i], x.estate, false, false, nullptr, NIL);
            list_free(recheck);
        }
        EndChange(&x);
        CloseExecState(&x);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller);
        CurrentResourceOwner = owner;
        if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
            ReThrowError(edata);
        FreeErrorData(edata);
        ok = false;
    }
    PG_END_TRY();
    return ok;
}

} // namespace

void AddToBatch(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                ErrorContextArg *ctx) {
    if (batch.e != nullptr &&
        (batch.e != e || batch.relid != e->localrelid || batch.n == kBatchMax))
        FlushBatch(s);
    if (batch.rows_cxt == nullptr)
        // Keeps a block big enough for a whole batch across resets: giving
        // it back each time made the kernel's page faults the main cost.
        batch.rows_cxt =
            AllocSetContextCreate(TopMemoryContext, "gsb insert batch rows", 2 * 1024 * 1024,
                                  2 * 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
    if (batch.e == nullptr) {
        PrepareBatchSlots(rel);
        batch.e = e;
        batch.relid = e->localrelid;
        MemoryContext old = MemoryContextSwitchTo(batch.rows_cxt);
        batch.estate = CreateExecutorState();
        MemoryContextSwitchTo(old);
    }
    MemoryContext old = MemoryContextSwitchTo(batch.rows_cxt);
    SavedUser saved = BecomeOwner(rel); // default expressions are the owner's code
    FillSlot(e, rel, batch.estate, NextBatchSlot(), msg.new_tuple, nullptr, true, ctx);
    RestoreUser(saved);
    MemoryContextSwitchTo(old);
    batch.commit_ts[batch.n] = s->commit_ts;
    batch.n++;
}

void ApplyUpdate(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx) {
    RowExec *r = OpenRowExec(rel, e->key_index, true);
    ChangeBegin(r);
    TupleDesc desc = RelationGetDescr(rel);
    TupleTableSlot *key = r->key;
    TupleTableSlot *local = r->local;
    TupleTableSlot *remote = r->remote;
    // The row is found by its old key when the key changed, else by the new.
    const protocol::Tuple &key_tuple = msg.has_old ? msg.old_tuple : msg.new_tuple;
    if (key_tuple.values.size() != static_cast<size_t>(e->ncols))
        ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                        errmsg("gsb: peer sent %zu key columns for table \"%s.%s\", expected %d",
                               key_tuple.values.size(), e->nspname, e->relname, e->ncols)));
    // Only the key matters for the search. Key columns are never unchanged
    // TOAST values (a key that large cannot be indexed); skip any other.
    ExecClearTuple(key);
    for (int j = 0; j < desc->natts; j++) {
        key->tts_values[j] = (Datum)0;
        key->tts_isnull[j] = true;
    }
    for (int i = 0; i < e->ncols; i++) {
        const protocol::Value &v = key_tuple.values[i];
        if (v.kind == protocol::ValueKind::kUnchangedToast)
            continue;
        int j = e->attmap[i];
        if (j < 0)
            continue; // dropped here by a replicated DDL (never a key column)
        ctx->remote_col = i;
        StoreValue(e, i, v, TupleDescAttr(desc, j), &key->tts_values[j], &key->tts_isnull[j]);
    }
    ctx->remote_col = -1;
    ExecStoreVirtualTuple(key);

    bool plain = PlainTable(rel);
    // A key-changing update locks the row it finds, and the holder of its
    // new key, even in a plain table: deleting one of them and then finding
    // the other changed meanwhile would leave half a decision behind.
    bool lock = !plain || msg.has_old;
    for (int attempt = 0;; attempt++) {
        bool found = FindByKey(r, key, local, lock);
        if (found)
            FillSlot(e, rel, r->estate, remote, msg.new_tuple, local, false, ctx);
        conflict::Local l = InspectLocal(s, r, found, found ? remote : nullptr);
        // A row that came back here in place of the peer's insert (a row
        // lost to a delete, apply_conflict.hpp) counts as written at the
        // lost row's time, as the peer has it.
        if (found && l.from_peer && HaveLostRows(s, RelationGetRelid(rel))) {
            TupleTableSlot *lost = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
            TimestampTz lost_ts = 0;
            if (FindLostRow(s, rel, e, key, lost, &lost_ts) && lost_ts > l.commit_ts) {
                l.from_peer = false;
                l.identical = false;
                l.commit_ts = lost_ts;
            }
            ExecDropSingleTupleTableSlot(lost);
        }
        conflict::Decision d =
            conflict::Decide(conflict::Op::kUpdate, l, s->commit_ts, s->local_is_primary);
        bool apply = d.resolution == conflict::Resolution::kApplyRemote && found;
        // An update that moves the row to another key may find that key
        // held by another local row (the holder): the rules decide between
        // the holder and the update (update_exists), and the loser goes, so
        // that the update never meets a unique violation on the key.
        TupleTableSlot *holder = nullptr;
        conflict::Decision taken = {conflict::Kind::kNone, conflict::Resolution::kApplyRemote};
        if (apply && msg.has_old) {
            holder = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));
            if (FindByKey(r, remote, holder, lock) &&
                !ItemPointerEquals(&holder->tts_tid, &local->tts_tid))
                taken = conflict::Decide(conflict::Op::kUpdateKeyTaken, InspectRow(s, r, holder),
                                         s->commit_ts, s->local_is_primary);
        }
        if (apply)
            PauseAfterFind(attempt);
        bool keep_holder = taken.kind != conflict::Kind::kNone &&
                           taken.resolution != conflict::Resolution::kApplyRemote;
        TM_Result res = TM_Ok;
        if (taken.kind != conflict::Kind::kNone && !keep_holder) {
            // The update wins: the holder goes first, then the update.
            if (plain)
                res = ModifyFound(r, holder, nullptr);
            else
                ExecSimpleRelationDelete(r->rri, r->estate, &r->epq, holder);
        }
        if (res == TM_Ok && keep_holder) {
            // The holder wins: the updated row's old version goes, as on the
            // peer, where the holder's change meets that row under the key.
            if (plain)
                res = ModifyFound(r, local, nullptr);
            else
                ExecSimpleRelationDelete(r->rri, r->estate, &r->epq, local);
        } else if (res == TM_Ok && apply && plain) {
            res = ModifyFound(r, local, remote);
        } else if (res == TM_Ok && apply) {
            ExecSimpleRelationUpdate(r->rri, r->estate, &r->epq, local, remote);
        }
        if (res != TM_Ok) {
            // Changed by a local transaction after it was found (never a
            // row locked above, so nothing was deleted before): look it up
            // and decide again.
            if (holder != nullptr)
                ExecDropSingleTupleTableSlot(holder);
            ChangedMeanwhile(r, res);
            continue;
        }
        if (d.kind != conflict::Kind::kNone) {
            if (!found) {
                // Log the row as the peer sent it, as far as it is complete.
                bool complete = true;
                for (const protocol::Value &v : msg.new_tuple.values)
                    complete &= v.kind != protocol::ValueKind::kUnchangedToast;
                if (complete)
                    FillSlot(e, rel, r->estate, remote, msg.new_tuple, nullptr, false, ctx);
                RecordConflict(s, rel, e, d, key, nullptr, complete ? remote : nullptr);
            } else {
                RecordConflict(s, rel, e, d, key, local, remote);
            }
        }
        if (taken.kind != conflict::Kind::kNone)
            RecordConflict(s, rel, e, taken, remote, holder, remote);
        if (holder != nullptr)
            ExecDropSingleTupleTableSlot(holder);
        if (apply)
            s->changes_applied++;
        break;
    }
    ChangeEnd(r);
}

void ApplyDelete(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx) {
    RowExec *r = OpenRowExec(rel, e->key_index, true);
    ChangeBegin(r);
    TupleTableSlot *key = r->key;
    TupleTableSlot *local = r->local;
    FillSlot(e, rel, r->estate, key, msg.old_tuple, nullptr, false, ctx);
    bool plain = PlainTable(rel);
    for (int attempt = 0;; attempt++) {
        bool found = FindByKey(r, key, local, !plain);
        conflict::Local l = InspectLocal(s, r, found, nullptr);
        conflict::Decision d =
            conflict::Decide(conflict::Op::kDelete, l, s->commit_ts, s->local_is_primary);
        bool apply = d.resolution == conflict::Resolution::kApplyRemote && found;
        if (apply)
            PauseAfterFind(attempt);
        if (apply && plain) {
            TM_Result res = ModifyFound(r, local, nullptr);
            if (res != TM_Ok) {
                ChangedMeanwhile(r, res);
                continue;
            }
        } else if (apply) {
            ExecSimpleRelationDelete(r->rri, r->estate, &r->epq, local);
        }
        if (d.kind != conflict::Kind::kNone)
            RecordConflict(s, rel, e, d, key, found ? local : nullptr, nullptr);
        if (apply && d.kind == conflict::Kind::kDeleteDiffers)
            RememberLostRow(s, rel, e, key, local, l.commit_ts);
        if (apply)
            s->changes_applied++;
        break;
    }
    ChangeEnd(r);
}

// A TRUNCATE from the peer empties exactly the tables it names: never
// CASCADE, whatever the peer did (a table that only this site has, with a
// foreign key to one of them, keeps its rows, and the truncate is an apply
// error until the reference is gone), as PostgreSQL's own apply does. Its
// triggers (the only code of the owner's that a truncate runs) run as the
// tables' owner in a restricted context; tables of several owners are
// truncated together only when none has a trigger that fires for replicated
// changes, since one statement can act as one role only.
void ApplyTruncate(Session *s, const protocol::Message &msg, ErrorContextArg *ctx) {
    List *rels = NIL;
    List *relids = NIL;
    List *relids_logged = NIL;
    Oid owner = InvalidOid;
    bool one_owner = true;
    for (uint32_t remote_relid : msg.relids) {
        RelMapEntry *e = LookupEntry(remote_relid);
        ResolveEntry(s, e, ctx);
        Relation rel = table_open(e->localrelid, AccessExclusiveLock);
        rels = lappend(rels, rel);
        relids = lappend_oid(relids, e->localrelid);
        if (RelationIsLogicallyLogged(rel))
            relids_logged = lappend_oid(relids_logged, e->localrelid);
        if (!OidIsValid(owner))
            owner = rel->rd_rel->relowner;
        else if (owner != rel->rd_rel->relowner)
            one_owner = false;
    }
    SavedUser saved = {InvalidOid, 0};
    if (one_owner && rels != NIL) {
        saved = BecomeOwner(static_cast<Relation>(linitial(rels)));
    } else {
        ListCell *lc;
        foreach (lc, rels) {
            Relation rel = static_cast<Relation>(lfirst(lc));
            const char *trigger = ReplicaTruncateTrigger(rel);
            if (trigger != nullptr)
                ereport(
                    ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("cannot apply a truncate of tables of different owners: table "
                            "\"%s\" has trigger \"%s\", which fires for replicated changes",
                            RelationGetRelationName(rel), trigger),
                     errhint("Give the tables truncated together one owner, or make the trigger "
                             "fire for local changes only (ALTER TABLE ... ENABLE TRIGGER).")));
        }
    }
    ExecuteTruncateGuts(rels, relids, relids_logged, DROP_RESTRICT,
                        (msg.truncate_flags & protocol::kTruncateRestartIdentity) != 0);
    if (OidIsValid(saved.userid))
        RestoreUser(saved);
    ListCell *lc;
    foreach (lc, rels)
        table_close(static_cast<Relation>(lfirst(lc)), NoLock);
    s->changes_applied++;
}

void DiscardBatch() {
    for (int i = 0; i < batch.n; i++)
        ExecClearTuple(batch.slots[i]);
    batch.n = 0;
    batch.e = nullptr;
    batch.estate = nullptr;
    if (batch.rows_cxt != nullptr)
        MemoryContextReset(batch.rows_cxt);
}

void FlushBatch(Session *s) {
    if (batch.e == nullptr)
        return;
    RelMapEntry *e = batch.e;
    int n = batch.n;
    ErrorContextArg ctx = {s, "a batch of inserts", e, -1};
    ErrorContextCallback cb;
    PushErrorContext(&cb, &ctx);
    PushActiveSnapshot(GetTransactionSnapshot());
    Relation rel = table_open(batch.relid, RowExclusiveLock);
    CheckDeferredTriggers(rel);
    SavedUser saved = BecomeOwner(rel);
    // A few rows go row by row: for them the subtransaction (and its own
    // transaction id) costs more than it saves, which is what made
    // single-row transactions slower than native's.
    // A table with rows lost to a delete goes row by row: each insert must
    // be weighed against them (ApplyInsertSlot).
    bool lost_rows = HaveLostRows(s, batch.relid);
    if (n >= kMultiInsertMin && !lost_rows && TryMultiInsert(rel, n)) {
        s->changes_applied += n;
    } else {
        CommandCounterIncrement();
        TimestampTz txn_ts = s->commit_ts;
        for (int i = 0; i < n; i++) {
            s->commit_ts = batch.commit_ts[i];
            if (!lost_rows && InsertUnlessTaken(rel, e->key_index, batch.slots[i])) {
                s->changes_applied++;
            } else {
                CommandCounterIncrement();
                ApplyInsertSlot(s, e, rel, batch.slots[i]);
            }
            CommandCounterIncrement();
        }
        s->commit_ts = txn_ts;
    }
    RestoreUser(saved);
    table_close(rel, NoLock);
    PopActiveSnapshot();
    CommandCounterIncrement();
    error_context_stack = cb.previous;
    DiscardBatch();
}

} // namespace gsb::apply
