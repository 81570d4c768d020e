// Package packaging holds no code of the appliance: it is the home of the
// release files (systemd unit, nfpm configuration, package scripts, default
// configuration) and of the tests that check them. The tools live in
// sub-directories: packaging/release (signed checksums) and packaging/profile
// (the release safety profile). See docs/packaging.md.
package packaging
