// names.hpp: the names gsb gives to replication objects, built here only.
// The SQL API reads them through gsb._slot_name() and gsb._origin_name()
// (sql_functions.cpp); the apply worker builds them with these functions.
// Not for: checking site names (gsb._check_peer_name() and gsb.init_site()
// allow 1 to 40 of [a-z0-9_], so a name is at most 44 bytes, below NAMEDATALEN).
#pragma once

#include <string>

namespace gsb {

// The logical replication slot, on a peer, from which site `site` reads that
// peer's changes.
inline std::string SlotName(const std::string &site) {
    return "gsb_" + site;
}

// The replication origin under which a site applies the changes of peer
// `peer`, and which keeps how far it has applied them.
inline std::string OriginName(const std::string &peer) {
    return "gsb_" + peer;
}

} // namespace gsb
