-- wrk script for benches/load.sh: sets the Host (and Authorization) of
-- every request, so one wrk run spreads over many tenants.
--
-- Arguments, after wrk's `--`:
--   tenants <file>   rotate over the file's lines "<host> <access-token>",
--                    sending both headers; each thread starts elsewhere
--   random           a fresh random host under .invalid per request, for
--                    the flood of unknown names
--   login <host> <username> <password>
--                    POST /api/token/ on one host with those credentials,
--                    for the login flood
--
-- With WRK_CONNECTION_CLOSE=1 in the environment every request also sends
-- `Connection: close`, so each one opens a new connection (a full TLS
-- handshake on https).

local threads_started = 0

-- Runs in wrk's main Lua state, once per thread before it starts.
function setup(thread)
  threads_started = threads_started + 1
  thread:set("thread_number", threads_started)
end

local close = os.getenv("WRK_CONNECTION_CLOSE") == "1"
local mode = "tenants"
local entries = {}
local position = 0
local login = nil

local function read_entries(path)
  local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in file:lines() do
    local host, token = line:match("^(%S+)%s+(%S+)")
    if host then
      local headers = { Host = host, Authorization = "Bearer " .. token }
      if close then headers.Connection = "close" end
      entries[#entries + 1] = headers
    end
  end
  file:close()
  assert(#entries > 0, "no '<host> <token>' lines in " .. path)
end

-- Runs in each thread's own Lua state.
function init(args)
  mode = args[1] or "tenants"
  local number = thread_number or 1
  math.randomseed(os.time() * 7919 + number)
  if mode == "tenants" then
    read_entries(args[2])
    position = math.random(#entries)
  elseif mode == "login" then
    local body = string.format('{"username":"%s","password":"%s"}', args[3], args[4])
    login = wrk.format("POST", nil, { Host = args[2], ["Content-Type"] = "application/json" }, body)
  elseif mode ~= "random" then
    error("unknown mode " .. mode .. " (tenants, random or login)")
  end
end

function request()
  if mode == "login" then
    return login
  end
  if mode == "random" then
    local host = string.format("nx%x%x.invalid",
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
    local headers = { Host = host }
    if close then headers.Connection = "close" end
    return wrk.format(nil, nil, headers)
  end
  position = position % #entries + 1
  return wrk.format(nil, nil, entries[position])
end
