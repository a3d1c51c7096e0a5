// apply_relation.cpp: the relation map and type input (see apply_relation.hpp).
//
// The map lives in its own context under TopMemoryContext; an entry's
// context is rebuilt at each relation message, and the local side is
// resolved again after a relcache invalidation of its table.
#include "pg.hpp"

extern "C" {
#include "access/genam.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "executor/spi.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include "apply_relation.hpp"
#include "binary_values.hpp"
#include "catalog.hpp"
#include "spi.hpp"

namespace gsb::apply {
namespace {

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

// SPI needs an active snapshot; the initial copy resolves its relations
// without one.
bool EnsureSnapshot() {
    if (ActiveSnapshotSet())
        return false;
    PushActiveSnapshot(GetTransactionSnapshot());
    return true;
}

// Where a column that the peer describes as (name, type) went here, when a
// replicated DDL dropped, renamed or retyped it (gsb.ddl_columns). Rows that
// the peer wrote before it ran the same command are still in that shape.
struct DdlColumn {
    bool dropped; // the values are discarded
    int attnum;   // else the local column (1-based); InvalidAttrNumber: not listed
};

struct DdlStep {
    bool found;
    char *new_name; // nullptr: dropped
    char *new_type;
};

void ReadDdlStep(void *arg) {
    auto *step = static_cast<DdlStep *>(arg);
    if (SPI_processed != 1)
        return;
    step->found = true;
    // Copied out of SPI's memory, which SPI_finish releases.
    char *name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    char *type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
    auto copy = [](const char *v) -> char * {
        if (v == nullptr)
            return nullptr;
        size_t len = strlen(v) + 1;
        char *out = static_cast<char *>(SPI_palloc(len));
        memcpy(out, v, len);
        return out;
    };
    step->new_name = copy(name);
    step->new_type = copy(type);
}

DdlColumn FollowDdlColumns(Relation rel, const char *name, const char *type) {
    DdlColumn out = {false, InvalidAttrNumber};
    const char *cur_name = name, *cur_type = type;
    // A 0.1 catalog (before ALTER EXTENSION gsb UPDATE) has no replicated DDL.
    if (!OidIsValid(catalog::GsbRelation("ddl_columns")))
        return out;
    // A column renamed or retyped again: follow it, a few steps at most.
    for (int step = 0; step < 16; step++) {
        DdlStep st = {false, nullptr, nullptr};
        Oid types[3] = {OIDOID, TEXTOID, TEXTOID};
        Datum values[3] = {ObjectIdGetDatum(RelationGetRelid(rel)), CStringGetTextDatum(cur_name),
                           CStringGetTextDatum(cur_type)};
        spi::Statement q;
        q.sql = "SELECT new_name, new_type FROM gsb.ddl_columns "
                "WHERE relid = $1 AND attname = $2 AND old_type = $3 "
                "ORDER BY at DESC LIMIT 1";
        q.nargs = 3;
        q.types = types;
        q.values = values;
        q.read_only = false;
        q.failure = "could not read gsb.ddl_columns";
        bool pushed = EnsureSnapshot();
        spi::Execute(q, ReadDdlStep, &st);
        if (pushed)
            PopActiveSnapshot();
        if (!st.found)
            return out;
        if (st.new_name == nullptr) {
            out.dropped = true;
            return out;
        }
        cur_name = st.new_name;
        cur_type = st.new_type;
        AttrNumber attnum = attnameAttNum(rel, cur_name, false);
        if (attnum > 0) {
            Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
            if (strcmp(format_type_be(att->atttypid), cur_type) == 0) {
                out.attnum = attnum;
                return out;
            }
        }
    }
    return out;
}

// The transactions of the most recent replicated DDL commands here, read
// again whenever a relation map entry resolves (every command that rewrites
// a table invalidates it first).
constexpr int kDdlXids = 16;
TransactionId ddl_xids[kDdlXids];
int n_ddl_xids = 0;

void ReadDdlXids(void *) {
    n_ddl_xids = 0;
    for (uint64 i = 0; i < SPI_processed && n_ddl_xids < kDdlXids; i++) {
        char *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
        if (v == nullptr)
            continue;
        uint64 full = strtoull(v, nullptr, 10);
        ddl_xids[n_ddl_xids++] = static_cast<TransactionId>(full & 0xFFFFFFFFu);
    }
}

void LoadDdlXids() {
    n_ddl_xids = 0;
    // A 0.1 catalog (before ALTER EXTENSION gsb UPDATE) has no replicated DDL.
    if (!OidIsValid(catalog::GsbRelation("ddl_log")))
        return;
    bool pushed = EnsureSnapshot();
    spi::Statement q;
    q.sql = "SELECT xid::pg_catalog.text FROM gsb.ddl_log ORDER BY id DESC LIMIT 16";
    q.read_only = false;
    q.failure = "could not read gsb.ddl_log";
    spi::Execute(q, ReadDdlXids, nullptr);
    if (pushed)
        PopActiveSnapshot();
}

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
} // namespace

void PushErrorContext(ErrorContextCallback *cb, ErrorContextArg *arg) {
    cb->callback = ApplyErrorCallback;
    cb->arg = arg;
    cb->previous = error_context_stack;
    error_context_stack = cb;
}

void InitRelationMap() {
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

void DefineRelation(const protocol::Message &msg) {
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
    e->conv = static_cast<bool *>(palloc0(sizeof(bool) * Max(e->ncols, 1)));
    e->conv_recv = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * Max(e->ncols, 1)));
    e->conv_recv_ioparam = static_cast<Oid *>(palloc0(sizeof(Oid) * Max(e->ncols, 1)));
    e->conv_out = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * Max(e->ncols, 1)));
    for (int i = 0; i < e->ncols; i++) {
        ctx->remote_col = i;
        int attnum = attnameAttNum(rel, e->colnames[i], false);
        bool same_type =
            attnum > 0 &&
            strcmp(format_type_be(TupleDescAttr(desc, attnum - 1)->atttypid), e->typnames[i]) == 0;
        if (!same_type) {
            // Not as the peer describes it: a replicated DDL may have
            // changed it here after the peer wrote this row.
            DdlColumn d = FollowDdlColumns(rel, e->colnames[i], e->typnames[i]);
            if (d.dropped) {
                e->attmap[i] = -1;
                continue;
            }
            if (d.attnum != InvalidAttrNumber) {
                attnum = d.attnum;
                Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
                if (strcmp(format_type_be(att->atttypid), e->typnames[i]) != 0) {
                    Oid old_type = InvalidOid;
                    int32 old_typmod = -1;
                    parseTypeString(e->typnames[i], &old_type, &old_typmod, true);
                    if (!OidIsValid(old_type))
                        ereport(ERROR,
                                (errcode(ERRCODE_DATATYPE_MISMATCH),
                                 errmsg("gsb: column \"%s\" of table \"%s.%s\" was of type %s "
                                        "before a replicated DDL, and that type is gone here",
                                        e->colnames[i], e->nspname, e->relname, e->typnames[i])));
                    Oid fn;
                    bool varlena;
                    getTypeBinaryInputInfo(old_type, &fn, &e->conv_recv_ioparam[i]);
                    fmgr_info_cxt(fn, &e->conv_recv[i], e->cxt);
                    getTypeOutputInfo(old_type, &fn, &varlena);
                    fmgr_info_cxt(fn, &e->conv_out[i], e->cxt);
                    e->conv[i] = true;
                }
                Form_pg_attribute a = TupleDescAttr(desc, attnum - 1);
                if (a->attgenerated)
                    ereport(ERROR,
                            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                             errmsg("gsb: column \"%s\" of table \"%s.%s\" is generated on this "
                                    "site but not on peer \"%s\"",
                                    NameStr(a->attname), e->nspname, e->relname, s->peer_name)));
                e->attmap[i] = attnum - 1;
                mapped[attnum - 1] = true;
                continue;
            }
        }
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
    Oid idx = catalog::KeyIndex(rel);
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
    LoadDdlXids();
}

bool WrittenByReplicatedDdl(TransactionId xmin) {
    if (!TransactionIdIsNormal(xmin))
        return false;
    // gsb.ddl_log.xid is the (sub)transaction the command ran in: the xmin
    // its rewrite left.
    for (int i = 0; i < n_ddl_xids; i++)
        if (TransactionIdEquals(xmin, ddl_xids[i]))
            return true;
    return false;
}

// Runs a type's receive function on exactly the bytes of one value from the
// peer: a private, NUL-terminated copy (as receive functions expect), not
// initStringInfo's 1 KB per value; bytes the function leaves unread are an
// error (the peer is untrusted).
static Datum ReceiveExact(FmgrInfo *fn, Oid ioparam, int32 typmod, const std::string_view &data) {
    int len = static_cast<int>(data.size());
    StringInfoData buf;
    buf.data = static_cast<char *>(palloc(len + 1));
    memcpy(buf.data, data.data(), len);
    buf.data[len] = '\0';
    buf.len = len;
    buf.maxlen = len + 1;
    buf.cursor = 0;
    Datum d = ReceiveFunctionCall(fn, &buf, ioparam, typmod);
    if (buf.cursor != buf.len)
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                        errmsg("gsb: incorrect binary data format in a value from the peer")));
    return d;
}

// Converts one remote value into the slot's column.
void StoreValue(RelMapEntry *e, int remote_col, const protocol::Value &v, Form_pg_attribute att,
                Datum *value, bool *isnull) {
    int j = e->attmap[remote_col];
    if (e->conv[remote_col] && v.kind == protocol::ValueKind::kBinary) {
        // A value of the column's type before a replicated DDL changed it:
        // through the old type's text form, as ALTER ... TYPE converted
        // the rows that were here.
        Datum old =
            ReceiveExact(&e->conv_recv[remote_col], e->conv_recv_ioparam[remote_col], -1, v.data);
        char *text = OutputFunctionCall(&e->conv_out[remote_col], old);
        *value = InputFunctionCall(&e->in_fn[j], text, e->in_ioparam[j], att->atttypmod);
        *isnull = false;
        return;
    }
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
        *value = ReceiveExact(&e->recv_fn[j], e->recv_ioparam[j], att->atttypmod, v.data);
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
        if (j < 0)
            continue; // dropped here by a replicated DDL: discarded
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

} // namespace gsb::apply
