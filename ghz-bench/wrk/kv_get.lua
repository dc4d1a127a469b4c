-- kvmesh REST GET through nginx: a random one of the preloaded keys bget-0 .. bget-(NKEYS-1)
request = function()
  return wrk.format("GET", "/kv?key=bget-" .. math.random(0, NKEYS - 1), H())
end
