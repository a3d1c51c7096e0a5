// apply.cpp: the apply back end (see apply.hpp).
//
// PostgreSQL-style code only: no exceptions, no objects with destructors.
// Everything allocated per change lives in the session's message context,
// which the worker resets after each message; the relation map lives in its
// own context and is rebuilt when the local relation changes.
#include "pg.hpp"

extern "C" {
#include "access/commit_ts.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "utils/resowner.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include "apply.hpp"
#include "binary_values.hpp"
#include "catalog.hpp"
#include "conflict.hpp"
#include "gsb.hpp"

namespace gsb::apply {
namespace {

// How one of the peer's relations maps onto a local table.
struct RelMapEntry {
    uint32 remote_relid; // hash key: the relation's OID on the peer
    MemoryContext cxt;   // everything below; deleted when redefined
    // As the peer describes it (last relation message).
    char *nspname;
    char *relname;
    int ncols;
    char **colnames;
    char **typnames;
    // The local table, resolved at first use and after invalidation.
    bool resolved;
    Oid localrelid;
    int *attmap; // remote column -> local attribute index (0-based)
    int local_natts;
    FmgrInfo *in_fn; // text input function per local attribute
    Oid *in_ioparam;
    FmgrInfo *recv_fn; // binary receive function per local attribute
    Oid *recv_ioparam;
    uint8 *fast;   // per local attribute: a values::Direct kind (kNone: receive function)
    Oid key_index; // replica identity index (or primary key)
};

HTAB *relmap = nullptr;
MemoryContext relmap_cxt = nullptr;

void InvalidateLocal(Datum, Oid relid) {
    if (relmap == nullptr)
        return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, relmap);
    RelMapEntry *e;
    while ((e = static_cast<RelMapEntry *>(hash_seq_search(&status))) != nullptr)
        if (!OidIsValid(relid) || e->localrelid == relid)
            e->resolved = false;
}

// Error context: which peer, transaction, relation and column.
struct ErrorContextArg {
    Session *s;
    const char *action;
    RelMapEntry *rel;
    int remote_col; // -1 when not about one column
};

void ApplyErrorCallback(void *arg) {
    auto *a = static_cast<ErrorContextArg *>(arg);
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfo(&buf,
                     "gsb applying %s from peer \"%s\" (remote transaction %u, finished at %X/%X",
                     a->action, a->s->peer_name, a->s->xid, LSN_FORMAT_ARGS(a->s->final_lsn));
    appendStringInfoChar(&buf, ')');
    if (a->rel != nullptr && a->rel->relname != nullptr)
        appendStringInfo(&buf, " to table \"%s.%s\"", a->rel->nspname, a->rel->relname);
    if (a->rel != nullptr && a->remote_col >= 0 && a->remote_col < a->rel->ncols)
        appendStringInfo(&buf, ", column \"%s\"", a->rel->colnames[a->remote_col]);
    errcontext("%s", buf.data);
    pfree(buf.data);
}

// While a change runs through the executor, the worker acts as the table's
// owner in a restricted security context: code the owner attached to the
// table (index expressions, constraints, defaults, triggers enabled for
// replicas) runs with the owner's rights, never with the worker's.
struct SavedUser {
    Oid userid;
    int sec_context;
};

SavedUser BecomeOwner(Relation rel) {
    SavedUser saved;
    GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
    SetUserIdAndSecContext(rel->rd_rel->relowner, saved.sec_context | SECURITY_LOCAL_USERID_CHANGE |
                                                      SECURITY_RESTRICTED_OPERATION);
    return saved;
}

void RestoreUser(const SavedUser &saved) {
    SetUserIdAndSecContext(saved.userid, saved.sec_context);
}

RelMapEntry *LookupEntry(uint32 remote_relid) {
    bool found = false;
    auto *e = static_cast<RelMapEntry *>(hash_search(relmap, &remote_relid, HASH_FIND, &found));
    if (e == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_PROTOCOL_VIOLATION),
                 errmsg("gsb: change for relation %u before its relation message", remote_relid)));
    return e;
}

void ResolveEntry(Session *s, RelMapEntry *e, ErrorContextArg *ctx) {
    if (e->resolved)
        return;
    ctx->rel = e;
    RangeVar *rv = makeRangeVar(e->nspname, e->relname, -1);
    Oid relid = RangeVarGetRelid(rv, NoLock, true);
    if (!OidIsValid(relid))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_TABLE),
                 errmsg("gsb: table \"%s.%s\" sent by peer \"%s\" does not exist on this site",
                        e->nspname, e->relname, s->peer_name),
                 errhint("Create the table with the same columns on both sites and call "
                         "gsb.replicate_table() on each; apply resumes by itself.")));
    if (catalog::LookupTableMode(relid) != catalog::TableMode::kRealtime)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("gsb: table \"%s.%s\" is replicated by peer \"%s\" but not by this site",
                        e->nspname, e->relname, s->peer_name),
                 errhint("Call gsb.replicate_table('%s.%s') on this site too.", e->nspname,
                         e->relname)));

    Relation rel = table_open(relid, RowExclusiveLock);
    TupleDesc desc = RelationGetDescr(rel);
    MemoryContext old = MemoryContextSwitchTo(e->cxt);
    int natts = desc->natts;
    e->attmap = static_cast<int *>(palloc(sizeof(int) * Max(e->ncols, 1)));
    e->local_natts = natts;
    e->in_fn = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * Max(natts, 1)));
    e->in_ioparam = static_cast<Oid *>(palloc0(sizeof(Oid) * Max(natts, 1)));
    e->recv_fn = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * Max(natts, 1)));
    e->recv_ioparam = static_cast<Oid *>(palloc0(sizeof(Oid) * Max(natts, 1)));
    e->fast = static_cast<uint8 *>(palloc0(sizeof(uint8) * Max(natts, 1)));
    bool *mapped = static_cast<bool *>(palloc0(sizeof(bool) * Max(natts, 1)));
    for (int i = 0; i < e->ncols; i++) {
        ctx->remote_col = i;
        int attnum = attnameAttNum(rel, e->colnames[i], false);
        if (attnum == InvalidAttrNumber)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_COLUMN),
                     errmsg("gsb: table \"%s.%s\" on this site has no column \"%s\", which peer "
                            "\"%s\" sends",
                            e->nspname, e->relname, e->colnames[i], s->peer_name),
                     errhint("Give the table the same columns on both sites; apply resumes "
                             "by itself.")));
        Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
        if (att->attgenerated)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("gsb: column \"%s\" of table \"%s.%s\" is generated on this "
                                   "site but not on peer \"%s\"",
                                   e->colnames[i], e->nspname, e->relname, s->peer_name)));
        char *local_type = format_type_be(att->atttypid);
        if (strcmp(local_type, e->typnames[i]) != 0)
            ereport(ERROR,
                    (errcode(ERRCODE_DATATYPE_MISMATCH),
                     errmsg("gsb: column \"%s\" of table \"%s.%s\" is %s on this site but %s on "
                            "peer \"%s\"",
                            e->colnames[i], e->nspname, e->relname, local_type, e->typnames[i],
                            s->peer_name),
                     errhint("Give the column the same type on both sites; apply resumes by "
                             "itself.")));
        e->attmap[i] = attnum - 1;
        mapped[attnum - 1] = true;
    }
    ctx->remote_col = -1;
    for (int j = 0; j < natts; j++) {
        Form_pg_attribute att = TupleDescAttr(desc, j);
        if (att->attisdropped)
            continue;
        Oid fn;
        getTypeInputInfo(att->atttypid, &fn, &e->in_ioparam[j]);
        fmgr_info_cxt(fn, &e->in_fn[j], e->cxt);
        Oid recv = InvalidOid;
        getTypeBinaryInputInfo(att->atttypid, &recv, &e->recv_ioparam[j]);
        fmgr_info_cxt(recv, &e->recv_fn[j], e->cxt);
        e->fast[j] = static_cast<uint8>(values::DirectKindFor(recv));
    }
    Oid idx = RelationGetReplicaIndex(rel);
    if (!OidIsValid(idx))
        idx = RelationGetPrimaryKeyIndex(rel);
    if (!OidIsValid(idx))
        ereport(
            ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("gsb: table \"%s.%s\" has no primary key on this site", e->nspname, e->relname),
             errhint("gsb finds rows by key: add the same primary key as on the peer.")));
    Relation idxrel = index_open(idx, AccessShareLock);
    for (int k = 0; k < idxrel->rd_index->indnkeyatts; k++) {
        AttrNumber a = idxrel->rd_index->indkey.values[k];
        if (a <= 0 || !mapped[a - 1])
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("gsb: the key of table \"%s.%s\" on this site uses a column that "
                            "peer \"%s\" does not send",
                            e->nspname, e->relname, s->peer_name)));
    }
    index_close(idxrel, AccessShareLock);
    e->key_index = idx;
    MemoryContextSwitchTo(old);
    table_close(rel, NoLock);
    e->localrelid = relid;
    e->resolved = true;
}

// Converts one remote value into the slot's column.
void StoreValue(RelMapEntry *e, int remote_col, const protocol::Value &v, Form_pg_attribute att,
                Datum *value, bool *isnull) {
    int j = e->attmap[remote_col];
    switch (v.kind) {
    case protocol::ValueKind::kNull:
        *value = (Datum)0;
        *isnull = true;
        return;
    case protocol::ValueKind::kUnchangedToast:
        return; // keep what the slot has (the local row's value)
    case protocol::ValueKind::kText: {
        char *str = pnstrdup(v.data.data(), v.data.size());
        *value = InputFunctionCall(&e->in_fn[j], str, e->in_ioparam[j], att->atttypmod);
        *isnull = false;
        return;
    }
    case protocol::ValueKind::kBinary: {
        if (values::ReceiveDirect(static_cast<values::Direct>(e->fast[j]), v.data.data(),
                                  v.data.size(), att->atttypmod, value)) {
            *isnull = false;
            return;
        }
        // A private, NUL-terminated copy of exactly the value (as receive
        // functions expect), not initStringInfo's 1 KB per value.
        int len = static_cast<int>(v.data.size());
        StringInfoData buf;
        buf.data = static_cast<char *>(palloc(len + 1));
        memcpy(buf.data, v.data.data(), len);
        buf.data[len] = '\0';
        buf.len = len;
        buf.maxlen = len + 1;
        buf.cursor = 0;
        *value = ReceiveFunctionCall(&e->recv_fn[j], &buf, e->recv_ioparam[j], att->atttypmod);
        if (buf.cursor != buf.len)
            ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                            errmsg("gsb: incorrect binary data format in a value from the peer")));
        *isnull = false;
        return;
    }
    }
}

// Fills slot from a remote tuple. With base, columns the tuple does not carry
// (unchanged TOAST, local-only columns) keep base's values; without base
// they are NULL, or their default when with_defaults.
void FillSlot(RelMapEntry *e, Relation rel, EState *estate, TupleTableSlot *slot,
              const protocol::Tuple &tuple, TupleTableSlot *base, bool with_defaults,
              ErrorContextArg *ctx) {
    TupleDesc desc = RelationGetDescr(rel);
    if (static_cast<int>(tuple.values.size()) != e->ncols)
        ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                        errmsg("gsb: peer sent %zu columns for table \"%s.%s\", its relation "
                               "message said %d",
                               tuple.values.size(), e->nspname, e->relname, e->ncols)));
    ExecClearTuple(slot);
    Datum *values = slot->tts_values;
    bool *isnull = slot->tts_isnull;
    bool *sent = static_cast<bool *>(palloc0(sizeof(bool) * Max(desc->natts, 1)));
    if (base != nullptr) {
        slot_getallattrs(base);
        for (int j = 0; j < desc->natts; j++) {
            values[j] = base->tts_values[j];
            isnull[j] = base->tts_isnull[j];
        }
    } else {
        for (int j = 0; j < desc->natts; j++) {
            values[j] = (Datum)0;
            isnull[j] = true;
        }
    }
    for (int i = 0; i < e->ncols; i++) {
        int j = e->attmap[i];
        ctx->remote_col = i;
        const protocol::Value &v = tuple.values[i];
        if (v.kind == protocol::ValueKind::kUnchangedToast && base == nullptr)
            ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                            errmsg("gsb: peer sent an unchanged TOAST value for a new row")));
        StoreValue(e, i, v, TupleDescAttr(desc, j), &values[j], &isnull[j]);
        sent[j] = true;
    }
    ctx->remote_col = -1;
    if (with_defaults) {
        for (int j = 0; j < desc->natts; j++) {
            Form_pg_attribute att = TupleDescAttr(desc, j);
            if (sent[j] || att->attisdropped || att->attgenerated)
                continue;
            Expr *def = reinterpret_cast<Expr *>(build_column_default(rel, j + 1));
            if (def == nullptr)
                continue;
            ExprState *st = ExecPrepareExpr(expression_planner(def), estate);
            values[j] = ExecEvalExpr(st, GetPerTupleExprContext(estate), &isnull[j]);
        }
    }
    ExecStoreVirtualTuple(slot);
}

// The executor state for one change on one relation.
struct ExecCtx {
    EState *estate;
    ResultRelInfo *rri;
    EPQState epq;
};

void BeginExec(ExecCtx *x, Relation rel) {
    x->estate = CreateExecutorState();
    RangeTblEntry *rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = RelationGetRelid(rel);
    rte->relkind = rel->rd_rel->relkind;
    rte->rellockmode = RowExclusiveLock;
    ExecInitRangeTable(x->estate, list_make1(rte));
    x->rri = makeNode(ResultRelInfo);
    InitResultRelInfo(x->rri, rel, 1, nullptr, 0);
    x->estate->es_output_cid = GetCurrentCommandId(true);
    ExecOpenIndices(x->rri, false);
    AfterTriggerBeginQuery();
    EvalPlanQualInit(&x->epq, x->estate, nullptr, NIL, -1);
}

void EndExec(ExecCtx *x) {
    EvalPlanQualEnd(&x->epq);
    AfterTriggerEndQuery(x->estate);
    // Firing an after trigger opens the table again as a trigger target
    // (our ResultRelInfo is not among the estate's opened ones); close it,
    // or the commit warns of a relcache reference leak (t/307 found it).
    ExecCloseResultRelations(x->estate);
    ExecCloseIndices(x->rri);
    ExecResetTupleTable(x->estate->es_tupleTable, false);
    FreeExecutorState(x->estate);
}

// ---------------------------------------------------------------------------
// Executor state kept for a run of changes on one relation in a remote
// transaction (updates, deletes, and inserts that go row by row): the
// relation and its indexes stay open and the slots are made once, instead of
// once per change (table and index opens, locks and executor set-up were
// ~15% of the worker in a 200k-row delete). Each change still has its own
// trigger query level, command id and per-tuple memory. Closed before the commit, at a relation
// message or truncate, and when another relation comes; after a rollback it is only forgotten (its
// memory lived in the transaction, and the rollback released the rest).
//
// The key index is searched by one index scan kept open for the run:
// RelationFindReplTupleByIndex opens the index, begins and ends a scan and
// looks up the equality operators in the catalog for every row, which was a
// third of its time in a 200k-row delete. FindByKey below waits and locks
// exactly as it does. With a one-column key the scan is a range scan (key >=
// value) that a run of ascending keys (a range deleted or updated on the
// peer) continues from row to row instead of descending the index again.
// The scan keeps a pin on one index page and one heap page until the run
// ends, as a statement's own scan does; the run never outlasts the remote
// transaction, which arrives whole.
// ---------------------------------------------------------------------------
struct RowExec {
    Relation rel;       // open, with a reference, while kept; nullptr when none
    EState *estate;     // in cxt
    ResultRelInfo *rri; // indexes open
    MemoryContext cxt;  // child of TopTransactionContext
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
    // found (Inspect): a run's rows mostly come from one transaction, and
    // the commit timestamp lookup for every row was 5% of the worker in a
    // 200k-row delete. Only committed transactions are remembered; a commit
    // time never changes, and the run ends with its transaction.
    TransactionId ts_xid;
    TimestampTz ts;
    RepOriginId ts_origin;
    // For the triggers of a table that is not plain (ExecSimpleRelation*);
    // made once per run, and idle again after every change.
    EPQState epq;
};
RowExec row_exec;

// The table a change goes to, opened and locked (RowExclusiveLock), and kept
// open until the transaction ends or a change goes to another table: a run
// of changes on one table opens it once. table_open's lock table and
// relcache lookups for every row were 4% of the worker in a 200k-row delete
// and 3% in a 200k-row insert.
Relation target = nullptr;

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
    return target;
}

void CloseRowExec() {
    if (row_exec.rel == nullptr)
        return;
    if (row_exec.scan != nullptr) {
        index_endscan(row_exec.scan);
        index_close(row_exec.idx, NoLock);
    }
    EvalPlanQualEnd(&row_exec.epq);
    ExecCloseResultRelations(row_exec.estate);
    ExecCloseIndices(row_exec.rri);
    ExecResetTupleTable(row_exec.estate->es_tupleTable, false);
    FreeExecutorState(row_exec.estate);
    table_close(row_exec.rel, NoLock);
    MemoryContextDelete(row_exec.cxt);
    row_exec = RowExec{};
}

// The key index scan and the slots of a lookup, made on the first lookup of
// a run: an insert that meets no taken key needs neither.
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
// the slots key, local and remote.
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
        row_exec.estate = CreateExecutorState();
        RangeTblEntry *rte = makeNode(RangeTblEntry);
        rte->rtekind = RTE_RELATION;
        rte->relid = RelationGetRelid(rel);
        rte->relkind = rel->rd_rel->relkind;
        rte->rellockmode = RowExclusiveLock;
        ExecInitRangeTable(row_exec.estate, list_make1(rte));
        row_exec.rri = makeNode(ResultRelInfo);
        InitResultRelInfo(row_exec.rri, row_exec.rel, 1, nullptr, 0);
        ExecOpenIndices(row_exec.rri, false);
        EvalPlanQualInit(&row_exec.epq, row_exec.estate, nullptr, NIL, -1);
        MemoryContextSwitchTo(old);
    }
    if (lookup && row_exec.scan == nullptr)
        PrepareLookup(&row_exec);
    return &row_exec;
}

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
// Like RelationFindReplTupleByIndex: a row that an open transaction inserts
// or deletes is waited for and looked up again. With lock, the row is also
// locked for update or delete (waiting for an open transaction that locks
// it), and one updated or deleted between finding and locking it is looked
// up again. Without, the caller modifies the row version found with
// table_tuple_update or table_tuple_delete, which wait in the same way, and
// looks it up again if those say it was updated or deleted meanwhile
// (ModifyFound). A row found by going on with a ranged scan is checked the
// same way; a key that going on does not find is searched afresh, because a
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

void ChangeBegin(RowExec *r) {
    r->estate->es_output_cid = GetCurrentCommandId(true);
    AfterTriggerBeginQuery();
}

void ChangeEnd(RowExec *r) {
    EvalPlanQualEnd(&r->epq); // a no-op unless a trigger's recheck used it
    AfterTriggerEndQuery(r->estate);
    if (r->scan != nullptr) {
        ExecClearTuple(r->key);
        ExecClearTuple(r->local); // drops its buffer pin
        ExecClearTuple(r->remote);
    }
    ResetPerTupleExprContext(r->estate);
}

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

void RecordConflict(Session *s, Relation rel, RelMapEntry *e, conflict::Decision d,
                    TupleTableSlot *keyslot, TupleTableSlot *local, TupleTableSlot *remote) {
    s->conflicts++;
    char *key = KeyText(rel, e->key_index, keyslot);
    Datum local_json = local ? RowJson(local) : (Datum)0;
    Datum remote_json = remote ? RowJson(remote) : (Datum)0;
    Oid types[8] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, JSONOID, JSONOID, TEXTOID, TIMESTAMPTZOID};
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
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "gsb: SPI_connect failed");
    int rc = SPI_execute_with_args(
        "INSERT INTO gsb.conflicts (relation, key, kind, resolution, local_row, remote_row, "
        "remote_site, remote_commit_ts) VALUES ($1, $2, $3, $4, $5::pg_catalog.jsonb, "
        "$6::pg_catalog.jsonb, $7, $8)",
        8, types, values, nulls, false, 0);
    if (rc != SPI_OK_INSERT)
        elog(ERROR, "gsb: could not record a conflict: %s", SPI_result_code_string(rc));
    SPI_finish();
    RestoreUser(as_owner);
    ereport(LOG, (errmsg("gsb: conflict %s on table \"%s.%s\" key %s from peer \"%s\": %s",
                         conflict::KindName(d.kind), e->nspname, e->relname, key, s->peer_name,
                         conflict::ResolutionName(d.resolution))));
}

// What is there locally under the key, for the conflict rules.
conflict::Local Inspect(Session *s, RowExec *r, bool found, TupleTableSlot *remote) {
    conflict::Local l;
    l.exists = found;
    if (!found)
        return l;
    TupleTableSlot *local = r->local;
    bool isnull = false;
    TransactionId xmin =
        DatumGetTransactionId(slot_getsysattr(local, MinTransactionIdAttributeNumber, &isnull));
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

// A table whose changes need nothing from the executor but the heap and its
// indexes: no triggers, no stored generated columns. Its inserts are
// batched, and its rows are updated and deleted without locking them first.
bool PlainTable(Relation rel) {
    TupleDesc desc = RelationGetDescr(rel);
    return rel->trigdesc == nullptr &&
           !(desc->constr != nullptr && desc->constr->has_generated_stored);
}

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

// The row found was changed by a local transaction before ModifyFound got
// to it: it is looked up again, afresh.
void ChangedMeanwhile(RowExec *r, TM_Result res) {
    ereport(LOG,
            (errmsg("gsb: row in table \"%s\" concurrently %s, looking it up again",
                    RelationGetRelationName(r->rel), res == TM_Updated ? "updated" : "deleted")));
    r->positioned = false;
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
    conflict::Decision d = conflict::Decide(conflict::Op::kInsert, Inspect(s, r, found, remote),
                                            s->commit_ts, s->local_is_primary);
    if (d.kind != conflict::Kind::kNone)
        RecordConflict(s, rel, e, d, remote, local, remote);
    if (d.resolution == conflict::Resolution::kApplyRemote) {
        if (found)
            ExecSimpleRelationUpdate(r->rri, r->estate, &r->epq, local, remote); // replaces it
        else
            ExecSimpleRelationInsert(r->rri, r->estate, remote);
        s->changes_applied++;
    }
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
constexpr int kBatchMax = 1000;
constexpr int kMultiInsertMin = 4;
} // namespace

void FlushBatch(Session *s);

namespace {

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
        ExecCtx x;
        BeginExec(&x, rel);
        if (rel->rd_att->constr != nullptr)
            for (int i = 0; i < n; i++)
                ExecConstraints(x.rri, batch.slots[i], x.estate);
        table_multi_insert(rel, batch.slots, n, x.estate->es_output_cid, 0, nullptr);
        for (int i = 0; i < n; i++) {
            List *recheck =
                ExecInsertIndexTuples(x.rri, batch.slots[i], x.estate, false, false, nullptr, NIL);
            list_free(recheck);
        }
        EndExec(&x);
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
        ctx->remote_col = i;
        StoreValue(e, i, v, TupleDescAttr(desc, j), &key->tts_values[j], &key->tts_isnull[j]);
    }
    ctx->remote_col = -1;
    ExecStoreVirtualTuple(key);

    bool plain = PlainTable(rel);
    for (int attempt = 0;; attempt++) {
        bool found = FindByKey(r, key, local, !plain);
        if (found)
            FillSlot(e, rel, r->estate, remote, msg.new_tuple, local, false, ctx);
        conflict::Decision d =
            conflict::Decide(conflict::Op::kUpdate, Inspect(s, r, found, found ? remote : nullptr),
                             s->commit_ts, s->local_is_primary);
        bool apply = d.resolution == conflict::Resolution::kApplyRemote && found;
        if (apply)
            PauseAfterFind(attempt);
        if (apply && plain) {
            TM_Result res = ModifyFound(r, local, remote);
            if (res != TM_Ok) {
                ChangedMeanwhile(r, res);
                continue; // look it up and decide again
            }
        } else if (apply) {
            ExecSimpleRelationUpdate(r->rri, r->estate, &r->epq, local, remote);
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
        conflict::Decision d =
            conflict::Decide(conflict::Op::kDelete, Inspect(s, r, found, nullptr), s->commit_ts,
                             s->local_is_primary);
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
        if (apply)
            s->changes_applied++;
        break;
    }
    ChangeEnd(r);
}

void ApplyTruncate(Session *s, const protocol::Message &msg, ErrorContextArg *ctx) {
    List *rels = NIL;
    List *relids = NIL;
    List *relids_logged = NIL;
    for (uint32_t remote_relid : msg.relids) {
        RelMapEntry *e = LookupEntry(remote_relid);
        ResolveEntry(s, e, ctx);
        Relation rel = table_open(e->localrelid, AccessExclusiveLock);
        rels = lappend(rels, rel);
        relids = lappend_oid(relids, e->localrelid);
        if (RelationIsLogicallyLogged(rel))
            relids_logged = lappend_oid(relids_logged, e->localrelid);
    }
    ExecuteTruncateGuts(rels, relids, relids_logged,
                        (msg.truncate_flags & protocol::kTruncateCascade) ? DROP_CASCADE
                                                                          : DROP_RESTRICT,
                        (msg.truncate_flags & protocol::kTruncateRestartIdentity) != 0);
    ListCell *lc;
    foreach (lc, rels)
        table_close(static_cast<Relation>(lfirst(lc)), NoLock);
    s->changes_applied++;
}

} // namespace

void Init(Session *s) {
    GetUserIdAndSecContext(&s->worker_userid, &s->worker_sec_context);
    if (relmap != nullptr)
        return;
    relmap_cxt =
        AllocSetContextCreate(TopMemoryContext, "gsb relation map", ALLOCSET_DEFAULT_SIZES);
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(uint32);
    ctl.entrysize = sizeof(RelMapEntry);
    ctl.hcxt = relmap_cxt;
    relmap = hash_create("gsb relation map", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    CacheRegisterRelcacheCallback(InvalidateLocal, 0);
}

void HandleRelation(Session *s, const protocol::Message &msg) {
    FlushBatch(s); // buffered rows belong to the relation as it was
    CloseRowExec();
    bool found = false;
    uint32 key = msg.relid;
    auto *e = static_cast<RelMapEntry *>(hash_search(relmap, &key, HASH_ENTER, &found));
    if (found && e->cxt != nullptr)
        MemoryContextDelete(e->cxt);
    e->cxt = AllocSetContextCreate(relmap_cxt, "gsb relation", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(e->cxt);
    e->nspname = pnstrdup(msg.nspname.data(), msg.nspname.size());
    e->relname = pnstrdup(msg.relname.data(), msg.relname.size());
    e->ncols = static_cast<int>(msg.columns.size());
    e->colnames = static_cast<char **>(palloc(sizeof(char *) * Max(e->ncols, 1)));
    e->typnames = static_cast<char **>(palloc(sizeof(char *) * Max(e->ncols, 1)));
    for (int i = 0; i < e->ncols; i++) {
        e->colnames[i] = pnstrdup(msg.columns[i].name.data(), msg.columns[i].name.size());
        e->typnames[i] = pnstrdup(msg.columns[i].type_name.data(), msg.columns[i].type_name.size());
    }
    MemoryContextSwitchTo(old);
    e->resolved = false;
    e->localrelid = InvalidOid;
}

void CheckRelation(Session *s, uint32 remote_relid) {
    ErrorContextArg ctx = {s, "a relation", nullptr, -1};
    ErrorContextCallback cb;
    cb.callback = ApplyErrorCallback;
    cb.arg = &ctx;
    cb.previous = error_context_stack;
    error_context_stack = &cb;
    RelMapEntry *e = LookupEntry(remote_relid);
    e->resolved = false;
    ResolveEntry(s, e, &ctx);
    error_context_stack = cb.previous;
}

void FinishTransaction(Session *s) {
    FlushBatch(s);
    CloseRowExec();
    CloseTarget();
}

void ForgetTransaction() {
    row_exec = RowExec{}; // the rollback released it
    target = nullptr;     // and the reference OpenTarget kept
    DiscardBatch();
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
    cb.callback = ApplyErrorCallback;
    cb.arg = &ctx;
    cb.previous = error_context_stack;
    error_context_stack = &cb;
    PushActiveSnapshot(GetTransactionSnapshot());
    Relation rel = table_open(batch.relid, RowExclusiveLock);
    SavedUser saved = BecomeOwner(rel);
    // A few rows go row by row: for them the subtransaction (and its own
    // transaction id) costs more than it saves, which is what made
    // single-row transactions slower than native's.
    if (n >= kMultiInsertMin && TryMultiInsert(rel, n)) {
        s->changes_applied += n;
    } else {
        CommandCounterIncrement();
        TimestampTz txn_ts = s->commit_ts;
        for (int i = 0; i < n; i++) {
            s->commit_ts = batch.commit_ts[i];
            if (InsertUnlessTaken(rel, e->key_index, batch.slots[i])) {
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

void HandleChange(Session *s, const protocol::Message &msg) {
    const char *action = msg.type == protocol::MsgType::kInsert   ? "an insert"
                         : msg.type == protocol::MsgType::kUpdate ? "an update"
                         : msg.type == protocol::MsgType::kDelete ? "a delete"
                                                                  : "a truncate";
    ErrorContextArg ctx = {s, action, nullptr, -1};
    ErrorContextCallback cb;
    cb.callback = ApplyErrorCallback;
    cb.arg = &ctx;
    cb.previous = error_context_stack;
    error_context_stack = &cb;

    PushActiveSnapshot(GetTransactionSnapshot());
    if (msg.type == protocol::MsgType::kTruncate) {
        FlushBatch(s);
        CloseRowExec(); // TRUNCATE refuses a table this session holds open
        CloseTarget();
        ApplyTruncate(s, msg, &ctx);
    } else {
        RelMapEntry *e = LookupEntry(msg.relid);
        ctx.rel = e;
        ResolveEntry(s, e, &ctx);
        Relation rel = OpenTarget(e->localrelid);
        if (msg.type == protocol::MsgType::kInsert && PlainTable(rel)) {
            AddToBatch(s, e, rel, msg, &ctx);
            PopActiveSnapshot();
            error_context_stack = cb.previous;
            return;
        }
        // Anything else keeps the order of changes: the batch goes first.
        FlushBatch(s);
        SavedUser saved = BecomeOwner(rel);
        switch (msg.type) {
        case protocol::MsgType::kInsert:
            ApplyInsert(s, e, rel, msg, &ctx);
            break;
        case protocol::MsgType::kUpdate:
            ApplyUpdate(s, e, rel, msg, &ctx);
            break;
        case protocol::MsgType::kDelete:
            ApplyDelete(s, e, rel, msg, &ctx);
            break;
        default:
            ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                            errmsg("gsb: unexpected message type in a transaction")));
        }
        RestoreUser(saved);
    }
    PopActiveSnapshot();
    CommandCounterIncrement();
    error_context_stack = cb.previous;
}

} // namespace gsb::apply
