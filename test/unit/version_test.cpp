// version_test.cpp: gsb::version::Compare, on which
// catalog::ExtensionVersionAtLeast decides what a 0.1 catalog lacks.
#include <gtest/gtest.h>

#include "extension_version.hpp"

using gsb::version::Compare;

TEST(ExtensionVersion, OrdersByNumberNotByText) {
    EXPECT_EQ(Compare("0.1", "0.2"), -1);
    EXPECT_EQ(Compare("0.2", "0.1"), 1);
    EXPECT_EQ(Compare("0.2", "0.2"), 0);
    EXPECT_EQ(Compare("0.10", "0.9"), 1);
    EXPECT_EQ(Compare("1.0", "0.99"), 1);
}

TEST(ExtensionVersion, MissingNumbersCountAsZero) {
    EXPECT_EQ(Compare("0.2", "0.2.0"), 0);
    EXPECT_EQ(Compare("0.2.1", "0.2"), 1);
    EXPECT_EQ(Compare("1", "0.9"), 1);
}

TEST(ExtensionVersion, RefusesWhatIsNotADottedVersion) {
    for (const char *bad : {"", "a", "0.", ".1", "0..1", "0.2dev", "0.2-1", " 0.2", "1234567890"}) {
        EXPECT_FALSE(Compare(bad, "0.1").has_value()) << bad;
        EXPECT_FALSE(Compare("0.1", bad).has_value()) << bad;
    }
}
