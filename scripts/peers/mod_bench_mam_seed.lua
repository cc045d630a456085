-- mod_bench_mam_seed: seeds one user's archive for the MAM run of
-- `make bench-peers`, through Prosody's own storage API, so that the
-- messages land in whatever archive store mod_mam uses (the memory store
-- there) exactly as mod_mam would have appended them.
--
-- bench_mam_seed names a file of tab-separated lines written by
-- scripts/peers/mamseed.py (user, partner, out|in, seconds, id, body);
-- when the file does not exist the module does nothing. When done it
-- writes the number of messages to bench_mam_seed .. ".done", which the
-- script waits for.
local st = require "util.stanza";

local path = module:get_option_string("bench_mam_seed");
local file = path and io.open(path);
if not file then
	return;
end

local archive = module:open_store("archive", "archive");
local host = module.host;
local n = 0;
for line in file:lines() do
	local user, with, dir, when, id, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$");
	if not user then
		error(("%s:%d: not a seed line"):format(path, n + 1));
	end
	local me = user .. "@" .. host;
	local from, to = me .. "/load", with;
	if dir == "in" then
		from, to = with .. "/load", me;
	end
	local msg = st.message({ from = from, to = to, type = "chat", id = id }):text_tag("body", body);
	assert(archive:append(user, nil, msg, tonumber(when), with));
	n = n + 1;
end
file:close();

local done = assert(io.open(path .. ".done", "w"));
done:write(n, "\n");
done:close();
module:log("info", "seeded %d messages from %s", n, path);
