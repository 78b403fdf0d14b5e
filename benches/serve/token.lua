-- GET /auth with an access token from $BENCH_TOKEN (never in wrk's argv).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
