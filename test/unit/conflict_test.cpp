// conflict_test.cpp: unit tests of gsb's conflict rules (bgworker/conflict.hpp).
//
// Three tables. The first pins conflict::Decide itself: for each operation
// and what is found locally, the kind and resolution. The second plays
// concurrent changes on the two sites: each site makes its own change, then
// receives the other's and applies it as the apply worker does (the local
// row's facts as apply_conflict.cpp gathers them, Decide, then the
// resolution), and both sites must end with the same row, the expected
// one. The third does the same with several keys and sequences of changes:
// rows moved between keys (update_exists), and a key deleted and inserted
// again against a later update (the rows lost to a delete that
// apply_conflict.hpp remembers). They need no server; they are not a test of
// how the apply worker finds rows or records conflicts.
#include "conflict.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace gsb::conflict {

// gtest prints kinds and resolutions by their names.
std::ostream &operator<<(std::ostream &os, Kind k);
std::ostream &operator<<(std::ostream &os, Resolution r);
std::ostream &operator<<(std::ostream &os, Kind k) {
    return os << KindName(k);
}
std::ostream &operator<<(std::ostream &os, Resolution r) {
    return os << ResolutionName(r);
}

namespace {

// ---------------------------------------------------------------------------
// Decide, case by case.
// ---------------------------------------------------------------------------
struct DecideCase {
    const char *name;
    Op op;
    Local local;
    int64_t remote_ts;
    bool local_is_primary;
    Kind kind;
    Resolution resolution;
};

Local Row(int64_t ts, bool from_peer = false, bool identical = false) {
    Local l;
    l.exists = true;
    l.from_peer = from_peer;
    l.identical = identical;
    l.commit_ts = ts;
    return l;
}

const Local kMissing{};

const DecideCase kDecideCases[] = {
    // Inserts.
    {"insert, no local row", Op::kInsert, kMissing, 100, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"insert over the peer's own row", Op::kInsert, Row(200, true), 100, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"insert of an identical row", Op::kInsert, Row(200, false, true), 100, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"insert, remote newer", Op::kInsert, Row(100), 200, true, Kind::kInsertExists,
     Resolution::kApplyRemote},
    {"insert, local newer", Op::kInsert, Row(200), 100, false, Kind::kInsertExists,
     Resolution::kKeepLocal},
    {"insert, tie on the primary", Op::kInsert, Row(100), 100, true, Kind::kInsertExists,
     Resolution::kKeepLocal},
    {"insert, tie on the backup", Op::kInsert, Row(100), 100, false, Kind::kInsertExists,
     Resolution::kApplyRemote},
    // Updates.
    {"update, no local row", Op::kUpdate, kMissing, 100, true, Kind::kUpdateMissing,
     Resolution::kSkip},
    {"update of the peer's own row", Op::kUpdate, Row(300, true), 100, false, Kind::kNone,
     Resolution::kApplyRemote},
    {"update to an identical row", Op::kUpdate, Row(300, false, true), 100, false, Kind::kNone,
     Resolution::kApplyRemote},
    {"update of an older local row", Op::kUpdate, Row(100), 200, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"update, local newer", Op::kUpdate, Row(200), 100, true, Kind::kUpdateDiffers,
     Resolution::kKeepLocal},
    {"update, tie on the primary", Op::kUpdate, Row(100), 100, true, Kind::kUpdateDiffers,
     Resolution::kKeepLocal},
    {"update, tie on the backup", Op::kUpdate, Row(100), 100, false, Kind::kUpdateDiffers,
     Resolution::kApplyRemote},
    // Deletes.
    {"delete, no local row", Op::kDelete, kMissing, 100, true, Kind::kDeleteMissing,
     Resolution::kSkip},
    {"delete of the peer's own row", Op::kDelete, Row(300, true), 100, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"delete of an older local row", Op::kDelete, Row(100), 200, false, Kind::kNone,
     Resolution::kApplyRemote},
    {"delete wins over a newer local update", Op::kDelete, Row(200), 100, true,
     Kind::kDeleteDiffers, Resolution::kApplyRemote},
    {"delete wins a tie on the backup", Op::kDelete, Row(100), 100, false, Kind::kDeleteDiffers,
     Resolution::kApplyRemote},
    // Updates that move their row to a key that another local row holds:
    // Local is that holder.
    {"new key free", Op::kUpdateKeyTaken, kMissing, 100, true, Kind::kNone,
     Resolution::kApplyRemote},
    {"new key held by an older row", Op::kUpdateKeyTaken, Row(100), 200, true, Kind::kUpdateExists,
     Resolution::kApplyRemote},
    {"new key held by a newer row", Op::kUpdateKeyTaken, Row(200), 100, false, Kind::kUpdateExists,
     Resolution::kKeepLocal},
    {"new key held, tie on the primary", Op::kUpdateKeyTaken, Row(100), 100, true,
     Kind::kUpdateExists, Resolution::kKeepLocal},
    {"new key held, tie on the backup", Op::kUpdateKeyTaken, Row(100), 100, false,
     Kind::kUpdateExists, Resolution::kApplyRemote},
    {"new key held by a newer row the peer wrote", Op::kUpdateKeyTaken, Row(200, true), 100, true,
     Kind::kUpdateExists, Resolution::kKeepLocal},
    {"new key held by an identical newer row", Op::kUpdateKeyTaken, Row(200, false, true), 100,
     true, Kind::kUpdateExists, Resolution::kKeepLocal},
};

class DecideTest : public ::testing::TestWithParam<DecideCase> {};

TEST_P(DecideTest, KindAndResolution) {
    const DecideCase &c = GetParam();
    Decision d = Decide(c.op, c.local, c.remote_ts, c.local_is_primary);
    EXPECT_EQ(d.kind, c.kind) << c.name;
    EXPECT_EQ(d.resolution, c.resolution) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Table, DecideTest, ::testing::ValuesIn(kDecideCases),
                         [](const ::testing::TestParamInfo<DecideCase> &info) {
                             std::string n;
                             for (const char *p = info.param.name; *p; p++)
                                 n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                             return n;
                         });

// ---------------------------------------------------------------------------
// Both sites' view of concurrent changes.
// ---------------------------------------------------------------------------

// A row under one key, as one site has it.
struct SiteRow {
    bool exists = false;
    int value = 0;
    int64_t ts = 0;         // commit time of the change that wrote it
    bool from_peer = false; // written by applying the other site's change
};

struct Change {
    Op op;
    int value; // insert and update
    int64_t ts;
};

// A change made on the site itself.
SiteRow ApplyLocal(SiteRow row, const Change &c) {
    switch (c.op) {
    case Op::kInsert:
        return {true, c.value, c.ts, false};
    case Op::kUpdate:
        if (!row.exists)
            return row; // an UPDATE that finds no row changes nothing
        return {true, c.value, c.ts, false};
    case Op::kDelete:
        return {};
    case Op::kUpdateKeyTaken: // not a change of its own (KeySitesTest plays it)
        return row;
    }
    return row;
}

// The other site's change, applied as the apply worker does: the facts it
// gathers about the local row (InspectLocal: whether rows are identical is
// asked only for an insert or update that found a row the peer did not
// write), the decision, and what the resolution does.
SiteRow ApplyRemote(SiteRow row, const Change &c, bool local_is_primary, Kind *kind) {
    Local l;
    l.exists = row.exists;
    if (row.exists) {
        l.commit_ts = row.ts;
        l.from_peer = row.from_peer;
        l.identical = c.op != Op::kDelete && !row.from_peer && row.value == c.value;
    }
    Decision d = Decide(c.op, l, c.ts, local_is_primary);
    *kind = d.kind;
    if (d.resolution != Resolution::kApplyRemote)
        return row;
    switch (c.op) {
    case Op::kInsert: // inserted, or the local row replaced
        return {true, c.value, c.ts, true};
    case Op::kUpdate:
        if (!row.exists)
            return row;
        return {true, c.value, c.ts, true};
    case Op::kDelete:
        return {};
    case Op::kUpdateKeyTaken: // not a change of its own (KeySitesTest plays it)
        return row;
    }
    return row;
}

struct SitesCase {
    const char *name;
    // The row both sites have before: written on the primary at ts 100 and
    // replicated to the backup; nullopt: no row under the key.
    std::optional<int> initial;
    std::optional<Change> on_primary; // made on the primary meanwhile
    std::optional<Change> on_backup;  // made on the backup meanwhile
    std::optional<int> final;         // the row both must end with; nullopt: none
    Kind primary_sees;                // the conflict the primary records
    Kind backup_sees;                 // the conflict the backup records
};

const SitesCase kSitesCases[] = {
    {"same key inserted on both, backup later", std::nullopt, Change{Op::kInsert, 1, 200},
     Change{Op::kInsert, 2, 300}, 2, Kind::kInsertExists, Kind::kInsertExists},
    {"same key inserted on both, primary later", std::nullopt, Change{Op::kInsert, 1, 300},
     Change{Op::kInsert, 2, 200}, 1, Kind::kInsertExists, Kind::kInsertExists},
    {"same key inserted on both at the same time", std::nullopt, Change{Op::kInsert, 1, 200},
     Change{Op::kInsert, 2, 200}, 1, Kind::kInsertExists, Kind::kInsertExists},
    {"same row inserted on both", std::nullopt, Change{Op::kInsert, 7, 200},
     Change{Op::kInsert, 7, 300}, 7, Kind::kNone, Kind::kNone},
    // The later update meets an older local row: it wins without a record.
    {"row updated on both, backup later", 0, Change{Op::kUpdate, 1, 200},
     Change{Op::kUpdate, 2, 300}, 2, Kind::kNone, Kind::kUpdateDiffers},
    {"row updated on both, primary later", 0, Change{Op::kUpdate, 1, 300},
     Change{Op::kUpdate, 2, 200}, 1, Kind::kUpdateDiffers, Kind::kNone},
    {"row updated on both at the same time", 0, Change{Op::kUpdate, 1, 200},
     Change{Op::kUpdate, 2, 200}, 1, Kind::kUpdateDiffers, Kind::kUpdateDiffers},
    {"row updated alike on both", 0, Change{Op::kUpdate, 5, 200}, Change{Op::kUpdate, 5, 300}, 5,
     Kind::kNone, Kind::kNone},
    {"updated on the primary, deleted on the backup later", 0, Change{Op::kUpdate, 1, 200},
     Change{Op::kDelete, 0, 300}, std::nullopt, Kind::kNone, Kind::kUpdateMissing},
    {"updated on the primary later than deleted on the backup", 0, Change{Op::kUpdate, 1, 300},
     Change{Op::kDelete, 0, 200}, std::nullopt, Kind::kDeleteDiffers, Kind::kUpdateMissing},
    {"deleted on the primary, updated on the backup later", 0, Change{Op::kDelete, 0, 200},
     Change{Op::kUpdate, 2, 300}, std::nullopt, Kind::kUpdateMissing, Kind::kDeleteDiffers},
    {"deleted on the primary, updated on the backup at the same time", 0,
     Change{Op::kDelete, 0, 200}, Change{Op::kUpdate, 2, 200}, std::nullopt, Kind::kUpdateMissing,
     Kind::kDeleteDiffers},
    {"deleted on both", 0, Change{Op::kDelete, 0, 200}, Change{Op::kDelete, 0, 300}, std::nullopt,
     Kind::kDeleteMissing, Kind::kDeleteMissing},
    {"updated on the primary only", 0, Change{Op::kUpdate, 1, 200}, std::nullopt, 1, Kind::kNone,
     Kind::kNone},
    {"updated on the backup only", 0, std::nullopt, Change{Op::kUpdate, 2, 200}, 2, Kind::kNone,
     Kind::kNone},
    {"deleted on the backup only", 0, std::nullopt, Change{Op::kDelete, 0, 200}, std::nullopt,
     Kind::kNone, Kind::kNone},
    {"inserted on the backup only", std::nullopt, std::nullopt, Change{Op::kInsert, 3, 200}, 3,
     Kind::kNone, Kind::kNone},
};

class SitesTest : public ::testing::TestWithParam<SitesCase> {};

TEST_P(SitesTest, BothSitesEndWithTheSameRow) {
    const SitesCase &c = GetParam();
    SiteRow primary, backup;
    if (c.initial) {
        primary = {true, *c.initial, 100, false};
        backup = {true, *c.initial, 100, true}; // the primary's row, replicated
    }
    if (c.on_primary)
        primary = ApplyLocal(primary, *c.on_primary);
    if (c.on_backup)
        backup = ApplyLocal(backup, *c.on_backup);
    // Then each receives the other's change.
    Kind primary_sees = Kind::kNone, backup_sees = Kind::kNone;
    if (c.on_backup)
        primary = ApplyRemote(primary, *c.on_backup, true, &primary_sees);
    if (c.on_primary)
        backup = ApplyRemote(backup, *c.on_primary, false, &backup_sees);

    EXPECT_EQ(primary.exists, backup.exists) << c.name;
    if (primary.exists && backup.exists) {
        EXPECT_EQ(primary.value, backup.value) << c.name;
    }
    EXPECT_EQ(primary.exists, c.final.has_value()) << c.name;
    if (c.final && primary.exists) {
        EXPECT_EQ(primary.value, *c.final) << c.name;
    }
    EXPECT_EQ(primary_sees, c.primary_sees) << c.name;
    EXPECT_EQ(backup_sees, c.backup_sees) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Table, SitesTest, ::testing::ValuesIn(kSitesCases),
                         [](const ::testing::TestParamInfo<SitesCase> &info) {
                             std::string n;
                             for (const char *p = info.param.name; *p; p++)
                                 n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                             return n;
                         });

// ---------------------------------------------------------------------------
// Both sites' view of concurrent changes that move rows between keys: a
// table of rows by key on each site. A remote update finds its row by the
// old key, as ApplyUpdate does; when it moves the row to a key that another
// row holds, the rules decide between that holder and the update
// (update_exists): the update wins and the holder goes, or the holder stays
// and the updated row's old version goes.
// ---------------------------------------------------------------------------
struct TableRow {
    int value = 0;
    int64_t ts = 0;
    bool from_peer = false;
};
using Table = std::map<int, TableRow>;

struct KeyChange {
    Op op;
    int key;     // the row's key (old key of an update)
    int new_key; // update: the key it moves to (the same key: not moved)
    int value;
    int64_t ts;
};

void ApplyLocalChange(Table &t, const KeyChange &c) {
    switch (c.op) {
    case Op::kInsert:
        t[c.key] = {c.value, c.ts, false};
        return;
    case Op::kUpdate:
        if (t.count(c.key) == 0)
            return;
        t.erase(c.key);
        t[c.new_key] = {c.value, c.ts, false};
        return;
    case Op::kDelete:
        t.erase(c.key);
        return;
    case Op::kUpdateKeyTaken:
        return;
    }
}

Local LocalOf(const Table &t, int key, const KeyChange &c) {
    Local l;
    auto it = t.find(key);
    if (it == t.end())
        return l;
    l.exists = true;
    l.commit_ts = it->second.ts;
    l.from_peer = it->second.from_peer;
    l.identical = c.op != Op::kDelete && !it->second.from_peer && it->second.value == c.value &&
                  c.key == c.new_key;
    return l;
}

// Rows lost to a concurrent delete (RememberLostRow in apply_conflict.hpp),
// by key, until the stream passes their time.
using LostRows = std::map<int, TableRow>;

void ApplyRemoteChange(Table &t, LostRows &lost, const KeyChange &c, bool local_is_primary,
                       std::vector<Kind> *seen) {
    for (auto it = lost.begin(); it != lost.end();)
        it = it->second.ts < c.ts ? lost.erase(it) : std::next(it);
    Local l = LocalOf(t, c.key, c);
    auto lost_row = lost.find(c.key);
    bool restore = false;
    if (lost_row != lost.end()) {
        // An insert meeting no row, or a change meeting the row that came
        // back in its place: weighed against the lost row.
        if (c.op == Op::kInsert && !l.exists) {
            l.exists = true;
            l.commit_ts = lost_row->second.ts;
            restore = true;
        } else if (c.op == Op::kUpdate && l.exists && l.from_peer &&
                   lost_row->second.ts > l.commit_ts) {
            l.from_peer = false;
            l.identical = false;
            l.commit_ts = lost_row->second.ts;
        }
    }
    Decision d = Decide(c.op, l, c.ts, local_is_primary);
    if (d.kind != Kind::kNone)
        seen->push_back(d.kind);
    bool found = t.count(c.key) != 0;
    if (d.resolution != Resolution::kApplyRemote) {
        if (restore) // the lost row comes back, written as this change
            t[c.key] = {lost_row->second.value, c.ts, true};
        return;
    }
    if (c.op != Op::kInsert && !found)
        return;
    switch (c.op) {
    case Op::kInsert:
        t[c.key] = {c.value, c.ts, true};
        return;
    case Op::kUpdate: {
        if (c.new_key != c.key && t.count(c.new_key) != 0) {
            Decision taken =
                Decide(Op::kUpdateKeyTaken, LocalOf(t, c.new_key, c), c.ts, local_is_primary);
            seen->push_back(taken.kind);
            if (taken.resolution != Resolution::kApplyRemote) {
                t.erase(c.key); // the holder stays; the updated row goes
                return;
            }
            t.erase(c.new_key); // the holder goes
        }
        t.erase(c.key);
        t[c.new_key] = {c.value, c.ts, true};
        return;
    }
    case Op::kDelete:
        if (d.kind == Kind::kDeleteDiffers)
            lost[c.key] = t[c.key];
        t.erase(c.key);
        return;
    case Op::kUpdateKeyTaken:
        return;
    }
}

struct KeySitesCase {
    const char *name;
    std::map<int, int> initial; // key -> value on both sites (written on the primary at ts 100)
    std::vector<KeyChange> on_primary;
    std::vector<KeyChange> on_backup;
    std::map<int, int> final; // key -> value both must end with
    std::vector<Kind> primary_sees;
    std::vector<Kind> backup_sees;
};

KeyChange Ins(int key, int value, int64_t ts) {
    return {Op::kInsert, key, key, value, ts};
}
KeyChange Move(int key, int new_key, int value, int64_t ts) {
    return {Op::kUpdate, key, new_key, value, ts};
}
KeyChange Upd(int key, int value, int64_t ts) {
    return {Op::kUpdate, key, key, value, ts};
}
KeyChange Del(int key, int64_t ts) {
    return {Op::kDelete, key, key, 0, ts};
}

const KeySitesCase kKeySitesCases[] = {
    // The case: one site inserts key 2 while the other moves key 1
    // to 2.
    {"backup inserts 2 later than the primary moves 1 to 2",
     {{1, 10}},
     {Move(1, 2, 11, 200)},
     {Ins(2, 20, 300)},
     {{2, 20}},
     {Kind::kInsertExists},
     {Kind::kUpdateExists}},
    {"primary moves 1 to 2 later than the backup inserts 2",
     {{1, 10}},
     {Move(1, 2, 11, 300)},
     {Ins(2, 20, 200)},
     {{2, 11}},
     {Kind::kInsertExists},
     {Kind::kUpdateExists}},
    {"primary moves 1 to 2 as the backup inserts 2, same time",
     {{1, 10}},
     {Move(1, 2, 11, 200)},
     {Ins(2, 20, 200)},
     {{2, 11}},
     {Kind::kInsertExists},
     {Kind::kUpdateExists}},
    {"primary inserts 2 later than the backup moves 1 to 2",
     {{1, 10}},
     {Ins(2, 20, 300)},
     {Move(1, 2, 11, 200)},
     {{2, 20}},
     {Kind::kUpdateExists},
     {Kind::kInsertExists}},
    {"backup moves 1 to 2 later than the primary inserts 2",
     {{1, 10}},
     {Ins(2, 20, 200)},
     {Move(1, 2, 11, 300)},
     {{2, 11}},
     {Kind::kUpdateExists},
     {Kind::kInsertExists}},
    {"backup moves 1 to 2 as the primary inserts 2, same time",
     {{1, 10}},
     {Ins(2, 20, 200)},
     {Move(1, 2, 11, 200)},
     {{2, 20}},
     {Kind::kUpdateExists},
     {Kind::kInsertExists}},
    // Two rows moved onto one key.
    {"both move a row to 2, the backup later",
     {{1, 10}, {3, 30}},
     {Move(1, 2, 11, 200)},
     {Move(3, 2, 31, 300)},
     {{2, 31}},
     {Kind::kUpdateExists},
     {Kind::kUpdateExists}},
    {"both move a row to 2, the primary later",
     {{1, 10}, {3, 30}},
     {Move(1, 2, 11, 300)},
     {Move(3, 2, 31, 200)},
     {{2, 11}},
     {Kind::kUpdateExists},
     {Kind::kUpdateExists}},
    {"both move a row to 2 at the same time",
     {{1, 10}, {3, 30}},
     {Move(1, 2, 11, 200)},
     {Move(3, 2, 31, 200)},
     {{2, 11}},
     {Kind::kUpdateExists},
     {Kind::kUpdateExists}},
    // A move onto a free key is no conflict.
    {"a move onto a free key", {{1, 10}}, {Move(1, 2, 11, 200)}, {}, {{2, 11}}, {}, {}},
    // A key deleted and inserted again on one site while the other, later,
    // updates the row it had: the update is the last write to the key. The
    // site that made the insert applies the update over it; on the other,
    // the delete wins over its update, and the lost updated row comes back
    // in place of the older insert.
    {"primary deletes and reinserts, the backup updates later",
     {{5, 10}},
     {Del(5, 200), Ins(5, 1, 250)},
     {Upd(5, 2, 300)},
     {{5, 2}},
     {},
     {Kind::kDeleteDiffers, Kind::kInsertExists}},
    {"backup deletes and reinserts, the primary updates later",
     {{5, 10}},
     {Upd(5, 2, 300)},
     {Del(5, 200), Ins(5, 1, 250)},
     {{5, 2}},
     {Kind::kDeleteDiffers, Kind::kInsertExists},
     {}},
    {"primary deletes, reinserts and updates, the backup updates later",
     {{5, 10}},
     {Del(5, 200), Ins(5, 1, 250), Upd(5, 3, 260)},
     {Upd(5, 2, 300)},
     {{5, 2}},
     {},
     {Kind::kDeleteDiffers, Kind::kInsertExists, Kind::kUpdateDiffers}},
    {"primary deletes, the backup updates, the primary reinserts later",
     {{5, 10}},
     {Del(5, 200), Ins(5, 1, 350)},
     {Upd(5, 2, 300)},
     {{5, 1}},
     {Kind::kUpdateDiffers},
     {Kind::kDeleteDiffers}},
    {"primary deletes, the backup updates later",
     {{5, 10}},
     {Del(5, 200)},
     {Upd(5, 2, 300)},
     {},
     {Kind::kUpdateMissing},
     {Kind::kDeleteDiffers}},
};

class KeySitesTest : public ::testing::TestWithParam<KeySitesCase> {};

TEST_P(KeySitesTest, BothSitesEndWithTheSameRows) {
    const KeySitesCase &c = GetParam();
    Table primary, backup;
    for (const auto &[key, value] : c.initial) {
        primary[key] = {value, 100, false};
        backup[key] = {value, 100, true}; // the primary's rows, replicated
    }
    for (const KeyChange &ch : c.on_primary)
        ApplyLocalChange(primary, ch);
    for (const KeyChange &ch : c.on_backup)
        ApplyLocalChange(backup, ch);
    std::vector<Kind> primary_sees, backup_sees;
    LostRows primary_lost, backup_lost;
    for (const KeyChange &ch : c.on_backup)
        ApplyRemoteChange(primary, primary_lost, ch, true, &primary_sees);
    for (const KeyChange &ch : c.on_primary)
        ApplyRemoteChange(backup, backup_lost, ch, false, &backup_sees);

    std::map<int, int> p, b;
    for (const auto &[key, row] : primary)
        p[key] = row.value;
    for (const auto &[key, row] : backup)
        b[key] = row.value;
    EXPECT_EQ(p, b) << c.name;
    EXPECT_EQ(p, c.final) << c.name;
    EXPECT_EQ(primary_sees, c.primary_sees) << c.name;
    EXPECT_EQ(backup_sees, c.backup_sees) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Table, KeySitesTest, ::testing::ValuesIn(kKeySitesCases),
                         [](const ::testing::TestParamInfo<KeySitesCase> &info) {
                             std::string n;
                             for (const char *p = info.param.name; *p; p++)
                                 n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                             return n;
                         });

// ---------------------------------------------------------------------------
// The hybrid clock (HybridClock): the stamp rule, and the causal case it is
// for, seen from both sites.
// ---------------------------------------------------------------------------
constexpr int64_t kSecond = 1000000;

TEST(HybridClock, StampsTheCommitTimeWhenNothingNewerWasApplied) {
    HybridClock c;
    EXPECT_EQ(c.Stamp(100 * kSecond), 100 * kSecond);
    c.Observe(50 * kSecond); // the peer's clock is behind: nothing changes
    EXPECT_EQ(c.Stamp(101 * kSecond), 101 * kSecond);
}

TEST(HybridClock, ATransactionAfterANewerPeerTimeIsStampedAfterIt) {
    HybridClock c;
    c.Observe(100 * kSecond); // applied here: the peer's clock is ahead
    EXPECT_EQ(c.Stamp(96 * kSecond), 100 * kSecond + 1);
    EXPECT_EQ(c.Stamp(97 * kSecond), 100 * kSecond + 1);  // never decreasing
    EXPECT_EQ(c.Stamp(100 * kSecond), 100 * kSecond + 1); // equal to the floor: after it
    EXPECT_EQ(c.Stamp(102 * kSecond), 102 * kSecond);     // the own clock passed it
    c.Observe(101 * kSecond);                             // older than the last stamp: it stays
    EXPECT_EQ(c.Stamp(101 * kSecond), 102 * kSecond);
}

TEST(HybridClock, StampsNeverDecrease) {
    HybridClock c;
    int64_t last = INT64_MIN;
    const int64_t commits[] = {10, 9, 12, 12, 5, 30, 29};
    const int64_t observed[] = {0, 20, 0, 25, 0, 0, 40};
    for (size_t i = 0; i < std::size(commits); i++) {
        if (observed[i] != 0)
            c.Observe(observed[i]);
        int64_t s = c.Stamp(commits[i]);
        EXPECT_GE(s, last) << i;
        EXPECT_GE(s, commits[i]) << i;
        EXPECT_GT(s, c.floor()) << i;
        last = s;
    }
}

// The defect of issue 16 item 6, played through Decide from both sites:
// sjc (primary, clock right) updates a row at T; it arrives at ams (clock
// 5 s behind) and is committed there with T; ams then updates the row at its
// clock's T-4. Raw times: sjc keeps its own row (update_differs, keep_local)
// while ams keeps its later one. Stamped: the update wins on sjc too.
TEST(HybridClock, ACausallyLaterUpdateFromASlowClockWins) {
    const int64_t t = 1000 * kSecond;
    Decision raw = Decide(Op::kUpdate, Row(t), t - 4 * kSecond, /*local_is_primary=*/true);
    EXPECT_EQ(raw.kind, Kind::kUpdateDiffers);
    EXPECT_EQ(raw.resolution, Resolution::kKeepLocal);

    HybridClock ams;
    ams.Observe(t); // sjc's update, applied at ams
    int64_t stamp = ams.Stamp(t - 4 * kSecond);
    EXPECT_GT(stamp, t);
    Decision at_sjc = Decide(Op::kUpdate, Row(t), stamp, /*local_is_primary=*/true);
    EXPECT_EQ(at_sjc.kind, Kind::kNone);
    EXPECT_EQ(at_sjc.resolution, Resolution::kApplyRemote);
    // A delete made there after the update arrived is no conflict either.
    Decision del = Decide(Op::kDelete, Row(t), stamp, /*local_is_primary=*/true);
    EXPECT_EQ(del.kind, Kind::kNone);
}

// Truly concurrent updates, neither site having applied anything from the
// other meanwhile: the stamps are the commit times, and the two sites decide
// the same way (the later clock wins), as before.
TEST(HybridClock, ConcurrentUpdatesStillEndTheSameOnBothSites) {
    const int64_t t = 1000 * kSecond;
    for (int64_t ams_real : {t - kSecond, t + kSecond, t + 6 * kSecond}) {
        HybridClock sjc_clock, ams_clock;
        sjc_clock.Observe(t - 10 * kSecond); // older exchanges
        ams_clock.Observe(t - 10 * kSecond);
        int64_t sjc_raw = t, ams_raw = ams_real - 5 * kSecond; // ams 5 s behind
        int64_t sjc_stamp = sjc_clock.Stamp(sjc_raw), ams_stamp = ams_clock.Stamp(ams_raw);
        // Each site judges its own row by its raw commit time (apply_conflict.cpp).
        Decision at_sjc = Decide(Op::kUpdate, Row(sjc_raw), ams_stamp, true);
        Decision at_ams = Decide(Op::kUpdate, Row(ams_raw), sjc_stamp, false);
        bool sjc_ends_with_ams = at_sjc.resolution == Resolution::kApplyRemote;
        bool ams_ends_with_sjc = at_ams.resolution == Resolution::kApplyRemote;
        EXPECT_NE(sjc_ends_with_ams, ams_ends_with_sjc) << ams_real;
    }
}

TEST(ConflictNames, AreTheOnesGsbConflictsHolds) {
    EXPECT_STREQ(KindName(Kind::kNone), "none");
    EXPECT_STREQ(KindName(Kind::kInsertExists), "insert_exists");
    EXPECT_STREQ(KindName(Kind::kUpdateMissing), "update_missing");
    EXPECT_STREQ(KindName(Kind::kUpdateDiffers), "update_differs");
    EXPECT_STREQ(KindName(Kind::kDeleteMissing), "delete_missing");
    EXPECT_STREQ(KindName(Kind::kDeleteDiffers), "delete_differs");
    EXPECT_STREQ(KindName(Kind::kUpdateExists), "update_exists");
    EXPECT_STREQ(ResolutionName(Resolution::kApplyRemote), "apply_remote");
    EXPECT_STREQ(ResolutionName(Resolution::kKeepLocal), "keep_local");
    EXPECT_STREQ(ResolutionName(Resolution::kSkip), "skip");
}

} // namespace
} // namespace gsb::conflict
