local ____exports = {}
function ____exports.bad_argument(fn, n, expected, got)
    error(
        ((((((("bad argument #" .. tostring(n)) .. " to '") .. fn) .. "' (") .. expected) .. " expected, got ") .. type(got)) .. ")",
        4
    )
end
--- A string, or a number turned into one (as Lua's string functions do).
function ____exports.check_string(fn, n, value)
    local t = type(value)
    if t == "string" then
        return value
    end
    if t == "number" then
        return tostring(value)
    end
    ____exports.bad_argument(fn, n, "string", value)
end
return ____exports
