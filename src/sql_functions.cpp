// sql_functions.cpp: SQL-callable helpers of the catalog layer, running a
// statement as a table's owner, the self-test of the C++/PostgreSQL error
// boundary and that of the direct binary values.
// Not for: worker control or replication status (bgworker/).
#include "pg.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
}

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "binary_values.hpp"
#include "interop.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_invalidate_relation);
PG_FUNCTION_INFO_V1(gsb_selftest_raise);
PG_FUNCTION_INFO_V1(gsb_selftest_receive);
}

// Queues a relcache invalidation for rel. It is logged with the transaction,
// so decoding sessions process it exactly where the registration changed.
Datum gsb_invalidate_relation(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    // PostgreSQL's own check would be a "cache lookup failed" (XX000).
    if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("gsb: relation with OID %u does not exist", relid),
                        errhint("Name an existing table.")));
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
        } else if (kind == "cxx_in_pgcall") {
            // A C++ exception out of PgCall's callable: the ERROR that Entry
            // then raises must land in the caller's handler, not in PgCall's
            // dead frame.
            gsb::PgCall([] { throw std::out_of_range("selftest: thrown inside gsb::PgCall"); });
        } else if (kind == "none") {
            return (Datum)0;
        }
        throw gsb::Error(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: unknown kind \"" + kind + "\"",
                         "", "Kinds are postgres, gsb, std, alloc and none.");
    });
}

// Makes a value of type typ (with typmod) from binary bytes as the apply
// worker does (gsb::values::ReceiveDirect, else the receive function) and
// checks the direct path against the receive function: the same datum, and
// no value that the receive function rejects. Returns which path made it and
// the value's text; raises the receive function's error for a bad value.
Datum gsb_selftest_receive(PG_FUNCTION_ARGS) {
    bytea *bytes = PG_GETARG_BYTEA_PP(0);
    Oid typ = PG_GETARG_OID(1);
    int32 typmod = PG_GETARG_INT32(2);
    const char *data = VARDATA_ANY(bytes);
    size_t len = VARSIZE_ANY_EXHDR(bytes);
    if (!SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(typ)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("gsb: type with OID %u does not exist", typ),
                        errhint("Name an existing type.")));
    Oid recv = InvalidOid;
    Oid ioparam = InvalidOid;
    getTypeBinaryInputInfo(typ, &recv, &ioparam);
    Oid out = InvalidOid;
    bool varlena = false;
    getTypeOutputInfo(typ, &out, &varlena);
    int16 typlen = 0;
    bool typbyval = false;
    get_typlenbyval(typ, &typlen, &typbyval);

    Datum direct = (Datum)0;
    bool took =
        gsb::values::ReceiveDirect(gsb::values::DirectKindFor(recv), data, len, typmod, &direct);
    // The receive function, called as the apply worker calls it.
    StringInfoData buf;
    initStringInfo(&buf);
    appendBinaryStringInfo(&buf, data, static_cast<int>(len));
    Datum value = (Datum)0;
    MemoryContext cxt = CurrentMemoryContext;
    PG_TRY();
    {
        value = OidReceiveFunctionCall(recv, &buf, ioparam, typmod);
        if (buf.cursor != buf.len)
            ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                            errmsg("gsb: incorrect binary data format in a value from the peer")));
    }
    PG_CATCH();
    {
        if (!took)
            PG_RE_THROW();
        MemoryContextSwitchTo(cxt);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("gsb: the direct path accepted a value that %s rejects: %s",
                               format_procedure(recv), edata->message)));
    }
    PG_END_TRY();
    const char *path = "receive function";
    if (took) {
        if (!datum_image_eq(direct, value, typbyval, typlen))
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("gsb: the direct path made %s, %s made %s",
                                   OidOutputFunctionCall(out, direct), format_procedure(recv),
                                   OidOutputFunctionCall(out, value))));
        path = "direct";
    }
    PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s: %s", path, OidOutputFunctionCall(out, value))));
}

extern "C" {
PG_FUNCTION_INFO_V1(gsb_run_as_owner);
}

// gsb._run_as_owner(rel regclass, sql text, rows text[]) RETURNS bigint
// Runs one statement ($1 = rows) as the owner of rel, in a restricted
// security context with an empty search_path, the way PostgreSQL runs
// maintenance on behalf of a table's owner: whatever code the owner attached
// to the table (index expressions, constraints, defaults, triggers) runs with
// the owner's rights, never with the caller's. Returns the rows processed.
Datum gsb_run_as_owner(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
    Datum rows = PG_GETARG_DATUM(2);
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tup))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("gsb: relation with OID %u does not exist", relid),
                        errhint("Name an existing table.")));
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);

    Oid save_userid;
    int save_sec;
    GetUserIdAndSecContext(&save_userid, &save_sec);
    SetUserIdAndSecContext(owner,
                           save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    int nest = NewGUCNestLevel();
    SetConfigOption("search_path", "", PGC_USERSET, PGC_S_SESSION);
    uint64 processed = 0;
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "gsb: SPI_connect failed");
        Oid types[1] = {TEXTARRAYOID};
        Datum values[1] = {rows};
        int rc = SPI_execute_with_args(sql, 1, types, values, nullptr, false, 0);
        if (rc < 0)
            elog(ERROR, "gsb: statement failed: %s", SPI_result_code_string(rc));
        processed = SPI_processed;
        SPI_finish();
    }
    PG_FINALLY();
    {
        AtEOXact_GUC(false, nest);
        SetUserIdAndSecContext(save_userid, save_sec);
    }
    PG_END_TRY();
    PG_RETURN_INT64(static_cast<int64>(processed));
}
