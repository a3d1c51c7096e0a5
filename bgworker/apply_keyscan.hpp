// apply_keyscan.hpp: finding the local row under a remote change's key, by
// one scan of the key index kept open for a run of changes (RowExec).
//
// RelationFindReplTupleByIndex opens the index, begins and ends a scan and
// looks up the equality operators in the catalog for every row, which was a
// third of its time in a 200k-row delete. FindByKey waits and locks exactly
// as it does. With a one-column key the scan is a range scan (key >= value)
// that a run of ascending keys (a range deleted or updated on the peer)
// continues from row to row instead of descending the index again. The scan
// keeps a pin on one index page and one heap page until the run ends, as a
// statement's own scan does; the run never outlasts the remote transaction,
// which arrives whole.
//
// PostgreSQL-style code. Not for: deciding or changing anything about the
// row found (apply_rows.hpp, conflict.hpp).
#pragma once

#include "pg.hpp"

extern "C" {
#include "access/tableam.h"
}

#include "apply_exec.hpp"

namespace gsb::apply {

// The key index scan and the slots of a lookup, made on the first lookup of
// a run (by OpenRowExec): an insert that meets no taken key needs neither.
void PrepareLookup(RowExec *r);

// Ends the scan and closes the index, if PrepareLookup made them.
void EndLookup(RowExec *r);

// The local row whose key equals key's into out; false if there is none.
// Like RelationFindReplTupleByIndex: a row that an open transaction inserts
// or deletes is waited for and looked up again. With lock, the row is also
// locked for update or delete (waiting for an open transaction that locks
// it), and one updated or deleted between finding and locking it is looked
// up again. Without, the caller modifies the row version found with
// table_tuple_update or table_tuple_delete, which wait in the same way, and
// looks it up again if those say it was updated or deleted meanwhile
// (ModifyFound in apply_rows.cpp, then ChangedMeanwhile).
bool FindByKey(RowExec *r, TupleTableSlot *key, TupleTableSlot *out, bool lock);

// The row found was changed by a local transaction before it was modified:
// logs it, and the next lookup searches afresh.
void ChangedMeanwhile(RowExec *r, TM_Result res);

} // namespace gsb::apply
