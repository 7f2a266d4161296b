-- wrk script for bench/run's active-users curve: each request carries the
-- next session cookie of a file (one cookie value per line), round-robin,
-- so N sessions are in use at once. Request texts are built once in
-- init(), so a request costs wrk one table lookup.
--   wrk ... -s rotate.lua URL -- <cookie file> <cookie name>
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local reqs, n, i = {}, 0, 0

init = function(args)
  local name = args[2] or "aadgate"
  for line in io.lines(args[1]) do
    if #line > 0 then
      local h = {}
      for k, v in pairs(wrk.headers) do h[k] = v end
      h["Cookie"] = name .. "=" .. line
      n = n + 1
      reqs[n] = wrk.format(nil, nil, h)
    end
  end
  -- Each connection starts at a different place in the list.
  i = math.random(0, math.max(0, n - 1))
end

request = function()
  i = i % n + 1
  return reqs[i]
end
