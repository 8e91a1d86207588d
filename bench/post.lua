-- wrk script: POST the same Alertmanager payload (bench/payload.json) every time.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("REMEDIATE_BENCH_PAYLOAD") or "bench/payload.json", "r")
wrk.body = f:read("*a")
f:close()
