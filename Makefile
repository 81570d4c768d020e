# Build, test, package and release FirewallIQ Secure. See docs/packaging.md.
#
#   make build        ./firewalliq: static, -trimpath, stamped, reproducible
#   make test         the whole suite (scripts/test.sh; root on Debian)
#   make demo         go run . demo
#   make bench        benchmarks against nmap and masscan (bench/probe.sh; root)
#   make package      dist/*.deb and dist/*.rpm (nfpm)
#   make sbom         dist/firewalliq.cdx.json (CycloneDX)
#   make release      package + sbom + dist/SHA256SUMS + dist/SHA256SUMS.sig
#   make reproducible two builds in two directories must be byte-identical
#   make package-test install, upgrade and remove the .deb in a Debian chroot
#   make image        dist/firewalliq.raw and .qcow2: bootable disk with the .deb
#   make image-test   image of a TEST-key release build, booted in qemu (/readyz)
#   make soak-smoke   2-minute soak: appliance, MinIO, rsyslog, lab, faults (root)
#   make soak         10-minute soak; its report goes to docs/soak-report.md (root)
#
# Release builds with the vendor's safety profile and release key (kept
# outside the repository; docs/safety-profile.md):
#   make release FIQ_PROFILE=profile.json FIQ_PROFILE_SIG=profile.json.sig \
#     FIQ_RELEASE_PUB=release.pub RELEASE_KEY=/offline/release.key

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
export CGO_ENABLED := 0

# Pinned tools, run with `go run pkg@version` so that they stay out of
# go.mod (nfpm alone would add go-git and ~60 modules to the appliance's).
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
CYCLONEDX ?= $(GO) run github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

# Everything that goes into the binary comes from git, never from the clock
# or the machine, so that two builds of one commit are byte-identical.
COMMIT ?= $(shell git rev-parse HEAD)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
BUILD_TIME := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
VERSION ?= $(shell packaging/version.sh)
PKG_VERSION ?= $(shell packaging/version.sh --pkg)
GOARCH ?= $(shell $(GO) env GOARCH)

DIST := dist
BINARY := firewalliq
BI := firewalliq/appliance/buildinfo
LDFLAGS := -s -w -X $(BI).version=$(VERSION) -X $(BI).commit=$(COMMIT) -X $(BI).buildTime=$(BUILD_TIME)
# -buildvcs=false: the stamp above is the record; the toolchain's VCS stamp
# would make a build from a tarball differ from one from a checkout.
GOFLAGS_BUILD := -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'

# The vendor's safety profile, compiled in with `go build -overlay`
# (packaging/profile). Without it the build carries the development profile.
ifneq ($(FIQ_PROFILE),)
OVERLAY := $(DIST)/profile-overlay.json
GOFLAGS_BUILD += -overlay $(OVERLAY)
endif

.PHONY: build test demo bench package sbom release reproducible package-test unit-check image image-test soak-smoke soak clean

build:
ifneq ($(FIQ_PROFILE),)
	@mkdir -p $(DIST)
	$(GO) run ./packaging/profile overlay --repo . --profile "$(FIQ_PROFILE)" \
		--sig "$(FIQ_PROFILE_SIG)" --pub "$(FIQ_RELEASE_PUB)" --out $(OVERLAY)
endif
	$(GO) build $(GOFLAGS_BUILD) -o $(BINARY) .
	@echo "built ./$(BINARY) $(VERSION) ($(COMMIT), $(BUILD_TIME))"

test:
	bash scripts/test.sh

demo:
	$(GO) run . demo

bench:
	bash bench/probe.sh

package: build
	@mkdir -p $(DIST)
	rm -f $(DIST)/firewalliq_*.deb $(DIST)/firewalliq-*.rpm
	for p in deb rpm; do \
		FIQ_PKG_VERSION=$(PKG_VERSION) FIQ_ARCH=$(GOARCH) \
			$(NFPM) package --config packaging/nfpm.yaml --packager $$p --target $(DIST)/; \
	done
	@ls -l $(DIST)/*.deb $(DIST)/*.rpm

sbom:
	@mkdir -p $(DIST)
	CYCLONEDX="$(CYCLONEDX)" VERSION=$(VERSION) packaging/sbom.sh $(DIST)/firewalliq.cdx.json
	@echo "wrote $(DIST)/firewalliq.cdx.json"

# RELEASE_KEY is the vendor's offline release key (PEM, mode 0600) and
# RELEASE_PUB its public half (default: RELEASE_KEY with .pub). Without a
# key, a throw-away DEVELOPMENT key is generated under dist/ so that the
# signing path can be exercised; such a release must never reach a customer.
# The last step verifies the release the way a customer does.
RELEASE_PUB ?= $(patsubst %.key,%.pub,$(RELEASE_KEY))
release: package sbom
	cp $(BINARY) $(DIST)/firewalliq-$(VERSION)-linux-$(GOARCH)
	rm -f $(DIST)/SHA256SUMS $(DIST)/SHA256SUMS.sig
	$(GO) run ./packaging/release sums --out $(DIST)/SHA256SUMS \
		$(DIST)/firewalliq-$(VERSION)-linux-$(GOARCH) $(DIST)/*.deb $(DIST)/*.rpm $(DIST)/firewalliq.cdx.json
	@if [ -n "$(RELEASE_KEY)" ]; then \
		$(GO) run ./packaging/release sign --key "$(RELEASE_KEY)" $(DIST)/SHA256SUMS; \
		$(GO) run ./packaging/release verify --pub "$(RELEASE_PUB)" $(DIST)/SHA256SUMS; \
	else \
		echo "WARNING: no RELEASE_KEY; signing with a DEVELOPMENT key (dist/DEVELOPMENT-release.pub). Not for customers." >&2; \
		rm -f $(DIST)/DEVELOPMENT-release.key $(DIST)/DEVELOPMENT-release.pub; \
		$(GO) run ./packaging/release keygen --out $(DIST)/DEVELOPMENT-release; \
		$(GO) run ./packaging/release sign --key $(DIST)/DEVELOPMENT-release.key $(DIST)/SHA256SUMS; \
		rm -f $(DIST)/DEVELOPMENT-release.key; \
		$(GO) run ./packaging/release verify --pub $(DIST)/DEVELOPMENT-release.pub $(DIST)/SHA256SUMS; \
	fi

reproducible:
	bash scripts/reproducible.sh --fresh-cache

package-test:
	bash scripts/package-test.sh

unit-check:
	bash scripts/package-test.sh --unit-only

# The image of this build (a development build refuses production mode;
# image-test builds a release-style one with a TEST key and boots it).
image: package
	bash packaging/image/build.sh --deb "$$(ls -t $(DIST)/firewalliq_*_amd64.deb | head -1)" --out $(DIST)

image-test:
	bash packaging/image/test.sh

# The soak test (appliance/soak, build tag soak; docs/soak.md) builds its
# own binary and a network lab, so it holds the lab lock.
SOAK_TEST = flock /tmp/fiq-lab.lock $(GO) test -tags soak -run '^TestSoak$$' -count=1 -v

soak-smoke:
	@mkdir -p $(DIST)
	FIQ_SOAK_DURATION=2m FIQ_SOAK_REPORT=$(CURDIR)/$(DIST)/soak-smoke.md $(SOAK_TEST) -timeout 25m ./appliance/soak

soak:
	FIQ_SOAK_DURATION=10m FIQ_SOAK_REPORT=$(CURDIR)/docs/soak-report.md $(SOAK_TEST) -timeout 45m ./appliance/soak

clean:
	rm -rf $(DIST) $(BINARY)
