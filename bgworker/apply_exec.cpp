// apply_exec.cpp: executor state for the apply back end (see apply_exec.hpp).
#include "pg.hpp"

extern "C" {
#include "access/table.h"
#include "catalog/pg_trigger.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
}

#include "apply_exec.hpp"
#include "apply_keyscan.hpp"

namespace gsb::apply {
namespace {

RowExec row_exec;
Relation target = nullptr;

} // namespace

void OpenExecState(ExecState *x, Relation rel) {
    x->estate = CreateExecutorState();
    RangeTblEntry *rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = RelationGetRelid(rel);
    rte->relkind = rel->rd_rel->relkind;
    rte->rellockmode = RowExclusiveLock;
    ExecInitRangeTable(x->estate, list_make1(rte));
    x->rri = makeNode(ResultRelInfo);
    InitResultRelInfo(x->rri, rel, 1, nullptr, 0);
    ExecOpenIndices(x->rri, false);
    EvalPlanQualInit(&x->epq, x->estate, nullptr, NIL, -1);
}

void CloseExecState(ExecState *x) {
    EvalPlanQualEnd(&x->epq);
    // Firing an after trigger opens the table again as a trigger target
    // (our ResultRelInfo is not among the estate's opened ones); close it,
    // or the commit warns of a relcache reference leak (t/307 found it).
    ExecCloseResultRelations(x->estate);
    ExecCloseIndices(x->rri);
    ExecResetTupleTable(x->estate->es_tupleTable, false);
    FreeExecutorState(x->estate);
}

void CloseTarget() {
    if (target == nullptr)
        return;
    table_close(target, NoLock);
    target = nullptr;
}

Relation OpenTarget(Oid relid) {
    if (target != nullptr && RelationGetRelid(target) == relid)
        return target;
    CloseTarget();
    target = table_open(relid, RowExclusiveLock);
    CheckDeferredTriggers(target);
    return target;
}

void CheckDeferredTriggers(Relation rel) {
    TriggerDesc *td = rel->trigdesc;
    if (td == nullptr)
        return;
    for (int i = 0; i < td->numtriggers; i++) {
        const Trigger *t = &td->triggers[i];
        if (t->tginitdeferred && FiresOnReplica(t))
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("trigger \"%s\" on table \"%s\" is deferred and fires for replicated "
                            "changes, which gsb applies in a security-restricted context where "
                            "deferred triggers cannot fire",
                            t->tgname, RelationGetRelationName(rel)),
                     errhint("Make it fire for local changes only (ALTER TABLE ... ENABLE TRIGGER "
                             "%s), make it NOT DEFERRED, or drop it; the apply resumes by itself.",
                             quote_identifier(t->tgname))));
    }
}

const char *ReplicaTruncateTrigger(Relation rel) {
    TriggerDesc *td = rel->trigdesc;
    if (td == nullptr || !(td->trig_truncate_before_statement || td->trig_truncate_after_statement))
        return nullptr;
    for (int i = 0; i < td->numtriggers; i++) {
        const Trigger *t = &td->triggers[i];
        if (TRIGGER_FOR_TRUNCATE(t->tgtype) && FiresOnReplica(t))
            return t->tgname;
    }
    return nullptr;
}

void CloseRowExec() {
    if (row_exec.rel == nullptr)
        return;
    EndLookup(&row_exec);
    CloseExecState(&row_exec);
    table_close(row_exec.rel, NoLock);
    MemoryContextDelete(row_exec.cxt);
    row_exec = RowExec{};
}

RowExec *OpenRowExec(Relation rel, Oid key_index, bool lookup) {
    if (row_exec.rel == nullptr || row_exec.rel != rel ||
        RelationGetRelid(row_exec.rel) != RelationGetRelid(rel) ||
        row_exec.key_index != key_index) {
        CloseRowExec();
        MemoryContext cxt =
            AllocSetContextCreate(TopTransactionContext, "gsb row apply", ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        row_exec.cxt = cxt;
        row_exec.rel = table_open(RelationGetRelid(rel), NoLock); // a reference of our own
        row_exec.key_index = key_index;
        OpenExecState(&row_exec, row_exec.rel);
        MemoryContextSwitchTo(old);
    }
    if (lookup && row_exec.scan == nullptr)
        PrepareLookup(&row_exec);
    return &row_exec;
}

void ChangeBegin(RowExec *r) {
    BeginChange(r);
}

void ChangeEnd(RowExec *r) {
    EndChange(r);
    if (r->scan != nullptr) {
        ExecClearTuple(r->key);
        ExecClearTuple(r->local); // drops its buffer pin
        ExecClearTuple(r->remote);
    }
    ResetPerTupleExprContext(r->estate);
}

void ForgetExecState() {
    row_exec = RowExec{}; // the rollback released it
    target = nullptr;     // and the reference OpenTarget kept
}

} // namespace gsb::apply
