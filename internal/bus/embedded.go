package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes/internal/tlsreload"
)

// EmbeddedConfig configures the embedded NATS server.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps its data. Required.
	StoreDir string
	// Listen is the "host:port" the server accepts TCP clients on; port 0
	// picks a free one. "" means no TCP listener at all: clients connect in
	// process only, with Connect.
	Listen string
	// SyncAlways makes JetStream fsync every write before acknowledging it,
	// instead of every couple of minutes. Slower; survives power loss.
	SyncAlways bool
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger

	// Providers, when set, turns authentication on: a client must connect
	// either as the internal user, with every permission, or as a provider
	// whose credentials Providers accepts, with ProviderPermissions of its
	// id; anyone else is refused. Nil leaves the server open to every
	// client, with every permission.
	Providers ProviderAuthenticator
	// InternalUser and InternalPassword are the credentials of rydes's own
	// connections when Providers is set; Connect uses them. The user
	// defaults to DefaultInternalUser, the password to a random one, new in
	// every process. The user must not be a valid provider id.
	InternalUser     string
	InternalPassword string

	// TLSCertFile and TLSKeyFile, when both set, make the client listener
	// (Listen, which is then required) accept TLS connections only, with
	// this certificate and key (PEM), TLS 1.2 at least. The files are read
	// again when they change (see internal/tlsreload). Connections made
	// with Connect do not go through the network and stay plain.
	TLSCertFile string
	TLSKeyFile  string
}

// TLSTimeout bounds a client's TLS handshake with the embedded broker.
const TLSTimeout = 5 * time.Second

// defaultReadyTimeout bounds the server's start when ctx has no deadline.
const defaultReadyTimeout = 30 * time.Second

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv    *server.Server
	listen bool
	auth   *authenticator // nil when clients are not authenticated
	log    *slog.Logger
}

// StartEmbedded starts a NATS server with JetStream in this process and
// returns once it accepts connections and JetStream is up. ctx bounds the
// start only; stop the server with Shutdown.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("start embedded nats: a store directory is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName: "rydes",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		// Nothing else listens: no monitoring, cluster, gateway or leaf port.
	}
	// Every SSE watcher and long poll reads RYDES_EVENTS with a consumer of
	// its own, and every provider's queue is a consumer on RYDES_DISPATCH:
	// nats-server's default of 1,000 consumers per stream would refuse the
	// 1,001st watcher (found by rydes bench hold). Memory bounds them instead.
	opts.JetStreamLimits.DefaultMaxConsumers = -1
	var auth *authenticator
	if cfg.Providers != nil {
		var err error
		auth, err = newAuthenticator(cfg, logger.With("component", "nats-auth"))
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		opts.CustomClientAuthentication = auth
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, portText, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: listen address %q: %w", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("start embedded nats: listen address %q: bad port", cfg.Listen)
		}
		if port == 0 {
			// For nats-server, port 0 means its default (4222); -1 means any.
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}

	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if cfg.Listen == "" {
			return nil, errors.New("start embedded nats: TLS is for the client listener, and none is configured")
		}
		tc, err := serverTLS(cfg, logger)
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		opts.TLSConfig = tc
		opts.TLSTimeout = TLSTimeout.Seconds()
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	sl := &slogLogger{l: logger.With("component", "nats-server")}
	srv.SetLoggerV2(sl, false, false, false)
	go srv.Start()

	timeout := defaultReadyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		if msg := sl.lastFatal(); msg != "" {
			return nil, fmt.Errorf("start embedded nats: %s", msg)
		}
		return nil, fmt.Errorf("start embedded nats: not ready for connections after %s", timeout)
	}
	if !srv.JetStreamEnabled() {
		msg := sl.lastFatal()
		srv.Shutdown()
		srv.WaitForShutdown()
		if msg == "" {
			msg = "JetStream did not start"
		}
		return nil, fmt.Errorf("start embedded nats: %s", msg)
	}
	return &Embedded{srv: srv, listen: !opts.DontListen, auth: auth, log: logger}, nil
}

// serverTLS returns the TLS configuration of the client listener: nats-server's
// own (GenTLSConfig), serving the keypair that reloads as its files change.
func serverTLS(cfg EmbeddedConfig, logger *slog.Logger) (*tls.Config, error) {
	kp, err := tlsreload.Load(cfg.TLSCertFile, cfg.TLSKeyFile, logger.With("component", "nats-tls"))
	if err != nil {
		return nil, err
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, Timeout: TLSTimeout.Seconds()})
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	// GetCertificate is used only when Certificates is empty.
	tc.Certificates = nil
	tc.GetCertificate = kp.GetCertificate
	return tc, nil
}

// ClientURL returns the URL TCP clients connect to, or "" when the server
// does not listen (EmbeddedConfig.Listen was ""). Its scheme is tls when the
// listener requires TLS, else nats.
func (e *Embedded) ClientURL() string {
	if !e.listen {
		return ""
	}
	return e.srv.ClientURL()
}

// Connect returns a client connection to the server that does not go
// through the network, whether or not the server listens. When clients are
// authenticated, it connects as the internal user unless opts say
// otherwise. It needs no TLS options when the listener requires TLS: the
// server lets in-process connections go without.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	// The URL is never dialled: InProcessServer supplies the connection.
	all := []nats.Option{nats.InProcessServer(e.srv)}
	if e.auth != nil {
		all = append(all, nats.UserInfo(e.auth.internalUser, e.auth.internalPassword))
	}
	nc, err := nats.Connect("", append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// DisconnectUser closes every client connection of user and returns how
// many it closed. Call it once user's credentials changed (rotated) or are
// gone (the provider was deleted): a connection that was being
// authenticated meanwhile is refused, and the client must reconnect with
// credentials that are valid now. The internal user's connections, rydes's
// own, are never closed this way.
func (e *Embedded) DisconnectUser(user string) int {
	if user == "" || (e.auth != nil && user == e.auth.internalUser) {
		return 0
	}
	if e.auth != nil {
		e.auth.revoke(user)
	}
	// Collect first: a closed connection may stay listed for a moment.
	var ids []uint64
	for offset := 0; ; {
		cz, err := e.srv.Connz(&server.ConnzOptions{User: user, Offset: offset, Limit: server.DefaultConnListSize})
		if err != nil {
			e.log.Error("nats: list connections to close", "user", user, "err", err)
			break
		}
		for _, ci := range cz.Conns {
			ids = append(ids, ci.Cid)
		}
		if len(cz.Conns) < server.DefaultConnListSize {
			break
		}
		offset += len(cz.Conns)
	}
	closed := 0
	for _, id := range ids {
		if err := e.srv.DisconnectClientByID(id); err != nil {
			// Gone already: it closed by itself meanwhile.
			e.log.Debug("nats: close connection", "user", user, "cid", id, "err", err)
			continue
		}
		closed++
	}
	if closed > 0 {
		e.log.Info("nats: closed the connections of a user", "user", user, "connections", closed)
	}
	return closed
}

// Server returns the underlying server, for diagnostics.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server gracefully, flushing JetStream's data to its
// store, and returns once it has stopped. Clients are disconnected.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// slogLogger bridges the server's logs into slog.
type slogLogger struct {
	l *slog.Logger

	mu    sync.Mutex
	fatal string
}

var _ server.Logger = (*slogLogger)(nil)

// Noticef logs at info level.
func (s *slogLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }

// Warnf logs at warn level.
func (s *slogLogger) Warnf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }

// Fatalf logs at error level and remembers the message so that a failed
// start can report it. It does not exit: the server stops on its own.
func (s *slogLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.mu.Lock()
	s.fatal = msg
	s.mu.Unlock()
	s.l.Error(msg, "fatal", true)
}

// Errorf logs at error level.
func (s *slogLogger) Errorf(format string, v ...any) { s.l.Error(fmt.Sprintf(format, v...)) }

// Debugf logs at debug level.
func (s *slogLogger) Debugf(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }

// Tracef logs below debug level.
func (s *slogLogger) Tracef(format string, v ...any) {
	s.l.Log(context.Background(), slog.LevelDebug-4, fmt.Sprintf(format, v...))
}

func (s *slogLogger) lastFatal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}
