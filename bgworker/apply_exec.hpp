// apply_exec.hpp: the executor state the apply back end runs changes in:
// one set-up of a one-table executor state (ExecState), the state kept open
// for a run of changes on one table within a remote transaction (RowExec),
// the target table kept open likewise, and acting as the table's owner.
//
// PostgreSQL-style code (raises PostgreSQL errors, no C++ objects with
// destructors). Not for: finding rows (apply_keyscan.hpp), what a change does
// to them (apply_rows.hpp), or mapping the peer's relations
// (apply_relation.hpp).
#pragma once

#include "pg.hpp"

extern "C" {
#include "access/genam.h"
#include "access/skey.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "replication/origin.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
}

namespace gsb::apply {

// While a change runs through the executor, the worker acts as the table's
// owner in a restricted security context: code the owner attached to the
// table (index expressions, constraints, defaults, triggers enabled for
// replicas) runs with the owner's rights, never with the worker's.
struct SavedUser {
    Oid userid;
    int sec_context;
};

inline SavedUser BecomeOwner(Relation rel) {
    SavedUser saved;
    GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
    SetUserIdAndSecContext(rel->rd_rel->relowner, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE |
                                                      SECURITY_RESTRICTED_OPERATION);
    return saved;
}

inline void RestoreUser(const SavedUser &saved) {
    SetUserIdAndSecContext(saved.userid, saved.sec_context);
}

// Whether a trigger fires for the apply worker's changes, which run with
// session_replication_role = replica (ENABLE ALWAYS or ENABLE REPLICA).
inline bool FiresOnReplica(const Trigger *t) {
    return t->tgenabled == TRIGGER_FIRES_ALWAYS || t->tgenabled == TRIGGER_FIRES_ON_REPLICA;
}

// A table whose changes need nothing from the executor but the heap and its
// indexes: no trigger that fires for the worker (gsb's own gsb_fence_writes,
// and every ordinary trigger, fire for local changes only), no stored
// generated columns. Its inserts are batched, and its rows are updated and
// deleted without locking them first.
inline bool PlainTable(Relation rel) {
    TupleDesc desc = RelationGetDescr(rel);
    if (desc->constr != nullptr && desc->constr->has_generated_stored)
        return false;
    const TriggerDesc *td = rel->trigdesc;
    for (int i = 0; td != nullptr && i < td->numtriggers; i++)
        if (FiresOnReplica(&td->triggers[i]))
            return false;
    return true;
}

// The executor state of changes to one table, as a statement on that table
// alone has it: the table as the only range table entry, its result relation
// with the indexes open, and the EvalPlanQual state that triggers' rechecks
// use. Made in the current memory context.
struct ExecState {
    EState *estate;
    ResultRelInfo *rri;
    EPQState epq;
};

void OpenExecState(ExecState *x, Relation rel);
void CloseExecState(ExecState *x);

// One change (or one batch of inserts): its command id and trigger query
// level. EndChange fires the AFTER triggers it queued.
inline void BeginChange(ExecState *x) {
    x->estate->es_output_cid = GetCurrentCommandId(true);
    AfterTriggerBeginQuery();
}

inline void EndChange(ExecState *x) {
    EvalPlanQualEnd(&x->epq); // a no-op unless a trigger's recheck used it
    AfterTriggerEndQuery(x->estate);
}

// ---------------------------------------------------------------------------
// Executor state kept for a run of changes on one relation in a remote
// transaction (updates, deletes, and inserts that go row by row): the
// relation and its indexes stay open and the slots are made once, instead of
// once per change (table and index opens, locks and executor set-up were
// ~15% of the worker in a 200k-row delete). Each change still has its own
// trigger query level, command id and per-tuple memory. Closed before the
// commit, at a relation message or truncate, and when another relation
// comes; after a rollback it is only forgotten (its memory lived in the
// transaction, and the rollback released the rest).
//
// The key index is searched by one index scan kept open for the run
// (apply_keyscan.hpp); its fields are set on the run's first lookup.
// ---------------------------------------------------------------------------
struct RowExec : ExecState { // in cxt
    Relation rel;            // open, with a reference, while kept; nullptr when none
    MemoryContext cxt;       // child of TopTransactionContext
    Oid key_index;
    // Made on the first lookup of the run (PrepareLookup); until then scan
    // is nullptr and the rest unset.
    TupleTableSlot *key, *local, *remote;
    Relation idx;       // the key index, open while kept
    IndexScanDesc scan; // on idx, with the dirty snapshot below
    SnapshotData dirty;
    int nkeys;
    ScanKeyData skey[INDEX_MAX_KEYS];   // equality on each key column
    AttrNumber keyattr[INDEX_MAX_KEYS]; // the table column of each key column
    // One-column keys only: the scan goes on from the last row found.
    bool ranged;
    ScanKeyData range; // key >= value
    FmgrInfo *order;   // the key's btree comparison function
    Oid collation;     // and its collation
    bool positioned;   // the last lookup found its row; the scan may go on
    Datum last;        // that row's key (copied into last_cxt)
    MemoryContext last_cxt;
    Form_pg_attribute att; // the key column
    // The commit time and origin of the transaction that wrote the last row
    // found (InspectLocal): a run's rows mostly come from one transaction,
    // and the commit timestamp lookup for every row was 5% of the worker in
    // a 200k-row delete. Only committed transactions are remembered; a
    // commit time never changes, and the run ends with its transaction.
    TransactionId ts_xid;
    TimestampTz ts;
    RepOriginId ts_origin;
};

// The kept state for rel (opened on first use), ready for one change: begin
// with ChangeBegin, end with ChangeEnd. With lookup, also the key scan and
// the slots key, local and remote.
RowExec *OpenRowExec(Relation rel, Oid key_index, bool lookup);

// Closes the kept state (before a commit, a relation message, a truncate).
void CloseRowExec();

void ChangeBegin(RowExec *r);
void ChangeEnd(RowExec *r);

// The table a change goes to, opened and locked (RowExclusiveLock), and kept
// open until the transaction ends or a change goes to another table: a run
// of changes on one table opens it once. table_open's lock table and
// relcache lookups for every row were 4% of the worker in a 200k-row delete
// and 3% in a 200k-row insert.
Relation OpenTarget(Oid relid);
void CloseTarget();

// Raises a clear error, naming the trigger, when rel has a deferred trigger
// that fires for replicated changes: it cannot fire in the restricted
// context the worker applies changes in, and PostgreSQL's own error for that
// names neither trigger nor table.
void CheckDeferredTriggers(Relation rel);

// The name of a TRUNCATE trigger of rel that fires for replicated changes,
// or nullptr.
const char *ReplicaTruncateTrigger(Relation rel);

// After a rollback: forgets the kept state and the target (the rollback
// released what they held).
void ForgetExecState();

} // namespace gsb::apply
