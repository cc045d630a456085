# verlauf — see README.md. Every target works on a fresh clone.
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
BIN      := bin/verlauf
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 50000x

.PHONY: all build run test deps lint unit fuzz-short fuzz bench bench-peers soak clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/verlauf

# Zero-config server: domain localhost, self-signed certificate, ./data.
run: build
	./$(BIN) serve

# Everything CI runs: dependencies, static checks, all tests (unit, contract,
# crash, end-to-end with real clients) and a short run of every fuzz target.
test: deps lint unit fuzz-short

deps:
	@bash scripts/deps.sh

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

unit: build
	VERLAUF_BIN=$(CURDIR)/$(BIN) $(GO) test -race -timeout 15m ./...

# Each fuzz target for FUZZTIME executions (make fuzz FUZZTIME=5m for a
# longer, timed run; scripts/fuzz.sh says why the default is a count).
fuzz-short:
	@bash scripts/fuzz.sh $(FUZZTIME)

fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 -timeout 60m ./eventstore/... ./domain/... ./archive/... ./userdata/... ./xmppfront/...

# verlauf side by side with Prosody and ejabberd under the same load; runs
# as root (installs the peers if missing). USERS=10000 RUNS=3 DURATION=10s.
bench-peers:
	@GO=$(GO) bash scripts/bench-peers.sh

# The fault and hostile-input tests (tests/reliability) at larger sizes,
# repeated for DURATION (default 10m); runs as root, like `make test`.
soak: build
	@VERLAUF_BIN=$(CURDIR)/$(BIN) DURATION=$(or $(DURATION),10m) bash scripts/soak.sh

clean:
	rm -rf bin
