# gsb: PGXS build of one gsb.so from the C++ sources in src/ and bgworker/.
#
# Targets beyond PGXS's own: `unit` (protocol unit tests, no server needed),
# `lint` (clang-format check), `format`, `bench`.

MODULE_big = gsb
EXTENSION = gsb
DATA = gsb--0.1.sql
PGFILEDESC = "gsb - Global Site Backup"

SRCS := $(sort $(wildcard src/*.cpp) $(wildcard bgworker/*.cpp))
OBJS = $(SRCS:.cpp=.o)

REGRESS = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=test/regress.conf \
	--encoding=UTF8 --no-locale
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(CURDIR)/src -I$(CURDIR)/bgworker -I$(libpq_srcdir)
PG_CXXFLAGS = -std=c++17 -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-register -fno-omit-frame-pointer -MMD -MP
SHLIB_LINK = -lstdc++ -lpq
EXTRA_CLEAN = $(SRCS:.cpp=.d) test/regress.conf test/unit/protocol_test tmp_regress

# PGXS would also emit LLVM bitcode with clang and none of our C++ flags; gsb
# has nothing worth inlining into JIT-compiled expressions, so skip it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

-include $(SRCS:.cpp=.d)

# The regression cluster's settings depend on the server's minor version:
# 15.19+ needs output_plugin_libraries, older minors refuse to start with it.
installcheck: test/regress.conf
test/regress.conf: scripts/pgconf.sh
	@mkdir -p $(@D)
	sh scripts/pgconf.sh "$(shell $(PG_CONFIG) --bindir)" > $@

GTEST_LIBS = -lgtest -lgtest_main -lpthread
test/unit/protocol_test: test/unit/protocol_test.cpp src/protocol.cpp src/protocol.hpp
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -I src -o $@ test/unit/protocol_test.cpp src/protocol.cpp $(GTEST_LIBS)

.PHONY: unit lint format bench
unit: test/unit/protocol_test
	./test/unit/protocol_test

FORMAT_FILES = $(wildcard src/*.cpp src/*.hpp bgworker/*.cpp bgworker/*.hpp test/unit/*.cpp)
lint:
	clang-format --dry-run --Werror $(FORMAT_FILES)
format:
	clang-format -i $(FORMAT_FILES)

bench:
	bash bench/run.sh $(BENCH_ARGS)
