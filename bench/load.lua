-- wrk script for bench/run.
--
--   wrk -tT ... -s bench/load.lua URL -- MODE FILE T [LIMIT]
--
-- MODE
--   me     GET the URL with "Authorization: Bearer TOKEN", TOKEN taken
--          round-robin from FILE (one token a line); each thread starts at
--          its own offset so that all tokens are spread over the run.
--          bench/run sends these requests to keygate and to its transport
--          ceiling (fcgi_hello) alike.
--   login  POST /api/login with {"username": U, "password": P}, U taken
--          round-robin from FILE (lines "username<TAB>password").
--   get    GET the URL as it is, no header (for trying by hand); FILE is
--          ignored (pass "-").
-- T is wrk's -t (a script cannot learn it before the threads start).
-- LIMIT (optional) stops each thread after LIMIT/threads responses, so that
-- a run sends about LIMIT requests; wrk's -d still bounds it in time.
--
-- done() prints one machine-readable line for bench/run:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N non2xx=N socket_errors=N

local mode, file, limit
local items = {}
local pos = 0
local count = 0
local quota = 0
local nthreads = 0

local function read_lines(path)
	local t = {}
	for line in io.lines(path) do
		if line ~= "" then
			t[#t + 1] = line
		end
	end
	if #t == 0 then
		error("no lines in " .. path)
	end
	return t
end

local function json_string(s)
	return '"' .. s:gsub('[%c"\\]', function(c)
		return string.format("\\u%04x", c:byte())
	end) .. '"'
end

function setup(thread)
	thread:set("index", nthreads)
	nthreads = nthreads + 1
end

function init(args)
	mode = args[1] or "get"
	file = args[2]
	local n = tonumber(args[3] or "") or 1
	limit = tonumber(args[4] or "")
	if mode == "me" or mode == "login" then
		items = read_lines(file)
		-- Threads start spread over the list: thread i at i/T of it.
		local idx = tonumber(wrk.thread:get("index")) or 0
		pos = math.floor(#items * idx / n)
	end
	if limit then
		quota = math.ceil(limit / n)
	end
	if mode == "login" then
		for i, line in ipairs(items) do
			local u, p = line:match("^([^\t]+)\t(.*)$")
			items[i] = '{"username":' .. json_string(u) .. ',"password":' .. json_string(p) .. '}'
		end
	end
end

function request()
	if mode == "me" then
		pos = pos % #items + 1
		return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. items[pos] })
	elseif mode == "login" then
		pos = pos % #items + 1
		return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, items[pos])
	end
	return wrk.format("GET", nil)
end

function response(status, headers, body)
	if quota > 0 then
		count = count + 1
		if count >= quota then
			wrk.thread:stop()
		end
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		e.status, e.connect + e.read + e.write + e.timeout))
end
