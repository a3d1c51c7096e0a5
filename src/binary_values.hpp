// binary_values.hpp: binary values from the peer made into datums directly,
// for the commonest built-in types, without a call through the type's
// receive function.
//
// In a profile of 200k applied updates the receive calls were 7% of the apply
// worker, half of that timestamptz_recv converting every value to a local
// time only to check its range. Each kind here accepts exactly what its
// receive function accepts (the same lengths, ranges and encoding check) and
// makes the same datum; it declines everything else, including every value
// the receive function would reject, and the caller then calls the receive
// function, which raises its own error. gsb.selftest_receive() compares both
// for any value (sql/10_binary_values.sql).
//
// These are PostgreSQL-style functions: ReceiveDirect may raise a PostgreSQL
// error (invalid encoding) and allocates in the current memory context.
// Not for: text-format values or the wire format of messages (protocol.hpp).
#pragma once

#include "pg.hpp"

namespace gsb::values {

enum class Direct : uint8 {
    kNone = 0, // the receive function
    kBool,
    kInt2,
    kInt4,
    kInt8,
    kFloat4,
    kFloat8,
    kTimestamp, // timestamp and timestamptz
    kText,      // text and varchar
    kUuid,
};

// The kind for a type whose binary receive function is recv.
Direct DirectKindFor(Oid recv);

// Makes the value of binary datum data[0..len) of kind k for a column with
// typmod into *value and returns true, or returns false when the receive
// function must make it instead.
bool ReceiveDirect(Direct k, const char *data, size_t len, int32 typmod, Datum *value);

} // namespace gsb::values
