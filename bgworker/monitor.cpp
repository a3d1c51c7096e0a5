// monitor.cpp: the site monitor, one background worker per site.
//
// Every gsb.heartbeat_interval it calls gsb._heartbeat() on the peer over a
// connection it keeps open: the two sites exchange their views of the active
// site (the higher term wins), and the monitor learns whether the peer is
// reachable at all. A connection that cannot be made is "unreachable"; a
// peer that answers with an error is reachable but unhealthy, which never
// triggers an automatic failover. The decisions themselves (failover after
// gsb.failover_timeout, failback after gsb.failback_delay, the maintenance
// window) are taken by gsb._monitor_tick() in SQL, in one transaction per
// heartbeat; see the state machine in the README.
//
// Not for: replication (apply_worker.cpp).
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
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

extern "C" {
PGDLLEXPORT void gsb_monitor_main(Datum arg);
}

namespace gsb {
namespace {

struct LocalState {
    bool ready = false; // extension installed and site initialised
    std::string site;
    std::string conninfo; // empty: no peer
    std::string term, active, mode, automatic;
};

// Runs one SPI statement in its own transaction; returns row 0 as strings.
std::optional<std::vector<std::string>> QueryOne(const char *sql, int nargs = 0,
                                                 Oid *types = nullptr, Datum *values = nullptr,
                                                 const char *nulls = nullptr,
                                                 bool read_only = true) {
    int ncols = 0;
    char **cols = nullptr;
    bool found = false;
    PgCall([&] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
        if (OidIsValid(get_extension_oid("gsb", true))) {
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "gsb: SPI_connect failed");
            int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 1);
            if (rc >= 0 && SPI_tuptable != nullptr && SPI_processed == 1) {
                found = true;
                ncols = SPI_tuptable->tupdesc->natts;
                cols = static_cast<char **>(
                    MemoryContextAllocZero(TopMemoryContext, sizeof(char *) * (ncols + 1)));
                for (int i = 0; i < ncols; i++) {
                    char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);
                    cols[i] = v ? MemoryContextStrdup(TopMemoryContext, v) : nullptr;
                }
            }
            SPI_finish();
        }
        PopActiveSnapshot();
        CommitTransactionCommand();
    });
    if (!found)
        return std::nullopt;
    std::vector<std::string> out;
    for (int i = 0; i < ncols; i++)
        out.emplace_back(cols[i] ? cols[i] : "");
    PgCall([&] {
        for (int i = 0; i < ncols; i++)
            if (cols[i])
                pfree(cols[i]);
        pfree(cols);
    });
    return out;
}

LocalState ReadLocal() {
    LocalState st;
    auto row = QueryOne("SELECT s.name, coalesce((SELECT conninfo FROM gsb.peers ORDER BY name "
                        "LIMIT 1), ''), st.term::text, coalesce(st.active_site, ''), st.mode, "
                        "st.automatic::text FROM gsb.site s CROSS JOIN gsb.site_state st");
    if (!row)
        return st;
    st.ready = true;
    st.site = (*row)[0];
    st.conninfo = (*row)[1];
    st.term = (*row)[2];
    st.active = (*row)[3];
    st.mode = (*row)[4];
    st.automatic = (*row)[5];
    return st;
}

void Publish(bool reachable, TimestampTz heartbeat_at, const std::string &error) {
    const char *err = error.c_str();
    PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        s->monitor_pid = MyProcPid;
        s->peer_reachable = reachable;
        if (heartbeat_at != 0)
            s->last_heartbeat_at = heartbeat_at;
        strlcpy(s->monitor_error, err, kErrorLen);
        LWLockRelease(s->lock);
    });
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
    for (;;) {
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            PgCall([] { ProcessConfigFile(PGC_SIGHUP); });
        }
        std::string error;
        try {
            LocalState st = ReadLocal();
            if (st.ready && !st.conninfo.empty()) {
                bool reachable = false;
                std::vector<std::string> peer;
                try {
                    if (conn && conn_info != st.conninfo)
                        conn.reset();
                    if (!conn) {
                        std::string app = "gsb_monitor_" + st.site;
                        int timeout = std::max(1000, 2 * guc_heartbeat_interval_ms);
                        conn = std::make_unique<PeerConnection>(
                            st.conninfo, PeerConnection::Kind::kSql, app.c_str(), timeout);
                        conn_info = st.conninfo;
                    }
                    const char *params[5] = {st.site.c_str(), st.term.c_str(),
                                             st.active.empty() ? nullptr : st.active.c_str(),
                                             st.mode.c_str(), st.automatic.c_str()};
                    PgResult r =
                        conn->Exec("SELECT gsb._heartbeat($1, $2::pg_catalog.int8, $3, $4, "
                                   "$5::pg_catalog.bool)",
                                   5, params);
                    reachable = true;
                    if (r.Rows() == 1 && !r.IsNull(0, 0))
                        peer.emplace_back(r.Get(0, 0));
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
                if (!reachable && (was_reachable || unreachable_since == 0))
                    unreachable_since = now;
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
                Publish(reachable, reachable ? now : 0, error);

                std::string peer_array = peer.empty() ? std::string() : peer[0];
                std::string reach = reachable ? "true" : "false";
                std::string un = std::to_string(unreachable_ms), re = std::to_string(reachable_ms);
                const char *pa = peer_array.c_str();
                // Plain values here: the text array is parsed by SQL, inside
                // the transaction (its input function needs the catalogs).
                Oid types[4] = {BOOLOID, INT8OID, INT8OID, TEXTOID};
                Datum values[4] = {BoolGetDatum(reachable), Int64GetDatum(unreachable_ms),
                                   Int64GetDatum(reachable_ms), (Datum)0};
                char nulls[5] = "    ";
                PgCall([&] {
                    if (*pa)
                        values[3] = CStringGetTextDatum(pa);
                    else
                        nulls[3] = 'n';
                });
                std::optional<std::vector<std::string>> action;
                try {
                    action = QueryOne("SELECT gsb._monitor_tick($1, $2, $3, $4::pg_catalog.text[])",
                                      4, types, values, nulls, false);
                } catch (...) {
                    if (nulls[3] != 'n')
                        PgCall([&] { pfree(DatumGetPointer(values[3])); });
                    throw;
                }
                if (nulls[3] != 'n')
                    PgCall([&] { pfree(DatumGetPointer(values[3])); });
                if (action && !(*action)[0].empty()) {
                    const char *a = (*action)[0].c_str();
                    PgCall([&] { ereport(LOG, (errmsg("gsb site monitor: %s", a))); });
                }
            } else {
                conn.reset();
                Publish(false, 0, st.ready ? "no peer" : "site not initialised");
            }
        } catch (const std::exception &e) {
            std::string msg = e.what();
            PgCall([&] {
                AbortOutOfAnyTransaction();
                ereport(WARNING, (errmsg("gsb site monitor: %s", msg.c_str())));
            });
        }
        long wait = guc_heartbeat_interval_ms;
        PgCall([&] {
            int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait,
                               PG_WAIT_EXTENSION);
            if (rc & WL_LATCH_SET)
                ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        });
    }
}

} // namespace
} // namespace gsb

void gsb_monitor_main(Datum arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(gsb::guc_database, nullptr, 0);
    pgstat_report_appname("gsb monitor");
    gsb::Entry([] { gsb::Run(); });
    proc_exit(0);
}
