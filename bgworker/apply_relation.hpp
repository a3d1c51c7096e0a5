// apply_relation.hpp: the apply back end's relation map and type input: how
// each of the peer's relations (as its relation messages describe it) maps
// onto a local table, its columns, its key index and the input functions of
// its types; and the conversion of the peer's values into slots.
//
// PostgreSQL-style code (raises PostgreSQL errors, no C++ objects with
// destructors). Not for: executor state, finding rows, writing rows
// (apply_exec.hpp, apply_keyscan.hpp, apply_rows.hpp).
#pragma once

#include "pg.hpp"

extern "C" {
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "utils/relcache.h"
}

#include "apply.hpp"
#include "protocol.hpp"

namespace gsb::apply {

// How one of the peer's relations maps onto a local table.
struct RelMapEntry {
    uint32 remote_relid; // hash key: the relation's OID on the peer
    MemoryContext cxt;   // everything below; deleted when redefined
    // As the peer describes it (last relation message).
    char *nspname;
    char *relname;
    int ncols;
    char **colnames;
    char **typnames;
    // The local table, resolved at first use and after invalidation.
    bool resolved;
    Oid localrelid;
    int *attmap; // remote column -> local attribute index (0-based); -1: a column
                 // that a replicated DDL dropped here, whose values are discarded
    int local_natts;
    FmgrInfo *in_fn; // text input function per local attribute
    Oid *in_ioparam;
    FmgrInfo *recv_fn; // binary receive function per local attribute
    Oid *recv_ioparam;
    uint8 *fast;   // per local attribute: a values::Direct kind (kNone: receive function)
    Oid key_index; // the table's key (catalog::KeyIndex)
    // Per remote column: its values are of the type that a replicated DDL
    // changed here (gsb.ddl_columns), and are converted through the old
    // type's text form; conv_* are the old type's functions.
    bool *conv;
    FmgrInfo *conv_recv;
    Oid *conv_recv_ioparam;
    FmgrInfo *conv_out;
};

// Error context: which peer, transaction, relation and column.
struct ErrorContextArg {
    Session *s;
    const char *action;
    RelMapEntry *rel;
    int remote_col; // -1 when not about one column
};

// Pushes cb (with arg) onto error_context_stack; pop with
// error_context_stack = cb->previous.
void PushErrorContext(ErrorContextCallback *cb, ErrorContextArg *arg);

// Makes the map and registers its relcache invalidation; once per process.
void InitRelationMap();

// Remembers a relation message: how the peer describes the relation.
void DefineRelation(const protocol::Message &msg);

// The entry of the peer's relation remote_relid; an error if the peer has
// not described it.
RelMapEntry *LookupEntry(uint32 remote_relid);

// Maps e onto the local table (once, and again after an invalidation),
// raising the schema-drift errors if it does not fit.
void ResolveEntry(Session *s, RelMapEntry *e, ErrorContextArg *ctx);

// Converts one remote value into a local column's value.
void StoreValue(RelMapEntry *e, int remote_col, const protocol::Value &v, Form_pg_attribute att,
                Datum *value, bool *isnull);

// Fills slot from a remote tuple. With base, columns the tuple does not carry
// (unchanged TOAST, local-only columns) keep base's values; without base
// they are NULL, or their default when with_defaults.
void FillSlot(RelMapEntry *e, Relation rel, EState *estate, TupleTableSlot *slot,
              const protocol::Tuple &tuple, TupleTableSlot *base, bool with_defaults,
              ErrorContextArg *ctx);

// Whether xmin is the (sub)transaction that ran a replicated
// DDL command here (gsb.ddl_log.xid, the most recent ones). A command that
// rewrites a table stamps every row with its xmin: such a row was not
// changed by a user then, and the conflict rules must not weigh it as a
// local change made at the command's commit time.
bool WrittenByReplicatedDdl(TransactionId xmin);

} // namespace gsb::apply
