-- kvmesh REST 90/10 read/write mix through nginx: 90% GET of a preloaded key, 10% PUT of a new key
local headers = H({ ["Content-Type"] = "application/json" })
request = function()
  if math.random(1, 10) == 1 then
    counter = counter + 1
    return wrk.format("PUT", "/kv", headers,
      '{"data":{"key":"bmix-' .. RUN .. '-' .. tid .. '-' .. counter .. '","value":"' .. VALUE .. '"}}')
  end
  return wrk.format("GET", "/kv?key=bget-" .. math.random(0, NKEYS - 1), H())
end
