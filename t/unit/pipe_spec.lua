-- Destinations and broadcast in the instance directory (standalone mode).

local helper = require "t.unit.helper"
local shim, pid, dir = helper.start()

local fmt = string.format

-- pids above pid_max (4194304) never belong to a live process
local GHOST = 2147480001


local function broadcast_names(name)
    local got = helper.collect(math.huge, 5)
    local n = 0
    for _, a in ipairs(got) do
        if a.name == name then
            n = n + 1
        end
    end
    return n, got
end


describe("the instance directory", function()

    it("is the directory given to start_standalone", function()
        assert.are.equal(dir, shim.dir())
    end)

    it("is private (mode 0700) and holds this process's pipe", function()
        local p = io.popen("stat -c %a '" .. dir .. "'")
        local mode = p:read("*l")
        p:close()
        assert.are.equal("700", mode, "mode of " .. dir)
        assert.is_true(helper.sh("test -p '" .. dir .. "/" .. pid .. "'"),
                       "expected a FIFO " .. dir .. "/" .. pid)
        assert.is_false(helper.exists(dir .. "/" .. pid .. ".new"),
                        "the temporary name " .. pid .. ".new remains")
    end)

    it("cannot be started again elsewhere", function()
        local ok, err = shim.start_standalone(dir .. ".other", pid)
        assert.is_nil(ok, "second start in another directory succeeded")
        assert.truthy(tostring(err):find("already started", 1, true),
                      "expected 'already started', got: " .. tostring(err))
        assert.is_false(helper.exists(dir .. ".other"),
                        "the refused start created " .. dir .. ".other")
    end)
end)


describe("send", function()

    it("returns nil, 'no such worker' for a pid without a pipe", function()
        local before = shim.counters()
        local ok, err = shim.send(GHOST, "x", "y")
        assert.is_nil(ok, "send to a pid without pipe succeeded")
        assert.are.equal("no such worker: " .. GHOST, err)
        local d = helper.delta(before, shim.counters())
        assert.are.equal(1, d.refused_no_worker, "refused_no_worker: expected +1, got +"
                                           .. d.refused_no_worker)
        assert.are.equal(0, d.alerts_sent, "alerts_sent: expected +0")
    end)

    it("returns nil, 'no such worker' for pid 0 and negative pids",
       function()
        for _, bad in ipairs{ 0, -1 } do
            local ok, err = shim.send(bad, "x", "y")
            assert.is_nil(ok, "send to pid " .. bad .. " succeeded")
            assert.truthy(tostring(err):find("no such worker", 1, true),
                          "expected 'no such worker', got: "
                          .. tostring(err))
        end
    end)

    it("reports a FIFO without reader as an exited worker and removes it",
       function()
        local path = dir .. "/" .. GHOST
        assert.is_true(helper.sh("mkfifo -m 600 '" .. path .. "'"),
                       "mkfifo " .. path)
        local ok, err = shim.send(GHOST, "x", "y")
        assert.is_nil(ok, "send to a FIFO without reader succeeded")
        assert.are.equal("no such worker: " .. GHOST .. " (exited)", err)
        assert.is_false(helper.exists(path), "the stale FIFO " .. path
                                             .. " was not removed")
    end)

    it("counts each alert lost once when a worker exits with an alert that "
       .. "starts in the write buffer and goes on in the queue", function()
        local ffi = require "ffi"
        pcall(ffi.cdef, [[
            int ngx_ipc_test_close(int fd) __asm__("close");
            void *ngx_ipc_test_signal(int sig, void *handler) __asm__("signal");
        ]])
        local C = ffi.C
        -- in nginx SIGPIPE is ignored; here the flush to a pipe without
        -- reader must see EPIPE, not end the process
        C.ngx_ipc_test_signal(13, ffi.cast("void *", 1))
        local full, other = GHOST + 1, GHOST + 2
        local fds = {}
        finally(function()
            for p, fd in pairs(fds) do
                C.ngx_ipc_test_close(fd)
                os.remove(dir .. "/" .. p)
            end
        end)
        for _, p in ipairs{ full, other } do
            local path = dir .. "/" .. p
            os.remove(path)
            assert.is_true(helper.sh("mkfifo -m 600 '" .. path .. "'"))
            fds[p] = C.ngx_ipc_test_open(path, 0x800)      -- O_RDONLY|O_NONBLOCK
            assert.is_true(fds[p] >= 0, "open " .. path)
        end
        -- one page of pipe, filled, so that every write to "full" is refused
        assert.are.equal(4096, C.ngx_ipc_test_fcntl(fds[full], 1031,
                                                    ffi.new("int", 4096)))
        local w = C.ngx_ipc_test_open(dir .. "/" .. full, 0x801)
        assert.are.equal(4096, tonumber(C.ngx_ipc_test_write(w, ("x"):rep(4096), 4096)))
        C.ngx_ipc_test_close(w)

        helper.poll()                                    -- a new turn
        local before = shim.counters()
        -- written at once (an alert on its own), so what follows is a burst
        assert.is_true(shim.send(other, "lone", "1"))
        -- five small alerts wait in the write buffer (~3.1 KiB) ...
        for _ = 1, 5 do
            assert.is_true(shim.send(full, "small", ("s"):rep(600)))
        end
        -- ... the long one starts there, the buffer is full, the pipe refuses
        -- it: the buffer and the rest of the long alert go to the queue
        assert.is_true(shim.send(full, "long", ("l"):rep(10240)))
        C.ngx_ipc_test_close(fds[full])
        fds[full] = nil
        os.remove(dir .. "/" .. full)
        helper.poll()                                    -- flush: EPIPE
        local d = helper.delta(before, shim.counters())
        assert.are.equal(6, d.lost_exited, "alerts lost at the exited worker")
        assert.are.equal(0, d.send_queued, "bytes still queued")
    end)
end)


describe("broadcast", function()

    -- the directory holds the own pipe and the helper's peer's: two copies
    -- come back, one straight to the own pid, one through the peer's pipe

    it("reaches the own pid and every other pipe exactly once", function()
        helper.drain()
        local before = shim.counters()
        assert.is_true(shim.broadcast("bc-once", "hello"))
        local n, got = broadcast_names("bc-once")
        assert.are.equal(2, n, "expected 2 copies of the broadcast, got " .. n)
        assert.are.equal(2, #got, "expected 2 alerts in all, got " .. #got)
        for i = 1, 2 do
            assert.are.equal(pid, got[i].sender, "sender")
            assert.are.equal("hello", got[i].data, "data")
        end
        local d = helper.delta(before, shim.counters())
        assert.are.equal(2, d.alerts_sent, "alerts_sent: expected +2, got +"
                                           .. d.alerts_sent)
        assert.are.equal(1, d.writes, "writes: expected +1 (the peer's pipe), "
                                      .. "got +" .. d.writes)
    end)

    it("notices a new pipe, drops it silently when its worker is gone, "
       .. "and still reaches the others once", function()
        helper.drain()
        assert.is_true(shim.broadcast("bc-warm", ""))    -- list cached
        assert.are.equal(2, (broadcast_names("bc-warm")))

        local path = dir .. "/" .. (GHOST + 1)
        assert.is_true(helper.sh("mkfifo -m 600 '" .. path .. "'"))
        local before = shim.counters()
        assert.is_true(shim.broadcast("bc-stale", "x"),
                       "broadcast with a dead pipe in the directory")
        local d = helper.delta(before, shim.counters())
        assert.are.equal(1, d.refused_no_worker, "the new, dead pipe: expected "
                         .. "refused_no_worker +1, got +" .. d.refused_no_worker)
        assert.is_false(helper.exists(path), "the dead pipe was not removed")
        assert.are.equal(2, (broadcast_names("bc-stale")))
    end)

    it("reaches another process's pipe in the same directory", function()
        helper.drain()
        -- a second endpoint in a child LuaJIT: echoes every alert back
        -- to its sender until it receives "quit"
        local child = [[
            package.path = os.getenv("T_LPATH")
            package.cpath = os.getenv("T_CPATH")
            local shim = require "ngx.ipc.shim"
            local f = io.open("/proc/self/stat")
            local me = tonumber(f:read("*l"):match("^(%d+)"))
            f:close()
            assert(shim.start_standalone(os.getenv("T_DIR"), me))
            io.stdout:write(me, "\n")
            io.stdout:flush()
            local deadline = os.time() + 20
            while os.time() < deadline do
                shim.poll()
                local sender, name, data = shim.recv()
                while sender do
                    if name == "quit" then os.exit(0) end
                    assert(shim.send(sender, "echo:" .. name, data))
                    shim.poll()
                    sender, name, data = shim.recv()
                end
            end
            os.exit(1)
        ]]
        local cmd = fmt("T_LPATH='%s' T_CPATH='%s' T_DIR='%s' luajit -e '%s'",
                        package.path, package.cpath, dir,
                        child:gsub("'", "'\\''"))
        local proc = assert(io.popen(cmd, "r"))
        local cpid = tonumber(proc:read("*l"))
        assert.truthy(cpid, "the child did not start")

        local big = helper.bytes(300000, 77)
        assert(shim.send(cpid, "direct", big))
        assert.is_true(shim.broadcast("bc-all", "to everyone"))
        local got = helper.wait_for(3, 10)
        assert(shim.send(cpid, "quit", ""))
        local status = { proc:close() }
        assert.is_true(status[1] == true or status[1] == 0,
                       "the child failed: " .. tostring(status[1]) .. " "
                       .. tostring(status[3]))

        local by = {}
        for _, a in ipairs(got) do
            by[a.name] = (by[a.name] or 0) + 1
        end
        assert.are.same({ ["echo:direct"] = 1, ["echo:bc-all"] = 1,
                          ["bc-all"] = 1 }, by)
        for _, a in ipairs(got) do
            if a.name == "echo:direct" then
                assert(not helper.diff(big, a.data), helper.diff(big, a.data))
                assert.are.equal(cpid, a.sender, "sender of the echo")
            end
        end
        assert.is_false(helper.exists(dir .. "/" .. cpid),
                        "the child's pipe remained after it exited")
    end)
end)
