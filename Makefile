# The two commands of the README: `make demo` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo demo-ha screenshots test tools tools-argocd tools-rollouts bench-peers browser venv lock lint fuzz unit integration clean

demo: tools
	$(BIN)/python scripts/demo.py

# the demo on the high-availability control plane: PostgreSQL, three clustered nats-servers and
# HA_REPLICAS (2) moorage server replicas on loopback (tests/ha_support.py); needs Debian's postgresql
HA_REPLICAS ?= 2
demo-ha: tools
	$(BIN)/python scripts/demo.py --ha $(HA_REPLICAS)

# pictures of the web UI's main pages for the docs (the demo, signed in, in Debian's chromium)
screenshots: tools browser
	$(BIN)/python scripts/demo.py --screenshots docs/screenshots

# the suite on TEST_WORKERS pytest-xdist workers, a test file to each at a time (one devcluster a worker)
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile
test: tools tools-argocd tools-rollouts browser lint
	$(PYTEST) --durations=15 tests

venv: $(VENV)/.installed

# Python packages: exactly the versions and files in requirements.lock (pip checks every hash), then
# Moorage itself, editable, built with the locked hatchling
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed as $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

# after a change of dependencies in pyproject.toml: pin them again, with hashes, keeping the versions
# already pinned where they still fit (uv prefers those of its --output-file); UPGRADE=1 takes the newest
UV_VERSION := 0.13.9
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	cp requirements.lock requirements.lock.new
	$(BIN)/uv pip compile pyproject.toml tools/lock/build.in --extra dev $(if $(UPGRADE),--upgrade) \
	  --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header -q \
	  --output-file requirements.lock.new
	{ sed -n '1,2p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	rm requirements.lock.new && mv requirements.lock.tmp requirements.lock

# Go-built binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm,
# OCI registry): built once per version into ~/.cache/moorage/bin and linked into the venv.
tools: venv
	@command -v go >/dev/null || { echo "Go 1.26+ is needed to build the devcluster binaries (tools/k8s)"; exit 1; }
	tools/k8s/build.sh $(BIN)

# Argo CD's application-controller and repo-server (v3.6, built with the go1.27.3 toolchain from the
# Go module proxy) and Debian's redis-server, for the ArgoCD engine and the peer benchmarks
tools-argocd: venv
	tools/k8s/build.sh $(BIN) argocd
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends redis-server; }

# Argo Rollouts' controller and kubectl plugin (v1.10.1, from the Go module proxy) with its CRDs, for the
# charts' canary test (tests/integration/test_chart_rollouts.py)
tools-rollouts: venv
	tools/k8s/build.sh $(BIN) argo-rollouts

# Debian's chromium for the browser tests (Playwright drives it; `playwright install` cannot download here)
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

lint: venv
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# Moorage, Flux and Argo CD side by side (bench/peers.py): builds Flux's controllers first (not part of
# make test); PEERS_ARGS="--n 20 --runs 1 --idle 60" is the short mode
PEERS_ARGS ?= --n 100 --runs 3
bench-peers: tools tools-argocd
	tools/k8s/build.sh $(BIN) flux
	$(BIN)/python bench/peers.py $(PEERS_ARGS)

# the fuzz tests of the parsers of untrusted input, longer than `make test` runs them
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	MOORAGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_fuzz_parsers.py \
	  tests/unit/server/test_gitops_webhooks.py

unit: venv
	$(PYTEST) tests/unit

integration: tools tools-argocd tools-rollouts browser
	$(PYTEST) tests/integration

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
