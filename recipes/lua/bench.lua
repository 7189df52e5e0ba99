-- A small deterministic Lua workload: numbers, strings, tables, closures, coroutines and
-- error handling (pcall/error/xpcall are longjmps in the interpreter). Prints only values that
-- do not depend on the build (no addresses, no memory counts, no hash-order iteration), so the
-- native and wasm interpreters must print the same bytes.
--   lua bench.lua [SCALE]      (SCALE defaults to 1; the work grows linearly with it)
local scale = tonumber(arg and arg[1]) or 1

local function checksum(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 4294967296 end
  return string.format("%08x", h)
end

-- 1. Primes: sieve of Eratosthenes.
local function sieve(n)
  local composite, count, last = {}, 0, 0
  for i = 2, n do
    if not composite[i] then
      count, last = count + 1, i
      for j = i * i, n, i do composite[j] = true end
    end
  end
  return count, last
end
local n = 2000000 * scale
print("primes", n, sieve(n))

-- 2. Integer and float arithmetic.
local acc, x = 0, 0.5
for i = 1, 3000000 * scale do
  acc = (acc * 31 + i ~ (i >> 3)) & 0xffffffffffff
  x = x + math.sin(i) * math.sqrt(i) / (i + 1.5)
end
print("arith", acc, string.format("%.10f", x), 7 // 2, -7 // 2, 7 % -3, 2 ^ 53, math.maxinteger, 1e300 * 1e10)

-- 3. Strings: building, patterns, gsub, format, rep, utf8.
local parts = {}
for i = 1, 200000 * scale do
  parts[#parts + 1] = string.format("%d:%s", i, string.char(97 + i % 26):rep(i % 5 + 1))
end
local text = table.concat(parts, ",")
local words, digits = 0, 0
for w in text:gmatch("%a+") do words = words + #w end
for d in text:gmatch("%d+") do digits = digits + #d end
local swapped = text:gsub("(%d+):(%a+)", "%2=%1")
print("strings", #text, words, digits, checksum(swapped), checksum(text:upper():reverse()))
print("find", text:find("1000:"), text:match("(%d+):eeeee,"), ("x"):rep(3, "-"), utf8.char(72, 228, 8364, 128512), utf8.len("häll€"))

-- 4. Tables: sort with a Lua comparator, insert/remove, sorted keys.
math.randomseed(42)
local t = {}
for i = 1, 200000 * scale do t[i] = math.random(1, 1000000) end
table.sort(t, function(a, b) return a > b end)
local sum = 0
for i = 1, #t, 1000 do sum = sum + t[i] end
table.insert(t, 1, -1); table.remove(t); table.remove(t, 2)
print("sort", t[1], t[2], t[#t], #t, sum)
local dict = {}
for i = 1, 5000 do dict["k" .. (i * 7919 % 5003)] = i end
local keys = {}
for k in pairs(dict) do keys[#keys + 1] = k end
table.sort(keys)
print("dict", #keys, keys[1], keys[#keys], dict[keys[100]])

-- 5. Closures, varargs, metatables, goto.
local function counter()
  local c = 0
  return function(...) c = c + select("#", ...) + 1; return c end
end
local f, total = counter(), 0
for i = 1, 100000 * scale do total = f(i, nil, i) end
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({x = a.x + b.x, y = a.y + b.y}, V) end
V.__tostring = function(v) return string.format("(%g,%g)", v.x, v.y) end
local v = setmetatable({x = 0, y = 0}, V)
for i = 1, 100000 * scale do v = v + setmetatable({x = i, y = -i / 2}, V) end
local gotos = 0
for i = 1, 1000 do
  if i % 3 == 0 then goto continue end
  gotos = gotos + i
  ::continue::
end
print("closures", total, tostring(v), gotos)

-- 6. Coroutines: a generator pipeline.
local function gen(limit)
  return coroutine.wrap(function()
    for i = 1, limit do coroutine.yield(i) end
  end)
end
local function filter(pred, g)
  return coroutine.wrap(function()
    for item in g do if pred(item) then coroutine.yield(item) end end
  end)
end
local csum, ccount = 0, 0
for item in filter(function(i) return i % 3 == 0 or i % 5 == 0 end, gen(300000 * scale)) do
  csum, ccount = csum + item, ccount + 1
end
print("coroutines", ccount, csum)

-- 7. Errors: pcall/error with strings and tables, nested pcall, errors thrown deep in the stack,
-- from C functions and through table.sort's comparator, xpcall with a handler, error in coroutine.
local function deep(k)
  if k == 0 then error({code = 42}) end
  return deep(k - 1) + 1
end
local caught, msgs = 0, {}
for i = 1, 20000 * scale do
  local ok, e = pcall(deep, i % 50)
  if not ok and type(e) == "table" and e.code == 42 then caught = caught + 1 end
  local ok2, e2 = pcall(error, "plain " .. (i % 7), 0)
  if i <= 3 then msgs[#msgs + 1] = e2 end
  local ok3 = pcall(function()
    local inner_ok, inner = pcall(error, "inner")
    assert(not inner_ok and inner:find("inner"))
    error("outer", 2)
  end)
  assert(not ok2 and not ok3)
end
local ok, e = pcall(string.rep)
msgs[#msgs + 1] = e
ok, e = pcall(function() local z = nil; return z.field end)
msgs[#msgs + 1] = e
ok, e = pcall(table.sort, {3, 1, 2}, function(a, b) error("cmp " .. a .. b) end)
msgs[#msgs + 1] = e
ok, e = xpcall(function() return 1 + {} end, function(m) return "handled: " .. m end)
msgs[#msgs + 1] = e
local co = coroutine.create(function() coroutine.yield(1); error("in coroutine") end)
local r1 = {coroutine.resume(co)}
local r2 = {coroutine.resume(co)}
msgs[#msgs + 1] = tostring(r1[1]) .. " " .. tostring(r1[2]) .. " / " .. tostring(r2[1]) .. " " .. r2[2]
ok, e = pcall(load, "return 1 +")
msgs[#msgs + 1] = tostring(ok) .. " " .. tostring(e)
local chunk, perr = load("return 1 +", "=chunk")
msgs[#msgs + 1] = tostring(chunk) .. " " .. perr
ok, e = pcall(function() local s = 0; for i = 1, 1e9 do s = s + i; if i == 1000 then error(s) end end end)
msgs[#msgs + 1] = tostring(e)
ok, e = pcall(function() local function rec() return 1 + rec() end; return rec() end)
msgs[#msgs + 1] = tostring(ok) .. " " .. (e:match("stack overflow") or e)
print("errors", caught)
for _, m in ipairs(msgs) do print("", m) end

-- 8. string.format corner cases and number parsing.
print("format", string.format("%5.1f|%-6d|%x|%q|%g|%g|%.3e", 3.14159, 42, 255, "a\nb\0c", 1e20, 0.1, 123456.789),
  tonumber("0x1p4"), tonumber("  12  "), tonumber("1e2"), math.tointeger(3.0), 3 | 0, 10 / 4, math.type(1), math.type(1.0))
