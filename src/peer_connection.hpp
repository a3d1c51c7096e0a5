// peer_connection.hpp: the one place where gsb talks to the other site, for
// SQL (gsb._peer_query, the site monitor's heartbeat, the initial copy) or
// for replication (the apply worker's stream).
//
// Every call has a deadline. Connecting, sending and waiting for an answer
// never block: each waits on the process latch and the socket together until
// its deadline, taking interrupts meanwhile (a backend stays cancellable and
// honours statement_timeout, a worker notices SIGTERM and postmaster death).
// A deadline that passes closes the connection and raises SQLSTATE 08006
// (08001 while connecting), with a context line naming the peer and what was
// being done. TCP keepalives and tcp_user_timeout, derived from the caller's
// timeout, make the kernel notice a link that silently drops packets; a SQL
// session also gets statement_timeout on the peer, so the peer gives up a
// query that nobody waits for any more (libpq 15's PQcancel would block with
// no timeout on exactly the peers that deadlines are for: frozen or cut off).
//
// Every session opened on the peer runs with an empty search_path and fixed
// output styles, so values travel in one format.
#pragma once

#include <string>
#include <utility>

#include "libpq-fe.h"

#include "pg.hpp"

#include "interop.hpp"

extern "C" {
#include "datatype/timestamp.h"
}

struct WaitEventSet; // storage/latch.h

namespace gsb {

// Owns a PGresult.
class PgResult {
  public:
    explicit PgResult(PGresult *r = nullptr) : r_(r) {}
    ~PgResult() {
        if (r_)
            PQclear(r_);
    }
    PgResult(PgResult &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    PgResult &operator=(PgResult &&o) noexcept {
        std::swap(r_, o.r_);
        return *this;
    }
    PgResult(const PgResult &) = delete;
    PgResult &operator=(const PgResult &) = delete;

    PGresult *get() const { return r_; }
    int Rows() const { return PQntuples(r_); }
    int Cols() const { return PQnfields(r_); }
    // A peer is untrusted: a cell outside what it answered is an error
    // (class 08, protocol violation), never a NULL pointer in a string.
    bool IsNull(int row, int col) const {
        CheckCell(row, col);
        return PQgetisnull(r_, row, col) != 0;
    }
    // The value as text ("" for NULL).
    const char *Get(int row, int col) const {
        CheckCell(row, col);
        return PQgetvalue(r_, row, col);
    }
    int Length(int row, int col) const {
        CheckCell(row, col);
        return PQgetlength(r_, row, col);
    }

  private:
    void CheckCell(int row, int col) const {
        if (r_ == nullptr || row < 0 || col < 0 || row >= PQntuples(r_) || col >= PQnfields(r_))
            throw Error(ERRCODE_PROTOCOL_VIOLATION,
                        "the peer's answer has " + std::to_string(r_ ? PQntuples(r_) : 0) +
                            " rows of " + std::to_string(r_ ? PQnfields(r_) : 0) +
                            " columns; gsb needed row " + std::to_string(row + 1) + ", column " +
                            std::to_string(col + 1),
                        {}, "The peer runs another version of gsb, or is not a gsb site.");
    }

    PGresult *r_;
};

// How long a connection's calls may wait, and which setting says so.
struct PeerTimeouts {
    long connect_ms = 10000; // to connect and log in
    long query_ms = 0;       // for each answer (and each send) by default; 0: no deadline
    // How soon the kernel gives up a TCP link that stopped answering
    // (keepalives, tcp_user_timeout); 0: libpq's defaults. A connection
    // string that sets these keywords itself keeps its values.
    long link_ms = 0;
    // Named in the hint of a deadline error, e.g. "gsb.peer_timeout".
    const char *setting = nullptr;
};

// The apply worker's timeouts, for its stream and its initial copy: every
// wait for the peer bounded by gsb.apply_timeout (when 0: none), and 10 s
// at most to connect.
PeerTimeouts ApplyTimeouts();

// The longest that gsb._peer_query may wait in this process (0: no cap). The
// site monitor sets it while the peer is unreachable: its tick, which may
// fail over, must not stall on that peer again.
extern long peer_query_cap_ms;

class PeerConnection {
  public:
    enum class Kind { kSql, kReplication };

    // Connects within timeouts.connect_ms (or the conninfo's own
    // connect_timeout, if shorter), or throws gsb::Error (SQLSTATE 08001,
    // 08006). peer_name names the peer in errors ("" when unknown: then its
    // host and port do).
    PeerConnection(const std::string &conninfo, Kind kind, const char *application_name,
                   const PeerTimeouts &timeouts, const std::string &peer_name = "");
    ~PeerConnection();
    PeerConnection(const PeerConnection &) = delete;
    PeerConnection &operator=(const PeerConnection &) = delete;

    // Runs one statement and returns its last result; throws unless the
    // status is one of PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_BOTH.
    // With params it uses the extended protocol (never on replication
    // connections, which only speak the simple one). The answer is due
    // within timeouts.query_ms.
    PgResult Exec(const std::string &sql, int nparams = 0, const char *const *params = nullptr);
    // The same with a deadline of its own (0: none); `what` says what the
    // statement is for, in the error context (default: the statement).
    PgResult ExecBy(TimestampTz deadline, const char *what, const std::string &sql, int nparams = 0,
                    const char *const *params = nullptr);

    // COPY BOTH (replication stream). Returns the length of a message
    // placed in *buf (free it with PQfreemem), 0 when none arrived within
    // timeout_ms, -1 when the stream ended. Throws on connection errors.
    // (How long the stream may stay silent is the apply loop's business.)
    int GetCopyData(char **buf, long timeout_ms);
    // Sends within timeouts.query_ms.
    void PutCopyData(const std::string &data);

    PGconn *conn() const { return conn_; }
    // libpq's last error, on one line.
    std::string ErrorMessage() const;
    // Quotes an identifier / literal for the peer (replication commands
    // cannot take parameters).
    std::string QuoteIdent(const std::string &s) const;
    std::string QuoteLiteral(const std::string &s) const;

    // now + ms, or 0 (no deadline) when ms <= 0.
    static TimestampTz DeadlineIn(long ms);

  private:
    void Connect(const std::string &conninfo, const char *application_name);
    // Waits until the socket can be read (or written, too, with
    // for_write) or the deadline (0: none) has passed, taking interrupts.
    // Returns false when the deadline has passed.
    bool Wait(bool for_write, TimestampTz deadline);
    // The wait of a stream: on a set made once for the socket, the latch and
    // postmaster death, instead of a new epoll set per wait (three system
    // calls and a close each time, which a single-row stream pays per
    // transaction).
    void WaitReadable(long timeout_ms);
    // Sends what libpq has queued (the connection is non-blocking).
    void Flush(TimestampTz deadline, const char *what);
    PgResult GetLastResult(TimestampTz deadline, const char *what);
    // Closes the connection and throws the deadline error.
    [[noreturn]] void Expired(const char *what, TimestampTz started);
    void Close();
    std::string Context(const char *what) const;

    PGconn *conn_ = nullptr;
    Kind kind_;
    PeerTimeouts timeouts_;
    std::string peer_name_;
    // "peer \"sjc\" (host:port)" or "the peer at host:port": for messages
    // (never the conninfo, which may hold a password).
    std::string label_;
    WaitEventSet *stream_wait_ = nullptr; // in TopMemoryContext
    int stream_wait_socket_ = -1;
};

} // namespace gsb
