// apply_worker.cpp: one apply worker per peer.
//
// Start-up order follows PostgreSQL's own apply worker: signals, database
// connection, session_replication_role = replica, empty search_path, the
// replication origin named after the peer, and the start position from that
// origin's progress. Then, in a loop that survives every error:
//   connect to the peer for replication -> (first time only) create the slot
//   on the peer and copy its rows under the slot's exported snapshot ->
//   START_REPLICATION from the origin's progress -> apply transactions, each
//   committed with replorigin_session_origin_lsn/_timestamp set, so progress
//   is crash-safe and nothing is applied twice -> report the flush position
//   only once the local commit is on disk.
// An error (peer unreachable, malformed message, schema drift, a failed
// apply) is logged with its context and shown in gsb.status; the worker
// drops the connection, waits with exponential backoff (kept in the peer's
// shared-memory slot, so a restarted worker waits out what is left of it)
// and starts again from the origin's progress.
//
// Not for: deciding conflicts (conflict.cpp) or executing changes (apply.cpp).
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/origin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "apply.hpp"
#include "gsb.hpp"
#include "interop.hpp"
#include "names.hpp"
#include "peer_connection.hpp"
#include "protocol.hpp"
#include "shared_state.hpp"
#include "spi.hpp"
#include "stream_progress.hpp"
#include "worker_util.hpp"

extern "C" {
PGDLLEXPORT void gsb_apply_main(Datum arg);
}

namespace gsb {
namespace {

constexpr long kFeedbackIntervalMs = 1000;
constexpr long kMaxBackoffMs = 30000;

TimestampTz Now() {
    return PgCall([] { return GetCurrentTimestamp(); });
}

std::string LsnText(XLogRecPtr lsn) {
    return protocol::FormatLsn(lsn);
}

XLogRecPtr ParseLsn(const char *text) {
    bool bad = false;
    XLogRecPtr lsn = PgCall([&] { return pg_lsn_in_internal(text, &bad); });
    if (bad)
        throw Error(ERRCODE_PROTOCOL_VIOLATION, std::string("peer sent an invalid LSN: ") + text);
    return lsn;
}

// Values travel byte for byte: binary text values are verified in this
// database's encoding, not converted. gsb.add_peer refuses a peer whose
// database encoding differs; this catches one changed since (a database
// recreated behind the same connection string) before anything is applied.
void CheckEncoding(PeerConnection &repl) {
    const char *theirs = PQparameterStatus(repl.conn(), "server_encoding");
    const char *ours = GetDatabaseEncodingName();
    if (theirs == nullptr || strcmp(theirs, ours) != 0)
        throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                    std::string("the peer's database encoding is ") +
                        (theirs != nullptr ? theirs : "unknown") + ", this site's is " + ours,
                    {}, "Create the databases of both sites with the same encoding.");
}

// The peer ended the stream. When its walsender stopped with an error (its
// output plugin refused something, e.g. a DDL message for a receiver that
// asked for an older protocol version), that error is what gsb.status must
// show, with its SQLSTATE: it is read for up to a second, never waited for
// longer (the peer is untrusted).
[[noreturn]] void ThrowStreamEnd(PeerConnection &repl) {
    PGconn *conn = repl.conn();
    for (int i = 0; i < 20 && conn != nullptr; i++) {
        if (PQconsumeInput(conn) == 0)
            break;
        if (!PQisBusy(conn)) {
            PgResult r(PQgetResult(conn));
            if (r.get() == nullptr || PQresultStatus(r.get()) != PGRES_FATAL_ERROR)
                break;
            const char *state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
            const char *msg = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
            const char *detail = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_DETAIL);
            const char *hint = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_HINT);
            int code = ERRCODE_CONNECTION_FAILURE;
            if (state != nullptr && strlen(state) == 5)
                code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
            throw Error(code,
                        std::string("the peer ended the replication stream: ") +
                            (msg != nullptr ? msg : "an error"),
                        detail != nullptr ? detail : "", hint != nullptr ? hint : "");
        }
        PgCall([&] {
            (void)WaitLatchOrSocket(
                MyLatch, WL_SOCKET_READABLE | WL_TIMEOUT | WL_LATCH_SET | WL_EXIT_ON_PM_DEATH,
                PQsocket(conn), 50, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
        });
    }
    throw Error(ERRCODE_CONNECTION_FAILURE, "the peer ended the replication stream");
}

// One row of gsb.peers and what the worker needs about this site.
struct PeerConfig {
    bool exists = false;
    std::string local_site;
    bool local_is_primary = false;
    std::string conninfo;
    bool copy_data = true;
    std::string sync_state;
};

class ApplyWorker {
  public:
    explicit ApplyWorker(const char *peer) : peer_(peer) {}
    void Run();

  private:
    PeerConfig ReadConfig();
    void Setup();
    void SetState(PeerState st);
    void RecordError(const std::exception &e);
    void Backoff();
    void WaitOutBackoff();
    void ResetBackoff();
    void InitialSync(PeerConnection &repl, const PeerConfig &cfg);
    void CopyTable(PeerConnection &sql, const std::string &relid, const std::string &nspname,
                   const std::string &relname);
    void Stream(PeerConnection &repl);
    void Process(PeerConnection &repl, const char *data, int len);
    void ApplyMessage(PeerConnection &repl);
    void SendFeedback(PeerConnection &repl, bool force, bool reply_requested);
    void PublishProgress();
    TimestampTz ReadFailoverTime();
    void RecordLateArrival();

    std::string peer_;
    std::string origin_name_;
    std::string slot_name_; // on the peer, named after this site
    RepOriginId origin_ = InvalidRepOriginId;
    apply::Session session_{};
    protocol::Message msg_;
    bool in_txn_ = false;
    // Positions on the current connection only: reset at every connect.
    StreamProgress progress_;
    XLogRecPtr peer_end_ = InvalidXLogRecPtr;
    // With an error shown: how far the stream had come when it was recorded,
    // and whether a transaction was applied since. An apply error is cleared
    // only by progress past it, not by the reconnect that retries it.
    XLogRecPtr error_mark_ = InvalidXLogRecPtr;
    bool committed_since_error_ = false;
    TimestampTz last_feedback_ = 0;
    TimestampTz last_message_at_ = 0;
    // The wait before the next attempt, taken from the peer's shared-memory
    // slot when the error was recorded; backoff_set_: the slot holds a
    // backoff that a working apply must reset.
    long retry_wait_ms_ = 1000;
    bool backoff_set_ = false;
    bool had_error_ = false;
    // Late tail: after this site took over from the failed primary, the
    // primary's transactions committed before that moment that arrive now.
    TimestampTz failover_at_ = 0;
    int64 late_count_ = 0;
    XLogRecPtr catchup_target_ = InvalidXLogRecPtr; // the peer's WAL end at connect
};

// Reads the peer's row and this site's identity, in a short transaction.
PeerConfig ApplyWorker::ReadConfig() {
    PeerConfig cfg;
    auto rows = RunStatement("SELECT s.name, (s.role = 'primary')::text, p.conninfo, "
                             "p.copy_data::text, p.sync_state "
                             "FROM gsb.peers p CROSS JOIN gsb.site s WHERE p.name = $1",
                             {{TEXTOID, peer_}});
    if (rows.size() != 1)
        return cfg;
    const SqlRow &r = rows[0];
    cfg.exists = true;
    cfg.local_site = r[0].value_or("");
    cfg.local_is_primary = r[1] == std::optional<std::string>("true");
    cfg.conninfo = r[2].value_or("");
    cfg.copy_data = r[3] == std::optional<std::string>("true");
    cfg.sync_state = r[4].value_or("init");
    return cfg;
}

// Marks the worker gone in shared memory however the process ends.
void ClearSlotOnExit(int, Datum arg) {
    const char *name = reinterpret_cast<const char *>(DatumGetPointer(arg));
    if (!SharedStateAvailable())
        return;
    SharedState *s = Shared();
    LWLockAcquire(s->lock, LW_EXCLUSIVE);
    PeerSlot *slot = FindPeerSlot(s, name, false);
    if (slot != nullptr && slot->pid == MyProcPid) {
        slot->pid = 0;
        slot->state = PeerState::kDown;
    }
    LWLockRelease(s->lock);
}

void ApplyWorker::Setup() {
    const char *exit_name =
        PgCall([&] { return MemoryContextStrdup(TopMemoryContext, peer_.c_str()); });
    PgCall([&] { before_shmem_exit(ClearSlotOnExit, PointerGetDatum(exit_name)); });
    PgCall([] {
        // Apply as a replica: ordinary triggers and FK checks stay quiet
        // (they ran on the site where the change was made), and no function
        // is found through a schema a user controls.
        SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("search_path", "", PGC_SUSET, PGC_S_OVERRIDE);
        // Durability comes from reporting only flushed positions to the
        // peer, as PostgreSQL's own apply worker does.
        SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("datestyle", "ISO", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("intervalstyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("extra_float_digits", "3", PGC_SUSET, PGC_S_OVERRIDE);
    });
    origin_name_ = OriginName(peer_);
    const char *oname = origin_name_.c_str();
    const char *pname = peer_.c_str();
    // The origin is made only while the peer's row exists, under a lock that
    // gsb.drop_peer must wait for: a worker started during a drop_peer never
    // leaves an origin behind.
    origin_ = PgCall([&] {
        RepOriginId id = spi::InTransaction([&] {
            Oid types[1] = {TEXTOID};
            Datum values[1] = {CStringGetTextDatum(pname)};
            spi::Statement st;
            st.sql = "SELECT 1 FROM gsb.peers WHERE name = $1 FOR KEY SHARE";
            st.nargs = 1;
            st.types = types;
            st.values = values;
            st.read_only = false;
            st.count = 1;
            RepOriginId found = InvalidRepOriginId;
            if (spi::Execute(st) == 1) {
                found = replorigin_by_name(oname, true);
                if (found == InvalidRepOriginId)
                    found = replorigin_create(oname);
            }
            return found;
        });
        if (id != InvalidRepOriginId) {
            replorigin_session_setup(id);
            replorigin_session_origin = id;
        }
        return id;
    });
    session_.origin = origin_;
    session_.msg_ctx = PgCall([] {
        // Reset after every message, and a batch flush uses a few MB in it:
        // keep that much, or each flush maps and faults in fresh pages.
        return AllocSetContextCreate(TopMemoryContext, "gsb apply message", 4 * 1024 * 1024,
                                     4 * 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
    });
    PgCall([&] { apply::Init(&session_); });
}

void ApplyWorker::SetState(PeerState st) {
    const char *name = peer_.c_str();
    int pid = MyProcPid;
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        PeerSlot *slot = FindPeerSlot(s, name, true);
        if (slot != nullptr) {
            slot->pid = pid;
            slot->state = st;
        }
        LWLockRelease(s->lock);
    });
}

void ApplyWorker::PublishProgress() {
    const char *name = peer_.c_str();
    XLogRecPtr received = progress_.received(), applied = progress_.flushed(), end = peer_end_;
    TimestampTz at = last_message_at_;
    // Only progress past the point of the error clears it: a transaction that
    // fails again and again keeps its error shown between attempts.
    bool clear_error =
        had_error_ && progress_.idle() && (committed_since_error_ || applied > error_mark_);
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        PeerSlot *slot = FindPeerSlot(s, name, true);
        if (slot != nullptr) {
            slot->received_lsn = received;
            slot->applied_lsn = applied;
            slot->peer_end_lsn = end;
            slot->last_message_at = at;
            if (clear_error) {
                slot->last_error[0] = '\0';
                slot->last_error_at = 0;
            }
        }
        LWLockRelease(s->lock);
    });
    if (clear_error)
        had_error_ = false;
}

void ApplyWorker::RecordError(const std::exception &e) {
    std::string text = e.what();
    bool connection = false;
    if (auto *ge = dynamic_cast<const Error *>(&e)) {
        connection = ERRCODE_TO_CATEGORY(ge->sqlstate()) == ERRCODE_CONNECTION_EXCEPTION;
        if (!ge->detail().empty())
            text += " (" + ge->detail() + ")";
        if (!ge->context().empty())
            text += "; context: " + ge->context();
    } else if (dynamic_cast<const protocol::ProtocolError *>(&e)) {
        text = "malformed data from peer: " + text;
    }
    // The peer dropped the WAL that this site's slot held (it was down longer
    // than max_slot_wal_keep_size allows): what it held is gone, and only a
    // new copy can bring the sites together again. Never skip silently.
    if (text.find("cannot read from logical replication slot") != std::string::npos ||
        text.find("has been invalidated") != std::string::npos)
        text = "the peer has lost this site's replication slot and the changes it held; "
               "re-seed with SELECT gsb.drop_peer('" +
               peer_ + "') and gsb.add_peer('" + peer_ +
               "', conninfo, copy_data => true). Peer said: " + text;
    had_error_ = true;
    // A lost connection is over once streaming works again; an apply error
    // only once the stream has got past where it failed.
    error_mark_ = connection ? InvalidXLogRecPtr : progress_.received();
    committed_since_error_ = false;
    const char *name = peer_.c_str();
    const char *msg = text.c_str();
    PeerState st = connection ? PeerState::kDown : PeerState::kError;
    // The backoff lives in the peer's slot: a worker restarted meanwhile
    // (after a crash, a kill, a supervisor's restart) goes on from it.
    long backoff = 1000;
    PgCall([&] {
        SharedState *s = Shared();
        TimestampTz now = GetCurrentTimestamp();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        PeerSlot *slot = FindPeerSlot(s, name, true);
        if (slot != nullptr) {
            slot->state = st;
            strlcpy(slot->last_error, msg, kErrorLen);
            slot->last_error_at = now;
            backoff = slot->backoff_ms > 0 ? slot->backoff_ms : 1000;
            slot->backoff_ms = std::min(backoff * 2, kMaxBackoffMs);
            slot->backoff_until = TimestampTzPlusMilliseconds(now, backoff);
        }
        LWLockRelease(s->lock);
        ereport(connection ? LOG : WARNING,
                (errmsg("gsb apply worker for peer \"%s\": %s", name, msg),
                 errdetail("Retrying in %ld ms.", backoff)));
    });
    retry_wait_ms_ = backoff;
    backoff_set_ = true;
}

// Waits before the next attempt (interruptible).
void ApplyWorker::Backoff() {
    SleepOnLatch(retry_wait_ms_);
}

// A worker that starts while its peer's slot says to wait (its predecessor
// failed and then died, or was stopped) waits out the rest first: a peer that
// breaks every worker is not retried faster by restarting them.
void ApplyWorker::WaitOutBackoff() {
    const char *name = peer_.c_str();
    long remaining_ms = 0;
    PgCall([&] {
        SharedState *s = Shared();
        TimestampTz now = GetCurrentTimestamp();
        LWLockAcquire(s->lock, LW_SHARED);
        PeerSlot *slot = FindPeerSlot(s, name, false);
        if (slot != nullptr) {
            if (slot->backoff_ms > 0)
                backoff_set_ = true;
            if (slot->backoff_until > now)
                remaining_ms = (slot->backoff_until - now + 999) / 1000;
        }
        LWLockRelease(s->lock);
    });
    // Never longer than the longest backoff (a clock set back meanwhile).
    remaining_ms = std::min(remaining_ms, kMaxBackoffMs);
    if (remaining_ms <= 0)
        return;
    PgCall([&] {
        ereport(LOG, (errmsg("gsb apply worker for peer \"%s\" waits %ld ms before connecting: "
                             "the backoff after the last failure",
                             name, remaining_ms)));
    });
    // A latch set meanwhile (a reload) does not cut the wait short.
    TimestampTz until = TimestampTzPlusMilliseconds(Now(), remaining_ms);
    for (TimestampTz now = Now(); now < until; now = Now())
        SleepOnLatch(std::max(1L, static_cast<long>((until - now + 999) / 1000)));
}

// Applying works again: the next failure waits 1 s.
void ApplyWorker::ResetBackoff() {
    const char *name = peer_.c_str();
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        PeerSlot *slot = FindPeerSlot(s, name, false);
        if (slot != nullptr) {
            slot->backoff_ms = 0;
            slot->backoff_until = 0;
        }
        LWLockRelease(s->lock);
    });
    backoff_set_ = false;
}

void ApplyWorker::Run() {
    Setup();
    if (origin_ == InvalidRepOriginId) {
        PgCall([&] {
            ereport(LOG, (errmsg("gsb apply worker for peer \"%s\" stops: the peer was dropped",
                                 peer_.c_str())));
        });
        return;
    }
    WaitOutBackoff();
    for (;;) {
        try {
            ReloadConfigIfPending();
            PeerConfig cfg = ReadConfig();
            if (!cfg.exists) {
                PgCall([&] {
                    ereport(LOG, (errmsg("gsb apply worker for peer \"%s\" stops: the peer was "
                                         "dropped",
                                         peer_.c_str())));
                });
                return;
            }
            session_.peer_name = peer_.c_str();
            session_.local_is_primary = cfg.local_is_primary;
            slot_name_ = SlotName(cfg.local_site);
            SetState(PeerState::kConnecting);
            std::string appname = "gsb_apply_" + cfg.local_site;
            PeerConnection repl(cfg.conninfo, PeerConnection::Kind::kReplication, appname.c_str(),
                                ApplyTimeouts(), peer_);
            CheckEncoding(repl);
            if (cfg.sync_state != "ready")
                InitialSync(repl, cfg);
            Stream(repl);
        } catch (const std::exception &e) {
            RecordError(e);
            PgCall([&] {
                AbortOutOfAnyTransaction();
                apply::ForgetTransaction();
                replorigin_session_origin_lsn = InvalidXLogRecPtr;
                replorigin_session_origin_timestamp = 0;
                MemoryContextReset(session_.msg_ctx);
            });
            // Whatever the failed attempt received or committed without a
            // flush is forgotten: the next connection starts from the
            // origin's progress, flushed (see Stream).
            in_txn_ = false;
            Backoff();
        }
    }
}

void ApplyWorker::InitialSync(PeerConnection &repl, const PeerConfig &cfg) {
    SetState(PeerState::kInitialSync);
    // A slot left by an interrupted attempt holds a position we no longer
    // trust: this site's copy was rolled back with it.
    PgResult leftover =
        repl.Exec("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = " +
                  repl.QuoteLiteral(slot_name_));
    if (leftover.Rows() > 0)
        repl.Exec("DROP_REPLICATION_SLOT " + repl.QuoteIdent(slot_name_) + " WAIT");
    std::string create = "CREATE_REPLICATION_SLOT " + repl.QuoteIdent(slot_name_) +
                         " LOGICAL gsb (SNAPSHOT '" + (cfg.copy_data ? "export" : "nothing") + "')";
    // The peer waits there for its running transactions to end: that may
    // take longer than a silence should, so give it five minutes at least.
    long slot_ms = guc_apply_timeout_ms > 0 ? std::max(guc_apply_timeout_ms, 300000) : 0;
    PgResult slot =
        repl.ExecBy(PeerConnection::DeadlineIn(slot_ms), "creating the replication slot", create);
    if (slot.Rows() != 1 || slot.Cols() < 3)
        throw Error(ERRCODE_PROTOCOL_VIOLATION, "unexpected reply to CREATE_REPLICATION_SLOT");
    XLogRecPtr consistent = ParseLsn(slot.Get(0, 1));

    PgCall([] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
    });
    if (cfg.copy_data) {
        std::string snapshot = slot.Get(0, 2);
        std::string appname = "gsb_copy_" + cfg.local_site;
        PeerConnection sql(cfg.conninfo, PeerConnection::Kind::kSql, appname.c_str(),
                           ApplyTimeouts(), peer_);
        sql.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        sql.Exec("SET TRANSACTION SNAPSHOT " + sql.QuoteLiteral(snapshot));
        PgResult tables =
            sql.Exec("SELECT c.oid::pg_catalog.text, n.nspname, c.relname FROM gsb.tables t "
                     "JOIN pg_catalog.pg_class c ON c.oid = t.relid "
                     "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE t.mode = 'realtime' ORDER BY c.oid");
        for (int i = 0; i < tables.Rows(); i++)
            CopyTable(sql, tables.Get(i, 0), tables.Get(i, 1), tables.Get(i, 2));
        sql.Exec("COMMIT");
    }
    // The copy and the stream meet at the slot's consistent point: commit
    // the copy with the origin advanced to it, and mark the peer ready, in
    // one transaction. A crash before this commit leaves nothing behind.
    const char *name = peer_.c_str();
    PgCall([&] {
        PushActiveSnapshot(GetTransactionSnapshot());
        Oid types[1] = {TEXTOID};
        Datum values[1] = {CStringGetTextDatum(name)};
        spi::Statement st;
        st.sql = "UPDATE gsb.peers SET sync_state = 'ready', synced_at = pg_catalog.now() "
                 "WHERE name = $1";
        st.nargs = 1;
        st.types = types;
        st.values = values;
        st.read_only = false;
        st.expect = SPI_OK_UPDATE;
        st.failure = "could not mark the peer ready";
        spi::Execute(st);
        PopActiveSnapshot();
        replorigin_session_origin_lsn = consistent;
        replorigin_session_origin_timestamp = GetCurrentTimestamp();
        CommitTransactionCommand();
        // The worker commits asynchronously, but this commit must be on
        // disk before this site takes writes on top of the copied rows: a
        // crash that lost it would copy again, over those writes.
        XLogFlush(XactLastCommitEnd);
        replorigin_session_origin_lsn = InvalidXLogRecPtr;
        replorigin_session_origin_timestamp = 0;
        ereport(LOG, (errmsg("gsb: initial sync from peer \"%s\" done; streaming from %X/%X", name,
                             LSN_FORMAT_ARGS(consistent))));
    });
}

void ApplyWorker::CopyTable(PeerConnection &sql, const std::string &relid,
                            const std::string &nspname, const std::string &relname) {
    const char *params[1] = {relid.c_str()};
    // The peer's table is read as its owner, and only while it is a plain
    // table: a registered table that its owner turned into a view (or gave a
    // rule) would otherwise run the owner's code with this session's
    // (superuser) rights on the peer.
    PgResult kind = sql.Exec("SELECT c.relkind::pg_catalog.text, r.rolname::pg_catalog.text "
                             "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r "
                             "ON r.oid = c.relowner WHERE c.oid = $1::pg_catalog.oid",
                             1, params);
    if (kind.Rows() != 1 || kind.Cols() != 2 || kind.IsNull(0, 0) || kind.IsNull(0, 1))
        throw Error(ERRCODE_UNDEFINED_TABLE,
                    "table " + nspname + "." + relname + " is gone from the peer", {},
                    "It was dropped on the peer while this site copied it; the copy starts again.");
    if (std::string(kind.Get(0, 0)) != "r")
        throw Error(ERRCODE_WRONG_OBJECT_TYPE,
                    "relation " + nspname + "." + relname + " on the peer is not a plain table", {},
                    "gsb copies a registered relation only while it is an ordinary table; "
                    "unregister it (gsb.unreplicate_table) or make it a table again on the peer.");
    std::string owner = kind.Get(0, 1);
    PgResult cols = sql.Exec("SELECT col, typ, (key_pos IS NOT NULL)::pg_catalog.text "
                             "FROM gsb._columns($1::pg_catalog.oid) WHERE NOT generated "
                             "ORDER BY attnum",
                             1, params);
    if (cols.Cols() != 3)
        throw Error(ERRCODE_PROTOCOL_VIOLATION,
                    "the peer answered the column query with " + std::to_string(cols.Cols()) +
                        " columns, not 3",
                    {}, "The peer runs another version of gsb, or is not a gsb site.");
    // Describe the table as a relation message would, so the rows go through
    // the same checks and the same apply path as the stream.
    protocol::Message rel;
    rel.type = protocol::MsgType::kRelation;
    rel.relid = static_cast<uint32_t>(std::stoul(relid));
    rel.nspname = nspname;
    rel.relname = relname;
    rel.columns.resize(cols.Rows());
    std::string select = "SELECT COALESCE(((EXTRACT(EPOCH FROM "
                         "(pg_catalog.pg_xact_commit_timestamp_origin(xmin)).timestamp) - "
                         "946684800) * 1000000)::pg_catalog.int8, 0)";
    for (int i = 0; i < cols.Rows(); i++) {
        rel.columns[i].name = cols.Get(i, 0);
        rel.columns[i].type_name = cols.Get(i, 1);
        rel.columns[i].flags = std::string(cols.Get(i, 2)) == "t" ? protocol::kColumnKey : 0;
        select += ", " + sql.QuoteIdent(cols.Get(i, 0));
    }
    // Only the rows the peer wrote itself: rows it has from this site are
    // here already, or were deleted here since, and must not come back.
    select += " FROM ONLY " + sql.QuoteIdent(nspname) + "." + sql.QuoteIdent(relname) +
              " WHERE COALESCE((pg_catalog.pg_xact_commit_timestamp_origin(xmin)).roident, 0) = 0";
    session_.xid = 0;
    session_.final_lsn = InvalidXLogRecPtr;
    PgCall([&] {
        apply::HandleRelation(&session_, rel);
        apply::CheckRelation(&session_, rel.relid);
    });
    sql.Exec("SET LOCAL ROLE " + sql.QuoteIdent(owner));
    sql.Exec("DECLARE gsb_copy NO SCROLL CURSOR FOR " + select);
    protocol::Message ins;
    ins.type = protocol::MsgType::kInsert;
    ins.relid = rel.relid;
    ins.new_tuple.values.resize(rel.columns.size());
    for (;;) {
        PgResult rows = sql.Exec("FETCH 1000 FROM gsb_copy");
        if (rows.Rows() == 0)
            break;
        if (rows.Cols() != static_cast<int>(rel.columns.size()) + 1)
            throw Error(ERRCODE_PROTOCOL_VIOLATION,
                        "the peer sent rows of " + std::to_string(rows.Cols()) +
                            " columns for table " + nspname + "." + relname + ", not " +
                            std::to_string(rel.columns.size() + 1));
        for (int r = 0; r < rows.Rows(); r++) {
            session_.commit_ts = std::stoll(rows.Get(r, 0));
            for (size_t c = 0; c < rel.columns.size(); c++) {
                protocol::Value &v = ins.new_tuple.values[c];
                int col = static_cast<int>(c) + 1;
                if (rows.IsNull(r, col)) {
                    v.kind = protocol::ValueKind::kNull;
                    v.data = {};
                } else {
                    v.kind = protocol::ValueKind::kText;
                    v.data = std::string_view(rows.Get(r, col), rows.Length(r, col));
                }
            }
            MemoryContext ctx = session_.msg_ctx;
            PgCall([&] {
                MemoryContext old = MemoryContextSwitchTo(ctx);
                apply::HandleChange(&session_, ins);
                MemoryContextSwitchTo(old);
                MemoryContextReset(ctx);
            });
        }
    }
    sql.Exec("CLOSE gsb_copy");
    sql.Exec("RESET ROLE");
    MemoryContext flush_ctx = session_.msg_ctx;
    PgCall([&] {
        MemoryContext old = MemoryContextSwitchTo(flush_ctx);
        apply::FinishTransaction(&session_);
        MemoryContextSwitchTo(old);
        MemoryContextReset(flush_ctx);
    });
}

// When this backup took over from the peer (the primary) and has not seen
// the primary's late tail since, the time it did; 0 otherwise.
TimestampTz ApplyWorker::ReadFailoverTime() {
    auto rows = RunStatement(
        "SELECT ((EXTRACT(EPOCH FROM st.late_tail_since) - 946684800) * 1000000)::int8::text "
        "FROM gsb.site_state st CROSS JOIN gsb.site s "
        "WHERE st.late_tail_since IS NOT NULL AND s.role = 'backup' "
        "AND EXISTS (SELECT 1 FROM gsb.peers p WHERE p.name = $1 AND p.role = 'primary')",
        {{TEXTOID, peer_}});
    if (rows.size() != 1 || !rows[0][0])
        return 0;
    return std::stoll(*rows[0][0]);
}

// Records how many of the failed primary's transactions arrived late. The
// event is this site's own change (no origin), so it reaches the peer too.
void ApplyWorker::RecordLateArrival() {
    std::string when = protocol::FormatTimestamp(failover_at_);
    std::string detail = std::to_string(late_count_) + " transactions committed on " + peer_ +
                         " before the failover at " + when + " arrived after it";
    PgCall([] { replorigin_session_origin = InvalidRepOriginId; });
    try {
        // One statement: the event (when anything came late) and the end of
        // the wait for the tail.
        RunStatement("WITH done AS (UPDATE gsb.site_state SET late_tail_since = NULL "
                     "RETURNING term) "
                     "INSERT INTO gsb.site_events (from_site, to_site, reason, detail, term) "
                     "SELECT $1, s.name, 'late arrival', $2, done.term "
                     "FROM gsb.site s, done WHERE $3",
                     {{TEXTOID, peer_},
                      {TEXTOID, detail},
                      {BOOLOID, std::string(late_count_ > 0 ? "true" : "false")}},
                     false);
    } catch (...) {
        PgCall([&] { replorigin_session_origin = origin_; });
        throw;
    }
    bool any = late_count_ > 0;
    PgCall([&] {
        replorigin_session_origin = origin_;
        if (any)
            ereport(LOG, (errmsg("gsb: %s", detail.c_str())));
    });
    late_count_ = 0;
    failover_at_ = 0;
}

void ApplyWorker::Stream(PeerConnection &repl) {
    failover_at_ = ReadFailoverTime();
    late_count_ = 0;
    // Everything the peer had written when we connected: once applied up to
    // there, any late tail has arrived.
    PgResult ident = repl.Exec("IDENTIFY_SYSTEM");
    if (ident.Rows() != 1 || ident.Cols() < 3)
        throw Error(ERRCODE_PROTOCOL_VIOLATION, "unexpected reply to IDENTIFY_SYSTEM");
    catchup_target_ = ParseLsn(ident.Get(0, 2));
    // Start from the origin's progress with the local WAL flushed up to it:
    // the start is then durable here, and the first thing confirmed to the
    // peer. Nothing from an earlier connection counts (StreamProgress).
    XLogRecPtr start = PgCall([] { return replorigin_session_get_progress(true); });
    progress_.Reset(start);
    // Test hook: speak protocol version 1 (one message per CopyData).
    uint32_t version = FaultInjected("apply_protocol_1") ? 1 : SpokenProtocolVersion();
    std::string cmd = "START_REPLICATION SLOT " + repl.QuoteIdent(slot_name_) + " LOGICAL " +
                      LsnText(start) + " (proto_version '" + std::to_string(version) +
                      "', binary 'true')";
    PgResult started = repl.Exec(cmd);
    if (PQresultStatus(started.get()) != PGRES_COPY_BOTH)
        throw Error(ERRCODE_PROTOCOL_VIOLATION, "peer did not start streaming");
    SetState(PeerState::kStreaming);
    PgCall([&] {
        ereport(LOG, (errmsg("gsb apply worker for peer \"%s\" streaming from %X/%X "
                             "(protocol version %u)",
                             peer_.c_str(), LSN_FORMAT_ARGS(start), version)));
    });
    last_message_at_ = Now();
    SendFeedback(repl, true, false);

    for (;;) {
        ReloadConfigIfPending();
        if (InterruptPending)
            PgCall([] { CHECK_FOR_INTERRUPTS(); });
        char *buf = nullptr;
        int len = repl.GetCopyData(&buf, kFeedbackIntervalMs);
        if (len > 0) {
            std::unique_ptr<char, void (*)(void *)> owned(buf, PQfreemem);
            last_message_at_ = Now();
            Process(repl, buf, len);
            // Drain what is already here before looking at the clock again.
            continue;
        }
        if (len < 0)
            ThrowStreamEnd(repl);
        TimestampTz now = Now();
        long silent = TimestampDifferenceMilliseconds(last_message_at_, now);
        if (guc_apply_timeout_ms > 0 && silent > guc_apply_timeout_ms)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "the peer has been silent for " + std::to_string(silent) + " ms",
                        "gsb.apply_timeout is " + std::to_string(guc_apply_timeout_ms) + " ms");
        bool ping = guc_apply_timeout_ms > 0 && silent > guc_apply_timeout_ms / 2;
        SendFeedback(repl, ping, ping);
        PublishProgress();
    }
}

void ApplyWorker::Process(PeerConnection &repl, const char *data, int len) {
    protocol::XLogData xlog;
    protocol::Keepalive keepalive;
    protocol::CopyKind kind = protocol::ParseCopyData(std::string_view(data, len), xlog, keepalive);
    if (kind == protocol::CopyKind::kKeepalive) {
        // Everything the peer sent before it has been handled.
        progress_.Processed(keepalive.end_lsn);
        peer_end_ = std::max(peer_end_, keepalive.end_lsn);
        // Caught up with the peer: the late tail, if any, is all here.
        if (!in_txn_ && failover_at_ != 0 && keepalive.end_lsn >= catchup_target_)
            RecordLateArrival();
        SendFeedback(repl, true, false);
        PublishProgress();
        return;
    }
    XLogRecPtr data_end = std::max(xlog.start_lsn, xlog.end_lsn);
    progress_.Received(data_end);
    peer_end_ = std::max(peer_end_, xlog.end_lsn);
    // Protocol version 2 sends a batch of messages in one CopyData.
    size_t offset = 0;
    for (int index = 1; offset < xlog.payload.size(); index++) {
        try {
            offset += protocol::DecodeNext(xlog.payload.substr(offset), msg_);
        } catch (const protocol::ProtocolError &e) {
            // Where in the stream: the data's LSN, the message's place in
            // it, and the remote transaction.
            std::string where =
                std::string(e.what()) + " (message at " + protocol::FormatLsn(xlog.start_lsn) +
                ", number " + std::to_string(index) + " at byte " + std::to_string(offset) +
                " of " + std::to_string(xlog.payload.size()) + ", " +
                (in_txn_ ? "inside remote transaction " + std::to_string(session_.xid)
                         : std::string("between transactions")) +
                ")";
            throw protocol::ProtocolError(where);
        }
        ApplyMessage(repl);
    }
    // Only now, with all of it applied: a COMMIT that travels alone carries
    // its transaction's end, and must not count until it is committed here.
    progress_.Processed(data_end);
}

// Applies msg_, the message just decoded.
void ApplyWorker::ApplyMessage(PeerConnection &repl) {
    MemoryContext ctx = session_.msg_ctx;
    switch (msg_.type) {
    case protocol::MsgType::kBegin:
        if (in_txn_)
            throw protocol::ProtocolError("BEGIN inside a transaction");
        session_.xid = msg_.xid;
        session_.final_lsn = msg_.lsn;
        session_.commit_ts = msg_.commit_time;
        progress_.BeginTransaction();
        if (FaultInjected("apply_begin_error"))
            throw Error(ERRCODE_DATA_CORRUPTED, "injected fault in the apply worker at BEGIN");
        PgCall([] {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
        });
        in_txn_ = true;
        break;
    case protocol::MsgType::kRelation:
        PgCall([&] { apply::HandleRelation(&session_, msg_); });
        break;
    case protocol::MsgType::kInsert:
    case protocol::MsgType::kUpdate:
    case protocol::MsgType::kDelete:
    case protocol::MsgType::kTruncate:
        if (!in_txn_)
            throw protocol::ProtocolError("change outside a transaction");
        if (FaultInjected("apply_change_error"))
            throw Error(ERRCODE_DATA_CORRUPTED, "injected fault in the apply worker");
        PgCall([&] {
            MemoryContext old = MemoryContextSwitchTo(ctx);
            apply::HandleChange(&session_, msg_);
            MemoryContextSwitchTo(old);
            MemoryContextReset(ctx);
        });
        break;
    case protocol::MsgType::kDdl:
        if (!in_txn_)
            throw protocol::ProtocolError("DDL outside a transaction");
        PgCall([&] {
            MemoryContext old = MemoryContextSwitchTo(ctx);
            apply::HandleDdl(&session_, msg_);
            MemoryContextSwitchTo(old);
            MemoryContextReset(ctx);
        });
        break;
    case protocol::MsgType::kCommit: {
        if (!in_txn_)
            throw protocol::ProtocolError("COMMIT outside a transaction");
        XLogRecPtr end = msg_.end_lsn;
        TimestampTz ts = msg_.commit_time;
        PgCall([&] {
            MemoryContext old = MemoryContextSwitchTo(ctx);
            apply::FinishTransaction(&session_);
            MemoryContextSwitchTo(old);
            MemoryContextReset(ctx);
        });
        if (FaultInjected("apply_commit_error"))
            throw Error(ERRCODE_DATA_CORRUPTED, "injected fault in the apply worker at COMMIT");
        XLogRecPtr local_end = PgCall([&] {
            replorigin_session_origin_lsn = end;
            replorigin_session_origin_timestamp = ts;
            CommitTransactionCommand();
            replorigin_session_origin_lsn = InvalidXLogRecPtr;
            replorigin_session_origin_timestamp = 0;
            pgstat_report_stat(false);
            return XactLastCommitEnd;
        });
        in_txn_ = false;
        if (backoff_set_)
            ResetBackoff(); // applying works again: the next error starts from 1 s
        progress_.Committed(end, local_end);
        committed_since_error_ = true;
        if (failover_at_ != 0 && ts < failover_at_)
            late_count_++;
        SendFeedback(repl, false, false);
        break;
    }
    }
}

// Tells the peer how far this site has received, flushed and applied.
void ApplyWorker::SendFeedback(PeerConnection &repl, bool force, bool reply_requested) {
    TimestampTz now = Now();
    if (!force && last_feedback_ != 0 &&
        TimestampDifferenceMilliseconds(last_feedback_, now) < kFeedbackIntervalMs)
        return;
    XLogRecPtr local_flushed = PgCall([] { return GetFlushRecPtr(nullptr); });
    XLogRecPtr flushed = progress_.Flushed(local_flushed);
    repl.PutCopyData(protocol::StandbyStatusUpdate(progress_.received(), flushed, flushed, now,
                                                   reply_requested));
    last_feedback_ = now;
    PublishProgress();
}

} // namespace
} // namespace gsb

void gsb_apply_main(Datum arg) {
    char peer[NAMEDATALEN];
    strlcpy(peer, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
    gsb::WorkerMain("gsb apply", [&] { gsb::ApplyWorker(peer).Run(); });
    proc_exit(0);
}
