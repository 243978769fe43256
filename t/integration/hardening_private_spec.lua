-- Private pipes (issue 3, item 6): the pipe directory is the workers' own and
-- nobody else's; anything else at its place is refused, never followed;
-- leftovers of dead instances are swept.
--
-- The refusal and sweep cases run the workers as `games` (uid 5), so that
-- they own /tmp/ngx_ipc.w1.5 alone and tampering with it cannot disturb any
-- other nginx on the machine (the default tests use nobody's
-- /tmp/ngx_ipc.w1.65534).  Any /tmp/ngx_ipc.w1.5 found is moved aside and put back.
local ffi = require "ffi"
local nginx = require "nginx"
local sh, shq = nginx.sh, nginx.shq

pcall(ffi.cdef, [[
int open(const char *path, int flags, ...);
int close(int fd);
long read(int fd, void *buf, unsigned long n);
]])
local O_RDONLY, O_NONBLOCK = 0, 0x800

local USER, OTHER = "games", "daemon"

local function out(cmd)
  local ok, o = sh(cmd)
  assert(ok, "command failed: " .. cmd .. "\n" .. o)
  return (o:gsub("%s+$", ""))
end

local UID = tonumber(out("id -u " .. USER))
local ROOT = "/tmp/ngx_ipc.w1." .. UID   -- w1: the wire format (internals.md)

local function stat(path)
  local ok, o = sh("stat -c '%a %u %F' " .. shq(path))
  return ok and (o:gsub("%s+$", "")) or nil
end

local function exists(path)
  return (sh("test -e " .. shq(path) .. " || test -L " .. shq(path)))
end

-- the workers' first ngx.ipc call, recorded: "ok" or the error it raised
local FIRST_CALL = [[
  local ipc = require "ngx.ipc"
  local ok, err = pcall(ipc.receive, "x", function(d) T.add("x:" .. ngx.worker.pid(), d) end)
  T.add("first", ok and "ok" or tostring(err))
]]

local function start_as_user(extra)
  return nginx.start { workers = 2, main = "user " .. USER .. ";", init_worker = FIRST_CALL .. (extra or "") }
end

local saved
local function save_root()
  saved = nil
  if exists(ROOT) then
    saved = ROOT .. ".saved-" .. os.time() .. "-" .. math.random(1e6)
    out("mv " .. shq(ROOT) .. " " .. shq(saved))
  end
end
local function restore_root()
  if exists(ROOT) then
    out("rm -rf " .. shq(ROOT))
  end
  if saved then
    out("mv " .. shq(saved) .. " " .. shq(ROOT))
    saved = nil
  end
end

describe("the default pipe directory (workers as nobody)", function()
  local inst, pids, dir, root

  setup(function()
    inst = nginx.start { workers = 2, init_worker = FIRST_CALL }
    pids = inst:workers()
    dir = inst:run(pids[1], "return require('ngx.ipc.shim').dir()")
    root = dir:match("^(.*)/[^/]+$")
  end)

  teardown(function()
    if inst then inst:stop() end
  end)

  it("is /tmp/ngx_ipc.w1.<euid>, a 0700 directory owned by the workers' euid, as is the instance", function()
    local euid = inst:run(pids[1], [[
      local f = io.open("/proc/self/status") local s = f:read("*a") f:close()
      return tonumber(s:match("Uid:%s+%d+%s+(%d+)"))
    ]])
    assert.are.equal(65534, euid, "the workers' euid")
    assert.are.equal("/tmp/ngx_ipc.w1." .. euid, root)
    assert.are.equal("700 65534 directory", stat(root), root)
    assert.are.equal("700 65534 directory", stat(dir), dir)
    for _, p in ipairs(pids) do
      assert.are.equal("600 65534 fifo", stat(dir .. "/" .. p), "the pipe of " .. p)
    end
  end)

  it("keeps another uid from opening a worker's pipe for writing", function()
    local path = dir .. "/" .. pids[1]
    local probe = [[
      local ffi = require "ffi"
      ffi.cdef "int open(const char *p, int f, ...);"
      local fd = ffi.C.open(os.getenv("P"), 0x801)      -- O_WRONLY|O_NONBLOCK
      io.write(fd >= 0 and "opened" or ("errno " .. ffi.errno()))
    ]]
    local cmd = ("P=%s setpriv --reuid=%s --regid=%s --clear-groups luajit -e %s"):format(
      shq(path), OTHER, OTHER, shq(probe))
    local ok, o = sh(cmd)
    assert.is_true(ok, o)
    assert.are.equal("errno 13", o:gsub("%s+$", ""), "open(" .. path .. ", O_WRONLY) as " .. OTHER)
    -- nor list the directory, nor reach the pipe through the worker's /proc
    local okls = sh(("setpriv --reuid=%s --regid=%s --clear-groups ls %s"):format(OTHER, OTHER, shq(root)))
    assert.is_false(okls, OTHER .. " listed " .. root)
    -- root can (the pipe is there, with a reader): the refusal is the permissions'
    local fd = ffi.C.open(path, 0x801)
    assert.is_true(fd >= 0, "root could not open " .. path .. ": errno " .. ffi.errno())
    ffi.C.close(fd)
  end)

  it("never writes through a symbolic link or into a non-FIFO named after a pid", function()
    -- a FIFO anyone may write to, with a reader: following the link would work
    local target = os.tmpname()
    os.remove(target)
    out("mkfifo -m 0666 " .. shq(target))
    local rfd = ffi.C.open(target, O_RDONLY + O_NONBLOCK)
    assert.is_true(rfd >= 0)
    local ghost_link, ghost_file = 2147480101, 2147480102
    out(("ln -s %s %s"):format(shq(target), shq(dir .. "/" .. ghost_link)))
    out(("touch %s && chown nobody %s"):format(shq(dir .. "/" .. ghost_file), shq(dir .. "/" .. ghost_file)))
    local res = inst:run(pids[1], ([[
      local r = {}
      r.ok1, r.err1 = ipc.send(%d, "x", "through the link")
      r.ok2, r.err2 = ipc.send(%d, "x", "into the file")
      r.bcast = ipc.broadcast("x", "broadcast")
      return r
    ]]):format(ghost_link, ghost_file))
    local buf = ffi.new("char[64]")
    local n = ffi.C.read(rfd, buf, 64)
    ffi.C.close(rfd)
    local file_size = out("stat -c %s " .. shq(dir .. "/" .. ghost_file))
    os.remove(target)
    os.remove(dir .. "/" .. ghost_link)
    os.remove(dir .. "/" .. ghost_file)
    assert.is_nil(res.ok1, "send through a symbolic link returned true")
    assert.is_nil(res.ok2, "send into a regular file returned true")
    assert.is_true(res.bcast, "broadcast")
    assert.is_true(n <= 0, ("%d bytes arrived through the symbolic link"):format(tonumber(n)))
    assert.are.equal("0", file_size, "bytes written into the regular file")
    for _, p in ipairs(pids) do
      inst:wait_count("x:" .. p, 1, 5)     -- the broadcast reached the real pipes
    end
  end)
end)

describe("a pipe directory that is not private", function()
  local inst, target

  before_each(function()
    save_root()
    target = nil
  end)

  after_each(function()
    if inst then inst:stop(); inst = nil end
    restore_root()
    if target then out("rm -rf " .. shq(target)) end
  end)

  -- starts nginx with `prepare` done to ROOT; every worker's first ngx.ipc
  -- call must raise an error naming ROOT and `reason`; nginx keeps running
  -- (`untouched` checks what must not have changed, before the message is)
  local function refused(reason, untouched)
    inst = start_as_user()
    local pids = inst:workers()
    local first = inst:wait_count("first", 2, 5)
    -- later calls keep failing cleanly, and the workers stay up
    local again = inst:run(pids[1], "local ok, err = pcall(ipc.broadcast, 'x', 'y') return ok, tostring(err)")
    assert.is_false(again, "a later call succeeded")
    for _, p in ipairs(pids) do
      assert.is_true(nginx.alive(p), "worker " .. p)
    end
    assert.are.same({}, inst:crashes())
    if untouched then untouched() end
    for _, e in ipairs(first) do
      assert.are_not.equal("ok", e, "the first call succeeded")
      assert.is_truthy(e:find(ROOT, 1, true), "the error names " .. ROOT .. ": " .. e)
      assert.is_truthy(e:find(reason, 1, true), ("the error says %q: %s"):format(reason, e))
    end
    return first[1]
  end

  it("refuses a symbolic link, and neither follows it nor touches its target", function()
    target = out("mktemp -d /tmp/ngx-ipc-t-target.XXXXXX")
    out(("chown %s %s && chmod 0700 %s"):format(USER, shq(target), shq(target)))
    out(("ln -s %s %s"):format(shq(target), shq(ROOT)))
    local before = out("stat -c '%Y %a %U' " .. shq(target))
    refused("symbolic link", function()
      assert.are.equal("", out("ls -A " .. shq(target)), "entries created in the link's target")
      assert.are.equal(before, out("stat -c '%Y %a %U' " .. shq(target)), "the target was changed")
      assert.are.equal(target, out("readlink " .. shq(ROOT)), "the link was changed")
    end)
  end)

  it("refuses a dangling symbolic link and does not create its target", function()
    target = "/tmp/ngx-ipc-t-nowhere." .. os.time() .. math.random(1e6)
    out(("ln -s %s %s"):format(shq(target), shq(ROOT)))
    refused("symbolic link", function()
      assert.is_false(exists(target), "the link's target was created")
    end)
  end)

  it("refuses a directory owned by another uid that it cannot enter", function()
    out(("mkdir -m 0700 %s"):format(shq(ROOT)))       -- root's
    refused("Permission denied")
    assert.are.equal("700 0 directory", stat(ROOT))
    assert.are.equal("", out("ls -A " .. shq(ROOT)))
  end)

  for _, owner in ipairs { "root", OTHER } do
    it("refuses a directory owned by " .. owner .. " that it could use", function()
      local uid = out("id -u " .. owner)
      out(("mkdir %s && chown %s %s && chmod 0777 %s"):format(shq(ROOT), owner, shq(ROOT), shq(ROOT)))
      refused("owned by uid " .. uid .. ", not by uid " .. UID)
      assert.are.equal("777 " .. uid .. " directory", stat(ROOT))
      assert.are.equal("", out("ls -A " .. shq(ROOT)))
    end)
  end

  for _, mode in ipairs { "0777", "0770", "0755", "0701" } do
    it("refuses a directory with mode " .. mode, function()
      out(("mkdir %s && chown %s %s && chmod %s %s"):format(shq(ROOT), USER, shq(ROOT), mode, shq(ROOT)))
      refused("open to group or others (mode " .. mode .. ", needs 0700)")
      assert.are.equal(mode:sub(2) .. " " .. UID .. " directory", stat(ROOT), "the mode was changed")
      assert.are.equal("", out("ls -A " .. shq(ROOT)))
    end)
  end

  it("refuses a file that is not a directory", function()
    out(("touch %s && chown %s %s && chmod 0600 %s"):format(shq(ROOT), USER, shq(ROOT), shq(ROOT)))
    refused("not a directory")
  end)
end)

describe("leftovers of dead instances", function()
  local inst

  before_each(function()
    save_root()
  end)

  after_each(function()
    if inst then inst:stop(); inst = nil end
    restore_root()
  end)

  it("are swept when a worker starts; live and foreign instances are kept", function()
    local ns = out("stat -L -c %i /proc/self/ns/pid")
    local f = assert(io.open("/proc/self/stat"))
    local me = tonumber(f:read("*l"):match("^(%d+)"))          -- this test process
    f:close()
    local my_start = out("cut -d' ' -f22 /proc/" .. me .. "/stat")
    out(("mkdir -m 0700 %s && chown %s %s"):format(shq(ROOT), USER, shq(ROOT)))
    local function fake(name, pipes)
      local d = ROOT .. "/" .. name
      out("mkdir -m 0700 " .. shq(d))
      for _, p in ipairs(pipes) do
        out("mkfifo -m 0600 " .. shq(d .. "/" .. p))
      end
      out(("chown -R %s %s"):format(USER, shq(d)))
      return d
    end
    -- pids above pid_max never belong to a live process
    local dead = fake(ns .. "-99999-12345-55d0c0ffee00", { 99998, "99997.new", "w0", "w1" })
    local dead_empty = fake(ns .. "-99996-12345-55d0c0ffee00", {})
    local reused = fake(("%s-%d-1-55d0c0ffee00"):format(ns, me), { 99995 })   -- pid alive, another start time
    local live = fake(("%s-%d-%s-55d0c0ffee00"):format(ns, me, my_start), { me, 99994 })
    local foreign = fake(("%d-99999-12345-55d0c0ffee00"):format(ns + 1), { 99993 })
    local junk = fake("not-an-instance", { 99992 })
    inst = start_as_user()
    local first = inst:wait_count("first", 2, 5)
    assert.are.same({ "ok", "ok" }, first)
    assert.is_false(exists(dead), "a dead master's instance was kept: " .. dead)
    assert.is_false(exists(dead_empty), "a dead master's empty instance was kept")
    assert.is_false(exists(reused), "an instance whose master pid was reused was kept")
    assert.is_true(exists(live), "a live master's instance was removed")
    assert.is_true(exists(live .. "/" .. me), "a live master's pipe was removed")
    assert.is_true(exists(foreign), "an instance of another pid namespace was removed")
    assert.is_true(exists(junk .. "/99992"), "a directory that is not an instance was touched")
    -- and our own instance holds our workers' pipes only
    local pids = inst:workers()
    local dir = inst:run(pids[1], "return require('ngx.ipc.shim').dir()")
    local entries = nginx.listdir(dir)
    table.sort(entries)
    table.sort(pids)
    assert.are.same({ tostring(pids[1]), tostring(pids[2]), "w0", "w1" }, entries)
  end)

  it("include pipes of dead workers in the own instance, removed at a worker's start", function()
    inst = start_as_user()
    local pids = inst:workers()
    local dir = inst:run(pids[1], "return require('ngx.ipc.shim').dir()")
    out(("mkfifo -m 0600 %s/99991 && chown %s %s/99991"):format(shq(dir), USER, shq(dir)))
    out(("mkfifo -m 0600 %s/99990.new && chown %s %s/99990.new"):format(shq(dir), USER, shq(dir)))
    local fresh = inst:kill9(pids[1])
    inst:wait_for(function()
      return not exists(dir .. "/99991") and not exists(dir .. "/99990.new") and not exists(dir .. "/" .. pids[1])
    end, 5, "the dead pipes to be swept")
    local entries = nginx.listdir(dir)
    table.sort(entries)
    local want = { tostring(pids[2]), tostring(fresh), "w0", "w1" }
    table.sort(want)
    assert.are.same(want, entries)
  end)
end)
