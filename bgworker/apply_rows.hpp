// apply_rows.hpp: what each remote change does to local rows: inserts
// (batched for plain tables), updates, deletes and truncates, with the
// conflict rules asked wherever a change meets a local row the peer may not
// have seen. This is gsb's execReplication.c.
//
// PostgreSQL-style code, called by the entry points in apply.cpp with the
// snapshot pushed, the target table open and the error context set. Not
// for: message dispatch and transaction boundaries (apply.cpp and the
// worker), the executor set-up (apply_exec.hpp), finding rows
// (apply_keyscan.hpp), deciding conflicts (conflict.hpp).
#pragma once

#include "pg.hpp"

#include "apply.hpp"
#include "apply_relation.hpp"
#include "protocol.hpp"

namespace gsb::apply {

// An insert into a table that is not plain (PlainTable): looks the key up
// first and applies the conflict rules.
void ApplyInsert(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx);

// An insert into a plain table: buffered for the batch (FlushBatch writes
// it), after flushing a batch for another table or a full one.
void AddToBatch(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                ErrorContextArg *ctx);

void ApplyUpdate(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx);
void ApplyDelete(Session *s, RelMapEntry *e, Relation rel, const protocol::Message &msg,
                 ErrorContextArg *ctx);

// A truncate of the tables msg names (the caller has closed the kept state).
void ApplyTruncate(Session *s, const protocol::Message &msg, ErrorContextArg *ctx);

} // namespace gsb::apply
