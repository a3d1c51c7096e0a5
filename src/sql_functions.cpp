// sql_functions.cpp: SQL-callable helpers of the catalog layer and the
// self-test of the C++/PostgreSQL error boundary.
// Not for: worker control or replication status (bgworker/).
#include "pg.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/inval.h"
}

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "interop.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_invalidate_relation);
PG_FUNCTION_INFO_V1(gsb_selftest_raise);
}

// Queues a relcache invalidation for rel. It is logged with the transaction,
// so decoding sessions process it exactly where the registration changed.
Datum gsb_invalidate_relation(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    return gsb::Entry([&] {
        CacheInvalidateRelcacheByRelid(relid);
        return (Datum)0;
    });
}

// Raises an error of the named kind from inside C++ frames that hold live
// objects, so tests can see each path reach the client as a clean error.
Datum gsb_selftest_raise(PG_FUNCTION_ARGS) {
    char *kind_c = text_to_cstring(PG_GETARG_TEXT_PP(0));
    return gsb::Entry([&] {
        std::string kind(kind_c);
        std::vector<std::string> alive{"destructors must run"};
        if (kind == "postgres") {
            gsb::PgCall([] {
                ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                                errmsg("selftest: a PostgreSQL error inside a C++ frame"),
                                errhint("It was raised with ereport inside gsb::PgCall.")));
            });
        } else if (kind == "gsb") {
            throw gsb::Error(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: a gsb::Error",
                             "It carries a detail.", "And a hint.");
        } else if (kind == "std") {
            throw std::out_of_range("selftest: a std::exception");
        } else if (kind == "alloc") {
            throw std::bad_alloc();
        } else if (kind == "none") {
            return (Datum)0;
        }
        throw gsb::Error(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: unknown kind \"" + kind + "\"",
                         "", "Kinds are postgres, gsb, std, alloc and none.");
    });
}
