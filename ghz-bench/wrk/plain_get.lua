-- ceilings: GET / (nginx `return 200`, Envoy direct_response)
request = function() return wrk.format("GET", "/") end
