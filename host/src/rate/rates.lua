-- Adds one node's new events to one window's shared counts, atomically, and answers each
-- address's total of all nodes. KEYS[1] is the window's hash (address -> count); ARGV[1]
-- how long it is kept (ms); then pairs of address and count.
local totals = {}
for i = 2, #ARGV, 2 do
    totals[#totals + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return totals
