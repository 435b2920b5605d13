# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install aiweb (no dev tools), train the demo models, serve
#                 on :8000 (make demo PORT=8080 for another port)
#   make test   - create .venv, install aiweb with its dev tools, lint, type-check, test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# One stamp per install set, named after pyproject.toml's digest: `make demo` installs
# aiweb alone (what it runs), `make test` adds the dev extra (linters, pytest, PyTorch for
# the embedding tests). They share .venv: the dev install also stamps the demo's (it holds
# it), so `make demo` after `make test` installs and removes nothing.
DIGEST := $(shell sha256sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.installed-dev-$(DIGEST)
DEMO_STAMP := $(VENV)/.installed-demo-$(DIGEST)
# Use the shared datasets when they sit beside the project (as on CI); else aiweb downloads.
SHARED_DATA := $(abspath $(wildcard ../shared/data))
export AIWEB_DATA_HOME ?= $(SHARED_DATA)

.PHONY: install install-demo demo serve test lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	rm -f $(VENV)/.installed-demo-*
	touch $(DEMO_STAMP)

# aiweb with its dev tools (what make test, lint and the benchmarks run)
install: $(STAMP)

# aiweb alone: what make demo and make serve run
install-demo: $(DEMO_STAMP)

demo: install-demo
	$(BIN)/aiweb demo --port $(PORT)

serve: install-demo
	$(BIN)/aiweb serve --port $(PORT)

# ruff, then the layer contracts of docs/architecture.md (import-linter, [tool.importlinter])
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two pytest-xdist workers; a test file runs whole on one worker (its module fixtures
# and the services it starts stay together). PYTEST_WORKERS=0 runs in one process.
# Tests marked `serial` (schemathesis' per-operation items, which xdist would fold into
# one) run afterwards in one process.
PYTEST_WORKERS ?= 2
test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25 -m "not serial and not guides and not deploy and not e2e and not slow and not postgres"
	$(BIN)/pytest --durations=10 -m "serial and not e2e and not slow"

# The PostgreSQL variants of the tests that run on every database (marker postgres, set
# by the database_url fixture when AIWEB_TEST_DATABASE_URL is set): their own stage of
# .ci/run after `make test`, which they would take past 20 minutes.
.PHONY: test-postgres
test-postgres: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25 -m "postgres and not serial and not guides and not deploy and not e2e and not slow"

# Tests that start real `aiweb serve` processes (workers, sockets, browsers: marker e2e)
# and those that train on a full dataset (marker slow): their own stage of .ci/run after
# `make test`, which they would take past 20 minutes.
.PHONY: test-e2e
test-e2e: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 -m "(e2e or slow) and not guides and not deploy and not serial"

# The README and every guide in docs/ run top to bottom against a live server (needs jq);
# its own stage of .ci/run after `make test`, which it would take past 20 minutes.
.PHONY: test-guides
test-guides: install
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=20 -m guides

# The container image, the compose stack brought up for real and the Kubernetes manifests
# (tests/deploy, needs a running Docker daemon, debootstrap and Compose v2, which .ci/run
# installs; its own stage of .ci/run). The image's base and wheels, the rootfs of the
# compose stand-ins and the checkers' virtualenv are cached in ~/.cache/aiweb-deploy.
.PHONY: test-deploy
test-deploy: install
	$(BIN)/pytest -m deploy -p no:randomly -s tests/deploy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Benchmark: batch-predict job vs the model's predict_proba (results in docs/benchmarks.md)
.PHONY: bench-jobs
bench-jobs: install
	$(BIN)/python -m bench.batch_predict

# Benchmarks: aiweb serve vs the tutorial FastAPI app and in-process predict_proba, driven by
# wrk; then the text-classification runtimes (scikit-learn, onnxruntime) in process. wrk (Debian's wrk package; installed here when missing and running as root).
# Options: make bench BENCH_ARGS='--duration 5 --markdown /tmp/serving.md'
.PHONY: bench
bench: install
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "wrk is missing: apt-get install -y wrk"; \
	    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
	  else \
	    echo "bench needs wrk (Debian's wrk package): sudo apt-get install wrk" >&2; exit 2; \
	  fi; }
	$(BIN)/python -m bench.serving $(BENCH_ARGS)
	$(BIN)/python -m bench.runtimes

# Benchmark: recommendations over HTTP at concurrency 8 (MovieLens; needs wrk, see `bench`)
.PHONY: bench-recommend
bench-recommend: install
	$(BIN)/python -m bench.recommend

# Benchmark: sentence embeddings over HTTP (32 clients x 1 sentence, micro-batched) vs
# onnxruntime called directly with batches of 32 (needs wrk). Options as BENCH_ARGS.
.PHONY: bench-embed
bench-embed: install
	$(BIN)/python -m bench.embed $(BENCH_ARGS)

# Benchmark: TF-IDF vs MiniLM features (SST-2, airline tweets, Banking77) and CLINC150
# intent detection with out-of-scope; needs the embedding model (see bench/features.py)
.PHONY: bench-features
bench-features: install
	$(BIN)/python -m bench.features --check $(BENCH_ARGS)

# Benchmark: tfidf, minilm, stacked and finetune features on SST-2 dev, across domains
# (airline tweets, GoEmotions dev), Banking77 and CLINC150, and each SST-2 model through
# aiweb serve (p50 at c=1, texts/s at c=32, RSS); hours (finetune trains up to 30 min per
# dataset). Options: make bench-quality BENCH_ARGS='--export-dir DIR --check'
.PHONY: bench-quality
bench-quality: install
	$(BIN)/python -m bench.quality $(BENCH_ARGS)

# Benchmark: tabular models (aiweb.tabular) against LightGBM on the same splits of Adult,
# German Credit, Bank Marketing and Wine Quality (results in docs/benchmarks.md)
.PHONY: bench-tabular
bench-tabular: install
	$(BIN)/python -m bench.tabular $(BENCH_ARGS)

# Benchmark: entity extraction (aiweb.entities) against a CRF baseline on the official test
# splits of WNUT17 (default) and SkillSpan; exit 1 below the bar (results in docs/entities.md)
# Options: make bench-entities BENCH_ARGS='--dataset skillspan'
.PHONY: bench-entities
bench-entities: install
	$(BIN)/python -m bench.entities_quality $(BENCH_ARGS)

# Benchmark: faces and people per image on AIWEB_DATA_HOME/images, OCR character error rate
# on rendered SST-2 sentences and a scanned-like page (in process; docs/benchmarks.md)
.PHONY: bench-vision
bench-vision: install
	$(BIN)/python -m bench.vision $(BENCH_ARGS)

# Benchmark: faces and OCR through POST /v1/models/{name}/predict at concurrency 1 and 4 vs
# the library in process (bar: overhead <= 15% at c=4), and the server's RSS with faces,
# people and ocr loaded (aiweb serve in a temporary home; ~10 min on 2 quiet cores).
# Options: make bench-vision-http BENCH_ARGS='--http-sentences 20 --check'
.PHONY: bench-vision-http
bench-vision-http: install
	$(BIN)/python -m bench.vision --http $(BENCH_ARGS)

# Benchmark: the support assistant through its API (issue #24): CLINC150 val as turns vs
# the intents model's own answers, a Banking77 help collection's share of out-of-scope
# turns, turn latency at concurrency 16 over REST and WebSocket (results in
# docs/benchmarks.md; the bench home is built once and reused).
# Options: make bench-assistant BENCH_ARGS='--home /tmp/assistant-home --markdown /tmp/a.md'
.PHONY: bench-assistant
bench-assistant: install
	$(BIN)/python -m bench.assistant --check $(BENCH_ARGS)

# Benchmark: entity extraction served through the API — entities/s at concurrency 1, 8, 64
# and 16 texts per request, against the model's in-process extract (needs wrk; results in
# docs/benchmarks.md). Options: BENCH_ARGS='--home /tmp/ent-home' (trains once, reused)
.PHONY: bench-entities-serving
bench-entities-serving: install
	$(BIN)/python -m bench.entities_serving $(BENCH_ARGS)

# Benchmark: search collections — p99 at concurrency 4 over HTTP (vector, keyword, hybrid;
# HNSW and the exact baseline), ANN recall@10 and banking77 retrieval quality on a 50,000-
# document collection built once under $AIWEB_HOME/bench/search (needs wrk). BENCH_ARGS.
.PHONY: bench-search
bench-search: install
	$(BIN)/python -m bench.search $(BENCH_ARGS)

# Benchmark: start-up of the command line (aiweb --help, --version, models list on a fresh
# home), median and max of 5 runs against the 0.5 s bar (results in docs/benchmarks.md)
.PHONY: bench-cli
bench-cli: install
	$(BIN)/python -m bench.cli_startup $(BENCH_ARGS)

# Benchmark: the prediction log keeps up with the served rate — rows/s written on SQLite and
# PostgreSQL (a fresh schema in AIWEB_TEST_DATABASE_URL) fed 4,000 rows/s for 60 s, vs the
# raw INSERT rate, then aiweb serve at c=64 (needs wrk). Exit 1 on a dropped row. BENCH_ARGS.
.PHONY: bench-prediction-log
bench-prediction-log: install
	$(BIN)/python -m bench.prediction_log $(BENCH_ARGS)

# Benchmark: explanations — faithfulness (ERASER comprehensiveness) and speed of aiweb's exact
# linear explainer vs LIME and SHAP on SST-2 dev with the demo sentiment model, and occlusion
# on a MiniLM intent model (Banking77; needs the embedding model, see bench/explain.py).
# Exit 1 when a bar fails. Options: make bench-explain BENCH_ARGS='--export-dir DIR'
.PHONY: bench-explain
bench-explain: install
	$(BIN)/python -m bench.explain $(BENCH_ARGS)

# Soak: aiweb serve --workers 2 under a mixed load at c=64 for 600 s (needs wrk): zero errors,
# flat RSS per worker after the warm-up; exit 1 otherwise. Results under --out.
# Options: make bench-soak BENCH_ARGS='--duration 60 --out /tmp/soak --home /tmp/soak-home'
.PHONY: bench-soak
bench-soak: install
	$(BIN)/python -m bench.soak $(BENCH_ARGS)

# Benchmark: the same classifier through /v1 REST, /v2 REST (Open Inference Protocol; wrk)
# and gRPC (a grpc.aio load loop in its own process) from one aiweb serve --workers 1
# --grpc-port, at concurrency 1 and 64 (needs wrk). Exit 1 when gRPC is more than 10% slower
# than /v1 REST (requests/s or p50). Options: make bench-interop BENCH_ARGS='--duration 5'
.PHONY: bench-interop
bench-interop: install
	@command -v h2load >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -q nghttp2-client >/dev/null \
	       || { apt-get update -q >/dev/null && apt-get install -y -q nghttp2-client >/dev/null; }; }; } \
	  || echo "h2load missing (Debian's nghttp2-client): gRPC is driven by the Python loop" >&2
	$(BIN)/python -m bench.interop $(BENCH_ARGS)

# Benchmark: predict p50/p99 at concurrency 8 and 64 with no rollout, a 50% canary and a
# 100% shadow of a second sentiment version, rounds interleaved in one aiweb serve (needs
# wrk). Exit 1 when a rollout row's p50 is > 1.10x or its p99 > 1.20x the no-rollout row's.
# Options: make bench-rollout BENCH_ARGS='--duration 5 --rounds 1 --markdown /tmp/rollout.md'
.PHONY: bench-rollout
bench-rollout: install
	$(BIN)/python -m bench.rollout $(BENCH_ARGS)
