-- kvmesh REST List: first page (50 entries) of keys under a random prefix bget-<digit> (about 111 keys each)
request = function()
  return wrk.format("GET", "/kv/all?prefix=bget-" .. math.random(1, 9) .. "&pageSize=50", H())
end
