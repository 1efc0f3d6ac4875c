# Herald — run `make help` for the targets.
SHELL := /bin/bash
GO    ?= go

# The Postgres test suites use DATABASE_URL, or a local PostgreSQL when one
# answers; without either they skip (and fail under CI).
LOCAL_PG := postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
TEST_DATABASE_URL = $(or $(DATABASE_URL),$(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo '$(LOCAL_PG)'))

FUZZTIME ?= 10s
# package:FuzzTarget pairs; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := ./internal/fhir:FuzzParse ./internal/auth:FuzzParseScope ./internal/search:FuzzParseCriteria \
  ./internal/subscription:FuzzParse ./internal/allowlist:FuzzParseEndpoint ./internal/allowlist:FuzzMatch \
  ./internal/secrets:FuzzOpen ./internal/secrets:FuzzSealOpen ./internal/resources:FuzzResolveRefs \
  ./internal/subscription:FuzzParseFilter ./internal/subscription:FuzzParseHeader ./internal/allowlist:FuzzParseEntry \
  ./internal/auth:FuzzVerify ./internal/topic:FuzzTopicParse ./internal/strictjson:FuzzParse ./internal/r4:FuzzValidate \
  ./internal/fhir:FuzzLocalReference

.PHONY: help run build test lint fuzz bench reliability generate fhirkit screenshots
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the server in development mode (embedded store unless DATABASE_URL is exported)
	HERALD_DEV=true $(GO) run ./cmd/herald serve

build: ## build bin/herald
	$(GO) build -trimpath -o bin/herald ./cmd/herald

test: fhirkit ## run every test with the race detector (Postgres suites need DATABASE_URL or a local PostgreSQL)
	@if [ -z "$(TEST_DATABASE_URL)" ]; then echo "note: no PostgreSQL found (set DATABASE_URL); Postgres suites will skip"; fi
	DATABASE_URL='$(TEST_DATABASE_URL)' $(GO) test -race -count=1 -timeout 20m ./...

screenshots: ## run the console's browser tests (needs chromium) and save their screenshots to docs/img
	HERALD_UPDATE_SCREENSHOTS=1 $(GO) test -count=1 -run 'TestConsole' ./cmd/herald

# The end-to-end test with fhir-kit-client (internal/api TestFHIRKitClient)
# needs Node.js and the npm package, installed from the lock file when it
# changed. Without npm it is skipped here (and fails in CI).
FHIRKIT := e2e/fhirkit
fhirkit: ## install fhir-kit-client for the end-to-end test (needs Node.js and npm)
	@if ! command -v npm >/dev/null; then echo "note: npm not found; the fhir-kit-client test will skip"; \
	elif [ ! -f $(FHIRKIT)/node_modules/.package-lock.json ] || [ $(FHIRKIT)/package-lock.json -nt $(FHIRKIT)/node_modules/.package-lock.json ]; then \
	  npm ci --prefix $(FHIRKIT) --no-audit --no-fund --loglevel=error; fi

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg; done

# bench.sh records its output in bench/bench-output.txt; the publish benchmark
# is appended to it, and scripts/benchreport turns it into bench/report.md and
# bench/latency.png. A failed run still gets its (partial) report, and make
# then fails; an interrupted one does not.
bench: ## create/read throughput and latency, rest-hook delivery latency (and a sweep over load and Subscriptions) and fan-out notifications/s, publish cost with 0/1,000/100,000 Subscriptions and with 1,000 filtered ones, another client's delivery latency beside 500 hanging Subscriptions, the cost of R4 validation, and websocket write-to-message latency and memory per idle socket, on PostgreSQL; writes bench/report.md and bench/latency.png (asserts nothing)
	@status=0; BENCH_REPORT=0 bash scripts/bench.sh $(BENCH_FLAGS) || status=$$?; \
	if [ $$status = 130 ] || [ $$status = 143 ]; then exit $$status; fi; \
	{ echo; echo "== publish: an Encounter write firing encounter-start, with others Subscriptions pinned to other patients, and one matching 1,000 Subscriptions unfiltered and with 20 filters each"; \
	  DATABASE_URL='$(TEST_DATABASE_URL)' $(GO) test -run '^$$' -bench 'BenchmarkPublish' -benchtime=2s ./internal/publish 2>&1; \
	  echo; echo "== fair delivery: another client's handshake and event latency (p50/p99 ms), alone and beside 500 Subscriptions whose endpoint hangs"; \
	  DATABASE_URL='$(TEST_DATABASE_URL)' $(GO) test -run '^$$' -bench 'BenchmarkFairDelivery' -benchtime=50x ./internal/delivery 2>&1 | grep -v '^time='; } | \
	  tee -a bench/bench-output.txt; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; \
	{ echo; echo "== websocket: one socket bound to 100 Subscriptions, 200 and 1,000 writes/s offered (write-to-message p50/p99), and 1,000 idle bound sockets (memory per socket)"; \
	  DATABASE_URL='$(TEST_DATABASE_URL)' $(GO) test -run '^$$' -bench 'BenchmarkWebsocket' -benchtime=1x ./internal/wschannel 2>&1 | grep -v '^time=\|level='; } | \
	  tee -a bench/bench-output.txt; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; \
	$(GO) run ./scripts/benchreport -in bench/bench-output.txt -out bench || status=1; \
	exit $$status

RELIABILITY_FLAGS ?=
reliability: ## run Herald on PostgreSQL under load and faults (kills, PostgreSQL restart, bad receivers); proves nothing is lost
	DATABASE_URL='$(TEST_DATABASE_URL)' $(GO) run ./cmd/herald-reliability $(RELIABILITY_FLAGS)

generate: ## regenerate tables from the FHIR R4 package (needs npm)
	pkg="$$(bash scripts/fetch-r4-package.sh)" && \
	$(GO) run ./scripts/genr4 -pkg "$$pkg" -structure internal/r4/r4.tab && \
	$(GO) run ./scripts/gensearch -pkg "$$pkg" && \
	R4_PACKAGE="$$pkg" $(GO) test -count=1 ./scripts/gensearch/ ./scripts/genr4/ ./internal/r4/
