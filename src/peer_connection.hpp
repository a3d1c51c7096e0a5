// peer_connection.hpp: the one place where gsb opens a connection to the
// other site, for SQL (gsb.add_peer, gsb.verify, the site monitor) or for
// replication (the apply worker).
//
// Every wait is on the process latch and the socket together, so a backend
// stays cancellable and a worker notices SIGTERM and postmaster death. Every
// session opened on the peer runs with an empty search_path and fixed output
// styles, so values travel in one format. Errors are gsb::Error with SQLSTATE
// class 08 for connection failures.
#pragma once

#include <string>
#include <utility>

#include "libpq-fe.h"

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
    bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
    // The value as text ("" for NULL).
    const char *Get(int row, int col) const { return PQgetvalue(r_, row, col); }
    int Length(int row, int col) const { return PQgetlength(r_, row, col); }

  private:
    PGresult *r_;
};

class PeerConnection {
  public:
    enum class Kind { kSql, kReplication };

    // Connects, or throws gsb::Error (SQLSTATE 08001/08006).
    PeerConnection(const std::string &conninfo, Kind kind, const char *application_name,
                   int timeout_ms = 10000);
    ~PeerConnection();
    PeerConnection(const PeerConnection &) = delete;
    PeerConnection &operator=(const PeerConnection &) = delete;

    // Runs one statement and returns its last result; throws unless the
    // status is one of PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_BOTH.
    // With params it uses the extended protocol (never on replication
    // connections, which only speak the simple one).
    PgResult Exec(const std::string &sql, int nparams = 0, const char *const *params = nullptr);

    // COPY BOTH (replication stream). Returns the length of a message
    // placed in *buf (free it with PQfreemem), 0 when none arrived within
    // timeout_ms, -1 when the stream ended. Throws on connection errors.
    int GetCopyData(char **buf, long timeout_ms);
    void PutCopyData(const std::string &data);

    PGconn *conn() const { return conn_; }
    // libpq's last error, on one line.
    std::string ErrorMessage() const;
    // Quotes an identifier / literal for the peer (replication commands
    // cannot take parameters).
    std::string QuoteIdent(const std::string &s) const;
    std::string QuoteLiteral(const std::string &s) const;

  private:
    void Wait(bool for_write, long timeout_ms);
    // The wait of a stream: on a set made once for the socket, the latch and
    // postmaster death, instead of a new epoll set per wait (three system
    // calls and a close each time, which a single-row stream pays per
    // transaction).
    void WaitReadable(long timeout_ms);
    PgResult GetLastResult();

    PGconn *conn_ = nullptr;
    Kind kind_;
    WaitEventSet *stream_wait_ = nullptr; // in TopMemoryContext
    int stream_wait_socket_ = -1;
};

} // namespace gsb
