package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
}

// defaultReadyTimeout bounds the server's start when ctx has no deadline.
const defaultReadyTimeout = 30 * time.Second

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv    *server.Server
	listen bool
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
	return &Embedded{srv: srv, listen: !opts.DontListen}, nil
}

// ClientURL returns the URL TCP clients connect to, or "" when the server
// does not listen (EmbeddedConfig.Listen was "").
func (e *Embedded) ClientURL() string {
	if !e.listen {
		return ""
	}
	return e.srv.ClientURL()
}

// Connect returns a client connection to the server that does not go
// through the network, whether or not the server listens.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	// The URL is never dialled: InProcessServer supplies the connection.
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(e.srv)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
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
