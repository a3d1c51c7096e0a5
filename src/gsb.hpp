// gsb.hpp: settings and start-up hooks shared across gsb's modules.
// Not for: protocol (protocol.hpp), interop (interop.hpp), catalogs (catalog.hpp).
#pragma once

namespace gsb {

// GUC values, owned by module.cpp. Intervals are in milliseconds.
extern char *guc_database;
extern int guc_heartbeat_interval_ms;
extern int guc_failover_timeout_ms;
extern int guc_failback_delay_ms;
extern int guc_config_sync_interval_s;
extern char *guc_maintenance_window;
#ifdef GSB_TEST_HOOKS
extern char *guc_fault_injection;
#endif
extern int guc_apply_timeout_ms;
extern int guc_peer_timeout_ms;
extern int guc_http_port;
extern char *guc_http_listen_addresses;
extern char *guc_http_status_token;
// History retention, in seconds; 0: keep forever (the site monitor prunes).
extern int guc_conflict_retention_s;
extern int guc_site_events_retention_s;
extern bool guc_record_conflicts;
extern int guc_clock_warning_ms;
// Client writes to realtime tables on a site that is not active are refused.
extern bool guc_fence_writes;
// Which roles DDL from the peer (gsb.replicate_ddl there) may run as here.
enum class DdlFromPeer { kOff = 0, kAdmin = 1, kOn = 2 };
extern int guc_ddl_from_peer;

// True when `point` is named in gsb.fault_injection (a test hook; superuser).
// Only the test build (GSB_TEST_HOOKS) has the setting; in the default build
// every fault point is a constant false, and the compiler drops its code.
#ifdef GSB_TEST_HOOKS
bool FaultInjected(const char *point);
#else
constexpr bool FaultInjected(const char *) {
    return false;
}
#endif

// The gsb protocol version this site speaks: protocol::kVersion, or one more
// under the fault point protocol_version_next (how the tests make a peer that
// speaks a newer version). gsb.protocol_version() and the apply worker's
// START_REPLICATION both use it.
unsigned SpokenProtocolVersion();

// Registers the supervisor background worker; called from _PG_init when gsb is
// in shared_preload_libraries. Defined in bgworker/supervisor.cpp.
void RegisterSupervisor();

} // namespace gsb
