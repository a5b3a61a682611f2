package broker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The embedded server's password is only added for URLs of this machine.
func TestIsLocalURLs(t *testing.T) {
	t.Parallel()
	for list, want := range map[string]bool{
		"nats://127.0.0.1:4222":                       true,
		"127.0.0.1:4222":                              true,
		"nats://localhost:4222":                       true,
		"nats://[::1]:4222":                           true,
		"nats://0.0.0.0:4222":                         true,
		"nats://127.0.0.1:4222,nats://127.0.0.2:4223": true,
		"nats://10.0.0.5:4222":                        false,
		"nats://nats:4222":                            false,
		"nats://127.0.0.1:4222,nats://nats-2:4222":    false,
		"nats://me:pw@127.0.0.1:4222":                 false, // its own credentials win
		"tls://localhost.example.com:4222":            false,
	} {
		require.Equal(t, want, isLocalURLs(list), list)
	}
}
