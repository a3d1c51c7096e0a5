// extension_version.hpp: comparing gsb's extension versions ("0.1", "0.2",
// "1.10"): dotted non-negative numbers, compared number by number, a missing
// number counting as 0 ("0.2" == "0.2.0"). Pure C++, no PostgreSQL, so that
// the unit tests can check it; catalog::ExtensionVersionAtLeast reads the
// installed version and uses this.
// Not for: PostgreSQL's own version numbers, or the wire protocol's version
// (protocol.hpp).
#pragma once

#include <optional>
#include <string_view>

namespace gsb::version {

// <0, 0 or >0 as a is older than, the same as or newer than b; nullopt when
// either is not a dotted version (empty, a letter, an empty number, a
// number of more than 9 digits).
inline std::optional<int> Compare(std::string_view a, std::string_view b) {
    auto next = [](std::string_view &s, long &out) -> bool {
        size_t i = 0;
        out = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            if (i == 9)
                return false;
            out = out * 10 + (s[i] - '0');
            ++i;
        }
        if (i == 0)
            return false;
        if (i < s.size()) {
            if (s[i] != '.' || i + 1 == s.size())
                return false;
            ++i;
        }
        s.remove_prefix(i);
        return true;
    };
    if (a.empty() || b.empty())
        return std::nullopt;
    int result = 0;
    while (!a.empty() || !b.empty()) {
        long x = 0;
        long y = 0;
        if (!a.empty() && !next(a, x))
            return std::nullopt;
        if (!b.empty() && !next(b, y))
            return std::nullopt;
        if (result == 0 && x != y)
            result = x < y ? -1 : 1;
    }
    return result;
}

} // namespace gsb::version
