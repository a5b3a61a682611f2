package dlr

import (
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Server defaults. Each bounds how long one client can hold a connection or a
// goroutine, so a slow or stalled client cannot use the server up.
const (
	// ListenDefault is the callback receiver's address of docs/contract.md.
	ListenDefault = ":8080"
	// ReadHeaderTimeoutDefault bounds reading a request's headers.
	ReadHeaderTimeoutDefault = 5 * time.Second
	// ReadTimeoutDefault bounds reading a whole request, headers and body.
	ReadTimeoutDefault = 10 * time.Second
	// WriteTimeoutDefault bounds a request from the end of its headers to the end
	// of its answer: body, publish and answer. It exceeds ReadTimeoutDefault plus
	// PublishTimeoutDefault, so a slow publish still gets its 503 out.
	WriteTimeoutDefault = 20 * time.Second
	// IdleTimeoutDefault is how long a keep-alive connection waits for its next
	// request.
	IdleTimeoutDefault = 60 * time.Second
	// MaxHeaderBytesDefault caps request headers (credentials and a proxy's
	// additions fit many times over).
	MaxHeaderBytesDefault = 16 << 10
)

// ServerConfig sets up the HTTP server of the callback receiver. Zero fields take
// their defaults; negative ones are refused.
type ServerConfig struct {
	// Addr is host:port. Default: ListenDefault.
	Addr string
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are those of
	// http.Server. Defaults: the constants of the same names. WriteTimeout should
	// exceed ReadTimeout plus the receiver's PublishTimeout.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes is that of http.Server. Default: MaxHeaderBytesDefault.
	MaxHeaderBytes int
}

// NewServer returns an http.Server that serves h with every timeout and the header
// limit set. It does not start it: run it with ListenAndServe (or Serve) and stop
// it with Shutdown; http.ErrServerClosed from those is a clean stop. h is usually
// a mux that routes "/callbacks/" to a Receiver beside the caller's health and
// metrics handlers. The server's own errors (a failed accept, a TLS handshake)
// go to log at warn level; a nil log sends them nowhere.
//
// It returns an error wrapping ErrInvalidConfig when a value is negative.
func NewServer(cfg ServerConfig, h http.Handler, log *zap.Logger) (*http.Server, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
		def  time.Duration
		dst  *time.Duration
	}{
		{"ReadHeaderTimeout", cfg.ReadHeaderTimeout, ReadHeaderTimeoutDefault, &cfg.ReadHeaderTimeout},
		{"ReadTimeout", cfg.ReadTimeout, ReadTimeoutDefault, &cfg.ReadTimeout},
		{"WriteTimeout", cfg.WriteTimeout, WriteTimeoutDefault, &cfg.WriteTimeout},
		{"IdleTimeout", cfg.IdleTimeout, IdleTimeoutDefault, &cfg.IdleTimeout},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: %s %v: must be >= 0", ErrInvalidConfig, d.name, d.v)
		}
		if d.v == 0 {
			*d.dst = d.def
		}
	}
	if cfg.MaxHeaderBytes < 0 {
		return nil, fmt.Errorf("%w: MaxHeaderBytes %d: must be >= 0", ErrInvalidConfig, cfg.MaxHeaderBytes)
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = MaxHeaderBytesDefault
	}
	if cfg.Addr == "" {
		cfg.Addr = ListenDefault
	}
	if log == nil {
		log = zap.NewNop()
	}
	errLog, err := zap.NewStdLogAt(log.Named("callbacks.http"), zap.WarnLevel)
	if err != nil {
		return nil, fmt.Errorf("server error log: %w", err)
	}
	return &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
	}, nil
}
