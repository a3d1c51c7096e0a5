// ddl.cpp: running a replicated DDL command (see ddl.hpp), and the SQL
// function gsb.replicate_ddl(command text).
#include "pg.hpp"

extern "C" {
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "parser/parser.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#include "catalog.hpp"
#include "ddl.hpp"
#include "interop.hpp"
#include "spi.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(gsb_replicate_ddl);
}

namespace gsb::ddl {
namespace {

// The columns (realtime tables only) that a command may change, before it
// runs: a jsonb array of {relid, attnum, attname, typ}, typ as the relation
// messages name types (format_type without typmod).
constexpr const char *kColumnsBefore =
    "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('relid', a.attrelid, "
    "'attnum', a.attnum, 'attname', a.attname, 'typ', pg_catalog.format_type(a.atttypid, NULL)))"
    "::pg_catalog.text FROM gsb.tables t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid "
    "WHERE t.mode = 'realtime' AND a.attnum > 0 AND NOT a.attisdropped";

// What the command did to those columns: one row per column that is gone
// (new_name NULL), was renamed or changed its type. A table that is gone
// altogether has nothing left to apply rows to.
constexpr const char *kRecordColumns =
    "INSERT INTO gsb.ddl_columns (relid, attname, old_type, new_name, new_type) "
    "SELECT b.relid, b.attname, b.typ, a.attname::pg_catalog.text, "
    "pg_catalog.format_type(a.atttypid, NULL) "
    "FROM pg_catalog.jsonb_to_recordset(COALESCE($1::pg_catalog.jsonb, '[]')) "
    "AS b(relid pg_catalog.oid, attnum pg_catalog.int2, attname pg_catalog.text, "
    "typ pg_catalog.text) "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = b.relid AND a.attnum = b.attnum "
    "AND NOT a.attisdropped "
    "WHERE (a.attname IS NULL OR a.attname::pg_catalog.text <> b.attname "
    "OR pg_catalog.format_type(a.atttypid, NULL) <> b.typ) "
    "AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = b.relid)";

constexpr const char *kRecordCommand =
    "INSERT INTO gsb.ddl_log (role, search_path, command, origin, xid) "
    "VALUES ($1, $2, $3, $4, $5::pg_catalog.xid8)";

// gsb's own statements around the command run as the owner of gsb's
// catalogs, restricted, with an empty search_path: the caller's
// search_path (or the peer's) never resolves a name in them.
struct Bookkeeping {
    Oid saved_user;
    int saved_sec;
    int nest;
};

Bookkeeping BeginBookkeeping() {
    Bookkeeping b;
    GetUserIdAndSecContext(&b.saved_user, &b.saved_sec);
    Oid log = catalog::GsbRelation("ddl_log");
    if (!OidIsValid(log))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("gsb: table gsb.ddl_log is missing"),
                 errhint("Install or update the extension gsb.")));
    Relation rel = table_open(log, AccessShareLock);
    Oid owner = rel->rd_rel->relowner;
    table_close(rel, AccessShareLock);
    SetUserIdAndSecContext(owner, b.saved_sec | SECURITY_LOCAL_USERID_CHANGE |
                                      SECURITY_RESTRICTED_OPERATION);
    b.nest = NewGUCNestLevel();
    (void)set_config_option("search_path", "", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
    return b;
}

void EndBookkeeping(const Bookkeeping &b) {
    AtEOXact_GUC(true, b.nest);
    SetUserIdAndSecContext(b.saved_user, b.saved_sec);
}

void ReadText(void *arg) {
    auto *out = static_cast<char **>(arg);
    if (SPI_processed != 1)
        return;
    char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    if (v == nullptr)
        return;
    // Out of SPI's memory, which SPI_finish releases.
    size_t len = strlen(v) + 1;
    *out = static_cast<char *>(SPI_palloc(len));
    memcpy(*out, v, len);
}

} // namespace

void CheckDdlOnly(const char *command) {
    List *stmts = raw_parser(command, RAW_PARSE_DEFAULT);
    if (stmts == NIL)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("gsb.replicate_ddl: the command is empty"),
                        errhint("Give one or more DDL statements.")));
    ListCell *lc;
    int n = 0;
    foreach (lc, stmts) {
        n++;
        Node *stmt = lfirst_node(RawStmt, lc)->stmt;
        if (GetCommandLogLevel(stmt) != LOGSTMT_DDL)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("gsb.replicate_ddl runs DDL only; statement %d is %s", n,
                            GetCommandTagName(CreateCommandTag(stmt))),
                     errdetail("Only DDL runs on both sites: row changes already reach the peer "
                               "through the stream, and running them there too would apply them "
                               "twice."),
                     errhint("Run it as an ordinary statement, on one site.")));
    }
}

void CheckAdmin(Oid roleid, const char *who) {
    if (superuser_arg(roleid))
        return;
    Oid admin = get_role_oid("gsb_admin", true);
    if (OidIsValid(admin) && has_privs_of_role(roleid, admin))
        return;
    ereport(ERROR,
            (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
             errmsg("gsb.replicate_ddl: %s is neither a superuser nor a member of gsb_admin", who),
             errhint("Superusers and members of gsb_admin run replicated DDL.")));
}

void Run(const char *command, Oid roleid, const char *search_path, const char *origin) {
    CheckDdlOnly(command);
    search_path = pstrdup(search_path); // it may be the GUC's own string

    char *before = nullptr;
    Bookkeeping b = BeginBookkeeping();
    {
        spi::Statement st;
        st.sql = kColumnsBefore;
        st.failure = "could not read the columns of replicated tables";
        spi::Execute(st, ReadText, &before);
    }
    EndBookkeeping(b);

    // The command itself: as the role, restricted (as gsb runs every piece of
    // a user's code), with the search_path it was given. The same on every
    // site, so a command that the restriction refuses fails where it is
    // called, before it reaches a peer.
    Oid saved_user;
    int saved_sec;
    GetUserIdAndSecContext(&saved_user, &saved_sec);
    SetUserIdAndSecContext(roleid, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
                                       SECURITY_RESTRICTED_OPERATION);
    int nest = NewGUCNestLevel();
    (void)set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "gsb: SPI_connect failed");
    int rc = SPI_execute(command, false, 0);
    if (rc < 0)
        elog(ERROR, "gsb: the DDL command failed: %s", SPI_result_code_string(rc));
    SPI_finish();
    AtEOXact_GUC(true, nest);
    SetUserIdAndSecContext(saved_user, saved_sec);
    CommandCounterIncrement();
    // The (sub)transaction whose xid a table rewrite by the command left on
    // every row (SPI runs it in the current one).
    char *xid = psprintf(UINT64_FORMAT, U64FromFullTransactionId(GetCurrentFullTransactionId()));

    b = BeginBookkeeping();
    {
        Oid types[1] = {TEXTOID};
        Datum values[1] = {before != nullptr ? CStringGetTextDatum(before) : (Datum)0};
        const char nulls[1] = {before != nullptr ? ' ' : 'n'};
        spi::Statement st;
        st.sql = kRecordColumns;
        st.nargs = 1;
        st.types = types;
        st.values = values;
        st.nulls = nulls;
        st.read_only = false;
        st.expect = SPI_OK_INSERT;
        st.failure = "could not record the columns the DDL command changed";
        spi::Execute(st);
    }
    {
        char *role = GetUserNameFromId(roleid, false);
        Oid types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
        Datum values[5] = {CStringGetTextDatum(role), CStringGetTextDatum(search_path),
                           CStringGetTextDatum(command),
                           origin != nullptr ? CStringGetTextDatum(origin) : (Datum)0,
                           CStringGetTextDatum(xid)};
        const char nulls[5] = {' ', ' ', ' ', origin != nullptr ? ' ' : 'n', ' '};
        spi::Statement st;
        st.sql = kRecordCommand;
        st.nargs = 5;
        st.types = types;
        st.values = values;
        st.nulls = nulls;
        st.read_only = false;
        st.expect = SPI_OK_INSERT;
        st.failure = "could not record the DDL command";
        spi::Execute(st);
    }
    EndBookkeeping(b);
    CommandCounterIncrement();
}

} // namespace gsb::ddl

// gsb.replicate_ddl(command text): runs command here as the caller
// (current_user) and, through gsb.ddl_log and the stream, on every peer at
// the same point of the stream, as the role of the same name there.
Datum gsb_replicate_ddl(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("gsb.replicate_ddl: command is NULL"),
                        errhint("Give one or more DDL statements.")));
    char *command = text_to_cstring(PG_GETARG_TEXT_PP(0));
    gsb::Entry([&] {
        gsb::PgCall([&] {
            Oid caller = GetUserId();
            gsb::ddl::CheckAdmin(caller, "the current user");
            const char *path = GetConfigOption("search_path", false, false);
            MemoryContext caller_cxt = CurrentMemoryContext;
            PG_TRY();
            { gsb::ddl::Run(command, caller, path != nullptr ? path : "", nullptr); }
            PG_CATCH();
            {
                // The command's own error (a syntax error, a missing table)
                // says nothing about where it ran: add that.
                MemoryContextSwitchTo(caller_cxt);
                ErrorData *edata = CopyErrorData();
                FlushErrorState();
                if (edata->hint == nullptr)
                    edata->hint = pstrdup("gsb.replicate_ddl ran the command on this site first, "
                                          "and it failed here: nothing was sent to the peers.");
                ReThrowError(edata);
            }
            PG_END_TRY();
        });
    });
    PG_RETURN_VOID();
}
