package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnOptions says how to reach and authenticate to a NATS server. Field
// names follow the nats CLI's flags (--creds, --user, --password, --nkey,
// --tlscert, --tlskey, --tlsca).
type ConnOptions struct {
	URL      string // nats://host:port[,nats://…]; required
	Name     string // connection name shown by the server; default "stoker"
	Creds    string // credentials file (JWT + NKey seed)
	User     string
	Password string
	Token    string
	NKey     string // file holding an NKey seed
	TLSCert  string // client certificate (with TLSKey) for mutual TLS
	TLSKey   string
	TLSCA    string // CA bundle that signed the server's certificate

	// ReconnectWait is the pause between reconnection attempts; default 250ms.
	ReconnectWait time.Duration
	// MaxReconnects bounds reconnection attempts; default -1 (forever), as a
	// worker outlives broker restarts.
	MaxReconnects int
	// PublishAsyncMaxPending bounds unacknowledged asynchronous publishes;
	// default 256.
	PublishAsyncMaxPending int
	// PublishAckTimeout is how long an asynchronous publish waits for the
	// stream's acknowledgement before it fails and gives back its place
	// under PublishAsyncMaxPending; default 30s. A stream that changes
	// leader can drop a publish without a reply: without this bound its
	// payload and its place would be held for good.
	PublishAckTimeout time.Duration
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

// Conn is a NATS connection with its JetStream context.
type Conn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
}

// Connect dials the server described by o.
func Connect(ctx context.Context, o ConnOptions) (*Conn, error) {
	if o.URL == "" {
		return nil, errors.New("queue: connect: no NATS URL")
	}
	if o.Name == "" {
		o.Name = "stoker"
	}
	if o.ReconnectWait == 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	if o.MaxReconnects == 0 {
		o.MaxReconnects = -1
	}
	if o.PublishAsyncMaxPending == 0 {
		o.PublishAsyncMaxPending = 256
	}
	if o.PublishAckTimeout == 0 {
		o.PublishAckTimeout = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.ReconnectWait(o.ReconnectWait),
		nats.MaxReconnects(o.MaxReconnects),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: the connection was closed on purpose
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	auth, err := authOptions(o)
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)

	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.URL, opts...)
		done <- result{nc, err}
	}()
	var nc *nats.Conn
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("queue: connect to %s: %w", redact(o.URL), r.err)
		}
		nc = r.nc
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("queue: connect to %s: %w", redact(o.URL), ctx.Err())
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(o.PublishAsyncMaxPending),
		jetstream.WithPublishAsyncTimeout(o.PublishAckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue: jetstream on %s: %w", redact(o.URL), err)
	}
	return &Conn{nc: nc, js: js, log: log}, nil
}

func authOptions(o ConnOptions) ([]nats.Option, error) {
	var opts []nats.Option
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("queue: nkey seed file %s: %w", o.NKey, err)
		}
		opts = append(opts, opt)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("queue: a TLS client certificate needs both a certificate and a key file")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	return opts, nil
}

// redact drops any user information from a URL before it is logged or put
// in an error.
func redact(url string) string {
	at := -1
	for i := 0; i < len(url); i++ {
		if url[i] == '@' {
			at = i
		}
		if url[i] == ',' {
			break
		}
	}
	if at < 0 {
		return url
	}
	scheme := ""
	for i := 0; i+2 < len(url) && i < at; i++ {
		if url[i:i+3] == "://" {
			scheme = url[:i+3]
			break
		}
	}
	return scheme + "[redacted]" + url[at:]
}

// NATS returns the underlying connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the JetStream context.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// MaxPayload is the largest message the server accepts, in bytes.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Connected reports whether the connection is currently up.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Close flushes pending publishes (bounded by ctx) and closes the connection.
func (c *Conn) Close(ctx context.Context) {
	select {
	case <-c.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	c.nc.Close()
}

// Transient reports whether err is a broker failure that may pass if the
// call is made again: a request that timed out or found no responder (a
// server starting, a leader being elected), or a connection being
// re-established. Errors about what was asked (a stream that does not
// capture a subject, a refused configuration) are not transient.
func Transient(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrNoServers), // not reachable yet: starting, restarting
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrNoHeartbeat):
		return true
	}
	return false
}
