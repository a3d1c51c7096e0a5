// spi.cpp: one statement through SPI (see spi.hpp).
#include "pg.hpp"

extern "C" {
#include "executor/spi.h"
}

#include "spi.hpp"

namespace gsb::spi {

uint64 Execute(const Statement &st, Reader read, void *read_arg) {
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "gsb: SPI_connect failed");
    int rc = SPI_execute_with_args(st.sql, st.nargs, st.types, st.values, st.nulls, st.read_only,
                                   st.count);
    if (rc < 0 || (st.expect != 0 && rc != st.expect))
        elog(ERROR, "gsb: %s: %s", st.failure, SPI_result_code_string(rc));
    uint64 processed = SPI_processed;
    if (read != nullptr)
        read(read_arg);
    SPI_finish();
    return processed;
}

} // namespace gsb::spi
