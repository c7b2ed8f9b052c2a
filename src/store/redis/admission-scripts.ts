// The Lua scripts behind limits and budgets. Loaded once per connection by ioredis
// (defineCommand: EVALSHA, falling back to EVAL — which loads the script — on NOSCRIPT).
//
// ADMIT decides everything it is given atomically: every rate limit, every budget and the
// choice of credential either all pass and are all taken, or nothing changes.
//
//   KEYS = [ rate-limit TATs … | budget counters … | credential TATs … ]
//   ARGV = [ now_ms or '' (use Redis TIME), nRate, nBudget, nCredential, cost, budgetTtlSeconds,
//            nRate × (intervalMs, burst), nBudget × limit, nCredential × (intervalMs, burst) ]
//            (a credential interval of 0 means it has no quota)
//
// Rate limits are GCRA: a TAT (theoretical arrival time) per subject; a request fits if its
// new TAT is at most burst × interval ahead of now. Reply:
//   { 0, chosenCredential (1-based, 0 = none asked), tightestIndex, tightestRemaining, tightestResetMs }
//   { 1, limitIndex, retryMs, 0, tatAheadMs }      rate limited
//   { 2, budgetIndex, tightestIndex, tightestRemaining, tightestResetMs }   budget exceeded
//   { 3, tightestIndex, retryMs, tightestRemaining, tightestResetMs }      every candidate
//                                                  credential's quota spent
// (the tightest limit's figures always as if this request had been taken; a refusal takes
// nothing, and the decoder adds it back)
// One decision, its keys from KEYS[k + 1] and its arguments from ARGV[a + 1] on; returns the
// reply and how many keys and arguments it used, so a batch can walk several decisions.
const DECIDE = `
local function decide (k, a)
  local now = tonumber(ARGV[a + 1])
  if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  local nR, nB, nC = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local nK, nA = nR + nB + nC, 6 + 2 * nR + nB + 2 * nC
  local cost, ttl = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local p = a + 7
  local tats = {}
  local tightIndex, tightRemaining, tightReset = 0, -1, 0
  for i = 1, nR do
    local interval, burst = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
    p = p + 2
    local tat = tonumber(redis.call('GET', KEYS[k + i])) or now
    if tat < now then tat = now end
    local nextTat = tat + interval
    local over = nextTat - now - burst * interval
    if over > 0 then return { 1, i, over, 0, tat - now }, nK, nA end
    tats[i] = nextTat
    local remaining = math.floor((burst * interval - (nextTat - now)) / interval)
    if tightRemaining < 0 or remaining < tightRemaining then
      tightIndex, tightRemaining, tightReset = i, remaining, nextTat - now
    end
  end
  for i = 1, nB do
    local limit = tonumber(ARGV[p])
    p = p + 1
    local used = tonumber(redis.call('GET', KEYS[k + nR + i])) or 0
    if used + cost > limit then return { 2, i, tightIndex, tightRemaining, tightReset }, nK, nA end
  end
  local chosen, chosenTat, soonest = 0, 0, -1
  for i = 1, nC do
    local interval, burst = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
    p = p + 2
    if interval == 0 then
      chosen = i
      break
    end
    local key = KEYS[k + nR + nB + i]
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local nextTat = tat + interval
    local over = nextTat - now - burst * interval
    if over <= 0 then
      chosen, chosenTat = i, nextTat
      break
    end
    if soonest < 0 or over < soonest then soonest = over end
  end
  if nC > 0 and chosen == 0 then return { 3, tightIndex, soonest, tightRemaining, tightReset }, nK, nA end
  for i = 1, nR do
    redis.call('SET', KEYS[k + i], tats[i], 'PX', math.ceil(tats[i] - now) + 1000)
  end
  for i = 1, nB do
    -- the counter's lifetime is set once, when this month's first request creates it
    if redis.call('INCRBY', KEYS[k + nR + i], cost) == cost then redis.call('EXPIRE', KEYS[k + nR + i], ttl) end
  end
  if chosenTat > 0 then
    redis.call('SET', KEYS[k + nR + nB + chosen], chosenTat, 'PX', math.ceil(chosenTat - now) + 1000)
  end
  return { 0, chosen, tightIndex, tightRemaining, tightReset }, nK, nA
end
`

export const ADMIT_LUA = DECIDE + `
return (decide(0, 0))
`

// ADMIT_BATCH takes many decisions in one call (one round trip and one command for every
// decision a worker collects in one event-loop turn; single Redis only, since a batch mixes
// hash slots). Each decision is as atomic as ADMIT, and they are applied in order.
//   KEYS = every decision's keys, in order; ARGV = [ n, every decision's arguments, in order ]
//   reply = the n five-number replies, flattened
export const ADMIT_BATCH_LUA = DECIDE + `
local out, k, a = {}, 0, 1
for _ = 1, tonumber(ARGV[1]) do
  local reply, nK, nA = decide(k, a)
  for j = 1, 5 do out[#out + 1] = reply[j] end
  k, a = k + nK, a + nA
end
return out
`

// REFUND gives reserved budget units back (never below zero, never creating a counter that
// expired meanwhile) and, on Redis Cluster where the owner's part was decided on its own,
// the rate-limit room the owner's part took (its TAT moves back one interval, not before now).
//   KEYS = [ budget counters … | rate-limit TATs … ]
//   ARGV = [ cost, nBudget, now_ms or '', nRate × intervalMs ]
export const REFUND_LUA = `
local cost, nB = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, nB do
  if cost > 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    local left = redis.call('DECRBY', KEYS[i], cost)
    if left < 0 then redis.call('INCRBY', KEYS[i], -left) end
  end
end
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
for i = nB + 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat ~= nil then
    local back = tat - tonumber(ARGV[4 + i - nB - 1])
    if back < now then back = now end
    redis.call('SET', KEYS[i], back, 'PX', math.ceil(back - now) + 1000)
  end
end
return 0
`
