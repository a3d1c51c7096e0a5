// interop.hpp: how C++ and PostgreSQL's error handling meet inside gsb.
//
// PostgreSQL raises errors with longjmp, which skips C++ destructors; C++
// raises exceptions, which PostgreSQL cannot catch. gsb keeps them apart with
// exactly two tools, and nothing else may cross the boundary:
//
//  * gsb::Entry(fn) wraps every entry point from PostgreSQL into C++ (SQL
//    function, output-plugin callback, worker main loop body). It runs fn,
//    catches every C++ exception, copies its text into static storage, leaves
//    the catch block (so no C++ object is alive) and only then raises the
//    PostgreSQL error with the exception's SQLSTATE, detail and hint.
//
//  * gsb::PgCall(fn) wraps a PostgreSQL call made from a C++ frame that holds
//    objects with destructors. fn must hold no such objects itself: it is the
//    only frame a longjmp may cross. A PostgreSQL error inside it is copied
//    (CopyErrorData in the caller's memory context), flushed, and thrown as
//    gsb::PgError, so destructors run as the exception unwinds to Entry, which
//    raises it again with all of its fields. A C++ exception thrown by fn is
//    caught inside the PG_TRY block and thrown again after PG_END_TRY: let
//    through, it would unwind past PG_END_TRY and leave PG_exception_stack
//    pointing into PgCall's dead frame, where the next ERROR would jump.
//
// Not for: anything about the protocol or catalogs. No `return` inside PG_TRY.
#pragma once

#include "pg.hpp"

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace gsb {

// A gsb error, carrying what ereport needs. Thrown by gsb's own C++ code.
class Error : public std::exception {
  public:
    Error(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
        : sqlstate_(sqlstate), message_(std::move(message)), detail_(std::move(detail)),
          hint_(std::move(hint)) {}

    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const { return sqlstate_; }
    const std::string &message() const { return message_; }
    const std::string &detail() const { return detail_; }
    const std::string &hint() const { return hint_; }
    const std::string &context() const { return context_; }
    // Adds a line of context (innermost first, as PostgreSQL prints it).
    void AddContext(const std::string &line) {
        context_ = context_.empty() ? line : context_ + "\n" + line;
    }

  private:
    int sqlstate_;
    std::string message_;
    std::string detail_;
    std::string hint_;
    std::string context_;
};

// A PostgreSQL error caught by PgCall, on its way back to an Entry.
class PgError : public Error {
  public:
    using Error::Error;
};

// Copies the current PostgreSQL error (inside PG_CATCH), flushes it and builds
// the exception to throw. Defined in interop.cpp.
PgError CaptureCurrentPgError(MemoryContext caller);

// Raises the pending error saved by Entry. Never returns.
[[noreturn]] void RaisePendingError();
// Saves an exception's fields in static storage; allocates nothing.
void SavePendingError(const std::exception *e) noexcept;

template <typename F> auto PgCall(F &&fn) -> decltype(fn()) {
    using R = decltype(fn());
    MemoryContext caller = CurrentMemoryContext;
    // Inside fn, only fn's own error-context callbacks run: the outer ones
    // add their lines when Entry raises the error again.
    ErrorContextCallback *outer_context = error_context_stack;
    volatile bool failed = false;
    // A C++ exception from fn, held until PG_END_TRY has restored
    // PG_exception_stack. Written inside PG_TRY, read after it: through a
    // volatile pointer, like every such local.
    std::exception_ptr thrown;
    std::exception_ptr *volatile thrown_out = &thrown;
    if constexpr (std::is_void_v<R>) {
        PG_TRY();
        {
            error_context_stack = nullptr;
            try {
                fn();
            } catch (...) {
                *thrown_out = std::current_exception();
            }
            error_context_stack = outer_context;
        }
        PG_CATCH();
        { failed = true; }
        PG_END_TRY();
        if (failed)
            throw CaptureCurrentPgError(caller);
        if (*thrown_out)
            std::rethrow_exception(*thrown_out);
    } else {
        static_assert(std::is_trivially_copyable_v<R>, "PgCall returns plain values only");
        R result{};
        R *volatile out = &result;
        PG_TRY();
        {
            error_context_stack = nullptr;
            try {
                *out = fn();
            } catch (...) {
                *thrown_out = std::current_exception();
            }
            error_context_stack = outer_context;
        }
        PG_CATCH();
        { failed = true; }
        PG_END_TRY();
        if (failed)
            throw CaptureCurrentPgError(caller);
        if (*thrown_out)
            std::rethrow_exception(*thrown_out);
        return result;
    }
}

// Runs fn, turning any C++ exception into a PostgreSQL ERROR. The frame of
// Entry itself holds nothing with a destructor when it raises.
template <typename F> auto Entry(F &&fn) noexcept -> decltype(fn()) {
    using R = decltype(fn());
    try {
        if constexpr (std::is_void_v<R>) {
            fn();
            return;
        } else {
            return fn();
        }
    } catch (const std::exception &e) {
        SavePendingError(&e);
    } catch (...) {
        SavePendingError(nullptr);
    }
    RaisePendingError();
}

} // namespace gsb
