package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/secret"
)

// Reconnect backoff bounds: the first retry waits about ReconnectMinWait, each
// further one doubles, up to ReconnectMaxWait, with ±20% jitter.
const (
	ReconnectMinWait = 100 * time.Millisecond
	ReconnectMaxWait = 5 * time.Second
)

// ConnectConfig says how to reach a NATS server or cluster.
type ConnectConfig struct {
	// URL is one URL or a comma-separated list (a cluster's seeds).
	URL string
	// Name is the connection name shown by the server (e.g. "jetsms worker").
	Name string
	// Creds is a credentials file (JWT and NKey seed).
	Creds string
	// User and Password are plain user/password authentication.
	User     string
	Password secret.Secret
	// Token is token authentication.
	Token secret.Secret
	// TLSCA is a CA bundle to verify the server; TLSCert and TLSKey a client
	// certificate.
	TLSCA, TLSCert, TLSKey string
	// LocalCredentialsDir is the embedded server's store directory. When no
	// credentials are set (Creds, User, Token, or in the URL) and every URL
	// points at this machine, Connect presents the credentials of the password
	// file there (ReadCredentials), if there is one. Credentials set explicitly
	// win, and the file's password is never sent off the machine.
	LocalCredentialsDir string
}

// Connect connects to NATS and keeps the connection: it reconnects forever with
// backoff, and logs every disconnect, reconnect and asynchronous error once. If the
// server is not reachable yet, Connect keeps trying until ctx ends.
func Connect(ctx context.Context, cfg ConnectConfig, log *zap.Logger) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: url must not be empty")
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("nats")
	connected := make(chan struct{}, 1)
	// refused carries the server's refusal of the credentials while Connect
	// waits, so a wrong or missing password is an error at once, not a wait.
	refused := make(chan error, 1)
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ConnectHandler(func(*nats.Conn) {
			select {
			case connected <- struct{}{}:
			default:
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("reconnected to NATS", zap.String("url", c.ConnectedUrlRedacted()))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if errors.Is(err, nats.ErrAuthorization) {
				select {
				case refused <- err:
				default:
				}
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Warn("NATS asynchronous error", fields...)
		}),
	}
	if cfg.Creds == "" && cfg.User == "" && !cfg.Token.IsSet() && cfg.LocalCredentialsDir != "" && isLocalURLs(cfg.URL) {
		local, found, err := ReadCredentials(cfg.LocalCredentialsDir)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		if found {
			cfg.User, cfg.Password = local.User, local.Password
		}
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password.Reveal()))
	}
	if cfg.Token.IsSet() {
		opts = append(opts, nats.Token(cfg.Token.Reveal()))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", redactURL(cfg.URL), hideURL(err, cfg.URL))
	}
	if nc.IsConnected() {
		return nc, nil
	}
	log.Info("waiting for NATS", zap.String("url", redactURL(cfg.URL)))
	select {
	case <-connected:
		return nc, nil
	case err := <-refused:
		nc.Close()
		return nil, fmt.Errorf("nats: connect %s: %w", redactURL(cfg.URL), err)
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("nats: connect %s: %w", redactURL(cfg.URL), ctx.Err())
	}
}

func reconnectDelay(attempts int) time.Duration {
	d := ReconnectMinWait
	for i := 1; i < attempts && d < ReconnectMaxWait; i++ {
		d *= 2
	}
	d = min(d, ReconnectMaxWait)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}
