// monitor.cpp: the site monitor, one background worker per site.
//
// Every gsb.heartbeat_interval it calls gsb._heartbeat() on the peer over a
// connection it keeps open: the two sites exchange their views of the active
// site (the higher term wins), and the monitor learns whether the peer is
// reachable at all. A connection that cannot be made, or a heartbeat not
// answered in time, is "unreachable"; a peer that answers with an error is
// reachable but unhealthy, which never triggers an automatic failover.
//
// "In time": a heartbeat to a reachable peer must be answered within
// gsb.failover_timeout (10 s when that is 0), and the peer counts as
// unreachable since that heartbeat was sent. So a frozen peer (whose kernel
// still accepts connections and bytes) is found unreachable at the moment
// failover is due, not a deadline later.
//
// The decisions themselves (failover after gsb.failover_timeout, failback
// after gsb.failback_delay, the maintenance window) are taken by
// gsb._monitor_tick() in SQL, in one transaction per heartbeat; see the
// state machine in the README.
//
// Once a second at most it also prunes the history (PruneHistory below):
// rows of gsb.conflicts and gsb.site_events older than gsb.conflict_retention
// and gsb.site_events_retention.
//
// After each heartbeat it measures the peer's clock (MeasureClockOffset):
// gsb.status.clock_offset, and a WARNING when it passes gsb.clock_warning.
//
// Not for: replication (apply_worker.cpp).
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/origin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "extension_version.hpp"
#include "gsb.hpp"
#include "interop.hpp"
#include "peer_connection.hpp"
#include "shared_state.hpp"
#include "spi.hpp"
#include "worker_util.hpp"

extern "C" {
PGDLLEXPORT void gsb_monitor_main(Datum arg);
PG_FUNCTION_INFO_V1(gsb_clock_offset);
}

namespace gsb {
namespace {

struct LocalState {
    bool ready = false; // extension installed and site initialised
    std::string site;
    std::string peer;
    std::string conninfo; // empty: no peer
    std::string term, active, mode, automatic;
    std::string witness, witness_conninfo; // empty: no witness
};

// Whether this site's catalog is 0.2 or later (gsb.witness exists): one
// gsb.so serves a 0.1 catalog until ALTER EXTENSION gsb UPDATE (README,
// Upgrading), and such a site has no witness.
bool CatalogHasWitness() {
    auto rows =
        RunStatement("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'gsb'");
    if (rows.size() != 1 || !rows[0][0])
        return false;
    std::optional<int> cmp = version::Compare(*rows[0][0], "0.2");
    return cmp && *cmp >= 0;
}

LocalState ReadLocal() {
    LocalState st;
#define READ_LOCAL_SQL(witness_columns, witness_join)                                              \
    "SELECT s.name, coalesce(p.conninfo, ''), st.term::text, "                                     \
    "coalesce(st.active_site, ''), st.mode, st.automatic::text, "                                  \
    "coalesce(p.name, ''), " witness_columns                                                       \
    " FROM gsb.site s CROSS JOIN gsb.site_state st " witness_join                                  \
    "LEFT JOIN LATERAL (SELECT name, conninfo FROM gsb.peers "                                     \
    "WHERE role IN ('primary', 'backup') AND role <> s.role ORDER BY name "                        \
    "LIMIT 1) p ON true"
    auto rows = RunStatement(CatalogHasWitness()
                                 ? READ_LOCAL_SQL("coalesce(w.name, ''), coalesce(w.conninfo, '')",
                                                  "LEFT JOIN gsb.witness w ON s.role <> 'witness' ")
                                 : READ_LOCAL_SQL("'', ''", ""));
#undef READ_LOCAL_SQL
    if (rows.size() != 1)
        return st;
    const SqlRow &row = rows[0];
    st.ready = true;
    st.site = row[0].value_or("");
    st.conninfo = row[1].value_or("");
    st.term = row[2].value_or("0");
    st.active = row[3].value_or("");
    st.mode = row[4].value_or("normal");
    st.automatic = row[5].value_or("false");
    st.peer = row[6].value_or("");
    st.witness = row[7].value_or("");
    st.witness_conninfo = row[8].value_or("");
    return st;
}

void Publish(bool reachable, TimestampTz heartbeat_at, const std::string &error, bool confirmed) {
    const char *err = error.c_str();
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        s->monitor_pid = MyProcPid;
        s->peer_reachable = reachable;
        if (confirmed)
            s->state_confirmed = true;
        if (heartbeat_at != 0)
            s->last_heartbeat_at = heartbeat_at;
        strlcpy(s->monitor_error, err, kErrorLen);
        LWLockRelease(s->lock);
    });
}

// The peer's clock offset: the peer's clock_timestamp() minus the midpoint of
// the round trip that asked for it, within half the round trip. Last-writer-
// wins orders concurrent writes by the two clocks (README, Conflicts), so an
// operator must see how far apart they are. The WARNING comes once when the
// offset passes gsb.clock_warning, and a LOG line once it is back within it;
// a measurement whose error bound straddles the threshold changes nothing.
struct ClockWatch {
    bool warned = false;
    TimestampTz measured_at = 0;
};

void MeasureClockOffset(PeerConnection &conn, TimestampTz deadline, const std::string &peer,
                        ClockWatch &watch) {
    TimestampTz before = PgCall([] { return GetCurrentTimestamp(); });
    // At most once a second: the offset moves slowly.
    if (watch.measured_at != 0 && !TimestampDifferenceExceeds(watch.measured_at, before, 1000))
        return;
    PgResult r = conn.ExecBy(deadline, "clock",
                             "SELECT ((EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) - "
                             "946684800) * 1000000)::pg_catalog.int8");
    TimestampTz after = PgCall([] { return GetCurrentTimestamp(); });
    if (r.Rows() != 1 || r.Cols() != 1 || r.IsNull(0, 0))
        return;
    // The peer is untrusted: an answer that is not a number is ignored.
    const char *text = r.Get(0, 0);
    char *end = nullptr;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    // Nor is one more than a century off (no overflow below).
    constexpr int64 kCentury = INT64CONST(100) * 365 * 86400 * 1000000;
    if (errno != 0 || end == text || *end != '\0' || parsed < before - kCentury ||
        parsed > before + kCentury)
        return;
    int64 peer_now = static_cast<int64>(parsed);
    int64 offset = peer_now - (before + (after - before) / 2);
    int64 error = (after - before + 1) / 2;
    watch.measured_at = before;
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        s->clock_offset_us = offset;
        s->clock_offset_error_us = error;
        s->clock_offset_at = after;
        LWLockRelease(s->lock);
    });
    int64 limit = static_cast<int64>(guc_clock_warning_ms) * 1000;
    int64 magnitude = offset < 0 ? -offset : offset;
    const char *name = peer.c_str();
    double secs = static_cast<double>(magnitude) / 1e6, err_ms = static_cast<double>(error) / 1e3;
    const char *direction = offset < 0 ? "behind" : "ahead of";
    if (limit > 0 && !watch.warned && magnitude - error > limit) {
        watch.warned = true;
        PgCall([&] {
            ereport(WARNING,
                    (errmsg("gsb site monitor: the clock of peer \"%s\" is %.3f s %s this "
                            "site's (+/- %.1f ms)",
                            name, secs, direction, err_ms),
                     errdetail("Concurrent writes to the same row are decided by the two sites' "
                               "clocks: the site whose clock is ahead wins them."),
                     errhint("Keep both sites' clocks synchronised (NTP); gsb.clock_warning "
                             "sets this threshold.")));
        });
    } else if (watch.warned && (limit == 0 || magnitude + error <= limit)) {
        watch.warned = false;
        PgCall([&] {
            ereport(LOG, (errmsg("gsb site monitor: the clock of peer \"%s\" is within "
                                 "gsb.clock_warning again (%.3f s %s this site's)",
                                 name, secs, direction)));
        });
    }
}

// The witness's answer to gsb._witness_ping (see src/sql/38_witness.sql).
struct WitnessAnswer {
    bool ok = false;
    int64 sent_us = 0; // when the ping was sent (monotonic)
    std::string term, active, mode, automatic;
    long long peer_term = 0; // what the witness last heard from our peer
    long long peer_silent_ms = 0;
    long long peer_timeout_ms = 0;
};

// The witness's deadline: short, so that a witness that does not answer
// costs a tick little, and a third of the lease at most.
long WitnessDeadlineMs() {
    return std::max(200L, std::min(LeaseMs() / 3, 2000L));
}

WitnessAnswer PingWitness(std::unique_ptr<PeerConnection> &conn, std::string &conn_info,
                          const LocalState &st, std::string &error) {
    WitnessAnswer a;
    a.sent_us = MonotonicNowUs();
    try {
        long wait_ms = WitnessDeadlineMs();
        TimestampTz deadline =
            PgCall([&] { return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms); });
        if (conn && conn_info != st.witness_conninfo)
            conn.reset();
        if (!conn) {
            std::string app = "gsb_monitor_" + st.site;
            PeerTimeouts timeouts;
            timeouts.connect_ms = wait_ms;
            timeouts.query_ms = wait_ms;
            timeouts.link_ms = std::max(1000L, LeaseMs());
            timeouts.setting = "the witness deadline (a third of the lease)";
            conn = std::make_unique<PeerConnection>(st.witness_conninfo, PeerConnection::Kind::kSql,
                                                    app.c_str(), timeouts, st.witness);
            conn_info = st.witness_conninfo;
        }
        std::string timeout = std::to_string(SilenceMs());
        const char *params[7] = {st.site.c_str(), st.peer.c_str(),
                                 st.term.c_str(), st.active.empty() ? nullptr : st.active.c_str(),
                                 st.mode.c_str(), st.automatic.c_str(),
                                 timeout.c_str()};
        PgResult r = conn->ExecBy(
            deadline, "witness ping",
            "SELECT w[3], w[4], w[5], w[6], w[7], w[8], w[9] FROM gsb._witness_ping($1, "
            "$2, $3::pg_catalog.int8, $4, $5, $6::pg_catalog.bool, "
            "$7::pg_catalog.int8) w",
            7, params);
        if (r.Rows() != 1)
            throw Error(ERRCODE_PROTOCOL_VIOLATION, "the witness answered no row");
        a.term = r.Get(0, 0);
        a.active = r.Get(0, 1);
        a.mode = r.Get(0, 2);
        a.automatic = r.Get(0, 3);
        a.peer_term = std::atoll(r.Get(0, 4));
        a.peer_silent_ms = std::atoll(r.Get(0, 5));
        a.peer_timeout_ms = std::atoll(r.Get(0, 6));
        a.ok = true;
    } catch (const Error &e) {
        error = std::string("witness: ") + e.what();
        conn.reset();
    }
    return a;
}

// Whether the peer is still silent now: `peer_silent` (this site's
// heartbeats have not reached it for the failover timeout) and no heartbeat
// of the peer has reached this site for that long either. Read at the moment
// the lease is renewed: a heartbeat of the peer received meanwhile was
// answered with this site's view of then and renewed the peer's lease.
bool StillSilent(bool peer_silent) {
    if (!peer_silent)
        return false;
    int64 heard_us = PgCall([] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_SHARED);
        int64 v = s->peer_heard_us;
        LWLockRelease(s->lock);
        return v;
    });
    return heard_us == 0 || MonotonicNowUs() - heard_us >= SilenceMs() * 1000L;
}

// The witness's evidence that the other site holds no lease for an older
// term than this site's: it has told the witness this term, or neither the
// witness nor this site has heard from it for its failover timeout.
bool WitnessEvidence(const WitnessAnswer &w, long long term, bool peer_silent) {
    return w.peer_term >= term ||
           (peer_silent && w.peer_silent_ms >= std::max<long long>(w.peer_timeout_ms, SilenceMs()));
}

// Before the tick waits on the peer: renews (or takes) the lease from the
// witness's answer alone, with the evidence KeepLease would find in it. A
// heartbeat to an unreachable peer then waits out its deadline (a third of
// the lease) without delaying the lease, so a site that has just become
// active starts serving once the handover gap has passed. Nothing else:
// fenced / unfenced are KeepLease's, after the tick. `peer_silent` is what
// the previous ticks found.
void RenewFromWitness(const LocalState &st, const WitnessAnswer &w, bool peer_silent) {
    bool mine = !st.active.empty() && st.active == st.site;
    if (!mine || !w.ok || w.term != st.term || w.active != st.site)
        return;
    long long term = std::atoll(st.term.c_str());
    LeaseRenew(term, w.sent_us, LeaseMs(), WitnessEvidence(w, term, StillSilent(peer_silent)));
}

// After a tick with a witness: renews the lease from the answers that agree
// that this site is active at its term, and records fenced / unfenced.
// `peer_term`/`peer_active`: the peer's view in its heartbeat answer (empty:
// no answer); `peer_silent`: this site has not heard from the peer for the
// failover timeout.
void KeepLease(const LocalState &st, const WitnessAnswer &w, int64 peer_sent_us,
               const std::string &peer_term, const std::string &peer_active, bool peer_silent,
               bool has_witness) {
    bool mine = !st.active.empty() && st.active == st.site;
    long long term = std::atoll(st.term.c_str());
    // Silence is read again now, after the tick's switch has committed.
    peer_silent = StillSilent(peer_silent);
    bool peer_ok = mine && !peer_term.empty() && peer_term == st.term && peer_active == st.site;
    bool witness_ok = mine && w.ok && w.term == st.term && w.active == st.site;
    // The other site holds no lease for an older term: it agrees (it has
    // this term), or the witness says so (WitnessEvidence).
    bool evidence = peer_ok || (witness_ok && WitnessEvidence(w, term, peer_silent));
    if (peer_ok)
        LeaseRenew(term, peer_sent_us, LeaseMs(), evidence);
    if (witness_ok)
        LeaseRenew(term, w.sent_us, LeaseMs(), evidence);

    int64 now = MonotonicNowUs();
    bool fence = false, unfence = false, serving = false;
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        bool live = mine && s->lease_held && s->lease_term == term && now < s->lease_until_us;
        serving = live && s->lease_from_us <= now;
        bool had = mine && s->lease_held && s->lease_term == term;
        bool was_fenced = s->fenced;
        fence = has_witness && mine && had && !live && !was_fenced;
        // Unfenced once it serves again, or has heard that another site is.
        unfence = was_fenced && (serving || (!mine && (w.ok || !peer_term.empty())));
        if (fence)
            s->fenced = true;
        if (unfence)
            s->fenced = false;
        if (serving && has_witness) {
            s->active_seen_us = now;
            s->active_seen_at = GetCurrentTimestamp();
        }
        LWLockRelease(s->lock);
    });
    if (fence || unfence) {
        std::string detail =
            fence ? "no answer that renews the lease from peer " + st.peer + " or witness " +
                        st.witness + " for " + std::to_string(LeaseMs()) + " ms"
                  : (serving ? "lease renewed at term " + st.term
                             : "this site is no longer the active site (term " + st.term + ")");
        RunStatement("SELECT gsb._record_fence($1, $2)",
                     {{BOOLOID, std::string(fence ? "true" : "false")}, {TEXTOID, detail}}, false);
    }
}

// Without a witness: the last tick at which this site was active by its
// view (split-brain detection, gsb._check_split_brain).
void NoteActiveByView(const LocalState &st) {
    if (st.active.empty() || st.active != st.site)
        return;
    PgCall([] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        if (s->state_confirmed) {
            s->active_seen_us = MonotonicNowUs();
            s->active_seen_at = GetCurrentTimestamp();
        }
        LWLockRelease(s->lock);
    });
}

void PublishWitness(const WitnessAnswer &w, const std::string &error) {
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        s->witness_reachable = w.ok;
        if (w.ok)
            s->witness_answer_at = GetCurrentTimestamp();
        strlcpy(s->witness_error, w.ok ? "" : error.c_str(), kErrorLen);
        LWLockRelease(s->lock);
    });
}

// History pruning. gsb.site_events is replicated, yet each site keeps its own
// copy for as long as its own setting says: the prune's transactions run under
// a replication origin of their own, and the output plugin never sends a
// change that has an origin (FilterByOrigin). The name has a space, which no
// site name has, so it is never a peer's origin ("gsb_<site>").
constexpr const char *kPruneOrigin = "gsb prune";
// Rows per transaction: each batch holds its row locks for a few ms only.
constexpr long kPruneBatch = 2000;
// A prune stops after this long and goes on at the next tick, so that it
// never delays a heartbeat by much.
constexpr long kPruneBudgetMs = 200;

struct PruneTarget {
    const char *due;   // a row older than $1 seconds exists
    const char *prune; // deletes at most $2 of them
    int retention_s;   // 0: keep forever
    bool is_due = false;
};

// Runs sql with ($1 retention in seconds, $2 batch size) in the current
// transaction; returns the rows it found or deleted.
uint64 RunPruneStatement(const char *sql, int retention_s, bool read_only) {
    Oid types[2] = {INT4OID, INT8OID};
    Datum values[2] = {Int32GetDatum(retention_s), Int64GetDatum(kPruneBatch)};
    spi::Statement st;
    st.sql = sql;
    st.nargs = 2;
    st.types = types;
    st.values = values;
    st.read_only = read_only;
    st.count = read_only ? 1 : 0;
    st.failure = "could not prune the history";
    return spi::Execute(st);
}

void ResetPruneOrigin() {
    PgCall([] {
        AbortOutOfAnyTransaction();
        replorigin_session_reset();
        replorigin_session_origin = InvalidRepOriginId;
    });
}

// Deletes history older than its retention: in batches of kPruneBatch rows,
// each in a transaction of its own, for kPruneBudgetMs at most. Returns
// whether rows were left for the next call.
bool PruneHistory() {
    PruneTarget targets[2] = {
        {"SELECT 1 FROM gsb.conflicts WHERE at < pg_catalog.now() - "
         "pg_catalog.make_interval(secs => $1) LIMIT 1",
         "DELETE FROM gsb.conflicts WHERE id IN (SELECT id FROM gsb.conflicts WHERE at < "
         "pg_catalog.now() - pg_catalog.make_interval(secs => $1) ORDER BY at LIMIT $2)",
         guc_conflict_retention_s},
        {"SELECT 1 FROM gsb.site_events WHERE at < pg_catalog.now() - "
         "pg_catalog.make_interval(secs => $1) LIMIT 1",
         "DELETE FROM gsb.site_events WHERE id IN (SELECT id FROM gsb.site_events WHERE at < "
         "pg_catalog.now() - pg_catalog.make_interval(secs => $1) ORDER BY at LIMIT $2)",
         guc_site_events_retention_s}};
    if (guc_conflict_retention_s <= 0 && guc_site_events_retention_s <= 0)
        return false;
    // Whether anything is due, and the origin (made the first time).
    RepOriginId origin = PgCall([&]() -> RepOriginId {
        return spi::InTransaction([&]() -> RepOriginId {
            bool any = false;
            for (PruneTarget &t : targets) {
                t.is_due = t.retention_s > 0 && RunPruneStatement(t.due, t.retention_s, true) > 0;
                any = any || t.is_due;
            }
            if (!any)
                return InvalidRepOriginId;
            RepOriginId id = replorigin_by_name(kPruneOrigin, true);
            if (id == InvalidRepOriginId)
                id = replorigin_create(kPruneOrigin);
            return id;
        });
    });
    if (origin == InvalidRepOriginId)
        return false;
    PgCall([&] {
        replorigin_session_setup(origin);
        replorigin_session_origin = origin;
    });
    bool more = false;
    try {
        TimestampTz stop = PgCall(
            [] { return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kPruneBudgetMs); });
        for (PruneTarget &t : targets) {
            while (t.is_due) {
                uint64 n = PgCall([&] {
                    return spi::InTransaction(
                        [&] { return RunPruneStatement(t.prune, t.retention_s, false); });
                });
                if (n < static_cast<uint64>(kPruneBatch))
                    break;
                if (PgCall([] { return GetCurrentTimestamp(); }) >= stop) {
                    more = true;
                    break;
                }
            }
            if (more)
                break;
        }
    } catch (...) {
        // Never leave the origin set: the tick's own writes (a failover's
        // site event) must reach the peer.
        ResetPruneOrigin();
        throw;
    }
    ResetPruneOrigin();
    return more;
}

void ClearMonitorOnExit(int, Datum) {
    if (!SharedStateAvailable())
        return;
    SharedState *s = Shared();
    LWLockAcquire(s->lock, LW_EXCLUSIVE);
    if (s->monitor_pid == MyProcPid)
        s->monitor_pid = 0;
    LWLockRelease(s->lock);
}

void Run() {
    PgCall([] {
        before_shmem_exit(ClearMonitorOnExit, 0);
        SetConfigOption("search_path", "", PGC_SUSET, PGC_S_OVERRIDE);
    });
    std::unique_ptr<PeerConnection> conn, wconn;
    std::string conn_info, wconn_info;
    TimestampTz started = PgCall([] { return GetCurrentTimestamp(); });
    TimestampTz reachable_since = 0, unreachable_since = started;
    bool was_reachable = true;
    TimestampTz pruned_at = 0;
    bool prune_more = false;
    ClockWatch clock_watch;
    for (;;) {
        ReloadConfigIfPending();
        std::string error;
        bool switched = false;
        try {
            LocalState st = ReadLocal();
            if (st.ready && !st.conninfo.empty()) {
                bool reachable = false;
                std::vector<std::string> peer;
                std::string peer_term, peer_active;
                // With a witness, it is asked first, and its answer renews
                // (or takes) the lease at once (RenewFromWitness), before the
                // peer's heartbeat may wait out its deadline.
                bool has_witness = !st.witness_conninfo.empty();
                WitnessAnswer witness;
                std::string witness_error;
                if (has_witness) {
                    witness = PingWitness(wconn, wconn_info, st, witness_error);
                    PublishWitness(witness, witness_error);
                    TimestampTz asked = PgCall([] { return GetCurrentTimestamp(); });
                    RenewFromWitness(st, witness,
                                     !was_reachable &&
                                         TimestampDifferenceMilliseconds(unreachable_since,
                                                                         asked) >= SilenceMs());
                } else if (wconn) {
                    wconn.reset();
                }
                // How long the peer may stay silent, and the deadline of this
                // heartbeat: that silence for a peer that answered last time;
                // a heartbeat interval (a second at least) for one found
                // unreachable already, which is only tried again.
                long silence_ms = guc_failover_timeout_ms > 0
                                      ? guc_failover_timeout_ms
                                      : std::max(10000L, 2L * guc_heartbeat_interval_ms);
                TimestampTz before = PgCall([] { return GetCurrentTimestamp(); });
                int64 before_us = MonotonicNowUs();
                long wait_ms = was_reachable
                                   ? silence_ms
                                   : std::max(1000L, static_cast<long>(guc_heartbeat_interval_ms));
                // With a witness a tick must not wait on the peer for longer
                // than a third of the lease: the lease is renewed once a tick.
                if (has_witness)
                    wait_ms = std::min(wait_ms, std::max(300L, LeaseMs() / 3));
                TimestampTz deadline = TimestampTzPlusMilliseconds(before, wait_ms);
                try {
                    if (conn && conn_info != st.conninfo)
                        conn.reset();
                    if (!conn) {
                        std::string app = "gsb_monitor_" + st.site;
                        PeerTimeouts timeouts;
                        timeouts.connect_ms = TimestampDifferenceMilliseconds(before, deadline);
                        timeouts.query_ms = silence_ms;
                        timeouts.link_ms = silence_ms;
                        timeouts.setting = guc_failover_timeout_ms > 0
                                               ? "gsb.failover_timeout"
                                               : "gsb.failover_timeout (when 0: 10 s)";
                        conn = std::make_unique<PeerConnection>(st.conninfo,
                                                                PeerConnection::Kind::kSql,
                                                                app.c_str(), timeouts, st.peer);
                        conn_info = st.conninfo;
                    }
                    const char *params[5] = {st.site.c_str(), st.term.c_str(),
                                             st.active.empty() ? nullptr : st.active.c_str(),
                                             st.mode.c_str(), st.automatic.c_str()};
                    PgResult r = conn->ExecBy(deadline, "heartbeat",
                                              "SELECT h, h[3], h[4] FROM gsb._heartbeat($1, "
                                              "$2::pg_catalog.int8, $3, $4, $5::pg_catalog.bool) h",
                                              5, params);
                    reachable = true;
                    if (r.Rows() == 1 && !r.IsNull(0, 0)) {
                        peer.emplace_back(r.Get(0, 0));
                        peer_term = r.Get(0, 1);
                        peer_active = r.Get(0, 2);
                    }
                    try {
                        MeasureClockOffset(*conn, deadline, st.peer, clock_watch);
                    } catch (const Error &) {
                        conn.reset(); // the next heartbeat says what is wrong
                    }
                } catch (const Error &e) {
                    // Only a connection that cannot be had counts as down; a
                    // peer that answers with an error is up but unhealthy.
                    bool down = ERRCODE_TO_CATEGORY(e.sqlstate()) == ERRCODE_CONNECTION_EXCEPTION;
                    reachable = !down;
                    error = std::string("heartbeat: ") + e.what();
                    conn.reset();
                }
                TimestampTz now = PgCall([] { return GetCurrentTimestamp(); });
                if (reachable && (!was_reachable || reachable_since == 0))
                    reachable_since = now;
                // Unreachable since it was asked: the heartbeat that found out
                // may have waited for it until now.
                if (!reachable && (was_reachable || unreachable_since == 0))
                    unreachable_since = before;
                if (reachable != was_reachable) {
                    bool r = reachable;
                    const char *why = error.c_str();
                    PgCall([&] {
                        ereport(LOG, (errmsg("gsb site monitor: peer is %s",
                                             r ? "reachable again" : "unreachable"),
                                      !r && *why ? errdetail("%s", why) : 0));
                    });
                }
                was_reachable = reachable;
                long unreachable_ms =
                    reachable ? 0 : TimestampDifferenceMilliseconds(unreachable_since, now);
                // With a witness, silence is counted from the last sign of
                // the peer either way: its own heartbeat may reach this site
                // (and renew its lease) while ours do not reach it.
                if (has_witness && !reachable) {
                    int64 heard_us = PgCall([] {
                        SharedState *s = Shared();
                        LWLockAcquire(s->lock, LW_SHARED);
                        int64 v = s->peer_heard_us;
                        LWLockRelease(s->lock);
                        return v;
                    });
                    if (heard_us != 0)
                        unreachable_ms =
                            std::min<long>(unreachable_ms, (MonotonicNowUs() - heard_us) / 1000);
                }
                long reachable_ms =
                    reachable ? TimestampDifferenceMilliseconds(reachable_since, now) : 0;
                long alone_after =
                    std::max<long>(guc_failover_timeout_ms, 2L * guc_heartbeat_interval_ms);
                Publish(reachable, reachable ? now : 0, error, false);

                std::vector<SqlArg> args = {
                    {BOOLOID, std::string(reachable ? "true" : "false")},
                    {INT8OID, std::to_string(unreachable_ms)},
                    {INT8OID, std::to_string(reachable_ms)},
                    {TEXTARRAYOID,
                     peer.empty() ? std::nullopt : std::optional<std::string>(peer[0])}};
                // A peer just found unreachable is not waited for again in
                // this tick: the tick must not stall on it (an automatic
                // failover does not tell it at once: the next heartbeat
                // does, after the switch has committed). With a witness,
                // the cap is the witness's deadline: the vote goes through
                // gsb._peer_query too, and must not fail for want of time.
                peer_query_cap_ms = reachable ? 0 : (has_witness ? WitnessDeadlineMs() : 100);
                // A newer view that the witness holds (a term it granted)
                // is taken first; only a higher term counts.
                if (witness.ok && !witness.active.empty() &&
                    std::atoll(witness.term.c_str()) > std::atoll(st.term.c_str()))
                    RunStatement("SELECT gsb._adopt_state($1::pg_catalog.int8, $2, $3, "
                                 "$4::pg_catalog.bool, 'witness')",
                                 {{TEXTOID, witness.term},
                                  {TEXTOID, witness.active},
                                  {TEXTOID, witness.mode},
                                  {TEXTOID, witness.automatic}},
                                 false);
                auto rows = RunStatement("SELECT gsb._monitor_tick($1, $2, $3, $4)", args, false);
                std::optional<std::string> action;
                if (rows.size() == 1)
                    action = rows[0][0];
                // The peer's view is adopted (or it has been gone too long
                // to matter): this site may now claim what its state says.
                if (reachable || unreachable_ms >= alone_after)
                    Publish(reachable, 0, error, true);
                // The lease is kept without a witness too (through the peer):
                // gsb.is_active() reads it only when there is a witness, and
                // a witness added later then finds it live.
                LocalState after = ReadLocal();
                if (after.ready)
                    KeepLease(after, witness, before_us, peer_term, peer_active,
                              !reachable && unreachable_ms >= SilenceMs(), has_witness);
                // This site has just become active at a new term: the next
                // tick comes at once, so that its witness ping takes the
                // lease and its heartbeat tells the peer, without a
                // heartbeat interval's wait.
                switched = after.ready && after.term != st.term && after.active == after.site;
                if (after.ready && !has_witness)
                    NoteActiveByView(after);
                if (action && !action->empty()) {
                    const char *a = action->c_str();
                    PgCall([&] { ereport(LOG, (errmsg("gsb site monitor: %s", a))); });
                }
            } else {
                conn.reset();
                wconn.reset();
                Publish(false, 0, st.ready ? "no peer" : "site not initialised", st.ready);
            }
            TimestampTz now = PgCall([] { return GetCurrentTimestamp(); });
            if (st.ready && (prune_more || TimestampDifferenceExceeds(pruned_at, now, 1000))) {
                pruned_at = now;
                prune_more = false;
                prune_more = PruneHistory();
            }
        } catch (const std::exception &e) {
            std::string msg = e.what();
            PgCall([&] {
                AbortOutOfAnyTransaction();
                ereport(WARNING, (errmsg("gsb site monitor: %s", msg.c_str())));
            });
        }
        SleepOnLatch(switched ? 0 : guc_heartbeat_interval_ms);
    }
}

} // namespace
} // namespace gsb

void gsb_monitor_main(Datum arg) {
    gsb::WorkerMain("gsb monitor", [] { gsb::Run(); });
    proc_exit(0);
}

// gsb._clock_offset(): the monitor's last measurement of the peer's clock
// (gsb.status.clock_offset, clock_offset_error); no row before the first.
Datum gsb_clock_offset(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    LWLockAcquire(s->lock, LW_SHARED);
    int64 offset = s->clock_offset_us, error = s->clock_offset_error_us;
    TimestampTz at = s->clock_offset_at;
    LWLockRelease(s->lock);
    if (at == 0)
        PG_RETURN_VOID();
    Interval *off = static_cast<Interval *>(palloc0(sizeof(Interval)));
    off->time = offset;
    Interval *err = static_cast<Interval *>(palloc0(sizeof(Interval)));
    err->time = error;
    Datum values[3] = {IntervalPGetDatum(off), IntervalPGetDatum(err), TimestampTzGetDatum(at)};
    bool nulls[3] = {false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    PG_RETURN_VOID();
}
