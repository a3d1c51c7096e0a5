// worker_util.hpp: what every gsb background worker does the same way:
// start up, sleep on its latch, and run a statement in a transaction of its
// own. Not for: replication itself.
#pragma once

#include "pg.hpp"

#include <optional>
#include <string>
#include <vector>

namespace gsb {

// One SQL parameter: its type and its text (nullopt: NULL). The text is
// converted by the type's input function inside the transaction.
struct SqlArg {
    Oid type;
    std::optional<std::string> text;
};
using SqlRow = std::vector<std::optional<std::string>>;

// Runs one statement through SPI in a transaction of its own and returns
// its rows as text. When the extension is not installed it runs nothing,
// returns no rows and sets *installed (if given) to false. Call it outside
// any transaction; when it throws, it has ended its transaction and left no
// snapshot or SPI connection behind.
std::vector<SqlRow> RunStatement(const char *sql, const std::vector<SqlArg> &args = {},
                                 bool read_only = true, bool *installed = nullptr);

// Sleeps up to ms on the process latch; wakes for SIGHUP, SIGTERM and
// postmaster death, and processes interrupts.
void SleepOnLatch(long ms);

// Applies a pending SIGHUP.
void ReloadConfigIfPending();

// The body of a background worker's main function: signals, a connection to
// gsb.database, the application name, then run() under gsb::Entry.
template <typename F> void WorkerMain(const char *appname, F &&run);

void WorkerSetup(const char *appname);

template <typename F> void WorkerMain(const char *appname, F &&run) {
    WorkerSetup(appname);
    Entry([&] { run(); });
}

} // namespace gsb
