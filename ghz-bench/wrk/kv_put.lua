-- kvmesh REST PUT through nginx: a new key on every request, 256-byte value, acknowledged after the broker's confirm
local headers = H({ ["Content-Type"] = "application/json" })
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/kv", headers,
    '{"data":{"key":"bput-' .. RUN .. '-' .. tid .. '-' .. counter .. '","value":"' .. VALUE .. '"}}')
end
