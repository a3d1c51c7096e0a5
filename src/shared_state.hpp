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
    // The peer's clock minus this site's, measured by the monitor at each
    // heartbeat, within +/- clock_offset_error_us (bgworker/monitor.cpp);
    // clock_offset_at 0: not measured since the server started.
    int64 clock_offset_us;
    int64 clock_offset_error_us;
    TimestampTz clock_offset_at;
    PeerSlot peers[kMaxPeers];
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

} // namespace gsb
