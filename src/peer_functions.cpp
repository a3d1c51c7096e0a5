// peer_functions.cpp: SQL-callable functions about peers that need gsb.so:
// queries on the peer through the one connection helper, the apply
// workers' shared status, and stopping or waking workers. The SQL API
// (gsb.add_peer, gsb.drop_peer, gsb.verify, ...) is built on these in the
// install script.
#include "pg.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "pgstat.h"
}

#include <climits>
#include <csignal>
#include <string>
#include <vector>

#include "gsb.hpp"
#include "interop.hpp"
#include "peer_connection.hpp"
#include "protocol.hpp"
#include "shared_state.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_peer_login_uses_password);
PG_FUNCTION_INFO_V1(gsb_protocol_version);
PG_FUNCTION_INFO_V1(gsb_peer_query);
PG_FUNCTION_INFO_V1(gsb_worker_status);
PG_FUNCTION_INFO_V1(gsb_stop_worker);
PG_FUNCTION_INFO_V1(gsb_wake_supervisor);
PG_FUNCTION_INFO_V1(gsb_release_peer);
PG_FUNCTION_INFO_V1(gsb_state_confirmed);
PG_FUNCTION_INFO_V1(gsb_monitor_status);
}

Datum gsb_protocol_version(PG_FUNCTION_ARGS) {
    PG_RETURN_INT32(static_cast<int32>(gsb::SpokenProtocolVersion()));
}

// The deadlines of an SQL function's session on the peer: timeout_ms
// (gsb.peer_timeout) to connect and for the link, total_ms for the answer.
static gsb::PeerTimeouts SqlFunctionTimeouts(long timeout_ms, long total_ms) {
    gsb::PeerTimeouts timeouts;
    timeouts.connect_ms = timeout_ms;
    timeouts.query_ms = total_ms;
    timeouts.link_ms = timeout_ms;
    timeouts.setting = "gsb.peer_timeout";
    return timeouts;
}

// gsb._peer_query(conninfo text, query text, params text[], runs_for interval)
// RETURNS SETOF text[]
// Runs one query on the peer and returns its rows as text arrays. Connecting
// and the answer together take at most gsb.peer_timeout plus runs_for (the
// time the query is meant to run there, e.g. a wait it makes): past that,
// an error of class 08.
Datum gsb_peer_query(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("gsb: a peer connection string and a query are required")));
    char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
    int nparams = 0;
    Datum *pvalues = nullptr;
    bool *pnulls = nullptr;
    if (!PG_ARGISNULL(2))
        deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &pvalues,
                          &pnulls, &nparams);
    char **params = static_cast<char **>(palloc0(sizeof(char *) * (nparams + 1)));
    for (int i = 0; i < nparams; i++)
        params[i] = pnulls[i] ? nullptr : TextDatumGetCString(pvalues[i]);
    int64 runs_for_ms = 0;
    if (PG_NARGS() > 3 && !PG_ARGISNULL(3)) {
        Interval *span = PG_GETARG_INTERVAL_P(3);
        // Months as 30 days, as interval comparison counts them.
        int64 days = static_cast<int64>(span->month) * DAYS_PER_MONTH + span->day;
        runs_for_ms = Max(int64{0}, days * SECS_PER_DAY * 1000 + span->time / 1000);
        runs_for_ms = Min(runs_for_ms, int64{INT_MAX});
    }
    long timeout_ms = gsb::guc_peer_timeout_ms;
    if (gsb::peer_query_cap_ms > 0)
        timeout_ms = Min(timeout_ms, gsb::peer_query_cap_ms);
    long total_ms = Min(static_cast<int64>(timeout_ms) + runs_for_ms, int64{INT_MAX});
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    return gsb::Entry([&] {
        gsb::PeerTimeouts timeouts = SqlFunctionTimeouts(timeout_ms, total_ms);
        TimestampTz deadline = gsb::PeerConnection::DeadlineIn(total_ms);
        gsb::PeerConnection conn(conninfo, gsb::PeerConnection::Kind::kSql, "gsb", timeouts);
        gsb::PgResult r = conn.ExecBy(deadline, nullptr, query, nparams, params);
        int rows = r.Rows(), cols = r.Cols();
        gsb::PgCall([&] {
            Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * Max(cols, 1)));
            bool *enulls = static_cast<bool *>(palloc(sizeof(bool) * Max(cols, 1)));
            int dims[1] = {cols};
            int lbs[1] = {1};
            for (int i = 0; i < rows; i++) {
                for (int c = 0; c < cols; c++) {
                    enulls[c] = PQgetisnull(r.get(), i, c) != 0;
                    elems[c] = enulls[c]
                                   ? (Datum)0
                                   : PointerGetDatum(cstring_to_text_with_len(
                                         PQgetvalue(r.get(), i, c), PQgetlength(r.get(), i, c)));
                }
                Datum value = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs,
                                                                 TEXTOID, -1, false, TYPALIGN_INT));
                bool isnull = false;
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
            }
        });
        return (Datum)0;
    });
}

// gsb._peer_login_uses_password(conninfo text) RETURNS boolean
// Connects to the peer (within gsb.peer_timeout) and says whether the peer
// asked for the password to let us in. add_peer requires it of a caller who
// is not a superuser, as dblink does: otherwise the server would reach the
// peer with its own credentials (trust, peer, its .pgpass or certificates)
// on that caller's behalf.
Datum gsb_peer_login_uses_password(PG_FUNCTION_ARGS) {
    char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    long timeout_ms = gsb::guc_peer_timeout_ms;
    return gsb::Entry([&] {
        gsb::PeerConnection conn(conninfo, gsb::PeerConnection::Kind::kSql, "gsb",
                                 SqlFunctionTimeouts(timeout_ms, timeout_ms));
        return BoolGetDatum(PQconnectionUsedPassword(conn.conn()) != 0);
    });
}

// gsb._worker_status(): one row per apply worker slot in shared memory.
Datum gsb_worker_status(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    gsb::PeerSlot copy[gsb::kMaxPeers];
    LWLockAcquire(s->lock, LW_SHARED);
    memcpy(copy, s->peers, sizeof copy);
    LWLockRelease(s->lock);
    for (const gsb::PeerSlot &p : copy) {
        if (!p.in_use)
            continue;
        Datum values[8];
        bool nulls[8] = {false, false, false, false, false, false, false, false};
        values[0] = CStringGetTextDatum(p.name);
        values[1] =
            CStringGetTextDatum(gsb::PeerStateName(p.pid != 0 ? p.state : gsb::PeerState::kDown));
        values[2] = LSNGetDatum(p.received_lsn);
        nulls[2] = p.received_lsn == InvalidXLogRecPtr;
        values[3] = LSNGetDatum(p.applied_lsn);
        nulls[3] = p.applied_lsn == InvalidXLogRecPtr;
        values[4] = LSNGetDatum(p.peer_end_lsn);
        nulls[4] = p.peer_end_lsn == InvalidXLogRecPtr;
        values[5] = TimestampTzGetDatum(p.last_message_at);
        nulls[5] = p.last_message_at == 0;
        values[6] = CStringGetTextDatum(p.last_error);
        nulls[6] = p.last_error[0] == '\0';
        values[7] = Int32GetDatum(p.pid);
        nulls[7] = p.pid == 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    PG_RETURN_VOID();
}

// gsb._stop_worker(peer text, suppress interval) RETURNS boolean
// Keeps the supervisor from starting the peer's worker for a while, stops a
// running one and waits (up to 10 s) until it has exited.
Datum gsb_stop_worker(PG_FUNCTION_ARGS) {
    char *peer = text_to_cstring(PG_GETARG_TEXT_PP(0));
    Interval *suppress = PG_GETARG_INTERVAL_P(1);
    if (!gsb::SharedStateAvailable())
        PG_RETURN_BOOL(true);
    gsb::SharedState *s = gsb::Shared();
    TimestampTz now = GetCurrentTimestamp();
    TimestampTz until = DatumGetTimestampTz(DirectFunctionCall2(
        timestamptz_pl_interval, TimestampTzGetDatum(now), IntervalPGetDatum(suppress)));
    TimestampTz deadline = TimestampTzPlusMilliseconds(now, 10000);
    for (;;) {
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        gsb::PeerSlot *slot = gsb::FindPeerSlot(s, peer, true);
        int pid = 0;
        if (slot != nullptr) {
            slot->suppress_until = until;
            pid = slot->pid;
        }
        LWLockRelease(s->lock);
        if (pid == 0 || kill(pid, 0) != 0)
            PG_RETURN_BOOL(true);
        kill(pid, SIGTERM);
        if (GetCurrentTimestamp() > deadline)
            PG_RETURN_BOOL(false);
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

Datum gsb_wake_supervisor(PG_FUNCTION_ARGS) {
    gsb::WakeSupervisor();
    PG_RETURN_VOID();
}

// gsb._release_peer(peer text): forgets a dropped peer's shared status, so a
// peer added again under the same name starts afresh at once.
Datum gsb_release_peer(PG_FUNCTION_ARGS) {
    char *peer = text_to_cstring(PG_GETARG_TEXT_PP(0));
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    LWLockAcquire(s->lock, LW_EXCLUSIVE);
    gsb::PeerSlot *slot = gsb::FindPeerSlot(s, peer, false);
    if (slot != nullptr && slot->pid == 0)
        memset(slot, 0, sizeof(gsb::PeerSlot));
    LWLockRelease(s->lock);
    PG_RETURN_VOID();
}

// gsb._state_confirmed(): whether the site monitor has confirmed this site's
// view of the active site since the server started (see shared_state.hpp).
Datum gsb_state_confirmed(PG_FUNCTION_ARGS) {
    if (!gsb::SharedStateAvailable())
        PG_RETURN_BOOL(true); // no monitor can run: nothing to wait for
    gsb::SharedState *s = gsb::Shared();
    LWLockAcquire(s->lock, LW_SHARED);
    bool confirmed = s->state_confirmed;
    LWLockRelease(s->lock);
    PG_RETURN_BOOL(confirmed);
}

// gsb._monitor_status(): what the site monitor last saw of the peer.
Datum gsb_monitor_status(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    LWLockAcquire(s->lock, LW_SHARED);
    bool running = s->monitor_pid != 0;
    bool reachable = s->peer_reachable;
    TimestampTz heartbeat = s->last_heartbeat_at;
    char error[gsb::kErrorLen];
    strlcpy(error, s->monitor_error, sizeof error);
    LWLockRelease(s->lock);
    Datum values[4] = {BoolGetDatum(running), BoolGetDatum(reachable),
                       TimestampTzGetDatum(heartbeat), CStringGetTextDatum(error)};
    bool nulls[4] = {false, !running, heartbeat == 0, error[0] == '\0'};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    PG_RETURN_VOID();
}
