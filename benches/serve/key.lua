-- GET /auth with the benchmark key from $BENCH_KEY (never in wrk's argv).
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
