-- src/sql/90_privileges.sql: who may call and read what.

------------------------------------------------------------------------------
-- Privileges. Admin functions: superusers and gsb_admin only.
------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA gsb FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gsb.init_site(text, text),
    gsb.replicate_table(regclass, text),
    gsb.unreplicate_table(regclass),
    gsb.add_peer(text, text, boolean),
    gsb.drop_peer(text),
    gsb.add_witness(text, text),
    gsb.drop_witness(text),
    gsb.wait_for_peer(interval),
    gsb.verify(regclass),
    gsb.failover(text),
    gsb.failback(),
    gsb.begin_maintenance(),
    gsb.end_maintenance(),
    gsb.sync_config()
  TO gsb_admin;
GRANT EXECUTE ON FUNCTION
    gsb.site_name(), gsb.site_role(), gsb.next_id(regclass), gsb.protocol_version(),
    gsb.create_account(text, text),
    gsb.schedule_meeting(bigint, text, timestamptz, text),
    gsb.active_site(), gsb.is_active(), gsb.detect_backup(),
    gsb.start_meeting(bigint), gsb.join_meeting(bigint), gsb.end_meeting(bigint),
    gsb.usage_report(timestamptz, timestamptz)
  TO PUBLIC;
GRANT EXECUTE ON FUNCTION gsb._site(), gsb._primary_name(), gsb._meeting(bigint),
    gsb._record_usage(gsb.meetings, text, timestamptz, timestamptz),
    gsb._check_peer_name(text) TO PUBLIC;

REVOKE ALL ON ALL TABLES IN SCHEMA gsb FROM PUBLIC;
GRANT SELECT ON gsb.site, gsb.tables, gsb.replicated_tables TO PUBLIC;
GRANT SELECT ON gsb.status, gsb.conflicts, gsb.peers, gsb.site_events, gsb.site_state
  TO gsb_admin;
-- What gsb.status reads.
GRANT EXECUTE ON FUNCTION gsb._worker_status(), gsb._monitor_status(), gsb._witness_status()
  TO gsb_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    gsb.accounts, gsb.meetings, gsb.usage,
    gsb.site_config, gsb.custom_pages, gsb.client_versions
  TO gsb_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA gsb TO gsb_admin;
