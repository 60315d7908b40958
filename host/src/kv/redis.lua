-- The store's operations on one namespace, each atomic in Redis. KEYS[1] is the hash of
-- values, KEYS[2] a sorted set of the keys (all scored 0, for listing by prefix in octet
-- order), KEYS[3] a sorted set of the keys that expire, scored by when (Unix ms by the
-- Redis server's clock, which every node shares), KEYS[4] the octets held. ARGV[1] is the
-- operation, ARGV[2] the key (or prefix); the rest depend on the operation. Every write
-- sweeps out a few expired keys first, so that they stop counting against the limits.

local values, names, expiries, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, key = ARGV[1], ARGV[2]

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function forget(k)
    local size = redis.call('HSTRLEN', values, k)
    if redis.call('HDEL', values, k) == 1 then
        redis.call('DECRBY', held, string.len(k) + size)
    end
    redis.call('ZREM', names, k)
    redis.call('ZREM', expiries, k)
end

-- Whether `k` has a value that has not expired (an expired one is removed).
local function live(k, now)
    local at = redis.call('ZSCORE', expiries, k)
    if at and tonumber(at) <= now then
        forget(k)
        return false
    end
    return redis.call('HEXISTS', values, k) == 1
end

local function sweep(now)
    for _, k in ipairs(redis.call('ZRANGEBYSCORE', expiries, '-inf', now, 'LIMIT', 0, 64)) do
        forget(k)
    end
end

-- Makes `k` expire `ttl` ms after `now`, or never for 0.
local function set_expiry(k, ttl, now)
    if ttl > 0 then
        redis.call('ZADD', expiries, now + ttl, k)
    else
        redis.call('ZREM', expiries, k)
    end
end

local function octets()
    return tonumber(redis.call('GET', held) or '0')
end

local now = now_ms()

if op == 'get' then
    if not live(key, now) then
        return false
    end
    return redis.call('HGET', values, key)
end

if op == 'list' then
    -- ARGV[3] offset (of keys, expired or not), ARGV[4] count. Returns the number of
    -- keys scanned (one more than count if there are more), then the live ones. Keys are
    -- UTF-8: no key holds the octet 0xFF.
    local count = tonumber(ARGV[4])
    local found = redis.call('ZRANGEBYLEX', names, '[' .. key, '(' .. key .. '\255', 'LIMIT', ARGV[3], count + 1)
    local page = {#found}
    for i, k in ipairs(found) do
        local at = redis.call('ZSCORE', expiries, k)
        if i <= count and not (at and tonumber(at) <= now) then
            table.insert(page, k)
        end
    end
    return page
end

sweep(now)

if op == 'delete' then
    forget(key)
    return 1
end

if op == 'expire' then
    -- ARGV[3] the time to live in ms, 0 for never.
    if not live(key, now) then
        return 0
    end
    set_expiry(key, tonumber(ARGV[3]), now)
    return 1
end

if op == 'set' then
    -- ARGV[3] the value, ARGV[4] the time to live in ms (0: never), ARGV[5] max keys,
    -- ARGV[6] max octets. Returns 1, or -1 when the keys, -2 when the octets would pass
    -- their limit.
    local exists = live(key, now)
    local keys = redis.call('ZCARD', names)
    if not exists then
        keys = keys + 1
    end
    if keys > tonumber(ARGV[5]) then
        return -1
    end
    local freed = 0
    if exists then
        freed = string.len(key) + redis.call('HSTRLEN', values, key)
    end
    local bytes = octets() - freed + string.len(key) + string.len(ARGV[3])
    if bytes > tonumber(ARGV[6]) then
        return -2
    end
    redis.call('HSET', values, key, ARGV[3])
    redis.call('ZADD', names, 0, key)
    set_expiry(key, tonumber(ARGV[4]), now)
    redis.call('SET', held, bytes)
    return 1
end

if op == 'increment' then
    -- ARGV[3] the delta, ARGV[4] max keys, ARGV[5] max octets. Returns {1, sum}, or
    -- {-1, ''} / {-2, ''} as for set, {-3, ''} when the value is not a number, {-4, ''}
    -- when the sum is past what Redis keeps (a signed 64-bit number).
    local exists = live(key, now)
    if exists and not string.match(redis.call('HGET', values, key), '^%d+$') then
        return {-3, ''}
    end
    if not exists and redis.call('ZCARD', names) + 1 > tonumber(ARGV[4]) then
        return {-1, ''}
    end
    local before = 0
    if exists then
        before = string.len(key) + redis.call('HSTRLEN', values, key)
    end
    local ok = pcall(redis.call, 'HINCRBY', values, key, ARGV[3])
    if not ok then
        return {-4, ''}
    end
    local bytes = octets() - before + string.len(key) + redis.call('HSTRLEN', values, key)
    if bytes > tonumber(ARGV[5]) then
        if exists then
            redis.call('HINCRBY', values, key, '-' .. ARGV[3])
        else
            redis.call('HDEL', values, key)
        end
        return {-2, ''}
    end
    redis.call('ZADD', names, 0, key)
    redis.call('SET', held, bytes)
    return {1, redis.call('HGET', values, key)}
end

return redis.error_reply('unknown operation ' .. op)
