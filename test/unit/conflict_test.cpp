// conflict_test.cpp: unit tests of gsb's conflict rules (bgworker/conflict.hpp).
//
// Two tables. The first pins conflict::Decide itself: for each operation and
// what is found locally, the kind and resolution. The second plays
// concurrent changes on the two sites: each site makes its own change, then
// receives the other's and applies it as the apply worker does (the local
// row's facts as apply_conflict.cpp gathers them, Decide, then the
// resolution), and both sites must end with the same row, the expected
// one. They need no server; they are not a test of how the apply worker
// finds rows or records conflicts.
#include "conflict.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
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

TEST(ConflictNames, AreTheOnesGsbConflictsHolds) {
    EXPECT_STREQ(KindName(Kind::kNone), "none");
    EXPECT_STREQ(KindName(Kind::kInsertExists), "insert_exists");
    EXPECT_STREQ(KindName(Kind::kUpdateMissing), "update_missing");
    EXPECT_STREQ(KindName(Kind::kUpdateDiffers), "update_differs");
    EXPECT_STREQ(KindName(Kind::kDeleteMissing), "delete_missing");
    EXPECT_STREQ(KindName(Kind::kDeleteDiffers), "delete_differs");
    EXPECT_STREQ(ResolutionName(Resolution::kApplyRemote), "apply_remote");
    EXPECT_STREQ(ResolutionName(Resolution::kKeepLocal), "keep_local");
    EXPECT_STREQ(ResolutionName(Resolution::kSkip), "skip");
}

} // namespace
} // namespace gsb::conflict
