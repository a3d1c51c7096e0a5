// shared_state.cpp: gsb's shared memory (see shared_state.hpp).
#include "pg.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
}

#include <ctime>

#include "shared_state.hpp"

namespace gsb {
namespace {

SharedState *shared = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;
bool requested = false;

void ShmemRequest() {
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState)));
    RequestNamedLWLockTranche("gsb", 1);
}

void ShmemStartup() {
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    shared = static_cast<SharedState *>(ShmemInitStruct("gsb", sizeof(SharedState), &found));
    if (!found) {
        memset(shared, 0, sizeof(SharedState));
        shared->lock = &(GetNamedLWLockTranche("gsb"))->lock;
        shared->started_us = MonotonicNowUs();
    }
    LWLockRelease(AddinShmemInitLock);
}

} // namespace

const char *PeerStateName(PeerState s) {
    switch (s) {
    case PeerState::kDown:
        return "down";
    case PeerState::kConnecting:
        return "connecting";
    case PeerState::kInitialSync:
        return "initial_sync";
    case PeerState::kStreaming:
        return "streaming";
    case PeerState::kError:
        return "error";
    }
    return "unknown";
}

void RequestSharedState() {
    requested = true;
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = ShmemRequest;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = ShmemStartup;
}

bool SharedStateAvailable() {
    return requested && shared != nullptr;
}

SharedState *Shared() {
    if (!SharedStateAvailable())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("gsb is not loaded through shared_preload_libraries"),
                        errhint("Add gsb to shared_preload_libraries in postgresql.conf and "
                                "restart the server.")));
    return shared;
}

PeerSlot *FindPeerSlot(SharedState *s, const char *name, bool create) {
    PeerSlot *free_slot = nullptr;
    for (PeerSlot &p : s->peers) {
        if (p.in_use && strcmp(p.name, name) == 0)
            return &p;
        if (!p.in_use && free_slot == nullptr)
            free_slot = &p;
    }
    if (!create || free_slot == nullptr)
        return nullptr;
    memset(free_slot, 0, sizeof(PeerSlot));
    free_slot->in_use = true;
    strlcpy(free_slot->name, name, NAMEDATALEN);
    free_slot->state = PeerState::kDown;
    return free_slot;
}

int64 MonotonicNowUs() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

void LeaseRenew(int64 term, int64 sent_us, int64 lease_ms, bool evidence) {
    if (!SharedStateAvailable() || term < 0)
        return;
    int64 until = sent_us + lease_ms * 1000;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    if (shared->lease_held && shared->lease_term == term) {
        if (until > shared->lease_until_us)
            shared->lease_until_us = until;
    } else if (evidence && (!shared->lease_held || term > shared->lease_term)) {
        shared->lease_held = true;
        shared->lease_term = term;
        shared->lease_from_us = MonotonicNowUs() + kHandoverGapUs;
        shared->lease_until_us = until;
    }
    LWLockRelease(shared->lock);
}

void WakeSupervisor() {
    if (!SharedStateAvailable())
        return;
    LWLockAcquire(shared->lock, LW_SHARED);
    Latch *latch = shared->supervisor_latch;
    LWLockRelease(shared->lock);
    if (latch != nullptr)
        SetLatch(latch);
}

} // namespace gsb
