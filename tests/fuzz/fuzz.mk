# Builds the libFuzzer targets (see README.md). Run through scripts/fuzz:
#
#   make -f tests/fuzz/fuzz.mk O=build-fuzz -j2 [fuzz_body ...]
#   make -f tests/fuzz/fuzz.mk O=build-fuzz/cov COV=1 -j2
#
# Every module a target needs is compiled once into $(O)/obj with ASan, UBSan
# (no recovery: any report is a crash) and libFuzzer's coverage
# instrumentation, then put into one archive so that each target links only
# the modules it actually reaches. Header dependencies come from -MMD.

O ?= build-fuzz
ifeq ($(origin CC),default)
CC = clang
endif
PKG_CONFIG ?= pkg-config

TARGETS = fuzz_body fuzz_credentials fuzz_conf fuzz_password

# Every module but main.c goes into the archive, as in src/libkeygate.a; the
# linker takes from it only what a target reaches (auth.c brings db.c,
# cache.c, scoreboard.c; conf.c brings addr.c), whatever that is tomorrow.
MODULES = $(filter-out main,$(basename $(notdir $(wildcard src/*.c))))

# COV=1 (scripts/fuzz --coverage): source-based coverage instead of the
# sanitizers, to measure which lines the corpus reaches.
ifeq ($(COV),1)
SAN = -fprofile-instr-generate -fcoverage-mapping
else
SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
endif
CFLAGS_FUZZ = -std=c11 -g -O1 -fno-omit-frame-pointer $(SAN) \
	-Wall -Wextra -Wshadow -Wno-unused-parameter \
	-D_GNU_SOURCE -Isrc $(shell $(PKG_CONFIG) --cflags libcjson libpq libargon2 inih libcrypto)
LIBS_FUZZ = $(shell $(PKG_CONFIG) --libs libcjson libpq libargon2 inih libcrypto) -lunistring -lfcgi -lzxcvbn

OBJS = $(MODULES:%=$(O)/obj/%.o)

all: $(TARGETS:%=$(O)/%)

# A static pattern rule: .PHONY targets get no implicit rule search.
$(TARGETS): %: $(O)/%
	@:

$(O)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC       $<"
	@$(CC) $(CFLAGS_FUZZ) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(O)/libkg-fuzz.a: $(OBJS)
	@rm -f $@
	@ar rcs $@ $(OBJS)

$(O)/obj/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	@echo "  CC       $<"
	@$(CC) $(CFLAGS_FUZZ) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(O)/fuzz_%: $(O)/obj/fuzz_%.o $(O)/libkg-fuzz.a
	@echo "  CCLD     $@"
	@$(CC) $(SAN) -fsanitize=fuzzer -o $@ $< $(O)/libkg-fuzz.a $(LIBS_FUZZ)

.PHONY: all $(TARGETS)
.SECONDARY:

-include $(wildcard $(O)/obj/*.d)
