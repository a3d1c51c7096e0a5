// supervisor.cpp: the gsb supervisor, a background worker that the
// postmaster starts when gsb is in shared_preload_libraries.
//
// It serves the database named by gsb.database: it keeps the site monitor
// running while the extension is installed, reads gsb.peers and keeps
// exactly one apply worker running per peer, starting missing ones (with
// backoff after a worker dies), and stopping those whose peer was dropped or
// whose extension is gone. gsb.add_peer and gsb.drop_peer wake it through
// its latch; otherwise it looks once a second.
//
// Exactly one of each: a supervisor that died (terminated, an error, a
// crash of its own) is started again by the postmaster while the workers it
// started run on, and it knows nothing of them. So a supervisor treats every
// gsb worker that it did not start itself as a stranger: it stops them all
// and waits for them to be gone before it starts any worker, and keeps
// stopping strangers while it runs. Two site monitors, or two apply workers
// fighting over one replication origin, never last longer than that.
//
// Not for: replication itself (apply_worker.cpp).
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
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"
}

#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gsb.hpp"
#include "interop.hpp"
#include "shared_state.hpp"
#include "worker_util.hpp"

extern "C" {
PGDLLEXPORT void gsb_supervisor_main(Datum arg);
}

namespace gsb {
namespace {

constexpr long kPollMs = 1000;
constexpr long kMaxRestartDelayMs = 30000;
// How long a new supervisor waits for an earlier one's workers to go.
constexpr long kStrangerWaitMs = 10000;

// The bgw_type of every worker the supervisor starts (see Start).
constexpr const char *kWorkerTypes[] = {"gsb site monitor", "gsb http endpoint",
                                        "gsb apply worker"};

// A worker the supervisor keeps running: the site monitor, the HTTP
// endpoint, or an apply worker for one peer.
enum class Kind { kMonitor, kHttp, kApply };

struct Worker {
    Kind kind = Kind::kApply;
    std::string peer;
    BackgroundWorkerHandle *handle = nullptr;
    TimestampTz next_start = 0;
    long delay_ms = 1000;
    bool wanted = false;
};

// Names of the peers in gsb.peers, or none when gsb is not installed.
std::vector<std::string> ReadPeers(bool *installed) {
    std::vector<std::string> peers;
    for (const SqlRow &row : RunStatement("SELECT name FROM gsb.peers WHERE enabled ORDER BY name",
                                          {}, true, installed))
        if (row[0])
            peers.push_back(*row[0]);
    return peers;
}

bool Suppressed(const Worker &w) {
    if (w.kind != Kind::kApply)
        return false;
    const std::string &peer = w.peer;
    const char *name = peer.c_str();
    return PgCall([&] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_SHARED);
        PeerSlot *slot = FindPeerSlot(s, name, false);
        bool suppressed = slot != nullptr && slot->suppress_until > GetCurrentTimestamp();
        LWLockRelease(s->lock);
        return suppressed;
    });
}

bool Running(Worker &w) {
    if (w.handle == nullptr)
        return false;
    pid_t pid;
    BgwHandleStatus st = PgCall([&] { return GetBackgroundWorkerPid(w.handle, &pid); });
    if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED) {
        PgCall([&] { pfree(w.handle); });
        w.handle = nullptr;
        return false;
    }
    return true;
}

void Start(Worker &w) {
    BackgroundWorker bgw;
    memset(&bgw, 0, sizeof bgw);
    bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
    bgw.bgw_restart_time = BGW_NEVER_RESTART; // the supervisor restarts it
    strlcpy(bgw.bgw_library_name, "gsb", BGW_MAXLEN);
    if (w.kind == Kind::kMonitor) {
        strlcpy(bgw.bgw_function_name, "gsb_monitor_main", BGW_MAXLEN);
        strlcpy(bgw.bgw_name, "gsb site monitor", BGW_MAXLEN);
        strlcpy(bgw.bgw_type, "gsb site monitor", BGW_MAXLEN);
    } else if (w.kind == Kind::kHttp) {
        strlcpy(bgw.bgw_function_name, "gsb_http_main", BGW_MAXLEN);
        strlcpy(bgw.bgw_name, "gsb http endpoint", BGW_MAXLEN);
        strlcpy(bgw.bgw_type, "gsb http endpoint", BGW_MAXLEN);
    } else {
        strlcpy(bgw.bgw_function_name, "gsb_apply_main", BGW_MAXLEN);
        snprintf(bgw.bgw_name, BGW_MAXLEN, "gsb apply worker for peer %s", w.peer.c_str());
        strlcpy(bgw.bgw_type, "gsb apply worker", BGW_MAXLEN);
        strlcpy(bgw.bgw_extra, w.peer.c_str(), BGW_EXTRALEN);
    }
    bgw.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle *handle = nullptr;
    bool ok = PgCall([&] {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        bool registered = RegisterDynamicBackgroundWorker(&bgw, &handle);
        MemoryContextSwitchTo(old);
        return registered;
    });
    TimestampTz now = PgCall([] { return GetCurrentTimestamp(); });
    if (!ok) {
        PgCall([&] {
            ereport(WARNING, (errmsg("gsb: could not start the apply worker for peer \"%s\"",
                                     w.peer.c_str()),
                              errhint("Raise max_worker_processes.")));
        });
        w.next_start = TimestampTzPlusMilliseconds(now, w.delay_ms);
        return;
    }
    w.handle = handle;
    // The next start after a death waits longer, up to a limit; a worker
    // that ran a while starts the count again.
    w.next_start = TimestampTzPlusMilliseconds(now, w.delay_ms);
    w.delay_ms = std::min(w.delay_ms * 2, kMaxRestartDelayMs);
}

// Asks every running gsb worker that is not one of workers (started by an
// earlier supervisor) to stop, and returns how many there were.
int StopStrangers(std::vector<Worker> &workers) {
    // Processes first, then our own pids: a worker of ours that is visible
    // in the first has its pid known in the second.
    std::vector<pid_t> gsb_pids;
    int n = PgCall([] {
        pgstat_clear_snapshot();
        return pgstat_fetch_stat_numbackends();
    });
    for (int i = 1; i <= n; i++) {
        pid_t pid = PgCall([&] {
            LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
            if (local == nullptr || local->backendStatus.st_backendType != B_BG_WORKER)
                return static_cast<pid_t>(0);
            return static_cast<pid_t>(local->backendStatus.st_procpid);
        });
        if (pid == 0 || pid == MyProcPid)
            continue;
        char type[BGW_MAXLEN] = "";
        PgCall([&] {
            const char *t = GetBackgroundWorkerTypeByPid(pid);
            if (t != nullptr)
                strlcpy(type, t, sizeof type);
        });
        for (const char *known : kWorkerTypes)
            if (strcmp(type, known) == 0)
                gsb_pids.push_back(pid);
    }
    std::vector<pid_t> ours;
    for (Worker &w : workers) {
        pid_t pid = 0;
        if (w.handle != nullptr &&
            PgCall([&] { return GetBackgroundWorkerPid(w.handle, &pid); }) == BGWH_STARTED)
            ours.push_back(pid);
    }
    // Said once per process, however long it takes to go.
    static std::vector<pid_t> told;
    int strangers = 0;
    for (pid_t pid : gsb_pids) {
        if (std::find(ours.begin(), ours.end(), pid) != ours.end())
            continue;
        strangers++;
        if (std::find(told.begin(), told.end(), pid) == told.end()) {
            told.push_back(pid);
            PgCall([&] {
                ereport(LOG, (errmsg("gsb supervisor: stopping worker %d, started by an earlier "
                                     "supervisor",
                                     static_cast<int>(pid))));
            });
        }
        kill(pid, SIGTERM);
    }
    PgCall([] { pgstat_clear_snapshot(); });
    return strangers;
}

void Run() {
    PgCall([] {
        SharedState *s = Shared();
        LWLockAcquire(s->lock, LW_EXCLUSIVE);
        s->supervisor_latch = MyLatch;
        s->supervisor_pid = MyProcPid;
        LWLockRelease(s->lock);
    });
    std::vector<Worker> workers;
    // Workers of an earlier supervisor of this server run on without it: let
    // them go before starting any (they hold replication origins, and there
    // is one site monitor).
    TimestampTz wait_until =
        PgCall([] { return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kStrangerWaitMs); });
    while (StopStrangers(workers) > 0) {
        if (PgCall([] { return GetCurrentTimestamp(); }) > wait_until) {
            PgCall([] {
                ereport(WARNING, (errmsg("gsb supervisor: workers of an earlier supervisor are "
                                         "still running; starting anyway")));
            });
            break;
        }
        SleepOnLatch(100);
    }
    for (;;) {
        ReloadConfigIfPending();
        // Test hook: the supervisor fails (and is started again).
        if (FaultInjected("supervisor_error"))
            throw Error(ERRCODE_INTERNAL_ERROR, "injected fault in the gsb supervisor");
        bool installed = false;
        std::vector<std::string> peers;
        try {
            peers = ReadPeers(&installed);
        } catch (const std::exception &e) {
            // A catalog read that failed (a lock timeout, say) is tried again
            // on the next round; the workers run on meanwhile. RunStatement
            // left no transaction behind.
            std::string text = e.what();
            PgCall([&] {
                ereport(WARNING,
                        (errmsg("gsb supervisor: could not read gsb.peers: %s", text.c_str())));
            });
            SleepOnLatch(kPollMs);
            continue;
        }
        std::vector<std::pair<Kind, std::string>> wanted;
        if (installed) {
            wanted.emplace_back(Kind::kMonitor, std::string());
            if (guc_http_port > 0)
                wanted.emplace_back(Kind::kHttp, std::string());
        }
        for (const std::string &p : peers)
            wanted.emplace_back(Kind::kApply, p);
        for (Worker &w : workers)
            w.wanted = false;
        for (const auto &[kind, p] : wanted) {
            Worker *found = nullptr;
            for (Worker &w : workers)
                if (w.kind == kind && w.peer == p)
                    found = &w;
            if (found == nullptr) {
                Worker nw;
                nw.kind = kind;
                nw.peer = p;
                workers.push_back(nw);
                found = &workers.back();
            }
            found->wanted = true;
        }
        TimestampTz now = PgCall([] { return GetCurrentTimestamp(); });
        for (Worker &w : workers) {
            bool running = Running(w);
            if (!w.wanted) {
                if (running)
                    PgCall([&] { TerminateBackgroundWorker(w.handle); });
                continue;
            }
            if (running) {
                if (w.next_start != 0 && TimestampDifferenceExceeds(w.next_start, now, 60 * 1000))
                    w.delay_ms = 1000; // it has been up for a while
                continue;
            }
            if (Suppressed(w) || now < w.next_start)
                continue;
            Start(w);
        }
        StopStrangers(workers);
        // Forget workers that are neither wanted nor running.
        for (size_t i = 0; i < workers.size();) {
            if (!workers[i].wanted && workers[i].handle == nullptr)
                workers.erase(workers.begin() + i);
            else
                i++;
        }
        SleepOnLatch(kPollMs);
    }
}

} // namespace

void RegisterSupervisor() {
    BackgroundWorker bgw;
    memset(&bgw, 0, sizeof bgw);
    bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
    // Back soon after a failure: until it is, nothing restarts a worker.
    bgw.bgw_restart_time = 1;
    strlcpy(bgw.bgw_library_name, "gsb", BGW_MAXLEN);
    strlcpy(bgw.bgw_function_name, "gsb_supervisor_main", BGW_MAXLEN);
    strlcpy(bgw.bgw_name, "gsb supervisor", BGW_MAXLEN);
    strlcpy(bgw.bgw_type, "gsb supervisor", BGW_MAXLEN);
    RegisterBackgroundWorker(&bgw);
}

} // namespace gsb

void gsb_supervisor_main(Datum arg) {
    gsb::WorkerMain("gsb supervisor", [] { gsb::Run(); });
    proc_exit(0);
}
