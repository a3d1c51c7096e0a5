// witness.cpp: the shared-memory half of "one active site": the lease of a
// data site (gsb.is_active() with a witness), what a witness last heard
// from each data site (the vote's silence, on the witness's own monotonic
// clock), and what gsb.status shows of the witness.
//
// Every function here only reads or writes plain shared memory under the gsb
// lock: no C++ object with a destructor lives in these frames, so they need
// no Entry wrapper. Not for: the decisions (src/sql/38_witness.sql,
// src/sql/50_active_site.sql) or the monitor's calls (bgworker/monitor.cpp).
#include "pg.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <algorithm>

#include "gsb.hpp"
#include "shared_state.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_lease_live);
PG_FUNCTION_INFO_V1(gsb_peer_heard);
PG_FUNCTION_INFO_V1(gsb_witness_heard);
PG_FUNCTION_INFO_V1(gsb_witness_clients);
PG_FUNCTION_INFO_V1(gsb_witness_status);
PG_FUNCTION_INFO_V1(gsb_lease_ms);
PG_FUNCTION_INFO_V1(gsb_active_seen);
}

namespace gsb {

long SilenceMs() {
    return guc_failover_timeout_ms > 0 ? guc_failover_timeout_ms
                                       : std::max(10000L, 2L * guc_heartbeat_interval_ms);
}

// The lease: shorter than the silence after which the witness may grant the
// term to the other site by the contract's 0.5 s and a margin (a tenth of the
// silence, 0.5 s at least) for clocks that run at different rates.
long LeaseMs() {
    long silence = SilenceMs();
    long margin = std::max(500L, silence / 10);
    return std::max(100L, silence - 500 - margin);
}

} // namespace gsb

// gsb._lease_live(term bigint): whether this site holds a live lease for
// `term` now (gsb.is_active() when a witness is configured).
Datum gsb_lease_live(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) || !gsb::SharedStateAvailable())
        PG_RETURN_BOOL(false);
    int64 term = PG_GETARG_INT64(0);
    gsb::SharedState *s = gsb::Shared();
    int64 now = gsb::MonotonicNowUs();
    LWLockAcquire(s->lock, LW_SHARED);
    bool live = s->lease_held && s->lease_term == term && s->lease_from_us <= now &&
                now < s->lease_until_us;
    LWLockRelease(s->lock);
    PG_RETURN_BOOL(live);
}

// gsb._peer_heard(): the peer's heartbeat reached this site (called by
// gsb._heartbeat). It restarts this site's count of the peer's silence, and
// only that: a request received cannot renew this site's lease, because it
// may have waited (frozen, queued) past the deadline at which the peer gave
// up on it.
Datum gsb_peer_heard(PG_FUNCTION_ARGS) {
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    int64 now = gsb::MonotonicNowUs();
    LWLockAcquire(s->lock, LW_EXCLUSIVE);
    s->peer_heard_us = now;
    LWLockRelease(s->lock);
    PG_RETURN_VOID();
}

// gsb._witness_heard(site text, term bigint, timeout_ms bigint), on a
// witness: `site` has just called.
Datum gsb_witness_heard(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0))
        PG_RETURN_VOID();
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    int64 term = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
    int64 timeout = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
    gsb::SharedState *s = gsb::Shared();
    int64 now = gsb::MonotonicNowUs();
    LWLockAcquire(s->lock, LW_EXCLUSIVE);
    gsb::WitnessClient *slot = nullptr;
    for (gsb::WitnessClient &c : s->witness_clients) {
        if (c.in_use && strcmp(c.name, name) == 0) {
            slot = &c;
            break;
        }
        if (!c.in_use && slot == nullptr)
            slot = &c;
    }
    if (slot != nullptr) {
        if (!slot->in_use) {
            memset(slot, 0, sizeof *slot);
            slot->in_use = true;
            strlcpy(slot->name, name, NAMEDATALEN);
        }
        slot->heard_us = now;
        slot->term = std::max(slot->term, term);
        slot->timeout_ms = timeout;
    }
    LWLockRelease(s->lock);
    if (slot == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("this witness serves at most %d data sites", gsb::kMaxWitnessClients)));
    PG_RETURN_VOID();
}

// gsb._witness_clients(OUT site text, OUT silent_ms bigint, OUT term bigint,
// OUT timeout_ms bigint), on a witness: for each data site, how long it has
// been silent, on this witness's monotonic clock. A site not heard since
// this server started is listed by gsb._witness_silence_ms() instead.
Datum gsb_witness_clients(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    gsb::SharedState *s = gsb::Shared();
    gsb::WitnessClient copy[gsb::kMaxWitnessClients];
    LWLockAcquire(s->lock, LW_SHARED);
    memcpy(copy, s->witness_clients, sizeof copy);
    int64 started = s->started_us;
    LWLockRelease(s->lock);
    int64 now = gsb::MonotonicNowUs();
    // Not heard since the start: silent since the start.
    Datum values[4];
    bool nulls[4] = {false, false, false, false};
    values[0] = CStringGetTextDatum("");
    values[1] = Int64GetDatum((now - started) / 1000);
    values[2] = Int64GetDatum(0);
    values[3] = Int64GetDatum(0);
    nulls[0] = true;
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    for (const gsb::WitnessClient &c : copy) {
        if (!c.in_use)
            continue;
        values[0] = CStringGetTextDatum(c.name);
        values[1] = Int64GetDatum((now - c.heard_us) / 1000);
        values[2] = Int64GetDatum(c.term);
        values[3] = Int64GetDatum(c.timeout_ms);
        nulls[0] = false;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    PG_RETURN_VOID();
}

// gsb._witness_status(OUT reachable boolean, OUT last_answer_at timestamptz,
// OUT lease_live boolean, OUT fenced boolean, OUT error text), on a data
// site: what its monitor last saw of the witness, and its lease.
Datum gsb_witness_status(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (!gsb::SharedStateAvailable())
        PG_RETURN_VOID();
    gsb::SharedState *s = gsb::Shared();
    int64 now = gsb::MonotonicNowUs();
    char error[gsb::kErrorLen];
    LWLockAcquire(s->lock, LW_SHARED);
    bool reachable = s->witness_reachable;
    TimestampTz at = s->witness_answer_at;
    bool live = s->lease_held && s->lease_from_us <= now && now < s->lease_until_us;
    bool fenced = s->fenced;
    strlcpy(error, s->witness_error, sizeof error);
    LWLockRelease(s->lock);
    Datum values[5] = {BoolGetDatum(reachable), TimestampTzGetDatum(at), BoolGetDatum(live),
                       BoolGetDatum(fenced), CStringGetTextDatum(error)};
    bool nulls[5] = {false, at == 0, false, false, error[0] == '\0'};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    PG_RETURN_VOID();
}

// gsb._lease_ms(): the lease length this site uses (see LeaseMs).
Datum gsb_lease_ms(PG_FUNCTION_ARGS) {
    PG_RETURN_INT64(gsb::LeaseMs());
}

// gsb._active_seen(OUT recent boolean, OUT at timestamptz): when the site
// monitor last found this site the active site, and whether that was recent
// (within three heartbeats, a second at least): this site was serving then,
// not frozen or down. Split-brain detection reads it (gsb._adopt_state).
Datum gsb_active_seen(PG_FUNCTION_ARGS) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("gsb._active_seen must return a record")));
    desc = BlessTupleDesc(desc);
    int64 seen_us = 0;
    TimestampTz at = 0;
    if (gsb::SharedStateAvailable()) {
        gsb::SharedState *s = gsb::Shared();
        LWLockAcquire(s->lock, LW_SHARED);
        seen_us = s->active_seen_us;
        at = s->active_seen_at;
        LWLockRelease(s->lock);
    }
    int64 window_us = std::max(1000L, 3L * gsb::guc_heartbeat_interval_ms) * 1000L;
    bool recent = seen_us != 0 && gsb::MonotonicNowUs() - seen_us < window_us;
    Datum values[2] = {BoolGetDatum(recent), TimestampTzGetDatum(at)};
    bool nulls[2] = {false, at == 0};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
