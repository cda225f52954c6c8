# rekey's two commands: `make demo` runs a full rotation on built-in
# defaults; `make test` runs every test (root module, the AWS, Vault, Kubernetes and
# browser test modules, the soak harness's CI form, vet, staticcheck, gofmt
# and short fuzzing).
GO ?= go
# Every go test runs all of vet's analyzers on what it compiles anyway
# (-vet=all), so no module is compiled twice for a separate go vet.
TESTFLAGS := -count=1 -vet=all
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Fuzz budgets are exec counts, not durations: Go 1.26's fuzz coordinator
# can fail a duration budget with a bare "context deadline exceeded" under
# load (golang/go#75804). Each count is about 10 s of fuzzing on 2 idle
# cores (measured 2026-12-01); FUZZTIME=… overrides all four.
FUZZTIME ?=
FUZZ_LOAD ?= 40000x
FUZZ_DOTENV ?= 300000x
FUZZ_DECODE_KEY ?= 200000x
FUZZ_DECODE_ERROR ?= 150000x

.PHONY: demo build test lint test-root test-aws test-vault test-kube test-browser test-soak soak-long soak-ha-long fuzz bench bench-quick bench-smoke

demo:
	$(GO) run ./cmd/rekey demo

# `rekey version` and rekey_build_info name these; without them (go build,
# go install) rekey falls back to Go's build info, then to devel/unknown.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/rekey ./cmd/rekey

test: lint test-root test-aws test-vault test-kube test-browser test-soak fuzz

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

test-root:
	$(GO) test -race $(TESTFLAGS) ./...

# The aws-secretsmanager sink against kumo, and kumo's IAM against
# issuers/awsiam/fakeiam (the aws-iam issuer's test server).
test-aws:
	cd sinks/awssm/awssmtest && $(GO) test -race $(TESTFLAGS) ./...

test-vault:
	cd sinks/vaultkv/vaulttest && $(GO) test $(TESTFLAGS) ./...

# The kubernetes-secret sink against a real kube-apiserver (k8s.io/kubernetes
# in-process, RBAC on) on Debian's etcd-server: one test package, so CI
# compiles the apiserver once (cold about 7 min on 2 cores, 2.9 GB); no -race,
# as for Vault, for the compile's sake. REKEY_REQUIRE_ETCD=1 turns a missing
# etcd into a failure.
test-kube:
	cd sinks/kubernetes/kubetest && $(GO) test $(TESTFLAGS) ./...

# The status page in headless Chromium (/usr/bin/chromium, or
# $REKEY_CHROMIUM); skips without it unless REKEY_REQUIRE_CHROMIUM=1.
# REKEY_STATUSPAGE_SCREENSHOT=path.png keeps the screenshot it takes.
test-browser:
	cd internal/statuspage/browsertest && $(GO) test -race $(TESTFLAGS) ./...

# The soak harness's CI form (300 rotations with faults), its HA form (three
# daemon replicas on a three-member etcd cluster, 2.5 minutes of kills and
# stops) and the security checks; soak-long is the 10,000-rotation form (about
# an hour), soak-ha-long the HA form for 15 minutes. The CI form
# runs one fixed fault plan, so that what it finds is not a matter of which
# plan a run drew (the default seed is the plan that found the last orphan
# defect); SOAK_SEED=... picks another. soak-long draws a new plan each run.
SOAK_SEED ?= 701085586

test-soak:
	cd soak && REKEY_SOAK_SEED=$(SOAK_SEED) $(GO) test $(TESTFLAGS) -timeout 30m ./...

soak-long:
	cd soak && REKEY_SOAK_ROTATIONS=10000 $(GO) test -count=1 -timeout 0 -run TestSoak -v .

soak-ha-long:
	cd soak && REKEY_SOAK_HA_DURATION=15m $(GO) test -count=1 -timeout 0 -run TestHASoak -v .

# Each fuzzer runs briefly (a fixed number of execs); findings land in testdata/fuzz and fail the run.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_LOAD)) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzDotenv$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_DOTENV)) ./sinks/file
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeKey$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_DECODE_KEY)) ./issuers/apexverify
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeError$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_DECODE_ERROR)) ./issuers/apexverify

# Fleet-scale benchmarks (bench/, its own module; README "Performance"):
# the real binary against loopback simulators, each figure a ratio to the
# ideal of the same run. Not part of `make test`. `make bench` is N = 1,000
# and 10,000 credentials (about 20 minutes on 2 idle cores; run it on a
# quiet machine); bench-quick is 50 credentials, a 5 s idle and 500
# rotations of history; bench-smoke is the smoke test (5 credentials).
# BENCHFLAGS=... passes flags, e.g. BENCHFLAGS="-n 1000 -idle 10s".
BENCHFLAGS ?=

bench:
	cd bench && $(GO) run . $(BENCHFLAGS)

bench-quick:
	cd bench && $(GO) run . -n 50 -idle 5s -history 500 -reps 3 $(BENCHFLAGS)

bench-smoke:
	cd bench && $(GO) test $(TESTFLAGS) ./...
