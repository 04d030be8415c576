SHELL := /bin/bash
NPM_STAMP := node_modules/.stamp

.PHONY: all build check test demo bench system-deps clean

all: build

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## build: bundle bin/dist and transpile everything into out/
build: $(NPM_STAMP)
	node scripts/build.mjs

## check: typecheck and lint (layer boundaries, no skipped tests)
check: $(NPM_STAMP)
	npx tsc -p .
	node scripts/lint.mjs

## system-deps: the registry and peers the tests talk to (apt-get as root)
system-deps:
	bash scripts/install-deps.sh

## test: install what is needed, build, check, and run every test
test: system-deps build check
	node --test --test-timeout=600000 --test-reporter=spec $$(find out/test -name '*.test.js' | sort)

clean:
	rm -rf out

## bench: dist beside skopeo, ctr, umoci and GNU tar on the same fixtures; writes bench/results.md
bench: system-deps build
	command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
	node scripts/bench/run.mjs

## demo: a local registry with a sample image, the seed's pipelines, pull and unpack: ./demo/rootfs
demo: system-deps build
	node scripts/demo.mjs
