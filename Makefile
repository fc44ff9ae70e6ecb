# roscoe: developer tasks. From a fresh clone, `make demo` runs the main job and `make test`
# the tests; each installs and starts what it needs (Debian: engines from its packages).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' src/roscoe/__init__.py)
FLAVOR ?= core
IMAGE_REPOSITORY ?= ghcr.io/roscoe-cli/roscoe-runner
BASE_IMAGE ?= roscoe-base:bookworm
ENGINE_HOST ?= unix:///var/run/docker.sock

.PHONY: install test unit test-images lint fmt engines-up engines-down base-image build-image run-local test-image push-image demo bench bench-service bench-mcp bench-isolation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python ## a local venv with roscoe editable and the test tools
	$(BIN)/pip install --quiet -e '.[test]'

# `make demo` and `make test` work from a fresh clone: each brings up what it needs first
# (the venv, the engines, the images); every step is skipped when already done.
test: install engines-up test-images ## the whole suite, on real Docker and Podman
	$(BIN)/pytest

unit: install ## only the tests that need no engine
	$(BIN)/pytest tests/unit

test-images: base-image ## the runner image from this tree, in both engines
	bash scripts/build-test-images.sh

lint: ## ruff (lint and format) and mypy --strict on src, as CI runs them
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

fmt:
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

engines-up: ## install and start Docker, Podman (rootful, gVisor, rootless), a loopback registry and an S3 bucket over FUSE (Debian)
	bash scripts/engines.sh install
	bash scripts/engines.sh start

engines-down:
	bash scripts/engines.sh stop

base-image: ## a Debian base image built from Debian's packages, for offline builds
	bash scripts/build-base-image.sh

# The runner image: tagged $(IMAGE_REPOSITORY):v$(VERSION) and roscoe-runner:dev.
# IMAGE_ENGINES=docker,podman also loads it into Podman. The build stage (never the image)
# trusts EXTRA_CA on top of the base's CAs: by default the host's own bundle, so a build reaches
# the package index wherever the host does (TLS-intercepting proxies); EXTRA_CA= for none.
IMAGE_ENGINES ?= docker
EXTRA_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
build-image: ## the runner image from this tree [VERSION= FLAVOR=core|browser IMAGE_ENGINES=docker,podman]
	bash scripts/build-image.sh --version $(VERSION) --flavor $(FLAVOR) --base $(BASE_IMAGE) \
		--engines $(IMAGE_ENGINES) $(if $(EXTRA_CA),--extra-ca $(EXTRA_CA))

# REGISTRY=127.0.0.1:5000 pushes to that registry instead (same repository path).
REGISTRY ?=
PUSH_SUFFIX = $(if $(filter browser,$(FLAVOR)),-browser)
PUSH_REF = $(if $(REGISTRY),$(REGISTRY)/$(patsubst ghcr.io/%,%,$(IMAGE_REPOSITORY)),$(IMAGE_REPOSITORY)):v$(VERSION)$(PUSH_SUFFIX)
push-image: ## push the built image: make push-image VERSION=0.1.0 [REGISTRY=127.0.0.1:5000]
	@test -n "$(VERSION)" || { echo "push-image: VERSION= is required" >&2; exit 2; }
	docker -H $(ENGINE_HOST) image inspect $(IMAGE_REPOSITORY):v$(VERSION)$(PUSH_SUFFIX) >/dev/null \
		|| { echo "push-image: $(IMAGE_REPOSITORY):v$(VERSION)$(PUSH_SUFFIX) is not built (make build-image)" >&2; exit 4; }
	docker -H $(ENGINE_HOST) tag $(IMAGE_REPOSITORY):v$(VERSION)$(PUSH_SUFFIX) $(PUSH_REF)
	docker -H $(ENGINE_HOST) push $(PUSH_REF)

# The runner from roscoe-runner:dev (make build-image first). ARGS= passes more options to
# `roscoe server start`, e.g. make run-local ARGS="--port 9000 --workspace ~/cases".
ARGS ?=
run-local: ## start the runner container from the locally built image
	DOCKER_HOST=$${DOCKER_HOST:-$(ENGINE_HOST)} $(BIN)/roscoe server start --use-local-image $(ARGS)

# Build the image, start it under a throwaway data dir, name and port (a runner of your own
# is left alone), probe /health, run the demo case through the API, stop, clean up.
TEST_IMAGE_PORT ?= 18765
test-image: build-image ## build the runner image and prove the service in it works end to end
	@set -e; \
	data=$$(mktemp -d); \
	export ROSCOE_DATA_DIR=$$data/data ROSCOE_CONFIG_DIR=$$data/config \
		ROSCOE_CONTAINER_NAME=roscoe-test-image-$$$$ ROSCOE_PORT=$(TEST_IMAGE_PORT) \
		DOCKER_HOST=$${DOCKER_HOST:-$(ENGINE_HOST)}; \
	trap '$(BIN)/roscoe server stop >/dev/null 2>&1 || true; rm -rf "$$data"' EXIT; \
	cp -R examples/workspace "$$data/workspace"; \
	chmod -R a+rwX "$$data/workspace"; \
	$(BIN)/roscoe server start --use-local-image --workspace "$$data/workspace"; \
	echo "--- GET /health"; \
	curl -fsS --max-time 5 http://127.0.0.1:$(TEST_IMAGE_PORT)/health; \
	echo "--- POST /runs demo-case create_file_inventory.py"; \
	token_file=$$($(BIN)/python -c 'from roscoe import paths; print(paths.token_file())'); \
	curl -fsS --max-time 300 -H "Authorization: Bearer $$(cat "$$token_file")" \
		-H 'Content-Type: application/json' \
		-d '{"case": "demo-case", "script": "create_file_inventory.py"}' \
		http://127.0.0.1:$(TEST_IMAGE_PORT)/runs > "$$data/run.json"; \
	$(BIN)/python -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["output"]); \
		print("run", r["id"], r["status"], "exit", r["exit_code"]); sys.exit(r["exit_code"] != 0)' \
		"$$data/run.json"; \
	echo "test-image: ok"

# The demo: the inventory tool on the example case, in the small base image (make base-image).
demo: install engines-up base-image ## the inventory tool on the example case, in the base image
	DOCKER_HOST=$${DOCKER_HOST:-$(ENGINE_HOST)} $(BIN)/roscoe run --workspace examples/workspace \
		--image $(BASE_IMAGE) demo-case create_file_inventory.py -- --format md

bench: ## roscoe run against docker run / podman run, and 20 concurrent runs
	$(BIN)/python bench/run_overhead.py

bench-service: ## POST /runs against docker run, live output delay, /health under a burst
	$(BIN)/python bench/service_runs.py

bench-mcp: ## MCP run_script over /mcp against POST /runs on the same runner
	$(BIN)/python bench/mcp_overhead.py

bench-isolation: ## a trivial run and a system-call-heavy one under gVisor next to runc
	$(BIN)/python bench/isolation.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
