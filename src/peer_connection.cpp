// peer_connection.cpp: gsb's connection helper (see peer_connection.hpp).
#include "pg.hpp"

extern "C" {
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <vector>

#include "gsb.hpp"
#include "interop.hpp"
#include "peer_connection.hpp"

namespace gsb {

long peer_query_cap_ms = 0;

namespace {

// Options for every session on the peer: values travel in one format, and
// no function the peer's users planted in a schema is found by name.
const char *kSessionOptions = "-c datestyle=ISO -c intervalstyle=postgres "
                              "-c extra_float_digits=3 -c timezone=UTC -c search_path=";

// A wait with no deadline still wakes up this often, to look again.
const long kIdleWaitMs = 1000;

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

TimestampTz NowTz() {
    return PgCall([] { return GetCurrentTimestamp(); });
}

// Milliseconds left until deadline (0: none, reported as kIdleWaitMs).
long LeftMs(TimestampTz deadline) {
    if (deadline == 0)
        return kIdleWaitMs;
    return TimestampDifferenceMilliseconds(NowTz(), deadline);
}

// The keepalive keywords that the peer's conninfo does not set itself,
// derived from how soon a silent link must be given up: the first probe
// after half of it, then two more probes within the other half, and no
// unacknowledged data kept longer than all of it.
void AddLinkKeywords(long link_ms, const PQconninfoOption *given,
                     std::vector<std::pair<std::string, std::string>> *out) {
    if (link_ms <= 0)
        return;
    long idle_s = std::max(1L, link_ms / 2000);
    long interval_s = std::max(1L, link_ms / 4000);
    const std::pair<const char *, std::string> wanted[] = {
        {"keepalives", "1"},
        {"keepalives_idle", std::to_string(idle_s)},
        {"keepalives_interval", std::to_string(interval_s)},
        {"keepalives_count", "2"},
        {"tcp_user_timeout", std::to_string(link_ms)},
    };
    for (const auto &[key, value] : wanted) {
        bool set = false;
        for (const PQconninfoOption *o = given; o->keyword != nullptr; o++)
            if (strcmp(o->keyword, key) == 0 && o->val != nullptr && o->val[0] != '\0')
                set = true;
        if (!set)
            out->emplace_back(key, value);
    }
}

// The conninfo's own connect_timeout in ms, or 0.
long GivenConnectTimeoutMs(const PQconninfoOption *given) {
    for (const PQconninfoOption *o = given; o->keyword != nullptr; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != nullptr && o->val[0] != '\0')
            return std::max(0L, atol(o->val)) * 1000;
    return 0;
}

} // namespace

PeerTimeouts ApplyTimeouts() {
    PeerTimeouts t;
    // Connecting takes 10 s at most, as it always did: a worker that
    // cannot connect retries with backoff anyway.
    t.connect_ms = guc_apply_timeout_ms > 0 ? std::min(guc_apply_timeout_ms, 10000) : 10000;
    t.query_ms = guc_apply_timeout_ms;
    t.link_ms = guc_apply_timeout_ms;
    t.setting = "gsb.apply_timeout";
    return t;
}

TimestampTz PeerConnection::DeadlineIn(long ms) {
    if (ms <= 0)
        return 0;
    return TimestampTzPlusMilliseconds(NowTz(), ms);
}

PeerConnection::PeerConnection(const std::string &conninfo, Kind kind, const char *application_name,
                               const PeerTimeouts &timeouts, const std::string &peer_name)
    : kind_(kind), timeouts_(timeouts), peer_name_(peer_name) {
    label_ = peer_name_.empty() ? "the peer" : "peer \"" + peer_name_ + "\"";
    // A constructor that throws runs no destructor: close here what an
    // attempt left open (its socket, on a peer that never answered).
    try {
        Connect(conninfo, application_name);
    } catch (Error &e) {
        Close();
        if (e.sqlstate() != ERRCODE_SYNTAX_ERROR && e.context().find(label_) == std::string::npos)
            e.AddContext(Context("connecting"));
        throw;
    } catch (...) {
        Close();
        throw;
    }
}

void PeerConnection::Connect(const std::string &conninfo, const char *application_name) {
    // Check the conninfo's syntax first, for a clear error without a connection.
    char *parse_error = nullptr;
    PQconninfoOption *given = PQconninfoParse(conninfo.c_str(), &parse_error);
    if (given == nullptr) {
        std::string why = OneLine(parse_error);
        if (parse_error)
            PQfreemem(parse_error);
        throw Error(ERRCODE_SYNTAX_ERROR, "invalid peer connection string: " + why, "",
                    "Give a libpq connection string such as 'host=... port=... dbname=...'.");
    }
    std::string options = kSessionOptions;
    // The peer gives up a query as soon as we would: nobody waits for it
    // after that (a walsender takes no statement_timeout for its commands).
    if (kind_ == Kind::kSql && timeouts_.query_ms > 0)
        options += " -c statement_timeout=" + std::to_string(timeouts_.query_ms);
    std::vector<std::pair<std::string, std::string>> extra;
    AddLinkKeywords(timeouts_.link_ms, given, &extra);
    long connect_ms = timeouts_.connect_ms;
    long given_ms = GivenConnectTimeoutMs(given);
    if (given_ms > 0 && (connect_ms <= 0 || given_ms < connect_ms))
        connect_ms = given_ms;
    PQconninfoFree(given);

    // The peer's conninfo is expanded first; the keywords after it win.
    std::vector<const char *> keys = {"dbname", "application_name", "options"};
    std::vector<const char *> vals = {conninfo.c_str(), application_name, options.c_str()};
    for (const auto &[k, v] : extra) {
        keys.push_back(k.c_str());
        vals.push_back(v.c_str());
    }
    if (kind_ == Kind::kReplication) {
        keys.push_back("replication");
        vals.push_back("database");
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);

    TimestampTz started = NowTz();
    TimestampTz deadline = connect_ms > 0 ? TimestampTzPlusMilliseconds(started, connect_ms) : 0;
    conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
    if (conn_ == nullptr)
        throw Error(ERRCODE_OUT_OF_MEMORY, "could not allocate a peer connection");
    if (PQstatus(conn_) == CONNECTION_BAD)
        throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                    "could not connect to peer: " + ErrorMessage());
    // Where it connects, for messages: never the whole conninfo, which may
    // hold a password.
    const char *host = PQhost(conn_);
    const char *port = PQport(conn_);
    std::string where = std::string(host && *host ? host : "localhost") + ":" +
                        std::string(port && *port ? port : "5432");
    label_ =
        peer_name_.empty() ? "the peer at " + where : "peer \"" + peer_name_ + "\" (" + where + ")";
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED)
            throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                        "could not connect to peer: " + ErrorMessage(), "",
                        "Check that the peer is running and that the connection string is right.");
        if (!Wait(status == PGRES_POLLING_WRITING, deadline)) {
            std::string hint = "Check that the peer is reachable from this site.";
            if (timeouts_.setting != nullptr && connect_ms == timeouts_.connect_ms)
                hint += std::string(" The wait is bounded by ") + timeouts_.setting + ".";
            throw Error(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                        "could not connect to peer: timed out after " + std::to_string(connect_ms) +
                            " ms",
                        "", hint);
        }
        status = PQconnectPoll(conn_);
    }
    // Sends must not block either: a peer that stops reading fills the
    // socket's buffer.
    if (PQsetnonblocking(conn_, 1) != 0)
        throw Error(ERRCODE_CONNECTION_FAILURE,
                    "could not make the peer connection non-blocking: " + ErrorMessage());
    // Keep the peer's messages (NOTICE etc.) out of our log unless asked.
    PQsetNoticeProcessor(
        conn_, [](void *, const char *) {}, nullptr);
}

PeerConnection::~PeerConnection() {
    Close();
}

void PeerConnection::Close() {
    if (stream_wait_ != nullptr) {
        // Closes the epoll descriptor; nothing in it can fail, but a
        // destructor must not throw whatever happens.
        try {
            WaitEventSet *set = stream_wait_;
            PgCall([&] { FreeWaitEventSet(set); });
        } catch (...) {
        }
        stream_wait_ = nullptr;
        stream_wait_socket_ = -1;
    }
    if (conn_ != nullptr)
        PQfinish(conn_);
    conn_ = nullptr;
}

std::string PeerConnection::ErrorMessage() const {
    if (conn_ == nullptr)
        return "the connection was closed";
    return OneLine(PQerrorMessage(conn_));
}

std::string PeerConnection::Context(const char *what) const {
    return "gsb: " + label_ + ": " + what;
}

std::string PeerConnection::QuoteIdent(const std::string &s) const {
    char *q = conn_ ? PQescapeIdentifier(conn_, s.c_str(), s.size()) : nullptr;
    if (q == nullptr)
        throw Error(ERRCODE_INVALID_NAME, "cannot quote identifier: " + ErrorMessage());
    std::string out(q);
    PQfreemem(q);
    return out;
}

std::string PeerConnection::QuoteLiteral(const std::string &s) const {
    char *q = conn_ ? PQescapeLiteral(conn_, s.c_str(), s.size()) : nullptr;
    if (q == nullptr)
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "cannot quote literal: " + ErrorMessage());
    std::string out(q);
    PQfreemem(q);
    return out;
}

bool PeerConnection::Wait(bool for_write, TimestampTz deadline) {
    long left = LeftMs(deadline);
    if (left <= 0)
        return false;
    int sock = PQsocket(conn_);
    if (sock < 0)
        throw Error(ERRCODE_CONNECTION_FAILURE, "peer connection has no socket: " + ErrorMessage());
    int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE |
                 (for_write ? WL_SOCKET_WRITEABLE : 0);
    PgCall([&] {
        int rc = WaitLatchOrSocket(MyLatch, events, sock, left, PG_WAIT_EXTENSION);
        if (rc & WL_LATCH_SET)
            ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    });
    return true;
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

void PeerConnection::Expired(const char *what, TimestampTz started) {
    long waited = TimestampDifferenceMilliseconds(started, NowTz());
    Close();
    std::string hint = "The connection was closed.";
    if (timeouts_.setting != nullptr)
        hint += std::string(" The wait is bounded by ") + timeouts_.setting + ".";
    Error e(ERRCODE_CONNECTION_FAILURE,
            label_ + " did not answer within " + std::to_string(waited) + " ms", "", hint);
    e.AddContext(Context(what));
    throw e;
}

void PeerConnection::Flush(TimestampTz deadline, const char *what) {
    TimestampTz started = NowTz();
    for (;;) {
        int rc = PQflush(conn_);
        if (rc == 0)
            return;
        if (rc < 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "could not send to " + label_ + ": " + ErrorMessage());
        // The peer does not take what we send: wait until it does, reading
        // what it sends meanwhile (it may be waiting for us to read).
        if (!Wait(true, deadline))
            Expired(what, started);
        if (PQconsumeInput(conn_) == 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "lost the connection to " + label_ + ": " + ErrorMessage());
    }
}

PgResult PeerConnection::GetLastResult(TimestampTz deadline, const char *what) {
    TimestampTz started = NowTz();
    PgResult last;
    for (;;) {
        while (PQisBusy(conn_)) {
            if (!Wait(false, deadline))
                Expired(what, started);
            if (PQconsumeInput(conn_) == 0)
                throw Error(ERRCODE_CONNECTION_FAILURE,
                            "lost the connection to " + label_ + ": " + ErrorMessage());
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
    return ExecBy(DeadlineIn(timeouts_.query_ms), nullptr, sql, nparams, params);
}

PgResult PeerConnection::ExecBy(TimestampTz deadline, const char *what, const std::string &sql,
                                int nparams, const char *const *params) {
    std::string doing;
    if (what != nullptr) {
        doing = what;
    } else {
        // The statement, shortened: enough to recognise it.
        std::string text = OneLine(sql.c_str());
        if (text.size() > 60)
            text = text.substr(0, 57) + "...";
        doing = "running \"" + text + "\"";
    }
    try {
        if (conn_ == nullptr)
            throw Error(ERRCODE_CONNECTION_DOES_NOT_EXIST, "the connection to the peer is closed");
        int sent = nparams > 0 ? PQsendQueryParams(conn_, sql.c_str(), nparams, nullptr, params,
                                                   nullptr, nullptr, 0)
                               : PQsendQuery(conn_, sql.c_str());
        if (sent == 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "could not send a query to " + label_ + ": " + ErrorMessage());
        Flush(deadline, doing.c_str());
        PgResult r = GetLastResult(deadline, doing.c_str());
        if (r.get() == nullptr)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "the peer returned no result: " + ErrorMessage());
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
    } catch (Error &e) {
        // The deadline's own error names the peer already.
        if (e.context().find(label_) == std::string::npos)
            e.AddContext(Context(doing.c_str()));
        throw;
    }
}

int PeerConnection::GetCopyData(char **buf, long timeout_ms) {
    if (conn_ == nullptr)
        throw Error(ERRCODE_CONNECTION_DOES_NOT_EXIST, "the connection to the peer is closed");
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
                        "lost the replication connection to " + label_ + ": " + ErrorMessage());
        if (attempt == 2)
            break;
        if (attempt == 1)
            WaitReadable(timeout_ms);
        if (PQconsumeInput(conn_) == 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "lost the replication connection to " + label_ + ": " + ErrorMessage());
    }
    return 0;
}

void PeerConnection::PutCopyData(const std::string &data) {
    if (conn_ == nullptr)
        throw Error(ERRCODE_CONNECTION_DOES_NOT_EXIST, "the connection to the peer is closed");
    TimestampTz deadline = DeadlineIn(timeouts_.query_ms);
    TimestampTz started = NowTz();
    for (;;) {
        int rc = PQputCopyData(conn_, data.data(), static_cast<int>(data.size()));
        if (rc > 0)
            break;
        if (rc < 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "could not send to " + label_ + ": " + ErrorMessage());
        // 0: libpq's buffer is full (non-blocking): wait until it drains.
        if (!Wait(true, deadline))
            Expired("sending standby status", started);
        if (PQconsumeInput(conn_) == 0)
            throw Error(ERRCODE_CONNECTION_FAILURE,
                        "lost the connection to " + label_ + ": " + ErrorMessage());
    }
    Flush(deadline, "sending standby status");
}

} // namespace gsb
