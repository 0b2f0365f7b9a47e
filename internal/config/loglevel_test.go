package config

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestParseLogLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want hclog.Level
		off  bool
		err  bool
	}{
		{in: "", want: hclog.Info},
		{in: "on", want: hclog.Info},
		{in: "ON", want: hclog.Info},
		{in: "off", want: hclog.Off, off: true},
		{in: "Off", want: hclog.Off, off: true},
		{in: "DEBUG", want: hclog.Debug},
		{in: "info", want: hclog.Info},
		{in: "WARN", want: hclog.Warn},
		{in: "ERROR", want: hclog.Error},
		{in: "ERROR+1", want: hclog.Off, off: true},
		{in: "WARN+2", want: hclog.Error},
		{in: "DEBUG+4", want: hclog.Info},
		{in: "INFO+1", want: hclog.Warn},
		{in: "-8", want: hclog.Trace},
		{in: "4", want: hclog.Warn},
		{in: "LOUD", err: true},
		{in: "INFO-1", err: true},
		{in: "WARN+x", err: true},
		{in: "INFOX", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			l, err := ParseLogLevel(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseLogLevel(%q) = %v, want error", tc.in, l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Level() != tc.want || l.Off() != tc.off {
				t.Fatalf("ParseLogLevel(%q) = %v off=%v, want %v off=%v", tc.in, l.Level(), l.Off(), tc.want, tc.off)
			}
		})
	}
}

func TestLogLevelZeroValue(t *testing.T) {
	var l LogLevel
	if l.Level() != hclog.Info || l.Off() || l.String() != "info" {
		t.Fatalf("zero LogLevel = %v off=%v %q, want info", l.Level(), l.Off(), l.String())
	}
	off, _ := ParseLogLevel("off")
	if off.String() != "off" {
		t.Fatalf("String() = %q, want off", off.String())
	}
}
