-- Leases events of one address's count in one window, atomically, so that the nodes
-- together never let more through than the limit. KEYS[1] is the window's hash (address
-- -> events leased); ARGV: how long the hash is kept (ms), the address, the events wanted,
-- the limit, and the events the node let through on its own while it could not ask
-- (added first). Answers the events granted: 0 when the limit is reached.
local keep, address = ARGV[1], ARGV[2]
local wanted, limit, debt = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local used = debt > 0 and redis.call('HINCRBY', KEYS[1], address, debt)
    or tonumber(redis.call('HGET', KEYS[1], address) or '0')
local granted = math.max(0, math.min(wanted, limit - used))
if granted > 0 then
    redis.call('HINCRBY', KEYS[1], address, granted)
end
redis.call('PEXPIRE', KEYS[1], keep)
return granted
