// stream_progress.hpp: how far the apply worker has come in its peer's
// stream on one connection, and which position it may confirm to the peer.
//
// The peer's slot forgets everything at or before the flush position this
// site reports, so that position must never pass a transaction that this
// site has not durably committed. The rules:
//  * Reset(start) on every (re)connect, with a start that is itself durable
//    (the replication origin's progress, flushed): nothing learned on a
//    failed connection (positions, pending flushes) survives it.
//  * Processed(lsn) only once everything up to lsn has been applied, or
//    needed nothing (a keepalive, a whole CopyData handled).
//  * A local commit is pending until the local WAL is flushed past its end:
//    Committed() maps the remote commit end to the local commit end, and
//    Flushed() releases them in order, as PostgreSQL's worker.c does with its
//    flush position list.
//  * With nothing pending and no transaction open, everything processed is
//    done with (skipped or empty transactions included).
//
// Plain C++ with no PostgreSQL dependency, so test/unit can test it. Not for:
// sending the feedback or reading the local flush position (apply_worker.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>

namespace gsb {

class StreamProgress {
  public:
    using Lsn = uint64_t; // an XLogRecPtr

    // A new connection that starts streaming at start, which is durable here.
    void Reset(Lsn start) {
        received_ = processed_ = flushed_ = start;
        in_txn_ = false;
        pending_.clear();
    }

    // A message arrived that reaches lsn (not yet applied).
    void Received(Lsn lsn) { received_ = std::max(received_, lsn); }

    // Everything up to lsn has been handled.
    void Processed(Lsn lsn) {
        Received(lsn);
        processed_ = std::max(processed_, lsn);
    }

    void BeginTransaction() { in_txn_ = true; }

    // The remote transaction ending at remote_end was committed here, with
    // its commit record ending at local_end (not necessarily flushed yet).
    void Committed(Lsn remote_end, Lsn local_end) {
        in_txn_ = false;
        pending_.push_back({local_end, remote_end});
        Processed(remote_end);
    }

    // Releases the commits that the local WAL, flushed up to local_flushed,
    // now holds, and returns the position that may be reported as flushed.
    Lsn Flushed(Lsn local_flushed) {
        while (!pending_.empty() && pending_.front().local_end <= local_flushed) {
            flushed_ = std::max(flushed_, pending_.front().remote_end);
            pending_.pop_front();
        }
        if (pending_.empty() && !in_txn_)
            flushed_ = std::max(flushed_, processed_);
        return flushed_;
    }

    Lsn received() const { return received_; }
    Lsn flushed() const { return flushed_; }
    bool in_transaction() const { return in_txn_; }
    bool idle() const { return !in_txn_ && pending_.empty(); }

  private:
    struct Pending {
        Lsn local_end;
        Lsn remote_end;
    };
    Lsn received_ = 0;  // the furthest position any message mentioned
    Lsn processed_ = 0; // everything up to here was applied or needed nothing
    Lsn flushed_ = 0;   // confirmed: committed and flushed here, or needed nothing
    bool in_txn_ = false;
    std::deque<Pending> pending_; // in commit order, so local_end ascends
};

} // namespace gsb
