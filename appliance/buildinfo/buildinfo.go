// Package buildinfo says which build of the appliance is running: version,
// commit, build time, Go version and platform. It is a leaf (standard
// library only) so that 'version', the SIEM event bodies and the API report
// the same thing.
//
// A release build stamps the values with the linker:
//
//	go build -ldflags "-X firewalliq/appliance/buildinfo.version=v1.2.3 \
//	  -X firewalliq/appliance/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X firewalliq/appliance/buildinfo.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// Without them, Get falls back to what the Go toolchain records
// (runtime/debug.ReadBuildInfo: the module version and the VCS stamp).
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X at link time; never written at run time. They are
// variables only because the linker can stamp nothing else.
var (
	version   string
	commit    string
	buildTime string
)

// Devel is the version of a build that was not stamped and has no module
// version (a plain 'go build' in the source tree).
const Devel = "(devel)"

// Info describes this binary.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// BuildTime is RFC 3339 (UTC) when the build was stamped or the VCS
	// commit time is known; "" otherwise.
	BuildTime string `json:"build_time,omitempty"`
	// Modified means the tree had uncommitted changes (VCS stamp only).
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the build information: linker stamps first, then the Go
// toolchain's record, then defaults (Devel, commit "unknown").
func Get() Info {
	return get(version, commit, buildTime, debug.ReadBuildInfo)
}

// get is Get with its inputs injected, for tests.
func get(ver, com, built string, read func() (*debug.BuildInfo, bool)) Info {
	bi := Info{Version: Devel, Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := read(); ok && info != nil {
		if info.Main.Version != "" {
			bi.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Commit = s.Value
			case "vcs.time":
				bi.BuildTime = s.Value
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	if ver != "" {
		bi.Version = ver
	}
	if com != "" {
		bi.Commit = com
		// A stamped commit is what was released; the toolchain's
		// "modified" flag describes the tree the stamp replaced.
		bi.Modified = false
	}
	if built != "" {
		bi.BuildTime = built
	}
	return bi
}
