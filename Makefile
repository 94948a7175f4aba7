# Every target bootstraps .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
USERS ?= 2000
SCALE ?= 100000
BENCH_DATABASE_URL ?=
PYTEST_ARGS ?=

.PHONY: venv demo test browser lint format bench clean install-check

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/coursedesk demo --host $(HOST) --port $(PORT) --users $(USERS)

test: $(STAMP) browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium; install it when we may, else they skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
				|| echo "chromium could not be installed: browser tests will be skipped"; \
		else \
			echo "no chromium and no way to install it: browser tests will be skipped"; \
		fi; \
	}

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# Seeding speed at SCALE users, the analytics and users routes against the original design's
# SQL (on BENCH_DATABASE_URL when given: seeded once, reused after), then the broadcast
# pipeline (rate, throughput, audience, RSS) and media broadcasts (a photo, a 50 MB video,
# an album of ten: rate, uploads per file, RSS), then what query monitoring costs and the
# answer cache saves, then a broadcast's outcome beside its control group (100,000
# recipients), then what the change capture (by triggers, then from the WAL) and the fold
# cost the bot's writes, then how fast a tracked link's /r/{token} answers.
# The package alone in a fresh virtual environment: --help and db upgrade must work.
install-check:
	PYTHON=$(PYTHON) .ci/install-check

bench: $(STAMP)
	$(BIN)/python bench/seed_bench.py --users $(SCALE)
	$(BIN)/python bench/analytics_bench.py --users $(SCALE) \
		$(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	$(BIN)/python bench/broadcast_bench.py --users $(SCALE)
	$(BIN)/python bench/media_bench.py
	$(BIN)/python bench/monitoring_bench.py
	$(BIN)/python bench/outcome_bench.py --users $(SCALE) \
		$(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	$(BIN)/python bench/bot_writes.py --capture triggers
	$(BIN)/python bench/bot_writes.py --capture wal
	$(BIN)/python bench/capture_pgbench.py
	$(BIN)/python bench/replica_bench.py --users $(SCALE)
	$(BIN)/python bench/redirect_bench.py

clean:
	rm -rf $(VENV) .coursedesk .pytest_cache .mypy_cache .ruff_cache
