-- wrk script shared by compare-nginx.sh and profile-hit-path.sh: GETs the request paths listed
-- one per line in $PATHS_FILE, round robin, each wrk thread starting at a random line.
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
