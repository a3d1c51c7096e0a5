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
};

LocalState ReadLocal() {
    LocalState st;
    auto rows = RunStatement("SELECT s.name, coalesce(p.conninfo, ''), st.term::text, "
                             "coalesce(st.active_site, ''), st.mode, st.automatic::text, "
                             "coalesce(p.name, '') FROM gsb.site s CROSS JOIN gsb.site_state st "
                             "LEFT JOIN LATERAL (SELECT name, conninfo FROM gsb.peers "
                             "WHERE role IN ('primary', 'backup') AND role <> s.role ORDER BY name "
                             "LIMIT 1) p ON true");
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
    std::unique_ptr<PeerConnection> conn;
    std::string conn_info;
    TimestampTz started = PgCall([] { return GetCurrentTimestamp(); });
    TimestampTz reachable_since = 0, unreachable_since = started;
    bool was_reachable = true;
    TimestampTz pruned_at = 0;
    bool prune_more = false;
    ClockWatch clock_watch;
    for (;;) {
        ReloadConfigIfPending();
        std::string error;
        try {
            LocalState st = ReadLocal();
            if (st.ready && !st.conninfo.empty()) {
                bool reachable = false;
                std::vector<std::string> peer;
                // How long the peer may stay silent, and the deadline of this
                // heartbeat: that silence for a peer that answered last time;
                // a heartbeat interval (a second at least) for one found
                // unreachable already, which is only tried again.
                long silence_ms = guc_failover_timeout_ms > 0
                                      ? guc_failover_timeout_ms
                                      : std::max(10000L, 2L * guc_heartbeat_interval_ms);
                TimestampTz before = PgCall([] { return GetCurrentTimestamp(); });
                TimestampTz deadline = TimestampTzPlusMilliseconds(
                    before, was_reachable
                                ? silence_ms
                                : std::max(1000L, static_cast<long>(guc_heartbeat_interval_ms)));
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
                    PgResult r =
                        conn->ExecBy(deadline, "heartbeat",
                                     "SELECT gsb._heartbeat($1, $2::pg_catalog.int8, $3, $4, "
                                     "$5::pg_catalog.bool)",
                                     5, params);
                    reachable = true;
                    if (r.Rows() == 1 && !r.IsNull(0, 0))
                        peer.emplace_back(r.Get(0, 0));
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
                // this tick (telling it of a failover, say): the tick must
                // not stall on it.
                peer_query_cap_ms = reachable ? 0 : 100;
                auto rows = RunStatement("SELECT gsb._monitor_tick($1, $2, $3, $4)", args, false);
                std::optional<std::string> action;
                if (rows.size() == 1)
                    action = rows[0][0];
                // The peer's view is adopted (or it has been gone too long
                // to matter): this site may now claim what its state says.
                if (reachable || unreachable_ms >= alone_after)
                    Publish(reachable, 0, error, true);
                if (action && !action->empty()) {
                    const char *a = action->c_str();
                    PgCall([&] { ereport(LOG, (errmsg("gsb site monitor: %s", a))); });
                }
            } else {
                conn.reset();
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
        SleepOnLatch(guc_heartbeat_interval_ms);
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
