// apply_conflict.hpp: the facts the conflict rules need about the local row
// under a remote change's key, and the record of a conflict in
// gsb.conflicts (and the server log).
//
// PostgreSQL-style code. Not for: the decision itself, which is
// conflict::Decide (conflict.hpp), a pure function of these facts.
#pragma once

#include "pg.hpp"

#include "apply.hpp"
#include "apply_exec.hpp"
#include "apply_relation.hpp"
#include "conflict.hpp"

namespace gsb::apply {

// What is there locally under the key, for the conflict rules: found says
// whether FindByKey found a row (into r->local); remote, when given, is the
// remote row to compare it with.
conflict::Local InspectLocal(Session *s, RowExec *r, bool found, TupleTableSlot *remote);

// The same for another local row than r->local (the holder of the key that
// an update moves its row to); no comparison with the remote row.
conflict::Local InspectRow(Session *s, RowExec *r, TupleTableSlot *row);

// Records decision d about the row under keyslot's key in gsb.conflicts,
// with the local and remote rows when known, and logs it.
void RecordConflict(Session *s, Relation rel, RelMapEntry *e, conflict::Decision d,
                    TupleTableSlot *keyslot, TupleTableSlot *local, TupleTableSlot *remote);

} // namespace gsb::apply
