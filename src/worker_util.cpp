// worker_util.cpp: shared start-up, sleeping and SQL for gsb's workers.
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

#include "gsb.hpp"
#include "interop.hpp"
#include "spi.hpp"
#include "worker_util.hpp"

namespace gsb {

void WorkerSetup(const char *appname) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(guc_database, nullptr, 0);
    pgstat_report_appname(appname);
    // Workers run small catalog queries over and over: compiling them would
    // cost far more than running them.
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
}

void ReloadConfigIfPending() {
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        PgCall([] { ProcessConfigFile(PGC_SIGHUP); });
    }
}

void SleepOnLatch(long ms) {
    PgCall([&] {
        int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
                           PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

std::vector<SqlRow> RunStatement(const char *sql, const std::vector<SqlArg> &args, bool read_only,
                                 bool *installed) {
    int nargs = static_cast<int>(args.size());
    std::vector<Oid> types(nargs + 1);
    std::vector<const char *> texts(nargs + 1);
    for (int i = 0; i < nargs; i++) {
        types[i] = args[i].type;
        texts[i] = args[i].text ? args[i].text->c_str() : nullptr;
    }
    // Results are copied into a context of ours, then into C++ strings once
    // no PostgreSQL call can jump over them.
    MemoryContext out_cxt = PgCall([] {
        return AllocSetContextCreate(TopMemoryContext, "gsb statement", ALLOCSET_SMALL_SIZES);
    });
    // Where the reader below puts the rows.
    struct Out {
        MemoryContext cxt;
        int nrows, ncols;
        char ***rows;
    } result = {out_cxt, 0, 0, nullptr};
    bool have_gsb = false;
    // Whether this call started the transaction, so that on an error it ends
    // it again: the caller gets the exception with no transaction, snapshot
    // or SPI connection left open (AbortCurrentTransaction releases them all).
    bool started = false;
    try {
        PgCall([&] {
            if (IsTransactionOrTransactionBlock())
                elog(ERROR, "gsb: RunStatement called inside a transaction");
            started = true;
            spi::InTransaction([&] {
                if (!OidIsValid(get_extension_oid("gsb", true)))
                    return;
                have_gsb = true;
                Datum *values = static_cast<Datum *>(palloc0(sizeof(Datum) * (nargs + 1)));
                char *nulls = static_cast<char *>(palloc0(nargs + 1));
                for (int i = 0; i < nargs; i++) {
                    nulls[i] = texts[i] ? ' ' : 'n';
                    if (texts[i]) {
                        Oid input, ioparam;
                        getTypeInputInfo(types[i], &input, &ioparam);
                        values[i] =
                            OidInputFunctionCall(input, const_cast<char *>(texts[i]), ioparam, -1);
                    }
                }
                spi::Statement st;
                st.sql = sql;
                st.nargs = nargs;
                st.types = types.data();
                st.values = values;
                st.nulls = nulls;
                st.read_only = read_only;
                spi::Execute(
                    st,
                    [](void *arg) {
                        auto *out = static_cast<Out *>(arg);
                        if (SPI_tuptable == nullptr)
                            return;
                        int nrows = static_cast<int>(SPI_processed);
                        int ncols = SPI_tuptable->tupdesc->natts;
                        out->nrows = nrows;
                        out->ncols = ncols;
                        out->rows = static_cast<char ***>(
                            MemoryContextAllocZero(out->cxt, sizeof(char **) * (nrows + 1)));
                        for (int r = 0; r < nrows; r++) {
                            out->rows[r] = static_cast<char **>(
                                MemoryContextAllocZero(out->cxt, sizeof(char *) * (ncols + 1)));
                            for (int c = 0; c < ncols; c++) {
                                char *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
                                                       c + 1);
                                out->rows[r][c] = v ? MemoryContextStrdup(out->cxt, v) : nullptr;
                            }
                        }
                    },
                    &result);
            });
        });
    } catch (...) {
        PgCall([&] {
            if (started)
                AbortCurrentTransaction();
            MemoryContextDelete(out_cxt);
        });
        throw;
    }
    int nrows = result.nrows, ncols = result.ncols;
    char ***rows = result.rows;
    std::vector<SqlRow> out;
    out.reserve(nrows);
    for (int r = 0; r < nrows; r++) {
        SqlRow row;
        for (int c = 0; c < ncols; c++)
            row.push_back(rows[r][c] ? std::optional<std::string>(rows[r][c]) : std::nullopt);
        out.push_back(std::move(row));
    }
    PgCall([&] { MemoryContextDelete(out_cxt); });
    if (installed)
        *installed = have_gsb;
    return out;
}

} // namespace gsb
