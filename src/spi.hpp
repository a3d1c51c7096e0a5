// spi.hpp: the one way gsb's C++ runs SQL inside its own server: one
// statement through SPI (connect, execute with parameters, check the result,
// finish), and a transaction of its own around work that needs one.
//
// PostgreSQL-style functions: they raise PostgreSQL errors, so call them from
// frames without C++ objects or inside gsb::PgCall. Not for: statements on
// the peer (peer_connection.hpp), or reading gsb's catalogs under decoding's
// historic snapshot, where SPI cannot run (catalog.hpp).
#pragma once

#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/snapmgr.h"
}

#include <type_traits>

namespace gsb::spi {

struct Statement {
    const char *sql;
    int nargs = 0;
    Oid *types = nullptr;
    Datum *values = nullptr;
    const char *nulls = nullptr; // SPI's form: 'n' for NULL, ' ' otherwise; nullptr: none
    bool read_only = true;
    long count = 0; // at most this many rows; 0: all
    // The result code the statement must return (SPI_OK_INSERT, ...); 0:
    // any success.
    int expect = 0;
    // The error when it does not: "gsb: <failure>: <SPI's result code>".
    const char *failure = "SPI failed";
};

// Called with SPI_tuptable and SPI_processed set, before SPI_finish.
using Reader = void (*)(void *arg);

// Runs st in the current transaction, under the active snapshot (or, when
// not read_only, a fresh one per SPI's rules); read, when given, reads its
// result. Returns SPI_processed.
uint64 Execute(const Statement &st, Reader read = nullptr, void *read_arg = nullptr);

// Runs body in a transaction of its own with a snapshot, and commits it:
// the way a background worker runs SQL outside a remote transaction.
template <typename F> auto InTransaction(F &&body) -> decltype(body()) {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    if constexpr (std::is_void_v<decltype(body())>) {
        body();
        PopActiveSnapshot();
        CommitTransactionCommand();
    } else {
        auto result = body();
        PopActiveSnapshot();
        CommitTransactionCommand();
        return result;
    }
}

} // namespace gsb::spi
