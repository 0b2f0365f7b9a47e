package server

import (
	"testing"

	"github.com/keyraft/keyraft/internal/config"
)

// TestConnectionRate: an absent limits.connection_rate paces at the
// default, "off" does not pace, and a configured rate is used as is.
func TestConnectionRate(t *testing.T) {
	for configured, want := range map[int]int{0: config.DefaultConnectionRate, -1: 0, 20: 20} {
		if got := connectionRate(configured); got != want {
			t.Errorf("connectionRate(%d) = %d, want %d", configured, got, want)
		}
	}
}
