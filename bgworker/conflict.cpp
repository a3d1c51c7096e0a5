// conflict.cpp: gsb's conflict rules (see conflict.hpp).
//
// A local row whose commit is older than the remote change may have been
// seen by the peer (it was replicated before the peer changed the row), or
// may be concurrent; either way the remote change is newer and wins, so it
// is applied without a conflict record. Only a local row at least as new as
// the remote change proves that the peer had not seen it.
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
    }
    return {Kind::kNone, Resolution::kApplyRemote};
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
