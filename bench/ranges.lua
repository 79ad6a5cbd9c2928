-- wrk script of compare-ranges.sh: ranged GETs of one object ($PATH_FILE holds its presigned
-- path). MODE=random: RANGE-byte ranges at random offsets; MODE=sequential: every connection
-- reads the object front to back in RANGE-byte steps, from a random start, wrapping around.
local path = io.lines(os.getenv("PATH_FILE"))()
local size = tonumber(os.getenv("OBJECT_SIZE"))
local range = tonumber(os.getenv("RANGE"))
local sequential = os.getenv("MODE") == "sequential"
local steps = math.floor(size / range)
local next_step = math.random(steps) - 1
request = function()
    local first
    if sequential then
        first = next_step * range
        next_step = (next_step + 1) % steps
    else
        first = math.random(0, size - range)
    end
    return wrk.format("GET", path, { Range = "bytes=" .. first .. "-" .. (first + range - 1) })
end
