package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures the in-process NATS server that `stoker serve`
// starts when no broker URL is given.
type EmbeddedOptions struct {
	// Listen is the client address; default "127.0.0.1:4222". Port -1 or 0
	// picks a free port.
	Listen string
	// DataDir holds JetStream's file store; default "./stoker-data".
	DataDir string
	// User and Password, or Token, protect the server. Listening beyond
	// loopback without either is refused.
	User, Password, Token string
	// MaxPayload raises the server's largest message; default 8 MiB, so a
	// batch of tensors rarely needs splitting.
	MaxPayload int32
	// ReadyTimeout bounds the wait for the server to accept clients; default 10s.
	ReadyTimeout time.Duration
	// Logger receives the server's notices, warnings and errors; default
	// slog.Default(). Debug and trace output is dropped.
	Logger *slog.Logger
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	srv *server.Server
}

// ErrUnprotectedListen is returned when the embedded server would listen on
// a non-loopback address without authentication.
var ErrUnprotectedListen = errors.New("queue: embedded server on a non-loopback address needs a user/password or token")

// StartEmbedded starts a NATS server in this process and waits until it
// accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4222"
	}
	if o.DataDir == "" {
		o.DataDir = "./stoker-data"
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 8 << 20
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded server listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded server listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = -1
	}
	if !isLoopback(host) && o.Password == "" && o.Token == "" {
		return nil, fmt.Errorf("%w (listen %s)", ErrUnprotectedListen, o.Listen)
	}
	if port > 0 {
		// nats-server would only log a refused listen and never become
		// ready: say why at once.
		l, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			return nil, fmt.Errorf("queue: embedded server cannot listen on %s: %w (is another NATS server running there? join it with --nats, or choose another --listen)", o.Listen, err)
		}
		l.Close()
	}
	opts := &server.Options{
		ServerName:         "stoker-embedded",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           o.DataDir,
		MaxPayload:         o.MaxPayload,
		MaxPending:         64 << 20,
		NoSigs:             true,
		Username:           o.User,
		Password:           o.Password,
		Authorization:      o.Token,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded server: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(o.ReadyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("queue: embedded server did not accept connections on %s within %s", o.Listen, o.ReadyTimeout)
	}
	return &Embedded{srv: srv}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ClientURL is the URL other processes use to join.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Server exposes the running server (tests use it to restart or inspect).
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverLogger passes the server's log lines to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(string, ...any)           {}
func (l serverLogger) Tracef(string, ...any)           {}
