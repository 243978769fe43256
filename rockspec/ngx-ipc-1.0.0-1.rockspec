rockspec_format = "3.0"
package = "ngx-ipc"
version = "1.0.0-1"

source = {
   -- the source rock (make dist) carries this archive: installing it needs no
   -- network; the address is where the release will be published
   url = "https://example.invalid/ngx-ipc/ngx-ipc-1.0.0.tar.gz",
   dir = "ngx-ipc-1.0.0",
}

description = {
   summary = "Alerts between nginx worker processes for OpenResty and lua-nginx-module",
   detailed = [[
      require "ngx.ipc" gives send, broadcast, receive, reply and sender between the
      worker processes of one nginx instance, over per-worker pipes, with no custom
      nginx build and no extra configuration. The Lua is generated from TypeScript and
      shipped in build/; a small C shim (no nginx headers) is compiled at install.
   ]],
   license = "MIT",
   labels = { "openresty", "nginx", "ipc" },
}

dependencies = {
   "lua == 5.1",
}

build = {
   type = "make",
   build_target = "shim",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
   },
   install_target = "install",
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      -- the rock's own directory (luarocks show --rock-dir ngx-ipc), off package.path
      INST_METADIR = "$(PREFIX)/meta",
   },
}
