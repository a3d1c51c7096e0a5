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

// ---------------------------------------------------------------------------
// Rows lost to a concurrent delete. When a remote delete wins over a newer
// local update (delete_differs), the peer may also have inserted the key
// again before that update's time, and it will apply the update over that
// insert (for it the update is simply newer). So that this site ends the
// same, it remembers the lost row and its commit time until the peer's
// stream has passed that time: a remote insert of the key older than the
// lost row gets the lost row instead (insert_exists, keep_local), and a
// later remote change to the row so restored is weighed against the lost
// row's time. Kept in the worker's memory only (README, Conflicts).
// ---------------------------------------------------------------------------

// Remembers the row in local (committed at local_ts) under keyslot's key.
void RememberLostRow(Session *s, Relation rel, RelMapEntry *e, TupleTableSlot *keyslot,
                     TupleTableSlot *local, TimestampTz local_ts);

// Whether any lost row of rel is remembered (before looking a key up).
bool HaveLostRows(Session *s, Oid relid);

// The lost row under keyslot's key, if one is remembered that is newer than
// the remote change (s->commit_ts): into out (a slot of rel), with its
// commit time. Forgets those the stream has passed.
bool FindLostRow(Session *s, Relation rel, RelMapEntry *e, TupleTableSlot *keyslot,
                 TupleTableSlot *out, TimestampTz *ts);

} // namespace gsb::apply
