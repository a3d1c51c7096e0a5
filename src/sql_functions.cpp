// sql_functions.cpp: SQL-callable helpers of the catalog layer, running a
// statement as a table's owner, the names of replication slots and origins,
// the self-test of the C++/PostgreSQL error boundary and that of the direct
// binary values.
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

#include <libpq-fe.h>
#include <cstring>

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "binary_values.hpp"
#include "catalog.hpp"
#include "interop.hpp"
#include "names.hpp"
#include "spi.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_invalidate_relation);
#ifdef GSB_TEST_HOOKS
PG_FUNCTION_INFO_V1(gsb_selftest_raise);
PG_FUNCTION_INFO_V1(gsb_selftest_receive);
PG_FUNCTION_INFO_V1(gsb_selftest_extension_version);
#endif
PG_FUNCTION_INFO_V1(gsb_slot_name);
PG_FUNCTION_INFO_V1(gsb_origin_name);
}

namespace {

// The name make_name builds for site, as text. The C++ string is copied to a
// palloc'd one inside Entry, so no C++ object is alive when PostgreSQL
// builds the text value.
template <typename MakeName> Datum NameDatum(text *site, MakeName make_name) {
    char *site_c = text_to_cstring(site);
    char *name_c = nullptr;
    gsb::Entry([&] {
        std::string name = make_name(std::string(site_c));
        name_c = gsb::PgCall([&] { return pnstrdup(name.data(), name.size()); });
    });
    return PointerGetDatum(cstring_to_text(name_c));
}

} // namespace

// gsb._slot_name(site text): the replication slot that site reads from on its
// peer (gsb::SlotName), for the SQL API, which must not build it itself.
Datum gsb_slot_name(PG_FUNCTION_ARGS) {
    return NameDatum(PG_GETARG_TEXT_PP(0), gsb::SlotName);
}

// gsb._origin_name(peer text): the replication origin of that peer's changes
// here (gsb::OriginName).
Datum gsb_origin_name(PG_FUNCTION_ARGS) {
    return NameDatum(PG_GETARG_TEXT_PP(0), gsb::OriginName);
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

#ifdef GSB_TEST_HOOKS
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

// What catalog::ExtensionVersion and ExtensionVersionAtLeast answer in this
// transaction: "<installed>, at least <version>: true|false".
Datum gsb_selftest_extension_version(PG_FUNCTION_ARGS) {
    char *version = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *installed = gsb::catalog::ExtensionVersion();
    bool at_least = gsb::catalog::ExtensionVersionAtLeast(version);
    PG_RETURN_TEXT_P(
        cstring_to_text(psprintf("%s, at least %s: %s", installed ? installed : "not installed",
                                 version, at_least ? "true" : "false")));
}
#endif // GSB_TEST_HOOKS

extern "C" {
PG_FUNCTION_INFO_V1(gsb_run_as_owner);
PG_FUNCTION_INFO_V1(gsb_read_as_owner);
}

namespace {

// The owner of relid, which must be a plain table: a registered relation
// that its owner turned into something else (PostgreSQL 15 still turns an
// empty table into a view with a _RETURN rule) is never read or written
// through gsb, whose callers have more rights than its owner.
Oid PlainTableOwner(Oid relid) {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tup))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("gsb: relation with OID %u does not exist", relid),
                        errhint("Name an existing table.")));
    auto *form = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup));
    Oid owner = form->relowner;
    char kind = form->relkind;
    ReleaseSysCache(tup);
    if (kind != RELKIND_RELATION)
        ereport(
            ERROR,
            (errcode(ERRCODE_WRONG_OBJECT_TYPE),
             errmsg("relation \"%s\" is not a plain table", get_rel_name(relid)),
             errdetail("gsb reads and writes a registered relation only while it is an ordinary "
                       "table."),
             errhint("Unregister it with gsb.unreplicate_table(), or make it a table again.")));
    return owner;
}

// Runs st as the owner of relid in a restricted security context with an
// empty search_path, the way PostgreSQL runs maintenance on behalf of a
// table's owner: whatever code the owner attached to the table (index
// expressions, constraints, defaults, triggers, rules) runs with the owner's
// rights, never with the caller's.
uint64 ExecuteAsOwner(Oid relid, const gsb::spi::Statement &st, gsb::spi::Reader read = nullptr,
                      void *read_arg = nullptr) {
    Oid owner = PlainTableOwner(relid);
    Oid save_userid;
    int save_sec;
    GetUserIdAndSecContext(&save_userid, &save_sec);
    SetUserIdAndSecContext(owner,
                           save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    int nest = NewGUCNestLevel();
    SetConfigOption("search_path", "", PGC_USERSET, PGC_S_SESSION);
    uint64 processed = 0;
    PG_TRY();
    { processed = gsb::spi::Execute(st, read, read_arg); }
    PG_FINALLY();
    {
        AtEOXact_GUC(false, nest);
        SetUserIdAndSecContext(save_userid, save_sec);
    }
    PG_END_TRY();
    return processed;
}

// Reader of gsb._read_as_owner: the columns of the one row as text.
void ReadOneRow(void *arg) {
    auto *out = static_cast<ArrayType **>(arg);
    if (SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_CARDINALITY_VIOLATION),
                        errmsg("gsb: the statement returned %lu rows, not one",
                               static_cast<unsigned long>(SPI_processed))));
    TupleDesc desc = SPI_tuptable->tupdesc;
    int n = desc->natts;
    Datum *values = static_cast<Datum *>(palloc0(sizeof(Datum) * (n > 0 ? n : 1)));
    bool *nulls = static_cast<bool *>(palloc0(sizeof(bool) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) {
        char *v = SPI_getvalue(SPI_tuptable->vals[0], desc, i + 1);
        nulls[i] = v == nullptr;
        if (v != nullptr)
            values[i] = PointerGetDatum(cstring_to_text(v));
    }
    // Made in the caller's context: SPI_finish frees SPI's own.
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    int dims[1] = {n};
    int lbs[1] = {1};
    *out = construct_md_array(values, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT);
    MemoryContextSwitchTo(old);
}

} // namespace

// gsb._run_as_owner(rel regclass, sql text, rows text[]) RETURNS bigint
// Runs one statement ($1 = rows) as the owner of rel (ExecuteAsOwner).
// Returns the rows processed.
Datum gsb_run_as_owner(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
    Oid types[1] = {TEXTARRAYOID};
    Datum values[1] = {PG_GETARG_DATUM(2)};
    gsb::spi::Statement st;
    st.sql = sql;
    st.nargs = 1;
    st.types = types;
    st.values = values;
    st.read_only = false;
    st.failure = "statement failed";
    PG_RETURN_INT64(static_cast<int64>(ExecuteAsOwner(relid, st)));
}

// gsb._read_as_owner(rel regclass, sql text) RETURNS text[]
// Runs one read-only statement that returns one row as the owner of rel
// (ExecuteAsOwner), under the caller's snapshot, and returns its columns as
// text. How verify and the daily copy read a table: never with their own
// (superuser) rights.
Datum gsb_read_as_owner(PG_FUNCTION_ARGS) {
    Oid relid = PG_GETARG_OID(0);
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
    gsb::spi::Statement st;
    st.sql = sql;
    st.read_only = true;
    st.expect = SPI_OK_SELECT;
    st.failure = "statement failed";
    ArrayType *row = nullptr;
    ExecuteAsOwner(relid, st, ReadOneRow, &row);
    PG_RETURN_ARRAYTYPE_P(row);
}

extern "C" {
PG_FUNCTION_INFO_V1(gsb_conninfo_has_password);
}

// gsb._conninfo_has_password(conninfo text) RETURNS boolean
// Whether the connection string sets a non-empty password. A string libpq
// cannot parse has none (add_peer's connection then fails with libpq's own
// error).
Datum gsb_conninfo_has_password(PG_FUNCTION_ARGS) {
    char *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *err = nullptr;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    bool has = false;
    if (opts != nullptr) {
        for (PQconninfoOption *o = opts; o->keyword != nullptr; o++)
            if (strcmp(o->keyword, "password") == 0 && o->val != nullptr && o->val[0] != '\0')
                has = true;
        PQconninfoFree(opts);
    }
    if (err != nullptr)
        PQfreemem(err);
    PG_RETURN_BOOL(has);
}
