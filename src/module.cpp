// module.cpp: the library's entry: PG_MODULE_MAGIC, _PG_init and gsb's GUCs.
// Not for: the output plugin's callbacks (output_plugin.cpp) or workers.
#include "pg.hpp"

extern "C" {
#include "pgtime.h"
#include "utils/guc.h"
}

#include <climits>
#include <cstdio>
#include <cstring>

#include "gsb.hpp"
#include "interop.hpp"
#include "protocol.hpp"
#include "shared_state.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace gsb {

char *guc_database = nullptr;
int guc_heartbeat_interval_ms = 1000;
int guc_failover_timeout_ms = 10000;
int guc_failback_delay_ms = 60000;
int guc_config_sync_interval_s = 86400;
char *guc_maintenance_window = nullptr;
#ifdef GSB_TEST_HOOKS
char *guc_fault_injection = nullptr;
#endif
int guc_apply_timeout_ms = 60000;
int guc_peer_timeout_ms = 10000;
int guc_http_port = 0;
char *guc_http_listen_addresses = nullptr;
char *guc_http_status_token = nullptr;
int guc_conflict_retention_s = 7 * 86400;
int guc_site_events_retention_s = 90 * 86400;
bool guc_record_conflicts = true;
int guc_clock_warning_ms = 1000;
bool guc_fence_writes = false;
int guc_ddl_from_peer = static_cast<int>(DdlFromPeer::kOn);

#ifdef GSB_TEST_HOOKS
bool FaultInjected(const char *point) {
    if (guc_fault_injection == nullptr || guc_fault_injection[0] == '\0')
        return false;
    // A comma-separated list of names; match whole names only.
    size_t len = strlen(point);
    for (const char *p = guc_fault_injection; (p = strstr(p, point)) != nullptr; p += len) {
        bool starts = p == guc_fault_injection || p[-1] == ',' || p[-1] == ' ';
        bool ends = p[len] == '\0' || p[len] == ',' || p[len] == ' ';
        if (starts && ends)
            return true;
    }
    return false;
}
#endif

unsigned SpokenProtocolVersion() {
    return protocol::kVersion + (FaultInjected("protocol_version_next") ? 1 : 0);
}

namespace {

// gsb.maintenance_window: '' or 'HH:MM-HH:MM Time/Zone'.
bool CheckMaintenanceWindow(char **newval, void **, GucSource) {
    const char *v = *newval;
    if (v == nullptr || v[0] == '\0')
        return true;
    int h1, m1, h2, m2, used = 0;
    char zone[128];
    if (sscanf(v, " %d:%d - %d:%d %127s %n", &h1, &m1, &h2, &m2, zone, &used) != 5 ||
        v[used] != '\0' || h1 < 0 || h1 > 23 || h2 < 0 || h2 > 23 || m1 < 0 || m1 > 59 || m2 < 0 ||
        m2 > 59) {
        GUC_check_errdetail("Write it as 'HH:MM-HH:MM Time/Zone', e.g. "
                            "'19:00-21:00 America/Los_Angeles'.");
        return false;
    }
    if (pg_tzset(zone) == nullptr) {
        GUC_check_errdetail("Time zone \"%s\" is not known.", zone);
        return false;
    }
    return true;
}

void DefineGucs() {
    DefineCustomStringVariable("gsb.database", "Database that gsb's workers serve.", nullptr,
                               &guc_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr,
                               nullptr);
    DefineCustomIntVariable("gsb.heartbeat_interval", "How often the site monitor checks the peer.",
                            nullptr, &guc_heartbeat_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.failover_timeout",
                            "The backup becomes active when the primary has been unreachable "
                            "this long; 0 turns automatic failover off.",
                            nullptr, &guc_failover_timeout_ms, 10000, 0, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.failback_delay",
                            "The primary becomes active again once reachable this long and "
                            "caught up; -1 means failback only by hand.",
                            nullptr, &guc_failback_delay_ms, 60000, -1, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.config_sync_interval",
                            "How often the backup copies the daily tables from the primary.",
                            nullptr, &guc_config_sync_interval_s, 86400, 1, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("gsb.maintenance_window",
                               "Daily maintenance window, e.g. '19:00-21:00 America/Los_Angeles'.",
                               nullptr, &guc_maintenance_window, "", PGC_SIGHUP, 0,
                               CheckMaintenanceWindow, nullptr, nullptr);
    DefineCustomIntVariable("gsb.apply_timeout",
                            "The apply worker drops a peer connection that has been silent this "
                            "long.",
                            nullptr, &guc_apply_timeout_ms, 60000, 0, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.peer_timeout",
                            "How long gsb's SQL functions wait for the peer: to connect, and "
                            "for each answer.",
                            "A function that asks the peer to wait (gsb.verify, "
                            "gsb.failback) adds that wait; statement_timeout, when shorter, "
                            "wins.",
                            &guc_peer_timeout_ms, 10000, 100, INT_MAX, PGC_USERSET, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.conflict_retention",
                            "The site monitor deletes rows of gsb.conflicts older than this; "
                            "0 keeps them forever.",
                            nullptr, &guc_conflict_retention_s, 7 * 86400, 0, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.site_events_retention",
                            "The site monitor deletes rows of gsb.site_events older than this "
                            "(on this site only); 0 keeps them forever.",
                            nullptr, &guc_site_events_retention_s, 90 * 86400, 0, INT_MAX,
                            PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("gsb.record_conflicts",
                             "Whether the apply workers record each conflict in gsb.conflicts.",
                             "Off: conflicts are decided the same way, but neither written to "
                             "gsb.conflicts nor logged.",
                             &guc_record_conflicts, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("gsb.clock_warning",
                            "The site monitor warns when the peer's clock is this far ahead of "
                            "or behind this site's; 0: never.",
                            "Conflicts between concurrent writes are decided by the two sites' "
                            "clocks (README, Conflicts).",
                            &guc_clock_warning_ms, 1000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    // Server-wide (SIGHUP), not per session: a client must not be able to
    // turn it off for itself.
    // A peer's replicated DDL runs here as the role it names; a site that
    // would not let a compromised peer name a superuser sets admin (or off).
    static const struct config_enum_entry kDdlFromPeer[] = {
        {"on", static_cast<int>(DdlFromPeer::kOn), false},
        {"admin", static_cast<int>(DdlFromPeer::kAdmin), false},
        {"off", static_cast<int>(DdlFromPeer::kOff), false},
        {nullptr, 0, false}};
    DefineCustomEnumVariable("gsb.ddl_from_peer",
                             "Which roles DDL replicated from the peer may run as on this site.",
                             "on: superusers and members of gsb_admin; admin: members of gsb_admin "
                             "that are not superusers; off: none (every replicated DDL command is "
                             "an apply error).",
                             &guc_ddl_from_peer, static_cast<int>(DdlFromPeer::kOn), kDdlFromPeer,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("gsb.fence_writes",
                             "Refuse client writes to realtime tables on a site that is not the "
                             "active site (or is fenced).",
                             "SQLSTATE 25006, with a hint naming the active site; gsb's own "
                             "workers are unaffected.",
                             &guc_fence_writes, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
#ifdef GSB_TEST_HOOKS
    DefineCustomStringVariable(
        "gsb.fault_injection", "Comma-separated fault points to trigger (tests only).", nullptr,
        &guc_fault_injection, "", PGC_SUSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
#endif
    DefineCustomIntVariable(
        "gsb.http_port", "TCP port of the HTTP endpoint for load balancers; 0 turns it off.",
        nullptr, &guc_http_port, 0, 0, 65535, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("gsb.http_listen_addresses",
                               "Comma-separated addresses the HTTP endpoint listens on ('*': all).",
                               nullptr, &guc_http_listen_addresses, "localhost", PGC_SIGHUP, 0,
                               nullptr, nullptr, nullptr);
    // A secret: only superusers may read it, and it is never logged by gsb.
    DefineCustomStringVariable("gsb.http_status_token",
                               "Bearer token that lets an HTTP client see the whole /status "
                               "(peers' positions and errors); "
                               "empty: /status shows role and state only, to everyone.",
                               nullptr, &guc_http_status_token, "", PGC_SIGHUP,
                               GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("gsb");
}

} // namespace
} // namespace gsb

void _PG_init(void) {
    gsb::DefineGucs();
    if (process_shared_preload_libraries_in_progress) {
        gsb::RequestSharedState();
        gsb::RegisterSupervisor();
    }
}
