package main

import (
	"flag"
	"os"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/queue"
)

// natsFlags are the connection flags every networked verb takes, named as
// the nats CLI names them, with the same environment variables.
type natsFlags struct {
	url, creds, user, password, token, nkey, tlscert, tlskey, tlsca string
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats", os.Getenv("NATS_URL"), "NATS server URL(s), comma-separated (env NATS_URL)")
	fs.StringVar(&n.creds, "creds", os.Getenv("NATS_CREDS"), "user credentials file (env NATS_CREDS)")
	fs.StringVar(&n.user, "user", os.Getenv("NATS_USER"), "user name (env NATS_USER)")
	fs.StringVar(&n.password, "password", os.Getenv("NATS_PASSWORD"), "password (env NATS_PASSWORD)")
	fs.StringVar(&n.token, "token", os.Getenv("NATS_TOKEN"), "authentication token (env NATS_TOKEN)")
	fs.StringVar(&n.nkey, "nkey", os.Getenv("NATS_NKEY"), "NKey seed file (env NATS_NKEY)")
	fs.StringVar(&n.tlscert, "tlscert", os.Getenv("NATS_CERT"), "client certificate for mutual TLS (env NATS_CERT)")
	fs.StringVar(&n.tlskey, "tlskey", os.Getenv("NATS_KEY"), "client private key (env NATS_KEY)")
	fs.StringVar(&n.tlsca, "tlsca", os.Getenv("NATS_CA"), "CA that signed the server certificate (env NATS_CA)")
}

// apply overrides the configuration's connection settings with the flags
// that were given.
func (n *natsFlags) apply(c *config.NATS) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.URL, n.url)
	set(&c.Creds, n.creds)
	set(&c.User, n.user)
	set(&c.Password, n.password)
	set(&c.Token, n.token)
	set(&c.NKey, n.nkey)
	set(&c.TLS.Cert, n.tlscert)
	set(&c.TLS.Key, n.tlskey)
	set(&c.TLS.CA, n.tlsca)
}

func (n *natsFlags) options(name string) queue.ConnOptions {
	return queue.ConnOptions{
		URL: n.url, Name: name, Creds: n.creds, User: n.user, Password: n.password, Token: n.token,
		NKey: n.nkey, TLSCert: n.tlscert, TLSKey: n.tlskey, TLSCA: n.tlsca,
	}
}
