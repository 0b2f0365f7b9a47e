package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReleaseVersionWins(t *testing.T) {
	oldV, oldC := releaseVersion, releaseCommit
	t.Cleanup(func() { releaseVersion, releaseCommit = oldV, oldC })
	releaseVersion, releaseCommit = "v1.2.3", "0123abcd"

	if v, c := buildInfo(); v != "v1.2.3" || c != "0123abcd" {
		t.Fatalf("buildInfo = %q %q", v, c)
	}
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "keyraft v1.2.3 (commit 0123abcd, go") {
		t.Fatalf("--version printed %q", got)
	}
}
