// peer_connection.cpp: gsb's connection helper (see peer_connection.hpp).
#include "pg.hpp"

extern "C" {
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

#include <vector>

#include "interop.hpp"
#include "peer_connection.hpp"

namespace gsb {
namespace {

// Options for every session on the peer: values travel in one format, and
// no function the peer's users planted in a schema is found by name.
const char *kSessionOptions = "-c datestyle=ISO -c intervalstyle=postgres "
                              "-c extra_float_digits=3 -c timezone=UTC -c search_path=";

// libpq's messages span lines; status lines and logs want one.
std::string OneLine(const char *msg) {
    std::string out;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p; p++) {
        bool ws = *p == '\n' || *p == '\t' || *p == ' ' || *p == '\r';
        if (ws) {
            space = !out.empty();
            continue;
        }
        if (space)
            out.push_back(' ');
        space = false;
        out.push_back(*p);
    }
    return out;
}

} // namespace

PeerConnection::PeerConnection(const std::string &conninfo, Kind kind, const char *application_name,
                               int timeout_ms)
    : kind_(kind) {
    // The peer's conninfo is expanded first; the keywords after it win.
    std::vector<const char *> keys = {"dbname", "application_name", "options"};
    std::vector<const char *> vals = {conninfo.c_str(), application_name, kSessionOptions};
    if (kind == Kind::kReplication) {
        keys.push_back("replication");
        vals.push_back("database");
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);

    // Check the conninfo's syntax first, for a clear error without a connection.
    char *parse_error = nullptr;
    PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &parse_error);
    if (opts == nullptr) {
        std::string why = OneLine(parse_error);
        if (parse_error)
            PQfreemem(parse_error);
        throw Error(ERRCODE_SYNTAX_ERROR, "invalid peer connection string: " + why, "",
                    "Give a libpq connection string such as 'host=... port=... dbname=...'.");
    }
    PQconninfoFree(opts);

    conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
    if (conn_ == nullptr)
        throw Error(ERRCODE_OUT_OF_MEMORY, "could not allocate a peer connection");
    if (PQstatus(conn_) == CONNECTION_BAD)
        throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                    "could not connect to peer: " + ErrorMessage());

    TimestampTz deadline =
        TimestampTzPlusMilliseconds(PgCall([] { return GetCurrentTimestamp(); }), timeout_ms);
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED)
            throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                        "could not connect to peer: " + ErrorMessage(), "",
                        "Check that the peer is running and that the connection string is right.");
        long left =
            TimestampDifferenceMilliseconds(PgCall([] { return GetCurrentTimestamp(); }), deadline);
        if (left <= 0)
            throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                        "could not connect to peer: timed out after " + std::to_string(timeout_ms) +
                            " ms",
                        "", "Check that the peer is reachable from this site.");
        Wait(status == PGRES_POLLING_WRITING, left);
        status = PQconnectPoll(conn_);
    }
    // Keep the peer's messages (NOTICE etc.) out of our log unless asked.
    PQsetNoticeProcessor(
        conn_, [](void *, const char *) {}, nullptr);
}

PeerConnection::~PeerConnection() {
    if (stream_wait_ != nullptr) {
        // Closes the epoll descriptor; nothing in it can fail, but a
        // destructor must not throw whatever happens.
        try {
            PgCall([&] { FreeWaitEventSet(stream_wait_); });
        } catch (...) {
        }
    }
    if (conn_ != nullptr)
        PQfinish(conn_);
}

std::string PeerConnection::ErrorMessage() const {
    return OneLine(PQerrorMessage(conn_));
}

std::string PeerConnection::QuoteIdent(const std::string &s) const {
    char *q = PQescapeIdentifier(conn_, s.c_str(), s.size());
    if (q == nullptr)
        throw Error(ERRCODE_INVALID_NAME, "cannot quote identifier: " + ErrorMessage());
    std::string out(q);
    PQfreemem(q);
    return out;
}

std::string PeerConnection::QuoteLiteral(const std::string &s) const {
    char *q = PQescapeLiteral(conn_, s.c_str(), s.size());
    if (q == nullptr)
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "cannot quote literal: " + ErrorMessage());
    std::string out(q);
    PQfreemem(q);
    return out;
}

void PeerConnection::Wait(bool for_write, long timeout_ms) {
    int sock = PQsocket(conn_);
    if (sock < 0)
        throw Error(ERRCODE_CONNECTION_FAILURE, "peer connection has no socket: " + ErrorMessage());
    int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH |
                 (for_write ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE);
    PgCall([&] {
        int rc = WaitLatchOrSocket(MyLatch, events, sock, timeout_ms, PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

void PeerConnection::WaitReadable(long timeout_ms) {
    int sock = PQsocket(conn_);
    if (sock < 0)
        throw Error(ERRCODE_CONNECTION_FAILURE, "peer connection has no socket: " + ErrorMessage());
    PgCall([&] {
        // Made again for another socket, or if an error left it unfinished
        // (stream_wait_socket_ is set last).
        if (stream_wait_ != nullptr && stream_wait_socket_ != sock) {
            FreeWaitEventSet(stream_wait_);
            stream_wait_ = nullptr;
        }
        if (stream_wait_ == nullptr) {
            stream_wait_socket_ = -1;
            stream_wait_ = CreateWaitEventSet(TopMemoryContext, 3);
            AddWaitEventToSet(stream_wait_, WL_SOCKET_READABLE, sock, nullptr, nullptr);
            AddWaitEventToSet(stream_wait_, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
            AddWaitEventToSet(stream_wait_, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr,
                              nullptr);
            stream_wait_socket_ = sock;
        }
        WaitEvent event;
        int n = WaitEventSetWait(stream_wait_, timeout_ms, &event, 1, PG_WAIT_EXTENSION);
        if (n > 0 && (event.events & WL_LATCH_SET))
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
}

PgResult PeerConnection::GetLastResult() {
    PgResult last;
    for (;;) {
        while (PQisBusy(conn_)) {
            Wait(false, 1000);
            if (PQconsumeInput(conn_) == 0)
                throw Error(ERRCODE_CONNECTION_FAILURE,
                            "lost the connection to the peer: " + ErrorMessage());
        }
        PGresult *r = PQgetResult(conn_);
        if (r == nullptr)
            return last;
        ExecStatusType st = PQresultStatus(r);
        last = PgResult(r);
        if (st == PGRES_COPY_BOTH || st == PGRES_COPY_OUT || st == PGRES_COPY_IN)
            return last;
    }
}

PgResult PeerConnection::Exec(const std::string &sql, int nparams, const char *const *params) {
    int sent = nparams > 0 ? PQsendQueryParams(conn_, sql.c_str(), nparams, nullptr, params,
                                               nullptr, nullptr, 0)
                           : PQsendQuery(conn_, sql.c_str());
    if (sent == 0)
        throw Error(ERRCODE_CONNECTION_FAILURE,
                    "could not send a query to the peer: " + ErrorMessage());
    PgResult r = GetLastResult();
    if (r.get() == nullptr)
        throw Error(ERRCODE_CONNECTION_FAILURE, "the peer returned no result: " + ErrorMessage());
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_BOTH)
        return r;
    const char *state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    int code = state && strlen(state) == 5
                   ? MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])
                   : ERRCODE_CONNECTION_FAILURE;
    const char *hint = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_HINT);
    const char *detail = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_DETAIL);
    throw Error(code, "peer: " + OneLine(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY)),
                detail ? detail : "", hint ? hint : "");
}

int PeerConnection::GetCopyData(char **buf, long timeout_ms) {
    // First read what the socket already holds, and wait only if that was
    // nothing: under load the next message is usually there, and every wait
    // makes (and closes) an epoll set of its own.
    for (int attempt = 0; attempt < 3; attempt++) {
        int len = PQgetCopyData(conn_, buf, 1);
        if (len > 0)
            return len;
        if (len == -1)
            return -1;
        if (len == -2)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "lost the replication connection to the peer: " + ErrorMessage());
        if (attempt == 2)
            break;
        if (attempt == 1)
            WaitReadable(timeout_ms);
        if (PQconsumeInput(conn_) == 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "lost the replication connection to the peer: " + ErrorMessage());
    }
    return 0;
}

void PeerConnection::PutCopyData(const std::string &data) {
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) <= 0 || PQflush(conn_) < 0)
        throw Error(ERRCODE_CONNECTION_FAILURE, "could not send to the peer: " + ErrorMessage());
}

} // namespace gsb
