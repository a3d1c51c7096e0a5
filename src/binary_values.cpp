// binary_values.cpp: see binary_values.hpp.
#include "pg.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstring>

#include "binary_values.hpp"

namespace gsb::values {

namespace {

uint64 ReadNet64(const char *p) {
    uint64 n;
    memcpy(&n, p, sizeof(n));
    return pg_ntoh64(n);
}

uint32 ReadNet32(const char *p) {
    uint32 n;
    memcpy(&n, p, sizeof(n));
    return pg_ntoh32(n);
}

uint16 ReadNet16(const char *p) {
    uint16 n;
    memcpy(&n, p, sizeof(n));
    return pg_ntoh16(n);
}

} // namespace

Direct DirectKindFor(Oid recv) {
    switch (recv) {
    case F_BOOLRECV:
        return Direct::kBool;
    case F_INT2RECV:
        return Direct::kInt2;
    case F_INT4RECV:
        return Direct::kInt4;
    case F_INT8RECV:
        return Direct::kInt8;
    case F_FLOAT4RECV:
        return Direct::kFloat4;
    case F_FLOAT8RECV:
        return Direct::kFloat8;
    case F_TIMESTAMP_RECV:
    case F_TIMESTAMPTZ_RECV:
        return Direct::kTimestamp;
    case F_TEXTRECV:
    case F_VARCHARRECV:
        return Direct::kText;
    case F_UUID_RECV:
        return Direct::kUuid;
    default:
        return Direct::kNone;
    }
}

bool ReceiveDirect(Direct k, const char *data, size_t len, int32 typmod, Datum *value) {
    switch (k) {
    case Direct::kNone:
        return false;
    case Direct::kBool: // boolrecv: one byte, any non-zero is true
        if (len != 1)
            return false;
        *value = BoolGetDatum(data[0] != 0);
        return true;
    case Direct::kInt2:
        if (len != 2)
            return false;
        *value = Int16GetDatum(static_cast<int16>(ReadNet16(data)));
        return true;
    case Direct::kInt4:
        if (len != 4)
            return false;
        *value = Int32GetDatum(static_cast<int32>(ReadNet32(data)));
        return true;
    case Direct::kInt8:
        if (len != 8)
            return false;
        *value = Int64GetDatum(static_cast<int64>(ReadNet64(data)));
        return true;
    case Direct::kFloat4: { // any bit pattern, NaN included
        if (len != 4)
            return false;
        uint32 bits = ReadNet32(data);
        float4 f;
        memcpy(&f, &bits, sizeof(f));
        *value = Float4GetDatum(f);
        return true;
    }
    case Direct::kFloat8: {
        if (len != 8)
            return false;
        uint64 bits = ReadNet64(data);
        float8 f;
        memcpy(&f, &bits, sizeof(f));
        *value = Float8GetDatum(f);
        return true;
    }
    case Direct::kTimestamp: {
        // timestamp_recv and timestamptz_recv accept the infinities and the
        // values timestamp2tm can convert, which within IS_VALID_TIMESTAMP
        // is all of them; a typmod (precision) rounds the value.
        if (len != 8 || typmod >= 0)
            return false;
        auto ts = static_cast<Timestamp>(ReadNet64(data));
        if (!TIMESTAMP_NOT_FINITE(ts) && !IS_VALID_TIMESTAMP(ts))
            return false;
        *value = TimestampGetDatum(ts);
        return true;
    }
    case Direct::kText: {
        // textrecv and varchar_recv verify the bytes in the database
        // encoding when the client encoding is that or SQL_ASCII, and
        // convert them otherwise.
        int enc = pg_get_client_encoding();
        if (enc != GetDatabaseEncoding() && enc != PG_SQL_ASCII)
            return false;
        // varchar(n): a value of at most n bytes has at most n characters;
        // a longer one is left to varchar_recv's own check.
        if (typmod >= static_cast<int32>(VARHDRSZ) && len > static_cast<size_t>(typmod - VARHDRSZ))
            return false;
        if (len >= MaxAllocSize - VARHDRSZ)
            return false;
        (void)pg_verify_mbstr(GetDatabaseEncoding(), data, static_cast<int>(len), false);
        *value = PointerGetDatum(cstring_to_text_with_len(data, static_cast<int>(len)));
        return true;
    }
    case Direct::kUuid: {
        if (len != UUID_LEN)
            return false;
        auto *u = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
        memcpy(u->data, data, UUID_LEN);
        *value = UUIDPGetDatum(u);
        return true;
    }
    }
    return false;
}

} // namespace gsb::values
