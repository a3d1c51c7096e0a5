// protocol.hpp: the gsb wire protocol, its one writer and its one reader.
//
// Both ends of gsb use this file: the output plugin writes with Writer, the
// apply worker reads with Decode(), and the plugin's text form is Decode()
// followed by TextRenderer. It also frames the walsender's CopyData messages
// ('w' XLogData, 'k' keepalive) and writes the standby status update ('r'),
// so every byte that crosses between sites is read and written here.
//
// It is plain C++17 with no PostgreSQL headers, so it is unit-tested and
// fuzzed on its own. Bytes from the peer are untrusted: every length, count
// and tag is checked, and any violation throws ProtocolError.
//
// Format (version 3). Integers are big-endian; a string is a u32 length and
// that many bytes. Each logical-decoding message is one of:
//   'B' begin     u64 final_lsn, i64 commit_time, u32 xid, str origin_site
//   'C' commit    u8 flags(0), u64 commit_lsn, u64 end_lsn, i64 commit_time
//   'R' relation  u32 relid, str nspname, str relname, u16 ncols,
//                 ncols x { u8 flags(1=key), str name, u32 type_oid,
//                           i32 typmod, str type_name }
//   'I' insert    u32 relid, tuple
//   'U' update    u32 relid, u8 'K'+tuple (old key) | u8 'N', tuple (new)
//   'D' delete    u32 relid, tuple (old key)
//   'T' truncate  u8 flags(1=cascade,2=restart identity), u32 n, n x u32 relid
//   'Q' ddl       u8 flags(0), str role, str search_path, str command
//                 (version 3: gsb.replicate_ddl; the receiver runs command,
//                 at this point of the transaction, as that role)
// tuple: u16 n, n x { 'n' null | 'u' unchanged TOAST | 't' str text
//                     | 'b' str binary (typsend) }
// Times are PostgreSQL timestamps: microseconds since 2000-01-01 UTC.
//
// Framing. Version 1: each XLogData payload is exactly one message. Version 2
// (the same messages): a walsender's XLogData payload carries one or more
// messages back to back, up to about kBatchBytes, always ending at a commit
// or at a message boundary; the SQL functions (pg_logical_slot_*_changes)
// still give one message per row. Messages are self-delimiting, so the reader
// takes them one at a time with DecodeNext(). Version 3 adds 'Q': a sender
// whose receiver asked for an older version refuses to send one (it stops
// with an error naming both versions) instead of leaving it out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gsb::protocol {

inline constexpr uint32_t kVersion = 3;
// The first version that carries 'Q' (replicated DDL).
inline constexpr uint32_t kDdlVersion = 3;
inline constexpr uint32_t kMinVersion = 1;
// Version 2: a walsender sends what it has gathered once it is this large (and
// at every commit): one send and one receive per batch instead of per change.
inline constexpr size_t kBatchBytes = 64 * 1024;
// No PostgreSQL relation has more columns than MaxTupleAttributeNumber.
inline constexpr uint16_t kMaxColumns = 1664;

class ProtocolError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

enum class MsgType : uint8_t {
    kBegin = 'B',
    kCommit = 'C',
    kRelation = 'R',
    kInsert = 'I',
    kUpdate = 'U',
    kDelete = 'D',
    kTruncate = 'T',
    kDdl = 'Q',
};

enum class ValueKind : uint8_t {
    kNull = 'n',
    kUnchangedToast = 'u',
    kText = 't',
    kBinary = 'b',
};

inline constexpr uint8_t kColumnKey = 1;
inline constexpr uint8_t kTruncateCascade = 1;
inline constexpr uint8_t kTruncateRestartIdentity = 2;

struct Value {
    ValueKind kind = ValueKind::kNull;
    std::string_view data; // text or binary bytes; empty otherwise
};

struct Tuple {
    std::vector<Value> values; // reused between messages: clear() keeps capacity
};

struct Column {
    uint8_t flags = 0;
    std::string_view name;
    uint32_t type_oid = 0;
    int32_t typmod = -1;
    std::string_view type_name;
    bool IsKey() const { return (flags & kColumnKey) != 0; }
};

// One decoded message. Only the fields of `type` are meaningful; string views
// point into the buffer given to Decode() and live as long as it does.
struct Message {
    MsgType type = MsgType::kBegin;
    // begin / commit
    uint64_t lsn = 0;     // begin: final LSN; commit: commit LSN
    uint64_t end_lsn = 0; // commit
    int64_t commit_time = 0;
    uint32_t xid = 0;
    std::string_view origin; // begin: the site where the change was made
    // relation
    uint32_t relid = 0; // also insert/update/delete
    std::string_view nspname;
    std::string_view relname;
    std::vector<Column> columns;
    // changes
    bool has_old = false; // update: old key sent (the key changed)
    Tuple old_tuple;      // update (when has_old) and delete
    Tuple new_tuple;      // insert and update
    // truncate
    uint8_t truncate_flags = 0;
    std::vector<uint32_t> relids;
    // ddl
    std::string_view role;        // runs as the role of this name
    std::string_view search_path; // with this search_path
    std::string_view command;     // the DDL, as given to gsb.replicate_ddl
};

// ---------------------------------------------------------------------------
// Writer. Sink needs `void Append(const char *data, size_t len)`.
// ---------------------------------------------------------------------------
template <typename Sink> class Writer {
  public:
    explicit Writer(Sink &sink) : sink_(sink) {}

    void Begin(uint64_t final_lsn, int64_t commit_time, uint32_t xid, std::string_view origin) {
        U8(static_cast<uint8_t>(MsgType::kBegin));
        U64(final_lsn);
        I64(commit_time);
        U32(xid);
        Str(origin);
    }
    void Commit(uint64_t commit_lsn, uint64_t end_lsn, int64_t commit_time) {
        U8(static_cast<uint8_t>(MsgType::kCommit));
        U8(0);
        U64(commit_lsn);
        U64(end_lsn);
        I64(commit_time);
    }
    // A relation message is RelationHeader followed by exactly ncols Column().
    void RelationHeader(uint32_t relid, std::string_view nspname, std::string_view relname,
                        uint16_t ncols) {
        U8(static_cast<uint8_t>(MsgType::kRelation));
        U32(relid);
        Str(nspname);
        Str(relname);
        U16(ncols);
    }
    void RelationColumn(uint8_t flags, std::string_view name, uint32_t type_oid, int32_t typmod,
                        std::string_view type_name) {
        U8(flags);
        Str(name);
        U32(type_oid);
        I32(typmod);
        Str(type_name);
    }
    // Change headers; each is followed by the tuple(s) named in the format.
    void Insert(uint32_t relid) {
        U8(static_cast<uint8_t>(MsgType::kInsert));
        U32(relid);
    }
    // With has_old, an old-key tuple follows, then the new tuple.
    void Update(uint32_t relid, bool has_old) {
        U8(static_cast<uint8_t>(MsgType::kUpdate));
        U32(relid);
        U8(has_old ? 'K' : 'N');
    }
    void Delete(uint32_t relid) {
        U8(static_cast<uint8_t>(MsgType::kDelete));
        U32(relid);
    }
    void Truncate(uint8_t flags, const uint32_t *relids, uint32_t n) {
        U8(static_cast<uint8_t>(MsgType::kTruncate));
        U8(flags);
        U32(n);
        for (uint32_t i = 0; i < n; i++)
            U32(relids[i]);
    }
    // A DDL command to run at this point of the transaction, as role.
    void Ddl(std::string_view role, std::string_view search_path, std::string_view command) {
        U8(static_cast<uint8_t>(MsgType::kDdl));
        U8(0);
        Str(role);
        Str(search_path);
        Str(command);
    }
    // A tuple is TupleHeader followed by exactly ncols values.
    void TupleHeader(uint16_t ncols) { U16(ncols); }
    void Null() { U8(static_cast<uint8_t>(ValueKind::kNull)); }
    void UnchangedToast() { U8(static_cast<uint8_t>(ValueKind::kUnchangedToast)); }
    void Text(std::string_view v) {
        U8(static_cast<uint8_t>(ValueKind::kText));
        Str(v);
    }
    void Binary(std::string_view v) {
        U8(static_cast<uint8_t>(ValueKind::kBinary));
        Str(v);
    }

  private:
    void U8(uint8_t v) { sink_.Append(reinterpret_cast<const char *>(&v), 1); }
    void U16(uint16_t v) {
        char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
        sink_.Append(b, 2);
    }
    void U32(uint32_t v) {
        char b[4];
        for (int i = 0; i < 4; i++)
            b[i] = static_cast<char>(v >> (24 - 8 * i));
        sink_.Append(b, 4);
    }
    void U64(uint64_t v) {
        char b[8];
        for (int i = 0; i < 8; i++)
            b[i] = static_cast<char>(v >> (56 - 8 * i));
        sink_.Append(b, 8);
    }
    void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
    void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
    void Str(std::string_view s) {
        if (s.size() > UINT32_MAX)
            throw ProtocolError("string too long for the gsb protocol");
        U32(static_cast<uint32_t>(s.size()));
        sink_.Append(s.data(), s.size());
    }

    Sink &sink_;
};

// A sink that appends to a std::string (tests, the walsender framing).
struct StringSink {
    std::string &out;
    void Append(const char *data, size_t len) { out.append(data, len); }
};

// ---------------------------------------------------------------------------
// Reader.
// ---------------------------------------------------------------------------

// Decodes one logical-decoding message. Throws ProtocolError when the bytes
// are not exactly one well-formed message.
void Decode(std::string_view bytes, Message &out);

// Decodes the message at the start of bytes (a version 2 payload may hold
// several) and returns its length in bytes, never 0. Throws ProtocolError when
// the bytes do not start with a well-formed message.
size_t DecodeNext(std::string_view bytes, Message &out);

// ---------------------------------------------------------------------------
// Walsender framing (the CopyData payloads of START_REPLICATION).
// ---------------------------------------------------------------------------
struct XLogData { // 'w'
    uint64_t start_lsn = 0;
    uint64_t end_lsn = 0;
    int64_t send_time = 0;
    std::string_view payload; // one gsb message (version 1) or several (2), for DecodeNext()
};
struct Keepalive { // 'k'
    uint64_t end_lsn = 0;
    int64_t send_time = 0;
    bool reply_requested = false;
};
enum class CopyKind { kXLogData, kKeepalive };

// Parses one CopyData payload from the walsender; fills exactly one of xlog
// and keepalive and says which. Throws ProtocolError on anything else.
CopyKind ParseCopyData(std::string_view bytes, XLogData &xlog, Keepalive &keepalive);

// The standby status update ('r') that the apply worker sends back.
std::string StandbyStatusUpdate(uint64_t written, uint64_t flushed, uint64_t applied, int64_t now,
                                bool reply_requested);

// ---------------------------------------------------------------------------
// Text form, for pg_logical_slot_get_changes and debugging.
// ---------------------------------------------------------------------------
struct TextOptions {
    bool include_lsn = false;  // BEGIN/COMMIT show LSNs and commit time
    bool include_xids = false; // BEGIN shows the xid
};

// Renders decoded messages as text. It remembers relation messages so that
// changes can name their table and columns, as the apply worker does.
class TextRenderer {
  public:
    explicit TextRenderer(TextOptions options) : options_(options) {}
    // Returns the text for one message (may be several lines for none).
    std::string Render(const Message &msg);

  private:
    struct RelInfo {
        std::string nspname, relname;
        std::vector<std::string> names, types;
        std::vector<uint32_t> type_oids;
        std::vector<bool> key;
    };
    const RelInfo &Lookup(uint32_t relid) const;
    void RenderTuple(std::string &out, const RelInfo &rel, const Tuple &tuple, bool key_only) const;

    TextOptions options_;
    std::vector<std::pair<uint32_t, RelInfo>> relations_;
};

// Formats a PostgreSQL timestamp (µs since 2000-01-01 UTC) as ISO 8601 UTC.
std::string FormatTimestamp(int64_t pg_usec);
// Formats an LSN as PostgreSQL does: X/X in hexadecimal.
std::string FormatLsn(uint64_t lsn);

} // namespace gsb::protocol
