// protocol_fuzz.cpp: libFuzzer target for the reader half of the gsb protocol.
//
// The bytes are what a hostile or broken peer could send: they go through
// ParseCopyData(), then Decode()/DecodeNext() and TextRenderer as in the apply worker and
// the plugin's text form, and are also decoded directly. ProtocolError is the
// only acceptable failure; another exception, a crash, a leak or undefined
// behaviour is a finding. Two properties are checked on top: a decoded
// message written back with Writer gives the same bytes (the format has one
// encoding per message), and a change that fits its relation renders.
// Build and run with `make fuzz`; the seeds come from seeds.hpp.
#include "protocol.hpp"
#include "seeds.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace gsb::protocol;

namespace {

using W = Writer<StringSink>;

[[noreturn]] void Finding(const char *what) {
    std::fprintf(stderr, "protocol_fuzz finding: %s\n", what);
    std::abort();
}

void WriteTuple(W &w, const Tuple &tuple) {
    w.TupleHeader(static_cast<uint16_t>(tuple.values.size()));
    for (const Value &v : tuple.values) {
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

// Writes a decoded message back with the one Writer.
std::string Encode(const Message &m) {
    std::string out;
    StringSink sink{out};
    W w(sink);
    switch (m.type) {
    case MsgType::kBegin:
        w.Begin(m.lsn, m.commit_time, m.xid, m.origin);
        break;
    case MsgType::kCommit:
        w.Commit(m.lsn, m.end_lsn, m.commit_time);
        break;
    case MsgType::kRelation:
        w.RelationHeader(m.relid, m.nspname, m.relname, static_cast<uint16_t>(m.columns.size()));
        for (const Column &c : m.columns)
            w.RelationColumn(c.flags, c.name, c.type_oid, c.typmod, c.type_name);
        break;
    case MsgType::kInsert:
        w.Insert(m.relid);
        WriteTuple(w, m.new_tuple);
        break;
    case MsgType::kUpdate:
        w.Update(m.relid, m.has_old);
        if (m.has_old)
            WriteTuple(w, m.old_tuple);
        WriteTuple(w, m.new_tuple);
        break;
    case MsgType::kDelete:
        w.Delete(m.relid);
        WriteTuple(w, m.old_tuple);
        break;
    case MsgType::kTruncate:
        w.Truncate(m.truncate_flags, m.relids.data(), static_cast<uint32_t>(m.relids.size()));
        break;
    case MsgType::kDdl:
        w.Ddl(m.role, m.search_path, m.command);
        break;
    }
    return out;
}

void Render(TextRenderer &renderer, const Message &msg) {
    try {
        renderer.Render(msg);
    } catch (const ProtocolError &) {
        // A change for an unknown relation or with the wrong column count.
    }
}

// After a fuzzed relation message, one change of each kind that fits it must
// render: this takes the fuzzed column names, flags and type OIDs through
// RenderTuple.
void RenderChangesFor(TextRenderer &renderer, const Message &relation) {
    static const std::string_view kData[] = {"1", "it's", std::string_view("\0\xff", 2), ""};
    Message change;
    change.relid = relation.relid;
    change.new_tuple.values.resize(relation.columns.size());
    for (size_t i = 0; i < relation.columns.size(); i++) {
        Value &v = change.new_tuple.values[i];
        v.kind = static_cast<ValueKind>("tbnu"[i % 4]);
        if (v.kind == ValueKind::kText || v.kind == ValueKind::kBinary)
            v.data = kData[(i / 4) % 4];
    }
    change.old_tuple = change.new_tuple;
    try {
        change.type = MsgType::kInsert;
        renderer.Render(change);
        change.type = MsgType::kUpdate;
        change.has_old = true;
        renderer.Render(change);
        change.type = MsgType::kDelete;
        renderer.Render(change);
    } catch (const ProtocolError &) {
        Finding("a change that fits its relation message does not render");
    }
}

void DecodeAndRender(std::string_view bytes, Message &msg, TextRenderer &renderer) {
    try {
        Decode(bytes, msg);
    } catch (const ProtocolError &) {
        return;
    }
    if (Encode(msg) != bytes)
        Finding("a decoded message does not write back to the same bytes");
    Render(renderer, msg);
    if (msg.type == MsgType::kRelation)
        RenderChangesFor(renderer, msg);
}

// A version 2 payload: messages back to back, as the apply worker reads them.
// Every message DecodeNext() accepts is a proper prefix of what is left and
// writes back to the same bytes.
void DecodeBatch(std::string_view payload, Message &msg) {
    size_t offset = 0;
    while (offset < payload.size()) {
        std::string_view rest = payload.substr(offset);
        size_t n = 0;
        try {
            n = DecodeNext(rest, msg);
        } catch (const ProtocolError &) {
            return;
        }
        if (n == 0 || n > rest.size())
            Finding("DecodeNext returned a length outside what it was given");
        if (Encode(msg) != rest.substr(0, n))
            Finding("a message of a batch does not write back to the same bytes");
        offset += n;
    }
}

// A renderer that knows the seeds' relations, so that fuzzed changes get past
// the relation lookup without a relation message in the same input.
TextRenderer SeededRenderer() {
    TextRenderer renderer(TextOptions{true, true});
    Message msg;
    std::string table = seeds::SeedTable();
    Decode(table, msg);
    renderer.Render(msg);
    std::string empty = seeds::SeedEmptyTable();
    Decode(empty, msg);
    renderer.Render(msg);
    return renderer;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const TextRenderer seeded = SeededRenderer();
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    // One renderer and one message per input, reused across its decodes as the
    // apply worker reuses them; nothing carries over to the next input.
    TextRenderer renderer = seeded;
    Message msg;

    XLogData xlog;
    Keepalive keepalive;
    CopyKind kind = CopyKind::kKeepalive;
    bool parsed = true;
    try {
        kind = ParseCopyData(bytes, xlog, keepalive);
    } catch (const ProtocolError &) {
        parsed = false;
    }
    if (parsed && kind == CopyKind::kXLogData) {
        if (xlog.payload.empty() || xlog.payload.data() != bytes.data() + 25 ||
            xlog.payload.size() != bytes.size() - 25)
            Finding("XLogData payload is not the rest of the frame");
        DecodeAndRender(xlog.payload, msg, renderer);
        DecodeBatch(xlog.payload, msg);
    } else if (parsed) {
        if (seeds::KeepaliveFrame(keepalive.end_lsn, keepalive.send_time,
                                  keepalive.reply_requested ? 1 : 0) != bytes)
            Finding("a parsed keepalive does not write back to the same bytes");
        std::string reply =
            StandbyStatusUpdate(keepalive.end_lsn, keepalive.end_lsn, keepalive.end_lsn,
                                keepalive.send_time, keepalive.reply_requested);
        if (reply.size() != 34 || reply[0] != 'r')
            Finding("standby status update is not 34 bytes starting with 'r'");
    }

    DecodeAndRender(bytes, msg, renderer);
    return 0;
}
