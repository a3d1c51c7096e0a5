// ddl.hpp: gsb.replicate_ddl's one way of running a DDL command, shared by
// the SQL function (the site where it is called) and the apply worker (every
// peer, when the command arrives in the stream): the command checked to be
// DDL, run as a role with a search_path, and what it did recorded in
// gsb.ddl_log (which the output plugin turns into a DDL message) and
// gsb.ddl_columns (which columns it dropped, renamed or retyped, so that rows
// still in flight in the old shape can be applied: apply_relation.cpp).
//
// PostgreSQL-style functions (raise PostgreSQL errors, no C++ objects with
// destructors): call them from frames without C++ objects or inside
// gsb::PgCall. Not for: the wire message (protocol.hpp, output_plugin.cpp).
#pragma once

#include "pg.hpp"

namespace gsb::ddl {

// Raises (22023) unless command holds at least one statement and every one
// of them is DDL (PostgreSQL's log_statement = 'ddl' class).
void CheckDdlOnly(const char *command);

// Raises (42501) unless roleid is a superuser or has the rights of
// gsb_admin; who names the role in the message ("the caller", "role x").
void CheckAdmin(Oid roleid, const char *who);

// Runs command in the current transaction as roleid, in a restricted
// security context, with search_path, and records it: the columns of
// realtime tables it dropped, renamed or retyped in gsb.ddl_columns, and
// the command in gsb.ddl_log with origin (nullptr: run here, so the output
// plugin sends it to the peers; a peer's name: applied from it, and the
// apply worker's replication origin keeps it from going back).
void Run(const char *command, Oid roleid, const char *search_path, const char *origin);

} // namespace gsb::ddl
