local ____exports = {}
local buffer = require("string.buffer")
--- The encoding of `value`, or nil and why it cannot be encoded.
function ____exports.encode(value)
    local ok, s = pcall(buffer.encode, value)
    if not ok then
        return nil, "cannot encode the data: " .. tostring(s)
    end
    return s
end
--- The value that `encode` made of `s`, or nil and why `s` is no encoding.
function ____exports.decode(s)
    local ok, v = pcall(buffer.decode, s)
    if not ok then
        return false, "cannot decode the data: " .. tostring(v)
    end
    return true, v
end
return ____exports
