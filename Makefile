# VAPORA-C top-level build. `make` builds build/bin/*; `make run`, `make test`,
# `make asan`, `make bench` first install what is missing (`make deps`).
CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SANITIZE ?=
TSAN     ?=

# Libraries (pkg-config names) the programs and the tests link against.
PKGS      := libmicrohttpd jansson inih libzmq libcurl libnats nettle
TEST_PKGS := criterion
# Extra libraries of one service.
PKGS_backend := sqlite3 libsodium libjwt
PKGS_llm-router := sqlite3
PKGS_agents := sqlite3

SANFLAGS_ON := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# TSAN=1 (set by `make tsan`): ThreadSanitizer, which cannot share a
# build with ASan, hence a variable of its own.
SANFLAGS_TSAN := -fsanitize=thread -fno-omit-frame-pointer
ifneq ($(SANITIZE),)
ifneq ($(TSAN),)
$(error SANITIZE and TSAN are exclusive)
endif
endif
SANFLAGS := $(if $(SANITIZE),$(SANFLAGS_ON))$(if $(TSAN),$(SANFLAGS_TSAN))
# `=` (not `:=`): pkg-config runs when a recipe needs the flags, after deps.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(PKGS_backend) $(PKGS_llm-router) $(PKGS_agents))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
# Only common/ is on every include path: a service's or the supervisor's
# headers are found from its own folder (quoted includes), and by the unit
# tests of that folder alone (below), so nothing in common/ can include them.
CFLAGS   += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -MMD -MP -Icommon \
            $(SANFLAGS) $(PKG_CFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lwslay -lpthread -lm

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
COMMON_LIB := $(BUILD)/lib/libvapora-common.a

SERVICES := backend agents llm-router
BINS     := $(SERVICES:%=$(BUILD)/bin/vapora-%) $(BUILD)/bin/vapora-supervisor \
            $(BUILD)/bin/vaporactl

# The supervisor's modules as a library, so unit tests can link them.
SV_SRC := $(filter-out supervisor/vaporactl.c supervisor/main.c,$(wildcard supervisor/*.c))
SV_OBJ := $(SV_SRC:%.c=$(BUILD)/obj/%.o)
SV_LIB := $(BUILD)/lib/libvapora-supervisor.a
# Each service's config schema (services/<name>/schema.c, data only): the
# supervisor links them to know which sections roll which service. Objects,
# not archive members: every service's is called schema.o.
SV_SCHEMA_OBJ := $(SERVICES:%=$(BUILD)/obj/services/%/schema.o)
# The backend's modules, likewise.
BE_SRC := $(filter-out services/backend/main.c,$(wildcard services/backend/*.c))
BE_LIB := $(BUILD)/lib/libvapora-backend.a
# The LLM router's modules, likewise.
RT_SRC := $(filter-out services/llm-router/main.c,$(wildcard services/llm-router/*.c))
RT_LIB := $(BUILD)/lib/libvapora-router.a
# The agents service's modules, likewise.
AG_SRC := $(filter-out services/agents/main.c,$(wildcard services/agents/*.c))
AG_LIB := $(BUILD)/lib/libvapora-agents.a

UNIT_SRC := $(shell find tests/unit -name '*.c' 2>/dev/null)
UNIT_BIN := $(BUILD)/tests/unit-tests
INTEG_SRC := $(wildcard tests/integration/*.c)
INTEG_BIN := $(BUILD)/tests/integration-tests
# A service built on the real runtime with routes only tests need (JSON echo,
# pool sleep, loop block), for what the shipped services cannot yet show.
TESTSVC_SRC := $(wildcard tests/integration/testsvc/*.c)
TESTSVC_BIN := $(BUILD)/tests/vapora-testsvc
# Under TSan the criterion programs need tests/tsan/boxfort.c (why: there).
TSAN_TEST_OBJ := $(if $(TSAN),$(BUILD)/obj/tests/tsan/boxfort.o)

.PHONY: all deps bins run test test-run test-ui asan tsan bench clean format tests-build compose-test
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory bins

deps:
	@scripts/deps.sh

bins: $(BINS)

# The supervisor's schema registry alone sees the services' folders, for
# their schema.h ("backend/schema.h").
$(BUILD)/obj/supervisor/schemas.o: CFLAGS += -Iservices
# The unit tests of a folder see that folder's headers, and tests/unit's
# own (tmpdir_test.h).
$(BUILD)/obj/tests/unit/%.o: CFLAGS += -Itests/unit
$(BUILD)/obj/tests/unit/supervisor/%.o: CFLAGS += -Isupervisor
$(foreach s,$(SERVICES),$(eval $(BUILD)/obj/tests/unit/services/$(s)/%.o: CFLAGS += -Iservices/$(s)))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define service_rule
$(BUILD)/bin/vapora-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c)) $(COMMON_LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$^ -o $$@ $$(LDLIBS) $$(if $$(PKGS_$(1)),$$(shell pkg-config --libs $$(PKGS_$(1))))
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

$(SV_LIB): $(SV_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BE_LIB): $(BE_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(RT_LIB): $(RT_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(AG_LIB): $(AG_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/vapora-supervisor: $(BUILD)/obj/supervisor/main.o $(SV_LIB) $(SV_SCHEMA_OBJ) \
                                $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/vaporactl: $(BUILD)/obj/supervisor/vaporactl.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(shell pkg-config --libs libcurl)

$(UNIT_BIN): $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(TSAN_TEST_OBJ) $(SV_LIB) $(SV_SCHEMA_OBJ) \
             $(BE_LIB) $(RT_LIB) $(AG_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(shell pkg-config --libs $(TEST_PKGS) $(PKGS_backend) $(PKGS_llm-router) $(PKGS_agents))

$(INTEG_BIN): $(INTEG_SRC:%.c=$(BUILD)/obj/%.o) $(TSAN_TEST_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(shell pkg-config --libs $(TEST_PKGS))

$(TESTSVC_BIN): $(TESTSVC_SRC:%.c=$(BUILD)/obj/%.o) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

tests-build: $(BINS) $(UNIT_BIN) $(INTEG_BIN) $(TESTSVC_BIN)

# Runs every suite; prints criterion's summaries and a total line.
test-run: tests-build
	@BUILD=$(BUILD) tests/run.sh

test: deps
	@$(MAKE) --no-print-directory test-run

# The web board in headless Chromium against the real suite (tests/ui/run.sh;
# screenshots of every page in $(BUILD)/ui-screenshots).
test-ui: deps bins
	@BUILD=$(BUILD) tests/ui/run.sh

# abort_on_error: criterion ignores a passed test's exit status, so a leak
# report must abort the test process to count.
asan: deps
	@ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SANITIZE=1 test-run

# Every process (tests, supervisors, workers: they inherit TSAN_OPTIONS)
# writes its reports to build/tsan/reports/tsan.<pid>, not to a log the
# harness deletes; tests/tsan-check.sh then fails the run on any report
# that names our code. halt_on_error=0: a test goes on, to find more.
TSAN_REPORTS := $(CURDIR)/build/tsan/reports
tsan: deps
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	@TSAN_OPTIONS="halt_on_error=0 exitcode=66 history_size=4 second_deadlock_stack=1 \
		log_path=$(TSAN_REPORTS)/tsan suppressions=$(CURDIR)/tests/tsan.supp" \
		$(MAKE) --no-print-directory BUILD=build/tsan OPT=-O1 TSAN=1 test-run; \
		rc=$$?; tests/tsan-check.sh $(TSAN_REPORTS) || rc=1; exit $$rc

# The suite in containers (docker-compose.yml), driven through its published
# ports; installs Docker and makes a base image when missing (docs/deploy.md).
compose-test:
	@tests/compose/run.sh

run: deps
	@$(MAKE) --no-print-directory bins
	@mkdir -p data
	exec $(BUILD)/bin/vapora-supervisor -c etc/vapora.conf

bench: deps
	@$(MAKE) --no-print-directory bins
	@bench/run.sh

# `make fuzz`: libFuzzer targets (tests/fuzz/README.md), built by clang
# with ASan and UBSan into build/fuzz, each run FUZZ_SECONDS on a working
# copy of its corpus. FUZZ=1 (set by `make fuzz`) instruments every object.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(FUZZ_SRC),$(wildcard tests/fuzz/*.c)))
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
SANFLAGS += $(if $(FUZZ),-fsanitize=fuzzer-no-link)
# clang warns where gcc does not: SQL split over lines is meant.
CFLAGS += $(if $(FUZZ),-Wno-string-concatenation)
$(BUILD)/obj/tests/fuzz/%.o: CFLAGS += -Iservices -Isupervisor

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJ) $(SV_LIB) $(SV_SCHEMA_OBJ) \
                 $(BE_LIB) $(RT_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS) \
		$(shell pkg-config --libs $(PKGS_backend) $(PKGS_llm-router))

.SECONDARY: $(FUZZ_SRC:%.c=$(BUILD)/obj/%.o) $(FUZZ_LIB_OBJ)
.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 SANITIZE=1 FUZZ=1 \
		fuzz-build
	@BUILD=build/fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

format:
	clang-format -i $(COMMON_SRC) common/*.h $(wildcard services/*/*.c) supervisor/*.[ch] \
		$(UNIT_SRC) $(INTEG_SRC) $(TESTSVC_SRC) tests/integration/*.h

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
