-- etcd JSON gateway range: a random one of the preloaded keys eget-0 .. eget-(NKEYS-1) (serializable=false: linearizable, etcd's default)
local headers = { ["Content-Type"] = "application/json" }
local bodies
request = function()
  if not bodies then
    bodies = {}
    for i = 0, NKEYS - 1 do bodies[i] = '{"key":"' .. b64("eget-" .. i) .. '"}' end
  end
  return wrk.format("POST", "/v3/kv/range", headers, bodies[math.random(0, NKEYS - 1)])
end
