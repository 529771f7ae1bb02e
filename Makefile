.PHONY: run test lint bench screenshots

run:  ## set up and serve GridMarket on http://127.0.0.1:8000
	bash scripts/run.sh

test:  ## run the whole test suite (real PostGIS + Redis)
	bash scripts/test.sh

lint:
	.venv/bin/python -m ruff check geo_core api jobs tests

bench:
	bash scripts/bootstrap.sh && .venv/bin/python bench/login_latency.py

screenshots:
	node scripts/screenshots.mjs --base http://127.0.0.1:8000 --user admin --password Gm@2026demo --out docs/screenshots
