// protocol_test.cpp: unit tests of the gsb wire protocol (src/protocol.hpp).
//
// They pin the byte format, check that Writer and Decode() agree on every
// message type, that Decode() refuses every malformed input with a
// ProtocolError saying what was wrong, and check the walsender framing and
// the text form. They need no server; they are not a test of the output
// plugin or the apply worker that use this module.
#include "protocol.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gsb::protocol {
namespace {

using W = Writer<StringSink>;
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMinI64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();

template <typename F> std::string Build(F &&f) {
    std::string out;
    StringSink sink{out};
    W w(sink);
    f(w);
    return out;
}

std::string FromHex(std::string_view hex) {
    std::string out;
    int high = -1;
    for (char ch : hex) {
        int v;
        if (ch >= '0' && ch <= '9')
            v = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v = ch - 'A' + 10;
        else
            continue;
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<char>(high * 16 + v));
            high = -1;
        }
    }
    return out;
}

// Hex digits with the spaces that group the fields removed.
std::string Hex(std::string_view spaced) {
    std::string out(spaced);
    out.erase(std::remove(out.begin(), out.end(), ' '), out.end());
    return out;
}

std::string ToHex(std::string_view bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char ch : bytes) {
        out.push_back(digits[ch >> 4]);
        out.push_back(digits[ch & 15]);
    }
    return out;
}

// The text of the ProtocolError that f throws; fails the test when f throws
// nothing or another exception.
template <typename F> std::string ErrorText(F &&f) {
    try {
        f();
    } catch (const ProtocolError &e) {
        return e.what();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "expected ProtocolError, got another exception: " << e.what();
        return "<wrong exception>";
    }
    ADD_FAILURE() << "expected ProtocolError, nothing thrown";
    return "<no exception>";
}

std::string DecodeError(std::string_view bytes) {
    return ErrorText([&] {
        Message m;
        Decode(bytes, m);
    });
}

std::string ParseError(std::string_view bytes) {
    return ErrorText([&] {
        XLogData x;
        Keepalive k;
        ParseCopyData(bytes, x, k);
    });
}

testing::AssertionResult Contains(const std::string &text, std::string_view part) {
    if (text.find(part) != std::string::npos)
        return testing::AssertionSuccess();
    return testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// Decodes a copy of bytes that lives until the binary exits, so that the
// returned message's views stay valid.
Message DecodeOk(std::string_view bytes) {
    static std::deque<std::string> kept;
    kept.emplace_back(bytes);
    Message m;
    Decode(kept.back(), m);
    return m;
}

// Values that stress the string handling: empty, NUL inside, not UTF-8.
const std::string kEmbeddedNul("a\0b\0", 4);
const std::string kNotUtf8("\xff\xfe\xc0\x80\x80", 5);

// A tuple of every value kind, written and expected back.
struct TestValue {
    ValueKind kind;
    std::string data;
};

void WriteTuple(W &w, const std::vector<TestValue> &values) {
    w.TupleHeader(static_cast<uint16_t>(values.size()));
    for (const TestValue &v : values) {
        switch (v.kind) {
        case ValueKind::kNull:
            w.Null();
            break;
        case ValueKind::kUnchangedToast:
            w.UnchangedToast();
            break;
        case ValueKind::kText:
            w.Text(v.data);
            break;
        case ValueKind::kBinary:
            w.Binary(v.data);
            break;
        }
    }
}

void ExpectTuple(const Tuple &got, const std::vector<TestValue> &want) {
    ASSERT_EQ(got.values.size(), want.size());
    for (size_t i = 0; i < want.size(); i++) {
        EXPECT_EQ(got.values[i].kind, want[i].kind) << "column " << i;
        EXPECT_EQ(got.values[i].data, want[i].data) << "column " << i;
    }
}

const std::vector<TestValue> kAllKinds = {
    {ValueKind::kNull, ""},      {ValueKind::kUnchangedToast, ""},   {ValueKind::kText, ""},
    {ValueKind::kText, "plain"}, {ValueKind::kText, kEmbeddedNul},   {ValueKind::kText, kNotUtf8},
    {ValueKind::kBinary, ""},    {ValueKind::kBinary, kEmbeddedNul}, {ValueKind::kBinary, kNotUtf8},
};

std::vector<TestValue> ManyValues(size_t n) {
    std::vector<TestValue> values;
    for (size_t i = 0; i < n; i++) {
        switch (i % 4) {
        case 0:
            values.push_back({ValueKind::kNull, ""});
            break;
        case 1:
            values.push_back({ValueKind::kUnchangedToast, ""});
            break;
        case 2:
            values.push_back({ValueKind::kText, std::to_string(i)});
            break;
        default:
            values.push_back({ValueKind::kBinary, std::string(1, static_cast<char>(i))});
            break;
        }
    }
    return values;
}

// ---------------------------------------------------------------------------
// Exact bytes: the format in protocol.hpp's header, written out by hand.
// ---------------------------------------------------------------------------

TEST(WriterBytes, Begin) {
    std::string got =
        Build([](W &w) { w.Begin(0x0102030405060708ull, -2, 0xAABBCCDDu, std::string("ab")); });
    EXPECT_EQ(ToHex(got), Hex("42 0102030405060708 fffffffffffffffe aabbccdd 00000002 6162"));
}

TEST(WriterBytes, Commit) {
    std::string got = Build([](W &w) { w.Commit(1, 0x1122334455667788ull, 0x0102); });
    EXPECT_EQ(ToHex(got), Hex("43 00 0000000000000001 1122334455667788 0000000000000102"));
}

TEST(WriterBytes, RelationAndColumns) {
    std::string got = Build([](W &w) {
        w.RelationHeader(0x4000, "s", "t", 2);
        w.RelationColumn(kColumnKey, "id", 23, -1, "int4");
        w.RelationColumn(0, "v", 1043, 14, "varchar");
    });
    EXPECT_EQ(ToHex(got), Hex("52 00004000 00000001 73 00000001 74 0002"
                              " 01 00000002 6964 00000017 ffffffff 00000004 696e7434"
                              " 00 00000001 76 00000413 0000000e 00000007 76617263686172"));
}

TEST(WriterBytes, ChangesAndTuples) {
    std::string insert = Build([](W &w) {
        w.Insert(7);
        w.TupleHeader(4);
        w.Null();
        w.UnchangedToast();
        w.Text("x");
        w.Binary(std::string("\0", 1));
    });
    EXPECT_EQ(ToHex(insert), Hex("49 00000007 0004 6e 75 74 00000001 78 62 00000001 00"));
    EXPECT_EQ(ToHex(Build([](W &w) { w.Update(7, true); })), Hex("55 00000007 4b"));
    EXPECT_EQ(ToHex(Build([](W &w) { w.Update(7, false); })), Hex("55 00000007 4e"));
    EXPECT_EQ(ToHex(Build([](W &w) { w.Delete(0xFFFFFFFFu); })), Hex("44 ffffffff"));
}

TEST(WriterBytes, Truncate) {
    const uint32_t relids[] = {1, 0x01020304};
    EXPECT_EQ(ToHex(Build([&](W &w) { w.Truncate(kTruncateCascade, relids, 2); })),
              Hex("54 01 00000002 00000001 01020304"));
}

TEST(WriterBytes, Ddl) {
    EXPECT_EQ(ToHex(Build([](W &w) { w.Ddl("ab", "p", "X;"); })),
              Hex("51 00 00000002 6162 00000001 70 00000002 583b"));
}

TEST(Version, DdlNeedsVersionThree) {
    // The 'Q' message is new in version 3; a sender refuses it to older
    // receivers, so the versions must say so.
    EXPECT_EQ(kVersion, 3u);
    EXPECT_EQ(kDdlVersion, 3u);
    EXPECT_EQ(kMinVersion, 1u);
}

TEST(RoundTrip, Ddl) {
    const std::string nul("a\0b", 3);
    std::string bytes =
        Build([&](W &w) { w.Ddl("app owner", "\"$user\", public", "ALTER TABLE t ADD c int"); });
    Message m;
    Decode(bytes, m);
    EXPECT_EQ(m.type, MsgType::kDdl);
    EXPECT_EQ(m.role, "app owner");
    EXPECT_EQ(m.search_path, "\"$user\", public");
    EXPECT_EQ(m.command, "ALTER TABLE t ADD c int");
    // An empty search_path and bytes of any value travel as they are.
    std::string other = Build([&](W &w) { w.Ddl(nul, "", nul); });
    Decode(other, m); // the views point into other
    EXPECT_EQ(m.role, nul);
    EXPECT_EQ(m.search_path, "");
    EXPECT_EQ(m.command, nul);
}

TEST(Malformed, DdlFlagsRoleAndCommand) {
    auto error = [](const std::string &bytes) {
        Message m;
        try {
            Decode(bytes, m);
        } catch (const ProtocolError &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    std::string ok = Build([](W &w) { w.Ddl("r", "", "X"); });
    for (char flags : {'\x01', '\x80', '\xff'}) {
        std::string bad = ok;
        bad[1] = flags;
        EXPECT_NE(error(bad).find("unknown ddl flags"), std::string::npos);
    }
    EXPECT_NE(error(Build([](W &w) { w.Ddl("", "", "X"); })).find("ddl without a role"),
              std::string::npos);
    EXPECT_NE(error(Build([](W &w) { w.Ddl("r", "", ""); })).find("ddl without a command"),
              std::string::npos);
}

// ---------------------------------------------------------------------------
// Version 2 batches: several messages back to back, read with DecodeNext().
// ---------------------------------------------------------------------------

std::string BatchBegin() {
    return Build([](W &w) { w.Begin(0x100, 5, 42, "sjc"); });
}
std::string BatchInsert() {
    return Build([](W &w) {
        w.Insert(7);
        w.TupleHeader(2);
        w.Text("1");
        w.Null();
    });
}
std::string BatchCommit() {
    return Build([](W &w) { w.Commit(0x100, 0x180, 5); });
}

TEST(Batch, DecodeNextReadsEachMessageInTurn) {
    const std::string parts[] = {BatchBegin(), BatchInsert(), BatchInsert(), BatchCommit()};
    std::string batch;
    for (const std::string &p : parts)
        batch += p;
    const MsgType types[] = {MsgType::kBegin, MsgType::kInsert, MsgType::kInsert, MsgType::kCommit};
    size_t offset = 0;
    Message m;
    for (size_t i = 0; i < 4; i++) {
        size_t n = DecodeNext(std::string_view(batch).substr(offset), m);
        EXPECT_EQ(n, parts[i].size()) << "message " << i;
        EXPECT_EQ(m.type, types[i]) << "message " << i;
        offset += n;
    }
    EXPECT_EQ(offset, batch.size());
    EXPECT_EQ(m.end_lsn, 0x180u);
}

TEST(Batch, DecodeRefusesWhatDecodeNextSplits) {
    // Decode() still wants exactly one message: a batch is trailing bytes.
    EXPECT_TRUE(Contains(DecodeError(BatchBegin() + BatchCommit()), "unexpected trailing bytes"));
}

TEST(Batch, TruncatedOrCorruptMessageInsideABatch) {
    std::string insert = BatchInsert();
    std::string cut = BatchBegin() + insert.substr(0, insert.size() - 1);
    Message m;
    size_t n = DecodeNext(cut, m);
    EXPECT_EQ(n, BatchBegin().size());
    EXPECT_TRUE(
        Contains(ErrorText([&] { DecodeNext(std::string_view(cut).substr(n), m); }), "left"));
    // A byte too many after a message (the plugin_corrupt_message fault)
    // reads as a message of unknown type 127.
    std::string extra = BatchBegin() + "\x7f" + BatchCommit();
    n = DecodeNext(extra, m);
    EXPECT_TRUE(Contains(ErrorText([&] { DecodeNext(std::string_view(extra).substr(n), m); }),
                         "unknown message type 127"));
    EXPECT_TRUE(Contains(ErrorText([&] { DecodeNext(std::string_view(), m); }), "needs 1 bytes"));
}

// ---------------------------------------------------------------------------
// Round trips Writer -> Decode.
// ---------------------------------------------------------------------------

TEST(RoundTrip, BeginEdgeValues) {
    struct Case {
        uint64_t lsn;
        int64_t time;
        uint32_t xid;
        std::string origin;
    };
    const Case cases[] = {
        {0, 0, 0, ""},
        {kMaxU64, kMaxI64, UINT32_MAX, "site-a"},
        {0x16B374D848ull, kMinI64, 1, kEmbeddedNul},
        {1, -1, 42, kNotUtf8},
    };
    for (const Case &c : cases) {
        std::string bytes = Build([&](W &w) { w.Begin(c.lsn, c.time, c.xid, c.origin); });
        Message m = DecodeOk(bytes);
        EXPECT_EQ(m.type, MsgType::kBegin);
        EXPECT_EQ(m.lsn, c.lsn);
        EXPECT_EQ(m.commit_time, c.time);
        EXPECT_EQ(m.xid, c.xid);
        EXPECT_EQ(m.origin, c.origin);
    }
}

TEST(RoundTrip, CommitEdgeValues) {
    struct Case {
        uint64_t lsn, end_lsn;
        int64_t time;
    };
    const Case cases[] = {
        {0, 0, 0},
        {kMaxU64, kMaxU64, kMaxI64},
        {kMaxU64, 0, kMinI64},
        {0x16B374D848ull, 0x16B374D878ull, -1},
    };
    for (const Case &c : cases) {
        Message m = DecodeOk(Build([&](W &w) { w.Commit(c.lsn, c.end_lsn, c.time); }));
        EXPECT_EQ(m.type, MsgType::kCommit);
        EXPECT_EQ(m.lsn, c.lsn);
        EXPECT_EQ(m.end_lsn, c.end_lsn);
        EXPECT_EQ(m.commit_time, c.time);
    }
}

TEST(RoundTrip, RelationSeveralColumns) {
    std::string bytes = Build([](W &w) {
        w.RelationHeader(UINT32_MAX, "public", kNotUtf8, 4);
        w.RelationColumn(kColumnKey, "id", 23, -1, "integer");
        w.RelationColumn(0, kEmbeddedNul, 1043, 36, "character varying");
        w.RelationColumn(kColumnKey, "k2", 25, std::numeric_limits<int32_t>::min(), "");
        w.RelationColumn(0, "x", UINT32_MAX, std::numeric_limits<int32_t>::max(), "t");
    });
    Message m = DecodeOk(bytes);
    EXPECT_EQ(m.type, MsgType::kRelation);
    EXPECT_EQ(m.relid, UINT32_MAX);
    EXPECT_EQ(m.nspname, "public");
    EXPECT_EQ(m.relname, kNotUtf8);
    ASSERT_EQ(m.columns.size(), 4u);
    EXPECT_TRUE(m.columns[0].IsKey());
    EXPECT_EQ(m.columns[0].flags, kColumnKey);
    EXPECT_EQ(m.columns[0].name, "id");
    EXPECT_EQ(m.columns[0].type_oid, 23u);
    EXPECT_EQ(m.columns[0].typmod, -1);
    EXPECT_EQ(m.columns[0].type_name, "integer");
    EXPECT_FALSE(m.columns[1].IsKey());
    EXPECT_EQ(m.columns[1].name, kEmbeddedNul);
    EXPECT_EQ(m.columns[1].typmod, 36);
    EXPECT_EQ(m.columns[1].type_name, "character varying");
    EXPECT_TRUE(m.columns[2].IsKey());
    EXPECT_EQ(m.columns[2].typmod, std::numeric_limits<int32_t>::min());
    EXPECT_EQ(m.columns[2].type_name, "");
    EXPECT_FALSE(m.columns[3].IsKey());
    EXPECT_EQ(m.columns[3].type_oid, UINT32_MAX);
    EXPECT_EQ(m.columns[3].typmod, std::numeric_limits<int32_t>::max());
}

TEST(RoundTrip, RelationZeroColumns) {
    Message m = DecodeOk(Build([](W &w) { w.RelationHeader(0, "s", "t", 0); }));
    EXPECT_EQ(m.relid, 0u);
    EXPECT_EQ(m.relname, "t");
    EXPECT_TRUE(m.columns.empty());
}

TEST(RoundTrip, RelationMaxColumns) {
    std::string bytes = Build([](W &w) {
        w.RelationHeader(9, "s", "wide", kMaxColumns);
        for (uint32_t i = 0; i < kMaxColumns; i++)
            w.RelationColumn(i % 3 == 0 ? kColumnKey : 0, "c" + std::to_string(i), i,
                             static_cast<int32_t>(i) - 1, "t" + std::to_string(i));
    });
    Message m = DecodeOk(bytes);
    ASSERT_EQ(m.columns.size(), kMaxColumns);
    for (uint32_t i = 0; i < kMaxColumns; i++) {
        EXPECT_EQ(m.columns[i].IsKey(), i % 3 == 0);
        EXPECT_EQ(m.columns[i].name, "c" + std::to_string(i));
        EXPECT_EQ(m.columns[i].type_oid, i);
        EXPECT_EQ(m.columns[i].typmod, static_cast<int32_t>(i) - 1);
        EXPECT_EQ(m.columns[i].type_name, "t" + std::to_string(i));
    }
}

TEST(RoundTrip, InsertAllValueKinds) {
    Message m = DecodeOk(Build([](W &w) {
        w.Insert(16384);
        WriteTuple(w, kAllKinds);
    }));
    EXPECT_EQ(m.type, MsgType::kInsert);
    EXPECT_EQ(m.relid, 16384u);
    EXPECT_FALSE(m.has_old);
    ExpectTuple(m.new_tuple, kAllKinds);
}

TEST(RoundTrip, InsertZeroAndMaxColumns) {
    Message m = DecodeOk(Build([](W &w) {
        w.Insert(0);
        w.TupleHeader(0);
    }));
    EXPECT_TRUE(m.new_tuple.values.empty());

    std::vector<TestValue> wide = ManyValues(kMaxColumns);
    m = DecodeOk(Build([&](W &w) {
        w.Insert(UINT32_MAX);
        WriteTuple(w, wide);
    }));
    EXPECT_EQ(m.relid, UINT32_MAX);
    ExpectTuple(m.new_tuple, wide);
}

TEST(RoundTrip, UpdateWithOldKey) {
    const std::vector<TestValue> old_key = {{ValueKind::kText, "1"}, {ValueKind::kNull, ""}};
    const std::vector<TestValue> new_row = {{ValueKind::kText, "2"},
                                            {ValueKind::kBinary, kNotUtf8}};
    Message m = DecodeOk(Build([&](W &w) {
        w.Update(5, true);
        WriteTuple(w, old_key);
        WriteTuple(w, new_row);
    }));
    EXPECT_EQ(m.type, MsgType::kUpdate);
    EXPECT_EQ(m.relid, 5u);
    EXPECT_TRUE(m.has_old);
    ExpectTuple(m.old_tuple, old_key);
    ExpectTuple(m.new_tuple, new_row);
}

TEST(RoundTrip, UpdateWithoutOldKey) {
    Message m = DecodeOk(Build([&](W &w) {
        w.Update(5, false);
        WriteTuple(w, kAllKinds);
    }));
    EXPECT_EQ(m.type, MsgType::kUpdate);
    EXPECT_FALSE(m.has_old);
    EXPECT_TRUE(m.old_tuple.values.empty());
    ExpectTuple(m.new_tuple, kAllKinds);
}

TEST(RoundTrip, UpdateMaxColumnsBothTuples) {
    std::vector<TestValue> wide = ManyValues(kMaxColumns);
    Message m = DecodeOk(Build([&](W &w) {
        w.Update(5, true);
        WriteTuple(w, wide);
        WriteTuple(w, wide);
    }));
    ExpectTuple(m.old_tuple, wide);
    ExpectTuple(m.new_tuple, wide);
}

TEST(RoundTrip, Delete) {
    Message m = DecodeOk(Build([&](W &w) {
        w.Delete(77);
        WriteTuple(w, kAllKinds);
    }));
    EXPECT_EQ(m.type, MsgType::kDelete);
    EXPECT_EQ(m.relid, 77u);
    EXPECT_TRUE(m.has_old);
    ExpectTuple(m.old_tuple, kAllKinds);
}

TEST(RoundTrip, TruncateFlags) {
    const uint32_t relids[] = {0, 16384, UINT32_MAX};
    for (uint8_t flags : {0, 1, 2, 3}) {
        Message m = DecodeOk(Build([&](W &w) { w.Truncate(flags, relids, 3); }));
        EXPECT_EQ(m.type, MsgType::kTruncate);
        EXPECT_EQ(m.truncate_flags, flags);
        EXPECT_EQ(m.relids, std::vector<uint32_t>(relids, relids + 3));
    }
    Message one = DecodeOk(Build([&](W &w) { w.Truncate(0, relids + 1, 1); }));
    EXPECT_EQ(one.relids, std::vector<uint32_t>{16384});
}

TEST(RoundTrip, ViewsPointIntoTheBuffer) {
    std::string bytes = Build([](W &w) { w.Begin(1, 2, 3, "origin"); });
    Message m;
    Decode(bytes, m);
    EXPECT_EQ(m.origin.data(), bytes.data() + bytes.size() - 6);

    bytes = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(1);
        w.Text("value");
    });
    Decode(bytes, m);
    EXPECT_EQ(m.new_tuple.values[0].data.data(), bytes.data() + bytes.size() - 5);
}

// ---------------------------------------------------------------------------
// One Message reused across decodes, as the apply worker does.
// ---------------------------------------------------------------------------

TEST(Reuse, ColumnsShrinkAndGrow) {
    auto relation = [](uint16_t n, const std::string &prefix) {
        return Build([&](W &w) {
            w.RelationHeader(n, "s", "r" + std::to_string(n), n);
            for (uint16_t i = 0; i < n; i++)
                w.RelationColumn(0, prefix + std::to_string(i), 25 + i, -1, "text");
        });
    };
    Message m;
    std::string three = relation(3, "a");
    Decode(three, m);
    ASSERT_EQ(m.columns.size(), 3u);
    std::string one = relation(1, "b");
    Decode(one, m);
    ASSERT_EQ(m.columns.size(), 1u);
    EXPECT_EQ(m.columns[0].name, "b0");
    EXPECT_EQ(m.relname, "r1");
    std::string five = relation(5, "c");
    Decode(five, m);
    ASSERT_EQ(m.columns.size(), 5u);
    for (uint16_t i = 0; i < 5; i++) {
        EXPECT_EQ(m.columns[i].name, "c" + std::to_string(i));
        EXPECT_EQ(m.columns[i].type_oid, 25u + i);
    }
    std::string zero = relation(0, "d");
    Decode(zero, m);
    EXPECT_TRUE(m.columns.empty());
}

TEST(Reuse, TuplesShrinkAndGrow) {
    Message m;
    std::string four = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(4);
        w.Text("a");
        w.Text("b");
        w.Binary("c");
        w.Text("d");
    });
    Decode(four, m);
    ASSERT_EQ(m.new_tuple.values.size(), 4u);
    // The same positions now hold null and unchanged: their old data must go.
    std::string two = Build([](W &w) {
        w.Insert(2);
        w.TupleHeader(2);
        w.Null();
        w.UnchangedToast();
    });
    Decode(two, m);
    ExpectTuple(m.new_tuple, {{ValueKind::kNull, ""}, {ValueKind::kUnchangedToast, ""}});
    EXPECT_EQ(m.relid, 2u);
    std::vector<TestValue> wide = ManyValues(10);
    std::string ten = Build([&](W &w) {
        w.Insert(3);
        WriteTuple(w, wide);
    });
    Decode(ten, m);
    ExpectTuple(m.new_tuple, wide);
    std::string none = Build([](W &w) {
        w.Insert(4);
        w.TupleHeader(0);
    });
    Decode(none, m);
    EXPECT_TRUE(m.new_tuple.values.empty());
}

TEST(Reuse, HasOldIsReset) {
    Message m;
    std::string with_old = Build([](W &w) {
        w.Update(1, true);
        w.TupleHeader(1);
        w.Text("old");
        w.TupleHeader(1);
        w.Text("new");
    });
    std::string without_old = Build([](W &w) {
        w.Update(1, false);
        w.TupleHeader(1);
        w.Text("newer");
    });
    std::string insert = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(1);
        w.Text("ins");
    });
    std::string del = Build([](W &w) {
        w.Delete(1);
        w.TupleHeader(1);
        w.Text("gone");
    });

    Decode(with_old, m);
    EXPECT_TRUE(m.has_old);
    ExpectTuple(m.old_tuple, {{ValueKind::kText, "old"}});
    Decode(without_old, m);
    EXPECT_FALSE(m.has_old);
    EXPECT_TRUE(m.old_tuple.values.empty());
    ExpectTuple(m.new_tuple, {{ValueKind::kText, "newer"}});

    Decode(with_old, m);
    Decode(insert, m);
    EXPECT_EQ(m.type, MsgType::kInsert);
    EXPECT_FALSE(m.has_old);
    ExpectTuple(m.new_tuple, {{ValueKind::kText, "ins"}});

    Decode(del, m);
    EXPECT_EQ(m.type, MsgType::kDelete);
    EXPECT_TRUE(m.has_old);
    ExpectTuple(m.old_tuple, {{ValueKind::kText, "gone"}});
    Decode(insert, m);
    EXPECT_FALSE(m.has_old);
}

TEST(Reuse, TruncateRelidsShrink) {
    Message m;
    const uint32_t relids[] = {1, 2, 3, 4};
    std::string four = Build([&](W &w) { w.Truncate(0, relids, 4); });
    std::string one = Build([&](W &w) { w.Truncate(0, relids + 3, 1); });
    Decode(four, m);
    EXPECT_EQ(m.relids.size(), 4u);
    Decode(one, m);
    EXPECT_EQ(m.relids, std::vector<uint32_t>{4});
}

// ---------------------------------------------------------------------------
// Malformed input.
// ---------------------------------------------------------------------------

// One valid message of each type and variant.
std::vector<std::pair<std::string, std::string>> ValidMessages() {
    const uint32_t relids[] = {16384, 16385};
    return {
        {"begin", Build([](W &w) { w.Begin(kMaxU64, -1, 7, "site-a"); })},
        {"begin-empty-origin", Build([](W &w) { w.Begin(0, 0, 0, ""); })},
        {"commit", Build([](W &w) { w.Commit(1, 2, 3); })},
        {"relation", Build([](W &w) {
             w.RelationHeader(16384, "public", "t", 2);
             w.RelationColumn(kColumnKey, "id", 23, -1, "int4");
             w.RelationColumn(0, "v", 25, -1, "");
         })},
        {"relation-no-columns", Build([](W &w) { w.RelationHeader(1, "s", "t", 0); })},
        {"insert", Build([](W &w) {
             w.Insert(16384);
             WriteTuple(w, kAllKinds);
         })},
        {"insert-no-columns", Build([](W &w) {
             w.Insert(16384);
             w.TupleHeader(0);
         })},
        {"update-old", Build([](W &w) {
             w.Update(16384, true);
             w.TupleHeader(1);
             w.Text("1");
             w.TupleHeader(2);
             w.Text("2");
             w.Binary("x");
         })},
        {"update-new", Build([](W &w) {
             w.Update(16384, false);
             w.TupleHeader(2);
             w.Null();
             w.UnchangedToast();
         })},
        {"delete", Build([](W &w) {
             w.Delete(16384);
             w.TupleHeader(2);
             w.Text("1");
             w.Null();
         })},
        {"truncate", Build([&](W &w) { w.Truncate(3, relids, 2); })},
        {"ddl", Build([](W &w) { w.Ddl("r", "", "CREATE INDEX ON t (v)"); })},
    };
}

TEST(Malformed, ValidMessagesDecode) {
    for (const auto &[name, bytes] : ValidMessages())
        EXPECT_NO_THROW(DecodeOk(bytes)) << name;
}

TEST(Malformed, EveryStrictPrefixThrows) {
    for (const auto &[name, bytes] : ValidMessages()) {
        for (size_t len = 0; len < bytes.size(); len++) {
            // A copy of exactly len bytes, so a sanitizer sees any over-read.
            std::string prefix = bytes.substr(0, len);
            std::string text = DecodeError(prefix);
            EXPECT_TRUE(Contains(text, "malformed gsb message at byte")) << name << " len " << len;
        }
    }
}

TEST(Malformed, OneTrailingByteThrows) {
    for (const auto &[name, bytes] : ValidMessages()) {
        for (char extra : {'\0', 'B'}) {
            std::string text = DecodeError(bytes + extra);
            EXPECT_TRUE(Contains(text, "1 unexpected trailing bytes")) << name;
            EXPECT_TRUE(Contains(text, "at byte " + std::to_string(bytes.size()))) << name;
        }
    }
}

TEST(Malformed, EmptyInput) {
    EXPECT_TRUE(Contains(DecodeError(""), "needs 1 bytes, 0 left"));
}

TEST(Malformed, UnknownMessageType) {
    EXPECT_TRUE(Contains(DecodeError("X"), "unknown message type 88"));
    EXPECT_TRUE(Contains(DecodeError(std::string(1, '\0')), "unknown message type 0"));
    // Lower-case letters are value kinds and CopyData types, not messages.
    EXPECT_TRUE(Contains(DecodeError("b"), "unknown message type 98"));
    EXPECT_TRUE(Contains(DecodeError("w"), "unknown message type 119"));
}

TEST(Malformed, UnknownValueKind) {
    std::string bytes = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(2);
        w.Null();
    });
    EXPECT_TRUE(Contains(DecodeError(bytes + "z"), "unknown value kind 122 in column 2"));
    // The kinds are lower case: the upper-case letters are not accepted.
    EXPECT_TRUE(Contains(DecodeError(bytes + "N"), "unknown value kind 78 in column 2"));
}

TEST(Malformed, UnknownUpdateMarker) {
    std::string head = FromHex("55 00000001");
    std::string tuple = FromHex("0001 6e");
    EXPECT_TRUE(Contains(DecodeError(head + "X" + tuple), "unknown update marker 88"));
    EXPECT_TRUE(Contains(DecodeError(head + "k" + tuple), "unknown update marker 107"));
    EXPECT_TRUE(
        Contains(DecodeError(head + std::string(1, '\0') + tuple), "unknown update marker 0"));
}

TEST(Malformed, NonZeroCommitFlags) {
    std::string bytes = Build([](W &w) { w.Commit(1, 2, 3); });
    for (int flags : {1, 0x80, 0xFF}) {
        bytes[1] = static_cast<char>(flags);
        EXPECT_TRUE(Contains(DecodeError(bytes), "unknown commit flags " + std::to_string(flags)));
    }
}

TEST(Malformed, UnknownColumnFlags) {
    for (uint8_t flags : {2, 3, 0x80, 0xFF}) {
        std::string bytes = Build([&](W &w) {
            w.RelationHeader(1, "s", "t", 2);
            w.RelationColumn(kColumnKey, "a", 23, -1, "int4");
            w.RelationColumn(flags, "b", 23, -1, "int4");
        });
        EXPECT_TRUE(Contains(DecodeError(bytes), "unknown column flags " + std::to_string(flags)));
    }
}

TEST(Malformed, UnknownTruncateFlags) {
    const uint32_t relid = 1;
    for (uint8_t flags : {4, 5, 0x80, 0xFF}) {
        std::string bytes = Build([&](W &w) { w.Truncate(flags, &relid, 1); });
        EXPECT_TRUE(
            Contains(DecodeError(bytes), "unknown truncate flags " + std::to_string(flags)));
    }
}

TEST(Malformed, TooManyColumns) {
    std::string relation = Build([](W &w) { w.RelationHeader(1, "s", "t", kMaxColumns + 1); }) +
                           std::string(100000, 'x');
    EXPECT_TRUE(Contains(DecodeError(relation), "relation with 1665 columns"));
    relation = Build([](W &w) { w.RelationHeader(1, "s", "t", 0xFFFF); });
    EXPECT_TRUE(Contains(DecodeError(relation), "relation with 65535 columns"));

    // Valid values after the count, so that only the count is wrong.
    std::string insert = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(kMaxColumns + 1);
        for (int i = 0; i <= kMaxColumns; i++)
            w.Null();
    });
    EXPECT_TRUE(Contains(DecodeError(insert), "tuple with 1665 columns"));
    std::string update = Build([](W &w) {
        w.Update(1, true);
        w.TupleHeader(1);
        w.Null();
        w.TupleHeader(0xFFFF);
    });
    EXPECT_TRUE(Contains(DecodeError(update), "tuple with 65535 columns"));
}

// Decodes bytes that must be refused into a fresh Message, and returns how
// many elements its vectors reserved before the refusal.
size_t CapacityAfterFailedDecode(std::string_view bytes) {
    Message m;
    try {
        Decode(bytes, m);
        ADD_FAILURE() << "decoded " << ToHex(bytes);
    } catch (const ProtocolError &) {
    }
    return m.columns.capacity() + m.relids.capacity() + m.old_tuple.values.capacity() +
           m.new_tuple.values.capacity();
}

TEST(Malformed, CountLargerThanTheBufferAllocatesNothing) {
    std::string tuple = Build([](W &w) {
        w.Insert(1);
        w.TupleHeader(kMaxColumns);
        w.Null();
        w.Null();
        w.Null();
    });
    EXPECT_TRUE(Contains(DecodeError(tuple), "tuple claims 1664 columns in 3 bytes"));
    EXPECT_EQ(CapacityAfterFailedDecode(tuple), 0u);

    std::string relation = Build([](W &w) { w.RelationHeader(1, "s", "t", 1000); }) + "xxxxx";
    EXPECT_TRUE(Contains(DecodeError(relation), "relation claims 1000 columns in 5 bytes"));
    EXPECT_EQ(CapacityAfterFailedDecode(relation), 0u);

    std::string truncate = FromHex("54 00 ffffffff 00000001");
    EXPECT_TRUE(Contains(DecodeError(truncate), "truncate of 4294967295 relations"));
    EXPECT_EQ(CapacityAfterFailedDecode(truncate), 0u);
    truncate = FromHex("54 00 00000002 00000001");
    EXPECT_TRUE(Contains(DecodeError(truncate), "truncate of 2 relations"));
    // The relid count is checked exactly: 2 relids need 8 bytes, 7 are refused.
    truncate = FromHex("54 00 00000002 00000001 000000");
    EXPECT_TRUE(Contains(DecodeError(truncate), "truncate of 2 relations"));
}

TEST(Malformed, StringLongerThanTheBuffer) {
    std::string begin = FromHex("42 0000000000000000 0000000000000000 00000000");
    EXPECT_TRUE(
        Contains(DecodeError(begin + FromHex("ffffffff")), "needs 4294967295 bytes, 0 left"));
    EXPECT_TRUE(
        Contains(DecodeError(begin + FromHex("00000005") + "four"), "needs 5 bytes, 4 left"));

    std::string text = FromHex("49 00000001 0001 74 ffffffff") + "abc";
    EXPECT_TRUE(Contains(DecodeError(text), "needs 4294967295 bytes, 3 left"));
    std::string binary = FromHex("49 00000001 0001 62 00000002") + "a";
    EXPECT_TRUE(Contains(DecodeError(binary), "needs 2 bytes, 1 left"));
    std::string type_name = Build([](W &w) {
        w.RelationHeader(1, "s", "t", 1);
        w.RelationColumn(0, "c", 25, -1, "text");
    });
    type_name.resize(type_name.size() - 1);
    EXPECT_TRUE(Contains(DecodeError(type_name), "needs 4 bytes, 3 left"));
}

TEST(Malformed, EmptyNames) {
    EXPECT_TRUE(Contains(DecodeError(Build([](W &w) { w.RelationHeader(1, "", "t", 0); })),
                         "relation without a name"));
    EXPECT_TRUE(Contains(DecodeError(Build([](W &w) { w.RelationHeader(1, "s", "", 0); })),
                         "relation without a name"));
    std::string bytes = Build([](W &w) {
        w.RelationHeader(1, "s", "t", 2);
        w.RelationColumn(0, "a", 25, -1, "text");
        w.RelationColumn(0, "", 25, -1, "text");
    });
    EXPECT_TRUE(Contains(DecodeError(bytes), "column 2 has no name"));
}

TEST(Malformed, TruncateOfNoRelations) {
    std::string bytes = Build([](W &w) { w.Truncate(0, nullptr, 0); });
    EXPECT_TRUE(Contains(DecodeError(bytes), "truncate of 0 relations"));
}

// ---------------------------------------------------------------------------
// Walsender framing.
// ---------------------------------------------------------------------------

std::string XLogHeader() {
    return "w" + FromHex("0000000100000010 0000000100000020 fffffffffffffffb");
}

TEST(CopyData, XLogDataWithPayload) {
    std::string payload = Build([](W &w) { w.Commit(1, 2, 3); });
    std::string bytes = XLogHeader() + payload;
    XLogData x;
    Keepalive k;
    k.end_lsn = 99;
    k.send_time = 98;
    k.reply_requested = true;
    ASSERT_EQ(ParseCopyData(bytes, x, k), CopyKind::kXLogData);
    EXPECT_EQ(x.start_lsn, 0x0000000100000010ull);
    EXPECT_EQ(x.end_lsn, 0x0000000100000020ull);
    EXPECT_EQ(x.send_time, -5);
    EXPECT_EQ(x.payload, payload);
    EXPECT_EQ(x.payload.data(), bytes.data() + 25);
    // Only the XLogData is filled.
    EXPECT_EQ(k.end_lsn, 99u);
    EXPECT_EQ(k.send_time, 98);
    EXPECT_TRUE(k.reply_requested);
    Message m = DecodeOk(x.payload);
    EXPECT_EQ(m.type, MsgType::kCommit);

    std::string one_byte = XLogHeader() + "?";
    ASSERT_EQ(ParseCopyData(one_byte, x, k), CopyKind::kXLogData);
    EXPECT_EQ(x.payload, "?");
}

TEST(CopyData, XLogDataWithoutPayload) {
    EXPECT_TRUE(Contains(ParseError(XLogHeader()), "XLogData without a payload"));
    for (size_t len = 1; len < 25; len++)
        EXPECT_TRUE(Contains(ParseError(XLogHeader().substr(0, len)),
                             "malformed replication message at byte"))
            << len;
}

std::string KeepaliveBytes(uint8_t reply) {
    return "k" + FromHex("0102030405060708 8000000000000000") + std::string(1, char(reply));
}

TEST(CopyData, Keepalive) {
    for (uint8_t reply : {0, 1}) {
        XLogData x;
        x.start_lsn = 5;
        Keepalive k;
        k.reply_requested = reply == 0;
        ASSERT_EQ(ParseCopyData(KeepaliveBytes(reply), x, k), CopyKind::kKeepalive);
        EXPECT_EQ(k.end_lsn, 0x0102030405060708ull);
        EXPECT_EQ(k.send_time, kMinI64);
        EXPECT_EQ(k.reply_requested, reply == 1);
        EXPECT_EQ(x.start_lsn, 5u);
    }
}

TEST(CopyData, KeepaliveBadReplyFlag) {
    EXPECT_TRUE(Contains(ParseError(KeepaliveBytes(2)), "keepalive reply flag 2"));
    EXPECT_TRUE(Contains(ParseError(KeepaliveBytes(0xFF)), "keepalive reply flag 255"));
}

TEST(CopyData, KeepaliveTrailingBytes) {
    EXPECT_TRUE(Contains(ParseError(KeepaliveBytes(0) + "x"), "1 unexpected trailing bytes"));
    EXPECT_TRUE(Contains(ParseError(KeepaliveBytes(1) + "xyz"), "3 unexpected trailing bytes"));
    std::string full = KeepaliveBytes(1);
    for (size_t len = 1; len < full.size(); len++)
        EXPECT_TRUE(Contains(ParseError(full.substr(0, len)), "malformed replication message"))
            << len;
}

TEST(CopyData, UnknownTypeAndEmpty) {
    EXPECT_TRUE(
        Contains(ParseError("r" + std::string(33, '\0')), "unknown replication message type 114"));
    EXPECT_TRUE(Contains(ParseError("B"), "unknown replication message type 66"));
    EXPECT_TRUE(Contains(ParseError(""), "needs 1 bytes, 0 left"));
}

TEST(CopyData, StandbyStatusUpdateLayout) {
    std::string got = StandbyStatusUpdate(0x0102030405060708ull, 0x1112131415161718ull,
                                          0x2122232425262728ull, -2, true);
    ASSERT_EQ(got.size(), 34u);
    EXPECT_EQ(ToHex(got),
              Hex("72 0102030405060708 1112131415161718 2122232425262728 fffffffffffffffe 01"));
    got = StandbyStatusUpdate(0, kMaxU64, 0, 0, false);
    ASSERT_EQ(got.size(), 34u);
    EXPECT_EQ(ToHex(got),
              Hex("72 0000000000000000 ffffffffffffffff 0000000000000000 0000000000000000 00"));
}

// ---------------------------------------------------------------------------
// Text form: the messages go through Writer and Decode, as in the plugin.
// ---------------------------------------------------------------------------

class Renderer {
  public:
    explicit Renderer(TextOptions options = {}) : renderer_(options) {}
    std::string operator()(const std::string &bytes) {
        bytes_ = bytes;
        Decode(bytes_, msg_);
        return renderer_.Render(msg_);
    }
    template <typename F> std::string Write(F &&f) { return (*this)(Build(f)); }
    // A ProtocolError from rendering (the bytes themselves must decode).
    template <typename F> std::string Error(F &&f) {
        return ErrorText([&] { Write(f); });
    }

  private:
    TextRenderer renderer_;
    std::string bytes_;
    Message msg_;
};

void TableT(W &w) {
    w.RelationHeader(16384, "public", "t", 5);
    w.RelationColumn(kColumnKey, "id", 23, -1, "int4");
    w.RelationColumn(0, "name", 25, -1, "text");
    w.RelationColumn(0, "data", 17, -1, "bytea");
    w.RelationColumn(0, "ok", 16, -1, "bool");
    w.RelationColumn(0, "price", 1700, 655366, "numeric");
}

TEST(Text, BeginAndCommit) {
    auto begin = [](W &w) { w.Begin(0x16B374D848ull, 0, 42, "site-a"); };
    auto commit = [](W &w) { w.Commit(0x16B374D848ull, 0x16B374D878ull, -1); };

    Renderer plain;
    EXPECT_EQ(plain.Write(begin), "BEGIN origin=site-a");
    EXPECT_EQ(plain.Write(commit), "COMMIT");
    EXPECT_EQ(plain.Write([](W &w) { w.Begin(0, 0, 0, ""); }), "BEGIN origin=");

    Renderer xids({false, true});
    EXPECT_EQ(xids.Write(begin), "BEGIN xid=42 origin=site-a");
    EXPECT_EQ(xids.Write(commit), "COMMIT");

    Renderer lsn({true, false});
    EXPECT_EQ(lsn.Write(begin),
              "BEGIN origin=site-a lsn=16/B374D848 at=2000-01-01 00:00:00.000000+00");
    EXPECT_EQ(lsn.Write(commit),
              "COMMIT lsn=16/B374D848 end=16/B374D878 at=1999-12-31 23:59:59.999999+00");

    Renderer both({true, true});
    EXPECT_EQ(both.Write(begin),
              "BEGIN xid=42 origin=site-a lsn=16/B374D848 at=2000-01-01 00:00:00.000000+00");
    EXPECT_EQ(both.Write([](W &w) { w.Commit(0, kMaxU64, 762525296789012); }),
              "COMMIT lsn=0/0 end=FFFFFFFF/FFFFFFFF at=2024-02-29 12:34:56.789012+00");
}

TEST(Text, Relation) {
    Renderer r;
    EXPECT_EQ(r.Write(TableT),
              "RELATION public.t: id[int4]:key name[text] data[bytea] ok[bool] price[numeric]");
    EXPECT_EQ(r.Write([](W &w) { w.RelationHeader(1, "s", "empty", 0); }), "RELATION s.empty:");
}

TEST(Text, Changes) {
    Renderer r;
    r.Write(TableT);
    std::string insert = r.Write([](W &w) {
        w.Insert(16384);
        w.TupleHeader(5);
        w.Text("1");
        w.Text("it's");
        w.Binary(std::string("\x00\xff\x10", 3));
        w.Text("t");
        w.Null();
    });
    EXPECT_EQ(insert, "table public.t: INSERT: id[int4]:1 name[text]:'it''s' data[bytea]:\\x00ff10 "
                      "ok[bool]:t price[numeric]:null");

    std::string update = r.Write([](W &w) {
        w.Update(16384, false);
        w.TupleHeader(5);
        w.Text("1");
        w.UnchangedToast();
        w.Binary("");
        w.Text("f");
        w.Text("1.50");
    });
    EXPECT_EQ(update, "table public.t: UPDATE: id[int4]:1 name[text]:unchanged-toast-datum "
                      "data[bytea]:\\x ok[bool]:f price[numeric]:1.50");

    std::string key_update = r.Write([](W &w) {
        w.Update(16384, true);
        w.TupleHeader(5);
        w.Text("1");
        for (int i = 0; i < 4; i++)
            w.Null();
        w.TupleHeader(5);
        w.Text("2");
        w.Text("");
        for (int i = 0; i < 3; i++)
            w.Null();
    });
    EXPECT_EQ(key_update, "table public.t: UPDATE: old-key: id[int4]:1 new-tuple: id[int4]:2 "
                          "name[text]:'' data[bytea]:null ok[bool]:null price[numeric]:null");

    std::string del = r.Write([](W &w) {
        w.Delete(16384);
        w.TupleHeader(5);
        w.Text("2");
        for (int i = 0; i < 4; i++)
            w.Null();
    });
    EXPECT_EQ(del, "table public.t: DELETE: id[int4]:2");
}

TEST(Text, DeleteShowsEveryKeyColumn) {
    Renderer r;
    r.Write([](W &w) {
        w.RelationHeader(3, "s", "k", 3);
        w.RelationColumn(kColumnKey, "a", 23, -1, "int4");
        w.RelationColumn(0, "b", 25, -1, "text");
        w.RelationColumn(kColumnKey, "c", 25, -1, "text");
    });
    std::string del = r.Write([](W &w) {
        w.Delete(3);
        w.TupleHeader(3);
        w.Text("1");
        w.Null();
        w.Text("x'");
    });
    EXPECT_EQ(del, "table s.k: DELETE: a[int4]:1 c[text]:'x'''");
}

TEST(Text, Truncate) {
    Renderer r;
    r.Write(TableT);
    r.Write([](W &w) { w.RelationHeader(16385, "other", "u", 0); });
    const uint32_t relids[] = {16384, 16385};
    auto truncate = [&](uint8_t flags, const uint32_t *first, uint32_t n) {
        return r.Write([&](W &w) { w.Truncate(flags, first, n); });
    };
    EXPECT_EQ(truncate(0, relids, 2), "TRUNCATE: public.t other.u");
    EXPECT_EQ(truncate(kTruncateCascade, relids, 1), "TRUNCATE: public.t cascade");
    EXPECT_EQ(truncate(kTruncateRestartIdentity, relids + 1, 1), "TRUNCATE: other.u restart_seqs");
    EXPECT_EQ(truncate(3, relids, 2), "TRUNCATE: public.t other.u restart_seqs cascade");
}

TEST(Text, Ddl) {
    Renderer r;
    EXPECT_EQ(r.Write([](W &w) { w.Ddl("alice", "app, public", "CREATE INDEX ON t (v)"); }),
              "DDL role=alice search_path='app, public': CREATE INDEX ON t (v)");
    EXPECT_EQ(r.Write([](W &w) { w.Ddl("bob", "it's", "DROP INDEX i"); }),
              "DDL role=bob search_path='it''s': DROP INDEX i");
}

TEST(Text, QuotingOfText) {
    Renderer r;
    r.Write([](W &w) {
        w.RelationHeader(1, "s", "q", 1);
        w.RelationColumn(0, "v", 25, -1, "text");
    });
    auto insert = [&](const std::string &v) {
        return r.Write([&](W &w) {
            w.Insert(1);
            w.TupleHeader(1);
            w.Text(v);
        });
    };
    EXPECT_EQ(insert("a'b''c"), "table s.q: INSERT: v[text]:'a''b''''c'");
    EXPECT_EQ(insert("'"), "table s.q: INSERT: v[text]:''''");
    EXPECT_EQ(insert(""), "table s.q: INSERT: v[text]:''");
    EXPECT_EQ(insert(kEmbeddedNul), "table s.q: INSERT: v[text]:'" + kEmbeddedNul + "'");
}

TEST(Text, UnquotedTypesByOid) {
    auto render = [](uint32_t oid) {
        Renderer r;
        r.Write([&](W &w) {
            w.RelationHeader(1, "s", "n", 1);
            w.RelationColumn(0, "v", oid, -1, "x");
        });
        return r.Write([](W &w) {
            w.Insert(1);
            w.TupleHeader(1);
            w.Text("42");
        });
    };
    // bool, int8, int2, int4, oid, float4, float8, numeric.
    for (uint32_t oid : {16u, 20u, 21u, 23u, 26u, 700u, 701u, 1700u})
        EXPECT_EQ(render(oid), "table s.n: INSERT: v[x]:42") << oid;
    // text, bytea, varchar, date, json, an unknown OID.
    for (uint32_t oid : {25u, 17u, 1043u, 1082u, 114u, 0u, 16384u})
        EXPECT_EQ(render(oid), "table s.n: INSERT: v[x]:'42'") << oid;
}

TEST(Text, BinaryAsHex) {
    Renderer r;
    r.Write([](W &w) {
        w.RelationHeader(1, "s", "b", 2);
        w.RelationColumn(0, "i", 23, -1, "int4");
        w.RelationColumn(0, "t", 25, -1, "text");
    });
    // Binary wins over the type: even an int4 in binary is shown as hex.
    std::string insert = r.Write([](W &w) {
        w.Insert(1);
        w.TupleHeader(2);
        w.Binary(FromHex("0000002a"));
        w.Binary(std::string("'\x80\xff", 3));
    });
    EXPECT_EQ(insert, "table s.b: INSERT: i[int4]:\\x0000002a t[text]:\\x2780ff");
}

TEST(Text, ChangeBeforeRelationThrows) {
    Renderer r;
    std::string insert = r.Error([](W &w) {
        w.Insert(99);
        w.TupleHeader(0);
    });
    EXPECT_TRUE(Contains(insert, "change for relation 99 before its relation message"));
    std::string update = r.Error([](W &w) {
        w.Update(98, false);
        w.TupleHeader(0);
    });
    EXPECT_TRUE(Contains(update, "relation 98 before"));
    std::string del = r.Error([](W &w) {
        w.Delete(97);
        w.TupleHeader(0);
    });
    EXPECT_TRUE(Contains(del, "relation 97 before"));
    r.Write([](W &w) { w.RelationHeader(1, "s", "t", 0); });
    const uint32_t relids[] = {1, 96};
    EXPECT_TRUE(Contains(r.Error([&](W &w) { w.Truncate(0, relids, 2); }), "relation 96 before"));
}

TEST(Text, ColumnCountMismatchThrows) {
    Renderer r;
    r.Write(TableT);
    std::string insert = r.Error([](W &w) {
        w.Insert(16384);
        w.TupleHeader(1);
        w.Text("1");
    });
    EXPECT_TRUE(Contains(insert, "tuple has 1 columns, relation t has 5"));
    std::string old_key = r.Error([](W &w) {
        w.Update(16384, true);
        w.TupleHeader(1);
        w.Text("1");
        w.TupleHeader(0);
    });
    EXPECT_TRUE(Contains(old_key, "tuple has 1 columns, relation t has 5"));
    std::string del = r.Error([](W &w) {
        w.Delete(16384);
        w.TupleHeader(6);
        for (int i = 0; i < 6; i++)
            w.Null();
    });
    EXPECT_TRUE(Contains(del, "tuple has 6 columns, relation t has 5"));
}

TEST(Text, RelationResentReplacesTheOldOne) {
    Renderer r;
    r.Write([](W &w) {
        w.RelationHeader(1, "s", "t", 2);
        w.RelationColumn(kColumnKey, "id", 23, -1, "int4");
        w.RelationColumn(0, "a", 25, -1, "text");
    });
    r.Write([](W &w) {
        w.RelationHeader(2, "s", "other", 1);
        w.RelationColumn(0, "z", 25, -1, "text");
    });
    auto insert2 = [](W &w) {
        w.Insert(1);
        w.TupleHeader(2);
        w.Text("1");
        w.Text("x");
    };
    EXPECT_EQ(r.Write(insert2), "table s.t: INSERT: id[int4]:1 a[text]:'x'");

    // ALTER TABLE ... ADD COLUMN b, a rename and a new key: sent again.
    std::string relation = r.Write([](W &w) {
        w.RelationHeader(1, "s2", "t2", 3);
        w.RelationColumn(0, "id", 23, -1, "int4");
        w.RelationColumn(kColumnKey, "a", 25, -1, "text");
        w.RelationColumn(0, "b", 16, -1, "bool");
    });
    EXPECT_EQ(relation, "RELATION s2.t2: id[int4] a[text]:key b[bool]");
    std::string insert3 = r.Write([](W &w) {
        w.Insert(1);
        w.TupleHeader(3);
        w.Text("1");
        w.Text("x");
        w.Text("t");
    });
    EXPECT_EQ(insert3, "table s2.t2: INSERT: id[int4]:1 a[text]:'x' b[bool]:t");
    EXPECT_TRUE(Contains(r.Error(insert2), "tuple has 2 columns, relation t2 has 3"));
    std::string del = r.Write([](W &w) {
        w.Delete(1);
        w.TupleHeader(3);
        w.Null();
        w.Text("k");
        w.Null();
    });
    EXPECT_EQ(del, "table s2.t2: DELETE: a[text]:'k'");
    // The other relation is untouched.
    std::string other = r.Write([](W &w) {
        w.Insert(2);
        w.TupleHeader(1);
        w.Null();
    });
    EXPECT_EQ(other, "table s.other: INSERT: z[text]:null");
}

// ---------------------------------------------------------------------------
// FormatLsn and FormatTimestamp.
// ---------------------------------------------------------------------------

TEST(Format, Lsn) {
    EXPECT_EQ(FormatLsn(0), "0/0");
    EXPECT_EQ(FormatLsn(0x16B374D848ull), "16/B374D848");
    EXPECT_EQ(FormatLsn(0x100000000ull), "1/0");
    EXPECT_EQ(FormatLsn(0xFFFFFFFFull), "0/FFFFFFFF");
    EXPECT_EQ(FormatLsn(kMaxU64), "FFFFFFFF/FFFFFFFF");
}

TEST(Format, Timestamp) {
    EXPECT_EQ(FormatTimestamp(0), "2000-01-01 00:00:00.000000+00");
    EXPECT_EQ(FormatTimestamp(1), "2000-01-01 00:00:00.000001+00");
    EXPECT_EQ(FormatTimestamp(762525296789012), "2024-02-29 12:34:56.789012+00");
}

TEST(Format, TimestampBefore2000) {
    EXPECT_EQ(FormatTimestamp(-1), "1999-12-31 23:59:59.999999+00");
    EXPECT_EQ(FormatTimestamp(-1000000), "1999-12-31 23:59:59.000000+00");
    EXPECT_EQ(FormatTimestamp(-999999), "1999-12-31 23:59:59.000001+00");
    EXPECT_EQ(FormatTimestamp(-946684800000000), "1970-01-01 00:00:00.000000+00");
    EXPECT_EQ(FormatTimestamp(-946684800000001), "1969-12-31 23:59:59.999999+00");
    EXPECT_EQ(FormatTimestamp(-3155673600000000), "1900-01-01 00:00:00.000000+00");
}

TEST(Format, TimestampExtremesDoNotCrash) {
    // PostgreSQL uses these two for -infinity and infinity.
    EXPECT_TRUE(Contains(FormatTimestamp(kMinI64), ".224192+00"));
    EXPECT_TRUE(Contains(FormatTimestamp(kMaxI64), ".775807+00"));
}

} // namespace
} // namespace gsb::protocol
