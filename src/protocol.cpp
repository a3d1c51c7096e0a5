// protocol.cpp: the reader half of the gsb wire protocol, the walsender
// framing and the text form. The writer is inline in protocol.hpp.
#include "protocol.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace gsb::protocol {
namespace {

// Reads big-endian fields from an untrusted buffer, checking every length.
class Cursor {
  public:
    Cursor(std::string_view bytes, const char *what) : bytes_(bytes), what_(what) {}

    uint8_t U8() {
        Need(1);
        return static_cast<uint8_t>(bytes_[pos_++]);
    }
    uint16_t U16() {
        Need(2);
        uint16_t v = static_cast<uint16_t>((Byte(0) << 8) | Byte(1));
        pos_ += 2;
        return v;
    }
    uint32_t U32() {
        Need(4);
        uint32_t v = 0;
        for (int i = 0; i < 4; i++)
            v = (v << 8) | Byte(i);
        pos_ += 4;
        return v;
    }
    uint64_t U64() {
        Need(8);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = (v << 8) | Byte(i);
        pos_ += 8;
        return v;
    }
    int32_t I32() { return static_cast<int32_t>(U32()); }
    int64_t I64() { return static_cast<int64_t>(U64()); }
    std::string_view Str() {
        uint32_t len = U32();
        Need(len);
        std::string_view s = bytes_.substr(pos_, len);
        pos_ += len;
        return s;
    }
    size_t Remaining() const { return bytes_.size() - pos_; }
    size_t Position() const { return pos_; }
    void ExpectEnd() const {
        if (Remaining() != 0)
            Fail(std::to_string(Remaining()) + " unexpected trailing bytes");
    }
    [[noreturn]] void Fail(const std::string &why) const {
        throw ProtocolError(std::string("malformed ") + what_ + " at byte " + std::to_string(pos_) +
                            ": " + why);
    }

  private:
    uint32_t Byte(size_t i) const { return static_cast<uint8_t>(bytes_[pos_ + i]); }
    void Need(size_t n) const {
        if (Remaining() < n)
            Fail("needs " + std::to_string(n) + " bytes, " + std::to_string(Remaining()) + " left");
    }

    std::string_view bytes_;
    const char *what_;
    size_t pos_ = 0;
};

void ReadTuple(Cursor &c, Tuple &out) {
    uint16_t n = c.U16();
    if (n > kMaxColumns)
        c.Fail("tuple with " + std::to_string(n) + " columns");
    // Each value takes at least one byte: refuse counts the buffer cannot hold
    // before allocating for them.
    if (n > c.Remaining())
        c.Fail("tuple claims " + std::to_string(n) + " columns in " +
               std::to_string(c.Remaining()) + " bytes");
    out.values.resize(n);
    for (uint16_t i = 0; i < n; i++) {
        Value &v = out.values[i];
        uint8_t kind = c.U8();
        switch (kind) {
        case static_cast<uint8_t>(ValueKind::kNull):
        case static_cast<uint8_t>(ValueKind::kUnchangedToast):
            v.kind = static_cast<ValueKind>(kind);
            v.data = {};
            break;
        case static_cast<uint8_t>(ValueKind::kText):
        case static_cast<uint8_t>(ValueKind::kBinary):
            v.kind = static_cast<ValueKind>(kind);
            v.data = c.Str();
            break;
        default:
            c.Fail("unknown value kind " + std::to_string(kind) + " in column " +
                   std::to_string(i + 1));
        }
    }
}

bool IsUnquotedType(uint32_t oid) {
    switch (oid) {
    case 16:   // bool
    case 20:   // int8
    case 21:   // int2
    case 23:   // int4
    case 26:   // oid
    case 700:  // float4
    case 701:  // float8
    case 1700: // numeric
        return true;
    default:
        return false;
    }
}

void AppendQuoted(std::string &out, std::string_view s) {
    out.push_back('\'');
    for (char ch : s) {
        if (ch == '\'')
            out.push_back('\'');
        out.push_back(ch);
    }
    out.push_back('\'');
}

void AppendHex(std::string &out, std::string_view s) {
    static const char digits[] = "0123456789abcdef";
    out += "\\x";
    for (unsigned char ch : s) {
        out.push_back(digits[ch >> 4]);
        out.push_back(digits[ch & 15]);
    }
}

} // namespace

namespace {

// Reads one message from c, leaving c after it.
void DecodeFrom(Cursor &c, Message &out) {
    uint8_t type = c.U8();
    switch (type) {
    case static_cast<uint8_t>(MsgType::kBegin):
        out.type = MsgType::kBegin;
        out.lsn = c.U64();
        out.commit_time = c.I64();
        out.xid = c.U32();
        out.origin = c.Str();
        break;
    case static_cast<uint8_t>(MsgType::kCommit): {
        out.type = MsgType::kCommit;
        uint8_t flags = c.U8();
        if (flags != 0)
            c.Fail("unknown commit flags " + std::to_string(flags));
        out.lsn = c.U64();
        out.end_lsn = c.U64();
        out.commit_time = c.I64();
        break;
    }
    case static_cast<uint8_t>(MsgType::kRelation): {
        out.type = MsgType::kRelation;
        out.relid = c.U32();
        out.nspname = c.Str();
        out.relname = c.Str();
        if (out.nspname.empty() || out.relname.empty())
            c.Fail("relation without a name");
        uint16_t n = c.U16();
        if (n > kMaxColumns)
            c.Fail("relation with " + std::to_string(n) + " columns");
        // A column takes at least 17 bytes (flags, three lengths, type OID,
        // typmod): refuse counts the buffer cannot hold before allocating.
        if (n > c.Remaining() / 17)
            c.Fail("relation claims " + std::to_string(n) + " columns in " +
                   std::to_string(c.Remaining()) + " bytes");
        out.columns.resize(n);
        for (uint16_t i = 0; i < n; i++) {
            Column &col = out.columns[i];
            col.flags = c.U8();
            if ((col.flags & ~kColumnKey) != 0)
                c.Fail("unknown column flags " + std::to_string(col.flags));
            col.name = c.Str();
            if (col.name.empty())
                c.Fail("column " + std::to_string(i + 1) + " has no name");
            col.type_oid = c.U32();
            col.typmod = c.I32();
            col.type_name = c.Str();
        }
        break;
    }
    case static_cast<uint8_t>(MsgType::kInsert):
        out.type = MsgType::kInsert;
        out.relid = c.U32();
        out.has_old = false;
        ReadTuple(c, out.new_tuple);
        break;
    case static_cast<uint8_t>(MsgType::kUpdate): {
        out.type = MsgType::kUpdate;
        out.relid = c.U32();
        uint8_t marker = c.U8();
        if (marker == 'K') {
            out.has_old = true;
            ReadTuple(c, out.old_tuple);
        } else if (marker == 'N') {
            out.has_old = false;
            out.old_tuple.values.clear();
        } else {
            c.Fail("unknown update marker " + std::to_string(marker));
        }
        ReadTuple(c, out.new_tuple);
        break;
    }
    case static_cast<uint8_t>(MsgType::kDelete):
        out.type = MsgType::kDelete;
        out.relid = c.U32();
        out.has_old = true;
        ReadTuple(c, out.old_tuple);
        break;
    case static_cast<uint8_t>(MsgType::kTruncate): {
        out.type = MsgType::kTruncate;
        out.truncate_flags = c.U8();
        if ((out.truncate_flags & ~(kTruncateCascade | kTruncateRestartIdentity)) != 0)
            c.Fail("unknown truncate flags " + std::to_string(out.truncate_flags));
        uint32_t n = c.U32();
        if (n == 0 || n > c.Remaining() / 4)
            c.Fail("truncate of " + std::to_string(n) + " relations");
        out.relids.resize(n);
        for (uint32_t i = 0; i < n; i++)
            out.relids[i] = c.U32();
        break;
    }
    case static_cast<uint8_t>(MsgType::kDdl): {
        out.type = MsgType::kDdl;
        uint8_t flags = c.U8();
        if (flags != 0)
            c.Fail("unknown ddl flags " + std::to_string(flags));
        out.role = c.Str();
        if (out.role.empty())
            c.Fail("ddl without a role");
        out.search_path = c.Str();
        out.command = c.Str();
        if (out.command.empty())
            c.Fail("ddl without a command");
        break;
    }
    default:
        c.Fail("unknown message type " + std::to_string(type));
    }
}

} // namespace

void Decode(std::string_view bytes, Message &out) {
    Cursor c(bytes, "gsb message");
    DecodeFrom(c, out);
    c.ExpectEnd();
}

size_t DecodeNext(std::string_view bytes, Message &out) {
    Cursor c(bytes, "gsb message");
    DecodeFrom(c, out);
    return c.Position();
}

CopyKind ParseCopyData(std::string_view bytes, XLogData &xlog, Keepalive &keepalive) {
    Cursor c(bytes, "replication message");
    uint8_t type = c.U8();
    if (type == 'w') {
        xlog.start_lsn = c.U64();
        xlog.end_lsn = c.U64();
        xlog.send_time = c.I64();
        xlog.payload = bytes.substr(1 + 8 + 8 + 8);
        if (xlog.payload.empty())
            c.Fail("XLogData without a payload");
        return CopyKind::kXLogData;
    }
    if (type == 'k') {
        keepalive.end_lsn = c.U64();
        keepalive.send_time = c.I64();
        uint8_t reply = c.U8();
        if (reply > 1)
            c.Fail("keepalive reply flag " + std::to_string(reply));
        keepalive.reply_requested = reply == 1;
        c.ExpectEnd();
        return CopyKind::kKeepalive;
    }
    c.Fail("unknown replication message type " + std::to_string(type));
}

std::string StandbyStatusUpdate(uint64_t written, uint64_t flushed, uint64_t applied, int64_t now,
                                bool reply_requested) {
    std::string out;
    out.reserve(34);
    out.push_back('r');
    for (uint64_t v : {written, flushed, applied, static_cast<uint64_t>(now)})
        for (int i = 0; i < 8; i++)
            out.push_back(static_cast<char>(v >> (56 - 8 * i)));
    out.push_back(reply_requested ? 1 : 0);
    return out;
}

std::string FormatLsn(uint64_t lsn) {
    char buf[32];
    snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
             static_cast<unsigned>(lsn & 0xffffffffu));
    return buf;
}

std::string FormatTimestamp(int64_t pg_usec) {
    // PostgreSQL's epoch is 2000-01-01, 946684800 s after the Unix epoch.
    int64_t usec = pg_usec % 1000000;
    int64_t sec = pg_usec / 1000000;
    if (usec < 0) {
        usec += 1000000;
        sec -= 1;
    }
    time_t unix_sec = static_cast<time_t>(sec + 946684800);
    struct tm tm;
    if (gmtime_r(&unix_sec, &tm) == nullptr)
        return "invalid timestamp";
    char buf[64];
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(usec));
    return buf;
}

const TextRenderer::RelInfo &TextRenderer::Lookup(uint32_t relid) const {
    for (const auto &[id, info] : relations_)
        if (id == relid)
            return info;
    throw ProtocolError("change for relation " + std::to_string(relid) +
                        " before its relation message");
}

void TextRenderer::RenderTuple(std::string &out, const RelInfo &rel, const Tuple &tuple,
                               bool key_only) const {
    if (tuple.values.size() != rel.names.size())
        throw ProtocolError("tuple has " + std::to_string(tuple.values.size()) +
                            " columns, relation " + rel.relname + " has " +
                            std::to_string(rel.names.size()));
    bool first = true;
    for (size_t i = 0; i < tuple.values.size(); i++) {
        if (key_only && !rel.key[i])
            continue;
        const Value &v = tuple.values[i];
        if (!first)
            out.push_back(' ');
        first = false;
        out += rel.names[i];
        out.push_back('[');
        out += rel.types[i];
        out += "]:";
        switch (v.kind) {
        case ValueKind::kNull:
            out += "null";
            break;
        case ValueKind::kUnchangedToast:
            out += "unchanged-toast-datum";
            break;
        case ValueKind::kText:
            if (IsUnquotedType(rel.type_oids[i]))
                out.append(v.data);
            else
                AppendQuoted(out, v.data);
            break;
        case ValueKind::kBinary:
            AppendHex(out, v.data);
            break;
        }
    }
}

std::string TextRenderer::Render(const Message &msg) {
    std::string out;
    switch (msg.type) {
    case MsgType::kBegin:
        out = "BEGIN";
        if (options_.include_xids)
            out += " xid=" + std::to_string(msg.xid);
        out += " origin=";
        out.append(msg.origin);
        if (options_.include_lsn)
            out += " lsn=" + FormatLsn(msg.lsn) + " at=" + FormatTimestamp(msg.commit_time);
        break;
    case MsgType::kCommit:
        out = "COMMIT";
        if (options_.include_lsn)
            out += " lsn=" + FormatLsn(msg.lsn) + " end=" + FormatLsn(msg.end_lsn) +
                   " at=" + FormatTimestamp(msg.commit_time);
        break;
    case MsgType::kRelation: {
        RelInfo info;
        info.nspname.assign(msg.nspname);
        info.relname.assign(msg.relname);
        out = "RELATION ";
        out += info.nspname + "." + info.relname + ":";
        for (const Column &col : msg.columns) {
            info.names.emplace_back(col.name);
            info.types.emplace_back(col.type_name);
            info.type_oids.push_back(col.type_oid);
            info.key.push_back(col.IsKey());
            out += " ";
            out.append(col.name);
            out += "[";
            out.append(col.type_name);
            out += col.IsKey() ? "]:key" : "]";
        }
        auto it = std::find_if(relations_.begin(), relations_.end(),
                               [&](const auto &p) { return p.first == msg.relid; });
        if (it != relations_.end())
            it->second = std::move(info);
        else
            relations_.emplace_back(msg.relid, std::move(info));
        break;
    }
    case MsgType::kInsert: {
        const RelInfo &rel = Lookup(msg.relid);
        out = "table " + rel.nspname + "." + rel.relname + ": INSERT: ";
        RenderTuple(out, rel, msg.new_tuple, false);
        break;
    }
    case MsgType::kUpdate: {
        const RelInfo &rel = Lookup(msg.relid);
        out = "table " + rel.nspname + "." + rel.relname + ": UPDATE: ";
        if (msg.has_old) {
            out += "old-key: ";
            RenderTuple(out, rel, msg.old_tuple, true);
            out += " new-tuple: ";
        }
        RenderTuple(out, rel, msg.new_tuple, false);
        break;
    }
    case MsgType::kDelete: {
        const RelInfo &rel = Lookup(msg.relid);
        out = "table " + rel.nspname + "." + rel.relname + ": DELETE: ";
        RenderTuple(out, rel, msg.old_tuple, true);
        break;
    }
    case MsgType::kTruncate: {
        out = "TRUNCATE:";
        for (uint32_t relid : msg.relids) {
            const RelInfo &rel = Lookup(relid);
            out += " " + rel.nspname + "." + rel.relname;
        }
        if (msg.truncate_flags & kTruncateRestartIdentity)
            out += " restart_seqs";
        if (msg.truncate_flags & kTruncateCascade)
            out += " cascade";
        break;
    }
    case MsgType::kDdl:
        out = "DDL role=";
        out.append(msg.role);
        out += " search_path=";
        AppendQuoted(out, msg.search_path);
        out += ": ";
        out.append(msg.command);
        break;
    }
    return out;
}

} // namespace gsb::protocol
