package dlr

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawRequest writes head and then part of a body of the declared length on a raw
// connection, optionally closes its write side, and returns the status the
// server answered, or 0 when it closed the connection without an answer.
func rawRequest(t *testing.T, addr, path string, declared int, sent string, closeWrite bool) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	auth := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword.Reveal()))
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, auth, declared, sent)
	require.NoError(t, err)
	if closeWrite {
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	}
	// The deadline only fails the test: the server answers at its read timeout.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(eventWait)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "no answer and no close within %s", eventWait)
		return 0 // closed without an answer
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func TestBodyNotReadWhole(t *testing.T) {
	t.Parallel()
	const body = `{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received"}`

	t.Run("ABodyCutShortIsNever200", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		code := rawRequest(t, b.addr, PathDLR, len(body), body[:len(body)/2], true)
		require.NotEqual(t, http.StatusOK, code)
		require.Contains(t, []int{0, http.StatusBadRequest}, code)
		require.Empty(t, b.stored(t))
	})

	t.Run("ABodySlowerThanTheReadTimeoutIsNever200", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{ReadTimeout: 300 * time.Millisecond}, nil, nil)
		// Half the body, and the rest never: the server's read timeout ends it.
		code := rawRequest(t, b.addr, PathDLR, len(body), body[:len(body)/2], false)
		require.Contains(t, []int{0, http.StatusBadRequest}, code)
		require.Empty(t, b.stored(t))
		require.Equal(t, int64(0), b.rc.Stats().DLR.Stored)
	})

	t.Run("AWholeBodyIsStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		require.Equal(t, http.StatusOK, rawRequest(t, b.addr, PathDLR, len(body), body, false))
		require.Len(t, b.stored(t), 1)
	})
}

func TestAllowFrom(t *testing.T) {
	t.Parallel()
	const body = `{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received"}`

	t.Run("ASourceOutsideTheListGets403", func(t *testing.T) {
		t.Parallel()
		cfg := withCredentials()
		cfg.AllowFrom = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		b := setup(t, cfg, ServerConfig{}, nil, nil)
		a := b.post(t, PathDLR, body)
		require.Equal(t, http.StatusForbidden, a.status, "%s", a.body)
		require.Empty(t, b.stored(t))
		require.Equal(t, int64(1), b.rc.Stats().DLR.Forbidden)
	})

	t.Run("ASourceInTheListIsServed", func(t *testing.T) {
		t.Parallel()
		cfg := withCredentials()
		cfg.AllowFrom = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("127.0.0.0/8")}
		b := setup(t, cfg, ServerConfig{}, nil, nil)
		a := b.post(t, PathDLR, body)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		require.True(t, strings.Contains(string(a.body), "stored"))
	})
}

func TestHeadersBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
	a := b.do(t, http.MethodPost, PathDLR, strings.NewReader(`{}`), func(r *http.Request) {
		r.SetBasicAuth(testUser, testPassword.Reveal())
		r.Header.Set("X-Long", strings.Repeat("9", 64<<10))
	})
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, a.status)
	require.Empty(t, b.stored(t))
}
