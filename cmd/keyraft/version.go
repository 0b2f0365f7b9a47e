package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by release builds (the Makefile's build target):
//
//	go build -ldflags "-X main.releaseVersion=v1.2.3 -X main.releaseCommit=<sha>"
//
// They take precedence over the build info that `go build` records.
var (
	releaseVersion string
	releaseCommit  string
)

// versionLine is what `keyraft --version` prints after "keyraft ": the
// version /version reports, the commit and the Go version.
func versionLine() string {
	v, c := buildInfo()
	return fmt.Sprintf("%s (commit %s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildInfo returns the release version and commit: the -ldflags values
// when set, else the module version (go install ...@v1.2.3) or the VCS
// commit time as KES formats it (':' → '-'), and the VCS revision; each is
// "<unknown>" when nothing says (go build -buildvcs=false).
func buildInfo() (ver, commit string) {
	ver, commit = "<unknown>", "<unknown>"
	if info, ok := debug.ReadBuildInfo(); ok {
		var vcsTime string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.time":
				vcsTime = strings.ReplaceAll(s.Value, ":", "-")
			case "vcs.revision":
				commit = s.Value
			}
		}
		switch {
		case info.Main.Version != "" && info.Main.Version != "(devel)":
			ver = info.Main.Version
		case vcsTime != "":
			ver = vcsTime
		}
	}
	if releaseVersion != "" {
		ver = releaseVersion
	}
	if releaseCommit != "" {
		commit = releaseCommit
	}
	return ver, commit
}
