// shared_state.hpp: what gsb's processes tell each other through shared
// memory: one status slot per peer (written by its apply worker, read by
// gsb.status and gsb.drop_peer) and the supervisor's latch.
//
// Plain data only; every access holds the gsb LWLock. Not for: anything
// that must survive a restart (that lives in catalogs and replication
// origins).
#pragma once

#include "pg.hpp"

extern "C" {
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
}

namespace gsb {

inline constexpr int kMaxPeers = 8;
inline constexpr int kErrorLen = 1024;

enum class PeerState : int {
    kDown = 0,    // no worker, or waiting to reconnect to an unreachable peer
    kConnecting,  // connecting to the peer
    kInitialSync, // copying the peer's existing rows
    kStreaming,   // applying the peer's stream
    kError,       // waiting to retry after an apply error (see last_error)
};
const char *PeerStateName(PeerState s);

struct PeerSlot {
    bool in_use;
    char name[NAMEDATALEN]; // the peer's site name
    int pid;                // apply worker, 0 when none
    PeerState state;
    XLogRecPtr received_lsn; // end of the last message received
    XLogRecPtr applied_lsn;  // peer LSN applied and flushed here
    XLogRecPtr peer_end_lsn; // the peer's WAL end, from its keepalives
    TimestampTz last_message_at;
    TimestampTz last_error_at;
    char last_error[kErrorLen];
    TimestampTz suppress_until; // gsb.drop_peer: no worker until then
    // The apply worker's backoff, here rather than in the process so that a
    // worker restarted after a failure (or a kill) waits out what its
    // predecessor owed instead of starting again at 1 s. Reset when a
    // transaction applies.
    long backoff_ms;           // the wait after the next failure; 0: the first (1 s)
    TimestampTz backoff_until; // no attempt before this; 0: none pending
};

inline constexpr int kMaxWitnessClients = 4;

// What a witness last heard from one data site (gsb._witness_ping).
struct WitnessClient {
    bool in_use;
    char name[NAMEDATALEN];
    int64 heard_us;   // monotonic, on the witness
    int64 term;       // the site's term then
    int64 timeout_ms; // its gsb.failover_timeout then
};

struct SharedState {
    LWLock *lock;
    Latch *supervisor_latch;
    int supervisor_pid;
    // The site monitor's view of the peer.
    int monitor_pid;
    bool peer_reachable;
    TimestampTz last_heartbeat_at; // last answer from the peer
    char monitor_error[kErrorLen];
    // Since the server started, the monitor has heard the peer's view of the
    // active site, or found the peer unreachable for longer than a failover
    // would take. Until then this site does not claim to be active: after a
    // restart its stored view may be stale.
    bool state_confirmed;
    PeerSlot peers[kMaxPeers];

    // --- One active site (witness.cpp). Times ending in _us are
    // CLOCK_MONOTONIC microseconds (MonotonicNowUs): a lease must not move
    // with the wall clock, and the clock runs on while a process is stopped.
    //
    // On a data site with a witness: this site may answer that it is active
    // at term lease_term while lease_from_us <= now < lease_until_us. Set by
    // the site monitor (and by the peer's heartbeats, LeaseRenew); read by
    // gsb.is_active(). Zero after a restart: a site serves only once it has
    // heard a current view.
    bool lease_held;
    int64 lease_term;
    int64 lease_from_us;
    int64 lease_until_us;
    bool fenced;         // lost its lease while the active site (until it is back)
    int64 peer_heard_us; // the peer's last heartbeat received here
    bool witness_reachable;
    TimestampTz witness_answer_at; // the witness's last answer (wall clock)
    char witness_error[kErrorLen];
    // The last monitor tick at which this site was the active site (without
    // a witness: by its view), for split-brain detection.
    int64 active_seen_us;
    TimestampTz active_seen_at;

    // On a witness: when the server started, and what it last heard from
    // each data site.
    int64 started_us;
    WitnessClient witness_clients[kMaxWitnessClients];
};

// Called from _PG_init: asks the postmaster for the memory and the lock.
void RequestSharedState();
// The attached shared state; raises an error when gsb was not preloaded.
SharedState *Shared();
// True when gsb.so was loaded by shared_preload_libraries.
bool SharedStateAvailable();

// Finds the slot of a peer, optionally claiming a free one. Call with the
// lock held. Returns nullptr when there is none (or no room).
PeerSlot *FindPeerSlot(SharedState *s, const char *name, bool create);

// Wakes the supervisor so it looks at gsb.peers now.
void WakeSupervisor();

// CLOCK_MONOTONIC in microseconds: the clock of leases and silences.
int64 MonotonicNowUs();

// Renews this site's lease for `term` as of `sent_us` (the send time of a
// request that was answered, or the receipt time of a request from the
// peer). `evidence`: the other site is known not to hold a lease for an older
// term (it has taken this term, or has been silent for longer than its own
// lease), so a lease for a new term may start; it starts kHandoverGapUs from
// now. Without evidence only a lease already held for `term` is extended.
// Takes the lock.
void LeaseRenew(int64 term, int64 sent_us, int64 lease_ms, bool evidence);

// gsb.failover_timeout (when 0: 10 s or two heartbeats): how long a site
// must be silent before the other may take over; and the lease, shorter than
// that by 0.5 s and a margin (witness.cpp, README "One active site").
long SilenceMs();
long LeaseMs();

// A handed-over lease starts this long after the evidence that the previous
// holder stopped: the contract's 0.5 s, plus a little for scheduling.
inline constexpr int64 kHandoverGapUs = 600 * 1000;

} // namespace gsb
