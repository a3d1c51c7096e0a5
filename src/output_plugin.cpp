// output_plugin.cpp: the logical-decoding output plugin `gsb`.
//
// It streams the changes of tables registered in gsb.tables as 'realtime',
// in the gsb wire protocol (protocol.hpp) or, with option format 'text', in a
// readable form rendered from that same protocol. Changes that carry a
// replication origin were applied by a gsb worker and are never sent, so
// nothing loops between sites. A row that gsb.replicate_ddl writes into
// gsb.ddl_log goes out as a DDL message at its place in the transaction
// (protocol version 3); a table that changes shape is described again at its
// next change (relcache invalidation).
//
// Not for: applying changes (bgworker/) or the daily copy.
#include "pg.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/rmgr.h"
#include "access/xact.h"
#include "access/xlogreader.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/bitmapset.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/output_plugin.h"
#include "replication/reorderbuffer.h"
#include "replication/walsender.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
}

#include <new>
#include <string>
#include <type_traits>

#include "catalog.hpp"
#include "conflict.hpp"
#include "gsb.hpp"
#include "interop.hpp"
#include "protocol.hpp"

extern "C" {
PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);
}

namespace gsb {
namespace {

// Appends to a StringInfo. appendBinaryStringInfo may raise a PostgreSQL
// error; the writer frames above it hold no objects with destructors.
struct StringInfoSink {
    StringInfo s;
    void Append(const char *data, size_t len) {
        appendBinaryStringInfo(s, data, static_cast<int>(len));
    }
};
using PgWriter = protocol::Writer<StringInfoSink>;
// A PostgreSQL error may longjmp through the frames that hold a writer and its
// sink (OutputPluginWrite, the type output functions): that skips no
// destructor only as long as neither has one.
static_assert(std::is_trivially_destructible_v<StringInfoSink> &&
                  std::is_trivially_destructible_v<PgWriter>,
              "a writer must be safe to longjmp over");

// What the decoding session knows about one relation; lives in
// RelationCache (CacheMemoryContext) and is rebuilt after invalidation.
struct RelEntry {
    Oid relid; // hash key
    bool valid;
    bool replicated;
    bool ddl_log; // gsb.ddl_log: its inserts travel as DDL messages
    bool schema_sent;
    int natts;        // attributes of the relation, dropped ones included
    bool *send_att;   // not dropped, not generated
    FmgrInfo *out_fn; // text or binary output function per attribute
    bool *out_binary; // out_fn is a send function
    bool *key_att;    // part of the replica identity key
};

HTAB *relation_cache = nullptr;
bool callbacks_registered = false;

// Relcache callback; registered through InvalidateRelationEntry.
void InvalidateRelation(Oid relid) {
    if (relation_cache == nullptr)
        return;
    if (!OidIsValid(relid)) {
        HASH_SEQ_STATUS status;
        hash_seq_init(&status, relation_cache);
        RelEntry *e;
        while ((e = static_cast<RelEntry *>(hash_seq_search(&status))) != nullptr) {
            e->valid = false;
            e->schema_sent = false;
        }
        return;
    }
    auto *e = static_cast<RelEntry *>(hash_search(relation_cache, &relid, HASH_FIND, nullptr));
    if (e != nullptr) {
        e->valid = false;
        e->schema_sent = false;
    }
}

// Entry points from PostgreSQL (a relcache callback, a memory context reset
// callback) run under Entry like the plugin's callbacks: nothing in them is
// expected to throw, and nothing may escape if it ever does.
void InvalidateRelationEntry(Datum, Oid relid) {
    Entry([&] { InvalidateRelation(relid); });
}

void InitRelationCache() {
    if (relation_cache != nullptr) {
        // Left over from a session that ended with an error: start afresh so
        // that every relation message is sent again.
        hash_destroy(relation_cache);
        relation_cache = nullptr;
    }
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(RelEntry);
    ctl.hcxt = CacheMemoryContext;
    relation_cache =
        hash_create("gsb relation cache", 128, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    if (!callbacks_registered) {
        CacheRegisterRelcacheCallback(InvalidateRelationEntry, 0);
        callbacks_registered = true;
    }
}

// Per-session state, palloc'd in ctx->context. Plain data only.
struct PluginState {
    MemoryContext change_ctx; // reset after every change
    bool text;
    bool binary_values;
    bool include_lsn;
    bool include_xids;
    uint32 proto_version;
    // Version 2 to a walsender: a transaction's messages are gathered in
    // ctx->out and written (one CopyData, one send) at kBatchBytes and at
    // commit. write_open: a write is prepared and holds messages.
    bool batch;
    bool write_open;
    char *origin_site; // this site's name, looked up at the first BEGIN
    bool origin_looked_up;
    StringInfo scratch;             // text form: the binary message to render
    protocol::TextRenderer *render; // text form only
    protocol::Message *message;     // text form only
    int skipped_changes;            // skipped since the last progress update
    // The hybrid logical clock of this session's stream: the time sent in
    // BEGIN and COMMIT (README, Conflicts; conflict.hpp). Built in Startup.
    conflict::HybridClock clock;
};
static_assert(std::is_trivially_destructible_v<conflict::HybridClock>,
              "plugin state lives in a memory context");

// Progress is reported every this many skipped changes, as pgoutput does: a
// clock read per call is cheap, one per change is not free.
constexpr int kSkippedChangesPerProgress = 100;

// Per-transaction state: whether BEGIN has been sent, and the time that
// BEGIN and COMMIT carry (the hybrid clock's stamp of the commit time).
struct TxnState {
    bool sent_begin;
    TimestampTz stamp;
};

PluginState *State(LogicalDecodingContext *ctx) {
    return static_cast<PluginState *>(ctx->output_plugin_private);
}

// Destroys the text form's C++ objects when the decoding context goes away,
// whether it ends cleanly or with an error (a memory context reset callback).
void DestroyTextObjects(void *arg) {
    Entry([&] {
        auto *st = static_cast<PluginState *>(arg);
        if (st->render != nullptr) {
            st->render->~TextRenderer();
            st->render = nullptr;
        }
        if (st->message != nullptr) {
            st->message->~Message();
            st->message = nullptr;
        }
    });
}

void ParseOptions(PluginState *st, List *options) {
    bool seen_format = false, seen_proto = false, seen_binary = false, seen_lsn = false,
         seen_xids = false;
    ListCell *lc;
    foreach (lc, options) {
        DefElem *elem = lfirst_node(DefElem, lc);
        const char *name = elem->defname;
        auto duplicate = [&](bool &seen) {
            if (seen)
                ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                                errmsg("gsb output plugin: option \"%s\" given twice", name)));
            seen = true;
        };
        if (strcmp(name, "format") == 0) {
            duplicate(seen_format);
            const char *v = elem->arg ? defGetString(elem) : "";
            if (strcmp(v, "text") == 0)
                st->text = true;
            else if (strcmp(v, "binary") == 0)
                st->text = false;
            else
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                errmsg("gsb output plugin: unknown format \"%s\"", v),
                                errhint("The format is 'binary' (default) or 'text'.")));
        } else if (strcmp(name, "proto_version") == 0) {
            duplicate(seen_proto);
            const char *v = elem->arg ? defGetString(elem) : "";
            char *end = nullptr;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || n < 0 || n > PG_INT32_MAX)
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                errmsg("gsb output plugin: invalid proto_version \"%s\"", v)));
            if (n < static_cast<long>(protocol::kMinVersion) ||
                n > static_cast<long>(protocol::kVersion))
                ereport(ERROR,
                        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                         errmsg("gsb output plugin: protocol version %ld is not supported", n),
                         errdetail("This server speaks gsb protocol versions %u to %u.",
                                   protocol::kMinVersion, protocol::kVersion),
                         errhint("Run the same gsb version on both sites.")));
            st->proto_version = static_cast<uint32>(n);
        } else if (strcmp(name, "binary") == 0) {
            duplicate(seen_binary);
            st->binary_values = defGetBoolean(elem);
        } else if (strcmp(name, "include_lsn") == 0) {
            duplicate(seen_lsn);
            st->include_lsn = defGetBoolean(elem);
        } else if (strcmp(name, "include_xids") == 0) {
            duplicate(seen_xids);
            st->include_xids = defGetBoolean(elem);
        } else {
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("gsb output plugin: unrecognized option \"%s\"", name),
                            errhint("Options are format, proto_version, binary, include_lsn and "
                                    "include_xids.")));
        }
    }
}

void Startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init) {
    auto *st =
        static_cast<PluginState *>(MemoryContextAllocZero(ctx->context, sizeof(PluginState)));
    st->proto_version = protocol::kVersion;
    new (&st->clock) conflict::HybridClock();
    st->change_ctx = AllocSetContextCreate(ctx->context, "gsb change", ALLOCSET_DEFAULT_SIZES);
    ctx->output_plugin_private = st;
    // Slot creation passes no options; everything else is checked strictly.
    if (!is_init)
        ParseOptions(st, ctx->output_plugin_options);
    // The SQL functions keep one message per row; only a walsender batches.
    st->batch = am_walsender && !st->text && st->proto_version >= 2;
    opt->output_type = st->text ? OUTPUT_PLUGIN_TEXTUAL_OUTPUT : OUTPUT_PLUGIN_BINARY_OUTPUT;
    opt->receive_rewrites = false;

    if (st->text) {
        MemoryContext old = MemoryContextSwitchTo(ctx->context);
        st->scratch = makeStringInfo();
        void *rmem = palloc(sizeof(protocol::TextRenderer));
        void *mmem = palloc(sizeof(protocol::Message));
        MemoryContextCallback *cb =
            static_cast<MemoryContextCallback *>(palloc(sizeof(MemoryContextCallback)));
        MemoryContextSwitchTo(old);
        // The callback first: whatever is built below is destroyed with the
        // context, even if the second constructor throws (under Entry).
        cb->func = DestroyTextObjects;
        cb->arg = st;
        MemoryContextRegisterResetCallback(ctx->context, cb);
        protocol::TextOptions topts;
        topts.include_lsn = st->include_lsn;
        topts.include_xids = st->include_xids;
        st->render = new (rmem) protocol::TextRenderer(topts);
        st->message = new (mmem) protocol::Message();
    }
    InitRelationCache();
}

void Shutdown(LogicalDecodingContext *ctx) {
    if (relation_cache != nullptr) {
        hash_destroy(relation_cache);
        relation_cache = nullptr;
    }
}

// Writes one finished binary message; in batch mode it stays in ctx->out
// until the batch is large enough or the transaction ends (end_of_txn). In
// text form it is decoded again and rendered, so the text that tests read
// went through the real reader.
void Emit(LogicalDecodingContext *ctx, PluginState *st, bool last, bool end_of_txn = false) {
    if (!st->text) {
        // Test hook: a message with a byte too many, as a broken or hostile
        // peer might send; the receiver must refuse it and reconnect.
        if (FaultInjected("plugin_corrupt_message"))
            appendStringInfoChar(ctx->out, '\x7f');
        if (st->batch) {
            if (!end_of_txn && static_cast<size_t>(ctx->out->len) < protocol::kBatchBytes)
                return;
            st->write_open = false;
        }
        OutputPluginWrite(ctx, last);
        return;
    }
    std::string text;
    protocol::Decode(std::string_view(st->scratch->data, st->scratch->len), *st->message);
    text = st->render->Render(*st->message);
    PgCall([&] {
        appendBinaryStringInfo(ctx->out, text.data(), static_cast<int>(text.size()));
        OutputPluginWrite(ctx, last);
    });
}

// The StringInfo that a message is written into: the output itself, or the
// scratch buffer that Emit renders from.
StringInfo Target(LogicalDecodingContext *ctx, PluginState *st, bool last) {
    if (st->batch) {
        if (!st->write_open) {
            OutputPluginPrepareWrite(ctx, last);
            st->write_open = true;
        }
        return ctx->out;
    }
    OutputPluginPrepareWrite(ctx, last);
    if (!st->text)
        return ctx->out;
    resetStringInfo(st->scratch);
    return st->scratch;
}

// A change that is not sent (its table is not replicated). Replaying a large
// transaction of such changes sends nothing, and a walsender reads its
// receiver's messages only when it writes or when it is told of progress: so,
// every kSkippedChangesPerProgress, tell it. In the middle of a transaction
// PostgreSQL 15's walsender then, once half of wal_sender_timeout has passed
// since the receiver last spoke, reads the receiver's replies (answering a
// ping with a keepalive) and sends a keepalive of its own if one is due.
// skipped_xact is false here, as pgoutput passes it for every change: the
// transaction may still send something, and its end is reported at commit.
// Nothing helps while the walsender spills a large transaction to disk (no
// plugin runs then): see the README on logical_decoding_work_mem (t/319).
void SkippedChange(LogicalDecodingContext *ctx, PluginState *st) {
    if (++st->skipped_changes < kSkippedChangesPerProgress)
        return;
    st->skipped_changes = 0;
    OutputPluginUpdateProgress(ctx, false);
}

const char *OriginSite(PluginState *st, LogicalDecodingContext *ctx) {
    if (!st->origin_looked_up) {
        MemoryContext old = MemoryContextSwitchTo(ctx->context);
        st->origin_site = catalog::LookupSiteName();
        MemoryContextSwitchTo(old);
        st->origin_looked_up = true;
    }
    return st->origin_site ? st->origin_site : "";
}

void SendBeginIfNeeded(LogicalDecodingContext *ctx, PluginState *st, ReorderBufferTXN *txn) {
    auto *ts = static_cast<TxnState *>(txn->output_plugin_private);
    if (ts->sent_begin)
        return;
    const char *origin = OriginSite(st, ctx);
    StringInfoSink sink{Target(ctx, st, false)};
    PgWriter w(sink);
    w.Begin(txn->final_lsn, ts->stamp, txn->xid, origin);
    Emit(ctx, st, false);
    ts->sent_begin = true;
}

// Builds (or rebuilds after invalidation) what the session keeps about rel.
RelEntry *GetRelEntry(Relation rel, bool binary_values) {
    Oid relid = RelationGetRelid(rel);
    bool found = false;
    auto *e = static_cast<RelEntry *>(hash_search(relation_cache, &relid, HASH_ENTER, &found));
    if (!found) {
        e->valid = false;
        e->schema_sent = false;
        e->natts = 0;
        e->send_att = e->out_binary = e->key_att = nullptr;
        e->out_fn = nullptr;
    }
    if (e->valid)
        return e;

    e->replicated = catalog::LookupTableMode(relid) == catalog::TableMode::kRealtime;
    e->ddl_log = relid == catalog::GsbRelation("ddl_log");
    if (e->send_att) {
        pfree(e->send_att);
        pfree(e->out_binary);
        pfree(e->key_att);
        pfree(e->out_fn);
        e->send_att = e->out_binary = e->key_att = nullptr;
        e->out_fn = nullptr;
    }
    e->natts = 0;
    if (e->replicated) {
        TupleDesc desc = RelationGetDescr(rel);
        int natts = desc->natts;
        e->send_att = static_cast<bool *>(MemoryContextAllocZero(CacheMemoryContext, natts + 1));
        e->out_binary = static_cast<bool *>(MemoryContextAllocZero(CacheMemoryContext, natts + 1));
        e->key_att = static_cast<bool *>(MemoryContextAllocZero(CacheMemoryContext, natts + 1));
        e->out_fn = static_cast<FmgrInfo *>(
            MemoryContextAllocZero(CacheMemoryContext, sizeof(FmgrInfo) * (natts + 1)));
        // The key: the replica identity index, or the primary key when the
        // identity is FULL (gsb.replicate_table insists on one of them).
        Bitmapset *key = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);
        if (key == nullptr)
            key = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
        for (int i = 0; i < natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped || att->attgenerated)
                continue;
            e->send_att[i] = true;
            e->key_att[i] = bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber, key);
            Oid fn;
            bool varlena;
            // Binary values only for built-in types: their send format is
            // the same on both sites by construction.
            e->out_binary[i] = binary_values && att->atttypid < FirstGenbkiObjectId;
            if (e->out_binary[i])
                getTypeBinaryOutputInfo(att->atttypid, &fn, &varlena);
            else
                getTypeOutputInfo(att->atttypid, &fn, &varlena);
            fmgr_info_cxt(fn, &e->out_fn[i], CacheMemoryContext);
        }
        e->natts = natts;
    }
    e->valid = true;
    e->schema_sent = false;
    return e;
}

void SendRelation(LogicalDecodingContext *ctx, PluginState *st, Relation rel, RelEntry *e) {
    TupleDesc desc = RelationGetDescr(rel);
    uint16 ncols = 0;
    for (int i = 0; i < e->natts; i++)
        ncols += e->send_att[i] ? 1 : 0;
    StringInfoSink sink{Target(ctx, st, false)};
    PgWriter w(sink);
    const char *nsp = get_namespace_name(RelationGetNamespace(rel));
    const char *name = RelationGetRelationName(rel);
    w.RelationHeader(RelationGetRelid(rel), nsp, name, ncols);
    for (int i = 0; i < e->natts; i++) {
        if (!e->send_att[i])
            continue;
        Form_pg_attribute att = TupleDescAttr(desc, i);
        char *type_name = format_type_be(att->atttypid);
        w.RelationColumn(e->key_att[i] ? protocol::kColumnKey : 0, NameStr(att->attname),
                         att->atttypid, att->atttypmod, type_name);
    }
    Emit(ctx, st, false);
    e->schema_sent = true;
}

void WriteTuple(PgWriter &w, RelEntry *e, TupleDesc desc, HeapTuple tuple, bool key_only) {
    uint16 ncols = 0;
    for (int i = 0; i < e->natts; i++)
        ncols += e->send_att[i] ? 1 : 0;
    w.TupleHeader(ncols);
    for (int i = 0; i < e->natts; i++) {
        if (!e->send_att[i])
            continue;
        if (key_only && !e->key_att[i]) {
            w.Null();
            continue;
        }
        bool isnull = false;
        Datum value = heap_getattr(tuple, i + 1, desc, &isnull);
        if (isnull) {
            w.Null();
            continue;
        }
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value))) {
            // Unchanged TOAST value of an update: the peer keeps its own.
            w.UnchangedToast();
            continue;
        }
        if (e->out_binary[i]) {
            bytea *b = SendFunctionCall(&e->out_fn[i], value);
            w.Binary(std::string_view(VARDATA(b), VARSIZE(b) - VARHDRSZ));
        } else {
            char *s = OutputFunctionCall(&e->out_fn[i], value);
            w.Text(s);
        }
    }
}

void BeginTxn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn) {
    auto *ts = static_cast<TxnState *>(MemoryContextAllocZero(ctx->context, sizeof(TxnState)));
    // Every transaction of the peer's that committed here before this one
    // has been observed (FilterByOrigin, at its commit record: decoding runs
    // in WAL order and replays this transaction at its own commit record).
    ts->stamp = State(ctx)->clock.Stamp(txn->xact_time.commit_time);
    txn->output_plugin_private = ts;
}

void CommitTxn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn) {
    auto *st = State(ctx);
    auto *ts = static_cast<TxnState *>(txn->output_plugin_private);
    bool sent = ts != nullptr && ts->sent_begin;
    TimestampTz stamp = ts != nullptr ? ts->stamp : txn->xact_time.commit_time;
    if (ts != nullptr) {
        pfree(ts);
        txn->output_plugin_private = nullptr;
    }
    // The commit reports progress below, whatever was skipped before it.
    st->skipped_changes = 0;
    if (!sent) {
        // Nothing of this transaction was ours to send: let the walsender
        // confirm progress anyway, so an idle slot still advances.
        OutputPluginUpdateProgress(ctx, true);
        return;
    }
    OutputPluginUpdateProgress(ctx, false);
    StringInfoSink sink{Target(ctx, st, true)};
    PgWriter w(sink);
    w.Commit(commit_lsn, txn->end_lsn, stamp);
    Emit(ctx, st, true, true);
}

// gsb.replicate_ddl wrote a row of gsb.ddl_log: the command it ran travels as
// a DDL message at this point of the transaction. A row, not a logical
// decoding message: pg_logical_emit_message is open to every user, while
// only gsb.replicate_ddl writes gsb.ddl_log (its owner's rights), so a
// message cannot be forged to run a command on the peer.
void SendDdl(LogicalDecodingContext *ctx, PluginState *st, ReorderBufferTXN *txn, Relation rel,
             HeapTuple tuple) {
    if (st->proto_version < protocol::kDdlVersion)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("gsb output plugin: a DDL command from gsb.replicate_ddl needs protocol "
                        "version %u, and the receiver asked for version %u",
                        protocol::kDdlVersion, st->proto_version),
                 errdetail("The command is not left out: the stream stops here until the "
                           "receiver speaks version %u.",
                           protocol::kDdlVersion),
                 errhint("Upgrade gsb on the peer first; then it resumes by itself.")));
    TupleDesc desc = RelationGetDescr(rel);
    // gsb.ddl_log(id, at, role, search_path, command, origin)
    bool null_role = false, null_path = false, null_command = false;
    Datum role = heap_getattr(tuple, 3, desc, &null_role);
    Datum path = heap_getattr(tuple, 4, desc, &null_path);
    Datum command = heap_getattr(tuple, 5, desc, &null_command);
    if (null_role || null_command)
        return; // not written by gsb.replicate_ddl (NOT NULL columns)
    MemoryContext old = MemoryContextSwitchTo(st->change_ctx);
    SendBeginIfNeeded(ctx, st, txn);
    char *role_s = TextDatumGetCString(role);
    char *path_s = null_path ? pstrdup("") : TextDatumGetCString(path);
    char *command_s = TextDatumGetCString(command);
    StringInfoSink sink{Target(ctx, st, true)};
    PgWriter w(sink);
    w.Ddl(role_s, path_s, command_s);
    Emit(ctx, st, true);
    MemoryContextSwitchTo(old);
    MemoryContextReset(st->change_ctx);
}

void Change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel,
            ReorderBufferChange *change) {
    auto *st = State(ctx);
    RelEntry *e = GetRelEntry(rel, st->binary_values);
    if (e->ddl_log && change->action == REORDER_BUFFER_CHANGE_INSERT &&
        change->data.tp.newtuple != nullptr) {
        SendDdl(ctx, st, txn, rel, &change->data.tp.newtuple->tuple);
        return;
    }
    if (!e->replicated) {
        SkippedChange(ctx, st);
        return;
    }
    MemoryContext old = MemoryContextSwitchTo(st->change_ctx);
    SendBeginIfNeeded(ctx, st, txn);
    if (!e->schema_sent)
        SendRelation(ctx, st, rel, e);

    TupleDesc desc = RelationGetDescr(rel);
    Oid relid = RelationGetRelid(rel);
    HeapTuple newtup = change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : nullptr;
    HeapTuple oldtup = change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : nullptr;
    bool emit = true;
    switch (change->action) {
    case REORDER_BUFFER_CHANGE_INSERT: {
        if (newtup == nullptr) {
            emit = false;
            break;
        }
        StringInfoSink sink{Target(ctx, st, true)};
        PgWriter w(sink);
        w.Insert(relid);
        WriteTuple(w, e, desc, newtup, false);
        break;
    }
    case REORDER_BUFFER_CHANGE_UPDATE: {
        if (newtup == nullptr) {
            emit = false;
            break;
        }
        StringInfoSink sink{Target(ctx, st, true)};
        PgWriter w(sink);
        w.Update(relid, oldtup != nullptr);
        if (oldtup != nullptr)
            WriteTuple(w, e, desc, oldtup, true);
        WriteTuple(w, e, desc, newtup, false);
        break;
    }
    case REORDER_BUFFER_CHANGE_DELETE: {
        if (oldtup == nullptr) {
            // REPLICA IDENTITY NOTHING was set after registration: the peer
            // cannot find the row, and saying nothing would lose the delete.
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("gsb: delete from \"%s\" carries no key", RelationGetRelationName(rel)),
                     errhint("Give the table a primary key or replica identity index.")));
        }
        StringInfoSink sink{Target(ctx, st, true)};
        PgWriter w(sink);
        w.Delete(relid);
        WriteTuple(w, e, desc, oldtup, true);
        break;
    }
    default:
        emit = false;
        break;
    }
    if (emit)
        Emit(ctx, st, true);
    MemoryContextSwitchTo(old);
    MemoryContextReset(st->change_ctx);
}

void Truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations,
              Relation relations[], ReorderBufferChange *change) {
    auto *st = State(ctx);
    MemoryContext old = MemoryContextSwitchTo(st->change_ctx);
    // Collect the registered relations first; send nothing when none is.
    Oid *relids = static_cast<Oid *>(palloc(sizeof(Oid) * nrelations));
    int n = 0;
    for (int i = 0; i < nrelations; i++) {
        RelEntry *e = GetRelEntry(relations[i], st->binary_values);
        if (!e->replicated)
            continue;
        relids[n++] = RelationGetRelid(relations[i]);
    }
    if (n > 0) {
        SendBeginIfNeeded(ctx, st, txn);
        for (int i = 0; i < nrelations; i++) {
            RelEntry *e = GetRelEntry(relations[i], st->binary_values);
            if (e->replicated && !e->schema_sent)
                SendRelation(ctx, st, relations[i], e);
        }
        uint8 flags = 0;
        if (change->data.truncate.cascade)
            flags |= protocol::kTruncateCascade;
        if (change->data.truncate.restart_seqs)
            flags |= protocol::kTruncateRestartIdentity;
        StringInfoSink sink{Target(ctx, st, true)};
        PgWriter w(sink);
        w.Truncate(flags, relids, static_cast<uint32_t>(n));
        Emit(ctx, st, true);
    } else {
        SkippedChange(ctx, st);
    }
    MemoryContextSwitchTo(old);
    MemoryContextReset(st->change_ctx);
}

// The clock learns the peer's times from the commit records of the
// transactions that the apply worker committed here: PostgreSQL asks this
// filter about each commit record (DecodeCommit) before it replays the
// transaction, in WAL order, and skips a filtered transaction entirely, so
// its commit time reaches no other callback. The record being decoded is
// ctx->reader's. Commits before the point where decoding starts are skipped
// before the filter is asked: after a reconnect the clock knows only the
// peer's transactions applied since (README, Conflicts). Asked for every
// change record too: those are not RM_XACT records and cost one comparison.
void ObserveOriginCommit(LogicalDecodingContext *ctx) {
    XLogReaderState *r = ctx->reader;
    if (r == nullptr || r->record == nullptr || XLogRecGetRmid(r) != RM_XACT_ID ||
        State(ctx) == nullptr)
        return;
    uint8 info = XLogRecGetInfo(r) & XLOG_XACT_OPMASK;
    if (info != XLOG_XACT_COMMIT && info != XLOG_XACT_COMMIT_PREPARED)
        return;
    xl_xact_parsed_commit parsed;
    ParseCommitRecord(XLogRecGetInfo(r), reinterpret_cast<xl_xact_commit *>(XLogRecGetData(r)),
                      &parsed);
    // A commit under an origin that gave no time says nothing about the
    // peer's clock. (gsb's own prune runs under an origin too: its times come
    // from this site's clock, which stamps never go below anyway.)
    if ((parsed.xinfo & XACT_XINFO_HAS_ORIGIN) && parsed.origin_timestamp != 0)
        State(ctx)->clock.Observe(parsed.origin_timestamp);
}

bool FilterByOrigin(LogicalDecodingContext *ctx, RepOriginId origin_id) {
    // A change with an origin was replayed by a gsb apply worker (or another
    // replication tool): it came from elsewhere and must not go back.
    if (origin_id == InvalidRepOriginId)
        return false;
    ObserveOriginCommit(ctx);
    return true;
}

} // namespace
} // namespace gsb

// C entry points: each one runs its body under gsb::Entry, and inside one
// gsb::PgCall, so that a PostgreSQL error raised anywhere in the body (an
// output or send function, a catalog lookup, a client gone while writing)
// unwinds the C++ frames as an exception instead of jumping over them.
extern "C" {

static void gsb_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init) {
    gsb::Entry([&] { gsb::PgCall([&] { gsb::Startup(ctx, opt, is_init); }); });
}
static void gsb_shutdown(LogicalDecodingContext *ctx) {
    gsb::Entry([&] { gsb::PgCall([&] { gsb::Shutdown(ctx); }); });
}
static void gsb_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn) {
    gsb::Entry([&] { gsb::PgCall([&] { gsb::BeginTxn(ctx, txn); }); });
}
static void gsb_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr lsn) {
    gsb::Entry([&] { gsb::PgCall([&] { gsb::CommitTxn(ctx, txn, lsn); }); });
}
static void gsb_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel,
                       ReorderBufferChange *change) {
    gsb::Entry([&] {
        if (gsb::FaultInjected("plugin_change_cxx"))
            throw gsb::Error(ERRCODE_DATA_CORRUPTED, "gsb: injected fault in the output plugin", "",
                             "gsb.fault_injection names plugin_change_cxx.");
        if (gsb::FaultInjected("plugin_change_pg"))
            gsb::PgCall([] {
                ereport(ERROR, (errcode(ERRCODE_DIVISION_BY_ZERO),
                                errmsg("gsb: injected PostgreSQL error in the output plugin")));
            });
        gsb::PgCall([&] { gsb::Change(ctx, txn, rel, change); });
    });
}
static void gsb_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, int nrelations,
                         Relation relations[], ReorderBufferChange *change) {
    gsb::Entry(
        [&] { gsb::PgCall([&] { gsb::Truncate(ctx, txn, nrelations, relations, change); }); });
}
static bool gsb_filter_by_origin(LogicalDecodingContext *ctx, RepOriginId origin_id) {
    // No PgCall: asked for every change record, and nothing in it raises a
    // PostgreSQL error (ParseCommitRecord only reads the record).
    return gsb::Entry([&] { return gsb::FilterByOrigin(ctx, origin_id); });
}

void _PG_output_plugin_init(OutputPluginCallbacks *cb) {
    cb->startup_cb = gsb_startup;
    cb->begin_cb = gsb_begin;
    cb->change_cb = gsb_change;
    cb->truncate_cb = gsb_truncate;
    cb->commit_cb = gsb_commit;
    cb->filter_by_origin_cb = gsb_filter_by_origin;
    cb->shutdown_cb = gsb_shutdown;
}

} // extern "C"
