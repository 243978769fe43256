# ngx.ipc: build the shim, regenerate build/ from src/, run the demo and the tests.
# `make install` is what luarocks' "make" build type calls.

CC       ?= cc
CFLAGS   ?= -O2 -g
SHIM_CFLAGS = -std=c99 -D_GNU_SOURCE -fPIC -fvisibility=hidden \
              -Wall -Wextra -Werror $(CFLAGS)
SHIM_LDFLAGS = -shared $(LDFLAGS)

SHIM_SRC = c/ngx_ipc_nginx.c c/ngx_ipc_pipe.c c/ngx_ipc_packet.c
SHIM_HDR = c/ngx_ipc.h c/ngx_ipc_internal.h
SHIM     = lib/ngx_ipc_shim.so
LUA_SRC  = $(shell find build -name '*.lua')

INST_LIBDIR ?= /usr/local/lib/lua/5.1
INST_LUADIR ?= /usr/local/share/lua/5.1

.PHONY: all shim lua install demo test deps bench clean

all: shim

shim: $(SHIM)

$(SHIM): $(SHIM_SRC) $(SHIM_HDR)
	@mkdir -p lib
	$(CC) $(SHIM_CFLAGS) -o $@ $(SHIM_SRC) $(SHIM_LDFLAGS)

# regenerate build/ from src/ (needs Node; luarocks users get build/ as committed)
lua:
	npm run --silent build

install: $(SHIM)
	install -d $(INST_LIBDIR) $(INST_LUADIR)/ngx/ipc
	install -m 0644 $(SHIM) $(INST_LIBDIR)/ngx_ipc_shim.so
	install -m 0644 build/ngx/ipc.lua $(INST_LUADIR)/ngx/ipc.lua
	install -m 0644 build/ngx/ipc/*.lua $(INST_LUADIR)/ngx/ipc/

# the two README commands: each installs what it needs first
deps:
	t/deps.sh

demo: deps shim
	t/demo.sh

test: deps
	t/run-tests.sh

clean:
	rm -rf lib
