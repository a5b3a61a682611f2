// Package loopback tells whether a host is reached from this machine only, the
// rule behind every "refused beyond loopback" of jetsms (the admin listener, the
// embedded server without auth, plain-HTTP gateway URLs, the embedded server's
// generated credentials).
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host (of a listen address or a URL, with or without
// brackets) is "localhost" or a loopback IP address.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
