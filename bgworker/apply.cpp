// apply.cpp: the apply back end's entry points (see apply.hpp): each message
// the worker hands over is routed to its part, under an error context that
// names the peer, the remote transaction, the table and the column.
//
// The parts, as PostgreSQL keeps logical/worker.c apart from
// executor/execReplication.c:
//   apply_relation  the peer's relations mapped onto local tables; type input
//   apply_exec      executor state, kept for a run of changes on one table
//   apply_keyscan   finding the local row under a key
//   apply_rows      inserts (batched), updates, deletes, truncates
//   apply_conflict  what the conflict rules are told, and their record
//
// PostgreSQL-style code only: no exceptions, no objects with destructors.
// Everything allocated per change lives in the session's message context,
// which the worker resets after each message; the relation map lives in its
// own context and is rebuilt when the local relation changes.
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/acl.h"
#include "utils/snapmgr.h"
}

#include "apply.hpp"
#include "apply_exec.hpp"
#include "apply_relation.hpp"
#include "apply_rows.hpp"
#include "ddl.hpp"
#include "gsb.hpp"

namespace gsb::apply {

void Init(Session *s) {
    GetUserIdAndSecContext(&s->worker_userid, &s->worker_sec_context);
    InitRelationMap();
}

void HandleRelation(Session *s, const protocol::Message &msg) {
    FlushBatch(s); // buffered rows belong to the relation as it was
    CloseRowExec();
    DefineRelation(msg);
}

void CheckRelation(Session *s, uint32 remote_relid) {
    ErrorContextArg ctx = {s, "a relation", nullptr, -1};
    ErrorContextCallback cb;
    PushErrorContext(&cb, &ctx);
    RelMapEntry *e = LookupEntry(remote_relid);
    e->resolved = false;
    ResolveEntry(s, e, &ctx);
    error_context_stack = cb.previous;
}

void FinishTransaction(Session *s) {
    FlushBatch(s);
    CloseRowExec();
    CloseTarget();
}

void ForgetTransaction() {
    ForgetExecState();
    DiscardBatch();
}

void HandleChange(Session *s, const protocol::Message &msg) {
    const char *action = msg.type == protocol::MsgType::kInsert   ? "an insert"
                         : msg.type == protocol::MsgType::kUpdate ? "an update"
                         : msg.type == protocol::MsgType::kDelete ? "a delete"
                                                                  : "a truncate";
    ErrorContextArg ctx = {s, action, nullptr, -1};
    ErrorContextCallback cb;
    PushErrorContext(&cb, &ctx);

    PushActiveSnapshot(GetTransactionSnapshot());
    if (msg.type == protocol::MsgType::kTruncate) {
        FlushBatch(s);
        CloseRowExec(); // TRUNCATE refuses a table this session holds open
        CloseTarget();
        ApplyTruncate(s, msg, &ctx);
    } else {
        RelMapEntry *e = LookupEntry(msg.relid);
        ctx.rel = e;
        ResolveEntry(s, e, &ctx);
        Relation rel = OpenTarget(e->localrelid);
        if (msg.type == protocol::MsgType::kInsert && PlainTable(rel)) {
            AddToBatch(s, e, rel, msg, &ctx);
            PopActiveSnapshot();
            error_context_stack = cb.previous;
            return;
        }
        // Anything else keeps the order of changes: the batch goes first.
        FlushBatch(s);
        SavedUser saved = BecomeOwner(rel);
        switch (msg.type) {
        case protocol::MsgType::kInsert:
            ApplyInsert(s, e, rel, msg, &ctx);
            break;
        case protocol::MsgType::kUpdate:
            ApplyUpdate(s, e, rel, msg, &ctx);
            break;
        case protocol::MsgType::kDelete:
            ApplyDelete(s, e, rel, msg, &ctx);
            break;
        default:
            ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                            errmsg("gsb: unexpected message type in a transaction")));
        }
        RestoreUser(saved);
    }
    PopActiveSnapshot();
    CommandCounterIncrement();
    error_context_stack = cb.previous;
}

} // namespace gsb::apply

namespace gsb::apply {

void HandleDdl(Session *s, const protocol::Message &msg) {
    if (memchr(msg.role.data(), '\0', msg.role.size()) != nullptr ||
        memchr(msg.search_path.data(), '\0', msg.search_path.size()) != nullptr ||
        memchr(msg.command.data(), '\0', msg.command.size()) != nullptr)
        ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION),
                        errmsg("gsb: peer \"%s\" sent a DDL message with a NUL byte in it",
                               s->peer_name)));
    char *role = pnstrdup(msg.role.data(), msg.role.size());
    char *path = pnstrdup(msg.search_path.data(), msg.search_path.size());
    char *command = pnstrdup(msg.command.data(), msg.command.size());
    // The error context names the command (shortened) and the role, so that
    // gsb.status says which command fails here.
    constexpr int kShown = 200;
    char *shown = static_cast<int>(strlen(command)) > kShown
                      ? psprintf("%s...", pnstrdup(command, kShown))
                      : command;
    const char *action = psprintf("the DDL command \"%s\" as role \"%s\"", shown, role);
    ErrorContextArg ctx = {s, action, nullptr, -1};
    ErrorContextCallback cb;
    PushErrorContext(&cb, &ctx);

    // Nothing of this transaction may hold the tables the command changes:
    // buffered inserts go first, kept executor state and the open target
    // are closed (ALTER TABLE refuses a table this session has open).
    FlushBatch(s);
    CloseRowExec();
    CloseTarget();

    Oid roleid = get_role_oid(role, true);
    if (!OidIsValid(roleid))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("gsb: role \"%s\", which ran a replicated DDL command on peer \"%s\", "
                        "does not exist on this site",
                        role, s->peer_name),
                 errhint("Create the role on this site, with the rights the command needs and "
                         "membership in gsb_admin; the apply resumes by itself.")));
    ddl::CheckAdmin(roleid, psprintf("role \"%s\"", role));
    // gsb.ddl_from_peer: how far this site trusts the peer's choice of role.
    if (guc_ddl_from_peer == static_cast<int>(DdlFromPeer::kOff) ||
        (guc_ddl_from_peer == static_cast<int>(DdlFromPeer::kAdmin) && superuser_arg(roleid)))
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("gsb: replicated DDL from peer \"%s\" as role \"%s\" is not allowed here "
                        "(gsb.ddl_from_peer = %s)",
                        s->peer_name, role,
                        guc_ddl_from_peer == static_cast<int>(DdlFromPeer::kOff) ? "off" : "admin"),
                 errhint("The stream waits here (a replicated command is never skipped): "
                         "allow it with gsb.ddl_from_peer and a reload, and the apply resumes "
                         "by itself.")));
    PushActiveSnapshot(GetTransactionSnapshot());
    ddl::Run(command, roleid, path, s->peer_name);
    PopActiveSnapshot();
    // Every relation map entry resolves again (the relcache callback marks
    // the changed tables; the batch's slots follow the new row shape).
    error_context_stack = cb.previous;
}

} // namespace gsb::apply
