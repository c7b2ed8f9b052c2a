// The Lua scripts behind limits, budgets and their leases. Loaded once per connection by
// ioredis (defineCommand: EVALSHA, falling back to EVAL — which loads the script — on NOSCRIPT).
//
// ADMIT decides everything it is given atomically: every rate limit, every budget and the
// choice of credential either all pass and are all taken, or nothing changes. An admitted
// decision may also grant lease units on top (the worker then admits that many requests
// locally, see src/limits/leased-admission.ts).
//
//   KEYS = [ rate-limit TATs … | budget counters … | credential TATs … ]
//   ARGV = [ now_ms or '' (use Redis TIME), nRate, nBudget, nCredential, cost, budgetTtlSeconds,
//            nRate × (intervalMs, burst, want), nBudget × (limit, want),
//            nCredential × (intervalMs, burst, want) ]
//            (a credential interval of 0 means it has no quota; want 0 asks for no lease)
//
// Rate limits are GCRA: a TAT (theoretical arrival time) per subject; a request fits if its
// new TAT is at most burst × interval ahead of now. A lease of g intervals moves the TAT g
// intervals further. Reply: five numbers, then one grant per rate limit, budget and credential,
// then each rate limit's room as the request left it (before grants):
//   { 0, chosenCredential (1-based, 0 = none asked), tightestIndex, tightestRemaining, tightestResetMs, … }
//   { 1, limitIndex, retryMs, 0, tatAheadMs, 0 … }      rate limited
//   { 2, budgetIndex, tightestIndex, tightestRemaining, tightestResetMs, 0 … }   budget exceeded
//   { 3, tightestIndex, retryMs, tightestRemaining, tightestResetMs, 0 … }      every candidate
//                                                  credential's quota spent
// (the tightest limit's figures always as if this request had been taken, without grants; a
// refusal takes nothing, and the decoder adds it back)
//
// A grant is at most 1/32 of a budget's remainder and 1/8 of a rate limit's room, none under 2
// units is made, and no budget with under 1,024 units left is leased at all (LEASE_SHARE,
// MIN_GRANT and BUDGET_LEASE_FLOOR in src/limits/admission.ts): near the edge every request is
// one exact decision again.
const PRELUDE = `
local clock = nil
local function now_ms (arg)
  local now = tonumber(arg)
  if now ~= nil then return now end
  if clock == nil then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

-- a budget's grant is a whole number of its requests' cost (step), so none is left over
local function lease (want, room, share, step)
  if want <= 0 or (share == 32 and room < 1024) then return 0 end
  local g = math.floor(room / share)
  if g > want then g = want end
  if step > 1 then g = g - g % step end
  if g < 2 then return 0 end
  return g
end

local function refusal (status, a, b, c, d, n)
  local out = { status, a, b, c, d }
  for j = 1, n do out[5 + j] = 0 end
  return out
end
`

// One decision, its keys from KEYS[k + 1] and its arguments from ARGV[a + 1] on; returns the
// reply and how many keys and arguments it used, so a batch can walk several decisions.
const DECIDE = `
local function decide (k, a)
  local now = now_ms(ARGV[a + 1])
  local nR, nB, nC = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local nK, nA = nR + nB + nC, 6 + 3 * nR + 2 * nB + 3 * nC
  local nOut = 2 * nR + nB + nC
  local cost, ttl = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local p = a + 7
  local tats, rooms, intervals, wants = {}, {}, {}, {}
  local tightIndex, tightRemaining, tightReset = 0, -1, 0
  for i = 1, nR do
    local interval, burst = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
    wants[i] = tonumber(ARGV[p + 2])
    p = p + 3
    local tat = tonumber(redis.call('GET', KEYS[k + i])) or now
    if tat < now then tat = now end
    local nextTat = tat + interval
    local over = nextTat - now - burst * interval
    if over > 0 then return refusal(1, i, over, 0, tat - now, nOut), nK, nA end
    tats[i], intervals[i] = nextTat, interval
    local remaining = math.floor((burst * interval - (nextTat - now)) / interval)
    rooms[i] = remaining
    if tightRemaining < 0 or remaining < tightRemaining then
      tightIndex, tightRemaining, tightReset = i, remaining, nextTat - now
    end
  end
  local limits, useds, budgetWants = {}, {}, {}
  for i = 1, nB do
    limits[i], budgetWants[i] = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
    p = p + 2
    useds[i] = tonumber(redis.call('GET', KEYS[k + nR + i])) or 0
    if useds[i] + cost > limits[i] then return refusal(2, i, tightIndex, tightRemaining, tightReset, nOut), nK, nA end
  end
  local chosen, chosenTat, chosenInterval, chosenRoom, chosenWant, soonest = 0, 0, 0, 0, 0, -1
  for i = 1, nC do
    local interval, burst, want = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
    p = p + 3
    if interval == 0 then
      chosen = i
      break
    end
    local tat = tonumber(redis.call('GET', KEYS[k + nR + nB + i])) or now
    if tat < now then tat = now end
    local nextTat = tat + interval
    local over = nextTat - now - burst * interval
    if over <= 0 then
      chosen, chosenTat, chosenInterval, chosenWant = i, nextTat, interval, want
      chosenRoom = math.floor((burst * interval - (nextTat - now)) / interval)
      break
    end
    if soonest < 0 or over < soonest then soonest = over end
  end
  if nC > 0 and chosen == 0 then return refusal(3, tightIndex, soonest, tightRemaining, tightReset, nOut), nK, nA end
  local out = { 0, chosen, tightIndex, tightRemaining, tightReset }
  for i = 1, nR do
    local g = lease(wants[i], rooms[i], 8, 1)
    local tat = tats[i] + g * intervals[i]
    redis.call('SET', KEYS[k + i], tat, 'PX', math.ceil(tat - now) + 1000)
    out[5 + i] = g
  end
  for i = 1, nB do
    local g = lease(budgetWants[i], limits[i] - useds[i] - cost, 32, cost)
    local take = cost + g
    -- the counter's lifetime is set once, when this month's first request creates it
    if redis.call('INCRBY', KEYS[k + nR + i], take) == take then redis.call('EXPIRE', KEYS[k + nR + i], ttl) end
    out[5 + nR + i] = g
  end
  for i = 1, nC do out[5 + nR + nB + i] = 0 end
  if chosenTat > 0 then
    local g = lease(chosenWant, chosenRoom, 8, 1)
    chosenTat = chosenTat + g * chosenInterval
    redis.call('SET', KEYS[k + nR + nB + chosen], chosenTat, 'PX', math.ceil(chosenTat - now) + 1000)
    out[5 + nR + nB + chosen] = g
  end
  for i = 1, nR do out[5 + nR + nB + nC + i] = rooms[i] end
  return out, nK, nA
end
`

export const ADMIT_LUA = PRELUDE + DECIDE + `
return (decide(0, 0))
`

// ADMIT_BATCH takes many decisions in one call (one round trip and one command for every
// decision a worker collects in one event-loop turn; single Redis only, since a batch mixes
// hash slots). Each decision is as atomic as ADMIT, and they are applied in order.
//   KEYS = every decision's keys, in order; ARGV = [ n, every decision's arguments, in order ]
//   reply = the n replies, flattened
export const ADMIT_BATCH_LUA = PRELUDE + DECIDE + `
local out, k, a = {}, 0, 1
for _ = 1, tonumber(ARGV[1]) do
  local reply, nK, nA = decide(k, a)
  for j = 1, #reply do out[#out + 1] = reply[j] end
  k, a = k + nK, a + nA
end
return out
`

// TOP_UP grants lease units outside any request, each subject on its own (a subject with no
// room gets 0; nothing else is refused).
//   KEYS = [ subject … ]
//   ARGV = [ now_ms or '', per subject: kind (1 rate, 2 budget), a, b, want, step ]
//          rate: a = intervalMs, b = burst; budget: a = monthly limit, b = counter TTL seconds;
//          step: grants are a whole number of it (a budget's cost per request; 1 for rate limits)
//   reply = per subject: granted, room left after the grant (rate limits; 0 for budgets)
export const TOP_UP_LUA = PRELUDE + `
local now = now_ms(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local p = 2 + (i - 1) * 5
  local kind, x, y, want, step = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])
  local g, left = 0, 0
  if kind == 1 then
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local room = math.floor((y * x - (tat - now)) / x)
    g = lease(want, room, 8, 1)
    if g > 0 then
      tat = tat + g * x
      redis.call('SET', KEYS[i], tat, 'PX', math.ceil(tat - now) + 1000)
    end
    left = room - g
  else
    g = lease(want, x - (tonumber(redis.call('GET', KEYS[i])) or 0), 32, step)
    if g > 0 and redis.call('INCRBY', KEYS[i], g) == g then redis.call('EXPIRE', KEYS[i], y) end
  end
  out[#out + 1] = g
  out[#out + 1] = left
end
return out
`

// GIVE_BACK returns the unspent units of leases: budget units to their month's counter (never
// below zero, never creating a counter that expired meanwhile), rate room to its limit (the TAT
// moves back that many intervals, never before now).
//   KEYS = [ subject … ]; ARGV = [ now_ms or '', per subject: kind (1 rate, 2 budget), units, intervalMs ]
export const GIVE_BACK_LUA = PRELUDE + `
local now = now_ms(ARGV[1])
for i = 1, #KEYS do
  local p = 2 + (i - 1) * 3
  local kind, units = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
  if kind == 1 then
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat ~= nil and tat > now then
      local back = tat - units * tonumber(ARGV[p + 2])
      if back < now then back = now end
      redis.call('SET', KEYS[i], back, 'PX', math.ceil(back - now) + 1000)
    end
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    local left = redis.call('DECRBY', KEYS[i], units)
    if left < 0 then redis.call('INCRBY', KEYS[i], -left) end
  end
end
return 0
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
