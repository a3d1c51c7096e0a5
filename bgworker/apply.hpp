// apply.hpp: the apply back end: turns decoded gsb messages from the peer
// into local inserts, updates, deletes and truncates through the executor,
// with indexes maintained and constraints checked, and resolves conflicts
// (bgworker/conflict.hpp) and records them in gsb.conflicts. apply.cpp
// routes each message; the parts it routes to are the apply_*.hpp files
// beside this one (listed in apply.cpp).
//
// This is PostgreSQL-style code: it raises PostgreSQL errors and holds no
// C++ objects with destructors, so the worker calls it inside gsb::PgCall.
// Not for: the connection, the stream or transaction boundaries (the worker
// in apply_worker.cpp owns those).
#pragma once

#include "pg.hpp"

extern "C" {
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "replication/origin.h"
}

#include "protocol.hpp"

namespace gsb::apply {

// What the back end needs to know about the stream; owned by the worker.
struct Session {
    const char *peer_name; // the site the changes come from
    RepOriginId origin;    // the local replication origin for that peer
    bool local_is_primary; // this site wins timestamp ties
    MemoryContext msg_ctx; // reset by the worker after every message
    // The remote transaction being applied.
    uint32 xid;
    XLogRecPtr final_lsn;
    TimestampTz commit_ts;
    // The worker's own identity, for writing gsb's tables while a change
    // runs as the table's owner.
    Oid worker_userid;
    int worker_sec_context;
    // Statistics since the worker started.
    int64 changes_applied;
    int64 conflicts;
};

// Sets up the relation map and its invalidation; once per process.
void Init(Session *s);

// A relation message: remembers how the peer describes the relation. The
// local table is looked up and checked at its first change.
void HandleRelation(Session *s, const protocol::Message &msg);

// One change inside a transaction that the worker has started.
void HandleChange(Session *s, const protocol::Message &msg);

// A DDL message (gsb.replicate_ddl on the peer), inside a transaction that
// the worker has started: the command runs here, at this point, as the role
// of the name it carries (ddl.hpp). The role missing here, or not an
// administrator of gsb here, is an error like any other apply error.
void HandleDdl(Session *s, const protocol::Message &msg);

// Writes the inserts buffered for a batch (before a commit, and whenever
// order requires it); a no-op when none are buffered.
void FlushBatch(Session *s);

// Before the transaction commits: writes the buffered inserts and closes the
// executor state kept for a run of updates and deletes.
void FinishTransaction(Session *s);

// Forgets buffered inserts (after a flush, or a rollback).
void DiscardBatch();

// After the transaction was rolled back: forgets buffered inserts and the
// kept executor state (the rollback released what it held).
void ForgetTransaction();

// Checks that a relation the peer sent can be applied here (exists, is
// replicated, same columns and types): raises the schema-drift error if not.
void CheckRelation(Session *s, uint32 remote_relid);

} // namespace gsb::apply
