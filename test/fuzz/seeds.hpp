// seeds.hpp: the seed messages of the protocol fuzzer, written with Writer.
//
// make_corpus.cpp writes them to test/fuzz/corpus/; protocol_fuzz.cpp uses
// SeedTable() so that the seeds' changes render against a known relation. It
// is test data, not a description of the protocol: that is protocol.hpp.
#pragma once

#include "protocol.hpp"

#include <string>
#include <utility>
#include <vector>

namespace gsb::protocol::seeds {

inline constexpr uint32_t kTableRelid = 16384;      // public.t, five columns
inline constexpr uint32_t kEmptyTableRelid = 16385; // public.empty, no columns

// The relation message of public.t: a key and one column of each rendering
// (quoted text, hex bytea, unquoted bool and numeric).
inline std::string SeedTable() {
    std::string out;
    StringSink sink{out};
    Writer<StringSink> w(sink);
    w.RelationHeader(kTableRelid, "public", "t", 5);
    w.RelationColumn(kColumnKey, "id", 23, -1, "int4");
    w.RelationColumn(0, "name", 25, -1, "text");
    w.RelationColumn(0, "data", 17, -1, "bytea");
    w.RelationColumn(0, "ok", 16, -1, "bool");
    w.RelationColumn(0, "price", 1700, 655366, "numeric");
    return out;
}

// The relation message of public.empty, a table without columns.
inline std::string SeedEmptyTable() {
    std::string out;
    StringSink sink{out};
    Writer<StringSink> w(sink);
    w.RelationHeader(kEmptyTableRelid, "public", "empty", 0);
    return out;
}

template <typename F> std::string Write(F &&f) {
    std::string out;
    StringSink sink{out};
    Writer<StringSink> w(sink);
    f(w);
    return out;
}

// A CopyData 'w' frame around one message, as the walsender sends it.
inline std::string XLogFrame(uint64_t start_lsn, uint64_t end_lsn, int64_t send_time,
                             const std::string &message) {
    std::string out(1, 'w');
    for (uint64_t v : {start_lsn, end_lsn, static_cast<uint64_t>(send_time)})
        for (int i = 0; i < 8; i++)
            out.push_back(static_cast<char>(v >> (56 - 8 * i)));
    return out + message;
}

// A CopyData 'k' keepalive.
inline std::string KeepaliveFrame(uint64_t end_lsn, int64_t send_time, uint8_t reply) {
    std::string out(1, 'k');
    for (uint64_t v : {end_lsn, static_cast<uint64_t>(send_time)})
        for (int i = 0; i < 8; i++)
            out.push_back(static_cast<char>(v >> (56 - 8 * i)));
    out.push_back(static_cast<char>(reply));
    return out;
}

// One message of each type and variant, named for the corpus file.
inline std::vector<std::pair<std::string, std::string>> Messages() {
    using W = Writer<StringSink>;
    const std::string nul("a\0b", 3);
    const std::string not_utf8("\xff\xfe\xc0\x80", 4);
    const uint32_t relids[] = {kTableRelid, kEmptyTableRelid};
    const uint8_t both_flags = kTruncateCascade | kTruncateRestartIdentity;
    return {
        {"begin", Write([](W &w) { w.Begin(0x16B374D848ull, 762525296789012, 731, "site-a"); })},
        {"begin-edges", Write([&](W &w) { w.Begin(UINT64_MAX, INT64_MIN, UINT32_MAX, not_utf8); })},
        {"commit", Write([](W &w) { w.Commit(0x16B374D848ull, 0x16B374D878ull, -1); })},
        {"relation", SeedTable()},
        {"relation-empty", SeedEmptyTable()},
        {"insert", Write([&](W &w) {
             w.Insert(kTableRelid);
             w.TupleHeader(5);
             w.Text("1");
             w.Text("it's");
             w.Binary(nul);
             w.Text("t");
             w.Null();
         })},
        {"update", Write([&](W &w) {
             w.Update(kTableRelid, false);
             w.TupleHeader(5);
             w.Text("1");
             w.UnchangedToast();
             w.Binary(not_utf8);
             w.Text("f");
             w.Text("1.50");
         })},
        {"update-key", Write([&](W &w) {
             w.Update(kTableRelid, true);
             w.TupleHeader(5);
             w.Text("1");
             for (int i = 0; i < 4; i++)
                 w.Null();
             w.TupleHeader(5);
             w.Text("2");
             w.Text("");
             w.Binary("");
             w.Null();
             w.Text(nul);
         })},
        {"delete", Write([](W &w) {
             w.Delete(kTableRelid);
             w.TupleHeader(5);
             w.Text("2");
             for (int i = 0; i < 4; i++)
                 w.Null();
         })},
        {"truncate", Write([&](W &w) { w.Truncate(both_flags, relids, 2); })},
        {"ddl", Write([](W &w) {
             w.Ddl("app_owner", "\"$user\", public", "ALTER TABLE t ADD COLUMN c int DEFAULT 7");
         })},
        {"ddl-empty-path", Write([&](W &w) { w.Ddl(not_utf8, "", nul); })},
    };
}

// The seed corpus: every message in a 'w' frame and bare (the fuzzer also
// decodes its input directly), and keepalives with each reply flag.
inline std::vector<std::pair<std::string, std::string>> Corpus() {
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto &[name, message] : Messages()) {
        files.emplace_back("w-" + name, XLogFrame(0x16B374D800ull, 0x16B374D900ull, 1, message));
        files.emplace_back("msg-" + name, message);
    }
    files.emplace_back("k-no-reply", KeepaliveFrame(0x16B374D900ull, 762525296789012, 0));
    files.emplace_back("k-reply", KeepaliveFrame(UINT64_MAX, -1, 1));
    return files;
}

} // namespace gsb::protocol::seeds
