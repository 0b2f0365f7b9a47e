package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// LogLevel is the parsed value of log.error or log.audit.
//
// The zero value means "on" (INFO). Values compare with ==.
type LogLevel struct {
	level hclog.Level // hclog.NoLevel in the zero value, read as hclog.Info
	off   bool
}

// Log levels on the slog scale KES uses (DEBUG=-4, INFO=0, WARN=4, ERROR=8).
// Offsets ("WARN+2") and plain integers refer to this scale.
const (
	slogDebug = -4
	slogInfo  = 0
	slogWarn  = 4
	slogError = 8
)

// ParseLogLevel parses a KES log level: "" or "on" (INFO), "off", DEBUG, INFO,
// WARN, ERROR (case-insensitive), a level with a "+N" offset such as "WARN+2",
// or an integer on the slog scale (DEBUG=-4, INFO=0, WARN=4, ERROR=8).
//
// KES logs records at or above the configured level. Keyraft maps the value to
// the least severe hclog level that logs the same records: anything above
// ERROR (including "off", which KES defines as ERROR+1) turns the log off, and
// anything below DEBUG maps to hclog.Trace.
//
// It returns an error naming the value if s is none of the above.
func ParseLogLevel(s string) (LogLevel, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	switch v {
	case "", "ON":
		return LogLevel{level: hclog.Info}, nil
	case "OFF":
		return LogLevel{level: hclog.Off, off: true}, nil
	}

	bases := []struct {
		name  string
		level int
	}{{"DEBUG", slogDebug}, {"INFO", slogInfo}, {"WARN", slogWarn}, {"ERROR", slogError}}
	for _, b := range bases {
		if !strings.HasPrefix(v, b.name) {
			continue
		}
		rest := v[len(b.name):]
		if rest == "" {
			return fromSlog(b.level), nil
		}
		suffix, ok := strings.CutPrefix(rest, "+")
		if !ok {
			return LogLevel{}, fmt.Errorf("invalid log level %q", s)
		}
		n, err := strconv.Atoi(strings.TrimSpace(suffix))
		if err != nil || n < 0 {
			return LogLevel{}, fmt.Errorf("invalid log level %q", s)
		}
		return fromSlog(b.level + n), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return LogLevel{}, fmt.Errorf("invalid log level %q", s)
	}
	return fromSlog(n), nil
}

// fromSlog maps a minimum level on the slog scale to the hclog level that
// emits the same set of records.
func fromSlog(n int) LogLevel {
	switch {
	case n < slogDebug:
		return LogLevel{level: hclog.Trace}
	case n <= slogDebug:
		return LogLevel{level: hclog.Debug}
	case n <= slogInfo:
		return LogLevel{level: hclog.Info}
	case n <= slogWarn:
		return LogLevel{level: hclog.Warn}
	case n <= slogError:
		return LogLevel{level: hclog.Error}
	default:
		return LogLevel{level: hclog.Off, off: true}
	}
}

// Level returns the hclog level to configure: hclog.Off when the log is off,
// hclog.Info for the zero value.
func (l LogLevel) Level() hclog.Level {
	if l.off {
		return hclog.Off
	}
	if l.level == hclog.NoLevel {
		return hclog.Info
	}
	return l.level
}

// Off reports whether the log is disabled.
func (l LogLevel) Off() bool { return l.off }

// String returns "off" or the hclog level name ("info", "debug", ...).
func (l LogLevel) String() string {
	if l.off {
		return "off"
	}
	return l.Level().String()
}
