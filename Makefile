# gsb: PGXS build of one gsb.so from the C++ sources in src/ and bgworker/.
#
# Targets beyond PGXS's own: `unit` (unit tests of the protocol and of the
# stream progress, no server needed),
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
EXTRA_CLEAN = $(SRCS:.cpp=.d) test/regress.conf test/unit/protocol_test \
	test/unit/stream_progress_test tmp_regress

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
test/unit/stream_progress_test: test/unit/stream_progress_test.cpp bgworker/stream_progress.hpp
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -I bgworker -o $@ test/unit/stream_progress_test.cpp $(GTEST_LIBS)

.PHONY: unit lint format bench
unit: test/unit/protocol_test test/unit/stream_progress_test
	./test/unit/protocol_test
	./test/unit/stream_progress_test

FORMAT_FILES = $(wildcard src/*.cpp src/*.hpp bgworker/*.cpp bgworker/*.hpp test/unit/*.cpp \
	test/fuzz/*.cpp test/fuzz/*.hpp)
lint:
	clang-format --dry-run --Werror $(FORMAT_FILES)
format:
	clang-format -i $(FORMAT_FILES)

bench:
	bash bench/run.sh $(BENCH_ARGS)

# Fuzzing the protocol reader with libFuzzer, ASan and UBSan (clang). `fuzz`
# runs for FUZZ_SECONDS on a scratch copy of the seed corpus, so the inputs it
# finds stay out of the repository; a finding fails it and leaves its input in
# test/fuzz/ (crash-*, leak-*, timeout-*, oom-*). `fuzz-corpus` rewrites the
# seeds from test/fuzz/seeds.hpp.
FUZZ_SECONDS ?= 20
FUZZ_CXX ?= clang++
FUZZ_FLAGS = -std=c++17 -O1 -g -I src -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
test/fuzz/protocol_fuzz: test/fuzz/protocol_fuzz.cpp test/fuzz/seeds.hpp src/protocol.cpp src/protocol.hpp
	$(FUZZ_CXX) $(FUZZ_FLAGS) -o $@ test/fuzz/protocol_fuzz.cpp src/protocol.cpp

.PHONY: fuzz fuzz-corpus
fuzz: test/fuzz/protocol_fuzz
	corpus=$$(mktemp -d) && cp test/fuzz/corpus/* "$$corpus" && \
	./test/fuzz/protocol_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=test/fuzz/ "$$corpus"; \
	status=$$?; rm -rf "$$corpus"; exit $$status

fuzz-corpus:
	tool=$$(mktemp) && \
	$(CXX) -std=c++17 -Wall -Wextra -I src -o "$$tool" test/fuzz/make_corpus.cpp src/protocol.cpp && \
	"$$tool" test/fuzz/corpus; status=$$?; rm -f "$$tool"; exit $$status
