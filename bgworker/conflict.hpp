// conflict.hpp: the one place where gsb decides what happens when a change
// from the peer meets a local row that the peer had not seen.
//
// Both sites run the same rules on the same facts, so they end with the same
// row: the later commit timestamp wins, equal timestamps go to the primary
// site's change, and a delete wins over a concurrent update. The decision is
// a pure function without PostgreSQL (test/unit/conflict_test.cpp builds it
// alone and plays each case from both sites); gathering its facts and
// recording it is the apply back end's job (apply_conflict.hpp).
#pragma once

#include <cstdint>

namespace gsb::conflict {

// kUpdateKeyTaken: a remote update that changes the row's key meets another
// local row that holds the new key already (Local describes that row, the
// holder); kUpdate has already decided to apply the update to its own row.
enum class Op { kInsert, kUpdate, kDelete, kUpdateKeyTaken };

enum class Kind {
    kNone,          // not a conflict: apply as usual
    kInsertExists,  // the key is already there, written by another site
    kUpdateMissing, // the row to update is not here (deleted here, or never came)
    kUpdateDiffers, // the local row was changed by a change the peer had not seen
    kDeleteMissing, // the row to delete is not here
    kDeleteDiffers, // the local row was changed by a change the peer had not seen
    kUpdateExists,  // the update's new key is held by another local row
};

// For kUpdateExists: kApplyRemote deletes the holder and applies the update;
// kKeepLocal keeps the holder and deletes the updated row's old version (the
// peer ends with the holder alone under the new key: see conflict.cpp).
enum class Resolution { kApplyRemote, kKeepLocal, kSkip };

// What the apply worker found locally under the remote change's key.
struct Local {
    bool exists = false;
    // The local row was last written by applying this same peer's change:
    // the peer saw it, whatever the timestamps say.
    bool from_peer = false;
    // The local row already equals the remote row: nothing to decide.
    bool identical = false;
    int64_t commit_ts = 0; // PostgreSQL timestamp of the local row's commit
};

struct Decision {
    Kind kind;
    Resolution resolution;
};

// remote_ts: the remote transaction's commit timestamp.
// local_is_primary: this site is the primary (it wins ties).
Decision Decide(Op op, const Local &local, int64_t remote_ts, bool local_is_primary);

// ---------------------------------------------------------------------------
// The hybrid logical clock that the output plugin stamps this site's
// transactions with (README, Conflicts). A transaction committed here after
// this site applied a transaction of the peer's gets a later time than that
// one, whatever the two clocks say: stamp = max(commit_ts, floor + 1 us,
// previous stamp), where floor is the newest peer timestamp applied here
// before it in WAL order. The plugin calls Observe for each applied
// transaction's commit and Stamp for each local transaction, both in WAL
// order. Stamps never decrease.
// ---------------------------------------------------------------------------
class HybridClock {
  public:
    // A transaction of the peer's, committed here with its timestamp ts.
    void Observe(int64_t ts) {
        if (ts > floor_)
            floor_ = ts;
    }
    // The time to send for a local transaction that committed at commit_ts.
    int64_t Stamp(int64_t commit_ts);

    int64_t floor() const { return floor_; }

  private:
    int64_t floor_ = INT64_MIN; // nothing observed yet
    int64_t last_ = INT64_MIN;  // nothing stamped yet
};

const char *KindName(Kind k);
const char *ResolutionName(Resolution r);

} // namespace gsb::conflict
