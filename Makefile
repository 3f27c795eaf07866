# Synchron: `make run` starts the product on local defaults, `make test` runs the tests.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
PLUGIN_DIRS := $(patsubst %/main.go,%,$(wildcard plugins/*/main.go))
TEST_TIMEOUT ?= 20m

.PHONY: all build plugins host run demo test bench proto lint fmt clean db db-stop

all: build

## build: the host at bin/synchron and each connector at bin/plugins/<name>/<version>/synchron-connector-<name>
build: host plugins

host:
	$(GO) build -o $(BIN)/synchron ./host/cmd/synchron

plugins:
	@for dir in $(PLUGIN_DIRS); do \
	  name=$$(basename $$dir); version=$$(tr -d '[:space:]' < $$dir/VERSION); \
	  echo "build connector $$name $$version"; \
	  $(GO) build -o $(BIN)/plugins/$$name/$$version/synchron-connector-$$name ./$$dir; \
	done

## run: start the product on local defaults (throwaway PostgreSQL under .data/ when DATABASE_URL is unset)
run: build
	@scripts/run.sh

## demo: the flagship Shopify <-> HubSpot workflow against local fakes (scripts/demo.sh); Ctrl-C stops it
demo: build
	@scripts/demo.sh

## test: every test, against a real PostgreSQL and real connector processes
test: build
	@export DATABASE_URL="$$(scripts/pg.sh)"; \
	SYNCHRON_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## bench: the measured figures of docs/BENCHMARKS.md
bench: build
	@scripts/bench.sh

## proto: regenerate proto/connector/v1 (protoc from Debian's protobuf-compiler, Go plugins pinned in go.mod)
proto:
	@command -v protoc >/dev/null || { echo "installing protobuf-compiler"; apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
	  --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
	  --go_out=. --go_opt=paths=source_relative \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
	  proto/connector/v1/connector.proto

## lint: gofmt, go vet and staticcheck
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

db:
	@scripts/pg.sh

db-stop:
	@scripts/pg.sh stop

clean:
	rm -rf $(BIN)
