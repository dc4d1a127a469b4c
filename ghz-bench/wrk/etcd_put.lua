-- etcd JSON gateway put: a new key on every request, the same 256-byte value (base64 as the gateway wants)
local headers = { ["Content-Type"] = "application/json" }
local value64
request = function()
  value64 = value64 or b64(VALUE)
  counter = counter + 1
  return wrk.format("POST", "/v3/kv/put", headers,
    '{"key":"' .. b64("eput-" .. RUN .. "-" .. tid .. "-" .. counter) .. '","value":"' .. value64 .. '"}')
end
