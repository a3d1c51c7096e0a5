-- Peers on one cluster: every misuse of add_peer/drop_peer is a clear error,
-- and the monitoring objects are admin-only.
SELECT try($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=5')$q$);
SELECT try($q$SELECT gsb.add_peer('ams', 'host=127.0.0.1 port=1 dbnme=postgres')$q$);
SELECT try($q$SELECT gsb.add_peer('ams', 'this is not a conninfo')$q$);
SELECT try($q$SELECT gsb.add_peer('ams', '')$q$);
SELECT try($q$SELECT gsb.add_peer('ams', NULL)$q$);
SELECT try($q$SELECT gsb.add_peer('Bad Name', 'dbname=postgres')$q$);
SELECT try($q$SELECT gsb.add_peer('sjc', 'dbname=postgres')$q$);
SELECT try($q$SELECT gsb.add_peer('ams', 'dbname=postgres', NULL)$q$);
-- The database itself answers as site sjc, not ams.
SELECT try(format($q$SELECT gsb.add_peer('ams', 'port=%s host=%s dbname=%s')$q$,
                  current_setting('port'), current_setting('unix_socket_directories'),
                  current_database()));
SELECT try($q$SELECT gsb.drop_peer('ams')$q$);
SELECT try($q$SELECT gsb.wait_for_peer()$q$);
SELECT try($q$SELECT * FROM gsb.verify()$q$);
SELECT count(*) AS peers FROM gsb.peers;
SELECT * FROM gsb.status;

-- Not for PUBLIC: peers (conninfo), status, conflicts.
CREATE ROLE gsb_peer_reader;
SET ROLE gsb_peer_reader;
SELECT try('SELECT * FROM gsb.peers');
SELECT try('SELECT * FROM gsb.status');
SELECT try('SELECT * FROM gsb.conflicts');
SELECT try($q$SELECT gsb.add_peer('ams', 'dbname=postgres')$q$);
SELECT try($q$SELECT gsb.drop_peer('ams')$q$);
RESET ROLE;
DROP ROLE gsb_peer_reader;
