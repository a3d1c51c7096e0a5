// conflict.cpp: gsb's conflict rules (see conflict.hpp).
//
// A local row whose commit is older than the remote change may have been
// seen by the peer (it was replicated before the peer changed the row), or
// may be concurrent; either way the remote change is newer and wins, so it
// is applied without a conflict record. Only a local row at least as new as
// the remote change proves that the peer had not seen it.
//
// An update that moves a row to key K while another local row R holds K
// (kUpdateKeyTaken, kind update_exists) is last-writer-wins between the
// update and R's last write, from both sites' view: the peer changed a row
// onto K without R there, so R (inserted here, or moved here by an update)
// is concurrent with it, and the peer has R's change on its way, where it
// meets the peer's moved row under K (as insert_exists or as update_exists
// again) and is decided by the same comparison the other way round. The
// winner ends alone under K on both sites: if the update wins, R is deleted
// here and the update applied (the peer keeps its row under K); if R wins,
// R stays and the updated row's old version is deleted here, since on the
// peer that row now sits under K, where R's change replaces it (R was
// inserted: insert_exists, apply_remote) or deletes it (R was moved there:
// update_exists, apply_remote).
#include "conflict.hpp"

namespace gsb::conflict {
namespace {

bool RemoteWins(int64_t remote_ts, int64_t local_ts, bool local_is_primary) {
    if (remote_ts != local_ts)
        return remote_ts > local_ts;
    return !local_is_primary; // a tie goes to the primary site's change
}

} // namespace

Decision Decide(Op op, const Local &local, int64_t remote_ts, bool local_is_primary) {
    switch (op) {
    case Op::kInsert:
        if (!local.exists || local.from_peer || local.identical)
            return {Kind::kNone, Resolution::kApplyRemote};
        return {Kind::kInsertExists, RemoteWins(remote_ts, local.commit_ts, local_is_primary)
                                         ? Resolution::kApplyRemote
                                         : Resolution::kKeepLocal};
    case Op::kUpdate:
        if (!local.exists)
            return {Kind::kUpdateMissing, Resolution::kSkip};
        if (local.from_peer || local.identical || local.commit_ts < remote_ts)
            return {Kind::kNone, Resolution::kApplyRemote};
        return {Kind::kUpdateDiffers, RemoteWins(remote_ts, local.commit_ts, local_is_primary)
                                          ? Resolution::kApplyRemote
                                          : Resolution::kKeepLocal};
    case Op::kDelete:
        if (!local.exists)
            return {Kind::kDeleteMissing, Resolution::kSkip};
        if (local.from_peer || local.commit_ts < remote_ts)
            return {Kind::kNone, Resolution::kApplyRemote};
        // A delete wins over a concurrent update, whatever the timestamps.
        return {Kind::kDeleteDiffers, Resolution::kApplyRemote};
    case Op::kUpdateKeyTaken:
        // No exemption for a holder the peer wrote or one equal to the
        // remote row: the peer cannot have had it under K when it moved its
        // row there, and either outcome must be the one the peer reaches.
        if (!local.exists)
            return {Kind::kNone, Resolution::kApplyRemote};
        return {Kind::kUpdateExists, RemoteWins(remote_ts, local.commit_ts, local_is_primary)
                                         ? Resolution::kApplyRemote
                                         : Resolution::kKeepLocal};
    }
    return {Kind::kNone, Resolution::kApplyRemote};
}

int64_t HybridClock::Stamp(int64_t commit_ts) {
    int64_t t = commit_ts;
    if (floor_ >= t && floor_ < INT64_MAX)
        t = floor_ + 1;
    if (last_ > t)
        t = last_;
    last_ = t;
    return t;
}

const char *KindName(Kind k) {
    switch (k) {
    case Kind::kNone:
        return "none";
    case Kind::kInsertExists:
        return "insert_exists";
    case Kind::kUpdateMissing:
        return "update_missing";
    case Kind::kUpdateDiffers:
        return "update_differs";
    case Kind::kDeleteMissing:
        return "delete_missing";
    case Kind::kDeleteDiffers:
        return "delete_differs";
    case Kind::kUpdateExists:
        return "update_exists";
    }
    return "none";
}

const char *ResolutionName(Resolution r) {
    switch (r) {
    case Resolution::kApplyRemote:
        return "apply_remote";
    case Resolution::kKeepLocal:
        return "keep_local";
    case Resolution::kSkip:
        return "skip";
    }
    return "skip";
}

} // namespace gsb::conflict
