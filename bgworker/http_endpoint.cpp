// http_endpoint.cpp: a small HTTP endpoint for load balancers, in a
// background worker of its own (started by the supervisor when
// gsb.http_port is set), so that neither it nor the site monitor can hold
// up the other.
//
//   GET /detectbackup  200 "Primary" or "Backup", as gsb.detect_backup()
//   GET /active        200 when this site is the active site, else 503
//   GET /status        200 JSON: role, state and the next maintenance
//                      window; with the bearer token of
//                      gsb.http_status_token, also the peers' positions
//                      and last errors (which may hold row values)
//   GET /<company>/detectbackup.php   as /detectbackup (the seed's address)
//
// It is deliberately minimal: HTTP/1.0 semantics (one request per
// connection), GET and HEAD only, requests of at most 8 KiB, and every
// client gone after 2 s whatever it does. Hostile clients cannot starve the
// health checks: when all kMaxClients places are taken, a new connection
// takes the place of the oldest client that has not sent its request yet,
// and each query runs under a statement and lock timeout. It is
// non-blocking throughout: one WaitEventSet over the latch, the listening
// sockets and the clients.
#include "pg.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "extension_version.hpp"
#include "gsb.hpp"
#include "interop.hpp"
#include "worker_util.hpp"

extern "C" {
PGDLLEXPORT void gsb_http_main(Datum arg);
}

namespace gsb {
namespace {

constexpr size_t kMaxRequest = 8192;
constexpr size_t kMaxClients = 256;
constexpr long kClientTimeoutMs = 2000;
// Every query the endpoint runs is bounded: a locked catalog or a slow plan
// must not hold up the health checks of everyone else.
constexpr int kQueryTimeoutMs = 1000;

struct Client {
    int fd = -1;
    TimestampTz deadline = 0;
    std::string in;
    std::string out;
    size_t sent = 0;
    bool responding = false;
};

struct Answer {
    int status;
    std::string content_type;
    std::string body;
};

void SetNonBlocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// The seed's address form of the detect-backup check: /<company>/detectbackup.php,
// one path segment of letters, digits, '-', '_' or '.' before it.
bool IsCompanyDetectBackup(const std::string &p) {
    static const std::string kTail = "/detectbackup.php";
    if (p.size() <= kTail.size() + 1 ||
        p.compare(p.size() - kTail.size(), kTail.size(), kTail) != 0)
        return false;
    std::string company = p.substr(1, p.size() - kTail.size() - 1);
    return std::all_of(company.begin(), company.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '_' || ch == '.';
    });
}

// Runs one read-only statement of the endpoint under kQueryTimeoutMs; no
// value when it failed or timed out (the failure is logged, without the
// statement's data).
std::optional<std::string> QueryValue(const char *sql) {
    std::optional<std::string> value;
    try {
        PgCall([] { enable_timeout_after(STATEMENT_TIMEOUT, kQueryTimeoutMs); });
        auto rows = RunStatement(sql);
        if (rows.size() == 1)
            value = rows[0][0];
    } catch (const std::exception &e) {
        std::string msg = e.what();
        PgCall([&] {
            AbortOutOfAnyTransaction();
            ereport(LOG, (errmsg("gsb http: %s", msg.c_str())));
        });
    }
    // A timeout that fired after the statement ended must not cancel the
    // next wait of the loop.
    PgCall([] {
        disable_timeout(STATEMENT_TIMEOUT, false);
        QueryCancelPending = false;
    });
    return value;
}

// /status's "next_maintenance": the window in progress or the next one
// ({"starts_at", "ends_at"}), null when there is none; public, like the
// role: users are to be told of it in advance.
// The function is new in 0.2: a site whose catalog is still 0.1 (one gsb.so
// serves both during a rolling upgrade) answers null instead of failing.
#define kNextMaintenance                                                                           \
    "'next_maintenance', (SELECT pg_catalog.json_build_object('starts_at', w.starts_at, "          \
    "'ends_at', w.ends_at) FROM gsb.next_maintenance() w), "
#define kNoNextMaintenance "'next_maintenance', NULL::json, "

// Whether this site's catalog has the objects of version `at_least`; false
// when it cannot tell (the endpoint then uses what every version has).
bool CatalogAtLeast(const char *at_least) {
    std::optional<std::string> v =
        QueryValue("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'gsb'");
    if (!v)
        return false;
    std::optional<int> cmp = version::Compare(*v, at_least);
    return cmp && *cmp >= 0;
}

// Answers one path from the site's state, in one short transaction. Only
// /status reads the replication status, and only a client that shows
// gsb.http_status_token sees more than roles and states: last_error may
// hold row values. The health checks read the active site, which is one row.
Answer Route(const std::string &method, const std::string &path, bool authorized) {
    if (method != "GET" && method != "HEAD")
        return {405, "text/plain", "only GET\n"};
    std::string p = path.substr(0, path.find('?'));
    bool detect = p == "/detectbackup" || IsCompanyDetectBackup(p);
    const char *sql = nullptr;
    if (detect)
        sql = "SELECT gsb.detect_backup()";
    else if (p == "/active")
        sql = "SELECT gsb.is_active()::text";
    else if (p == "/status") {
#define STATUS_SQL(next_maintenance, peer_columns)                                                 \
    "SELECT pg_catalog.json_build_object('site', gsb.site_name(), 'role', "                        \
    "gsb.site_role(), 'active_site', gsb.active_site(), 'is_active', gsb.is_active(), "            \
    "'detect_backup', gsb.detect_backup(), " next_maintenance                                      \
    "'peers', coalesce((SELECT pg_catalog.json_agg(s) FROM (SELECT " peer_columns                  \
    " FROM gsb.status ORDER BY peer) s), '[]'))::text"
#define FULL_PEER                                                                                  \
    "peer, state, received_lsn, applied_lsn, lag_bytes, last_message_at, conflicts, last_error, "  \
    "last_config_sync"
        bool v02 = CatalogAtLeast("0.2");
        if (authorized)
            sql = v02 ? STATUS_SQL(kNextMaintenance, FULL_PEER)
                      : STATUS_SQL(kNoNextMaintenance, FULL_PEER);
        else
            sql = v02 ? STATUS_SQL(kNextMaintenance, "peer, state")
                      : STATUS_SQL(kNoNextMaintenance, "peer, state");
#undef FULL_PEER
#undef STATUS_SQL
    } else
        return {404, "text/plain", "not found\n"};
    std::optional<std::string> value = QueryValue(sql);
    if (!value)
        return {503, "text/plain", "gsb is not ready on this site\n"};
    if (detect)
        return {200, "text/plain", *value + "\n"};
    if (p == "/active")
        return *value == "true" ? Answer{200, "text/plain", "active\n"}
                                : Answer{503, "text/plain", "not active\n"};
    return {200, "application/json", *value + "\n"};
}

const char *Reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    }
    return "Error";
}

std::string Render(const Answer &a, bool head) {
    std::string out = "HTTP/1.0 " + std::to_string(a.status) + " " + Reason(a.status) +
                      "\r\nContent-Type: " + a.content_type +
                      "\r\nContent-Length: " + std::to_string(a.body.size()) +
                      "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head)
        out += a.body;
    return out;
}

// Whether the request head carries "Authorization: Bearer <gsb.http_status_token>"
// (header name in any case). The comparison takes the same time wherever the
// first difference is.
bool Authorized(const std::string &head) {
    const char *token = guc_http_status_token;
    if (token == nullptr || token[0] == '\0')
        return false;
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
        size_t start = pos + 2, end = head.find("\r\n", start);
        if (end == std::string::npos || end == start)
            break;
        std::string line = head.substr(start, end - start);
        pos = end;
        static const std::string kName = "authorization:";
        if (line.size() < kName.size())
            continue;
        std::string name = line.substr(0, kName.size());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char ch) { return std::tolower(ch); });
        if (name != kName)
            continue;
        std::string value = line.substr(kName.size());
        size_t b = value.find_first_not_of(' ');
        if (b == std::string::npos || value.compare(b, 7, "Bearer ") != 0)
            return false;
        std::string given = value.substr(b + 7);
        std::string want = token;
        unsigned char diff = given.size() == want.size() ? 0 : 1;
        for (size_t i = 0; i < given.size(); i++)
            diff |= static_cast<unsigned char>(given[i] ^ want[i % want.size()]);
        return diff == 0;
    }
    return false;
}

// Parses a complete request head; returns false when it is malformed.
bool ParseRequestLine(const std::string &in, std::string *method, std::string *path) {
    size_t eol = in.find("\r\n");
    if (eol == std::string::npos)
        return false;
    std::string line = in.substr(0, eol);
    size_t a = line.find(' ');
    size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
    if (a == std::string::npos || b == std::string::npos || a == 0 || b == a + 1)
        return false;
    std::string version = line.substr(b + 1);
    if (version != "HTTP/1.0" && version != "HTTP/1.1")
        return false;
    *method = line.substr(0, a);
    *path = line.substr(a + 1, b - a - 1);
    return !path->empty() && (*path)[0] == '/';
}

class Server {
  public:
    ~Server() {
        CloseListeners();
        for (Client &c : clients_)
            close(c.fd);
    }
    void Configure(int port, const std::string &addresses);
    void RunOnce(long timeout_ms);

  private:
    void CloseListeners() {
        for (int fd : listeners_)
            close(fd);
        listeners_.clear();
    }
    void Accept(int lfd);
    void Read(Client &c);
    void Write(Client &c);
    void Respond(Client &c, const Answer &a, bool head) {
        c.out = Render(a, head);
        c.sent = 0;
        c.responding = true;
        Write(c);
    }

    int port_ = 0;
    std::string addresses_;
    std::vector<int> listeners_;
    std::vector<Client> clients_;
};

void Server::Configure(int port, const std::string &addresses) {
    if (port == port_ && addresses == addresses_ && (port == 0 || !listeners_.empty()))
        return;
    CloseListeners();
    port_ = port;
    addresses_ = addresses;
    if (port == 0)
        return;
    size_t start = 0;
    while (start <= addresses.size()) {
        size_t comma = addresses.find(',', start);
        std::string host =
            addresses.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? addresses.size() + 1 : comma + 1;
        while (!host.empty() && host.front() == ' ')
            host.erase(host.begin());
        while (!host.empty() && host.back() == ' ')
            host.pop_back();
        if (host.empty())
            continue;
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        struct addrinfo *res = nullptr;
        std::string service = std::to_string(port);
        int rc = getaddrinfo(host == "*" ? nullptr : host.c_str(), service.c_str(), &hints, &res);
        if (rc != 0) {
            std::string why = gai_strerror(rc);
            PgCall([&] {
                ereport(WARNING,
                        (errmsg("gsb http: cannot resolve \"%s\": %s", host.c_str(), why.c_str())));
            });
            continue;
        }
        for (struct addrinfo *ai = res; ai != nullptr; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd < 0)
                continue;
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (ai->ai_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
                std::string why = strerror(errno);
                close(fd);
                PgCall([&] {
                    ereport(WARNING, (errmsg("gsb http: cannot listen on \"%s\" port %d: %s",
                                             host.c_str(), port, why.c_str())));
                });
                continue;
            }
            SetNonBlocking(fd);
            listeners_.push_back(fd);
        }
        freeaddrinfo(res);
    }
    size_t n = listeners_.size();
    PgCall(
        [&] { ereport(LOG, (errmsg("gsb http: listening on port %d (%zu sockets)", port, n))); });
}

void Server::Accept(int lfd) {
    for (;;) {
        int fd = accept(lfd, nullptr, nullptr);
        if (fd < 0)
            return; // EAGAIN or a client that went away
        SetNonBlocking(fd);
        if (clients_.size() >= kMaxClients) {
            // Full: the oldest client still silent about its request gives
            // way, so that idle connections cannot starve the health checks.
            auto oldest = clients_.end();
            for (auto it = clients_.begin(); it != clients_.end(); ++it)
                if (!it->responding &&
                    (oldest == clients_.end() || it->deadline < oldest->deadline))
                    oldest = it;
            if (oldest != clients_.end()) {
                close(oldest->fd);
                clients_.erase(oldest);
            }
        }
        if (clients_.size() >= kMaxClients) {
            // Every place is answering already: answer at once and hang up.
            static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t ignored = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            (void)ignored;
            close(fd);
            continue;
        }
        Client c;
        c.fd = fd;
        c.deadline = TimestampTzPlusMilliseconds(PgCall([] { return GetCurrentTimestamp(); }),
                                                 kClientTimeoutMs);
        clients_.push_back(std::move(c));
    }
}

void Server::Read(Client &c) {
    char buf[2048];
    for (;;) {
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
            c.in.append(buf, n);
            if (c.in.size() > kMaxRequest) {
                Respond(c, {431, "text/plain", "request too large\n"}, false);
                return;
            }
            continue;
        }
        if (n == 0) { // the client closed before a whole request
            close(c.fd);
            c.fd = -1;
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        close(c.fd);
        c.fd = -1;
        return;
    }
    if (c.in.find("\r\n\r\n") == std::string::npos)
        return; // wait for the rest
    std::string method, path;
    if (!ParseRequestLine(c.in, &method, &path)) {
        Respond(c, {400, "text/plain", "bad request\n"}, false);
        return;
    }
    Respond(c, Route(method, path, Authorized(c.in)), method == "HEAD");
}

void Server::Write(Client &c) {
    while (c.sent < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) {
            c.sent += n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break;
    }
    shutdown(c.fd, SHUT_WR);
    close(c.fd);
    c.fd = -1;
}

void Server::RunOnce(long timeout_ms) {
    TimestampTz now = PgCall([] { return GetCurrentTimestamp(); });
    for (Client &c : clients_) {
        if (c.fd >= 0 && now >= c.deadline) {
            if (!c.responding)
                Respond(c, {408, "text/plain", "request timeout\n"}, false);
            if (c.fd >= 0) {
                close(c.fd);
                c.fd = -1;
            }
        }
    }
    clients_.erase(
        std::remove_if(clients_.begin(), clients_.end(), [](const Client &c) { return c.fd < 0; }),
        clients_.end());

    // Wait for the latch, a listener or a client, or the earliest deadline.
    long wait = timeout_ms;
    for (const Client &c : clients_)
        wait = std::min(wait, std::max(0L, TimestampDifferenceMilliseconds(now, c.deadline)));
    int nevents = 2 + static_cast<int>(listeners_.size() + clients_.size());
    std::vector<WaitEvent> events(nevents);
    int fired = PgCall([&] {
        WaitEventSet *set = CreateWaitEventSet(CurrentMemoryContext, nevents);
        AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        for (int fd : listeners_)
            AddWaitEventToSet(set, WL_SOCKET_READABLE, fd, nullptr, nullptr);
        for (const Client &c : clients_)
            AddWaitEventToSet(set, c.responding ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE, c.fd,
                              nullptr, nullptr);
        int n = WaitEventSetWait(set, wait, events.data(), nevents, PG_WAIT_EXTENSION);
        FreeWaitEventSet(set);
        return n;
    });
    for (int i = 0; i < fired; i++) {
        const WaitEvent &ev = events[i];
        if (ev.events & WL_LATCH_SET) {
            PgCall([] {
                ResetLatch(MyLatch);
                CHECK_FOR_INTERRUPTS();
            });
            continue;
        }
        if (std::find(listeners_.begin(), listeners_.end(), ev.fd) != listeners_.end()) {
            Accept(ev.fd);
            continue;
        }
        for (Client &c : clients_) {
            if (c.fd != ev.fd)
                continue;
            if (c.responding)
                Write(c);
            else
                Read(c);
            break;
        }
    }
}

void Run() {
    Server server;
    PgCall([] {
        SetConfigOption("lock_timeout", std::to_string(kQueryTimeoutMs).c_str(), PGC_SUSET,
                        PGC_S_OVERRIDE);
    });
    for (;;) {
        ReloadConfigIfPending();
        if (InterruptPending)
            PgCall([] { CHECK_FOR_INTERRUPTS(); });
        if (guc_http_port == 0) {
            PgCall([] { ereport(LOG, (errmsg("gsb http: gsb.http_port is 0; stopping"))); });
            return;
        }
        server.Configure(guc_http_port, guc_http_listen_addresses ? guc_http_listen_addresses : "");
        server.RunOnce(1000);
    }
}

} // namespace
} // namespace gsb

void gsb_http_main(Datum arg) {
    gsb::WorkerMain("gsb http", [] { gsb::Run(); });
    proc_exit(0);
}
