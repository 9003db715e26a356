-- wrk script: POST the payload to @connections/{id}, cycling over the benchmark's clients.
local ids = {}
local payload = os.getenv("JOBCAST_BENCH_PAYLOAD")

function init(args)
  for line in io.lines(os.getenv("JOBCAST_BENCH_IDS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  counter = math.random(#ids)
end

function request()
  counter = counter % #ids + 1
  return wrk.format("POST", "/@connections/" .. ids[counter], {["Content-Type"] = "application/json"}, payload)
end
