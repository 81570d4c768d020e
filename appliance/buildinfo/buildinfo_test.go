package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: "2026-11-29T00:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name                       string
		ver, com, built            string
		read                       func() (*debug.BuildInfo, bool)
		wantVer, wantCom, wantTime string
		wantMod                    bool
	}{
		{name: "nothing known", read: none, wantVer: Devel, wantCom: "unknown"},
		{name: "toolchain record", read: vcs, wantVer: "v0.1.0", wantCom: "abc", wantTime: "2026-11-29T00:00:00Z", wantMod: true},
		{name: "linker stamps win", ver: "v1.2.3", com: "def", built: "2026-12-01T10:00:00Z", read: vcs, wantVer: "v1.2.3", wantCom: "def", wantTime: "2026-12-01T10:00:00Z"},
		{name: "version stamp only", ver: "v1.2.3", read: none, wantVer: "v1.2.3", wantCom: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(tt.ver, tt.com, tt.built, tt.read)
			if got.Version != tt.wantVer || got.Commit != tt.wantCom || got.BuildTime != tt.wantTime || got.Modified != tt.wantMod {
				t.Fatalf("got %+v", got)
			}
			if got.GoVersion == "" || got.Platform == "" {
				t.Fatalf("Go version or platform missing: %+v", got)
			}
		})
	}
}
