# ngx.ipc: build the shim, regenerate build/ from src/, run the demo and the tests.
# `make install` is what luarocks' "make" build type calls.

CC       ?= cc
CFLAGS   ?= -O2 -g
SHIM_CFLAGS = -std=c99 -D_GNU_SOURCE -fPIC -fvisibility=hidden \
              -Wall -Wextra -Werror $(CFLAGS)
SHIM_LDFLAGS = -shared $(LDFLAGS)

SHIM_SRC = c/ngx_ipc_core.c c/ngx_ipc_cache.c c/ngx_ipc_consumer.c \
           c/ngx_ipc_assemble.c c/ngx_ipc_wire.c \
           c/ngx_ipc_proc.c c/ngx_ipc_dir.c c/ngx_ipc_names.c \
           c/ngx_ipc_queue.c c/ngx_ipc_dest.c c/ngx_ipc_deliver.c c/ngx_ipc_send.c \
           c/ngx_ipc_nginx.c
SHIM_HDR = c/ngx_ipc.h c/ngx_ipc_internal.h
SHIM     = lib/ngx_ipc_shim.so
LUA_SRC  = $(shell find build -name '*.lua')

INST_LIBDIR ?= /usr/local/lib/lua/5.1
INST_LUADIR ?= /usr/local/share/lua/5.1
# lua-language-server definitions (meta/): a folder of their own, never on
# package.path, where ngx/ipc.lua would shadow the real module; the rock puts
# them in its own directory (rockspec/)
INST_METADIR ?= /usr/local/share/ngx-ipc/meta

.PHONY: all shim lua install demo test deps bench clean dist

all: shim

shim: $(SHIM)

$(SHIM): $(SHIM_SRC) $(SHIM_HDR)
	@mkdir -p lib
	$(CC) $(SHIM_CFLAGS) -o $@ $(SHIM_SRC) $(SHIM_LDFLAGS)

# regenerate build/ from src/ (needs Node; luarocks users get build/ as committed)
lua:
	npm run --silent build

# every generated module, at its path under build/ (the drop-ins included)
install: $(SHIM)
	install -d $(INST_LIBDIR)
	install -m 0644 $(SHIM) $(INST_LIBDIR)/ngx_ipc_shim.so
	cd build && find . -name '*.lua' | while read -r f; do \
	    install -d "$(INST_LUADIR)/$$(dirname "$$f")" && \
	    install -m 0644 "$$f" "$(INST_LUADIR)/$$f" || exit 1; done
	cd meta && find . -name '*.lua' | while read -r f; do \
	    install -d "$(INST_METADIR)/$$(dirname "$$f")" && \
	    install -m 0644 "$$f" "$(INST_METADIR)/$$f" || exit 1; done

# the two README commands: each installs what it needs first
deps:
	t/deps.sh

demo: deps shim
	t/demo.sh

test: deps
	t/run-tests.sh

# the benchmark, not part of test (docs/performance.md):
#   make bench   |   make bench ARGS="--json=bench.json"   |   ARGS=--help
#   make bench ORIGINAL=/path/to/ngx_lua_ipc_module.so   (the original module
#   side by side, see ../shared/PEERS.md; passed on as --original=PATH)
# wrk (row R1) is installed with apt-get when missing; without it (not root,
# no network) the bench runs without R1.
ORIGINAL ?=
bench: deps shim
	$(CC) -O2 -Wall -Wextra -Werror -o lib/bench-probe bench/probe.c
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "bench: wrk is missing and this is not root: no request-driven row (R1)"; \
	  else \
	    echo "bench: installing wrk"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; } || \
	      echo "bench: could not install wrk: no request-driven row (R1)"; \
	  fi; }
	luajit bench/run.lua $(if $(ORIGINAL),--original=$(abspath $(ORIGINAL))) $(ARGS)

# the release artifacts (source rock, npm tarball, checksums) into dist/; fails
# when package.json's version and the other places that name it disagree
DIST ?= dist
dist:
	DIST=$(DIST) t/dist.sh

clean:
	rm -rf lib dist

# the libraries' own Test::Nginx suites, as they are and on the drop-ins
# (docs/compat.md):  make compat PEERS=/path/to/checkouts
#   [COMPAT_NGINX="label=/path/nginx[:/module.so...] ..."] [COMPAT_LIBS=...]
#   [COMPAT_FILES=...] [COMPAT_MODES="real ours"]
PEERS ?=
.PHONY: compat
compat: shim
	PEERS="$(PEERS)" t/compat/run.sh

# --- hardening: fuzzing, sanitizers, stress (issue 3) ----------------------
#   make fuzz        libFuzzer over the packet decoder, FUZZ_SECONDS (20) s
#   make fuzz-long   FUZZ_RUNS (10 M) executions, FUZZ_JOBS (2) processes,
#                    new inputs kept in fuzz/out/corpus
#   make asan-unit   the unit specs against lib/asan/ngx_ipc_shim.so (ASan+UBSan)
#   make asan-integration  the integration specs on nginx with that shim and
#                    libasan preloaded (a second run of those specs)
#   make stress      100 reloads and 20 kill -9 under traffic (t/stress/)
#   make soak        SOAK_SECONDS (600) of mixed traffic, RSS and fd drift

.PHONY: fuzz fuzz-long asan-unit asan-integration stress soak

FUZZ_CC      ?= clang
FUZZ_CFLAGS  ?= -g -O1
FUZZ_SAN      = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_BIN      = fuzz/out/decoder_fuzz
FUZZ_SECONDS ?= 20
FUZZ_RUNS    ?= 10000000
FUZZ_JOBS    ?= 2
FUZZ_MAXLEN  ?= 8192
FUZZ_OPTS    ?=           # more libFuzzer flags for fuzz-long

$(FUZZ_BIN): fuzz/decoder_fuzz.c $(SHIM_SRC) $(SHIM_HDR)
	@mkdir -p fuzz/out
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -std=c99 -D_GNU_SOURCE -Wall -Wextra \
	    -Ic -o $@ fuzz/decoder_fuzz.c $(SHIM_SRC) -ldl

# the short run of the test command (TAP): the seeds of fuzz/corpus replayed,
# then FUZZ_SECONDS of fuzzing; findings are written to fuzz/out/
fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) t/fuzz_short.sh

# FUZZ_JOBS processes of FUZZ_RUNS/FUZZ_JOBS executions each (logs in
# fuzz/out/fuzz-<n>.log); the total is printed at the end
fuzz-long: $(FUZZ_BIN)
	@mkdir -p fuzz/out/corpus
	@rm -f fuzz/out/fuzz-*.log
	cd fuzz/out && ./decoder_fuzz -jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS) \
	    -runs=$$(( $(FUZZ_RUNS) / $(FUZZ_JOBS) )) -max_len=$(FUZZ_MAXLEN) \
	    -artifact_prefix=./ -print_final_stats=1 $(FUZZ_OPTS) corpus ../corpus
	@awk '/stat::number_of_executed_units/ { n += $$NF } \
	    /stat::average_exec_per_sec/ { r += $$NF } \
	    END { printf "fuzz-long: %d executions in all, %d exec/s together\n", n, r }' \
	    fuzz/out/fuzz-*.log
	@if ls fuzz/out/crash-* fuzz/out/leak-* fuzz/out/timeout-* fuzz/out/oom-* 2>/dev/null; then \
	    echo "fuzz-long: FINDINGS above (reproduce: $(FUZZ_BIN) <file>)"; exit 1; \
	else echo "fuzz-long: no finding"; fi

ASAN_CC     ?= gcc
ASAN_SHIM    = lib/asan/ngx_ipc_shim.so

$(ASAN_SHIM): $(SHIM_SRC) $(SHIM_HDR)
	@mkdir -p lib/asan
	$(ASAN_CC) -std=c99 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra \
	    -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	    -fno-sanitize-recover=undefined -shared -o $@ $(SHIM_SRC)

asan-unit: $(ASAN_SHIM)
	t/asan_unit.sh

asan-integration: deps $(ASAN_SHIM)
	t/asan_integration.sh

# both run even when the first fails; RELOADS=n, KILLS=n change the counts
stress: deps shim
	@rc=0; luajit t/stress/reload.lua || rc=1; luajit t/stress/kill.lua || rc=1; exit $$rc

soak: deps shim
	luajit t/stress/soak.lua
