// interop.cpp: the two halves of gsb's error boundary (see interop.hpp).
#include "interop.hpp"

#include <cstring>
#include <new>

namespace gsb {
namespace {

// Static storage for an error in flight from a C++ catch block to ereport.
// A backend is single-threaded, and the error is raised right after it is
// saved, so one slot is enough.
struct PendingError {
    int sqlstate;
    char message[4096];
    char detail[4096];
    char hint[1024];
    char context[2048];
};
PendingError pending;

void CopyText(char *dst, size_t size, const char *src) noexcept {
    if (src == nullptr) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

std::string OrEmpty(const char *s) {
    return s ? std::string(s) : std::string();
}

} // namespace

PgError CaptureCurrentPgError(MemoryContext caller) {
    // Called right after PG_CATCH: we are in ErrorContext. Copy the error out
    // into the caller's context, then leave PostgreSQL's error state clean.
    MemoryContextSwitchTo(caller);
    ErrorData *edata = CopyErrorData();
    FlushErrorState();
    PgError err(edata->sqlerrcode, OrEmpty(edata->message), OrEmpty(edata->detail),
                OrEmpty(edata->hint));
    if (edata->context)
        err.AddContext(edata->context);
    FreeErrorData(edata);
    return err;
}

void SavePendingError(const std::exception *e) noexcept {
    if (auto *ge = dynamic_cast<const Error *>(e)) {
        pending.sqlstate = ge->sqlstate();
        CopyText(pending.message, sizeof pending.message, ge->message().c_str());
        CopyText(pending.detail, sizeof pending.detail, ge->detail().c_str());
        CopyText(pending.hint, sizeof pending.hint, ge->hint().c_str());
        CopyText(pending.context, sizeof pending.context, ge->context().c_str());
        return;
    }
    pending.detail[0] = pending.hint[0] = pending.context[0] = '\0';
    if (dynamic_cast<const std::bad_alloc *>(e)) {
        pending.sqlstate = ERRCODE_OUT_OF_MEMORY;
        CopyText(pending.message, sizeof pending.message, "gsb: out of memory");
        return;
    }
    pending.sqlstate = ERRCODE_INTERNAL_ERROR;
    if (e) {
        CopyText(pending.message, sizeof pending.message, "gsb: internal error: ");
        size_t used = strlen(pending.message);
        CopyText(pending.message + used, sizeof pending.message - used, e->what());
    } else {
        CopyText(pending.message, sizeof pending.message, "gsb: internal error: unknown exception");
    }
}

void RaisePendingError() {
    ereport(ERROR, (errcode(pending.sqlstate), errmsg_internal("%s", pending.message),
                    pending.detail[0] ? errdetail_internal("%s", pending.detail) : 0,
                    pending.hint[0] ? errhint("%s", pending.hint) : 0,
                    pending.context[0] ? errcontext("%s", pending.context) : 0));
    pg_unreachable();
}

} // namespace gsb
