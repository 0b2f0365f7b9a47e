package main

import (
	"runtime/debug"
	"strings"
)

// version returns the build's VCS time as KES formats it (':' → '-'), or
// "<unknown>".
func version() string {
	v, _ := buildInfo()
	return v
}

func buildInfo() (ver, commit string) {
	ver, commit = "<unknown>", "<unknown>"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.time":
			ver = strings.ReplaceAll(s.Value, ":", "-")
		case "vcs.revision":
			commit = s.Value
		}
	}
	if ver == "<unknown>" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		ver = info.Main.Version
	}
	return
}
