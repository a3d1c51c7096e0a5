// pg.hpp: the one place where gsb's C++ includes PostgreSQL's C headers.
//
// It is not for declaring gsb's own interfaces. Every .cpp that needs
// PostgreSQL includes this first (postgres.h must come before anything else)
// and then names further PostgreSQL headers inside `extern "C"`.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

// pg_config.h claims __builtin_types_compatible_p, which g++ does not have;
// PostgreSQL's own fallback for compilers without it is a no-op.
#undef AssertVariableIsOfType
#undef AssertVariableIsOfTypeMacro
#define AssertVariableIsOfType(varname, typename) ((void)true)
#define AssertVariableIsOfTypeMacro(varname, typename) ((void)true)

// port.h renames the printf family; backend code uses psprintf/StringInfo.
